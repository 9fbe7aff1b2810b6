//! Priced stays: allocation of a free room, pricing from daily rates,
//! invoices, changes, cancellation and the status life cycle.
//!
//! Every write is one transaction ([`super::in_transaction`]: a savepoint
//! inside a caller's transaction, run again after a deadlock). The exclusion
//! constraint decides who gets a room: inserts use `on conflict do nothing`
//! and move on to the next free room; updates run in a savepoint and do the
//! same on `bookings_no_overlap`.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::postgres::types::PgRange;
use sqlx::{Connection, PgConnection, PgExecutor, PgPool};
use uuid::Uuid;

use super::invoices::{price_stay, rewrite_invoice, write_invoice};
use super::{MaybeRetryable, constraint, in_transaction, is_retryable};
use crate::domain::booking::{BookingLimits, check_arrival, check_capacity};
use crate::domain::pricing::cancellation_costs_a_fee;
use crate::domain::{Booking, BookingStatus, Pricing, Refusal, Stay, Window, hotel_today};

/// The constraint that keeps a room from being sold twice.
pub const NO_OVERLAP: &str = "bookings_no_overlap";

/// The foreign key of a booking's room: a booking that moves into a room
/// deleted meanwhile violates it.
const ROOM_EXISTS: &str = "bookings_room_id_fkey";

/// Why a booking write did not happen: a business rule, or the database.
#[derive(Debug, thiserror::Error)]
pub enum BookingError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl MaybeRetryable for BookingError {
    fn database_error(&self) -> Option<&sqlx::Error> {
        match self {
            BookingError::Database(error) => Some(error),
            BookingError::Refused(_) => None,
        }
    }

    /// Also a room deleted after it was found free: run again, the
    /// transaction no longer finds it.
    fn retryable(&self) -> bool {
        self.database_error()
            .is_some_and(|error| is_retryable(error) || constraint(error) == Some(ROOM_EXISTS))
    }
}

pub(super) type BookingResult<T> = Result<T, BookingError>;

/// What to book: a room of a type (the first free one), or one given room.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    RoomType(Uuid),
    Room(Uuid),
}

