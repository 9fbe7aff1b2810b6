//! `/hotels/{id}/room-types`: the room types of a hotel.

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
use crate::domain::RoomType;
use crate::domain::values::Guests;
use crate::error::{Error, ErrorCode, Result};
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
pub async fn list(
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
        (status = 201, description = "Created", body = RoomTypeBody, headers(("location" = String, description = "/hotels/{id}/room-types/{room_type_id}"))),
        (status = 403, description = "Not staff"),
        (status = 404, description = "No such hotel"),
        (status = 409, description = "The hotel has a room type of that name"),
        (status = 422, description = "A bad name or capacity"),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    _: Staff,
    Path(hotel_id): Path<Uuid>,
    Json(room_type): Json<NewRoomType>,
) -> Result<Response> {
    let name = parse_name("name", &room_type.name)?;
    let capacity = parse_capacity(room_type.capacity.unwrap_or(2))?;
    existing_hotel(&state, hotel_id).await?;
    let room_type = hotels::create_room_type(&state.pool, hotel_id, &name, capacity)
        .await
        .on_constraint(constraints::ROOM_TYPE_NAME_TAKEN, || {
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
pub async fn update(
    State(state): State<AppState>,
    _: Staff,
    Path((hotel_id, id)): Path<(Uuid, Uuid)>,
    Json(change): Json<RoomTypeChange>,
) -> Result<Json<RoomTypeBody>> {
    let name = change
        .name
        .as_deref()
        .map(|name| parse_name("name", name))
        .transpose()?;
    let capacity = change.capacity.map(parse_capacity).transpose()?;
    let room_type = hotels::update_room_type(&state.pool, hotel_id, id, name.as_deref(), capacity)
        .await
        .on_constraint(constraints::ROOM_TYPE_NAME_TAKEN, || {
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
pub async fn delete(
    State(state): State<AppState>,
    _: Staff,
    Path((hotel_id, id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode> {
    match hotels::delete_room_type(&state.pool, hotel_id, id)
        .await
        .on_constraint(constraints::ROOM_OF_ROOM_TYPE, in_use("room type"))?
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

fn parse_capacity(capacity: i32) -> Result<i32> {
    Guests::parse(capacity)
        .map(Guests::get)
        .map_err(|why| Error::validation(format!("`capacity` {why}")))
}
