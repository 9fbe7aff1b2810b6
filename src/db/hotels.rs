//! Hotels and their inventory: room types, rate plans and daily rates.

use std::time::Duration;

use chrono::{NaiveDate, NaiveTime};
use rust_decimal::Decimal;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::in_transaction;

use crate::domain::{DailyRate, Hotel, RatePlan, RoomType, Window};

pub struct NewHotel {
    pub name: String,
    pub city: String,
    pub timezone: String,
    pub check_in_time: NaiveTime,
    pub check_out_time: NaiveTime,
}

#[derive(Clone, Default)]
pub struct HotelChange {
    pub name: Option<String>,
    pub city: Option<String>,
    pub timezone: Option<String>,
    pub check_in_time: Option<NaiveTime>,
    pub check_out_time: Option<NaiveTime>,
}

pub async fn list_hotels(
    pool: &PgPool,
    city: Option<&str>,
    window: Window,
) -> sqlx::Result<(Vec<Hotel>, i64)> {
    super::page_of(window, move |window| async move {
        let rows = sqlx::query!(
            r#"select id, name, city, timezone, check_in_time, check_out_time, count(*) over () as "total!"
               from hotels
               where $1::text is null or city = $1
               order by name, id limit $2 offset $3"#,
            city,
            window.limit,
            window.offset
        )
        .fetch_all(pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let hotel = Hotel {
                    id: row.id,
                    name: row.name,
                    city: row.city,
                    timezone: row.timezone,
                    check_in_time: row.check_in_time,
                    check_out_time: row.check_out_time,
                };
                (hotel, row.total)
            })
            .collect())
    })
    .await
}

