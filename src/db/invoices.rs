//! Prices and invoices: a stay priced from its daily rates, the invoice
//! written with its booking, rewritten when the booking changes, read back.

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::bookings::BookingResult;
use crate::domain::pricing::NightRate;
use crate::domain::{Invoice, InvoiceLine, InvoiceStatus, Pricing, Stay};

/// The invoice of a booking, with its lines.
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

/// The nightly prices of the stay (see [`Pricing::of_stay`]).
pub(super) async fn price_stay(
    conn: &mut PgConnection,
    room_type_id: Uuid,
    rate_plan_id: Uuid,
    stay: Stay,
) -> BookingResult<Pricing> {
    let rates = sqlx::query_as!(
        NightRate,
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
    Ok(Pricing::of_stay(stay, &rates)?)
}

/// Replaces a booking's invoice with one of `pricing`.
pub(super) async fn rewrite_invoice(
    tx: &mut PgConnection,
    id: Uuid,
    pricing: &Pricing,
) -> BookingResult<()> {
    sqlx::query!(
        "delete from invoice_lines where invoice_id = (select id from invoices where booking_id = $1)",
        id
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!("delete from invoices where booking_id = $1", id)
        .execute(&mut *tx)
        .await?;
    write_invoice(&mut *tx, id, pricing).await?;
    Ok(())
}

/// Writes the invoice of a new (or changed) booking, a line a night.
pub(super) async fn write_invoice(
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
        pricing.currency(),
        pricing.total(),
        pricing.nights(),
        pricing.prices()
    )
    .execute(conn)
    .await?;
    Ok(())
}
