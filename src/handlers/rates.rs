//! `/hotels/{id}/rates`: daily prices per room type and rate plan.

use axum::extract::State;
use chrono::NaiveDate;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::hotels::existing_hotel;
use super::{Page, Pagination, parse_date};
use crate::auth::{AuthUser, Staff};
use crate::db::hotels::{self, RatesQuery, RatesUpsert};
use crate::domain::values::parse_price;
use crate::domain::{DailyRate, Stay, is_currency};
use crate::error::{Error, Result};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module, each with its OpenAPI operation.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, put))
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
    #[schema(pattern = r"^[0-9]{1,10}(\.[0-9]{1,2})?$", example = "129.00")]
    pub price: String,
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
pub async fn put(
    State(state): State<AppState>,
    _: Staff,
    Path(hotel_id): Path<Uuid>,
    Json(rates): Json<RatesRequest>,
) -> Result<Json<Page<DailyRateBody>>> {
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
    // Not a number at all is a malformed body, as it was when the field
    // was read as a decimal; a number outside the pattern is an invalid value.
    let is_number =
        Decimal::from_str(&rates.price).is_ok() || Decimal::from_scientific(&rates.price).is_ok();
    if !is_number {
        return Err(Error::Malformed(format!(
            "`price` must be a decimal number as a string, not `{}`",
            rates.price
        )));
    }
    let price =
        parse_price(&rates.price).map_err(|why| Error::validation(format!("`price` {why}")))?;
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
        price,
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
pub async fn list(
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
