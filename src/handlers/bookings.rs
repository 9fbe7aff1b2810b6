//! `/bookings`: priced stays, their changes, cancellation, life cycle and invoice.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use uuid::Uuid;

use super::created;
use crate::AppState;
use crate::auth::AuthUser;
use crate::db::bookings::{
    self, Booking, BookingChange, BookingFilter, Invoice, NewBooking, Target,
};
use crate::domain::{BookingStatus, Page, Pagination, Role, Stay, parse_date};
use crate::error::{Error, Result};
use crate::extract::{Json, Path, Query};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewBookingRequest {
    pub hotel_id: Uuid,
    pub room_type_id: Option<Uuid>,
    pub room_id: Option<Uuid>,
    pub rate_plan_id: Uuid,
    pub check_in: String,
    pub check_out: String,
    #[serde(default = "one_guest")]
    pub guests: i32,
    pub user_id: Option<Uuid>,
}

fn one_guest() -> i32 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BookingChangeRequest {
    pub check_in: Option<String>,
    pub check_out: Option<String>,
    pub room_type_id: Option<Uuid>,
}

#[derive(Debug, Deserialize)]
pub struct BookingQuery {
    pub status: Option<BookingStatus>,
    pub hotel_id: Option<Uuid>,
    pub from: Option<String>,
    pub to: Option<String>,
}

pub async fn create(
    State(state): State<AppState>,
    caller: AuthUser,
    Json(request): Json<NewBookingRequest>,
) -> Result<Response> {
    let target = match (request.room_type_id, request.room_id) {
        (Some(room_type_id), None) => Target::RoomType(room_type_id),
        (None, Some(room_id)) => Target::Room(room_id),
        _ => return Err(Error::validation("give either `room_type_id` or `room_id`")),
    };
    let stay = Stay::new(
        parse_date("check_in", &request.check_in)?,
        parse_date("check_out", &request.check_out)?,
    )?;
    if !(1..=100).contains(&request.guests) {
        return Err(Error::validation("`guests` must be between 1 and 100"));
    }
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
        guests: request.guests,
    };
    let booking = bookings::create_booking(&state.pool, new_booking)
        .await
        .map_err(unknown_user)?;
    Ok(created(format!("/bookings/{}", booking.id), booking))
}

pub async fn list(
    State(state): State<AppState>,
    caller: AuthUser,
    Query(pagination): Query<Pagination>,
    Query(query): Query<BookingQuery>,
) -> Result<Json<Page<Booking>>> {
    let (limit, offset) = pagination.limit_offset()?;
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
    let (items, total) = bookings::list_bookings(&state.pool, filter, limit, offset).await?;
    Ok(Json(Page::new(pagination, items, total)))
}

pub async fn get(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<Booking>> {
    let booking = bookings::find_booking(&state.pool, id)
        .await?
        .filter(|booking| caller.is_staff() || booking.user_id == caller.id)
        .ok_or_else(|| booking_not_found(id))?;
    Ok(Json(booking))
}

pub async fn update(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
    Json(change): Json<BookingChangeRequest>,
) -> Result<Json<Booking>> {
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
    };
    let booking = bookings::change_booking(&state.pool, id, change)
        .await?
        .ok_or_else(|| booking_not_found(id))?;
    Ok(Json(booking))
}

/// `DELETE /bookings/{id}`: cancels (the booking stays, with status `cancelled`).
pub async fn cancel(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    may_see(&state, caller, id).await?;
    bookings::cancel_booking(&state.pool, id)
        .await?
        .ok_or_else(|| booking_not_found(id))?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn check_in(
    state: State<AppState>,
    caller: AuthUser,
    id: Path<Uuid>,
) -> Result<Json<Booking>> {
    transition(state, caller, id, BookingStatus::CheckedIn).await
}

pub async fn check_out(
    state: State<AppState>,
    caller: AuthUser,
    id: Path<Uuid>,
) -> Result<Json<Booking>> {
    transition(state, caller, id, BookingStatus::CheckedOut).await
}

pub async fn no_show(
    state: State<AppState>,
    caller: AuthUser,
    id: Path<Uuid>,
) -> Result<Json<Booking>> {
    transition(state, caller, id, BookingStatus::NoShow).await
}

/// The life cycle is the front desk's: staff only.
async fn transition(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
    next: BookingStatus,
) -> Result<Json<Booking>> {
    may_see(&state, caller, id).await?;
    caller.require(Role::Staff)?;
    let booking = bookings::transition_booking(&state.pool, id, next)
        .await?
        .ok_or_else(|| booking_not_found(id))?;
    Ok(Json(booking))
}

pub async fn invoice(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<Invoice>> {
    may_see(&state, caller, id).await?;
    let invoice = bookings::find_invoice(&state.pool, id)
        .await?
        .ok_or_else(|| {
            Error::not_found(format!(
                "no invoice for booking {id} (bookings made with POST /book have none)"
            ))
        })?;
    Ok(Json(invoice))
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

/// The only foreign key a new booking can miss after the checks is its user.
fn unknown_user(error: Error) -> Error {
    match error {
        Error::Conflict { code: "in_use", .. } => Error::validation("the user does not exist"),
        other => other,
    }
}
