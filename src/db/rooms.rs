//! Rooms: a named room of a hotel, of one of that hotel's room types.

use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::{Room, Window};

pub async fn list_rooms(pool: &PgPool, window: Window) -> sqlx::Result<(Vec<Room>, i64)> {
    super::page_of(window, move |window| async move {
        let rows = sqlx::query!(
            r#"select id, hotel_id, room_type_id, name, count(*) over () as "total!"
               from rooms order by hotel_id, name limit $1 offset $2"#,
            window.limit,
            window.offset
        )
        .fetch_all(pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let room = Room {
                    id: row.id,
                    hotel_id: row.hotel_id,
                    room_type_id: row.room_type_id,
                    name: row.name,
                };
                (room, row.total)
            })
            .collect())
    })
    .await
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
/// is kept: the foreign key `bookings_room_id_fkey` refuses.
pub async fn delete_room(pool: &PgPool, id: Uuid) -> sqlx::Result<bool> {
    let deleted = sqlx::query!("delete from rooms where id = $1", id)
        .execute(pool)
        .await?;
    Ok(deleted.rows_affected() == 1)
}
