//! Operations: liveness, readiness, metrics and the API description.

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::{Error, Result};
use crate::openapi::Document;
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module, each with its OpenAPI operation.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(ready))
        .routes(routes!(metrics))
        .routes(routes!(openapi))
}

/// The process is up.
#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, description = "The process is up")))]
pub async fn health() -> StatusCode {
    StatusCode::OK
}

/// The database answers.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "operations",
    responses(
        (status = 200, description = "The database answers"),
        (status = 503, description = "The database does not answer (`Retry-After`)"),
    )
)]
pub async fn ready(State(state): State<AppState>) -> Result<StatusCode> {
    crate::db::ping(&state.pool).await.map_err(|error| {
        tracing::warn!(%error, "database not ready");
        Error::Unavailable
    })?;
    Ok(StatusCode::OK)
}

/// Prometheus metrics.
///
/// Requests by route, method and status with a latency histogram; the pool;
/// bookings created; conflicts; idempotent replays; database restarts.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"))
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let text = state
        .metrics
        .render(&state.pool, &state.book_pool, &state.book_queue);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}

/// This API's OpenAPI 3.1 description.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object))
)]
pub async fn openapi(Extension(document): Extension<Document>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        document.0,
    )
        .into_response()
}
