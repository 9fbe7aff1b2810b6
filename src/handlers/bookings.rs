//! `/bookings`: priced stays, their changes, cancellation, life cycle and invoice.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{Page, Pagination, booked, parse_date, parse_guests, parse_stay};
use crate::auth::AuthUser;
use crate::db::bookings::{self, BookingChange, BookingFilter, NewBooking, Target};
use crate::db::invoices;
use crate::domain::Role;
use crate::domain::{
    Booking, BookingStatus, Invoice, InvoiceLine, InvoiceStatus, Stay, parse_timezone,
};
use crate::error::{Error, Result};
use crate::extract::{Json, Path, Query};
use crate::idempotency::{self, IdempotencyKey, IdempotencyKeyHeader};
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module, each with its OpenAPI operation.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, update, cancel))
        .routes(routes!(check_in))
        .routes(routes!(check_out))
        .routes(routes!(no_show))
        .routes(routes!(invoice))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBookingRequest {
    pub hotel_id: Uuid,
    /// Book the first free room of this type (or give `room_id`).
    pub room_type_id: Option<Uuid>,
    /// Book this room (instead of `room_type_id`).
    pub room_id: Option<Uuid>,
    pub rate_plan_id: Uuid,
    /// `YYYY-MM-DD`.
    #[schema(format = Date, example = "2027-03-26")]
    pub check_in: String,
    /// `YYYY-MM-DD`, the day of departure (not a night of the stay).
    #[schema(format = Date, example = "2027-03-28")]
    pub check_out: String,
    /// 1 to 100; absent: 1.
    #[serde(default, deserialize_with = "super::whole::option")]
    #[schema(minimum = 1, maximum = 100)]
    pub guests: Option<i32>,
    /// Staff may book for another user.
    pub user_id: Option<Uuid>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BookingChangeRequest {
    #[schema(format = Date, example = "2027-03-26")]
    pub check_in: Option<String>,
    #[schema(format = Date, example = "2027-03-29")]
    pub check_out: Option<String>,
    pub room_type_id: Option<Uuid>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BookingQuery {
    pub status: Option<BookingStatus>,
    pub hotel_id: Option<Uuid>,
    /// Stays that end after this date (`YYYY-MM-DD`).
    #[param(format = Date)]
    pub from: Option<String>,
    /// Stays that begin before this date (`YYYY-MM-DD`).
    #[param(format = Date)]
    pub to: Option<String>,
}

/// A booking; instants carry the hotel's UTC offset.
#[derive(Debug, Serialize, ToSchema)]
pub struct BookingBody {
    pub id: Uuid,
    pub hotel_id: Uuid,
    pub room_id: Uuid,
    pub room_name: String,
    pub room_type_id: Uuid,
    pub user_id: Uuid,
    pub user_name: String,
    /// `null` for a booking made with `POST /book`.
    pub rate_plan_id: Option<Uuid>,
    pub check_in: NaiveDate,
    pub check_out: NaiveDate,
    pub check_in_at: DateTime<FixedOffset>,
    pub check_out_at: DateTime<FixedOffset>,
    pub guests: i32,
    pub status: BookingStatus,
    #[serde(serialize_with = "super::money::option::serialize")]
    #[schema(value_type = Option<String>, example = "258.00")]
    pub total_price: Option<Decimal>,
    #[schema(example = "EUR")]
    pub currency: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<Booking> for BookingBody {
    fn from(booking: Booking) -> Self {
        let zone = parse_timezone(&booking.timezone).unwrap_or(chrono_tz::UTC);
        let local = |instant: DateTime<Utc>| instant.with_timezone(&zone).fixed_offset();
        BookingBody {
            id: booking.id,
            hotel_id: booking.hotel_id,
            room_id: booking.room_id,
            room_name: booking.room_name,
            room_type_id: booking.room_type_id,
            user_id: booking.user_id,
            user_name: booking.user_name,
            rate_plan_id: booking.rate_plan_id,
            check_in: booking.check_in,
            check_out: booking.check_out,
            check_in_at: local(booking.check_in_at),
            check_out_at: local(booking.check_out_at),
            guests: booking.guests,
            status: booking.status,
            total_price: booking.total_price,
            currency: booking.currency,
            created_at: booking.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvoiceBody {
    pub id: Uuid,
    pub booking_id: Uuid,
    pub status: InvoiceStatus,
    pub currency: String,
    #[serde(serialize_with = "super::money::serialize")]
    #[schema(value_type = String, example = "258.00")]
    pub total: Decimal,
    pub lines: Vec<InvoiceLineBody>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvoiceLineBody {
    pub date: NaiveDate,
    pub description: String,
    #[serde(serialize_with = "super::money::serialize")]
    #[schema(value_type = String, example = "129.00")]
    pub amount: Decimal,
}

impl From<Invoice> for InvoiceBody {
    fn from(invoice: Invoice) -> Self {
        InvoiceBody {
            id: invoice.id,
            booking_id: invoice.booking_id,
            status: invoice.status,
            currency: invoice.currency,
            total: invoice.total,
            lines: invoice
                .lines
                .into_iter()
                .map(InvoiceLineBody::from)
                .collect(),
        }
    }
}

impl From<InvoiceLine> for InvoiceLineBody {
    fn from(line: InvoiceLine) -> Self {
        InvoiceLineBody {
            date: line.date,
            description: line.description,
            amount: line.amount,
        }
    }
}

/// Book a priced stay.
///
/// Assigns a free room of the type at once (the next one when a concurrent
/// booking wins a room), prices every night from the daily rates, and writes
/// booking and invoice in one transaction.
#[utoipa::path(
    post,
    path = "/bookings",
    tag = "bookings",
    security(("bearer" = [])),
    params(IdempotencyKeyHeader),
    request_body = NewBookingRequest,
    responses(
        (status = 201, description = "Booked", body = BookingBody, headers(("location" = String, description = "/bookings/{id}"))),
        (status = 403, description = "A guest booking for someone else"),
        (status = 409, description = "No room of the type is free (`room_already_booked`), or the key is in use"),
        (status = 422, description = "Invalid dates, a past or too distant stay, over capacity, a night without a rate, a guest's limit, unknown inventory, or a key reused"),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: AuthUser,
    key: IdempotencyKey,
    Json(request): Json<NewBookingRequest>,
) -> Result<Response> {
    let target = match (request.room_type_id, request.room_id) {
        (Some(room_type_id), None) => Target::RoomType(room_type_id),
        (None, Some(room_id)) => Target::Room(room_id),
        _ => return Err(Error::validation("give either `room_type_id` or `room_id`")),
    };
    let stay = parse_stay(&request.check_in, &request.check_out, Stay::MAX_NIGHTS)?;
    let guests = parse_guests(request.guests)?;
    // A guest books for itself; staff may name anyone.
    let user_id = match request.user_id {
        Some(user_id) if user_id != caller.id => {
            caller.require(Role::Staff)?;
            user_id
        }
        _ => caller.id,
    };
    let new_booking = NewBooking {
        hotel_id: request.hotel_id,
        target,
        rate_plan_id: request.rate_plan_id,
        user_id,
        stay,
        guests,
        by_guest: !caller.is_staff(),
    };
    let limits = state.limits.booking;
    idempotency::run(&state.pool, caller.id, key, |conn| {
        let new_booking = new_booking.clone();
        Box::pin(async move {
            let booking = bookings::create_booking(conn, &new_booking, &limits).await?;
            Ok(booked(
                format!("/bookings/{}", booking.id),
                BookingBody::from(booking),
            ))
        })
    })
    .await
}

/// List bookings: a guest sees its own, staff all.
#[utoipa::path(
    get,
    path = "/bookings",
    tag = "bookings",
    security(("bearer" = [])),
    params(Pagination, BookingQuery),
    responses(
        (status = 200, description = "A page of bookings", body = Page<BookingBody>),
        (status = 422, description = "Bad paging or dates"),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: AuthUser,
    Query(pagination): Query<Pagination>,
    Query(query): Query<BookingQuery>,
) -> Result<Json<Page<BookingBody>>> {
    let window = pagination.window()?;
    let filter = BookingFilter {
        status: query.status,
        hotel_id: query.hotel_id,
        from: query
            .from
            .as_deref()
            .map(|date| parse_date("from", date))
            .transpose()?,
        to: query
            .to
            .as_deref()
            .map(|date| parse_date("to", date))
            .transpose()?,
        // A guest sees its own bookings only.
        user_id: (!caller.is_staff()).then_some(caller.id),
    };
    let listed = bookings::list_bookings(&state.pool, filter, window).await?;
    Ok(Json(Page::new(pagination, listed)))
}

/// One booking (a guest's own only: others are `404`).
#[utoipa::path(
    get,
    path = "/bookings/{id}",
    tag = "bookings",
    security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "The booking", body = BookingBody),
        (status = 404, description = "No such booking, or not the caller's"),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<BookingBody>> {
    let booking = bookings::find_booking(&state.pool, id)
        .await?
        .filter(|booking| caller.is_staff() || booking.user_id == caller.id)
        .ok_or_else(|| booking_not_found(id))?;
    Ok(Json(booking.into()))
}

/// Change the dates and/or room type of a confirmed booking.
///
/// Re-allocated and re-priced atomically: on `409` the booking is exactly as before.
#[utoipa::path(
    patch,
    path = "/bookings/{id}",
    tag = "bookings",
    security(("bearer" = [])),
    params(("id" = Uuid, Path), IdempotencyKeyHeader),
    request_body = BookingChangeRequest,
    responses(
        (status = 200, description = "The changed booking", body = BookingBody),
        (status = 404, description = "No such booking, or not the caller's"),
        (status = 409, description = "No room free for the new stay, not confirmed, or the key is in use"),
        (status = 422, description = "Invalid dates, a past or too distant stay, a guest's limit, a night without a rate, or a key reused"),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
    key: IdempotencyKey,
    Json(change): Json<BookingChangeRequest>,
) -> Result<Response> {
    may_see(&state, caller, id).await?;
    let change = BookingChange {
        check_in: change
            .check_in
            .as_deref()
            .map(|date| parse_date("check_in", date))
            .transpose()?,
        check_out: change
            .check_out
            .as_deref()
            .map(|date| parse_date("check_out", date))
            .transpose()?,
        room_type_id: change.room_type_id,
        by_guest: !caller.is_staff(),
    };
    let limits = state.limits.booking;
    idempotency::run(&state.pool, caller.id, key, move |conn| {
        Box::pin(async move {
            let booking = bookings::change_booking(conn, id, change, &limits)
                .await?
                .ok_or_else(|| booking_not_found(id))?;
            Ok(Json(BookingBody::from(booking)).into_response())
        })
    })
    .await
}

/// Cancel a booking (its nights are freed; repeating it changes nothing).
#[utoipa::path(
    delete,
    path = "/bookings/{id}",
    tag = "bookings",
    security(("bearer" = [])),
    params(("id" = Uuid, Path), IdempotencyKeyHeader),
    responses(
        (status = 204, description = "Cancelled"),
        (status = 404, description = "No such booking, or not the caller's"),
        (status = 409, description = "Checked in or out, or a no-show; or the key is in use"),
        (status = 422, description = "The key was used with another request"),
    )
)]
pub async fn cancel(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
    key: IdempotencyKey,
) -> Result<Response> {
    may_see(&state, caller, id).await?;
    idempotency::run(&state.pool, caller.id, key, move |conn| {
        Box::pin(async move {
            bookings::cancel_booking(conn, id)
                .await?
                .ok_or_else(|| booking_not_found(id))?;
            Ok(StatusCode::NO_CONTENT.into_response())
        })
    })
    .await
}

/// Check a guest in (staff).
#[utoipa::path(
    post,
    path = "/bookings/{id}/check-in",
    tag = "bookings",
    security(("bearer" = [])),
    params(("id" = Uuid, Path), IdempotencyKeyHeader),
    responses(
        (status = 200, description = "Checked in", body = BookingBody),
        (status = 403, description = "Not staff"),
        (status = 404, description = "No such booking"),
        (status = 409, description = "Not confirmed, before the check-in date, or the key is in use"),
        (status = 422, description = "The key was used with another request"),
    )
)]
pub async fn check_in(
    state: State<AppState>,
    caller: AuthUser,
    id: Path<Uuid>,
    key: IdempotencyKey,
) -> Result<Response> {
    transition(state, caller, id, key, BookingStatus::CheckedIn).await
}

/// Check a guest out (staff).
#[utoipa::path(
    post,
    path = "/bookings/{id}/check-out",
    tag = "bookings",
    security(("bearer" = [])),
    params(("id" = Uuid, Path), IdempotencyKeyHeader),
    responses(
        (status = 200, description = "Checked out", body = BookingBody),
        (status = 403, description = "Not staff"),
        (status = 404, description = "No such booking"),
        (status = 409, description = "Not checked in, or the key is in use"),
        (status = 422, description = "The key was used with another request"),
    )
)]
pub async fn check_out(
    state: State<AppState>,
    caller: AuthUser,
    id: Path<Uuid>,
    key: IdempotencyKey,
) -> Result<Response> {
    transition(state, caller, id, key, BookingStatus::CheckedOut).await
}

