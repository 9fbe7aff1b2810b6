//! The values a client writes, each a type that can only hold what the
//! rules allow: a head count, a free-cancellation window, a city, a hotel's
//! time zone, a time of day. Each `parse` says why a value is refused, in
//! words for the client; the handler names the field.

use std::str::FromStr;

use chrono::NaiveTime;
use rust_decimal::Decimal;

use super::Name;

/// How many guests a room type sleeps or a stay is for: 1 to 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guests(i32);

impl Guests {
    pub const MAX: i32 = 100;

    pub fn parse(count: i32) -> Result<Guests, String> {
        if (1..=Self::MAX).contains(&count) {
            Ok(Guests(count))
        } else {
            Err(format!("must be between 1 and {}", Self::MAX))
        }
    }

    pub fn get(self) -> i32 {
        self.0
    }
}

/// Hours before check-in until which a rate plan cancels for free: 0 to a year.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CancellationHours(i32);

impl CancellationHours {
    pub const MAX: i32 = 24 * 365;

    pub fn parse(hours: i32) -> Result<CancellationHours, String> {
        if (0..=Self::MAX).contains(&hours) {
            Ok(CancellationHours(hours))
        } else {
            Err(format!("must be between 0 and {}", Self::MAX))
        }
    }

    pub fn get(self) -> i32 {
        self.0
    }
}

/// A hotel's city: empty, or a [`Name`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct City(String);

impl City {
    pub fn parse(text: &str) -> Result<City, String> {
        if text.trim().is_empty() {
            return Ok(City(String::new()));
        }
        Name::parse(text).map(|name| City(name.into_string()))
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A hotel's time zone: an IANA zone chrono-tz knows, named Area/Location,
/// or `UTC`. PostgreSQL reads a name without a `/` as an abbreviation first
/// when it is one: `CET`, `EET`, `MET` and `WET` are zones with summer time
/// for chrono-tz but fixed offsets in SQL, and the hotel's instants would
/// then differ by an hour between the two. (PostgreSQL checks it again on
/// write.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HotelZone(String);

impl HotelZone {
    pub fn parse(name: &str) -> Result<HotelZone, String> {
        let zone = super::parse_timezone(name)
            .ok_or_else(|| format!("`{name}` is not an IANA time zone"))?;
        if name != "UTC" && !name.contains('/') {
            return Err(format!(
                "`{name}` is not an Area/Location time zone (such as Europe/Paris) or UTC; \
                 PostgreSQL reads some such names, like CET, as fixed offsets without summer time"
            ));
        }
        Ok(HotelZone(zone.name().to_owned()))
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A local time of day, `HH:MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeOfDay(NaiveTime);

impl TimeOfDay {
    pub fn parse(text: &str) -> Result<TimeOfDay, String> {
        NaiveTime::parse_from_str(text, "%H:%M")
            .map(TimeOfDay)
            .map_err(|_| format!("must be a time of day such as 14:00, not `{text}`"))
    }

    pub fn get(self) -> NaiveTime {
        self.0
    }
}

/// A nightly price as the API writes it: 1 to 10 digits, then optionally a
/// point and 1 or 2 digits (`^[0-9]{1,10}(\.[0-9]{1,2})?$`, the pattern the
/// OpenAPI document gives). No sign, exponent, separator or bare point.
pub fn parse_price(text: &str) -> Result<Decimal, String> {
    let (whole, cents) = match text.split_once('.') {
        Some((whole, cents)) => (whole, Some(cents)),
        None => (text, None),
    };
    let digits = |part: &str, most: usize| {
        (1..=most).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_digit())
    };
    if !digits(whole, 10) || !cents.is_none_or(|cents| digits(cents, 2)) {
        return Err(format!(
            "must be an amount such as 129.00 (up to 10 digits, then up to 2 decimals), not `{text}`"
        ));
    }
    Decimal::from_str(text).map_err(|error| format!("`{text}`: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_counts_and_windows_are_bounded() {
        assert_eq!(Guests::parse(1).map(Guests::get), Ok(1));
        assert_eq!(Guests::parse(100).map(Guests::get), Ok(100));
        assert!(Guests::parse(0).is_err() && Guests::parse(101).is_err());
        assert_eq!(
            CancellationHours::parse(0).map(CancellationHours::get),
            Ok(0)
        );
        assert!(CancellationHours::parse(8760).is_ok());
        assert!(CancellationHours::parse(-1).is_err() && CancellationHours::parse(8761).is_err());
    }

    #[test]
    fn a_city_may_be_empty_but_is_otherwise_a_name() {
        assert_eq!(City::parse("  ").map(City::into_string), Ok(String::new()));
        assert_eq!(
            City::parse(" Paris ").map(City::into_string),
            Ok("Paris".into())
        );
        assert!(City::parse("a\u{0}b").is_err());
    }

    #[test]
    fn zones_are_area_location_or_utc() {
        assert_eq!(
            HotelZone::parse("Europe/Paris").map(HotelZone::into_string),
            Ok("Europe/Paris".into())
        );
        assert!(HotelZone::parse("UTC").is_ok());
        assert!(HotelZone::parse("CET").is_err());
        assert!(HotelZone::parse("Mars/Olympus").is_err());
    }

    #[test]
    fn prices_are_plain_decimals() {
        assert_eq!(parse_price("129.00"), Ok(Decimal::new(12900, 2)));
        assert_eq!(parse_price("0"), Ok(Decimal::ZERO));
        assert!(parse_price("9999999999.99").is_ok());
        for text in [
            "1_0.0_5",
            "1e5",
            "+5",
            ".5",
            "-0",
            "5.",
            "1.234",
            "12345678901",
            "",
            " 5",
            "٥",
        ] {
            assert!(parse_price(text).is_err(), "{text}");
        }
    }

    #[test]
    fn times_of_day_are_hours_and_minutes() {
        assert!(TimeOfDay::parse("14:00").is_ok());
        assert!(TimeOfDay::parse("24:00").is_err());
        assert!(TimeOfDay::parse("2pm").is_err());
    }
}
