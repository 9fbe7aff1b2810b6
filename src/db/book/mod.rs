//! The seed-compatible booking of nights by room and user name, and the
//! queue that books keyless ones together when every connection is busy. The
//! queue answers what became of each night, or a [`BookFailure`]; the
//! handler makes the HTTP answer.

use std::time::{Duration, Instant};

use chrono::NaiveDate;
use deadpool::managed::PoolError;
use sqlx::PgConnection;
use uuid::Uuid;

mod pool;
mod queue;

pub use pool::{BookConnections, BookPool, book_pool, book_timeouts, close_book_pool};
pub use queue::{BookQueue, QueueCounts};

use super::{TRANSACTION_ATTEMPTS, in_transaction, is_retryable};
use crate::domain::booking::BookingLimits;
use crate::domain::{BookingStatus, Role};

/// What became of a `POST /book`.
#[derive(Debug, PartialEq, Eq)]
pub enum NightBooking {
    Booked {
        id: Uuid,
        status: BookingStatus,
    },
    UnknownRoom,
    UnknownUser,
    /// The night is before `today` in the hotel's time zone.
    Past {
        today: NaiveDate,
    },
    /// The night is beyond the booking horizon.
    BeyondHorizon {
        today: NaiveDate,
    },
    /// The room is already booked for that night.
    Taken,
    /// The caller's user no longer exists, or its token is from before a
    /// password or role change.
    UnknownCaller,
    /// A guest may book only for itself.
    NotYours,
    /// A guest holds as many live bookings as it may.
    GuestLimit,
}

/// Why the queue could not book a night.
#[derive(Debug)]
pub enum BookFailure {
    /// No connection in time, or the request waited too long for one.
    Unavailable,
    /// The night's statement failed.
    Database(sqlx::Error),
    /// The statement this night shared with others failed (the first of
    /// them has the error itself).
    Shared(String),
}

impl From<sqlx::Error> for BookFailure {
    fn from(error: sqlx::Error) -> Self {
        BookFailure::Database(error)
    }
}

impl From<PoolError<sqlx::Error>> for BookFailure {
    fn from(error: PoolError<sqlx::Error>) -> Self {
        match error {
            PoolError::Backend(error) => BookFailure::Database(error),
            PoolError::Timeout(_) => BookFailure::Database(sqlx::Error::PoolTimedOut),
            PoolError::Closed => BookFailure::Database(sqlx::Error::PoolClosed),
            other => BookFailure::Shared(other.to_string()),
        }
    }
}

/// The caller of a `POST /book`, as its token says.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub id: Uuid,
    pub token_version: i32,
}

/// One night a `POST /book` asks for.
#[derive(Debug, Clone)]
pub struct NightRequest {
    pub room_name: String,
    pub user_name: String,
    pub night: NaiveDate,
    pub caller: Caller,
}

/// What `book.sql` and `book_many.sql` found for one night (a row of either).
struct Found {
    room_id: Option<Uuid>,
    user_id: Option<Uuid>,
    today: Option<NaiveDate>,
    booking_id: Option<Uuid>,
    status: Option<BookingStatus>,
    caller_role: Option<Role>,
    within_limit: Option<bool>,
}

impl Found {
    fn outcome(self, request: &NightRequest, limits: &BookingLimits) -> NightBooking {
        let (night, caller) = (request.night, request.caller);
        if let (Some(id), Some(status)) = (self.booking_id, self.status) {
            return NightBooking::Booked { id, status };
        }
        match (self.caller_role, self.room_id, self.user_id, self.today) {
            (None, ..) => NightBooking::UnknownCaller,
            (_, None, ..) => NightBooking::UnknownRoom,
            (_, _, None, _) => NightBooking::UnknownUser,
            (Some(Role::Guest), _, Some(user_id), _) if user_id != caller.id => {
                NightBooking::NotYours
            }
            (_, _, _, Some(today)) if night < today => NightBooking::Past { today },
            (_, _, _, Some(today)) if (night - today).num_days() > limits.horizon_days => {
                NightBooking::BeyondHorizon { today }
            }
            _ if self.within_limit == Some(false) => NightBooking::GuestLimit,
            _ => NightBooking::Taken,
        }
    }
}

