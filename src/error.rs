//! The one error type of the service and its mapping to HTTP: every error
//! answers an RFC 9457 problem document with a stable machine-readable
//! [`ErrorCode`].

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::fmt;

use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::Refusal;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The machine-readable `code` of a problem document; stable across versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    MalformedRequest,
    ValidationFailed,
    InvalidDate,
    InvalidStay,
    InvalidTimezone,
    DateInPast,
    BeyondHorizon,
    OverCapacity,
    RateMissing,
    GuestLimit,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    RoomAlreadyBooked,
    AlreadyExists,
    InUse,
    InvalidTransition,
    TooEarly,
    DefaultResource,
    LastAdmin,
    IdempotencyKeyInUse,
    IdempotencyKeyMismatch,
    PayloadTooLarge,
    HeadersTooLarge,
    UnsupportedMediaType,
    TooManyRequests,
    ServiceUnavailable,
    InternalError,
}

/// The code as its problem documents carry it: serde's name for it, so
/// the two cannot differ.
impl fmt::Display for ErrorCode {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.serialize(formatter)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `400 Bad Request`: the body, query string, path or a header could not be read.
    #[error("{0}")]
    Malformed(String),

    /// `422 Unprocessable Content`: well-formed input with an invalid value.
    #[error("{detail}")]
    Invalid { code: ErrorCode, detail: String },

    /// `401 Unauthorized` with `WWW-Authenticate: Bearer`: no token, or not a
    /// valid one; also a wrong name or password.
    #[error("missing or invalid credentials")]
    Unauthorized,

    /// `403 Forbidden`: the caller's role does not allow this.
    #[error("your role does not allow this")]
    Forbidden,

    /// `404 Not Found`: no such resource (or one the caller may not see).
    #[error("{0}")]
    NotFound(String),

    /// `405 Method Not Allowed`: the path exists, the method does not; the
    /// `Allow` header (set by the router) lists the methods it serves.
    #[error("this path does not serve this method; it serves: {0}")]
    MethodNotAllowed(String),

    /// `409 Conflict`: the night is taken, the name exists, the row is in use,
    /// the state does not allow the change, or an idempotency key is in use.
    #[error("{detail}")]
    Conflict { code: ErrorCode, detail: String },

