//! `/hotels`: hotels, their room types, rate plans and daily rates, and the
//! availability search.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rust_decimal::Decimal;
use serde::Deserialize;
use uuid::Uuid;

use super::created;
use super::in_use;
use crate::AppState;
use crate::auth::AuthUser;
use crate::db::hotels::{
    self, DailyRate, Deletion, Hotel, HotelChange, NewHotel, RatePlan, RatesQuery, RatesUpsert,
    RoomType,
};
use crate::db::search::{self, RoomTypeAvailability};
use crate::domain::{
    Name, Page, Pagination, Role, Stay, hh_mm, parse_currency, parse_date, parse_timezone,
};
use crate::error::{Error, Result};
use crate::extract::{Json, Path, Query};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewHotelRequest {
    pub name: String,
    #[serde(default)]
    pub city: String,
    pub timezone: String,
    pub check_in_time: Option<String>,
    pub check_out_time: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HotelChangeRequest {
    pub name: Option<String>,
    pub city: Option<String>,
    pub timezone: Option<String>,
    pub check_in_time: Option<String>,
    pub check_out_time: Option<String>,
}

/// `GET /hotels`: the plain list, or with `check_in` and `check_out` the search.
#[derive(Debug, Deserialize)]
pub struct HotelQuery {
    pub city: Option<String>,
    pub check_in: Option<String>,
    pub check_out: Option<String>,
    pub guests: Option<i32>,
}

#[derive(Debug, Deserialize)]
pub struct AvailabilityQuery {
    pub check_in: String,
    pub check_out: String,
    pub guests: Option<i32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRoomType {
    pub name: String,
    #[serde(default = "default_capacity")]
    pub capacity: i32,
}

fn default_capacity() -> i32 {
    2
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomTypeChange {
    pub name: Option<String>,
    pub capacity: Option<i32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRatePlan {
    pub name: String,
    /// `null` or absent: non-refundable.
    pub free_cancellation_hours: Option<i32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatePlanChange {
    pub name: Option<String>,
    #[serde(default, with = "serde_with::rust::double_option")]
    pub free_cancellation_hours: Option<Option<i32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatesRequest {
    pub room_type_id: Uuid,
    pub rate_plan_id: Uuid,
    pub from: String,
    /// Exclusive.
    pub to: String,
    pub price: Decimal,
    pub currency: String,
}

#[derive(Debug, Deserialize)]
pub struct RatesListQuery {
    pub room_type_id: Option<Uuid>,
    pub rate_plan_id: Option<Uuid>,
    pub from: String,
    pub to: String,
}

pub async fn list(
    State(state): State<AppState>,
    Query(pagination): Query<Pagination>,
    Query(query): Query<HotelQuery>,
) -> Result<Response> {
    let (limit, offset) = pagination.limit_offset()?;
    match (query.check_in, query.check_out) {
        (None, None) => {
            let (items, total) =
                hotels::list_hotels(&state.pool, query.city.as_deref(), limit, offset).await?;
            Ok(Json(Page::new(pagination, items, total)).into_response())
        }
        (Some(check_in), Some(check_out)) => {
            let stay = Stay::new(
                parse_date("check_in", &check_in)?,
                parse_date("check_out", &check_out)?,
            )?;
            let guests = parse_guests(query.guests)?;
            let (items, total) = search::search_hotels(
                &state.pool,
                query.city.as_deref(),
                stay,
                guests,
                limit,
                offset,
            )
            .await?;
            Ok(Json(Page::new(pagination, items, total)).into_response())
        }
        _ => Err(Error::validation(
            "a search needs both `check_in` and `check_out`",
        )),
    }
}

pub async fn get(
    State(state): State<AppState>,
    _caller: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<Hotel>> {
    Ok(Json(existing_hotel(&state, id).await?))
}

pub async fn create(
    State(state): State<AppState>,
    caller: AuthUser,
    Json(hotel): Json<NewHotelRequest>,
) -> Result<Response> {
    caller.require(Role::Staff)?;
    let new_hotel = NewHotel {
        name: Name::parse("name", &hotel.name)?,
        city: hotel.city.trim().to_owned(),
        timezone: parse_timezone(&hotel.timezone)?.name().to_owned(),
        check_in_time: hh_mm::parse(
            "check_in_time",
            hotel.check_in_time.as_deref().unwrap_or("14:00"),
        )?,
        check_out_time: hh_mm::parse(
            "check_out_time",
            hotel.check_out_time.as_deref().unwrap_or("11:00"),
        )?,
    };
    let hotel = hotels::create_hotel(&state.pool, new_hotel).await?;
    Ok(created(format!("/hotels/{}", hotel.id), hotel))
}

pub async fn update(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
    Json(change): Json<HotelChangeRequest>,
) -> Result<Json<Hotel>> {
    caller.require(Role::Staff)?;
    let change = HotelChange {
        name: change
            .name
            .as_deref()
            .map(|name| Name::parse("name", name))
            .transpose()?,
        city: change.city.map(|city| city.trim().to_owned()),
        timezone: change
            .timezone
            .as_deref()
            .map(|zone| parse_timezone(zone).map(|tz| tz.name().to_owned()))
            .transpose()?,
        check_in_time: change
            .check_in_time
            .as_deref()
            .map(|time| hh_mm::parse("check_in_time", time))
            .transpose()?,
        check_out_time: change
            .check_out_time
            .as_deref()
            .map(|time| hh_mm::parse("check_out_time", time))
            .transpose()?,
    };
    let hotel = hotels::update_hotel(&state.pool, id, change)
        .await?
        .ok_or_else(|| hotel_not_found(id))?;
    Ok(Json(hotel))
}

pub async fn delete(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    caller.require(Role::Staff)?;
    match hotels::delete_hotel(&state.pool, id)
        .await
        .map_err(in_use("hotel"))?
    {
        Deletion::Deleted => Ok(StatusCode::NO_CONTENT),
        Deletion::NotFound => Err(hotel_not_found(id)),
        Deletion::Default => Err(Error::conflict(
            "default_resource",
            "the default hotel cannot be deleted",
        )),
    }
}

pub async fn availability(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Query(query): Query<AvailabilityQuery>,
) -> Result<Json<Page<RoomTypeAvailability>>> {
    let stay = Stay::new(
        parse_date("check_in", &query.check_in)?,
        parse_date("check_out", &query.check_out)?,
    )?;
    let guests = parse_guests(query.guests)?;
    existing_hotel(&state, id).await?;
    let items = search::hotel_availability(&state.pool, id, stay, guests).await?;
    let total = items.len() as i64;
    Ok(Json(Page {
        items,
        page: 1,
        per_page: total,
        total,
    }))
}

pub async fn list_room_types(
    State(state): State<AppState>,
    _caller: AuthUser,
    Path(hotel_id): Path<Uuid>,
    Query(pagination): Query<Pagination>,
) -> Result<Json<Page<RoomType>>> {
    let (limit, offset) = pagination.limit_offset()?;
    existing_hotel(&state, hotel_id).await?;
    let (items, total) = hotels::list_room_types(&state.pool, hotel_id, limit, offset).await?;
    Ok(Json(Page::new(pagination, items, total)))
}

pub async fn create_room_type(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(hotel_id): Path<Uuid>,
    Json(room_type): Json<NewRoomType>,
) -> Result<Response> {
    caller.require(Role::Staff)?;
    let name = Name::parse("name", &room_type.name)?;
    let capacity = parse_capacity(room_type.capacity)?;
    existing_hotel(&state, hotel_id).await?;
    let room_type = hotels::create_room_type(&state.pool, hotel_id, &name, capacity).await?;
    Ok(created(
        format!("/hotels/{hotel_id}/room-types/{}", room_type.id),
        room_type,
    ))
}

pub async fn update_room_type(
    State(state): State<AppState>,
    caller: AuthUser,
    Path((hotel_id, id)): Path<(Uuid, Uuid)>,
    Json(change): Json<RoomTypeChange>,
) -> Result<Json<RoomType>> {
    caller.require(Role::Staff)?;
    let name = change
        .name
        .as_deref()
        .map(|name| Name::parse("name", name))
        .transpose()?;
    let capacity = change.capacity.map(parse_capacity).transpose()?;
    let room_type = hotels::update_room_type(&state.pool, hotel_id, id, name.as_deref(), capacity)
        .await?
        .ok_or_else(|| Error::not_found(format!("no room type {id} in hotel {hotel_id}")))?;
    Ok(Json(room_type))
}

pub async fn delete_room_type(
    State(state): State<AppState>,
    caller: AuthUser,
    Path((hotel_id, id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode> {
    caller.require(Role::Staff)?;
    match hotels::delete_room_type(&state.pool, hotel_id, id)
        .await
        .map_err(in_use("room type"))?
    {
        Deletion::Deleted => Ok(StatusCode::NO_CONTENT),
        Deletion::NotFound => Err(Error::not_found(format!(
            "no room type {id} in hotel {hotel_id}"
        ))),
        Deletion::Default => Err(Error::conflict(
            "default_resource",
            "a hotel's default room type cannot be deleted",
        )),
    }
}

pub async fn list_rate_plans(
    State(state): State<AppState>,
    _caller: AuthUser,
    Path(hotel_id): Path<Uuid>,
    Query(pagination): Query<Pagination>,
) -> Result<Json<Page<RatePlan>>> {
    let (limit, offset) = pagination.limit_offset()?;
    existing_hotel(&state, hotel_id).await?;
    let (items, total) = hotels::list_rate_plans(&state.pool, hotel_id, limit, offset).await?;
    Ok(Json(Page::new(pagination, items, total)))
}

pub async fn create_rate_plan(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(hotel_id): Path<Uuid>,
    Json(plan): Json<NewRatePlan>,
) -> Result<Response> {
    caller.require(Role::Staff)?;
    let name = Name::parse("name", &plan.name)?;
    let hours = plan.free_cancellation_hours.map(parse_hours).transpose()?;
    existing_hotel(&state, hotel_id).await?;
    let plan = hotels::create_rate_plan(&state.pool, hotel_id, &name, hours).await?;
    Ok(created(
        format!("/hotels/{hotel_id}/rate-plans/{}", plan.id),
        plan,
    ))
}

pub async fn update_rate_plan(
    State(state): State<AppState>,
    caller: AuthUser,
    Path((hotel_id, id)): Path<(Uuid, Uuid)>,
    Json(change): Json<RatePlanChange>,
) -> Result<Json<RatePlan>> {
    caller.require(Role::Staff)?;
    let name = change
        .name
        .as_deref()
        .map(|name| Name::parse("name", name))
        .transpose()?;
    let hours = change
        .free_cancellation_hours
        .map(|hours| hours.map(parse_hours).transpose())
        .transpose()?;
    let plan = hotels::update_rate_plan(&state.pool, hotel_id, id, name.as_deref(), hours)
        .await?
        .ok_or_else(|| Error::not_found(format!("no rate plan {id} in hotel {hotel_id}")))?;
    Ok(Json(plan))
}

pub async fn delete_rate_plan(
    State(state): State<AppState>,
    caller: AuthUser,
    Path((hotel_id, id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode> {
    caller.require(Role::Staff)?;
    match hotels::delete_rate_plan(&state.pool, hotel_id, id)
        .await
        .map_err(in_use("rate plan"))?
    {
        Deletion::Deleted => Ok(StatusCode::NO_CONTENT),
        Deletion::NotFound | Deletion::Default => Err(Error::not_found(format!(
            "no rate plan {id} in hotel {hotel_id}"
        ))),
    }
}

/// `PUT /hotels/{id}/rates`: sets the price of every night in `[from, to)`.
pub async fn put_rates(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(hotel_id): Path<Uuid>,
    Json(rates): Json<RatesRequest>,
) -> Result<Json<Page<DailyRate>>> {
    caller.require(Role::Staff)?;
    let stay = Stay::new(
        parse_date("from", &rates.from)?,
        parse_date("to", &rates.to)?,
    )
    .map_err(|_| {
        Error::validation(format!(
            "`to` must be after `from` and at most {} days later",
            Stay::MAX_NIGHTS
        ))
    })?;
    if rates.price.is_sign_negative() {
        return Err(Error::validation("`price` must not be negative"));
    }
    if rates.price.scale() > 2 {
        return Err(Error::validation("`price` has at most two decimal places"));
    }
    // `daily_rates.price` is `numeric(12, 2)`: a larger price would be a database error (500).
    if rates.price >= Decimal::from(10_000_000_000_i64) {
        return Err(Error::validation("`price` must be less than 10000000000"));
    }
    let upsert = RatesUpsert {
        room_type_id: rates.room_type_id,
        rate_plan_id: rates.rate_plan_id,
        from: stay.check_in(),
        to: stay.check_out(),
        price: rates.price,
        currency: parse_currency(&rates.currency)?,
    };
    existing_hotel(&state, hotel_id).await?;
    let items = hotels::upsert_rates(&state.pool, hotel_id, upsert)
        .await?
        .ok_or_else(|| {
            Error::validation("the room type or rate plan does not exist or is not of this hotel")
        })?;
    let total = items.len() as i64;
    Ok(Json(Page {
        items,
        page: 1,
        per_page: total,
        total,
    }))
}

pub async fn list_rates(
    State(state): State<AppState>,
    _caller: AuthUser,
    Path(hotel_id): Path<Uuid>,
    Query(pagination): Query<Pagination>,
    Query(query): Query<RatesListQuery>,
) -> Result<Json<Page<DailyRate>>> {
    let (limit, offset) = pagination.limit_offset()?;
    let (from, to) = (
        parse_date("from", &query.from)?,
        parse_date("to", &query.to)?,
    );
    if to <= from {
        return Err(Error::validation("`to` must be after `from`"));
    }
    existing_hotel(&state, hotel_id).await?;
    let filter = RatesQuery {
        room_type_id: query.room_type_id,
        rate_plan_id: query.rate_plan_id,
        from,
        to,
    };
    let (items, total) = hotels::list_rates(&state.pool, hotel_id, filter, limit, offset).await?;
    Ok(Json(Page::new(pagination, items, total)))
}

/// The hotel of the path, or `404`.
async fn existing_hotel(state: &AppState, id: Uuid) -> Result<Hotel> {
    hotels::find_hotel(&state.pool, id)
        .await?
        .ok_or_else(|| hotel_not_found(id))
}

fn hotel_not_found(id: Uuid) -> Error {
    Error::not_found(format!("no hotel with id {id}"))
}

fn parse_guests(guests: Option<i32>) -> Result<i32> {
    match guests.unwrap_or(1) {
        guests @ 1..=100 => Ok(guests),
        _ => Err(Error::validation("`guests` must be between 1 and 100")),
    }
}

fn parse_capacity(capacity: i32) -> Result<i32> {
    if (1..=100).contains(&capacity) {
        Ok(capacity)
    } else {
        Err(Error::validation("`capacity` must be between 1 and 100"))
    }
}

fn parse_hours(hours: i32) -> Result<i32> {
    if (0..=24 * 365).contains(&hours) {
        Ok(hours)
    } else {
        Err(Error::validation(
            "`free_cancellation_hours` must be between 0 and 8760, or null",
        ))
    }
}
