//! HTTP in, HTTP out: extract, validate into domain types, call one `db`
//! function, shape the answer. No SQL here.

pub mod auth;
pub mod book;
pub mod bookings;
pub mod health;
pub mod hotels;
pub mod rooms;
pub mod users;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::Error;
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

/// Names what a refused delete was about.
fn in_use(what: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |error| match Error::from(error) {
        Error::Conflict { code: "in_use", .. } => Error::conflict(
            "in_use",
            format!("the {what} is referenced by bookings (or rooms) and cannot be deleted"),
        ),
        other => other,
    }
}
