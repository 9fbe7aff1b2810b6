//! The business: what a hotel, a room, a user, a booking and a price are, and
//! the rules they obey (stays, the past, the horizon, capacity, pricing,
//! cancellation fees, the life cycle). Plain types and functions, no HTTP and
//! no SQL: handlers and `db` both speak them.

pub mod booking;
pub mod inventory;
pub mod pricing;
pub mod values;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

pub use booking::{Booking, BookingStatus, Invoice, InvoiceLine, InvoiceStatus, Stay};
pub use inventory::{DailyRate, Hotel, HotelOffer, RatePlan, Room, RoomType};
pub use pricing::Pricing;

/// What a user may do; stored as the `user_role` enum. Ordered: each role
/// may do what the one before it may.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Default,
    Serialize,
    Deserialize,
    ToSchema,
    sqlx::Type,
)]
#[sqlx(type_name = "user_role", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum Role {
    #[default]
    Guest,
    Staff,
    Admin,
}

/// A user as the service knows it (never with its password hash).
#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub name: String,
    pub email: Option<String>,
    pub role: Role,
}

/// Why the business rules refuse a request. Each names what a client can fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("`check_out` must be after `check_in`")]
    InvalidStay,
    #[error("a stay is at most {max} nights")]
    StayTooLong { max: i64 },
    #[error("{date} is before today ({today}) in the hotel's time zone")]
    InPast { date: NaiveDate, today: NaiveDate },
    #[error("{date} is more than {days} days ahead (the booking horizon)")]
    BeyondHorizon { date: NaiveDate, days: i64 },
    #[error("this room type holds at most {capacity} guests")]
    OverCapacity { capacity: i32 },
    #[error("no rate for the night of {night}")]
    RateMissing { night: NaiveDate },
    #[error("the nights of this stay are priced in different currencies")]
    MixedCurrencies,
    #[error("the total of this stay would exceed {}", pricing::MAX_AMOUNT)]
    TotalTooLarge,
    #[error("the hotel, room type, room or rate plan does not exist, or is not of that hotel")]
    UnknownInventory,
    #[error("the room type does not exist or is not of the booking's hotel")]
    UnknownRoomType,
    #[error("the user does not exist")]
    UnknownUser,
    #[error("a guest may hold at most {max} live bookings")]
    TooManyLiveBookings { max: i64 },
    #[error("a guest may book at most {max} nights per stay")]
    TooManyNights { max: i64 },
    #[error("no room of this type is free for these nights")]
    NoRoomFree,
    #[error("only a confirmed booking can be changed")]
    NotChangeable,
    #[error("a {} booking cannot become {}", from.as_str(), to.as_str())]
    InvalidTransition {
        from: BookingStatus,
        to: BookingStatus,
    },
    #[error("the stay begins on {check_in}; today is {today} at the hotel")]
    TooEarly {
        check_in: NaiveDate,
        today: NaiveDate,
    },
}

/// Parses a `YYYY-MM-DD` date of the API. (chrono's `%Y` alone would also
/// take signed and five-digit years, beyond what PostgreSQL stores.)
pub fn parse_iso_date(text: &str) -> Option<NaiveDate> {
    let shaped = text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    shaped
        .then(|| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok())
        .flatten()
}

/// Parses the date of `POST /book`: `dd.mm.yy`, `dd/mm/yy` or `YYYY-MM-DD`.
/// Two-digit years follow chrono's `%y`: 00-68 are 20xx, 69-99 are 19xx.
pub fn parse_seed_date(text: &str) -> Option<NaiveDate> {
    let text = text.trim();
    match text.as_bytes() {
        [_, _, b'.', _, _, b'.', _, _] => NaiveDate::parse_from_str(text, "%d.%m.%y").ok(),
        [_, _, b'/', _, _, b'/', _, _] => NaiveDate::parse_from_str(text, "%d/%m/%y").ok(),
        [_, _, _, _, b'-', _, _, b'-', _, _] => parse_iso_date(text),
        _ => None,
    }
}

/// An IANA time zone name (`Europe/Paris`) that chrono-tz knows.
pub fn parse_timezone(name: &str) -> Option<chrono_tz::Tz> {
    name.parse().ok()
}

/// Today's date in a time zone.
pub fn today_in(zone: chrono_tz::Tz) -> NaiveDate {
    chrono::Utc::now().with_timezone(&zone).date_naive()
}

/// Today at a hotel of time zone `timezone`. Its zone was checked when the
/// hotel was written, by chrono-tz and by PostgreSQL; an unknown one
/// (impossible) counts as UTC.
pub fn hotel_today(timezone: &str) -> NaiveDate {
    today_in(parse_timezone(timezone).unwrap_or(chrono_tz::UTC))
}

/// An ISO 4217-shaped currency code (three capital letters).
pub fn is_currency(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase())
}

/// A trimmed, non-empty name of at most [`Name::MAX_LEN`] characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(String);

impl Name {
    pub const MAX_LEN: usize = 100;

    /// Why a name is refused, for the client.
    pub fn parse(value: &str) -> Result<Name, String> {
        let value = value.trim();
        if value.is_empty() {
            return Err("must not be empty".into());
        }
        if value.chars().count() > Self::MAX_LEN {
            return Err(format!("must be at most {} characters", Self::MAX_LEN));
        }
        if value.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        Ok(Name(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Rows `offset .. offset + limit` of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub limit: i64,
    pub offset: i64,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A date for the domain's tests.
    pub(crate) fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid test date")
    }

    #[test]
    fn api_dates_are_plain_iso_dates() {
        assert_eq!(parse_iso_date("2027-03-28"), Some(date(2027, 3, 28)));
        for text in [
            "-5000-01-01",
            "+99999-01-01",
            "2027-3-28",
            "2027-02-30",
            "28.03.2027",
            "",
        ] {
            assert!(parse_iso_date(text).is_none(), "{text} should be refused");
        }
    }

    #[test]
    fn seed_dates_in_all_three_forms() {
        assert_eq!(parse_seed_date("24.11.26"), Some(date(2026, 11, 24)));
        assert_eq!(parse_seed_date("24/11/26"), Some(date(2026, 11, 24)));
        assert_eq!(parse_seed_date("2026-11-24"), Some(date(2026, 11, 24)));
        assert_eq!(parse_seed_date("01.01.68"), Some(date(2068, 1, 1)));
    }

    #[test]
    fn impossible_and_odd_dates_are_refused() {
        for text in [
            "31.02.26",
            "29.02.27",
            "00.01.26",
            "1.2.26",
            "24-11-26",
            "2026/11/24",
            "",
            "24.11.2026",
            "+002-11-24",
        ] {
            assert!(parse_seed_date(text).is_none(), "{text} should be refused");
        }
        assert_eq!(parse_seed_date("29.02.28"), Some(date(2028, 2, 29)));
    }

    #[test]
    fn names_are_trimmed_bounded_and_printable() {
        assert_eq!(
            Name::parse("  Ritz ").map(Name::into_string),
            Ok("Ritz".into())
        );
        assert!(Name::parse("   ").is_err());
        assert!(Name::parse(&"x".repeat(101)).is_err());
        assert!(Name::parse("a\u{0}b").is_err());
        assert!(Name::parse("a\nb").is_err());
    }

    #[test]
    fn currencies_are_three_capitals() {
        assert!(is_currency("EUR"));
        assert!(!is_currency("eur"));
        assert!(!is_currency("EURO"));
    }
}
