//! HTTP in, HTTP out: extract, validate into domain types, call one `db`
//! function, shape the answer. No SQL here. The wire types (what clients
//! send and receive, with their OpenAPI schemas) live beside their handlers.

pub mod auth;
pub mod book;
pub mod bookings;
pub mod database;
pub mod health;
pub mod hotels;
pub mod rate_plans;
pub mod rates;
pub mod room_types;
pub mod rooms;
pub mod search;
pub mod users;

use std::borrow::Cow;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{IntoParams, ToSchema};

use crate::domain::values::Guests;
use crate::domain::{Name, Stay, Window, parse_iso_date};
use crate::error::{Error, ErrorCode, Result};
use crate::extract::Json;
use crate::metrics::BookingCreated;

/// `201 Created` with a `Location` header and the created resource.
fn created<T: Serialize>(location: String, body: T) -> Response {
    (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response()
}

/// [`created`] for a new booking, marked so that `/metrics` counts it
/// (`bookings_created_total`).
fn booked<T: Serialize>(location: String, body: T) -> Response {
    let mut response = created(location, body);
    response.extensions_mut().insert(BookingCreated);
    response
}

/// `?page=1&per_page=20` of every list.
#[derive(Debug, Clone, Copy, Deserialize, IntoParams)]
#[serde(default)]
#[into_params(parameter_in = Query)]
pub struct Pagination {
    /// The page, from 1 to 1,000,000.
    #[param(minimum = 1, maximum = 1_000_000, default = 1)]
    pub page: i64,
    /// Items per page, at most 100.
    #[param(minimum = 1, maximum = 100, default = 20)]
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
    /// Keeps every offset within what the database takes; the OpenAPI
    /// document states it, so a client can know which pages are valid.
    pub const MAX_PAGE: i64 = 1_000_000;

    /// Checks the bounds: the rows of the page.
    pub fn window(self) -> Result<Window> {
        if !(1..=Self::MAX_PAGE).contains(&self.page) {
            return Err(Error::validation(format!(
                "`page` must be between 1 and {}",
                Self::MAX_PAGE
            )));
        }
        if !(1..=Self::MAX_PER_PAGE).contains(&self.per_page) {
            return Err(Error::validation(format!(
                "`per_page` must be between 1 and {}",
                Self::MAX_PER_PAGE
            )));
        }
        Ok(Window {
            limit: self.per_page,
            offset: (self.page - 1) * self.per_page,
        })
    }
}

/// One page of a list: `{"items", "page", "per_page", "total"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub page: i64,
    pub per_page: i64,
    /// How many items the whole list has.
    pub total: i64,
}

impl<T> Page<T> {
    pub fn new<D>(pagination: Pagination, (items, total): (Vec<D>, i64)) -> Self
    where
        T: From<D>,
    {
        Page {
            items: items.into_iter().map(T::from).collect(),
            page: pagination.page,
            per_page: pagination.per_page,
            total,
        }
    }
}

/// The OpenAPI schema of a name ([`Name::parse`]): 1 to 100 characters once
/// trimmed of white space, none of them a control character. The pattern
/// says exactly that, with Rust's white space (`char::is_whitespace`) and
/// control characters (`char::is_control`), so that generated clients and
/// fuzzers know which names are valid.
pub struct NameSchema;

impl NameSchema {
    /// White space as `str::trim` removes it.
    const SPACE: &str = r"\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
    /// Control characters.
    const CONTROL: &str = r"\x00-\x1f\x7f-\x9f";

    pub fn pattern() -> String {
        let (space, control) = (Self::SPACE, Self::CONTROL);
        let visible = format!("[^{control}{space}]");
        let inner = Name::MAX_LEN - 2;
        format!("^[{space}]*{visible}(?:[^{control}]{{0,{inner}}}{visible})?[{space}]*$")
    }
}

