//! `POST /book`: the seed-compatible booking of one night (SPEC 4.1).

use axum::extract::State;
use axum::response::Response;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::created;
use crate::AppState;
use crate::auth::TokenClaims;
use crate::db::book::{NightBooking, book_night};
use crate::domain::{BookingStatus, parse_seed_date};
use crate::error::{Error, Result};
use crate::extract::Json;

#[derive(Debug, Deserialize)]
pub struct BookNight {
    pub room_name: String,
    pub user_name: String,
    /// `dd.mm.yy`, `dd/mm/yy` or `YYYY-MM-DD`.
    pub date: String,
}

#[derive(Debug, Serialize)]
pub struct BookedNight {
    pub id: Uuid,
    pub room_name: String,
    pub user_name: String,
    pub date: NaiveDate,
    pub status: BookingStatus,
}

pub async fn book(
    State(state): State<AppState>,
    TokenClaims(caller): TokenClaims,
    Json(request): Json<BookNight>,
) -> Result<Response> {
    let night = parse_seed_date(&request.date)?;
    match book_night(
        &state.pool,
        &request.room_name,
        &request.user_name,
        night,
        caller.sub,
    )
    .await?
    {
        NightBooking::Booked { id, status } => Ok(created(
            format!("/bookings/{id}"),
            BookedNight {
                id,
                room_name: request.room_name,
                user_name: request.user_name,
                date: night,
                status,
            },
        )),
        NightBooking::UnknownRoom => Err(Error::not_found(format!(
            "no room named `{}`",
            request.room_name
        ))),
        NightBooking::UnknownUser => Err(Error::not_found(format!(
            "no user named `{}`",
            request.user_name
        ))),
        NightBooking::Past { today } => Err(Error::invalid(
            "date_in_past",
            format!("{night} is before today ({today}) in the hotel's time zone"),
        )),
        NightBooking::UnknownCaller => Err(Error::Unauthorized),
        NightBooking::NotYours => Err(Error::Forbidden),
        NightBooking::Taken => Err(Error::conflict(
            "room_already_booked",
            format!("room `{}` is already booked on {night}", request.room_name),
        )),
    }
}