#[derive(Debug, Clone)]
pub struct NewBooking {
    pub hotel_id: Uuid,
    pub target: Target,
    pub rate_plan_id: Uuid,
    pub user_id: Uuid,
    pub stay: Stay,
    pub guests: i32,
    /// Guests are held to the guest limits; staff are not.
    pub by_guest: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct BookingChange {
    pub check_in: Option<NaiveDate>,
    pub check_out: Option<NaiveDate>,
    pub room_type_id: Option<Uuid>,
    pub by_guest: bool,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct BookingFilter {
    pub status: Option<BookingStatus>,
    pub hotel_id: Option<Uuid>,
    /// Stays that end after this date.
    pub from: Option<NaiveDate>,
    /// Stays that begin before this date.
    pub to: Option<NaiveDate>,
    /// Only this user's bookings.
    pub user_id: Option<Uuid>,
}

/// Who a booking is for.
pub async fn find_owner(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!("select user_id from bookings where id = $1", id)
        .fetch_optional(pool)
        .await
}

pub async fn find_booking(
    executor: impl PgExecutor<'_>,
    id: Uuid,
) -> sqlx::Result<Option<Booking>> {
    Ok(select_bookings(executor, &[id]).await?.into_iter().next())
}

/// A page of bookings: the ids of the page, with the count of all that match
/// (`count(*) over ()`), then the bookings themselves.
pub async fn list_bookings(
    pool: &PgPool,
    filter: BookingFilter,
    window: Window,
) -> sqlx::Result<(Vec<Booking>, i64)> {
    let (ids, total) = super::page_of(window, |window| async move {
        let rows = sqlx::query!(
            r#"select id as "id!", count(*) over () as "total!"
               from booking_details
               where ($1::booking_status is null or status = $1) and ($2::uuid is null or hotel_id = $2)
                 and ($3::date is null or check_out > $3) and ($4::date is null or check_in < $4)
                 and ($5::uuid is null or user_id = $5)
               order by check_in, created_at, id limit $6 offset $7"#,
            filter.status as Option<BookingStatus>,
            filter.hotel_id,
            filter.from,
            filter.to,
            filter.user_id,
            window.limit,
            window.offset
        )
        .fetch_all(pool)
        .await?;
        Ok(rows.into_iter().map(|row| (row.id, row.total)).collect())
    })
    .await?;
    Ok((select_bookings(pool, &ids).await?, total))
}

/// The one query that reads bookings as the API shows them: these ids, in
/// this order. Each is found by the primary key, in generic plans too.
async fn select_bookings(
    executor: impl PgExecutor<'_>,
    ids: &[Uuid],
) -> sqlx::Result<Vec<Booking>> {
    sqlx::query_as!(
        Booking,
        r#"select d.id as "id!", d.hotel_id as "hotel_id!", d.room_id as "room_id!", d.room_name as "room_name!",
                  d.room_type_id as "room_type_id!", d.user_id as "user_id!", d.user_name as "user_name!",
                  d.rate_plan_id, d.check_in as "check_in!", d.check_out as "check_out!",
                  d.check_in_at as "check_in_at!", d.check_out_at as "check_out_at!", d.timezone as "timezone!",
                  d.guests as "guests!", d.status as "status!: BookingStatus", d.total_price, d.currency,
                  d.created_at as "created_at!"
           from unnest($1::uuid[]) with ordinality as wanted (id, position)
           join booking_details d on d.id = wanted.id
           order by wanted.position"#,
        ids
    )
    .fetch_all(executor)
    .await
}

/// Books a stay: checks the request against the hotel and the rules, prices
/// it, allocates the first free room (the next one when a concurrent booking
/// wins a room), and writes booking and invoice in one transaction.
pub async fn create_booking(
    conn: &mut PgConnection,
    request: &NewBooking,
    limits: &BookingLimits,
) -> BookingResult<Booking> {
    let (request, limits) = (request.clone(), *limits);
    in_transaction(conn, move |tx| {
        let request = request.clone();
        Box::pin(async move { create_booking_once(tx, &request, &limits).await })
    })
    .await
}

async fn create_booking_once(
    tx: &mut PgConnection,
    request: &NewBooking,
    limits: &BookingLimits,
) -> BookingResult<Booking> {
    let (room_type_id, room_id) = match request.target {
        Target::RoomType(id) => (Some(id), None),
        Target::Room(id) => (None, Some(id)),
    };
    // The hotel's row is read with a share lock, so that the zone that gives
    // "today" below is the one the insert computes the instants in: a change
    // of the zone under way (it holds the row) is waited for and its new row
    // read, and one that comes later waits for this transaction.
    let context = sqlx::query!(
        r#"select h.timezone, rt.id as room_type_id, rt.capacity
           from hotels h
           join room_types rt on rt.hotel_id = h.id
           join rate_plans rp on rp.hotel_id = h.id
           where h.id = $1 and rp.id = $2
             and rt.id = coalesce($3, (select r.room_type_id from rooms r where r.id = $4 and r.hotel_id = $1))
           for share of h"#,
        request.hotel_id,
        request.rate_plan_id,
        room_type_id,
        room_id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Refusal::UnknownInventory)?;
    limits.check_in_allowed(request.stay.check_in(), hotel_today(&context.timezone))?;
    check_capacity(request.guests, context.capacity)?;
    if request.by_guest {
        limits.guest_stay_allowed(request.stay)?;
        // The guest's row is locked first, and its bookings counted by the
        // next statement, whose snapshot is taken once the lock is held: it
        // sees every booking of the transactions that held the lock before.
        // (Counted in the locking statement, the count would be of the
        // snapshot taken before the wait, and miss them.)
        sqlx::query_scalar!(
            "select id from users where id = $1 for update",
            request.user_id
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Refusal::UnknownUser)?;
        let live = sqlx::query_scalar!(
            r#"select count(*) as "live!" from live_bookings
               where user_id = $1 and status in ('confirmed', 'checked_in')"#,
            request.user_id
        )
        .fetch_one(&mut *tx)
        .await?;
        limits.guest_may_add_booking(live)?;
    }
    let pricing = price_stay(
        &mut *tx,
        context.room_type_id,
        request.rate_plan_id,
        request.stay,
    )
    .await?;
    let booking_id =
        insert_in_a_free_room(&mut *tx, request, context.room_type_id, &pricing).await?;
    write_invoice(&mut *tx, booking_id, &pricing).await?;
    let booking = find_booking(&mut *tx, booking_id)
        .await?
        .ok_or(sqlx::Error::RowNotFound)?;
    Ok(booking)
}

/// Moves a confirmed booking to new dates and/or another room type: keeps its
/// room when that is still free, else takes another; re-prices it and rewrites
/// its invoice. All or nothing. `None`: no such booking.
pub async fn change_booking(
    conn: &mut PgConnection,
    id: Uuid,
    change: BookingChange,
    limits: &BookingLimits,
) -> BookingResult<Option<Booking>> {
    let limits = *limits;
    in_transaction(conn, move |tx| {
        Box::pin(async move { change_booking_once(tx, id, change, &limits).await })
    })
    .await
}

async fn change_booking_once(
    tx: &mut PgConnection,
    id: Uuid,
    change: BookingChange,
    limits: &BookingLimits,
) -> BookingResult<Option<Booking>> {
    let Some(current) = sqlx::query!(
        r#"select b.room_id, r.room_type_id, r.hotel_id, lower(b.stay) as "check_in!", upper(b.stay) as "check_out!",
                  b.guests, b.status as "status: BookingStatus", b.rate_plan_id, h.timezone
           from bookings b join rooms r on r.id = b.room_id join hotels h on h.id = r.hotel_id
           where b.id = $1 for update of b"#,
        id
    )
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(None);
    };
    if current.status != BookingStatus::Confirmed {
        return Err(Refusal::NotChangeable.into());
    }
    let stay = Stay::new(
        change.check_in.unwrap_or(current.check_in),
        change.check_out.unwrap_or(current.check_out),
    )?;
    if stay.check_in() != current.check_in {
        limits.check_in_allowed(stay.check_in(), hotel_today(&current.timezone))?;
    }
    if change.by_guest {
        limits.guest_stay_allowed(stay)?;
    }
    let room_type_id = change.room_type_id.unwrap_or(current.room_type_id);
    let capacity = sqlx::query_scalar!(
        "select capacity from room_types where id = $1 and hotel_id = $2",
        room_type_id,
        current.hotel_id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Refusal::UnknownRoomType)?;
    check_capacity(current.guests, capacity)?;
    let pricing = match current.rate_plan_id {
        Some(rate_plan_id) => Some(price_stay(&mut *tx, room_type_id, rate_plan_id, stay).await?),
        None => None,
    };

    let room = CurrentRoom {
        id: current.room_id,
        room_type_id: current.room_type_id,
    };
    move_to_a_free_room(&mut *tx, id, room, room_type_id, stay, pricing.as_ref()).await?;
    if let Some(pricing) = &pricing {
        rewrite_invoice(&mut *tx, id, pricing).await?;
    }
    Ok(find_booking(&mut *tx, id).await?)
}

/// Inserts the booking in the requested room, or in the first room of the
/// type that is free (the next one when a concurrent booking wins a room).
async fn insert_in_a_free_room(
    tx: &mut PgConnection,
    request: &NewBooking,
    room_type_id: Uuid,
    pricing: &Pricing,
) -> BookingResult<Uuid> {
    let mut tried = Vec::new();
    loop {
        let candidates = match request.target {
            Target::Room(id) if tried.is_empty() => vec![id],
            Target::Room(_) => Vec::new(),
            Target::RoomType(_) => {
                free_rooms(&mut *tx, room_type_id, request.stay, None, &tried).await?
            }
        };
        if candidates.is_empty() {
            return Err(Refusal::NoRoomFree.into());
        }
        let mut booked = None;
        for room_id in candidates {
            tried.push(room_id);
            booked = sqlx::query_scalar!(
                "insert into bookings (room_id, user_id, stay, guests, check_in_at, check_out_at,
                                       rate_plan_id, total_price, currency)
                 select r.id, $2, $3, $4, (lower($3::daterange) + h.check_in_time) at time zone h.timezone,
                        (upper($3::daterange) + h.check_out_time) at time zone h.timezone, $5, $6, $7
                 from rooms r join hotels h on h.id = r.hotel_id
                 where r.id = $1
                 on conflict do nothing
                 returning id",
                room_id,
                request.user_id,
                request.stay.range() as PgRange<NaiveDate>,
                request.guests,
                request.rate_plan_id,
                pricing.total(),
                pricing.currency()
            )
            .fetch_optional(&mut *tx)
            .await
            .map_err(|error| match constraint(&error) {
                Some("bookings_user_id_fkey") => BookingError::Refused(Refusal::UnknownUser),
                _ => BookingError::Database(error),
            })?;
            if booked.is_some() {
                break;
            }
        }
        if let Some(id) = booked {
            return Ok(id);
        }
    }
}

