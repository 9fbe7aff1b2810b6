//! The one error type of the service and its mapping to HTTP: every error
//! answers an RFC 9457 problem document with a stable machine-readable `code`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// SQLSTATE of an exclusion constraint violation (`bookings_no_overlap`).
const EXCLUSION_VIOLATION: &str = "23P01";
const UNIQUE_VIOLATION: &str = "23505";
const FOREIGN_KEY_VIOLATION: &str = "23503";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `400 Bad Request`: the body or query string could not be read.
    #[error("{0}")]
    Malformed(String),

    /// `422 Unprocessable Content`: well-formed input with an invalid value.
    #[error("{detail}")]
    Invalid { code: &'static str, detail: String },

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

    /// `409 Conflict`: the night is taken, the name exists, the row is in use,
    /// or the state does not allow the change.
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },

    /// `413 Content Too Large`.
    #[error("the request body is too large")]
    PayloadTooLarge,

    /// `415 Unsupported Media Type`: a JSON body without `content-type: application/json`.
    #[error("expected a body with content-type: application/json")]
    UnsupportedMediaType,

    /// `503 Service Unavailable` with `Retry-After`: the database cannot be reached
    /// in time, or the request ran out of time.
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
    pub fn invalid(code: &'static str, detail: impl Into<String>) -> Self {
        Error::Invalid {
            code,
            detail: detail.into(),
        }
    }

    pub fn validation(detail: impl Into<String>) -> Self {
        Error::invalid("validation_failed", detail)
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Error::Conflict {
            code,
            detail: detail.into(),
        }
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Error::NotFound(what.into())
    }

    fn status(&self) -> StatusCode {
        match self {
            Error::Malformed(_) => StatusCode::BAD_REQUEST,
            Error::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Error::Unauthorized => StatusCode::UNAUTHORIZED,
            Error::Forbidden => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict { .. } => StatusCode::CONFLICT,
            Error::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Error::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Error::Database(_) | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Error::Malformed(_) => "malformed_request",
            Error::Invalid { code, .. } | Error::Conflict { code, .. } => code,
            Error::Unauthorized => "unauthorized",
            Error::Forbidden => "forbidden",
            Error::NotFound(_) => "not_found",
            Error::PayloadTooLarge => "payload_too_large",
            Error::UnsupportedMediaType => "unsupported_media_type",
            Error::Unavailable => "service_unavailable",
            Error::Database(_) | Error::Internal(_) => "internal_error",
        }
    }
}

impl From<sqlx::Error> for Error {
    /// Constraint violations that no call site mapped still answer `409`;
    /// an unreachable database answers `503`.
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::Database(db) => match db.code().as_deref() {
                Some(EXCLUSION_VIOLATION) => Error::conflict(
                    "room_already_booked",
                    "the room is already booked for these nights",
                ),
                Some(UNIQUE_VIOLATION) => {
                    Error::conflict("already_exists", "a resource with this name already exists")
                }
                Some(FOREIGN_KEY_VIOLATION) => Error::conflict(
                    "in_use",
                    "the resource is referenced by other resources (such as bookings)",
                ),
                _ => Error::Database(error),
            },
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                tracing::warn!(%error, "database unavailable");
                Error::Unavailable
            }
            _ => Error::Database(error),
        }
    }
}

/// An RFC 9457 problem document.
#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: String,
    code: &'a str,
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
            kind: format!("urn:room-booking:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error"),
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
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