/// Mark a booking as a no-show (staff).
#[utoipa::path(
    post,
    path = "/bookings/{id}/no-show",
    tag = "bookings",
    security(("bearer" = [])),
    params(("id" = Uuid, Path), IdempotencyKeyHeader),
    responses(
        (status = 200, description = "Marked as a no-show", body = BookingBody),
        (status = 403, description = "Not staff"),
        (status = 404, description = "No such booking"),
        (status = 409, description = "Not confirmed, before the check-in date, or the key is in use"),
        (status = 422, description = "The key was used with another request"),
    )
)]
pub async fn no_show(
    state: State<AppState>,
    caller: AuthUser,
    id: Path<Uuid>,
    key: IdempotencyKey,
) -> Result<Response> {
    transition(state, caller, id, key, BookingStatus::NoShow).await
}

/// The life cycle is the front desk's: staff only.
async fn transition(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
    key: IdempotencyKey,
    next: BookingStatus,
) -> Result<Response> {
    // A guest learns nothing of others' bookings: 404 before 403.
    may_see(&state, caller, id).await?;
    caller.require(Role::Staff)?;
    idempotency::run(&state.pool, caller.id, key, move |conn| {
        Box::pin(async move {
            let booking = bookings::transition_booking(conn, id, next)
                .await?
                .ok_or_else(|| booking_not_found(id))?;
            Ok(Json(BookingBody::from(booking)).into_response())
        })
    })
    .await
}

/// The invoice of a priced booking.
#[utoipa::path(
    get,
    path = "/bookings/{id}/invoice",
    tag = "bookings",
    security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "The invoice", body = InvoiceBody),
        (status = 404, description = "No such booking, not the caller's, or made with POST /book (no invoice)"),
    )
)]
pub async fn invoice(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<InvoiceBody>> {
    may_see(&state, caller, id).await?;
    let invoice = invoices::find_invoice(&state.pool, id)
        .await?
        .ok_or_else(|| {
            Error::not_found(format!(
                "no invoice for booking {id} (bookings made with POST /book have none)"
            ))
        })?;
    Ok(Json(invoice.into()))
}

/// Staff see every booking; a guest only its own, and `404` for others.
async fn may_see(state: &AppState, caller: AuthUser, id: Uuid) -> Result<()> {
    if caller.is_staff() {
        return Ok(());
    }
    match bookings::find_owner(&state.pool, id).await? {
        Some(owner) if owner == caller.id => Ok(()),
        _ => Err(booking_not_found(id)),
    }
}

fn booking_not_found(id: Uuid) -> Error {
    Error::not_found(format!("no booking with id {id}"))
}
