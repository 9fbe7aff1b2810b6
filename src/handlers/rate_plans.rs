//! `/hotels/{id}/rate-plans`: the rate plans of a hotel and their cancellation policies.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::database::ResultExt;
use super::hotels::{existing_hotel, name_taken};
use super::{NameSchema, Page, Pagination, created, in_use, parse_name};
use crate::auth::{AuthUser, Staff};
use crate::db::failure::constraints;
use crate::db::hotels::{self, Deletion};
use crate::domain::RatePlan;
use crate::domain::values::CancellationHours;
use crate::error::{Error, Result};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module, each with its OpenAPI operation.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(update, delete))
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
pub async fn list(
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
        (status = 201, description = "Created", body = RatePlanBody, headers(("location" = String, description = "/hotels/{id}/rate-plans/{rate_plan_id}"))),
        (status = 403, description = "Not staff"),
        (status = 404, description = "No such hotel"),
        (status = 409, description = "The hotel has a rate plan of that name"),
        (status = 422, description = "A bad name or cancellation deadline"),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    _: Staff,
    Path(hotel_id): Path<Uuid>,
    Json(plan): Json<NewRatePlan>,
) -> Result<Response> {
    let name = parse_name("name", &plan.name)?;
    let hours = plan.free_cancellation_hours.map(parse_hours).transpose()?;
    existing_hotel(&state, hotel_id).await?;
    let plan = hotels::create_rate_plan(&state.pool, hotel_id, &name, hours)
        .await
        .on_constraint(constraints::RATE_PLAN_NAME_TAKEN, || {
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
pub async fn update(
    State(state): State<AppState>,
    _: Staff,
    Path((hotel_id, id)): Path<(Uuid, Uuid)>,
    Json(change): Json<RatePlanChange>,
) -> Result<Json<RatePlanBody>> {
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
        .on_constraint(constraints::RATE_PLAN_NAME_TAKEN, || {
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
pub async fn delete(
    State(state): State<AppState>,
    _: Staff,
    Path((hotel_id, id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode> {
    match hotels::delete_rate_plan(&state.pool, hotel_id, id)
        .await
        .on_constraint(constraints::BOOKING_OF_RATE_PLAN, in_use("rate plan"))?
    {
        Deletion::Deleted => Ok(StatusCode::NO_CONTENT),
        Deletion::NotFound | Deletion::Default => Err(Error::not_found(format!(
            "no rate plan {id} in hotel {hotel_id}"
        ))),
    }
}

fn parse_hours(hours: i32) -> Result<i32> {
    CancellationHours::parse(hours)
        .map(CancellationHours::get)
        .map_err(|why| Error::validation(format!("`free_cancellation_hours` {why}, or null")))
}
