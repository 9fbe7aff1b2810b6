//! The seed-compatible booking of one night by room and user name.

use chrono::NaiveDate;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::{BookingStatus, Role};

/// What became of a `POST /book`.
#[derive(Debug)]
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
    /// The room is already booked for that night.
    Taken,
    /// The caller's user no longer exists.
    UnknownCaller,
    /// A guest may book only for itself.
    NotYours,
}

/// Books `night` of room `room_name` (default hotel) for `user_name`, in one
/// statement and one round trip (`book.sql`).
pub async fn book_night(
    pool: &PgPool,
    room_name: &str,
    user_name: &str,
    night: NaiveDate,
    caller: Uuid,
) -> sqlx::Result<NightBooking> {
    let row = sqlx::query_file!("src/db/book.sql", room_name, user_name, night, caller)
        .fetch_one(pool)
        .await?;
    if let (Some(id), Some(status)) = (row.booking_id, row.status) {
        return Ok(NightBooking::Booked { id, status });
    }
    Ok(
        match (row.caller_role, row.room_id, row.user_id, row.today) {
            (None, ..) => NightBooking::UnknownCaller,
            (_, None, ..) => NightBooking::UnknownRoom,
            (_, _, None, _) => NightBooking::UnknownUser,
            (Some(Role::Guest), _, Some(user_id), _) if user_id != caller => NightBooking::NotYours,
            (_, _, _, Some(today)) if night < today => NightBooking::Past { today },
            _ => NightBooking::Taken,
        },
    )
}
