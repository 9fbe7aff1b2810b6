//! `/rooms`: rooms of the default hotel or of any hotel.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::database::ResultExt;
use super::{NameSchema, Page, Pagination, created, in_use, parse_name};
use crate::auth::{AuthUser, Staff};
use crate::db::failure::constraints;
use crate::db::rooms::{self, RoomUpdate};
use crate::domain::Room;
use crate::error::{Error, ErrorCode, Result};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module, each with its OpenAPI operation.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, update, delete))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoomBody {
    pub id: Uuid,
    pub hotel_id: Uuid,
    pub room_type_id: Uuid,
    pub name: String,
}

impl From<Room> for RoomBody {
    fn from(room: Room) -> Self {
        RoomBody {
            id: room.id,
            hotel_id: room.hotel_id,
            room_type_id: room.room_type_id,
            name: room.name,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRoom {
    #[schema(value_type = NameSchema, example = "ROOM7")]
    pub name: String,
    /// Default: the room type's hotel, else the default hotel.
    pub hotel_id: Option<Uuid>,
    /// Default: the hotel's default room type.
    pub room_type_id: Option<Uuid>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoomChange {
    #[schema(value_type = Option<NameSchema>)]
    pub name: Option<String>,
    /// Another room type of the room's hotel.
    pub room_type_id: Option<Uuid>,
}

/// List rooms.
#[utoipa::path(
    get,
    path = "/rooms",
    tag = "rooms",
    security(("bearer" = [])),
    params(Pagination),
    responses(
        (status = 200, description = "A page of rooms", body = Page<RoomBody>),
        (status = 422, description = "Bad paging"),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    _caller: AuthUser,
    Query(pagination): Query<Pagination>,
) -> Result<Json<Page<RoomBody>>> {
    let window = pagination.window()?;
    let listed = rooms::list_rooms(&state.pool, window).await?;
    Ok(Json(Page::new(pagination, listed)))
}

/// One room.
#[utoipa::path(
    get,
    path = "/rooms/{id}",
    tag = "rooms",
    security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "The room", body = RoomBody),
        (status = 404, description = "No such room"),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    _caller: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<RoomBody>> {
    let room = rooms::find_room(&state.pool, id)
        .await?
        .ok_or_else(|| room_not_found(id))?;
    Ok(Json(room.into()))
}

/// Create a room (staff).
#[utoipa::path(
    post,
    path = "/rooms",
    tag = "rooms",
    security(("bearer" = [])),
    request_body = NewRoom,
    responses(
        (status = 201, description = "Created", body = RoomBody, headers(("location" = String, description = "/rooms/{id}"))),
        (status = 403, description = "Not staff"),
        (status = 409, description = "The hotel has a room of that name"),
        (status = 422, description = "A bad name; an unknown hotel or room type, or one of another hotel"),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    _: Staff,
    Json(room): Json<NewRoom>,
) -> Result<Response> {
    let name = parse_name("name", &room.name)?;
    let room = rooms::create_room(&state.pool, &name, room.hotel_id, room.room_type_id)
        .await
        .on_constraint(constraints::ROOM_NAME_TAKEN, name_taken)?
        .ok_or_else(|| {
            Error::validation(
                "the hotel or room type does not exist, or the room type is not of that hotel",
            )
        })?;
    Ok(created(format!("/rooms/{}", room.id), RoomBody::from(room)))
}

/// Rename a room or change its type (staff).
#[utoipa::path(
    patch,
    path = "/rooms/{id}",
    tag = "rooms",
    security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    request_body = RoomChange,
    responses(
        (status = 200, description = "The changed room", body = RoomBody),
        (status = 403, description = "Not staff"),
        (status = 404, description = "No such room"),
        (status = 409, description = "The hotel has a room of that name"),
        (status = 422, description = "A bad name; a room type not of the room's hotel"),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    _: Staff,
    Path(id): Path<Uuid>,
    Json(change): Json<RoomChange>,
) -> Result<Json<RoomBody>> {
    let name = change
        .name
        .as_deref()
        .map(|name| parse_name("name", name))
        .transpose()?;
    match rooms::update_room(&state.pool, id, name.as_deref(), change.room_type_id)
        .await
        .on_constraint(constraints::ROOM_NAME_TAKEN, name_taken)?
    {
        RoomUpdate::Updated(room) => Ok(Json(room.into())),
        RoomUpdate::NotFound => Err(room_not_found(id)),
        RoomUpdate::BadRoomType => Err(Error::validation(
            "the room type does not exist or is not of the room's hotel",
        )),
    }
}

/// Delete a room (staff); refused while bookings refer to it.
#[utoipa::path(
    delete,
    path = "/rooms/{id}",
    tag = "rooms",
    security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Not staff"),
        (status = 404, description = "No such room"),
        (status = 409, description = "Bookings refer to it (`in_use`)"),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    _: Staff,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    if rooms::delete_room(&state.pool, id)
        .await
        .on_constraint(constraints::BOOKING_OF_ROOM, in_use("room"))?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(room_not_found(id))
    }
}

fn name_taken() -> Error {
    Error::conflict(
        ErrorCode::AlreadyExists,
        "the hotel has a room of that name",
    )
}

fn room_not_found(id: Uuid) -> Error {
    Error::not_found(format!("no room with id {id}"))
}