impl utoipa::PartialSchema for NameSchema {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(Self::pattern()))
            .description(Some(format!(
                "1 to {} characters once trimmed of white space; no control characters",
                Name::MAX_LEN
            )))
            .into()
    }
}

impl ToSchema for NameSchema {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Name")
    }
}

/// Parses a `YYYY-MM-DD` date of the API; anything else is `422 invalid_date`.
fn parse_date(field: &str, text: &str) -> Result<NaiveDate> {
    parse_iso_date(text).ok_or_else(|| {
        Error::invalid(
            ErrorCode::InvalidDate,
            format!("`{field}` must be a date such as 2027-03-28, not `{text}`"),
        )
    })
}

/// `check_in` and `check_out` as a stay of at most `max_nights`.
fn parse_stay(check_in: &str, check_out: &str, max_nights: i64) -> Result<Stay> {
    let check_in = parse_date("check_in", check_in)?;
    let check_out = parse_date("check_out", check_out)?;
    Ok(Stay::within(check_in, check_out, max_nights)?)
}

/// A name field: trimmed, non-empty, bounded.
fn parse_name(field: &str, text: &str) -> Result<String> {
    Name::parse(text)
        .map(Name::into_string)
        .map_err(|why| Error::validation(format!("`{field}` {why}")))
}

/// `guests` between 1 and 100 (absent: 1).
fn parse_guests(guests: Option<i32>) -> Result<i32> {
    Guests::parse(guests.unwrap_or(1))
        .map(Guests::get)
        .map_err(|why| Error::validation(format!("`guests` {why}")))
}

/// Names what a refused delete was about.
fn in_use(what: &'static str) -> impl FnOnce() -> Error {
    move || {
        Error::conflict(
            ErrorCode::InUse,
            format!("the {what} is referenced by bookings (or rooms) and cannot be deleted"),
        )
    }
}

/// Integers of a JSON body as JSON Schema has them: `2` and `2.0` alike (a
/// whole number written with a fraction is still an integer); `2.5`, or one
/// out of range, is refused like any other value of the wrong type (`400`).
pub mod whole {
    use std::fmt;

    use serde::de::{self, Deserialize, Deserializer, Visitor};

    struct Whole(i32);

    impl<'de> Deserialize<'de> for Whole {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_i32(WholeVisitor)
        }
    }

    struct WholeVisitor;

    impl Visitor<'_> for WholeVisitor {
        type Value = Whole;

        fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
            formatter.write_str("an integer between -2147483648 and 2147483647")
        }

        fn visit_i64<E: de::Error>(self, value: i64) -> Result<Whole, E> {
            i32::try_from(value)
                .map(Whole)
                .map_err(|_| E::invalid_value(de::Unexpected::Signed(value), &self))
        }

        fn visit_u64<E: de::Error>(self, value: u64) -> Result<Whole, E> {
            i32::try_from(value)
                .map(Whole)
                .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(value), &self))
        }

        fn visit_f64<E: de::Error>(self, value: f64) -> Result<Whole, E> {
            let whole = value.fract() == 0.0
                && (f64::from(i32::MIN)..=f64::from(i32::MAX)).contains(&value);
            if whole {
                // Exact: a whole number within the range of i32.
                Ok(Whole(value as i32))
            } else {
                Err(E::invalid_value(de::Unexpected::Float(value), &self))
            }
        }
    }

    /// An optional integer (`#[serde(default, deserialize_with = "whole::option")]`).
    pub fn option<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i32>, D::Error> {
        Option::<Whole>::deserialize(deserializer).map(|value| value.map(|Whole(value)| value))
    }

    /// Absent (`None`, with `#[serde(default)]`), `null` (`Some(None)`) or an integer.
    pub fn double_option<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Option<i32>>, D::Error> {
        option(deserializer).map(Some)
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

/// Local times of day as `"14:00"`.
pub mod hh_mm {
    use chrono::NaiveTime;
    use serde::Serializer;

    pub fn serialize<S: Serializer>(time: &NaiveTime, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&time.format("%H:%M"))
    }
}
