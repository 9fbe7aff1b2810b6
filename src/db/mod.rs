//! All SQL of the service. Functions take a pool or a connection and answer
//! domain types (or outcome enums); queries are checked against the schema
//! at compile time. Nothing here knows about HTTP.

pub mod book;
pub mod bookings;
pub mod failure;
pub mod hotels;
pub mod invoices;
pub mod rooms;
pub mod search;
pub mod users;

pub use failure::{constraint, is_connection_error, is_retryable};

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use sqlx::{Connection, PgPool};

use crate::domain::Window;

/// The migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// Creates `database` on the server unless it exists.
pub async fn create_database_if_missing(
    server: &PgConnectOptions,
    database: &str,
) -> sqlx::Result<()> {
    let mut conn = PgConnection::connect_with(&server.clone().database("postgres")).await?;
    let exists: bool =
        sqlx::query_scalar("select exists (select 1 from pg_database where datname = $1)")
            .bind(database)
            .fetch_one(&mut conn)
            .await?;
    if !exists {
        // Identifiers cannot be bound; quote it as PostgreSQL would.
        let quoted = format!("\"{}\"", database.replace('"', "\"\""));
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("create database {quoted}")))
            .execute(&mut conn)
            .await?;
    }
    conn.close().await
}

/// When a connection error was last seen, in microseconds since [`STARTED`].
static CONNECTION_ERROR_AT: AtomicU64 = AtomicU64::new(0);
static STARTED: LazyLock<Instant> = LazyLock::new(Instant::now);

fn micros_since_start() -> u64 {
    u64::try_from(STARTED.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// Notes that a connection failed (PostgreSQL restarted, or ended
/// connections): connections idle since before now are checked before use.
pub fn connection_error_seen() {
    CONNECTION_ERROR_AT.store(micros_since_start().max(1), Ordering::Relaxed);
}

/// Whether a connection error was seen after `instant`.
pub fn connection_error_since(instant: Instant) -> bool {
    let error_at = CONNECTION_ERROR_AT.load(Ordering::Relaxed);
    let since =
        u64::try_from(instant.saturating_duration_since(*STARTED).as_micros()).unwrap_or(u64::MAX);
    error_at != 0 && error_at >= since
}

/// The pool. Every connection gets `statement_timeout`. There is no ping on
/// every acquire (a second round trip per request); instead, once a
/// connection error has been seen, a connection idle since before it is
/// pinged before its next use and dropped if dead, so that a restart of
/// PostgreSQL costs one failed request, not one per pooled connection.
pub async fn open_pool(
    options: PgConnectOptions,
    size: u32,
    acquire_timeout: Duration,
    statement_timeout: Duration,
) -> sqlx::Result<PgPool> {
    LazyLock::force(&STARTED);
    let options = options.options([(
        "statement_timeout",
        format!("{}ms", statement_timeout.as_millis()),
    )]);
    PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(acquire_timeout)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                let idle_since = Instant::now()
                    .checked_sub(meta.idle_for)
                    .unwrap_or(*STARTED);
                if !connection_error_since(idle_since) {
                    return Ok(true);
                }
                Ok(conn.ping().await.is_ok())
            })
        })
        .connect_with(options)
        .await
}

/// The connections the server lets this role open at most in this
/// database: its `max_connections`, less those it keeps for superusers (and,
/// from PostgreSQL 16, `reserved_connections`) unless the role is one, and no
/// more than the role's and the database's own connection limits.
pub async fn connections_allowed(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"select least(
                  current_setting('max_connections')::bigint
                  - case when r.rolsuper then 0
                         else current_setting('superuser_reserved_connections')::bigint
                              + coalesce(current_setting('reserved_connections', true)::bigint, 0) end,
                  nullif(greatest(r.rolconnlimit, -1), -1),
                  nullif(greatest(d.datconnlimit, -1), -1)) as "allowed!"
           from pg_roles r, pg_database d
           where r.rolname = current_user and d.datname = current_database()"#
    )
    .fetch_one(pool)
    .await
}

/// Whether every migration of this build has been applied to the database.
pub async fn schema_is_current(pool: &PgPool) -> sqlx::Result<bool> {
    let applied: Vec<i64> =
        match sqlx::query_scalar("select version from _sqlx_migrations where success")
            .fetch_all(pool)
            .await
        {
            Ok(applied) => applied,
            // undefined_table: never migrated.
            Err(error) if failure::is_undefined_table(&error) => {
                return Ok(false);
            }
            Err(error) => return Err(error),
        };
    Ok(MIGRATOR
        .iter()
        .filter(|migration| migration.migration_type.is_up_migration())
        .all(|migration| applied.contains(&migration.version)))
}

