//! The connections of keyless `POST /book`s: a pool of their own, with the
//! settings and timeouts of the booking path.

use std::sync::Arc;
use std::time::Duration;

use deadpool::managed::{Metrics, RecycleResult};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool};

/// The connections of `POST /book` without an `Idempotency-Key`: one
/// statement each, in autocommit, so a connection is clean again as soon as
/// its answer is read. sqlx's pool tests every connection it takes back with
/// a round trip of its own (a `Sync` and its `ReadyForQuery`), which would
/// make each booking two round trips; these connections go back untested,
/// and, like the pool's, are pinged before their next use only when a
/// connection error was seen since they were last taken (a query cut short by
/// the request timeout is drained by the next query on its connection).
/// Anything that opens a transaction stays on the pool, whose test on return
/// also sends a dropped transaction's `ROLLBACK` at once.
pub type BookPool = deadpool::managed::Pool<BookConnections>;

/// Opens [`BookPool`]'s connections as the pool opens its own.
pub struct BookConnections {
    options: Arc<PgConnectOptions>,
}

impl deadpool::managed::Manager for BookConnections {
    type Type = PgConnection;
    type Error = sqlx::Error;

    async fn create(&self) -> sqlx::Result<PgConnection> {
        PgConnection::connect_with(&self.options).await
    }

    async fn recycle(
        &self,
        conn: &mut PgConnection,
        metrics: &Metrics,
    ) -> RecycleResult<sqlx::Error> {
        if crate::db::connection_error_since(metrics.recycled.unwrap_or(metrics.created)) {
            conn.ping().await?;
        }
        Ok(())
    }
}

/// A [`BookPool`] of `size` connections beside `pool`: the same connection
/// options, generic plans only, no sequential scans, and the timeouts of
/// [`book_timeouts`]. `book_many.sql` takes arrays: its custom
/// plan (for the arrays' lengths) always looks cheaper than its generic plan
/// (which assumes a hundred elements), so PostgreSQL would plan it anew on
/// every execution, about half a millisecond each time. These connections run
/// only `book.sql` and `book_many.sql`, whose every lookup has an index (by
/// a unique key, or a guest's bookings by user): with `enable_seqscan` off
/// every one uses it, the default hotel and the hotel's row too, which the
/// planner would otherwise read by scanning `hotels` whole while its
/// statistics say it is a few pages (at 201 hotels: two scans, 9 of the
/// statement's 43 buffers, 400 rows filtered out).
/// `wrk/bench.sh` checks both plans with these settings.
pub fn book_pool(pool: &PgPool, size: usize, request_timeout: Duration) -> BookPool {
    let (wait, statement) = book_timeouts(request_timeout, pool.options().get_acquire_timeout());
    let statement = format!("{}ms", statement.as_millis());
    let connect = pool.connect_options().as_ref().clone().options([
        ("plan_cache_mode", "force_generic_plan"),
        ("enable_seqscan", "off"),
        ("statement_timeout", statement.as_str()),
    ]);
    let builder = BookPool::builder(BookConnections {
        options: Arc::new(connect),
    })
    .max_size(size.max(1))
    .wait_timeout(Some(wait))
    .create_timeout(Some(wait))
    .runtime(deadpool::Runtime::Tokio1);
    match builder.build() {
        Ok(pool) => pool,
        // Only a timeout without a runtime fails, and the runtime is set above.
        Err(error) => unreachable!("{error}"),
    }
}

/// How long a keyless `POST /book` waits at most for a connection (free or
/// new, or in the queue), and how long its statement may run: together half
/// a second under `request_timeout`, as the pool's statement timeout is, so
/// that a booking is never committed after its request has timed out and
/// answered `503` (in autocommit nothing else would stop it). The wait is
/// the pool's `acquire_timeout`, but at most half of that time.
pub fn book_timeouts(request_timeout: Duration, acquire_timeout: Duration) -> (Duration, Duration) {
    let budget = request_timeout
        .saturating_sub(Duration::from_millis(500))
        .max(Duration::from_millis(200));
    let wait = acquire_timeout.min(budget / 2);
    (wait, budget - wait)
}

/// Closes the idle connections of `pool` (a `Terminate` each) and refuses
/// further ones; connections in use are dropped when they come back.
pub async fn close_book_pool(pool: &BookPool) {
    let idle = pool.retain(|_, _| false).removed;
    pool.close();
    for conn in idle {
        let _ = conn.close().await;
    }
}