pub async fn find_hotel(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<Hotel>> {
    sqlx::query_as!(
        Hotel,
        "select id, name, city, timezone, check_in_time, check_out_time from hotels where id = $1",
        id
    )
    .fetch_optional(pool)
    .await
}

/// Creates a hotel with its default room type, in one transaction.
pub async fn create_hotel(pool: &PgPool, hotel: NewHotel) -> sqlx::Result<Hotel> {
    let mut tx = pool.begin().await?;
    let hotel = sqlx::query_as!(
        Hotel,
        "insert into hotels (name, city, timezone, check_in_time, check_out_time)
         values ($1, $2, $3, $4, $5)
         returning id, name, city, timezone, check_in_time, check_out_time",
        hotel.name,
        hotel.city,
        hotel.timezone,
        hotel.check_in_time,
        hotel.check_out_time
    )
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query!(
        "insert into room_types (hotel_id, name, capacity, is_default) values ($1, 'Standard', 2, true)",
        hotel.id
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(hotel)
}

/// Changes a hotel; a new time zone or new times move its bookings' instants.
/// Waiting for the bookings being written takes at most `lock_wait` an
/// attempt (see `update_hotel_once`).
pub async fn update_hotel(
    pool: &PgPool,
    id: Uuid,
    change: HotelChange,
    lock_wait: Duration,
) -> sqlx::Result<Option<Hotel>> {
    let lock_timeout = format!("{}ms", lock_wait.as_millis().max(1));
    let mut conn = pool.acquire().await?;
    in_transaction(&mut conn, move |tx| {
        let (change, lock_timeout) = (change.clone(), lock_timeout.clone());
        Box::pin(async move { update_hotel_once(tx, id, change, &lock_timeout).await })
    })
    .await
}

async fn update_hotel_once(
    tx: &mut PgConnection,
    id: Uuid,
    change: HotelChange,
    lock_timeout: &str,
) -> sqlx::Result<Option<Hotel>> {
    // A booking's check-in and check-out instants are the hotel's local times
    // on its dates: those of its confirmed bookings, and the check-out of its
    // checked-in ones, follow a new time zone or new times. Every statement
    // that writes a booking's instants computes them from the hotel's row in
    // that statement. The lock on `bookings` makes a change of the zone or the
    // times wait for the transactions writing bookings to end, so that the
    // update below sees their bookings, and makes those that start meanwhile
    // wait for this one's commit, so that they read the new row: a
    // statement's snapshot is taken after its locks. (Exclusive mode: reads go
    // on, writes of `bookings` wait, and a transaction that has locked a
    // booking's row to change it is waited for, not deadlocked with.)
    // The hotel's row is locked first, as `DELETE /hotels/{id}` locks it
    // before its foreign keys read `bookings`. Every booking queues behind
    // the table lock while it is awaited, so the wait is short (`lock_timeout`,
    // `HOTEL_CHANGE_LOCK_WAIT`); after it the transaction is run again, and in
    // the end answered `503` (a long transaction or a vacuum of `bookings`).
    let moves_instants = change.timezone.is_some()
        || change.check_in_time.is_some()
        || change.check_out_time.is_some();
    if moves_instants {
        let found = sqlx::query_scalar!(
            "select true from hotels where id = $1 for no key update",
            id
        )
        .fetch_optional(&mut *tx)
        .await?;
        if found.is_none() {
            return Ok(None);
        }
        sqlx::query!("select set_config('lock_timeout', $1, true)", lock_timeout)
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query!("lock table bookings in exclusive mode")
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query_as!(
        Hotel,
        "with hotel as (
             update hotels set name = coalesce($2, name), city = coalesce($3, city),
                    timezone = coalesce($4, timezone), check_in_time = coalesce($5, check_in_time),
                    check_out_time = coalesce($6, check_out_time)
             where id = $1
             returning id, name, city, timezone, check_in_time, check_out_time
         ),
         moved as (
             update bookings b
             set check_in_at = case when b.status = 'confirmed'
                                    then (lower(b.stay) + h.check_in_time) at time zone h.timezone
                                    else b.check_in_at end,
                 check_out_at = (upper(b.stay) + h.check_out_time) at time zone h.timezone
             from hotel h
             where b.room_id in (select r.id from rooms r where r.hotel_id = $1)
               and b.status in ('confirmed', 'checked_in')
               and $7
         )
         select id as \"id!\", name as \"name!\", city as \"city!\", timezone as \"timezone!\",
                check_in_time as \"check_in_time!\", check_out_time as \"check_out_time!\"
         from hotel",
        id,
        change.name,
        change.city,
        change.timezone,
        change.check_in_time,
        change.check_out_time,
        moves_instants
    )
    .fetch_optional(&mut *tx)
    .await
}

pub enum Deletion {
    Deleted,
    NotFound,
    /// The default hotel, or a hotel's default room type.
    Default,
}

impl Deletion {
    fn of(deleted: Option<bool>) -> Deletion {
        match deleted {
            None => Deletion::NotFound,
            Some(true) => Deletion::Default,
            Some(false) => Deletion::Deleted,
        }
    }
}

/// Deletes a hotel and its inventory, unless it is the default hotel; refused
/// by a foreign key (`bookings_room_id_fkey`) when bookings refer to it.
pub async fn delete_hotel(pool: &PgPool, id: Uuid) -> sqlx::Result<Deletion> {
    let is_default = sqlx::query_scalar!(
        r#"with target as (select id, is_default from hotels where id = $1),
                deleted as (delete from hotels h using target t where h.id = t.id and not t.is_default)
           select is_default as "is_default!" from target"#,
        id
    )
    .fetch_optional(pool)
    .await?;
    Ok(Deletion::of(is_default))
}

pub async fn list_room_types(
    pool: &PgPool,
    hotel_id: Uuid,
    window: Window,
) -> sqlx::Result<(Vec<RoomType>, i64)> {
    super::page_of(window, move |window| async move {
        let rows = sqlx::query!(
            r#"select id, hotel_id, name, capacity, count(*) over () as "total!"
               from room_types where hotel_id = $1
               order by name, id limit $2 offset $3"#,
            hotel_id,
            window.limit,
            window.offset
        )
        .fetch_all(pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let room_type = RoomType {
                    id: row.id,
                    hotel_id: row.hotel_id,
                    name: row.name,
                    capacity: row.capacity,
                };
                (room_type, row.total)
            })
            .collect())
    })
    .await
}

