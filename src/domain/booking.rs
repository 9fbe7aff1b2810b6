//! Bookings: the stay, the life cycle, and the rules a new or changed stay
//! must pass (the past, the horizon, capacity, a guest's limits).

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::Refusal;

/// A booking's life cycle, stored as the `booking_status` enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[sqlx(type_name = "booking_status", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum BookingStatus {
    Confirmed,
    CheckedIn,
    CheckedOut,
    Cancelled,
    NoShow,
}

impl BookingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BookingStatus::Confirmed => "confirmed",
            BookingStatus::CheckedIn => "checked_in",
            BookingStatus::CheckedOut => "checked_out",
            BookingStatus::Cancelled => "cancelled",
            BookingStatus::NoShow => "no_show",
        }
    }

    /// The transitions of the life cycle: `confirmed` to `checked_in`,
    /// `cancelled` or `no_show`; `checked_in` to `checked_out`.
    pub fn can_become(self, next: BookingStatus) -> bool {
        use BookingStatus::*;
        matches!(
            (self, next),
            (Confirmed, CheckedIn | Cancelled | NoShow) | (CheckedIn, CheckedOut)
        )
    }

    /// `Ok` when the life cycle allows moving to `next`.
    pub fn transition(self, next: BookingStatus) -> Result<BookingStatus, Refusal> {
        if self.can_become(next) {
            Ok(next)
        } else {
            Err(Refusal::InvalidTransition {
                from: self,
                to: next,
            })
        }
    }

    /// Whether the booking holds its room (the exclusion constraint's predicate).
    pub fn is_live(self) -> bool {
        !matches!(self, BookingStatus::Cancelled | BookingStatus::NoShow)
    }
}

/// The nights `[check_in, check_out)` of a stay; never empty, never longer
/// than [`Stay::MAX_NIGHTS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stay {
    check_in: NaiveDate,
    check_out: NaiveDate,
}

impl Stay {
    /// The longest stay the API takes, in nights.
    pub const MAX_NIGHTS: i64 = 365;

    pub fn new(check_in: NaiveDate, check_out: NaiveDate) -> Result<Stay, Refusal> {
        Self::within(check_in, check_out, Self::MAX_NIGHTS)
    }

    /// A stay of at most `max_nights`.
    pub fn within(
        check_in: NaiveDate,
        check_out: NaiveDate,
        max_nights: i64,
    ) -> Result<Stay, Refusal> {
        if check_out <= check_in {
            return Err(Refusal::InvalidStay);
        }
        if (check_out - check_in).num_days() > max_nights {
            return Err(Refusal::StayTooLong { max: max_nights });
        }
        Ok(Stay {
            check_in,
            check_out,
        })
    }

    /// The one night of `date` (`POST /book`).
    pub fn night(date: NaiveDate) -> Option<Stay> {
        Some(Stay {
            check_in: date,
            check_out: date.succ_opt()?,
        })
    }

    pub fn check_in(self) -> NaiveDate {
        self.check_in
    }

    pub fn check_out(self) -> NaiveDate {
        self.check_out
    }

    pub fn nights(self) -> i64 {
        (self.check_out - self.check_in).num_days()
    }

    /// Every night of the stay, in order.
    pub fn each_night(self) -> impl Iterator<Item = NaiveDate> {
        self.check_in
            .iter_days()
            .take_while(move |night| *night < self.check_out)
    }

    /// As a PostgreSQL `daterange`.
    pub fn range(self) -> sqlx::postgres::types::PgRange<NaiveDate> {
        sqlx::postgres::types::PgRange::from(self.check_in..self.check_out)
    }
}

/// How far ahead, and how much, may be booked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookingLimits {
    /// Check-in at most this many days after today (at the hotel).
    pub horizon_days: i64,
    /// Live bookings a guest may hold at once.
    pub guest_live_bookings: i64,
    /// Nights per stay for a guest.
    pub guest_nights: i64,
}

impl Default for BookingLimits {
    fn default() -> Self {
        BookingLimits {
            horizon_days: 730,
            guest_live_bookings: 20,
            guest_nights: 30,
        }
    }
}

impl BookingLimits {
    /// A check-in date must be between today (at the hotel) and the horizon.
    pub fn check_in_allowed(&self, check_in: NaiveDate, today: NaiveDate) -> Result<(), Refusal> {
        if check_in < today {
            return Err(Refusal::InPast {
                date: check_in,
                today,
            });
        }
        if (check_in - today).num_days() > self.horizon_days {
            return Err(Refusal::BeyondHorizon {
                date: check_in,
                days: self.horizon_days,
            });
        }
        Ok(())
    }

    /// A guest's stay is at most `guest_nights` long.
    pub fn guest_stay_allowed(&self, stay: Stay) -> Result<(), Refusal> {
        if stay.nights() > self.guest_nights {
            return Err(Refusal::TooManyNights {
                max: self.guest_nights,
            });
        }
        Ok(())
    }

    /// A guest holding `live` bookings may add one more.
    pub fn guest_may_add_booking(&self, live: i64) -> Result<(), Refusal> {
        if live >= self.guest_live_bookings {
            return Err(Refusal::TooManyLiveBookings {
                max: self.guest_live_bookings,
            });
        }
        Ok(())
    }
}

