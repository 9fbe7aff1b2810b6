//! The seed-compatible booking of one night by room and user name.

use std::sync::Arc;

use chrono::NaiveDate;
use deadpool::managed::{Metrics, RecycleResult};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

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

/// The caller of a `POST /book`, as its token says.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub id: Uuid,
    pub token_version: i32,
}

/// Books `night` of room `room_name` (default hotel) for `user_name`, in one
/// statement and one round trip (`book.sql`).
pub async fn book_night(
    conn: &mut PgConnection,
    room_name: &str,
    user_name: &str,
    night: NaiveDate,
    caller: Caller,
    limits: &BookingLimits,
) -> sqlx::Result<NightBooking> {
    let horizon = i32::try_from(limits.horizon_days).unwrap_or(i32::MAX);
    let row = sqlx::query_file!(
        "src/db/book.sql",
        room_name,
        user_name,
        night,
        caller.id,
        horizon,
        limits.guest_live_bookings,
        caller.token_version
    )
    .fetch_one(conn)
    .await?;
    if let (Some(id), Some(status)) = (row.booking_id, row.status) {
        return Ok(NightBooking::Booked { id, status });
    }
    Ok(
        match (row.caller_role, row.room_id, row.user_id, row.today) {
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
            _ if row.within_limit == Some(false) => NightBooking::GuestLimit,
            _ => NightBooking::Taken,
        },
    )
}

/// The connections of `POST /book` without an `Idempotency-Key`: one
/// statement each, in autocommit, so a connection is clean again as soon as
/// its answer is read. sqlx's pool tests every connection it takes back with
/// a round trip of its own (a `Sync` and its `ReadyForQuery`), which would
/// make each booking two round trips; these connections go back untested,
/// and, like the pool's, are pinged before their next use only when a
/// connection error was seen since they were last taken (a query cut short by
/// the request timeout is drained by the next query on its connection).
/// Anything that opens a transaction stays on the pool, whose test on return
/// also sends a dropped transaction's `ROLLBACK` at once.
pub type BookPool = deadpool::managed::Pool<BookConnections>;

/// Opens [`BookPool`]'s connections as the pool opens its own.
pub struct BookConnections {
    options: Arc<PgConnectOptions>,
}

impl deadpool::managed::Manager for BookConnections {
    type Type = PgConnection;
    type Error = sqlx::Error;

    async fn create(&self) -> sqlx::Result<PgConnection> {
        PgConnection::connect_with(&self.options).await
    }

    async fn recycle(
        &self,
        conn: &mut PgConnection,
        metrics: &Metrics,
    ) -> RecycleResult<sqlx::Error> {
        if super::connection_error_since(metrics.recycled.unwrap_or(metrics.created)) {
            conn.ping().await?;
        }
        Ok(())
    }
}

/// A [`BookPool`] beside `pool`: the same connection options (its
/// `statement_timeout` included), as many connections, the same acquire timeout.
pub fn book_pool(pool: &PgPool) -> BookPool {
    let options = pool.options();
    let builder = BookPool::builder(BookConnections {
        options: pool.connect_options(),
    })
    .max_size(options.get_max_connections() as usize)
    .wait_timeout(Some(options.get_acquire_timeout()))
    .create_timeout(Some(options.get_acquire_timeout()))
    .runtime(deadpool::Runtime::Tokio1);
    match builder.build() {
        Ok(pool) => pool,
        // Only a timeout without a runtime fails, and the runtime is set above.
        Err(error) => unreachable!("{error}"),
    }
}

/// Closes the idle connections of `pool` (a `Terminate` each) and refuses
/// further ones; connections in use are dropped when they come back.
pub async fn close_book_pool(pool: &BookPool) {
    let idle = pool.retain(|_, _| false).removed;
    pool.close();
    for conn in idle {
        let _ = conn.close().await;
    }
}