pub async fn create_room_type(
    pool: &PgPool,
    hotel_id: Uuid,
    name: &str,
    capacity: i32,
) -> sqlx::Result<RoomType> {
    sqlx::query_as!(
        RoomType,
        "insert into room_types (hotel_id, name, capacity) values ($1, $2, $3)
         returning id, hotel_id, name, capacity",
        hotel_id,
        name,
        capacity
    )
    .fetch_one(pool)
    .await
}

pub async fn update_room_type(
    pool: &PgPool,
    hotel_id: Uuid,
    id: Uuid,
    name: Option<&str>,
    capacity: Option<i32>,
) -> sqlx::Result<Option<RoomType>> {
    sqlx::query_as!(
        RoomType,
        "update room_types set name = coalesce($3, name), capacity = coalesce($4, capacity)
         where id = $2 and hotel_id = $1
         returning id, hotel_id, name, capacity",
        hotel_id,
        id,
        name,
        capacity
    )
    .fetch_optional(pool)
    .await
}

/// Deletes a room type and its rates, unless it is the hotel's default one;
/// refused by a foreign key while rooms are of it.
pub async fn delete_room_type(pool: &PgPool, hotel_id: Uuid, id: Uuid) -> sqlx::Result<Deletion> {
    let is_default = sqlx::query_scalar!(
        r#"with target as (select id, is_default from room_types where id = $1 and hotel_id = $2),
                deleted as (delete from room_types rt using target t where rt.id = t.id and not t.is_default)
           select is_default as "is_default!" from target"#,
        id,
        hotel_id
    )
    .fetch_optional(pool)
    .await?;
    Ok(Deletion::of(is_default))
}

pub async fn list_rate_plans(
    pool: &PgPool,
    hotel_id: Uuid,
    window: Window,
) -> sqlx::Result<(Vec<RatePlan>, i64)> {
    super::page_of(window, move |window| async move {
        let rows = sqlx::query!(
            r#"select id, hotel_id, name, free_cancellation_hours, count(*) over () as "total!"
               from rate_plans where hotel_id = $1
               order by name, id limit $2 offset $3"#,
            hotel_id,
            window.limit,
            window.offset
        )
        .fetch_all(pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let plan = RatePlan {
                    id: row.id,
                    hotel_id: row.hotel_id,
                    name: row.name,
                    free_cancellation_hours: row.free_cancellation_hours,
                };
                (plan, row.total)
            })
            .collect())
    })
    .await
}

pub async fn create_rate_plan(
    pool: &PgPool,
    hotel_id: Uuid,
    name: &str,
    free_cancellation_hours: Option<i32>,
) -> sqlx::Result<RatePlan> {
    sqlx::query_as!(
        RatePlan,
        "insert into rate_plans (hotel_id, name, free_cancellation_hours) values ($1, $2, $3)
         returning id, hotel_id, name, free_cancellation_hours",
        hotel_id,
        name,
        free_cancellation_hours
    )
    .fetch_one(pool)
    .await
}

/// `free_cancellation_hours`: `Some(None)` makes the plan non-refundable.
pub async fn update_rate_plan(
    pool: &PgPool,
    hotel_id: Uuid,
    id: Uuid,
    name: Option<&str>,
    free_cancellation_hours: Option<Option<i32>>,
) -> sqlx::Result<Option<RatePlan>> {
    let (set_hours, hours) = match free_cancellation_hours {
        Some(hours) => (true, hours),
        None => (false, None),
    };
    sqlx::query_as!(
        RatePlan,
        "update rate_plans set name = coalesce($3, name),
                free_cancellation_hours = case when $4 then $5 else free_cancellation_hours end
         where id = $2 and hotel_id = $1
         returning id, hotel_id, name, free_cancellation_hours",
        hotel_id,
        id,
        name,
        set_hours,
        hours
    )
    .fetch_optional(pool)
    .await
}

