//! `/hotels`: hotels, their room types, rate plans and daily rates, and the
//! availability search.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::NaiveDate;
use chrono::NaiveTime;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{AnyOfBuilder, Ref, Schema};
use utoipa::{IntoParams, PartialSchema, ToSchema};
use uuid::Uuid;

use super::{
    NameSchema, Page, Pagination, created, hh_mm, in_use, parse_date, parse_guests, parse_name,
    parse_stay,
};
use crate::auth::AuthUser;
use crate::db::hotels::{self, Deletion, HotelChange, NewHotel, RatesQuery, RatesUpsert};
use crate::db::search;
use crate::domain::inventory::{RateOffer, RoomTypeAvailability, parse_time_of_day};
use crate::domain::pricing::MAX_AMOUNT;
use crate::domain::{
    DailyRate, Hotel, HotelOffer, RatePlan, Role, RoomType, Stay, hotel_today, is_currency,
    parse_timezone,
};
use crate::error::{Error, ErrorCode, Result, ResultExt};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;

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

/// A hotel of a search, with its cheapest total for the stay.
#[derive(Debug, Serialize, ToSchema)]
pub struct HotelOfferBody {
    #[serde(flatten)]
    pub hotel: HotelBody,
    #[serde(serialize_with = "super::money::serialize")]
    #[schema(value_type = String, example = "258.00")]
    pub cheapest_total: Decimal,
    pub currency: String,
}

impl From<HotelOffer> for HotelOfferBody {
    fn from(offer: HotelOffer) -> Self {
        HotelOfferBody {
            hotel: offer.hotel.into(),
            cheapest_total: offer.cheapest_total,
            currency: offer.currency,
        }
    }
}

/// `GET /hotels` answers either list: the plain one, or with dates the search.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum HotelListItem {
    Hotel(HotelBody),
    Offer(HotelOfferBody),
}

/// `anyOf`, where utoipa derives `oneOf` for an untagged enum: an offer has
/// every field of a hotel, so it matches both schemas, which `oneOf` forbids.
impl utoipa::PartialSchema for HotelListItem {
    fn schema() -> RefOr<Schema> {
        AnyOfBuilder::new()
            .item(Ref::from_schema_name(HotelBody::name()))
            .item(Ref::from_schema_name(HotelOfferBody::name()))
            .description(Some(
                "`GET /hotels` answers either list: the plain one, or with dates the search",
            ))
            .into()
    }
}

