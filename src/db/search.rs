//! Availability search: hotels with a room free and priced for every night
//! of a stay, and per hotel the free rooms and prices by room type.
//!
//! "Free" asks the exclusion constraint's GiST index (`room_id`, `stay`) per
//! room, so a search never scans all bookings; see the README for the plan.

use chrono::NaiveDate;
use sqlx::PgPool;
use sqlx::postgres::types::PgRange;
use uuid::Uuid;

use crate::domain::inventory::{RateOffer, RoomTypeAvailability};
use crate::domain::pricing::NightRate;
use crate::domain::{Hotel, HotelOffer, Pricing, Stay, Window};

pub async fn search_hotels(
    pool: &PgPool,
    city: Option<&str>,
    stay: Stay,
    guests: i32,
    window: Window,
) -> sqlx::Result<(Vec<HotelOffer>, i64)> {
    super::page_of(window, move |window| async move {
        let rows = sqlx::query_file!(
            "src/db/search_hotels.sql",
            city,
            stay.range() as PgRange<NaiveDate>,
            guests,
            window.limit,
            window.offset
        )
        .fetch_all(pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let offer = HotelOffer {
                    hotel: Hotel {
                        id: row.id,
                        name: row.name,
                        city: row.city,
                        timezone: row.timezone,
                        check_in_time: row.check_in_time,
                        check_out_time: row.check_out_time,
                    },
                    cheapest_total: row.cheapest_total,
                    currency: row.currency,
                };
                (offer, row.total_count)
            })
            .collect())
    })
    .await
}

/// Per room type of the hotel that holds `guests` (a page of them): how many
/// rooms are free for the whole stay, and the rate plans priced for every night.
pub async fn hotel_availability(
    pool: &PgPool,
    hotel_id: Uuid,
    stay: Stay,
    guests: i32,
    window: Window,
) -> sqlx::Result<(Vec<RoomTypeAvailability>, i64)> {
    let (types, total) = super::page_of(window, move |window| async move {
        let rows = sqlx::query!(
            r#"select rt.id, rt.name, rt.capacity,
                      (select count(*) from rooms r
                       where r.room_type_id = rt.id
                         and not exists (select 1 from live_bookings b
                                         where b.room_id = r.id and b.stay && $2::daterange)) as "rooms_free!",
                      count(*) over () as "total!"
               from room_types rt
               where rt.hotel_id = $1 and rt.capacity >= $3
               order by rt.name, rt.id limit $4 offset $5"#,
            hotel_id,
            stay.range() as PgRange<NaiveDate>,
            guests,
            window.limit,
            window.offset
        )
        .fetch_all(pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let free = RoomTypeAvailability {
                    room_type_id: row.id,
                    name: row.name,
                    capacity: row.capacity,
                    rooms_free: row.rooms_free,
                    rates: Vec::new(),
                };
                (free, row.total)
            })
            .collect())
    })
    .await?;
    let availability = with_rate_offers(pool, types, stay).await?;
    Ok((availability, total))
}

/// Each room type with the rate plans priced for every night of `stay`, in
/// one currency: those that can be booked.
async fn with_rate_offers(
    pool: &PgPool,
    types: Vec<RoomTypeAvailability>,
    stay: Stay,
) -> sqlx::Result<Vec<RoomTypeAvailability>> {
    let type_ids: Vec<Uuid> = types
        .iter()
        .map(|room_type| room_type.room_type_id)
        .collect();
    let rates = sqlx::query!(
        r#"select d.room_type_id, d.rate_plan_id, rp.name, d.date, d.price, d.currency as "currency!"
           from daily_rates d
           join rate_plans rp on rp.id = d.rate_plan_id
           where d.room_type_id = any($1) and d.date >= $2 and d.date < $3
           order by d.room_type_id, rp.name, d.rate_plan_id, d.date"#,
        &type_ids,
        stay.check_in(),
        stay.check_out()
    )
    .fetch_all(pool)
    .await?;

    let mut availability = types;
    for room_type in &mut availability {
        let mut plans: Vec<(Uuid, String, Vec<NightRate>)> = Vec::new();
        for rate in rates
            .iter()
            .filter(|rate| rate.room_type_id == room_type.room_type_id)
        {
            let night = NightRate {
                date: rate.date,
                price: rate.price,
                currency: rate.currency.clone(),
            };
            match plans.last_mut() {
                Some((plan, _, nights)) if *plan == rate.rate_plan_id => nights.push(night),
                _ => plans.push((rate.rate_plan_id, rate.name.clone(), vec![night])),
            }
        }
        // Only plans priced for every night of the stay, in one currency, can be booked.
        room_type.rates = plans
            .into_iter()
            .filter_map(|(rate_plan_id, name, nights)| {
                let pricing = Pricing::of_stay(stay, &nights).ok()?;
                Some(RateOffer {
                    rate_plan_id,
                    name,
                    total: pricing.total(),
                    currency: pricing.currency().to_owned(),
                    nightly: pricing
                        .nights()
                        .iter()
                        .copied()
                        .zip(pricing.prices().iter().copied())
                        .collect(),
                })
            })
            .collect();
    }
    Ok(availability)
}