/// The booking's room before a change.
#[derive(Clone, Copy)]
struct CurrentRoom {
    id: Uuid,
    room_type_id: Uuid,
}

/// Moves booking `id` to `stay` in a room of `room_type_id`: its current
/// room when that is of the type and still free, else the first free one
/// (the next when a concurrent booking or a deletion wins a room).
async fn move_to_a_free_room(
    tx: &mut PgConnection,
    id: Uuid,
    current: CurrentRoom,
    room_type_id: Uuid,
    stay: Stay,
    pricing: Option<&Pricing>,
) -> BookingResult<()> {
    let mut tried = Vec::new();
    let mut moved = false;
    while !moved {
        let mut candidates = Vec::new();
        if tried.is_empty() && room_type_id == current.room_type_id {
            // Keep the room when it is still free.
            candidates.push(current.id);
        }
        let exclude: Vec<Uuid> = tried.iter().chain(&candidates).copied().collect();
        candidates.extend(free_rooms(&mut *tx, room_type_id, stay, Some(id), &exclude).await?);
        if candidates.is_empty() {
            return Err(Refusal::NoRoomFree.into());
        }
        for room_id in candidates {
            tried.push(room_id);
            let mut savepoint = Connection::begin(&mut *tx).await?;
            let updated = sqlx::query!(
                "update bookings b
                 set room_id = r.id, stay = $3,
                     check_in_at = (lower($3::daterange) + h.check_in_time) at time zone h.timezone,
                     check_out_at = (upper($3::daterange) + h.check_out_time) at time zone h.timezone,
                     total_price = coalesce($4, b.total_price), currency = coalesce($5, b.currency)
                 from rooms r join hotels h on h.id = r.hotel_id
                 where b.id = $1 and r.id = $2",
                id,
                room_id,
                stay.range() as PgRange<NaiveDate>,
                pricing.map(Pricing::total),
                pricing.map(|p| p.currency().to_owned())
            )
            .execute(&mut *savepoint)
            .await;
            match updated {
                Ok(updated) if updated.rows_affected() == 1 => {
                    savepoint.commit().await?;
                    moved = true;
                    break;
                }
                // The room was deleted since it was found free (before this
                // statement began, or while it waited for the deletion to
                // commit): try the next.
                Ok(_) => savepoint.rollback().await?,
                Err(error) if matches!(constraint(&error), Some(NO_OVERLAP | ROOM_EXISTS)) => {
                    savepoint.rollback().await?
                }
                Err(error) => return Err(error.into()),
            }
        }
    }
    Ok(())
}