/// Deletes a rate plan and its rates; refused by a foreign key
/// (`bookings_rate_plan_id_fkey`) when bookings refer to it.
pub async fn delete_rate_plan(pool: &PgPool, hotel_id: Uuid, id: Uuid) -> sqlx::Result<Deletion> {
    let deleted = sqlx::query!(
        "delete from rate_plans where id = $1 and hotel_id = $2",
        id,
        hotel_id
    )
    .execute(pool)
    .await?;
    Ok(Deletion::of(
        (deleted.rows_affected() == 1).then_some(false),
    ))
}

pub struct RatesUpsert {
    pub room_type_id: Uuid,
    pub rate_plan_id: Uuid,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub price: Decimal,
    pub currency: String,
}

/// Sets the price of every night in `[from, to)`. `None` when the room type or
/// the rate plan is not of this hotel.
pub async fn upsert_rates(
    pool: &PgPool,
    hotel_id: Uuid,
    rates: RatesUpsert,
) -> sqlx::Result<Option<Vec<DailyRate>>> {
    let mut tx = pool.begin().await?;
    let matches = sqlx::query_scalar!(
        r#"select exists (select 1 from room_types where id = $2 and hotel_id = $1)
              and exists (select 1 from rate_plans where id = $3 and hotel_id = $1) as "matches!""#,
        hotel_id,
        rates.room_type_id,
        rates.rate_plan_id
    )
    .fetch_one(&mut *tx)
    .await?;
    if !matches {
        return Ok(None);
    }
    let items = sqlx::query_as!(
        DailyRate,
        r#"insert into daily_rates (room_type_id, rate_plan_id, date, price, currency)
           select $1, $2, night::date, $5, $6
           from generate_series($3::date, $4::date - 1, interval '1 day') as night
           on conflict (room_type_id, rate_plan_id, date)
               do update set price = excluded.price, currency = excluded.currency
           returning room_type_id, rate_plan_id, date, price, currency as "currency!""#,
        rates.room_type_id,
        rates.rate_plan_id,
        rates.from,
        rates.to,
        rates.price,
        rates.currency
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(items))
}

#[derive(Clone, Copy)]
pub struct RatesQuery {
    pub room_type_id: Option<Uuid>,
    pub rate_plan_id: Option<Uuid>,
    pub from: NaiveDate,
    pub to: NaiveDate,
}

pub async fn list_rates(
    pool: &PgPool,
    hotel_id: Uuid,
    query: RatesQuery,
    window: Window,
) -> sqlx::Result<(Vec<DailyRate>, i64)> {
    super::page_of(window, move |window| async move {
        let rows = sqlx::query!(
            r#"select d.room_type_id, d.rate_plan_id, d.date, d.price, d.currency as "currency!",
                      count(*) over () as "total!"
               from daily_rates d join room_types rt on rt.id = d.room_type_id
               where rt.hotel_id = $1 and ($2::uuid is null or d.room_type_id = $2)
                 and ($3::uuid is null or d.rate_plan_id = $3) and d.date >= $4 and d.date < $5
               order by d.date, d.room_type_id, d.rate_plan_id limit $6 offset $7"#,
            hotel_id,
            query.room_type_id,
            query.rate_plan_id,
            query.from,
            query.to,
            window.limit,
            window.offset
        )
        .fetch_all(pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let rate = DailyRate {
                    room_type_id: row.room_type_id,
                    rate_plan_id: row.rate_plan_id,
                    date: row.date,
                    price: row.price,
                    currency: row.currency,
                };
                (rate, row.total)
            })
            .collect())
    })
    .await
}
