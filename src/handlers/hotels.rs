//! `/hotels` and `/hotels/{id}`: hotels themselves (the search is in
//! [`super::search`]), and what their sub-resources share.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::NaiveTime;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::database::ResultExt;
use super::{NameSchema, created, hh_mm, in_use, parse_name};
use crate::auth::{AuthUser, Staff};
use crate::db::failure::constraints;
use crate::db::hotels::{self, Deletion, HotelChange, NewHotel};
use crate::domain::Hotel;
use crate::domain::values::{City, HotelZone, TimeOfDay};
use crate::error::{Error, ErrorCode, Result};
use crate::extract::{Json, Path};
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module, each with its OpenAPI operation.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(get, update, delete))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HotelBody {
    pub id: Uuid,
    pub name: String,
    pub city: String,
    /// IANA time zone: Area/Location (such as `Europe/Paris`), or `UTC`.
    #[schema(example = "Europe/Paris")]
    pub timezone: String,
    #[serde(with = "hh_mm")]
    #[schema(value_type = String, example = "14:00")]
    pub check_in_time: NaiveTime,
    #[serde(with = "hh_mm")]
    #[schema(value_type = String, example = "11:00")]
    pub check_out_time: NaiveTime,
}

impl From<Hotel> for HotelBody {
    fn from(hotel: Hotel) -> Self {
        HotelBody {
            id: hotel.id,
            name: hotel.name,
            city: hotel.city,
            timezone: hotel.timezone,
            check_in_time: hotel.check_in_time,
            check_out_time: hotel.check_out_time,
        }
    }
}
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewHotelRequest {
    #[schema(value_type = NameSchema)]
    pub name: String,
    #[serde(default)]
    pub city: String,
    /// IANA time zone: Area/Location (such as `Europe/Paris`), or `UTC`.
    #[schema(example = "Europe/Paris")]
    pub timezone: String,
    /// Local time, default `14:00`.
    #[schema(example = "14:00")]
    pub check_in_time: Option<String>,
    /// Local time, default `11:00`.
    #[schema(example = "11:00")]
    pub check_out_time: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HotelChangeRequest {
    #[schema(value_type = Option<NameSchema>)]
    pub name: Option<String>,
    pub city: Option<String>,
    /// IANA time zone: Area/Location (such as `Europe/Paris`), or `UTC`.
    #[schema(example = "Europe/Paris")]
    pub timezone: Option<String>,
    #[schema(example = "15:00")]
    pub check_in_time: Option<String>,
    #[schema(example = "10:00")]
    pub check_out_time: Option<String>,
}

/// One hotel.
#[utoipa::path(
    get,
    path = "/hotels/{id}",
    tag = "hotels",
    security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "The hotel", body = HotelBody),
        (status = 404, description = "No such hotel"),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    _caller: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<HotelBody>> {
    Ok(Json(existing_hotel(&state, id).await?.into()))
}

/// Create a hotel (staff), with its default room type `Standard`.
#[utoipa::path(
    post,
    path = "/hotels",
    tag = "hotels",
    security(("bearer" = [])),
    request_body = NewHotelRequest,
    responses(
        (status = 201, description = "Created", body = HotelBody, headers(("location" = String, description = "/hotels/{id}"))),
        (status = 403, description = "Not staff"),
        (status = 422, description = "A bad name, time zone or time of day"),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    _: Staff,
    Json(hotel): Json<NewHotelRequest>,
) -> Result<Response> {
    let new_hotel = NewHotel {
        name: parse_name("name", &hotel.name)?,
        city: parse_city(&hotel.city)?,
        timezone: valid_timezone(&hotel.timezone)?,
        check_in_time: time_of_day(
            "check_in_time",
            hotel.check_in_time.as_deref().unwrap_or("14:00"),
        )?,
        check_out_time: time_of_day(
            "check_out_time",
            hotel.check_out_time.as_deref().unwrap_or("11:00"),
        )?,
    };
    let hotel = hotels::create_hotel(&state.pool, new_hotel)
        .await
        .on_constraint(constraints::HOTEL_TIMEZONE_KNOWN, unknown_timezone)?;
    Ok(created(
        format!("/hotels/{}", hotel.id),
        HotelBody::from(hotel),
    ))
}

