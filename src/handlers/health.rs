//! Liveness and readiness.

use axum::extract::State;
use axum::http::StatusCode;

use crate::AppState;
use crate::error::{Error, Result};

/// `GET /health`: the process is up.
pub async fn health() -> StatusCode {
    StatusCode::OK
}

/// `GET /ready`: the database answers (`503` with `Retry-After` when not).
pub async fn ready(State(state): State<AppState>) -> Result<StatusCode> {
    crate::db::ping(&state.pool).await.map_err(|error| {
        tracing::warn!(%error, "database not ready");
        Error::Unavailable
    })?;
    Ok(StatusCode::OK)
}
