//! The runner: the work and the record of its answer in one transaction,
//! with the one retry loop for requests with a key.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use super::key::{IdempotencyKey, REPLAYED};
use super::store::{self, KeyState, StoredResponse};
use crate::db::{BoxFuture, MaybeRetryable, TRANSACTION_ATTEMPTS, pause_before_attempt};
use crate::error::{Error, ErrorCode, Result};

/// Runs `work` on a connection of the pool; with a key, inside a transaction
/// that also records (or replays) its answer. That transaction is run again
/// when PostgreSQL aborted it for a concurrent one (a deadlock, say), as
/// [`crate::db::in_transaction`] runs its own: nothing of it was committed,
/// and its key was not recorded.
pub async fn run<F>(
    pool: &PgPool,
    caller: Uuid,
    key: IdempotencyKey,
    mut work: F,
) -> Result<Response>
where
    F: for<'c> FnMut(&'c mut PgConnection) -> BoxFuture<'c, Result<Response>>,
{
    let mut conn = pool.acquire().await?;
    let Some((key, fingerprint)) = key.0 else {
        return work(&mut conn).await;
    };
    let mut attempt = 1;
    loop {
        match run_keyed(&mut conn, caller, &key, &fingerprint.0, &mut work).await {
            Err(error) if attempt < TRANSACTION_ATTEMPTS && error.retryable() => {
                pause_before_attempt(attempt).await;
                attempt += 1;
            }
            answered => return answered,
        }
    }
}

/// One attempt of [`run`] with a key: claim it, do the work, record its
/// answer, commit; on an error the transaction is rolled back.
async fn run_keyed<F>(
    conn: &mut PgConnection,
    caller: Uuid,
    key: &str,
    fingerprint: &[u8],
    work: &mut F,
) -> Result<Response>
where
    F: for<'c> FnMut(&'c mut PgConnection) -> BoxFuture<'c, Result<Response>>,
{
    let mut tx = conn.begin().await?;
    match store::claim(&mut tx, caller, key, fingerprint).await? {
        KeyState::InUse => {
            return Err(Error::conflict(
                ErrorCode::IdempotencyKeyInUse,
                "a request with this Idempotency-Key is still in progress",
            ));
        }
        KeyState::Mismatch => {
            return Err(Error::invalid(
                ErrorCode::IdempotencyKeyMismatch,
                "this Idempotency-Key was used with another request",
            ));
        }
        KeyState::Replay(stored) => return Ok(replay(stored)),
        KeyState::Fresh => {}
    }
    let response = work(&mut tx).await?;
    if !response.status().is_success() {
        return Ok(response);
    }
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|error| Error::Internal(format!("cannot read an answer: {error}")))?;
    let stored = StoredResponse {
        status: parts.status.as_u16(),
        location: parts
            .headers
            .get(header::LOCATION)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned),
        body: body.to_vec(),
    };
    if !store::record(&mut tx, caller, key, fingerprint, &stored).await? {
        // Another request with the key recorded its answer: this one's work
        // is rolled back, and a retry replays the other's answer.
        tracing::warn!("an Idempotency-Key was recorded by another request meanwhile");
        return Err(Error::conflict(
            ErrorCode::IdempotencyKeyInUse,
            "another request with this Idempotency-Key has just been answered; send it again",
        ));
    }
    tx.commit().await?;
    Ok(Response::from_parts(parts, Body::from(body)))
}

fn replay(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let has_body = !stored.body.is_empty();
    let mut response = (status, stored.body).into_response();
    let headers = response.headers_mut();
    if has_body {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    if let Some(location) = stored.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        headers.insert(header::LOCATION, location);
    }
    headers.insert(REPLAYED, HeaderValue::from_static("true"));
    response
}
