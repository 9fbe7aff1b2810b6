//! The map of the API: every path and method, and the layers every request
//! goes through.

use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::HeaderName;
use axum::response::IntoResponse;
use axum::routing::{get, patch, post};
use axum::{BoxError, Router};
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::AppState;
use crate::error::Error;
use crate::handlers::{auth, book, bookings, health, hotels, rooms, users};

/// Bodies are small JSON documents; anything larger answers `413`.
const BODY_LIMIT: usize = 64 * 1024;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The application, as the binary serves it and the tests drive it.
pub fn app(state: AppState) -> Router {
    let request_timeout = state.request_timeout;
    Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        // Public: registration, tokens, and the search (SPEC 4.6). Every other
        // handler takes an `AuthUser` (or `TokenClaims`) and so needs a token.
        .route("/auth/register", post(auth::register))
        .route("/auth/token", post(auth::token))
        // Seed-compatible calls (SPEC 4.1).
        .route("/book", post(book::book))
        .route("/rooms", get(rooms::list).post(rooms::create))
        .route(
            "/rooms/{id}",
            get(rooms::get).patch(rooms::update).delete(rooms::delete),
        )
        .route("/users", get(users::list).post(users::create))
        .route(
            "/users/{id}",
            get(users::get).patch(users::update).delete(users::delete),
        )
        // Hotels and inventory (SPEC 4.2); `GET /hotels` with dates is the search (4.3).
        .route("/hotels", get(hotels::list).post(hotels::create))
        .route(
            "/hotels/{id}",
            get(hotels::get)
                .patch(hotels::update)
                .delete(hotels::delete),
        )
        .route("/hotels/{id}/availability", get(hotels::availability))
        .route(
            "/hotels/{id}/room-types",
            get(hotels::list_room_types).post(hotels::create_room_type),
        )
        .route(
            "/hotels/{id}/room-types/{room_type_id}",
            patch(hotels::update_room_type).delete(hotels::delete_room_type),
        )
        .route(
            "/hotels/{id}/rate-plans",
            get(hotels::list_rate_plans).post(hotels::create_rate_plan),
        )
        .route(
            "/hotels/{id}/rate-plans/{rate_plan_id}",
            patch(hotels::update_rate_plan).delete(hotels::delete_rate_plan),
        )
        .route(
            "/hotels/{id}/rates",
            get(hotels::list_rates).put(hotels::put_rates),
        )
        // Priced stays (SPEC 4.4).
        .route("/bookings", get(bookings::list).post(bookings::create))
        .route(
            "/bookings/{id}",
            get(bookings::get)
                .patch(bookings::update)
                .delete(bookings::cancel),
        )
        .route("/bookings/{id}/check-in", post(bookings::check_in))
        .route("/bookings/{id}/check-out", post(bookings::check_out))
        .route("/bookings/{id}/no-show", post(bookings::no_show))
        .route("/bookings/{id}/invoice", get(bookings::invoice))
        .fallback(|| async { Error::not_found("no such route") })
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(request_span)
                        .on_request(())
                        .on_response(DefaultOnResponse::new().level(Level::INFO)),
                )
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(HandleErrorLayer::new(timed_out))
                .timeout(request_timeout)
                .layer(DefaultBodyLimit::max(BODY_LIMIT)),
        )
        .with_state(state)
}

/// One span per request: method, route, request id; the response adds status and latency.
fn request_span(request: &Request) -> tracing::Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| request.uri().path(), MatchedPath::as_str);
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!("request", method = %request.method(), route, request_id)
}

async fn timed_out(error: BoxError) -> impl IntoResponse {
    if error.is::<tower::timeout::error::Elapsed>() {
        tracing::warn!("request timed out");
        Error::Unavailable
    } else {
        Error::Internal(error.to_string())
    }
}
