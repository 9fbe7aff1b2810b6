//! What a hotel sells: hotels, room types, rooms, rate plans, daily rates,
//! and what a search finds.

use chrono::{NaiveDate, NaiveTime};
use rust_decimal::Decimal;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct Hotel {
    pub id: Uuid,
    pub name: String,
    pub city: String,
    pub timezone: String,
    pub check_in_time: NaiveTime,
    pub check_out_time: NaiveTime,
}

#[derive(Debug, Clone)]
pub struct RoomType {
    pub id: Uuid,
    pub hotel_id: Uuid,
    pub name: String,
    pub capacity: i32,
}

#[derive(Debug, Clone)]
pub struct Room {
    pub id: Uuid,
    pub hotel_id: Uuid,
    pub room_type_id: Uuid,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct RatePlan {
    pub id: Uuid,
    pub hotel_id: Uuid,
    pub name: String,
    /// `None`: non-refundable.
    pub free_cancellation_hours: Option<i32>,
}

#[derive(Debug, Clone)]
pub struct DailyRate {
    pub room_type_id: Uuid,
    pub rate_plan_id: Uuid,
    pub date: NaiveDate,
    pub price: Decimal,
    pub currency: String,
}

/// A hotel of a search result with its cheapest total for the stay.
#[derive(Debug, Clone)]
pub struct HotelOffer {
    pub hotel: Hotel,
    pub cheapest_total: Decimal,
    pub currency: String,
}

/// Per room type: how many rooms are free for a whole stay, and the rate
/// plans priced for every night.
#[derive(Debug, Clone)]
pub struct RoomTypeAvailability {
    pub room_type_id: Uuid,
    pub name: String,
    pub capacity: i32,
    pub rooms_free: i64,
    pub rates: Vec<RateOffer>,
}

#[derive(Debug, Clone)]
pub struct RateOffer {
    pub rate_plan_id: Uuid,
    pub name: String,
    pub total: Decimal,
    pub currency: String,
    pub nightly: Vec<(NaiveDate, Decimal)>,
}