/// Cancels a booking: frees its nights, and voids its invoice or turns it
/// into a first-night fee when the rate plan's free cancellation has passed
/// (or never existed). Cancelling a cancelled booking changes nothing.
pub async fn cancel_booking(conn: &mut PgConnection, id: Uuid) -> BookingResult<Option<Booking>> {
    in_transaction(conn, move |tx| Box::pin(cancel_booking_once(tx, id))).await
}

async fn cancel_booking_once(tx: &mut PgConnection, id: Uuid) -> BookingResult<Option<Booking>> {
    let Some(current) = sqlx::query!(
        r#"select b.status as "status: BookingStatus", b.check_in_at, b.rate_plan_id,
                  rp.free_cancellation_hours, now() as "now!"
           from bookings b left join rate_plans rp on rp.id = b.rate_plan_id
           where b.id = $1 for update of b"#,
        id
    )
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(None);
    };
    if current.status != BookingStatus::Cancelled {
        current.status.transition(BookingStatus::Cancelled)?;
        sqlx::query!("update bookings set status = 'cancelled' where id = $1", id)
            .execute(&mut *tx)
            .await?;
        let now: DateTime<Utc> = current.now;
        let fee = current.rate_plan_id.is_some()
            && cancellation_costs_a_fee(current.free_cancellation_hours, current.check_in_at, now);
        if fee {
            // The fee is the first night: keep that line, drop the others.
            sqlx::query!(
                "with invoice as (select id from invoices where booking_id = $1)
                 delete from invoice_lines where invoice_id = (select id from invoice) and position > 1",
                id
            )
            .execute(&mut *tx)
            .await?;
            sqlx::query!(
                "update invoices i set status = 'cancellation_fee', updated_at = now(),
                        total = (select l.amount from invoice_lines l where l.invoice_id = i.id and l.position = 1)
                 where booking_id = $1",
                id
            )
            .execute(&mut *tx)
            .await?;
        } else {
            sqlx::query!(
                "update invoices set status = 'void', total = 0, updated_at = now() where booking_id = $1",
                id
            )
            .execute(&mut *tx)
            .await?;
        }
    }
    Ok(find_booking(&mut *tx, id).await?)
}

