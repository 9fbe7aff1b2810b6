//! Domain types shared by handlers and the database layer: roles, booking
//! statuses, dates in the seed format, names and pagination.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What a user may do; stored as the `user_role` enum. Ordered: each role
/// may do what the one before it may.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize, sqlx::Type,
)]
#[sqlx(type_name = "user_role", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum Role {
    #[default]
    Guest,
    Staff,
    Admin,
}

/// A booking's life cycle, stored as the `booking_status` enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[sqlx(type_name = "booking_status", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum BookingStatus {
    Confirmed,
    CheckedIn,
    CheckedOut,
    Cancelled,
    NoShow,
}

impl BookingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BookingStatus::Confirmed => "confirmed",
            BookingStatus::CheckedIn => "checked_in",
            BookingStatus::CheckedOut => "checked_out",
            BookingStatus::Cancelled => "cancelled",
            BookingStatus::NoShow => "no_show",
        }
    }

    /// The transitions of the life cycle: `confirmed` to `checked_in`,
    /// `cancelled` or `no_show`; `checked_in` to `checked_out`.
    pub fn can_become(self, next: BookingStatus) -> bool {
        use BookingStatus::*;
        matches!(
            (self, next),
            (Confirmed, CheckedIn | Cancelled | NoShow) | (CheckedIn, CheckedOut)
        )
    }
}

/// The nights `[check_in, check_out)` of a stay; never empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stay {
    check_in: NaiveDate,
    check_out: NaiveDate,
}

impl Stay {
    /// The longest stay the API takes, in nights.
    pub const MAX_NIGHTS: i64 = 365;

    pub fn new(check_in: NaiveDate, check_out: NaiveDate) -> Result<Stay> {
        if check_out <= check_in {
            return Err(Error::invalid(
                "invalid_stay",
                "`check_out` must be after `check_in`",
            ));
        }
        if (check_out - check_in).num_days() > Self::MAX_NIGHTS {
            return Err(Error::invalid(
                "invalid_stay",
                format!("a stay is at most {} nights", Self::MAX_NIGHTS),
            ));
        }
        Ok(Stay {
            check_in,
            check_out,
        })
    }

    pub fn check_in(self) -> NaiveDate {
        self.check_in
    }

    pub fn check_out(self) -> NaiveDate {
        self.check_out
    }

    pub fn nights(self) -> i64 {
        (self.check_out - self.check_in).num_days()
    }

    /// As a PostgreSQL `daterange`.
    pub fn range(self) -> sqlx::postgres::types::PgRange<NaiveDate> {
        sqlx::postgres::types::PgRange::from(self.check_in..self.check_out)
    }
}

/// Parses a `YYYY-MM-DD` date of the API; anything else, or an impossible
/// date, is `422 invalid_date`. (chrono's `%Y` alone would also take signed and
/// five-digit years, beyond what PostgreSQL stores.)
pub fn parse_date(field: &str, text: &str) -> Result<NaiveDate> {
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
        .ok_or_else(|| {
            Error::invalid(
                "invalid_date",
                format!("`{field}` must be a date such as 2027-03-28, not `{text}`"),
            )
        })
}

/// Validates an IANA time zone name (`Europe/Paris`).
pub fn parse_timezone(name: &str) -> Result<chrono_tz::Tz> {
    name.parse().map_err(|_| {
        Error::invalid(
            "invalid_timezone",
            format!("`{name}` is not an IANA time zone"),
        )
    })
}

/// Today's date in a time zone.
pub fn today_in(zone: chrono_tz::Tz) -> NaiveDate {
    chrono::Utc::now().with_timezone(&zone).date_naive()
}

/// Validates an ISO 4217-shaped currency code (three capital letters).
pub fn parse_currency(code: &str) -> Result<String> {
    if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(code.to_owned())
    } else {
        Err(Error::validation(format!(
            "`{code}` is not a currency code such as EUR"
        )))
    }
}

/// Parses the date of `POST /book`: `dd.mm.yy`, `dd/mm/yy` or `YYYY-MM-DD`.
/// Two-digit years follow chrono's `%y`: 00-68 are 20xx, 69-99 are 19xx.
pub fn parse_seed_date(text: &str) -> Result<NaiveDate> {
    let text = text.trim();
    let parsed = match text.as_bytes() {
        [_, _, b'.', _, _, b'.', _, _] => NaiveDate::parse_from_str(text, "%d.%m.%y"),
        [_, _, b'/', _, _, b'/', _, _] => NaiveDate::parse_from_str(text, "%d/%m/%y"),
        [_, _, _, _, b'-', _, _, b'-', _, _] => NaiveDate::parse_from_str(text, "%Y-%m-%d"),
        _ => {
            return Err(Error::invalid(
                "invalid_date",
                format!("`{text}` is not a date in the form dd.mm.yy, dd/mm/yy or YYYY-MM-DD"),
            ));
        }
    };
    parsed.map_err(|_| Error::invalid("invalid_date", format!("`{text}` is not a valid date")))
}

/// Local times of day as `"14:00"`.
pub mod hh_mm {
    use chrono::NaiveTime;
    use serde::Serializer;

    use crate::error::{Error, Result};