impl ToSchema for HotelListItem {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((HotelBody::name().into(), HotelBody::schema()));
        <HotelBody as ToSchema>::schemas(schemas);
        schemas.push((HotelOfferBody::name().into(), HotelOfferBody::schema()));
        <HotelOfferBody as ToSchema>::schemas(schemas);
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoomTypeBody {
    pub id: Uuid,
    pub hotel_id: Uuid,
    pub name: String,
    pub capacity: i32,
}

impl From<RoomType> for RoomTypeBody {
    fn from(room_type: RoomType) -> Self {
        RoomTypeBody {
            id: room_type.id,
            hotel_id: room_type.hotel_id,
            name: room_type.name,
            capacity: room_type.capacity,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RatePlanBody {
    pub id: Uuid,
    pub hotel_id: Uuid,
    pub name: String,
    /// Free cancellation until this many hours before check-in; `null`: non-refundable.
    pub free_cancellation_hours: Option<i32>,
}

impl From<RatePlan> for RatePlanBody {
    fn from(plan: RatePlan) -> Self {
        RatePlanBody {
            id: plan.id,
            hotel_id: plan.hotel_id,
            name: plan.name,
            free_cancellation_hours: plan.free_cancellation_hours,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DailyRateBody {
    pub room_type_id: Uuid,
    pub rate_plan_id: Uuid,
    pub date: NaiveDate,
    #[serde(serialize_with = "super::money::serialize")]
    #[schema(value_type = String, example = "129.00")]
    pub price: Decimal,
    pub currency: String,
}

impl From<DailyRate> for DailyRateBody {
    fn from(rate: DailyRate) -> Self {
        DailyRateBody {
            room_type_id: rate.room_type_id,
            rate_plan_id: rate.rate_plan_id,
            date: rate.date,
            price: rate.price,
            currency: rate.currency,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AvailabilityBody {
    pub room_type_id: Uuid,
    pub name: String,
    pub capacity: i32,
    /// Rooms of the type free for every night of the stay.
    pub rooms_free: i64,
    pub rates: Vec<RateOfferBody>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RateOfferBody {
    pub rate_plan_id: Uuid,
    pub name: String,
    #[serde(serialize_with = "super::money::serialize")]
    #[schema(value_type = String, example = "258.00")]
    pub total: Decimal,
    pub currency: String,
    pub nightly: Vec<NightlyPriceBody>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NightlyPriceBody {
    pub date: NaiveDate,
    #[serde(serialize_with = "super::money::serialize")]
    #[schema(value_type = String, example = "129.00")]
    pub price: Decimal,
}

impl From<RoomTypeAvailability> for AvailabilityBody {
    fn from(free: RoomTypeAvailability) -> Self {
        AvailabilityBody {
            room_type_id: free.room_type_id,
            name: free.name,
            capacity: free.capacity,
            rooms_free: free.rooms_free,
            rates: free.rates.into_iter().map(RateOfferBody::from).collect(),
        }
    }
}

impl From<RateOffer> for RateOfferBody {
    fn from(offer: RateOffer) -> Self {
        RateOfferBody {
            rate_plan_id: offer.rate_plan_id,
            name: offer.name,
            total: offer.total,
            currency: offer.currency,
            nightly: offer
                .nightly
                .into_iter()
                .map(|(date, price)| NightlyPriceBody { date, price })
                .collect(),
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

/// `GET /hotels`: the plain list, or with `check_in` and `check_out` the search.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HotelQuery {
    pub city: Option<String>,
    /// With `check_out`: search for a stay (`YYYY-MM-DD`).
    #[param(format = Date)]
    pub check_in: Option<String>,
    #[param(format = Date)]
    pub check_out: Option<String>,
    /// 1 to 100 (default 1).
    #[param(minimum = 1, maximum = 100)]
    pub guests: Option<i32>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AvailabilityQuery {
    /// `YYYY-MM-DD`.
    #[param(format = Date)]
    pub check_in: String,
    /// `YYYY-MM-DD`.
    #[param(format = Date)]
    pub check_out: String,
    /// 1 to 100 (default 1).
    #[param(minimum = 1, maximum = 100)]
    pub guests: Option<i32>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRoomType {
    #[schema(value_type = NameSchema)]
    pub name: String,
    /// 1 to 100 guests, default 2.
    #[serde(default, deserialize_with = "super::whole::option")]
    #[schema(minimum = 1, maximum = 100)]
    pub capacity: Option<i32>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoomTypeChange {
    #[schema(value_type = Option<NameSchema>)]
    pub name: Option<String>,
    /// 1 to 100 guests.
    #[serde(default, deserialize_with = "super::whole::option")]
    #[schema(minimum = 1, maximum = 100)]
    pub capacity: Option<i32>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRatePlan {
    #[schema(value_type = NameSchema)]
    pub name: String,
    /// 0 to 8760 hours; `null` or absent: non-refundable.
    #[serde(default, deserialize_with = "super::whole::option")]
    #[schema(minimum = 0, maximum = 8760)]
    pub free_cancellation_hours: Option<i32>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RatePlanChange {
    #[schema(value_type = Option<NameSchema>)]
    pub name: Option<String>,
    /// 0 to 8760 hours; `null`: non-refundable; absent: unchanged.
    #[serde(default, deserialize_with = "super::whole::double_option")]
    #[schema(value_type = Option<i32>, minimum = 0, maximum = 8760)]
    pub free_cancellation_hours: Option<Option<i32>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RatesRequest {
    pub room_type_id: Uuid,
    pub rate_plan_id: Uuid,
    /// First night, `YYYY-MM-DD`.
    #[schema(format = Date, example = "2027-03-01")]
    pub from: String,
    /// Exclusive.
    #[schema(format = Date, example = "2027-04-01")]
    pub to: String,
    /// 0 to 9999999999.99, two decimal places at most.
    #[schema(value_type = String, pattern = r"^[0-9]{1,10}(\.[0-9]{1,2})?$", example = "129.00")]
    pub price: Decimal,
    /// ISO 4217.
    #[schema(pattern = "^[A-Z]{3}$", example = "EUR")]
    pub currency: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RatesListQuery {
    pub room_type_id: Option<Uuid>,
    pub rate_plan_id: Option<Uuid>,
    /// `YYYY-MM-DD`.
    #[param(format = Date)]
    pub from: String,
    /// `YYYY-MM-DD`, exclusive.
    #[param(format = Date)]
    pub to: String,
}

/// List hotels, or search them for a stay.
///
/// Without dates: the hotels, by name. With `check_in` and `check_out`: the
/// hotels with a room free for every night of the stay, of a type that holds
/// `guests`, priced for every night; each with its cheapest total. Public.
#[utoipa::path(
    get,
    path = "/hotels",
    tag = "hotels",
    params(Pagination, HotelQuery),
    responses(
        (status = 200, description = "A page of hotels (or of offers)", body = Page<HotelListItem>),
        (status = 422, description = "Bad paging, dates, stay or guests"),
        (status = 429, description = "Too many requests from this address"),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Query(pagination): Query<Pagination>,
    Query(query): Query<HotelQuery>,
) -> Result<Json<Page<HotelListItem>>> {
    let window = pagination.window()?;
    // Checked with or without dates: a bad value is refused, never ignored.
    let guests = parse_guests(query.guests)?;
    let city = query.city.as_deref().map(str::trim);
    let listed = match (query.check_in, query.check_out) {
        (None, None) => {
            let (items, total) = hotels::list_hotels(&state.pool, city, window).await?;
            let items = items
                .into_iter()
                .map(|hotel| HotelListItem::Hotel(hotel.into()))
                .collect();
            (items, total)
        }
        (Some(check_in), Some(check_out)) => {
            let stay = parse_stay(&check_in, &check_out, state.limits.search_nights)?;
            let (items, total) =
                search::search_hotels(&state.pool, city, stay, guests, window).await?;
            let items = items
                .into_iter()
                .map(|offer| HotelListItem::Offer(offer.into()))
                .collect();
            (items, total)
        }
        _ => {
            return Err(Error::validation(
                "a search needs both `check_in` and `check_out`",
            ));
        }
    };
    Ok(Json(Page::new(pagination, listed)))
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
        (status = 201, description = "Created", body = HotelBody, headers(("location" = String))),
        (status = 403, description = "Not staff"),
        (status = 422, description = "A bad name, time zone or time of day"),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: AuthUser,
    Json(hotel): Json<NewHotelRequest>,
) -> Result<Response> {
    caller.require(Role::Staff)?;
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
        .on_constraint(hotels::TIMEZONE_KNOWN, unknown_timezone)?;
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
    caller: AuthUser,
    Path(id): Path<Uuid>,
    Json(change): Json<HotelChangeRequest>,
) -> Result<Json<HotelBody>> {
    caller.require(Role::Staff)?;
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
        .on_constraint(hotels::TIMEZONE_KNOWN, unknown_timezone)?
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
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    caller.require(Role::Staff)?;
    match hotels::delete_hotel(&state.pool, id)
        .await
        .on_constraint("bookings_room_id_fkey", in_use("hotel"))
        .on_constraint("bookings_rate_plan_id_fkey", in_use("hotel"))?
    {
        Deletion::Deleted => Ok(StatusCode::NO_CONTENT),
        Deletion::NotFound => Err(hotel_not_found(id)),
        Deletion::Default => Err(Error::conflict(
            ErrorCode::DefaultResource,
            "the default hotel cannot be deleted",
        )),
    }
}

/// Free rooms and prices of a hotel for a stay, per room type. Public.
#[utoipa::path(
    get,
    path = "/hotels/{id}/availability",
    tag = "hotels",
    params(("id" = Uuid, Path), Pagination, AvailabilityQuery),
    responses(
        (status = 200, description = "A page of room types", body = Page<AvailabilityBody>),
        (status = 404, description = "No such hotel"),
        (status = 422, description = "Bad paging, dates, stay or guests; a stay beginning before today at the hotel (`date_in_past`) or beyond the horizon"),
        (status = 429, description = "Too many requests from this address"),
    )
)]
pub async fn availability(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Query(pagination): Query<Pagination>,
    Query(query): Query<AvailabilityQuery>,
) -> Result<Json<Page<AvailabilityBody>>> {
    let window = pagination.window()?;
    let stay = parse_stay(
        &query.check_in,
        &query.check_out,
        state.limits.search_nights,
    )?;
    let guests = parse_guests(query.guests)?;
    let hotel = existing_hotel(&state, id).await?;
    // A stay that could not be booked (it begins before today at the hotel,
    // or beyond the horizon) is refused as a booking of it would be.
    state
        .limits
        .booking
        .check_in_allowed(stay.check_in(), hotel_today(&hotel.timezone))?;
    let listed = search::hotel_availability(&state.pool, id, stay, guests, window).await?;
    Ok(Json(Page::new(pagination, listed)))
}

/// The room types of a hotel.
#[utoipa::path(
    get,
    path = "/hotels/{id}/room-types",
    tag = "hotels",
    security(("bearer" = [])),
    params(("id" = Uuid, Path), Pagination),
    responses(
        (status = 200, description = "A page of room types", body = Page<RoomTypeBody>),
        (status = 404, description = "No such hotel"),
        (status = 422, description = "Bad paging"),
    )
)]
pub async fn list_room_types(
    State(state): State<AppState>,
    _caller: AuthUser,
    Path(hotel_id): Path<Uuid>,
    Query(pagination): Query<Pagination>,
) -> Result<Json<Page<RoomTypeBody>>> {
    let window = pagination.window()?;
    existing_hotel(&state, hotel_id).await?;
    let listed = hotels::list_room_types(&state.pool, hotel_id, window).await?;
    Ok(Json(Page::new(pagination, listed)))
}

/// Create a room type (staff).
#[utoipa::path(
    post,
    path = "/hotels/{id}/room-types",
    tag = "hotels",
    security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    request_body = NewRoomType,
    responses(
        (status = 201, description = "Created", body = RoomTypeBody, headers(("location" = String))),
        (status = 403, description = "Not staff"),
        (status = 404, description = "No such hotel"),
        (status = 409, description = "The hotel has a room type of that name"),
        (status = 422, description = "A bad name or capacity"),
    )
)]
pub async fn create_room_type(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(hotel_id): Path<Uuid>,
    Json(room_type): Json<NewRoomType>,
) -> Result<Response> {
    caller.require(Role::Staff)?;
    let name = parse_name("name", &room_type.name)?;
    let capacity = parse_capacity(room_type.capacity.unwrap_or(2))?;
    existing_hotel(&state, hotel_id).await?;
    let room_type = hotels::create_room_type(&state.pool, hotel_id, &name, capacity)
        .await
        .on_constraint("room_types_hotel_id_name_key", || {
            name_taken("room type", "hotel")
        })?;
    Ok(created(
        format!("/hotels/{hotel_id}/room-types/{}", room_type.id),
        RoomTypeBody::from(room_type),
    ))
}

/// Change a room type (staff).
#[utoipa::path(
    patch,
    path = "/hotels/{id}/room-types/{room_type_id}",
    tag = "hotels",
    security(("bearer" = [])),
    params(("id" = Uuid, Path), ("room_type_id" = Uuid, Path)),
    request_body = RoomTypeChange,
    responses(
        (status = 200, description = "The changed room type", body = RoomTypeBody),
        (status = 403, description = "Not staff"),
        (status = 404, description = "No such room type in this hotel"),
        (status = 409, description = "The hotel has a room type of that name"),
        (status = 422, description = "A bad name or capacity"),
    )
)]
pub async fn update_room_type(
    State(state): State<AppState>,
    caller: AuthUser,
    Path((hotel_id, id)): Path<(Uuid, Uuid)>,
    Json(change): Json<RoomTypeChange>,
) -> Result<Json<RoomTypeBody>> {
    caller.require(Role::Staff)?;
    let name = change
        .name
        .as_deref()
        .map(|name| parse_name("name", name))
        .transpose()?;
    let capacity = change.capacity.map(parse_capacity).transpose()?;
    let room_type = hotels::update_room_type(&state.pool, hotel_id, id, name.as_deref(), capacity)
        .await
        .on_constraint("room_types_hotel_id_name_key", || {
            name_taken("room type", "hotel")
        })?
        .ok_or_else(|| Error::not_found(format!("no room type {id} in hotel {hotel_id}")))?;
    Ok(Json(room_type.into()))
}

/// Delete a room type and its rates (staff); refused while rooms are of it.
#[utoipa::path(
    delete,
    path = "/hotels/{id}/room-types/{room_type_id}",
    tag = "hotels",
    security(("bearer" = [])),
    params(("id" = Uuid, Path), ("room_type_id" = Uuid, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Not staff"),
        (status = 404, description = "No such room type in this hotel"),
        (status = 409, description = "Rooms are of it (`in_use`), or it is the hotel's default room type"),
    )
)]
pub async fn delete_room_type(
    State(state): State<AppState>,
    caller: AuthUser,
    Path((hotel_id, id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode> {
    caller.require(Role::Staff)?;
    match hotels::delete_room_type(&state.pool, hotel_id, id)
        .await
        .on_constraint("rooms_room_type_id_hotel_id_fkey", in_use("room type"))?
    {
        Deletion::Deleted => Ok(StatusCode::NO_CONTENT),
        Deletion::NotFound => Err(Error::not_found(format!(
            "no room type {id} in hotel {hotel_id}"
        ))),
        Deletion::Default => Err(Error::conflict(
            ErrorCode::DefaultResource,
            "a hotel's default room type cannot be deleted",
        )),
    }
}

/// The rate plans of a hotel.
#[utoipa::path(
    get,
    path = "/hotels/{id}/rate-plans",
    tag = "hotels",
    security(("bearer" = [])),
    params(("id" = Uuid, Path), Pagination),
    responses(
        (status = 200, description = "A page of rate plans", body = Page<RatePlanBody>),
        (status = 404, description = "No such hotel"),
        (status = 422, description = "Bad paging"),
    )
)]
pub async fn list_rate_plans(
    State(state): State<AppState>,
    _caller: AuthUser,
    Path(hotel_id): Path<Uuid>,
    Query(pagination): Query<Pagination>,
) -> Result<Json<Page<RatePlanBody>>> {
    let window = pagination.window()?;
    existing_hotel(&state, hotel_id).await?;
    let listed = hotels::list_rate_plans(&state.pool, hotel_id, window).await?;
    Ok(Json(Page::new(pagination, listed)))
}

/// Create a rate plan (staff).
#[utoipa::path(
    post,
    path = "/hotels/{id}/rate-plans",
    tag = "hotels",
    security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    request_body = NewRatePlan,
    responses(
        (status = 201, description = "Created", body = RatePlanBody, headers(("location" = String))),
        (status = 403, description = "Not staff"),
        (status = 404, description = "No such hotel"),
        (status = 409, description = "The hotel has a rate plan of that name"),
        (status = 422, description = "A bad name or cancellation deadline"),
    )
)]
pub async fn create_rate_plan(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(hotel_id): Path<Uuid>,
    Json(plan): Json<NewRatePlan>,
) -> Result<Response> {
    caller.require(Role::Staff)?;
    let name = parse_name("name", &plan.name)?;
    let hours = plan.free_cancellation_hours.map(parse_hours).transpose()?;
    existing_hotel(&state, hotel_id).await?;
    let plan = hotels::create_rate_plan(&state.pool, hotel_id, &name, hours)
        .await
        .on_constraint("rate_plans_hotel_id_name_key", || {
            name_taken("rate plan", "hotel")
        })?;
    Ok(created(
        format!("/hotels/{hotel_id}/rate-plans/{}", plan.id),
        RatePlanBody::from(plan),
    ))
}

/// Change a rate plan (staff).
#[utoipa::path(
    patch,
    path = "/hotels/{id}/rate-plans/{rate_plan_id}",
    tag = "hotels",
    security(("bearer" = [])),
    params(("id" = Uuid, Path), ("rate_plan_id" = Uuid, Path)),
    request_body = RatePlanChange,
    responses(
        (status = 200, description = "The changed rate plan", body = RatePlanBody),
        (status = 403, description = "Not staff"),
        (status = 404, description = "No such rate plan in this hotel"),
        (status = 409, description = "The hotel has a rate plan of that name"),
        (status = 422, description = "A bad name or cancellation deadline"),
    )
)]
pub async fn update_rate_plan(
    State(state): State<AppState>,
    caller: AuthUser,
    Path((hotel_id, id)): Path<(Uuid, Uuid)>,
    Json(change): Json<RatePlanChange>,
) -> Result<Json<RatePlanBody>> {
    caller.require(Role::Staff)?;
    let name = change
        .name
        .as_deref()
        .map(|name| parse_name("name", name))
        .transpose()?;
    let hours = change
        .free_cancellation_hours
        .map(|hours| hours.map(parse_hours).transpose())
        .transpose()?;
    let plan = hotels::update_rate_plan(&state.pool, hotel_id, id, name.as_deref(), hours)
        .await
        .on_constraint("rate_plans_hotel_id_name_key", || {
            name_taken("rate plan", "hotel")
        })?
        .ok_or_else(|| Error::not_found(format!("no rate plan {id} in hotel {hotel_id}")))?;
    Ok(Json(plan.into()))
}

/// Delete a rate plan and its rates (staff); refused while bookings refer to it.
#[utoipa::path(
    delete,
    path = "/hotels/{id}/rate-plans/{rate_plan_id}",
    tag = "hotels",
    security(("bearer" = [])),
    params(("id" = Uuid, Path), ("rate_plan_id" = Uuid, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Not staff"),
        (status = 404, description = "No such rate plan in this hotel"),
        (status = 409, description = "Bookings refer to it (`in_use`)"),
    )
)]
pub async fn delete_rate_plan(
    State(state): State<AppState>,
    caller: AuthUser,
    Path((hotel_id, id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode> {
    caller.require(Role::Staff)?;
    match hotels::delete_rate_plan(&state.pool, hotel_id, id)
        .await
        .on_constraint("bookings_rate_plan_id_fkey", in_use("rate plan"))?
    {
        Deletion::Deleted => Ok(StatusCode::NO_CONTENT),
        Deletion::NotFound | Deletion::Default => Err(Error::not_found(format!(
            "no rate plan {id} in hotel {hotel_id}"
        ))),
    }
}

/// Set the price of every night in `[from, to)` for a room type and rate plan (staff).
#[utoipa::path(
    put,
    path = "/hotels/{id}/rates",
    tag = "hotels",
    security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    request_body = RatesRequest,
    responses(
        (status = 200, description = "The rates set", body = Page<DailyRateBody>),
        (status = 403, description = "Not staff"),
        (status = 404, description = "No such hotel"),
        (status = 422, description = "Bad dates, price or currency; a room type or rate plan not of this hotel"),
    )
)]
pub async fn put_rates(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(hotel_id): Path<Uuid>,
    Json(rates): Json<RatesRequest>,
) -> Result<Json<Page<DailyRateBody>>> {
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
    if rates.price.normalize().scale() > 2 {
        return Err(Error::validation("`price` has at most two decimal places"));
    }
    if rates.price > MAX_AMOUNT {
        return Err(Error::validation(format!(
            "`price` must be at most {MAX_AMOUNT}"
        )));
    }
    if !is_currency(&rates.currency) {
        return Err(Error::validation(format!(
            "`{}` is not a currency code such as EUR",
            rates.currency
        )));
    }
    let upsert = RatesUpsert {
        room_type_id: rates.room_type_id,
        rate_plan_id: rates.rate_plan_id,
        from: stay.check_in(),
        to: stay.check_out(),
        price: rates.price,
        currency: rates.currency,
    };
    existing_hotel(&state, hotel_id).await?;
    let items = hotels::upsert_rates(&state.pool, hotel_id, upsert)
        .await?
        .ok_or_else(|| {
            Error::validation("the room type or rate plan does not exist or is not of this hotel")
        })?;
    let total = items.len() as i64;
    Ok(Json(Page {
        items: items.into_iter().map(DailyRateBody::from).collect(),
        page: 1,
        per_page: total,
        total,
    }))
}

/// The daily rates of a hotel in `[from, to)`.
#[utoipa::path(
    get,
    path = "/hotels/{id}/rates",
    tag = "hotels",
    security(("bearer" = [])),
    params(("id" = Uuid, Path), Pagination, RatesListQuery),
    responses(
        (status = 200, description = "A page of daily rates", body = Page<DailyRateBody>),
        (status = 404, description = "No such hotel"),
        (status = 422, description = "Bad paging or dates"),
    )
)]
pub async fn list_rates(
    State(state): State<AppState>,
    _caller: AuthUser,
    Path(hotel_id): Path<Uuid>,
    Query(pagination): Query<Pagination>,
    Query(query): Query<RatesListQuery>,
) -> Result<Json<Page<DailyRateBody>>> {
    let window = pagination.window()?;
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
    let listed = hotels::list_rates(&state.pool, hotel_id, filter, window).await?;
    Ok(Json(Page::new(pagination, listed)))
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

fn name_taken(what: &str, of: &str) -> Error {
    Error::conflict(
        ErrorCode::AlreadyExists,
        format!("the {of} has a {what} of that name"),
    )
}

/// A city as a name is checked (at most 100 characters, no control
/// characters), but it may be empty.
fn parse_city(text: &str) -> Result<String> {
    if text.trim().is_empty() {
        return Ok(String::new());
    }
    parse_name("city", text)
}

/// An IANA zone that chrono-tz knows (PostgreSQL checks it too, on write),
/// named Area/Location, or `UTC`. PostgreSQL reads a name without a `/` as
/// an abbreviation first when it is one: `CET`, `EET`, `MET` and `WET` are
/// zones with summer time for chrono-tz but fixed offsets in SQL, and the
/// hotel's instants would then differ by an hour between the two.
fn valid_timezone(name: &str) -> Result<String> {
    let zone = parse_timezone(name).ok_or_else(|| {
        Error::invalid(
            ErrorCode::InvalidTimezone,
            format!("`{name}` is not an IANA time zone"),
        )
    })?;
    if name != "UTC" && !name.contains('/') {
        return Err(Error::invalid(
            ErrorCode::InvalidTimezone,
            format!(
                "`{name}` is not an Area/Location time zone (such as Europe/Paris) or UTC; \
                 PostgreSQL reads some such names, like CET, as fixed offsets without summer time"
            ),
        ));
    }
    Ok(zone.name().to_owned())
}

fn unknown_timezone() -> Error {
    Error::invalid(
        ErrorCode::InvalidTimezone,
        "the database does not know this time zone",
    )
}

fn time_of_day(field: &str, text: &str) -> Result<NaiveTime> {
    parse_time_of_day(text).ok_or_else(|| {
        Error::validation(format!(
            "`{field}` must be a time of day such as 14:00, not `{text}`"
        ))
    })
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
