//! Priced stays: allocation of a free room, pricing from daily rates,
//! invoices, changes, cancellation and the status life cycle.
//!
//! Every write is one transaction. The exclusion constraint decides who gets
//! a room: inserts use `on conflict do nothing` and move on to the next free
//! room; updates run in a savepoint and do the same on `23P01`.

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::postgres::types::PgRange;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::{BookingStatus, Stay, parse_timezone, today_in};
use crate::error::{Error, Result};

/// A booking as the API shows it; instants carry the hotel's UTC offset.
#[derive(Debug, Serialize)]
pub struct Booking {
    pub id: Uuid,
    pub hotel_id: Uuid,
    pub room_id: Uuid,
    pub room_name: String,
    pub room_type_id: Uuid,
    pub user_id: Uuid,
    pub user_name: String,
    pub rate_plan_id: Option<Uuid>,
    pub check_in: NaiveDate,
    pub check_out: NaiveDate,
    pub check_in_at: DateTime<FixedOffset>,
    pub check_out_at: DateTime<FixedOffset>,
    pub guests: i32,
    pub status: BookingStatus,
    #[serde(serialize_with = "crate::domain::money::option::serialize")]
    pub total_price: Option<Decimal>,
    pub currency: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A row of the `booking_details` view.
struct BookingRow {
    id: Uuid,
    hotel_id: Uuid,
    room_id: Uuid,
    room_name: String,
    room_type_id: Uuid,
    user_id: Uuid,
    user_name: String,
    rate_plan_id: Option<Uuid>,
    check_in: NaiveDate,
    check_out: NaiveDate,
    check_in_at: DateTime<Utc>,
    check_out_at: DateTime<Utc>,
    timezone: String,
    guests: i32,
    status: BookingStatus,
    total_price: Option<Decimal>,
    currency: Option<String>,
    created_at: DateTime<Utc>,
}

impl From<BookingRow> for Booking {
    fn from(row: BookingRow) -> Self {
        let local = |instant: DateTime<Utc>| match parse_timezone(&row.timezone) {
            Ok(zone) => instant.with_timezone(&zone).fixed_offset(),
            Err(_) => instant.fixed_offset(),
        };
        Booking {
            id: row.id,
            hotel_id: row.hotel_id,
            room_id: row.room_id,
            room_name: row.room_name,
            room_type_id: row.room_type_id,
            user_id: row.user_id,
            user_name: row.user_name,
            rate_plan_id: row.rate_plan_id,
            check_in: row.check_in,
            check_out: row.check_out,
            check_in_at: local(row.check_in_at),
            check_out_at: local(row.check_out_at),
            guests: row.guests,
            status: row.status,
            total_price: row.total_price,
            currency: row.currency,
            created_at: row.created_at,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Invoice {
    pub id: Uuid,
    pub booking_id: Uuid,
    pub status: InvoiceStatus,
    pub currency: String,
    #[serde(serialize_with = "crate::domain::money::serialize")]
    pub total: Decimal,
    pub lines: Vec<InvoiceLine>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type)]
#[sqlx(type_name = "invoice_status", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum InvoiceStatus {
    Open,
    Void,
    CancellationFee,
}

#[derive(Debug, Serialize)]
pub struct InvoiceLine {
    pub date: NaiveDate,
    pub description: String,
    #[serde(serialize_with = "crate::domain::money::serialize")]
    pub amount: Decimal,
}

/// What to book: a room of a type (the first free one), or one given room.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    RoomType(Uuid),
    Room(Uuid),
}

pub struct NewBooking {
    pub hotel_id: Uuid,
    pub target: Target,
    pub rate_plan_id: Uuid,
    pub user_id: Uuid,
    pub stay: Stay,
    pub guests: i32,
}

/// The nightly prices of a stay, each night priced.
struct Pricing {
    nights: Vec<NaiveDate>,
    prices: Vec<Decimal>,
    currency: String,
}

impl Pricing {
    fn total(&self) -> Decimal {
        self.prices.iter().sum()
    }
}

/// Who a booking is for.
pub async fn find_owner(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!("select user_id from bookings where id = $1", id)
        .fetch_optional(pool)
        .await
}

pub async fn find_booking(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<Booking>> {
    let mut conn = pool.acquire().await?;
    fetch_booking(&mut conn, id).await
}

async fn fetch_booking(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Booking>> {
    let row = sqlx::query_as!(
        BookingRow,
        r#"select id as "id!", hotel_id as "hotel_id!", room_id as "room_id!", room_name as "room_name!",
                  room_type_id as "room_type_id!", user_id as "user_id!", user_name as "user_name!",
                  rate_plan_id, check_in as "check_in!", check_out as "check_out!",
                  check_in_at as "check_in_at!", check_out_at as "check_out_at!", timezone as "timezone!",
                  guests as "guests!", status as "status!: BookingStatus", total_price, currency,
                  created_at as "created_at!"
           from booking_details where id = $1"#,
        id
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(Booking::from))
}

#[derive(Debug, Default)]
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

pub async fn list_bookings(
    pool: &PgPool,
    filter: BookingFilter,
    limit: i64,
    offset: i64,
) -> sqlx::Result<(Vec<Booking>, i64)> {
    let rows = sqlx::query_as!(
        BookingRow,
        r#"select id as "id!", hotel_id as "hotel_id!", room_id as "room_id!", room_name as "room_name!",
                  room_type_id as "room_type_id!", user_id as "user_id!", user_name as "user_name!",
                  rate_plan_id, check_in as "check_in!", check_out as "check_out!",
                  check_in_at as "check_in_at!", check_out_at as "check_out_at!", timezone as "timezone!",
                  guests as "guests!", status as "status!: BookingStatus", total_price, currency,
                  created_at as "created_at!"
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
        limit,
        offset
    )
    .fetch_all(pool)
    .await?;
    let total = sqlx::query_scalar!(
        r#"select count(*) as "count!" from booking_details
           where ($1::booking_status is null or status = $1) and ($2::uuid is null or hotel_id = $2)
             and ($3::date is null or check_out > $3) and ($4::date is null or check_in < $4)
             and ($5::uuid is null or user_id = $5)"#,
        filter.status as Option<BookingStatus>,
        filter.hotel_id,
        filter.from,
        filter.to,
        filter.user_id
    )
    .fetch_one(pool)
    .await?;
    Ok((rows.into_iter().map(Booking::from).collect(), total))
}

/// Books a stay: checks the request against the hotel, prices it, allocates
/// the first free room (the next one when a concurrent booking wins a room),
/// and writes booking and invoice in one transaction.
pub async fn create_booking(pool: &PgPool, request: NewBooking) -> Result<Booking> {
    let mut tx = pool.begin().await?;
    let (room_type_id, room_id) = match request.target {
        Target::RoomType(id) => (Some(id), None),
        Target::Room(id) => (None, Some(id)),
    };
    let context = sqlx::query!(
        r#"select h.timezone, rt.id as room_type_id, rt.capacity
           from hotels h
           join room_types rt on rt.hotel_id = h.id
           join rate_plans rp on rp.hotel_id = h.id
           where h.id = $1 and rp.id = $2
             and rt.id = coalesce($3, (select r.room_type_id from rooms r where r.id = $4 and r.hotel_id = $1))"#,
        request.hotel_id,
        request.rate_plan_id,
        room_type_id,
        room_id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| {
        Error::validation("the hotel, room type, room or rate plan does not exist, or is not of that hotel")
    })?;
    refuse_past(&context.timezone, request.stay.check_in())?;
    if request.guests > context.capacity {
        return Err(over_capacity(context.capacity));
    }
    let pricing = price_stay(
        &mut tx,
        context.room_type_id,
        request.rate_plan_id,
        request.stay,
    )
    .await?;
    let candidates = match request.target {
        Target::Room(id) => vec![id],
        Target::RoomType(id) => free_rooms(&mut tx, id, request.stay, None).await?,
    };
    let mut booking_id = None;
    for room_id in candidates {
        booking_id = sqlx::query_scalar!(
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
            pricing.currency
        )
        .fetch_optional(&mut *tx)
        .await?;
        if booking_id.is_some() {
            break;
        }
    }
    let booking_id = booking_id.ok_or_else(no_room_free)?;
    write_invoice(&mut tx, booking_id, &pricing).await?;
    let booking = fetch_booking(&mut tx, booking_id)
        .await?
        .ok_or_else(|| Error::Internal("a new booking vanished".into()))?;
    tx.commit().await?;
    Ok(booking)
}

pub struct BookingChange {
    pub check_in: Option<NaiveDate>,
    pub check_out: Option<NaiveDate>,
    pub room_type_id: Option<Uuid>,
}

/// Moves a confirmed booking to new dates and/or another room type: keeps its
/// room when that is still free, else takes another; re-prices it and rewrites
/// its invoice. All or nothing.
pub async fn change_booking(
    pool: &PgPool,
    id: Uuid,
    change: BookingChange,
) -> Result<Option<Booking>> {
    let mut tx = pool.begin().await?;
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
        return Err(Error::conflict(
            "invalid_transition",
            "only a confirmed booking can be changed",
        ));
    }
    let stay = Stay::new(
        change.check_in.unwrap_or(current.check_in),
        change.check_out.unwrap_or(current.check_out),
    )?;
    if stay.check_in() != current.check_in {
        refuse_past(&current.timezone, stay.check_in())?;
    }
    let room_type_id = change.room_type_id.unwrap_or(current.room_type_id);
    let capacity = sqlx::query_scalar!(
        "select capacity from room_types where id = $1 and hotel_id = $2",
        room_type_id,
        current.hotel_id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| {
        Error::validation("the room type does not exist or is not of the booking's hotel")
    })?;
    if current.guests > capacity {
        return Err(over_capacity(capacity));
    }
    let pricing = match current.rate_plan_id {
        Some(rate_plan_id) => Some(price_stay(&mut tx, room_type_id, rate_plan_id, stay).await?),
        None => None,
    };

    let mut candidates = Vec::new();
    if room_type_id == current.room_type_id {
        candidates.push(current.room_id);
    }
    candidates.extend(free_rooms(&mut tx, room_type_id, stay, Some(id)).await?);
    let mut moved = false;
    for room_id in candidates {
        let mut savepoint = sqlx::Connection::begin(&mut *tx).await?;
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
            pricing.as_ref().map(Pricing::total),
            pricing.as_ref().map(|p| p.currency.clone())
        )
        .execute(&mut *savepoint)
        .await;
        match updated {
            Ok(_) => {
                savepoint.commit().await?;
                moved = true;
                break;
            }
            Err(error) if is_exclusion_violation(&error) => savepoint.rollback().await?,
            Err(error) => return Err(error.into()),
        }
    }
    if !moved {
        return Err(no_room_free());
    }
    if let Some(pricing) = &pricing {
        sqlx::query!(
            "delete from invoice_lines where invoice_id = (select id from invoices where booking_id = $1)",
            id
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!("delete from invoices where booking_id = $1", id)
            .execute(&mut *tx)
            .await?;
        write_invoice(&mut tx, id, pricing).await?;
    }
    let booking = fetch_booking(&mut tx, id).await?;
    tx.commit().await?;
    Ok(booking)
}

/// Cancels a booking: frees its nights, and voids its invoice or turns it
/// into a first-night fee when the rate plan's free cancellation has passed
/// (or never existed). Cancelling a cancelled booking changes nothing.
pub async fn cancel_booking(pool: &PgPool, id: Uuid) -> Result<Option<Booking>> {
    let mut tx = pool.begin().await?;
    let Some(current) = sqlx::query!(
        r#"select b.status as "status: BookingStatus",
                  rp.id is not null and (rp.free_cancellation_hours is null
                      or now() > b.check_in_at - make_interval(hours => rp.free_cancellation_hours)) as "fee!"
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
        if !current.status.can_become(BookingStatus::Cancelled) {
            return Err(invalid_transition(current.status, BookingStatus::Cancelled));
        }
        sqlx::query!("update bookings set status = 'cancelled' where id = $1", id)
            .execute(&mut *tx)
            .await?;
        if current.fee {
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
    let booking = fetch_booking(&mut tx, id).await?;
    tx.commit().await?;
    Ok(booking)
}

/// Moves a booking along its life cycle (`checked_in`, `checked_out`,
/// `no_show`). Check-in and no-show wait for the check-in date in the hotel's zone.
pub async fn transition_booking(
    pool: &PgPool,
    id: Uuid,
    next: BookingStatus,
) -> Result<Option<Booking>> {
    let mut tx = pool.begin().await?;
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
    if !current.status.can_become(next) {
        return Err(invalid_transition(current.status, next));
    }
    if matches!(next, BookingStatus::CheckedIn | BookingStatus::NoShow) {
        let today = today_in(parse_timezone(&current.timezone)?);
        if today < current.check_in {
            return Err(Error::conflict(
                "too_early",
                format!(
                    "the stay begins on {}; today is {today} at the hotel",
                    current.check_in
                ),
            ));
        }
    }
    sqlx::query!(
        "update bookings set status = $2 where id = $1",
        id,
        next as BookingStatus
    )
    .execute(&mut *tx)
    .await?;
    let booking = fetch_booking(&mut tx, id).await?;
    tx.commit().await?;
    Ok(booking)
}

pub async fn find_invoice(pool: &PgPool, booking_id: Uuid) -> sqlx::Result<Option<Invoice>> {
    let Some(invoice) = sqlx::query!(
        r#"select id, booking_id, status as "status: InvoiceStatus", currency as "currency!", total
           from invoices where booking_id = $1"#,
        booking_id
    )
    .fetch_optional(pool)
    .await?
    else {
        return Ok(None);
    };
    let lines = sqlx::query_as!(
        InvoiceLine,
        "select date, description, amount from invoice_lines where invoice_id = $1 order by position",
        invoice.id
    )
    .fetch_all(pool)
    .await?;
    Ok(Some(Invoice {
        id: invoice.id,
        booking_id: invoice.booking_id,
        status: invoice.status,
        currency: invoice.currency,
        total: invoice.total,
        lines,
    }))
}

/// Rooms of a type with no live booking overlapping the stay (besides
/// `except`), by name. A snapshot: the constraint has the last word.
async fn free_rooms(
    conn: &mut PgConnection,
    room_type_id: Uuid,
    stay: Stay,
    except: Option<Uuid>,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        "select r.id from rooms r
         where r.room_type_id = $1
           and not exists (select 1 from bookings b
                           where b.room_id = r.id and b.stay && $2 and b.status not in ('cancelled', 'no_show')
                             and b.id is distinct from $3)
         order by r.name",
        room_type_id,
        stay.range() as PgRange<NaiveDate>,
        except
    )
    .fetch_all(conn)
    .await
}

/// The nightly prices of the stay; `422 rate_missing` names the first night
/// without a rate.
async fn price_stay(
    conn: &mut PgConnection,
    room_type_id: Uuid,
    rate_plan_id: Uuid,
    stay: Stay,
) -> Result<Pricing> {
    let rates = sqlx::query!(
        r#"select date, price, currency as "currency!" from daily_rates
           where room_type_id = $1 and rate_plan_id = $2 and date >= $3 and date < $4
           order by date"#,
        room_type_id,
        rate_plan_id,
        stay.check_in(),
        stay.check_out()
    )
    .fetch_all(conn)
    .await?;
    let mut nights = Vec::new();
    let mut prices = Vec::new();
    for (night, rate) in stay
        .check_in()
        .iter_days()
        .take_while(|night| *night < stay.check_out())
        .zip(rates.iter().map(Some).chain(std::iter::repeat(None)))
    {
        match rate {
            Some(rate) if rate.date == night => {
                if rate.currency != rates[0].currency {
                    return Err(Error::invalid(
                        "rate_missing",
                        "the nights of this stay are priced in different currencies",
                    ));
                }
                nights.push(night);
                prices.push(rate.price);
            }
            _ => {
                return Err(Error::invalid(
                    "rate_missing",
                    format!("no rate for the night of {night}"),
                ));
            }
        }
    }
    let currency = rates
        .first()
        .map(|rate| rate.currency.clone())
        .unwrap_or_default();
    Ok(Pricing {
        nights,
        prices,
        currency,
    })
}

async fn write_invoice(
    conn: &mut PgConnection,
    booking_id: Uuid,
    pricing: &Pricing,
) -> sqlx::Result<()> {
    sqlx::query!(
        "with invoice as (
             insert into invoices (booking_id, currency, total) values ($1, $2, $3) returning id
         )
         insert into invoice_lines (invoice_id, position, date, description, amount)
         select invoice.id, night.position, night.date, 'Night of ' || night.date, night.amount
         from invoice, unnest($4::date[], $5::numeric[]) with ordinality as night (date, amount, position)",
        booking_id,
        pricing.currency,
        pricing.total(),
        &pricing.nights,
        &pricing.prices
    )
    .execute(conn)
    .await?;
    Ok(())
}

fn refuse_past(timezone: &str, check_in: NaiveDate) -> Result<()> {
    let today = today_in(parse_timezone(timezone)?);
    if check_in < today {
        return Err(Error::invalid(
            "date_in_past",
            format!("{check_in} is before today ({today}) in the hotel's time zone"),
        ));
    }
    Ok(())
}

fn over_capacity(capacity: i32) -> Error {
    Error::invalid(
        "over_capacity",
        format!("this room type holds at most {capacity} guests"),
    )
}

fn no_room_free() -> Error {
    Error::conflict(
        "room_already_booked",
        "no room of this type is free for these nights",
    )
}

fn invalid_transition(from: BookingStatus, to: BookingStatus) -> Error {
    Error::conflict(
        "invalid_transition",
        format!("a {} booking cannot become {}", from.as_str(), to.as_str()),
    )
}

fn is_exclusion_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.code().as_deref() == Some("23P01"))
}