/// Whether the database answers at all (`GET /ready`).
pub async fn ping(pool: &PgPool) -> sqlx::Result<()> {
    sqlx::query("select 1").execute(pool).await.map(|_| ())
}

/// One page of a list whose rows carry the total count of the list
/// (`count(*) over ()`). Past the last page no row carries it, so the first
/// page is asked for it: the same query, never a copied `where`.
pub async fn page_of<T, F, Fut>(window: Window, fetch: F) -> sqlx::Result<(Vec<T>, i64)>
where
    F: Fn(Window) -> Fut,
    Fut: std::future::Future<Output = sqlx::Result<Vec<(T, i64)>>>,
{
    let rows = fetch(window).await?;
    let total = match rows.first() {
        Some((_, total)) => *total,
        None if window.offset > 0 => fetch(Window {
            limit: 1,
            offset: 0,
        })
        .await?
        .first()
        .map_or(0, |(_, total)| *total),
        None => 0,
    };
    Ok((rows.into_iter().map(|(item, _)| item).collect(), total))
}

/// How often a transaction that lost a deadlock or a serialization check is
/// run again before the caller hears of it.
pub const TRANSACTION_ATTEMPTS: u32 = 4;

/// Something `in_transaction` can tell apart: a database error that may be
/// worth running again.
pub trait MaybeRetryable: From<sqlx::Error> {
    fn database_error(&self) -> Option<&sqlx::Error>;

    /// Whether the transaction may succeed when run again: by default a
    /// deadlock, a serialization failure or a lock wait that timed out
    /// ([`is_retryable`]).
    fn retryable(&self) -> bool {
        self.database_error().is_some_and(is_retryable)
    }
}

impl MaybeRetryable for sqlx::Error {
    fn database_error(&self) -> Option<&sqlx::Error> {
        Some(self)
    }
}

/// A boxed future that may borrow a connection for `'c`.
pub type BoxFuture<'c, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'c>>;

/// Runs `work` in a transaction (a savepoint when `conn` is already in one),
/// commits on success and rolls back on error; an error that is
/// [`MaybeRetryable::retryable`] (a deadlock, say) runs it again, up to
/// [`TRANSACTION_ATTEMPTS`] times in all. In a savepoint, a deadlock, a
/// serialization failure or a lock wait that timed out is passed on instead:
/// the locks the enclosing transaction already holds may be part of the
/// cycle, so it is that transaction that is run again, by its runner (a
/// request with an `Idempotency-Key`, `idempotency::run`, which
/// runs deadlocks and serialization failures again and answers a lock wait
/// that timed out `503`), and the attempts are not multiplied.
pub async fn in_transaction<T, E, F>(conn: &mut PgConnection, mut work: F) -> Result<T, E>
where
    E: MaybeRetryable,
    F: for<'c> FnMut(&'c mut PgConnection) -> BoxFuture<'c, Result<T, E>>,
{
    let nested = conn.is_in_transaction();
    let mut attempt = 1;
    loop {
        let mut tx = conn.begin().await?;
        match work(&mut tx).await {
            Ok(value) => {
                tx.commit().await?;
                return Ok(value);
            }
            Err(error) => {
                tx.rollback().await?;
                let aborted = error.database_error().is_some_and(is_retryable);
                if attempt >= TRANSACTION_ATTEMPTS || !error.retryable() || (nested && aborted) {
                    return Err(error);
                }
                pause_before_attempt(attempt).await;
                attempt += 1;
            }
        }
    }
}

/// Logs that a transaction lost to a concurrent one (a deadlock, say) after
/// `attempt` attempts, then waits a little longer each time, with a little
/// jitter, so that the same two do not collide again.
pub async fn pause_before_attempt(attempt: u32) {
    tracing::info!(
        attempt,
        "transaction aborted by a concurrent one (a deadlock, say, or a lock not had in time); running it again"
    );
    let pause = 5 * u64::from(attempt) + u64::from(rand_jitter());
    tokio::time::sleep(Duration::from_millis(pause)).await;
}

fn rand_jitter() -> u8 {
    uuid::Uuid::new_v4().as_bytes()[0] % 10
}
