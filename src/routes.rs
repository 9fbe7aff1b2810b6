//! The map of the API: every path and method, and the layers every request
//! goes through.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{BoxError, Extension, Router};
use tokio::sync::Semaphore;
use tower::ServiceBuilder;
use tower_governor::GovernorLayer;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::KeyExtractor;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnFailure, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::db;
use crate::error::{Cause, Error};
use crate::extract::{BODY_LIMIT, screen_request};
use crate::handlers::{
    auth, book, bookings, health, hotels, rate_plans, rates, room_types, rooms, search, users,
};
use crate::idempotency;
use crate::openapi::{ApiDoc, Document};
use crate::state::{AppState, Limits};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The application, as the binary serves it and the tests drive it.
pub fn app(state: AppState) -> Router {
    let limits = state.limits.clone();
    let (router, api) = api(&limits, state.public_queries.clone()).split_for_parts();
    router
        .fallback(|| async { Error::not_found("no such route") })
        .layer(Extension(Document::new(api)))
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
                .layer(middleware::map_response(log_failures))
                .layer(middleware::from_fn_with_state(
                    state.metrics.clone(),
                    crate::metrics::track,
                ))
                .layer(middleware::map_response(method_not_allowed))
                .layer(HandleErrorLayer::new(timed_out))
                .timeout(limits.request_timeout)
                .layer(DefaultBodyLimit::max(BODY_LIMIT))
                .layer(middleware::from_fn(screen_request))
                .layer(middleware::from_fn(idempotency::fingerprint_keyed)),
        )
        .with_state(state)
}

/// Every route, from the routers of the resource modules, with its
/// OpenAPI operation; and the layers of the public ones.
pub fn api(limits: &Limits, public_queries: Arc<Semaphore>) -> OpenApiRouter<AppState> {
    // Public: registration and tokens (rate-limited per client address, SPEC 4.8)...
    let sign_in = auth::router()
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
    let search = search::router()
        .route_layer(middleware::from_fn_with_state(public_queries, bounded))
        .route_layer(per_address_rate_limit(
            limits.search_burst,
            limits.search_period,
        ))
        .route_layer(middleware::map_response_with_state(
            limits.refusal_delay,
            refusals_wait,
        ));
    // Every other handler takes a caller (`AuthUser`, `Staff`, `Admin` or
    // `TokenClaims`) and so needs a token; `health` is public.
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(health::router())
        .merge(sign_in)
        .merge(search)
        .merge(book::router())
        .merge(rooms::router())
        .merge(users::router())
        .merge(hotels::router())
        .merge(room_types::router())
        .merge(rate_plans::router())
        .merge(rates::router())
        .merge(bookings::router())
}

/// Logs why a request failed, once, inside its span: the [`Cause`] that
/// [`Error`]'s answer carries. A lost connection also has the pools check
/// their idle connections before their next use.
async fn log_failures(response: Response) -> Response {
    if let Some(cause) = response.extensions().get::<Cause>() {
        if cause.fault {
            tracing::error!(cause = %cause.text, "request failed");
        } else {
            tracing::warn!(cause = %cause.text, "database unavailable");
        }
        if cause.connection_lost {
            db::connection_error_seen();
        }
    }
    response
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

/// The client's address, from the connection (`startup` serves with
/// `ConnectInfo`; the tests' requests carry one too).
#[derive(Debug, Clone, Copy)]
struct ClientAddress;

impl KeyExtractor for ClientAddress {
    type Key = IpAddr;

    fn extract<T>(
        &self,
        request: &axum::http::Request<T>,
    ) -> Result<IpAddr, tower_governor::GovernorError> {
        request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip())
            .ok_or(tower_governor::GovernorError::UnableToExtractKey)
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

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// The document `app` serves, without a database.
    fn document() -> Value {
        let limits = Limits::default();
        let slots = Arc::new(Semaphore::new(1));
        crate::openapi::finish(api(&limits, slots).into_openapi())
    }

    #[tokio::test]
    async fn created_resources_link_to_their_operations() {
        let document = document();
        let links =
            |creator: &str| document["paths"][creator]["post"]["responses"]["201"]["links"].clone();
        for creator in ["/book", "/bookings"] {
            let links = links(creator);
            let cancel = &links["delete_bookings_id"];
            assert_eq!(cancel["operationId"], "delete_bookings_id", "{creator}");
            assert_eq!(cancel["parameters"], json!({ "id": "$response.body#/id" }));
            assert!(links["post_bookings_id_check_in"].is_object(), "{creator}");
            assert!(links["get_bookings_id_invoice"].is_object(), "{creator}");
        }
        let hotel = links("/hotels");
        assert_eq!(
            hotel["put_hotels_id_rates"]["parameters"],
            json!({ "id": "$response.body#/id" })
        );
        assert!(hotel["post_hotels_id_room_types"].is_object());
        // Operations that need another id than the new hotel's are not linked.
        assert!(
            hotel
                .get("patch_hotels_id_room_types_room_type_id")
                .is_none()
        );
        let room_type = links("/hotels/{id}/room-types");
        assert_eq!(
            room_type["delete_hotels_id_room_types_room_type_id"]["parameters"],
            json!({ "id": "$request.path.id", "room_type_id": "$response.body#/id" })
        );
        assert!(
            links("/hotels/{id}/rate-plans")["patch_hotels_id_rate_plans_rate_plan_id"].is_object()
        );
        assert!(links("/rooms")["delete_rooms_id"].is_object());
        assert!(links("/users")["get_users_id"].is_object());
    }

    #[tokio::test]
    async fn a_new_booking_names_a_room_type_or_a_room_not_both() {
        let document = document();
        let request = &document["components"]["schemas"]["NewBookingRequest"];
        let given = |field: &str| json!({ "properties": { field: { "type": "string" } }, "required": [field] });
        assert_eq!(
            request["anyOf"],
            json!([given("room_type_id"), given("room_id")])
        );
        assert_eq!(
            request["not"]["allOf"],
            json!([given("room_type_id"), given("room_id")])
        );
    }

    #[tokio::test]
    async fn every_problem_answer_is_a_problem_document() {
        let document = document();
        assert_eq!(document["openapi"], "3.1.0");
        let paths = document["paths"].as_object().expect("paths");
        assert!(paths.len() >= 20);
        for (path, item) in paths {
            for method in ["get", "put", "post", "delete", "patch"] {
                let Some(operation) = item.get(method) else {
                    continue;
                };
                let responses = operation["responses"].as_object().expect("responses");
                for (status, response) in responses {
                    if status.starts_with('4') || status.starts_with('5') {
                        assert!(
                            response["content"]["application/problem+json"].is_object(),
                            "{method} {path} {status}"
                        );
                    }
                }
            }
        }
    }
}