    /// `409 Conflict`: PostgreSQL aborted the transaction for a concurrent
    /// one (a deadlock or a serialization failure), and the request may
    /// succeed when sent again. Runners of whole transactions run it again
    /// first.
    #[error("concurrent changes of the same rooms; try again")]
    Contention(#[source] sqlx::Error),

    /// `413 Content Too Large`.
    #[error("the request body is too large")]
    PayloadTooLarge,

    /// `431 Request Header Fields Too Large`: the request line and headers
    /// take more than the service reads.
    #[error("the request line and headers take more than {0} bytes")]
    HeadersTooLarge(usize),

    /// `415 Unsupported Media Type`: a JSON body without `content-type: application/json`.
    #[error("expected a body with content-type: application/json")]
    UnsupportedMediaType,

    /// `429 Too Many Requests` with `Retry-After` (seconds).
    #[error("too many requests; retry after {0} seconds")]
    TooManyRequests(u64),

    /// `503 Service Unavailable` with `Retry-After`: the database cannot be
    /// reached in time, the request ran out of time, or the service is busy.
    #[error("the service is temporarily unavailable")]
    Unavailable,

    /// `503 Service Unavailable` with `Retry-After`, as [`Error::Unavailable`]:
    /// the database was unreachable, or a statement or lock wait ran out of
    /// time. The cause is logged (a warning), never sent.
    #[error("the service is temporarily unavailable")]
    DatabaseUnavailable {
        #[source]
        error: sqlx::Error,
        /// The connection was lost (not merely none free): the pools check
        /// their idle connections before their next use.
        connection_lost: bool,
    },

    /// `500 Internal Server Error`: the cause is logged, never sent.
    #[error("database error")]
    Database(#[source] sqlx::Error),

    /// `500 Internal Server Error`: the cause is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn invalid(code: ErrorCode, detail: impl Into<String>) -> Self {
        Error::Invalid {
            code,
            detail: detail.into(),
        }
    }

    pub fn validation(detail: impl Into<String>) -> Self {
        Error::invalid(ErrorCode::ValidationFailed, detail)
    }

    pub fn conflict(code: ErrorCode, detail: impl Into<String>) -> Self {
        Error::Conflict {
            code,
            detail: detail.into(),
        }
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Error::NotFound(what.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Error::Malformed(_) => StatusCode::BAD_REQUEST,
            Error::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Error::Unauthorized => StatusCode::UNAUTHORIZED,
            Error::Forbidden => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Error::Conflict { .. } | Error::Contention(_) => StatusCode::CONFLICT,
            Error::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Error::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Error::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::Unavailable | Error::DatabaseUnavailable { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Error::Database(_) | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Malformed(_) => ErrorCode::MalformedRequest,
            Error::Invalid { code, .. } | Error::Conflict { code, .. } => *code,
            Error::Unauthorized => ErrorCode::Unauthorized,
            Error::Forbidden => ErrorCode::Forbidden,
            Error::NotFound(_) => ErrorCode::NotFound,
            Error::MethodNotAllowed(_) => ErrorCode::MethodNotAllowed,
            Error::Contention(_) => ErrorCode::RoomAlreadyBooked,
            Error::PayloadTooLarge => ErrorCode::PayloadTooLarge,
            Error::HeadersTooLarge(_) => ErrorCode::HeadersTooLarge,
            Error::UnsupportedMediaType => ErrorCode::UnsupportedMediaType,
            Error::TooManyRequests(_) => ErrorCode::TooManyRequests,
            Error::Unavailable | Error::DatabaseUnavailable { .. } => ErrorCode::ServiceUnavailable,
            Error::Database(_) | Error::Internal(_) => ErrorCode::InternalError,
        }
    }
}

impl From<Refusal> for Error {
    /// The business rules' refusals (`domain`), as HTTP.
    fn from(refusal: Refusal) -> Self {
        let detail = refusal.to_string();
        match refusal {
            Refusal::InvalidStay => Error::invalid(ErrorCode::InvalidStay, detail),
            Refusal::StayTooLong { .. } => Error::invalid(ErrorCode::InvalidStay, detail),
            Refusal::InPast { .. } => Error::invalid(ErrorCode::DateInPast, detail),
            Refusal::BeyondHorizon { .. } => Error::invalid(ErrorCode::BeyondHorizon, detail),
            Refusal::OverCapacity { .. } => Error::invalid(ErrorCode::OverCapacity, detail),
            Refusal::RateMissing { .. } | Refusal::MixedCurrencies => {
                Error::invalid(ErrorCode::RateMissing, detail)
            }
            Refusal::TotalTooLarge => Error::validation(detail),
            Refusal::UnknownInventory | Refusal::UnknownRoomType | Refusal::UnknownUser => {
                Error::validation(detail)
            }
            Refusal::TooManyLiveBookings { .. } | Refusal::TooManyNights { .. } => {
                Error::invalid(ErrorCode::GuestLimit, detail)
            }
            Refusal::NoRoomFree => Error::conflict(ErrorCode::RoomAlreadyBooked, detail),
            Refusal::NotChangeable | Refusal::InvalidTransition { .. } => {
                Error::conflict(ErrorCode::InvalidTransition, detail)
            }
            Refusal::TooEarly { .. } => Error::conflict(ErrorCode::TooEarly, detail),
        }
    }
}

/// An RFC 9457 problem document.
#[derive(Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem: `urn:room-booking:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The HTTP reason phrase.
    pub title: String,
    pub status: u16,
    /// What went wrong, for people; never database text.
    pub detail: String,
    pub code: ErrorCode,
}

/// Why a request failed, for the log and never for the client: put on the
/// response by [`Error::into_response`], logged once by the middleware that
/// reads it (`routes::log_failures`).
#[derive(Clone, Debug)]
pub struct Cause {
    pub text: String,
    /// A fault of the service (`500`), logged as an error; otherwise the
    /// database was out of reach (`503`), a warning.
    pub fault: bool,
    /// A connection was lost.
    pub connection_lost: bool,
}

impl Error {
    fn cause(&self) -> Option<Cause> {
        match self {
            Error::Database(_) | Error::Internal(_) => Some(Cause {
                text: format!("{self:?}"),
                fault: true,
                connection_lost: false,
            }),
            Error::DatabaseUnavailable {
                error,
                connection_lost,
            } => Some(Cause {
                text: error.to_string(),
                fault: false,
                connection_lost: *connection_lost,
            }),
            _ => None,
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        let cause = self.cause();
        let detail = if status.is_server_error() {
            status.canonical_reason().unwrap_or("error").to_lowercase()
        } else {
            self.to_string()
        };
        let code = self.code();
        let problem = Problem {
            kind: format!("urn:room-booking:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail,
            code,
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        match self {
            Error::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Error::Unavailable | Error::DatabaseUnavailable { .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Error::TooManyRequests(seconds) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
            }
            _ => {}
        }
        response.extensions_mut().insert(code);
        if let Some(cause) = cause {
            response.extensions_mut().insert(cause);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_read_as_serde_writes_them() {
        assert_eq!(
            ErrorCode::RoomAlreadyBooked.to_string(),
            "room_already_booked"
        );
        let json = serde_json::to_value(ErrorCode::IdempotencyKeyInUse).unwrap_or_default();
        assert_eq!(json, ErrorCode::IdempotencyKeyInUse.to_string());
    }
}
