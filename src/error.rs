//! The one error type of the service and its mapping to HTTP: every error
//! answers an RFC 9457 problem document with a stable machine-readable
//! [`ErrorCode`].

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::bookings::BookingError;
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
    IdempotencyKeyInUse,
    IdempotencyKeyMismatch,
    PayloadTooLarge,
    UnsupportedMediaType,
    TooManyRequests,
    ServiceUnavailable,
    InternalError,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedRequest => "malformed_request",
            ErrorCode::ValidationFailed => "validation_failed",
            ErrorCode::InvalidDate => "invalid_date",
            ErrorCode::InvalidStay => "invalid_stay",
            ErrorCode::InvalidTimezone => "invalid_timezone",
            ErrorCode::DateInPast => "date_in_past",
            ErrorCode::BeyondHorizon => "beyond_horizon",
            ErrorCode::OverCapacity => "over_capacity",
            ErrorCode::RateMissing => "rate_missing",
            ErrorCode::GuestLimit => "guest_limit",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::RoomAlreadyBooked => "room_already_booked",
            ErrorCode::AlreadyExists => "already_exists",
            ErrorCode::InUse => "in_use",
            ErrorCode::InvalidTransition => "invalid_transition",
            ErrorCode::TooEarly => "too_early",
            ErrorCode::DefaultResource => "default_resource",
            ErrorCode::IdempotencyKeyInUse => "idempotency_key_in_use",
            ErrorCode::IdempotencyKeyMismatch => "idempotency_key_mismatch",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::TooManyRequests => "too_many_requests",
            ErrorCode::ServiceUnavailable => "service_unavailable",
            ErrorCode::InternalError => "internal_error",
        }
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
    /// first ([`crate::db::MaybeRetryable`]).
    #[error("concurrent changes of the same rooms; try again")]
    Contention(#[source] sqlx::Error),

    /// `413 Content Too Large`.
    #[error("the request body is too large")]
    PayloadTooLarge,

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
            Error::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
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
            Error::UnsupportedMediaType => ErrorCode::UnsupportedMediaType,
            Error::TooManyRequests(_) => ErrorCode::TooManyRequests,
            Error::Unavailable => ErrorCode::ServiceUnavailable,
            Error::Database(_) | Error::Internal(_) => ErrorCode::InternalError,
        }
    }
}

/// Whether a database error means the connection or the server is gone (or
/// going): such a request may succeed when retried, and answers `503`.
pub fn is_connection_error(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // admin_shutdown, crash_shutdown, cannot_connect_now, the 08
            // connection-exception class, too_many_connections.
            matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "53300") || code.starts_with("08")
        }),
        _ => false,
    }
}

impl From<deadpool::managed::PoolError<sqlx::Error>> for Error {
    /// Getting a connection of `POST /book` fails as acquiring one from the
    /// pool does: a timeout or a closed pool answers `503`, and so does a
    /// connection that cannot be opened.
    fn from(error: deadpool::managed::PoolError<sqlx::Error>) -> Self {
        use deadpool::managed::PoolError;
        Error::from(match error {
            PoolError::Backend(error) => error,
            PoolError::Timeout(_) => sqlx::Error::PoolTimedOut,
            PoolError::Closed => sqlx::Error::PoolClosed,
            other => return Error::Internal(other.to_string()),
        })
    }
}

impl From<sqlx::Error> for Error {
    /// Constraint violations that no call site mapped still answer `409`;
    /// an unreachable database (or a query cancelled by `statement_timeout`)
    /// answers `503`.
    fn from(error: sqlx::Error) -> Self {
        if is_connection_error(&error) {
            tracing::warn!(%error, "database unavailable");
            if !matches!(error, sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed) {
                crate::db::connection_error_seen();
            }
            return Error::Unavailable;
        }
        let code = match &error {
            sqlx::Error::Database(db) => db.code().map(|code| code.into_owned()),
            _ => None,
        };
        match code.as_deref() {
            Some("23P01") => Error::conflict(
                ErrorCode::RoomAlreadyBooked,
                "the room is already booked for these nights",
            ),
            Some("23505") => Error::conflict(
                ErrorCode::AlreadyExists,
                "a resource with this name already exists",
            ),
            Some("23503") => Error::conflict(
                ErrorCode::InUse,
                "the resource is referenced by other resources (such as bookings)",
            ),
            // query_canceled: the statement_timeout, just under the request timeout.
            Some("57014") => {
                tracing::warn!(%error, "statement timed out");
                Error::Unavailable
            }
            // lock_not_available: a lock not had within `lock_timeout`, again
            // on every attempt of its transaction.
            Some("55P03") => {
                tracing::warn!(%error, "a lock was not available in time");
                Error::Unavailable
            }
            // Deadlocks and serialization failures (that outlived the retries
            // of their transaction, or are yet to be retried by its runner).
            Some("40P01" | "40001") => Error::Contention(error),
            _ => Error::Database(error),
        }
    }
}

/// Maps database errors by constraint name at the call site
/// (after realworld-axum-sqlx's `on_constraint`).
pub trait ResultExt<T> {
    /// When the error violates `constraint`, answer `map()` instead.
    fn on_constraint(self, constraint: &str, map: impl FnOnce() -> Error) -> Result<T>;
}

impl<T, E: Into<Error> + AsConstraint> ResultExt<T> for std::result::Result<T, E> {
    fn on_constraint(self, constraint: &str, map: impl FnOnce() -> Error) -> Result<T> {
        self.map_err(|error| {
            if error.constraint() == Some(constraint) {
                map()
            } else {
                error.into()
            }
        })
    }
}

/// The constraint a database error violated, if any.
pub trait AsConstraint {
    fn constraint(&self) -> Option<&str>;
}

impl AsConstraint for sqlx::Error {
    fn constraint(&self) -> Option<&str> {
        crate::db::constraint(self)
    }
}

impl AsConstraint for Error {
    fn constraint(&self) -> Option<&str> {
        match self {
            Error::Database(error) => error.constraint(),
            _ => None,
        }
    }
}

impl crate::db::MaybeRetryable for Error {
    fn database_error(&self) -> Option<&sqlx::Error> {
        match self {
            Error::Contention(error) | Error::Database(error) => Some(error),
            _ => None,
        }
    }
}

impl From<BookingError> for Error {
    fn from(error: BookingError) -> Self {
        match error {
            BookingError::Refused(refusal) => refusal.into(),
            BookingError::Database(error) => error.into(),
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

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        let detail = if status.is_server_error() {
            if matches!(self, Error::Database(_) | Error::Internal(_)) {
                tracing::error!(error = ?self, "request failed");
            }
            status.canonical_reason().unwrap_or("error").to_lowercase()
        } else {
            self.to_string()
        };
        let code = self.code();
        let problem = Problem {
            kind: format!("urn:room-booking:problem:{}", code.as_str()),
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
            Error::Unavailable => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Error::TooManyRequests(seconds) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
            }
            _ => {}
        }
        response.extensions_mut().insert(code);
        response
    }
}
