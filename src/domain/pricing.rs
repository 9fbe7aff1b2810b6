//! Prices: a stay costs the sum of its nights' daily rates, in one currency;
//! a cancellation after the rate plan's deadline costs the first night.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;

use super::{Refusal, Stay};

/// The largest amount a `numeric(12, 2)` column holds: prices, totals and
/// invoice lines are all within it.
pub const MAX_AMOUNT: Decimal = Decimal::from_parts(3_567_587_327, 232, 0, false, 2);

/// A daily rate of a night, as stored.
#[derive(Debug, Clone)]
pub struct NightRate {
    pub date: NaiveDate,
    pub price: Decimal,
    pub currency: String,
}

/// The nightly prices of a stay, every night priced, in one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pricing {
    nights: Vec<NaiveDate>,
    prices: Vec<Decimal>,
    currency: String,
    total: Decimal,
}

impl Pricing {
    /// Prices `stay` from its rates (ordered by date, at most one per night):
    /// refuses a night without a rate, mixed currencies, and a total beyond
    /// [`MAX_AMOUNT`].
    pub fn of_stay(stay: Stay, rates: &[NightRate]) -> Result<Pricing, Refusal> {
        let currency = rates.first().map(|rate| rate.currency.clone());
        let mut nights = Vec::new();
        let mut prices = Vec::new();
        let mut total = Decimal::ZERO;
        let mut rates = rates.iter();
        for night in stay.each_night() {
            let rate = rates
                .next()
                .filter(|rate| rate.date == night)
                .ok_or(Refusal::RateMissing { night })?;
            if Some(&rate.currency) != currency.as_ref() {
                return Err(Refusal::MixedCurrencies);
            }
            total = total
                .checked_add(rate.price)
                .filter(|total| *total <= MAX_AMOUNT)
                .ok_or(Refusal::TotalTooLarge)?;
            nights.push(night);
            prices.push(rate.price);
        }
        Ok(Pricing {
            nights,
            prices,
            currency: currency.unwrap_or_default(),
            total,
        })
    }

    pub fn nights(&self) -> &[NaiveDate] {
        &self.nights
    }

    pub fn prices(&self) -> &[Decimal] {
        &self.prices
    }

    pub fn currency(&self) -> &str {
        &self.currency
    }

    pub fn total(&self) -> Decimal {
        self.total
    }
}

/// Whether cancelling at `now` costs a fee: the rate plan is non-refundable
/// (`None`), or its free cancellation ended `hours` before check-in.
pub fn cancellation_costs_a_fee(
    free_cancellation_hours: Option<i32>,
    check_in_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> bool {
    match free_cancellation_hours {
        None => true,
        Some(hours) => now > check_in_at - chrono::Duration::hours(i64::from(hours)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::tests::date;

    fn rate(day: u32, price: &str, currency: &str) -> NightRate {
        NightRate {
            date: date(2027, 3, day),
            price: price.parse().expect("a decimal"),
            currency: currency.into(),
        }
    }

    fn stay(from: u32, to: u32) -> Stay {
        Stay::new(date(2027, 3, from), date(2027, 3, to)).expect("a stay")
    }

    #[test]
    fn the_largest_amount_is_that_of_numeric_12_2() {
        assert_eq!(MAX_AMOUNT.to_string(), "9999999999.99");
    }

    #[test]
    fn a_stay_costs_the_sum_of_its_nights() {
        let pricing = Pricing::of_stay(
            stay(1, 3),
            &[rate(1, "100.00", "EUR"), rate(2, "120.50", "EUR")],
        )
        .expect("priced");
        assert_eq!(pricing.total().to_string(), "220.50");
        assert_eq!(pricing.nights(), [date(2027, 3, 1), date(2027, 3, 2)]);
        assert_eq!(pricing.currency(), "EUR");
    }

    #[test]
    fn a_night_without_a_rate_or_in_another_currency_is_refused() {
        assert_eq!(
            Pricing::of_stay(stay(1, 4), &[rate(1, "1", "EUR"), rate(3, "1", "EUR")]),
            Err(Refusal::RateMissing {
                night: date(2027, 3, 2)
            })
        );
        assert_eq!(
            Pricing::of_stay(stay(1, 3), &[rate(1, "1", "EUR")]),
            Err(Refusal::RateMissing {
                night: date(2027, 3, 2)
            })
        );
        assert_eq!(
            Pricing::of_stay(stay(1, 3), &[rate(1, "1", "EUR"), rate(2, "1", "USD")]),
            Err(Refusal::MixedCurrencies)
        );
    }

    #[test]
    fn a_total_beyond_the_largest_amount_is_refused() {
        let rates = [
            rate(1, "9999999999.99", "EUR"),
            rate(2, "9999999999.99", "EUR"),
        ];
        assert_eq!(
            Pricing::of_stay(stay(1, 3), &rates),
            Err(Refusal::TotalTooLarge)
        );
        assert!(Pricing::of_stay(stay(1, 2), &rates[..1]).is_ok());
    }

    #[test]
    fn cancellation_is_free_until_the_deadline() {
        let check_in_at = "2027-03-10T14:00:00Z"
            .parse::<DateTime<Utc>>()
            .expect("an instant");
        let hours = |h: i64| check_in_at - chrono::Duration::hours(h);
        assert!(!cancellation_costs_a_fee(Some(48), check_in_at, hours(49)));
        assert!(!cancellation_costs_a_fee(Some(48), check_in_at, hours(48)));
        assert!(cancellation_costs_a_fee(Some(48), check_in_at, hours(47)));
        assert!(cancellation_costs_a_fee(None, check_in_at, hours(1000)));
    }
}