fn horizon(limits: &BookingLimits) -> i32 {
    i32::try_from(limits.horizon_days).unwrap_or(i32::MAX)
}

/// Books one night in one statement and one round trip (`book.sql`).
pub async fn book_night(
    conn: &mut PgConnection,
    request: &NightRequest,
    limits: &BookingLimits,
) -> sqlx::Result<NightBooking> {
    let found = sqlx::query_file_as!(
        Found,
        "src/db/book.sql",
        request.room_name,
        request.user_name,
        request.night,
        request.caller.id,
        horizon(limits),
        limits.guest_live_bookings,
        request.caller.token_version
    )
    .fetch_one(conn)
    .await?;
    Ok(found.outcome(request, limits))
}

/// [`book_night`] for a guest: in a transaction (a savepoint inside one)
/// that first locks the guest's user row, as `POST /bookings` does, so that
/// its live bookings are counted after every other booking of the guest has
/// committed or rolled back. Run again after a deadlock.
pub async fn book_guest_night(
    conn: &mut PgConnection,
    request: &NightRequest,
    limits: &BookingLimits,
) -> sqlx::Result<NightBooking> {
    let limits = *limits;
    in_transaction(conn, |tx| {
        let request = request.clone();
        Box::pin(async move {
            // A guest books only for itself: another name is `NotYours`
            // whether or not such a user exists, so that the answer tells
            // nothing of the names there are.
            let own = sqlx::query_scalar!(
                "select name from users where id = $1 for update",
                request.caller.id
            )
            .fetch_optional(&mut *tx)
            .await?;
            match own {
                Some(name) if name != request.user_name => Ok(NightBooking::NotYours),
                _ => book_night(tx, &request, &limits).await,
            }
        })
    })
    .await
}

/// [`book_night`] in autocommit, run again when its statement lost a
/// deadlock (it was rolled back whole; the other transaction has gone on),
/// up to [`TRANSACTION_ATTEMPTS`] times in all, as a transaction would be;
/// but only while the request that `arrived` is within its `wait` (see
/// [`book_timeouts`]): every statement starts within it and ends within the
/// statement timeout, so the booking never outlives its request.
pub(super) async fn book_alone(
    conn: &mut PgConnection,
    request: &NightRequest,
    limits: &BookingLimits,
    (arrived, wait): (Instant, Duration),
) -> sqlx::Result<NightBooking> {
    let mut attempt = 1;
    loop {
        match book_night(conn, request, limits).await {
            Err(error)
                if attempt < TRANSACTION_ATTEMPTS
                    && is_retryable(&error)
                    && arrived.elapsed() <= wait =>
            {
                tracing::info!(attempt, %error, "a booking lost a deadlock; running it again");
                attempt += 1;
            }
            booked => return booked,
        }
    }
}

/// Books the nights of `requests` in one statement and one round trip
/// (`book_many.sql`); each answer is the one `book_night` would give, as if
/// the requests had been booked one after the other.
pub async fn book_nights(
    conn: &mut PgConnection,
    requests: &[NightRequest],
    limits: &BookingLimits,
) -> sqlx::Result<Vec<NightBooking>> {
    let rooms: Vec<&str> = requests.iter().map(|r| r.room_name.as_str()).collect();
    let users: Vec<&str> = requests.iter().map(|r| r.user_name.as_str()).collect();
    let nights: Vec<NaiveDate> = requests.iter().map(|r| r.night).collect();
    let callers: Vec<Uuid> = requests.iter().map(|r| r.caller.id).collect();
    let versions: Vec<i32> = requests.iter().map(|r| r.caller.token_version).collect();
    let found = sqlx::query_file_as!(
        Found,
        "src/db/book_many.sql",
        &rooms as &[&str],
        &users as &[&str],
        &nights,
        &callers,
        horizon(limits),
        limits.guest_live_bookings,
        &versions
    )
    .fetch_all(conn)
    .await?;
    if found.len() != requests.len() {
        return Err(sqlx::Error::Protocol(format!(
            "book_many.sql answered {} rows for {} nights",
            found.len(),
            requests.len()
        )));
    }
    Ok(found
        .into_iter()
        .zip(requests)
        .map(|(found, request)| found.outcome(request, limits))
        .collect())
}
