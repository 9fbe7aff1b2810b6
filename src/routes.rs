//! The map of the API: every path and method, and the layers every request
//! goes through.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{BoxError, Router};
use tokio::sync::Semaphore;
use tower::ServiceBuilder;
use tower_governor::GovernorLayer;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::KeyExtractor;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnFailure, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::error::Error;
use crate::extract::screen_request;
use crate::handlers::{auth, book, bookings, health, hotels, rooms, users};
use crate::state::AppState;

/// Bodies are small JSON documents; anything larger answers `413`.
pub const BODY_LIMIT: usize = 64 * 1024;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The application, as the binary serves it and the tests drive it.
pub fn app(state: AppState) -> Router {
    let limits = state.limits.clone();
    // Public: registration and tokens (rate-limited per client address, SPEC 4.8)...
    let sign_in = Router::new()
        .route("/auth/register", post(auth::register))
        .route("/auth/token", post(auth::token))
        .route_layer(per_address_rate_limit(
            limits.auth_burst,
            limits.auth_period,
        ))
        .route_layer(middleware::map_response_with_state(
            limits.refusal_delay,
            refusals_wait,
        ));
    // ...and the search: rate-limited per client address before it waits for
    // one of `public_queries` slots (SPEC 4.6 and 4.8).
    let search = Router::new()
        .route("/hotels", get(hotels::list))
        .route("/hotels/{id}/availability", get(hotels::availability))
        .route_layer(middleware::from_fn_with_state(
            state.public_queries.clone(),
            bounded,
        ))
        .route_layer(per_address_rate_limit(
            limits.search_burst,
            limits.search_period,
        ))
        .route_layer(middleware::map_response_with_state(
            limits.refusal_delay,
            refusals_wait,
        ));
    // Every other handler takes an `AuthUser` (or `TokenClaims`) and so needs a token.
    Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(health::openapi))
        .merge(sign_in)
        .merge(search)
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
        .route("/hotels", post(hotels::create))
        .route(
            "/hotels/{id}",
            get(hotels::get)
                .patch(hotels::update)
                .delete(hotels::delete),
        )
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
                        .on_response(DefaultOnResponse::new().level(Level::INFO))
                        // A 5xx is logged once, with its cause, where it is made;
                        // a deliberate 503 (busy, database down) is no error line.
                        .on_failure(DefaultOnFailure::new().level(Level::WARN)),
                )
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(middleware::from_fn_with_state(
                    state.metrics.clone(),
                    crate::metrics::track,
                ))
                .layer(middleware::map_response(method_not_allowed))
                .layer(HandleErrorLayer::new(timed_out))
                .timeout(limits.request_timeout)
                .layer(DefaultBodyLimit::max(BODY_LIMIT))
                .layer(middleware::from_fn(screen_request)),
        )
        .with_state(state)
}

/// One span per request: method, route, request id; the response adds status and latency.
fn request_span(request: &Request) -> tracing::Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!("request", method = %request.method(), route, request_id)
}

async fn timed_out(error: BoxError) -> Error {
    if error.is::<tower::timeout::error::Elapsed>() {
        tracing::warn!("request timed out");
        Error::Unavailable
    } else {
        Error::Internal(error.to_string())
    }
}

/// The router answers a method a path does not serve with an empty `405`
/// and an `Allow` header; this turns it into a problem document, keeping `Allow`.
async fn method_not_allowed(response: Response) -> Response {
    if response.status() != StatusCode::METHOD_NOT_ALLOWED
        || response.headers().contains_key(header::CONTENT_TYPE)
    {
        return response;
    }
    let allow = response.headers().get(header::ALLOW).cloned();
    let methods = allow
        .as_ref()
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let mut problem = Error::MethodNotAllowed(methods).into_response();
    if let Some(allow) = allow {
        problem.headers_mut().insert(header::ALLOW, allow);
    }
    problem
}

/// At most N public queries at once; a query that waits more than a second
/// for its turn answers `503` with `Retry-After`.
async fn bounded(State(slots): State<Arc<Semaphore>>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(Duration::from_secs(1), slots.acquire()).await {
        Ok(Ok(_permit)) => next.run(request).await,
        _ => Error::Unavailable.into_response(),
    }
}

/// Every `429` waits `delay` before it is sent: a client that asks again as
/// soon as it is answered then costs a sleeping task a second, not a core.
async fn refusals_wait(State(delay): State<Duration>, response: Response) -> Response {
    if response.status() == StatusCode::TOO_MANY_REQUESTS && !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    response
}

/// The client's address; without one (a request that did not come through a
/// socket, as in the tests) all such requests share one budget.
#[derive(Debug, Clone, Copy)]
struct ClientAddress;

impl KeyExtractor for ClientAddress {
    type Key = IpAddr;

    fn extract<T>(
        &self,
        request: &axum::http::Request<T>,
    ) -> Result<IpAddr, tower_governor::GovernorError> {
        Ok(request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |info| info.0.ip()))
    }
}

/// A burst of `burst` calls per client address, then one per `period`;
/// beyond, `429 too_many_requests` with `Retry-After`.
fn per_address_rate_limit(
    burst: u32,
    period: Duration,
) -> GovernorLayer<ClientAddress, governor::middleware::NoOpMiddleware, axum::body::Body> {
    let config = GovernorConfigBuilder::default()
        .key_extractor(ClientAddress)
        .period(period.max(Duration::from_millis(1)))
        .burst_size(burst.max(1))
        .finish();
    let config = match config {
        Some(config) => config,
        // Unreachable: the settings are at least a millisecond and 1
        // (`config::parse_seconds`, clap's ranges), and made so above for
        // `Limits` built otherwise.
        None => GovernorConfigBuilder::default()
            .key_extractor(ClientAddress)
            .finish()
            .unwrap_or_else(|| unreachable!("the default governor configuration is valid")),
    };
    let limiter = config.limiter().clone();
    // Forget addresses that have been quiet, so that the table stays small.
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            limiter.retain_recent();
        }
    });
    GovernorLayer::new(config).error_handler(|error| match error {
        tower_governor::GovernorError::TooManyRequests { wait_time, .. } => {
            Error::TooManyRequests(wait_time).into_response()
        }
        other => Error::Internal(other.to_string()).into_response(),
    })
}