    pub fn serialize<S: Serializer>(time: &NaiveTime, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&time.format("%H:%M"))
    }

    pub fn parse(field: &str, text: &str) -> Result<NaiveTime> {
        NaiveTime::parse_from_str(text, "%H:%M").map_err(|_| {
            Error::validation(format!(
                "`{field}` must be a time of day such as 14:00, not `{text}`"
            ))
        })
    }
}

/// Money as a decimal string with two places (`"129.00"`), whatever scale
/// the database hands back (a numeric zero comes back as `0`).
pub mod money {
    use rust_decimal::Decimal;
    use serde::Serializer;

    pub fn serialize<S: Serializer>(amount: &Decimal, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("{amount:.2}"))
    }

    pub mod option {
        use rust_decimal::Decimal;
        use serde::Serializer;

        pub fn serialize<S: Serializer>(
            amount: &Option<Decimal>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match amount {
                Some(amount) => super::serialize(amount, serializer),
                None => serializer.serialize_none(),
            }
        }
    }
}

/// A trimmed, non-empty name of at most [`Name::MAX_LEN`] characters.
pub struct Name;

impl Name {
    pub const MAX_LEN: usize = 100;

    pub fn parse(field: &str, value: &str) -> Result<String> {
        let value = value.trim();
        if value.is_empty() {
            return Err(Error::validation(format!("`{field}` must not be empty")));
        }
        if value.chars().count() > Self::MAX_LEN {
            return Err(Error::validation(format!(
                "`{field}` must be at most {} characters",
                Self::MAX_LEN
            )));
        }
        Ok(value.to_owned())
    }
}

/// `?page=1&per_page=20` of every list.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default)]
pub struct Pagination {
    pub page: i64,
    pub per_page: i64,
}

impl Default for Pagination {
    fn default() -> Self {
        Pagination {
            page: 1,
            per_page: 20,
        }
    }
}

impl Pagination {
    pub const MAX_PER_PAGE: i64 = 100;

    /// Checks the bounds and answers `(limit, offset)` for SQL.
    pub fn limit_offset(self) -> Result<(i64, i64)> {
        if self.page < 1 {
            return Err(Error::validation("`page` must be at least 1"));
        }
        if !(1..=Self::MAX_PER_PAGE).contains(&self.per_page) {
            return Err(Error::validation(format!(
                "`per_page` must be between 1 and {}",
                Self::MAX_PER_PAGE
            )));
        }
        let offset = (self.page - 1)
            .checked_mul(self.per_page)
            .ok_or_else(|| Error::validation("`page` is too large"))?;
        Ok((self.per_page, offset))
    }
}

/// One page of a list: `{"items", "page", "per_page", "total"}`.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub page: i64,
    pub per_page: i64,
    pub total: i64,
}

impl<T> Page<T> {
    pub fn new(pagination: Pagination, items: Vec<T>, total: i64) -> Self {
        Page {
            items,
            page: pagination.page,
            per_page: pagination.per_page,
            total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid test date")
    }

    #[test]
    fn status_transitions_follow_the_life_cycle() {
        use BookingStatus::*;
        let all = [Confirmed, CheckedIn, CheckedOut, Cancelled, NoShow];
        let allowed: Vec<_> = all
            .iter()
            .flat_map(|&a| all.iter().map(move |&b| (a, b)))
            .filter(|(a, b)| a.can_become(*b))
            .collect();
        assert_eq!(
            allowed,
            [
                (Confirmed, CheckedIn),
                (Confirmed, Cancelled),
                (Confirmed, NoShow),
                (CheckedIn, CheckedOut)
            ]
        );
    }

    #[test]
    fn api_dates_are_plain_iso_dates() {
        assert_eq!(parse_date("d", "2027-03-28").ok(), Some(date(2027, 3, 28)));
        for text in [
            "-5000-01-01",
            "+99999-01-01",
            "2027-3-28",
            "2027-02-30",
            "28.03.2027",
            "",
        ] {
            assert!(parse_date("d", text).is_err(), "{text} should be refused");
        }
    }

    #[test]
    fn a_stay_has_at_least_one_night() {
        assert!(Stay::new(date(2027, 1, 2), date(2027, 1, 2)).is_err());
        assert!(Stay::new(date(2027, 1, 3), date(2027, 1, 2)).is_err());
        assert_eq!(
            Stay::new(date(2027, 1, 2), date(2027, 1, 5))
                .map(Stay::nights)
                .ok(),
            Some(3)
        );
    }

    #[test]
    fn seed_dates_in_all_three_forms() {
        assert_eq!(parse_seed_date("24.11.26").ok(), Some(date(2026, 11, 24)));
        assert_eq!(parse_seed_date("24/11/26").ok(), Some(date(2026, 11, 24)));
        assert_eq!(parse_seed_date("2026-11-24").ok(), Some(date(2026, 11, 24)));
        assert_eq!(parse_seed_date("01.01.68").ok(), Some(date(2068, 1, 1)));
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
        ] {
            assert!(parse_seed_date(text).is_err(), "{text} should be refused");
        }
        assert_eq!(parse_seed_date("29.02.28").ok(), Some(date(2028, 2, 29)));
    }
}