/// Change a hotel (staff).
#[utoipa::path(
    patch,
    path = "/hotels/{id}",
    tag = "hotels",
    security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    request_body = HotelChangeRequest,
    responses(
        (status = 200, description = "The changed hotel", body = HotelBody),
        (status = 403, description = "Not staff"),
        (status = 404, description = "No such hotel"),
        (status = 422, description = "A bad name, time zone or time of day"),
        (status = 503, description = "A new time zone or time of day could not wait any longer for the bookings being written (`Retry-After`)"),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    _: Staff,
    Path(id): Path<Uuid>,
    Json(change): Json<HotelChangeRequest>,
) -> Result<Json<HotelBody>> {
    let change = HotelChange {
        name: change
            .name
            .as_deref()
            .map(|name| parse_name("name", name))
            .transpose()?,
        city: change.city.as_deref().map(parse_city).transpose()?,
        timezone: change.timezone.as_deref().map(valid_timezone).transpose()?,
        check_in_time: change
            .check_in_time
            .as_deref()
            .map(|time| time_of_day("check_in_time", time))
            .transpose()?,
        check_out_time: change
            .check_out_time
            .as_deref()
            .map(|time| time_of_day("check_out_time", time))
            .transpose()?,
    };
    let hotel = hotels::update_hotel(&state.pool, id, change, state.limits.hotel_change_lock_wait)
        .await
        .on_constraint(constraints::HOTEL_TIMEZONE_KNOWN, unknown_timezone)?
        .ok_or_else(|| hotel_not_found(id))?;
    Ok(Json(hotel.into()))
}

/// Delete a hotel and its inventory (staff); refused while bookings refer to it.
#[utoipa::path(
    delete,
    path = "/hotels/{id}",
    tag = "hotels",
    security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Not staff"),
        (status = 404, description = "No such hotel"),
        (status = 409, description = "Bookings refer to it (`in_use`), or it is the default hotel"),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    _: Staff,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    match hotels::delete_hotel(&state.pool, id)
        .await
        .on_constraint(constraints::BOOKING_OF_ROOM, in_use("hotel"))
        .on_constraint(constraints::BOOKING_OF_RATE_PLAN, in_use("hotel"))?
    {
        Deletion::Deleted => Ok(StatusCode::NO_CONTENT),
        Deletion::NotFound => Err(hotel_not_found(id)),
        Deletion::Default => Err(Error::conflict(
            ErrorCode::DefaultResource,
            "the default hotel cannot be deleted",
        )),
    }
}

/// The hotel of the path, or `404`.
pub(super) async fn existing_hotel(state: &AppState, id: Uuid) -> Result<Hotel> {
    hotels::find_hotel(&state.pool, id)
        .await?
        .ok_or_else(|| hotel_not_found(id))
}

pub(super) fn hotel_not_found(id: Uuid) -> Error {
    Error::not_found(format!("no hotel with id {id}"))
}

pub(super) fn name_taken(what: &str, of: &str) -> Error {
    Error::conflict(
        ErrorCode::AlreadyExists,
        format!("the {of} has a {what} of that name"),
    )
}

/// A city: empty, or a name.
fn parse_city(text: &str) -> Result<String> {
    City::parse(text)
        .map(City::into_string)
        .map_err(|why| Error::validation(format!("`city` {why}")))
}

/// A hotel's time zone (see [`HotelZone`]).
fn valid_timezone(name: &str) -> Result<String> {
    HotelZone::parse(name)
        .map(HotelZone::into_string)
        .map_err(|why| Error::invalid(ErrorCode::InvalidTimezone, why))
}

fn unknown_timezone() -> Error {
    Error::invalid(
        ErrorCode::InvalidTimezone,
        "the database does not know this time zone",
    )
}

fn time_of_day(field: &str, text: &str) -> Result<NaiveTime> {
    TimeOfDay::parse(text)
        .map(TimeOfDay::get)
        .map_err(|why| Error::validation(format!("`{field}` {why}")))
}
