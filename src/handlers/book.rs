//! `POST /book`: the seed-compatible booking of one night (SPEC 4.1).

use axum::extract::State;
use axum::response::Response;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::TokenClaims;
use crate::db::book::{Caller, NightBooking, NightRequest, book_guest_night, book_night};
use crate::domain::booking::BookingLimits;
use crate::domain::{BookingStatus, Role, parse_seed_date};
use crate::error::{Error, ErrorCode, Result};
use crate::extract::Json;
use crate::idempotency::{self, IdempotencyKey, IdempotencyKeyHeader};
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module, each with its OpenAPI operation.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(book))
}

#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"room_name": "ROOM7", "user_name": "user3", "date": "24.11.27"}))]
pub struct BookNight {
    /// A room of the default hotel.
    #[schema(example = "ROOM7")]
    pub room_name: String,
    /// Who stays; a guest may name only itself.
    #[schema(example = "user3")]
    pub user_name: String,
    /// `dd.mm.yy`, `dd/mm/yy` or `YYYY-MM-DD`.
    #[schema(example = "24.11.27")]
    pub date: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BookedNight {
    pub id: Uuid,
    pub room_name: String,
    pub user_name: String,
    /// The night, as `YYYY-MM-DD`.
    pub date: NaiveDate,
    pub status: BookingStatus,
}

/// Book one night of a room of the default hotel.
///
/// The seed-compatible call: one statement, one round trip (a guest's runs
/// after its user's row is locked, so that its limit is counted exactly).
/// The exclusion constraint decides a race for the same night: one `201`,
/// the others `409`.
#[utoipa::path(
    post,
    path = "/book",
    tag = "book",
    security(("bearer" = [])),
    params(IdempotencyKeyHeader),
    request_body(content = BookNight, example = json!({"room_name": "ROOM7", "user_name": "user3", "date": "24.11.27"})),
    responses(
        (status = 201, description = "Booked", body = BookedNight, headers(("location" = String, description = "/bookings/{id}"))),
        (status = 403, description = "A guest booking for someone else"),
        (status = 404, description = "No such room or user"),
        (status = 409, description = "The night is taken (`room_already_booked`), or the key is in use"),
        (status = 422, description = "A bad date, a past night, beyond the horizon, a guest's limit, or a key reused with another body"),
    )
)]
pub async fn book(
    State(state): State<AppState>,
    TokenClaims(claims): TokenClaims,
    key: IdempotencyKey,
    Json(request): Json<BookNight>,
) -> Result<Response> {
    let night = parse_seed_date(&request.date).ok_or_else(|| {
        Error::invalid(
            ErrorCode::InvalidDate,
            format!(
                "`{}` is not a date in the form dd.mm.yy, dd/mm/yy or YYYY-MM-DD",
                request.date
            ),
        )
    })?;
    let caller = Caller {
        id: claims.sub,
        token_version: claims.ver,
    };
    let wanted = NightRequest {
        room_name: request.room_name.clone(),
        user_name: request.user_name.clone(),
        night,
        caller,
    };
    // A guest's live bookings are counted with its user's row locked, as
    // `POST /bookings` counts them, so that bookings sent at once cannot
    // all pass its limit; staff and admins have no limit to count.
    let guest = claims.role == Role::Guest;
    if key.0.is_none() && !guest {
        // One statement in autocommit, one round trip, on a connection of its
        // own kind; or, when all are busy, with the others waiting for one
        // (see `db::book::BookQueue`).
        let booked = state.book_queue.book(wanted).await?;
        return answer(booked, &request, night);
    }
    let limits = state.limits.booking;
    idempotency::run(&state.pool, caller.id, key, |conn| {
        let (wanted, request) = (wanted.clone(), request.clone());
        Box::pin(async move { book_one(conn, &wanted, &request, &limits, guest).await })
    })
    .await
}

/// Books `wanted` alone, in the caller's transaction if it has one; a
/// guest's in a transaction (or savepoint) that first locks its user's row.
async fn book_one(
    conn: &mut PgConnection,
    wanted: &NightRequest,
    request: &BookNight,
    limits: &BookingLimits,
    guest: bool,
) -> Result<Response> {
    let booked = if guest {
        book_guest_night(conn, wanted, limits).await?
    } else {
        book_night(conn, wanted, limits).await?
    };
    answer(booked, request, wanted.night)
}

fn answer(booked: NightBooking, request: &BookNight, night: NaiveDate) -> Result<Response> {
    match booked {
        NightBooking::Booked { id, status } => Ok(super::booked(
            format!("/bookings/{id}"),
            BookedNight {
                id,
                room_name: request.room_name.clone(),
                user_name: request.user_name.clone(),
                date: night,
                status,
            },
        )),
        NightBooking::UnknownRoom => Err(Error::not_found(format!(
            "no room named `{}`",
            request.room_name
        ))),
        NightBooking::UnknownUser => Err(Error::not_found(format!(
            "no user named `{}`",
            request.user_name
        ))),
        NightBooking::Past { today } => Err(Error::invalid(
            ErrorCode::DateInPast,
            format!("{night} is before today ({today}) in the hotel's time zone"),
        )),
        NightBooking::BeyondHorizon { today } => Err(Error::invalid(
            ErrorCode::BeyondHorizon,
            format!("{night} is too far ahead of today ({today}): beyond the booking horizon"),
        )),
        NightBooking::GuestLimit => Err(Error::invalid(
            ErrorCode::GuestLimit,
            "you hold as many live bookings as a guest may",
        )),
        NightBooking::UnknownCaller => Err(Error::Unauthorized),
        NightBooking::NotYours => Err(Error::Forbidden),
        NightBooking::Taken => Err(Error::conflict(
            ErrorCode::RoomAlreadyBooked,
            format!("room `{}` is already booked on {night}", request.room_name),
        )),
    }
}
