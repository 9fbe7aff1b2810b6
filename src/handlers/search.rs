//! The public availability search: `GET /hotels` (with dates, the search;
//! without, the plain list) and `GET /hotels/{id}/availability`.

use axum::extract::State;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{AnyOfBuilder, Ref, Schema};
use utoipa::{IntoParams, PartialSchema, ToSchema};
use uuid::Uuid;

use super::hotels::{HotelBody, existing_hotel};
use super::{Page, Pagination, parse_guests, parse_stay};
use crate::db::hotels::{self};
use crate::db::search;
use crate::domain::inventory::{RateOffer, RoomTypeAvailability};
use crate::domain::{HotelOffer, hotel_today};
use crate::error::{Error, Result};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module, each with its OpenAPI operation.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(availability))
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
