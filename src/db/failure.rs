//! What a database error means: the one place that knows PostgreSQL's
//! SQLSTATE codes and this schema's constraint names. Callers above `db`
//! tell errors apart with [`classify`] and the constants here, never by
//! codes or names of their own.

/// The constraints whose violations callers map to an answer of their own.
pub mod constraints {
    /// Two live bookings of one room whose stays overlap (SPEC 3).
    pub const BOOKINGS_NO_OVERLAP: &str = "bookings_no_overlap";
    pub const USER_NAME_TAKEN: &str = "users_name_key";
    pub const ROOM_NAME_TAKEN: &str = "rooms_hotel_id_name_key";
    pub const ROOM_TYPE_NAME_TAKEN: &str = "room_types_hotel_id_name_key";
    pub const RATE_PLAN_NAME_TAKEN: &str = "rate_plans_hotel_id_name_key";
    pub const HOTEL_TIMEZONE_KNOWN: &str = "hotels_timezone_known";
    pub const BOOKING_OF_ROOM: &str = "bookings_room_id_fkey";
    pub const BOOKING_OF_USER: &str = "bookings_user_id_fkey";
    pub const BOOKING_OF_RATE_PLAN: &str = "bookings_rate_plan_id_fkey";
    pub const ROOM_OF_ROOM_TYPE: &str = "rooms_room_type_id_hotel_id_fkey";
}

/// The kinds of database error that callers answer differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The connection or the server is gone (or going): it may work again
    /// on a new connection.
    ConnectionLost,
    /// No connection of the pool was had in time, or the pool is closed.
    PoolUnavailable,
    /// The statement ran into `statement_timeout` (`57014`).
    TimedOut,
    /// A lock was not had within `lock_timeout` (`55P03`).
    LockUnavailable,
    /// An exclusion constraint (`23P01`): an overlapping booking.
    Overlap,
    /// A unique constraint (`23505`).
    Duplicate,
    /// A foreign key (`23503`): the row is referenced, or refers to none.
    Referenced,
    /// A deadlock (`40P01`) or a serialization failure (`40001`).
    Contention,
    /// Anything else: a fault, never the client's.
    Other,
}

/// What `error` means.
pub fn classify(error: &sqlx::Error) -> Failure {
    match error {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => Failure::PoolUnavailable,
        error if is_connection_error(error) => Failure::ConnectionLost,
        sqlx::Error::Database(db) => match db.code().as_deref() {
            Some("23P01") => Failure::Overlap,
            Some("23505") => Failure::Duplicate,
            Some("23503") => Failure::Referenced,
            Some("57014") => Failure::TimedOut,
            Some("55P03") => Failure::LockUnavailable,
            Some("40P01" | "40001") => Failure::Contention,
            _ => Failure::Other,
        },
        _ => Failure::Other,
    }
}

/// Whether a database error means the connection or the server is gone (or
/// going), or no connection was had: such a request may succeed when
/// retried.
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

/// Whether PostgreSQL aborted a transaction that may succeed when run again:
/// a deadlock (`40P01`), a serialization failure (`40001`), or a lock not
/// had within `lock_timeout` (`55P03`).
pub fn is_retryable(error: &sqlx::Error) -> bool {
    matches!(
        classify(error),
        Failure::Contention | Failure::LockUnavailable
    )
}

/// Whether the table a statement read does not exist (`42P01`).
pub fn is_undefined_table(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.code().as_deref() == Some("42P01"))
}

/// The constraint a database error names, if any.
pub fn constraint(error: &sqlx::Error) -> Option<&str> {
    match error {
        sqlx::Error::Database(db) => db.constraint(),
        _ => None,
    }
}
