//! How the database's errors become the service's: `db` tells what an error
//! means ([`crate::db::failure`]), and this module says what each meaning
//! answers. Neither `db` nor `error` knows of the other.

use crate::db::MaybeRetryable;
use crate::db::book::BookFailure;
use crate::db::bookings::BookingError;
use crate::db::failure::{self, Failure};
use crate::error::{Error, ErrorCode, Result};

impl From<sqlx::Error> for Error {
    /// Constraint violations that no call site mapped still answer `409`;
    /// an unreachable database, or a statement or lock wait that ran out of
    /// time, answers `503`.
    fn from(error: sqlx::Error) -> Self {
        match failure::classify(&error) {
            Failure::ConnectionLost => Error::DatabaseUnavailable {
                error,
                connection_lost: true,
            },
            Failure::PoolUnavailable | Failure::TimedOut | Failure::LockUnavailable => {
                Error::DatabaseUnavailable {
                    error,
                    connection_lost: false,
                }
            }
            Failure::Overlap => Error::conflict(
                ErrorCode::RoomAlreadyBooked,
                "the room is already booked for these nights",
            ),
            Failure::Duplicate => Error::conflict(
                ErrorCode::AlreadyExists,
                "a resource with this name already exists",
            ),
            Failure::Referenced => Error::conflict(
                ErrorCode::InUse,
                "the resource is referenced by other resources (such as bookings)",
            ),
            // Deadlocks and serialization failures (that outlived the retries
            // of their transaction, or are yet to be retried by its runner).
            Failure::Contention => Error::Contention(error),
            Failure::Other => Error::Database(error),
        }
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

impl From<BookingError> for Error {
    fn from(error: BookingError) -> Self {
        match error {
            BookingError::Refused(refusal) => refusal.into(),
            BookingError::Database(error) => error.into(),
        }
    }
}

impl From<BookFailure> for Error {
    fn from(failure: BookFailure) -> Self {
        match failure {
            BookFailure::Unavailable => Error::Unavailable,
            BookFailure::Database(error) => error.into(),
            BookFailure::Shared(text) => Error::Internal(text),
        }
    }
}

impl MaybeRetryable for Error {
    fn database_error(&self) -> Option<&sqlx::Error> {
        match self {
            Error::Contention(error) | Error::Database(error) => Some(error),
            Error::DatabaseUnavailable { error, .. } => Some(error),
            _ => None,
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
        failure::constraint(self)
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