/// `guests` must fit the room type.
pub fn check_capacity(guests: i32, capacity: i32) -> Result<(), Refusal> {
    if guests > capacity {
        Err(Refusal::OverCapacity { capacity })
    } else {
        Ok(())
    }
}

/// Check-in and no-show wait for the check-in date at the hotel.
pub fn check_arrival(
    next: BookingStatus,
    check_in: NaiveDate,
    today: NaiveDate,
) -> Result<(), Refusal> {
    if matches!(next, BookingStatus::CheckedIn | BookingStatus::NoShow) && today < check_in {
        return Err(Refusal::TooEarly { check_in, today });
    }
    Ok(())
}

/// A booking as the service knows it; instants in UTC with the hotel's zone.
#[derive(Debug, Clone)]
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
    pub check_in_at: DateTime<Utc>,
    pub check_out_at: DateTime<Utc>,
    pub timezone: String,
    pub guests: i32,
    pub status: BookingStatus,
    pub total_price: Option<Decimal>,
    pub currency: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema, sqlx::Type)]
#[sqlx(type_name = "invoice_status", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum InvoiceStatus {
    Open,
    Void,
    CancellationFee,
}

#[derive(Debug, Clone)]
pub struct Invoice {
    pub id: Uuid,
    pub booking_id: Uuid,
    pub status: InvoiceStatus,
    pub currency: String,
    pub total: Decimal,
    pub lines: Vec<InvoiceLine>,
}

#[derive(Debug, Clone)]
pub struct InvoiceLine {
    pub date: NaiveDate,
    pub description: String,
    pub amount: Decimal,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::tests::date;

    #[test]
    fn status_transitions_follow_the_life_cycle() {
        use BookingStatus::*;
        let all = [Confirmed, CheckedIn, CheckedOut, Cancelled, NoShow];
        let allowed: Vec<_> = all
            .iter()
            .flat_map(|&a| all.iter().map(move |&b| (a, b)))
            .filter(|(a, b)| a.transition(*b).is_ok())
            .collect();
        assert_eq!(
            allowed,
            [
                (Confirmed, CheckedIn),
                (Confirmed, Cancelled),
                (Confirmed, NoShow),
                (CheckedIn, CheckedOut)
            ]
        );
        assert!(Confirmed.is_live() && CheckedIn.is_live() && CheckedOut.is_live());
        assert!(!Cancelled.is_live() && !NoShow.is_live());
    }

    #[test]
    fn a_stay_has_at_least_one_night_and_a_bounded_length() {
        assert_eq!(
            Stay::new(date(2027, 1, 2), date(2027, 1, 2)),
            Err(Refusal::InvalidStay)
        );
        assert_eq!(
            Stay::new(date(2027, 1, 3), date(2027, 1, 2)),
            Err(Refusal::InvalidStay)
        );
        assert_eq!(
            Stay::new(date(2027, 1, 2), date(2027, 1, 5)).map(Stay::nights),
            Ok(3)
        );
        assert_eq!(
            Stay::within(date(2027, 1, 1), date(2027, 2, 1), 30),
            Err(Refusal::StayTooLong { max: 30 })
        );
        let nights: Vec<_> = Stay::new(date(2027, 2, 27), date(2027, 3, 2))
            .map(|stay| stay.each_night().collect())
            .unwrap_or_default();
        assert_eq!(
            nights,
            [date(2027, 2, 27), date(2027, 2, 28), date(2027, 3, 1)]
        );
    }

    #[test]
    fn check_in_between_today_and_the_horizon() {
        let limits = BookingLimits::default();
        let today = date(2027, 1, 10);
        assert!(limits.check_in_allowed(today, today).is_ok());
        assert_eq!(
            limits.check_in_allowed(date(2027, 1, 9), today),
            Err(Refusal::InPast {
                date: date(2027, 1, 9),
                today
            })
        );
        let last = today + chrono::Days::new(730);
        assert!(limits.check_in_allowed(last, today).is_ok());
        assert!(matches!(
            limits.check_in_allowed(last + chrono::Days::new(1), today),
            Err(Refusal::BeyondHorizon { days: 730, .. })
        ));
    }

    #[test]
    fn guest_limits_and_capacity() {
        let limits = BookingLimits {
            horizon_days: 730,
            guest_live_bookings: 2,
            guest_nights: 3,
        };
        assert!(limits.guest_may_add_booking(1).is_ok());
        assert_eq!(
            limits.guest_may_add_booking(2),
            Err(Refusal::TooManyLiveBookings { max: 2 })
        );
        let four = Stay::new(date(2027, 1, 1), date(2027, 1, 5)).expect("a stay");
        assert_eq!(
            limits.guest_stay_allowed(four),
            Err(Refusal::TooManyNights { max: 3 })
        );
        assert!(check_capacity(2, 2).is_ok());
        assert_eq!(
            check_capacity(3, 2),
            Err(Refusal::OverCapacity { capacity: 2 })
        );
    }

    #[test]
    fn arrival_waits_for_the_check_in_date() {
        let check_in = date(2027, 1, 10);
        assert!(check_arrival(BookingStatus::CheckedIn, check_in, check_in).is_ok());
        assert!(check_arrival(BookingStatus::NoShow, check_in, date(2027, 1, 9)).is_err());
        assert!(check_arrival(BookingStatus::CheckedOut, check_in, date(2027, 1, 9)).is_ok());
    }
}