/// Moves a booking along its life cycle (`checked_in`, `checked_out`,
/// `no_show`). Check-in and no-show wait for the check-in date in the hotel's zone.
pub async fn transition_booking(
    conn: &mut PgConnection,
    id: Uuid,
    next: BookingStatus,
) -> BookingResult<Option<Booking>> {
    in_transaction(conn, move |tx| {
        Box::pin(transition_booking_once(tx, id, next))
    })
    .await
}

async fn transition_booking_once(
    tx: &mut PgConnection,
    id: Uuid,
    next: BookingStatus,
) -> BookingResult<Option<Booking>> {
    let Some(current) = sqlx::query!(
        r#"select b.status as "status: BookingStatus", lower(b.stay) as "check_in!", h.timezone
           from bookings b join rooms r on r.id = b.room_id join hotels h on h.id = r.hotel_id
           where b.id = $1 for update of b"#,
        id
    )
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(None);
    };
    current.status.transition(next)?;
    check_arrival(next, current.check_in, hotel_today(&current.timezone))?;
    sqlx::query!(
        "update bookings set status = $2 where id = $1",
        id,
        next as BookingStatus
    )
    .execute(&mut *tx)
    .await?;
    Ok(find_booking(&mut *tx, id).await?)
}

/// How many free rooms allocation asks for at a time.
const CANDIDATES: i64 = 8;

/// Rooms of a type with no live booking overlapping the stay (besides
/// `except`), by name, leaving out those already tried. A snapshot: the
/// constraint has the last word. Walks `rooms_room_type_name` and stops at
/// the first free ones, so its cost does not grow with the hotel.
async fn free_rooms(
    conn: &mut PgConnection,
    room_type_id: Uuid,
    stay: Stay,
    except: Option<Uuid>,
    tried: &[Uuid],
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        "select r.id from rooms r
         where r.room_type_id = $1 and r.id <> all($4)
           and not exists (select 1 from live_bookings b
                           where b.room_id = r.id and b.stay && $2 and b.id is distinct from $3)
         order by r.room_type_id, r.name
         limit $5",
        room_type_id,
        stay.range() as PgRange<NaiveDate>,
        except,
        tried,
        CANDIDATES
    )
    .fetch_all(conn)
    .await
}
