//! `/rooms`: rooms of the default hotel or of any hotel.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use uuid::Uuid;

use super::{created, in_use};
use crate::AppState;
use crate::auth::AuthUser;
use crate::db::rooms::{self, Room, RoomUpdate};
use crate::domain::{Name, Page, Pagination, Role};
use crate::error::{Error, Result};
use crate::extract::{Json, Path, Query};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRoom {
    pub name: String,
    pub hotel_id: Option<Uuid>,
    pub room_type_id: Option<Uuid>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomChange {
    pub name: Option<String>,
    pub room_type_id: Option<Uuid>,
}

pub async fn list(
    State(state): State<AppState>,
    _caller: AuthUser,
    Query(pagination): Query<Pagination>,
) -> Result<Json<Page<Room>>> {
    let (limit, offset) = pagination.limit_offset()?;
    let (items, total) = rooms::list_rooms(&state.pool, limit, offset).await?;
    Ok(Json(Page::new(pagination, items, total)))
}

pub async fn get(
    State(state): State<AppState>,
    _caller: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<Room>> {
    let room = rooms::find_room(&state.pool, id)
        .await?
        .ok_or_else(|| room_not_found(id))?;
    Ok(Json(room))
}

pub async fn create(
    State(state): State<AppState>,
    caller: AuthUser,
    Json(room): Json<NewRoom>,
) -> Result<Response> {
    caller.require(Role::Staff)?;
    let name = Name::parse("name", &room.name)?;
    let room = rooms::create_room(&state.pool, &name, room.hotel_id, room.room_type_id)
        .await?
        .ok_or_else(|| {
            Error::validation(
                "the hotel or room type does not exist, or the room type is not of that hotel",
            )
        })?;
    Ok(created(format!("/rooms/{}", room.id), room))
}

pub async fn update(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
    Json(change): Json<RoomChange>,
) -> Result<Json<Room>> {
    caller.require(Role::Staff)?;
    let name = change
        .name
        .as_deref()
        .map(|name| Name::parse("name", name))
        .transpose()?;
    match rooms::update_room(&state.pool, id, name.as_deref(), change.room_type_id).await? {
        RoomUpdate::Updated(room) => Ok(Json(room)),
        RoomUpdate::NotFound => Err(room_not_found(id)),
        RoomUpdate::BadRoomType => Err(Error::validation(
            "the room type does not exist or is not of the room's hotel",
        )),
    }
}

pub async fn delete(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    caller.require(Role::Staff)?;
    if rooms::delete_room(&state.pool, id)
        .await
        .map_err(in_use("room"))?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(room_not_found(id))
    }
}

fn room_not_found(id: Uuid) -> Error {
    Error::not_found(format!("no room with id {id}"))
}
