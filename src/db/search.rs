//! Availability search: hotels with a room free and priced for every night
//! of a stay, and per hotel the free rooms and prices by room type.
//!
//! "Free" asks the exclusion constraint's GiST index (`room_id`, `stay`) per
//! room, so a search never scans all bookings; see the README for the plan.

use chrono::NaiveDate;
use chrono::NaiveTime;
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::PgPool;
use sqlx::postgres::types::PgRange;
use uuid::Uuid;

use crate::domain::{Stay, hh_mm};

/// A hotel of a search result with its cheapest total for the stay.
#[derive(Debug, Serialize)]
pub struct HotelOffer {
    pub id: Uuid,
    pub name: String,
    pub city: String,
    pub timezone: String,
    #[serde(with = "hh_mm")]
    pub check_in_time: NaiveTime,
    #[serde(with = "hh_mm")]
    pub check_out_time: NaiveTime,
    #[serde(serialize_with = "crate::domain::money::serialize")]
    pub cheapest_total: Decimal,
    pub currency: String,
}

pub async fn search_hotels(
    pool: &PgPool,
    city: Option<&str>,
    stay: Stay,
    guests: i32,
    limit: i64,
    offset: i64,
) -> sqlx::Result<(Vec<HotelOffer>, i64)> {
    let rows = sqlx::query_file!(
        "src/db/search_hotels.sql",
        city,
        stay.range() as PgRange<NaiveDate>,
        guests,
        limit,
        offset
    )
    .fetch_all(pool)
    .await?;
    let total = match rows.first() {
        Some(row) => row.total_count,
        // Past the last page the window count is unknown; count the offers.
        None if offset > 0 => search_hotels_count(pool, city, stay, guests).await?,
        None => 0,
    };
    let offers = rows
        .into_iter()
        .map(|row| HotelOffer {
            id: row.id,
            name: row.name,
            city: row.city,
            timezone: row.timezone,
            check_in_time: row.check_in_time,
            check_out_time: row.check_out_time,
            cheapest_total: row.cheapest_total,
            currency: row.currency,
        })
        .collect();
    Ok((offers, total))
}

async fn search_hotels_count(
    pool: &PgPool,
    city: Option<&str>,
    stay: Stay,
    guests: i32,
) -> sqlx::Result<i64> {
    Ok(Box::pin(search_hotels(pool, city, stay, guests, 1, 0))
        .await?
        .1)
}

#[derive(Debug, Serialize)]
pub struct RoomTypeAvailability {
    pub room_type_id: Uuid,
    pub name: String,
    pub capacity: i32,
    pub rooms_free: i64,
    pub rates: Vec<RateOffer>,
}

#[derive(Debug, Serialize)]
pub struct RateOffer {
    pub rate_plan_id: Uuid,
    pub name: String,
    #[serde(serialize_with = "crate::domain::money::serialize")]
    pub total: Decimal,
    pub currency: String,
    pub nightly: Vec<NightlyPrice>,
}

#[derive(Debug, Serialize)]
pub struct NightlyPrice {
    pub date: NaiveDate,
    #[serde(serialize_with = "crate::domain::money::serialize")]
    pub price: Decimal,
}

/// Per room type of the hotel that holds `guests`: how many rooms are free for
/// the whole stay, and the rate plans priced for every night.
pub async fn hotel_availability(
    pool: &PgPool,
    hotel_id: Uuid,
    stay: Stay,
    guests: i32,
) -> sqlx::Result<Vec<RoomTypeAvailability>> {
    let types = sqlx::query!(
        r#"select rt.id, rt.name, rt.capacity,
                  (select count(*) from rooms r
                   where r.room_type_id = rt.id
                     and not exists (select 1 from bookings b
                                     where b.room_id = r.id and b.stay && $2::daterange
                                       and b.status not in ('cancelled', 'no_show'))) as "rooms_free!"
           from room_types rt
           where rt.hotel_id = $1 and rt.capacity >= $3
           order by rt.name, rt.id"#,
        hotel_id,
        stay.range() as PgRange<NaiveDate>,
        guests
    )
    .fetch_all(pool)
    .await?;
    let rates = sqlx::query!(
        r#"select d.room_type_id, d.rate_plan_id, rp.name, d.date, d.price, d.currency as "currency!"
           from daily_rates d
           join rate_plans rp on rp.id = d.rate_plan_id
           join room_types rt on rt.id = d.room_type_id
           where rt.hotel_id = $1 and d.date >= $2 and d.date < $3
           order by d.room_type_id, rp.name, d.rate_plan_id, d.date"#,
        hotel_id,
        stay.check_in(),
        stay.check_out()
    )
    .fetch_all(pool)
    .await?;

    let nights = usize::try_from(stay.nights()).unwrap_or(usize::MAX);
    let mut availability = Vec::with_capacity(types.len());
    for room_type in types {
        let mut offers: Vec<RateOffer> = Vec::new();
        for rate in rates
            .iter()
            .filter(|rate| rate.room_type_id == room_type.id)
        {
            match offers.last_mut() {
                Some(offer) if offer.rate_plan_id == rate.rate_plan_id => {
                    offer.nightly.push(NightlyPrice {
                        date: rate.date,
                        price: rate.price,
                    })
                }
                _ => offers.push(RateOffer {
                    rate_plan_id: rate.rate_plan_id,
                    name: rate.name.clone(),
                    total: Decimal::ZERO,
                    currency: rate.currency.clone(),
                    nightly: vec![NightlyPrice {
                        date: rate.date,
                        price: rate.price,
                    }],
                }),
            }
        }
        // Only plans priced for every night of the stay, in one currency, can be booked.
        offers.retain(|offer| offer.nightly.len() == nights);
        let currencies: Vec<(Uuid, String)> = rates
            .iter()
            .filter(|rate| rate.room_type_id == room_type.id)
            .map(|rate| (rate.rate_plan_id, rate.currency.clone()))
            .collect();
        offers.retain(|offer| {
            currencies
                .iter()
                .filter(|(plan, _)| *plan == offer.rate_plan_id)
                .all(|(_, currency)| *currency == offer.currency)
        });
        for offer in &mut offers {
            offer.total = offer.nightly.iter().map(|night| night.price).sum();
        }
        availability.push(RoomTypeAvailability {
            room_type_id: room_type.id,
            name: room_type.name,
            capacity: room_type.capacity,
            rooms_free: room_type.rooms_free,
            rates: offers,
        });
    }
    Ok(availability)
}
