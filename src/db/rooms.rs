//! Rooms: a named room of a hotel, of one of that hotel's room types.

use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Debug, Serialize)]
pub struct Room {
    pub id: Uuid,
    pub hotel_id: Uuid,
    pub room_type_id: Uuid,
    pub name: String,
}

pub async fn list_rooms(pool: &PgPool, limit: i64, offset: i64) -> sqlx::Result<(Vec<Room>, i64)> {
    let rooms = sqlx::query_as!(
        Room,
        "select id, hotel_id, room_type_id, name from rooms order by hotel_id, name limit $1 offset $2",
        limit,
        offset
    )
    .fetch_all(pool)
    .await?;
    let total = sqlx::query_scalar!(r#"select count(*) as "count!" from rooms"#)
        .fetch_one(pool)
        .await?;
    Ok((rooms, total))
}

pub async fn find_room(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<Room>> {
    sqlx::query_as!(
        Room,
        "select id, hotel_id, room_type_id, name from rooms where id = $1",
        id
    )
    .fetch_optional(pool)
    .await
}

/// Creates a room. Without `hotel_id` the room type's hotel is used, or the
/// default hotel; without `room_type_id`, the hotel's default room type.
/// `None` when the hotel or room type does not exist or they do not match.
pub async fn create_room(
    pool: &PgPool,
    name: &str,
    hotel_id: Option<Uuid>,
    room_type_id: Option<Uuid>,
) -> sqlx::Result<Option<Room>> {
    sqlx::query_as!(
        Room,
        "insert into rooms (hotel_id, room_type_id, name)
         select rt.hotel_id, rt.id, $3
         from room_types rt
         where case when $2::uuid is not null then rt.id = $2
                    else rt.is_default
                         and rt.hotel_id = coalesce($1, (select id from hotels where is_default))
               end
           and ($1::uuid is null or rt.hotel_id = $1)
         returning id, hotel_id, room_type_id, name",
        hotel_id,
        room_type_id,
        name
    )
    .fetch_optional(pool)
    .await
}

pub enum RoomUpdate {
    Updated(Room),
    NotFound,
    /// The room type does not exist or is of another hotel.
    BadRoomType,
}

/// Renames a room and/or moves it to another room type of its hotel.
pub async fn update_room(
    pool: &PgPool,
    id: Uuid,
    name: Option<&str>,
    room_type_id: Option<Uuid>,
) -> sqlx::Result<RoomUpdate> {
    let mut tx = pool.begin().await?;
    let Some(room) = sqlx::query_as!(
        Room,
        "select id, hotel_id, room_type_id, name from rooms where id = $1 for update",
        id
    )
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(RoomUpdate::NotFound);
    };
    if let Some(room_type_id) = room_type_id {
        let same_hotel = sqlx::query_scalar!(
            r#"select exists (select 1 from room_types where id = $1 and hotel_id = $2) as "exists!""#,
            room_type_id,
            room.hotel_id
        )
        .fetch_one(&mut *tx)
        .await?;
        if !same_hotel {
            return Ok(RoomUpdate::BadRoomType);
        }
    }
    let room = sqlx::query_as!(
        Room,
        "update rooms set name = coalesce($2, name), room_type_id = coalesce($3, room_type_id)
         where id = $1
         returning id, hotel_id, room_type_id, name",
        id,
        name,
        room_type_id
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(RoomUpdate::Updated(room))
}

/// Deletes a room; `false` when there is none. A room that bookings refer to
/// is kept: the foreign key refuses with `23503`.
pub async fn delete_room(pool: &PgPool, id: Uuid) -> sqlx::Result<bool> {
    let deleted = sqlx::query!("delete from rooms where id = $1", id)
        .execute(pool)
        .await?;
    Ok(deleted.rows_affected() == 1)
}
