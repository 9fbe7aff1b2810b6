//! Deletes expired idempotency records. A `delete` by age is safe with any
//! number of service processes at once: each deletes what is expired, and
//! a row another process deleted first is simply not there.

use std::time::Duration;

use sqlx::PgPool;

use super::store;

/// Deletes expired idempotency records every ten minutes.
pub async fn prune_expired_keys(pool: PgPool) {
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    loop {
        tick.tick().await;
        match store::prune(&pool).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "expired idempotency keys deleted"),
            Err(error) => tracing::warn!(%error, "cannot prune idempotency keys"),
        }
    }
}
