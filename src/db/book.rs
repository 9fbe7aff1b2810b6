//! The seed-compatible booking of one night by room and user name.

use chrono::NaiveDate;
use sqlx::PgConnection;
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
