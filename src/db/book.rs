//! The seed-compatible booking of one night by room and user name.

use chrono::NaiveDate;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::BookingStatus;

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
}

/// Books `night` of room `room_name` (default hotel) for `user_name`, in one
/// statement and one round trip (`book.sql`).
pub async fn book_night(
    pool: &PgPool,
    room_name: &str,
    user_name: &str,
    night: NaiveDate,
) -> sqlx::Result<NightBooking> {
    let row = sqlx::query_file!("src/db/book.sql", room_name, user_name, night)
        .fetch_one(pool)
        .await?;
    Ok(
        match (
            row.room_id,
            row.user_id,
            row.today,
            row.booking_id,
            row.status,
        ) {
            (_, _, _, Some(id), Some(status)) => NightBooking::Booked { id, status },
            (None, ..) => NightBooking::UnknownRoom,
            (_, None, ..) => NightBooking::UnknownUser,
            (_, _, Some(today), ..) if night < today => NightBooking::Past { today },
            _ => NightBooking::Taken,
        },
    )
}
