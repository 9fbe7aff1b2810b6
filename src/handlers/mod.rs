//! HTTP in, HTTP out: extract, validate into domain types, call one `db`
//! function, shape the answer. No SQL here. The wire types (what clients
//! send and receive, with their OpenAPI schemas) live beside their handlers.

pub mod auth;
pub mod book;
pub mod bookings;
pub mod health;
pub mod hotels;
pub mod idempotency;
pub mod rooms;
pub mod users;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::{Name, Stay, Window, parse_iso_date};
use crate::error::{Error, ErrorCode, Result};
use crate::extract::Json;

/// `201 Created` with a `Location` header and the created resource.
fn created<T: Serialize>(location: String, body: T) -> Response {
    (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response()
}

/// `?page=1&per_page=20` of every list.
#[derive(Debug, Clone, Copy, Deserialize, IntoParams)]
#[serde(default)]
#[into_params(parameter_in = Query)]
pub struct Pagination {
    /// The page, from 1.
    #[param(minimum = 1, default = 1)]
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

    /// Checks the bounds: the rows of the page.
    pub fn window(self) -> Result<Window> {
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
            .filter(|offset| *offset <= i64::from(i32::MAX))
            .ok_or_else(|| Error::validation("`page` is too large"))?;
        Ok(Window {
            limit: self.per_page,
            offset,
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
    match guests.unwrap_or(1) {
        guests @ 1..=100 => Ok(guests),
        _ => Err(Error::validation("`guests` must be between 1 and 100")),
    }
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

impl From<crate::db::bookings::BookingError> for Error {
    fn from(error: crate::db::bookings::BookingError) -> Self {
        match error {
            crate::db::bookings::BookingError::Refused(refusal) => refusal.into(),
            crate::db::bookings::BookingError::Database(error) => error.into(),
        }
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
