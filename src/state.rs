//! What every handler can reach: the pool, the signing keys, the limits,
//! password hashing and the metrics.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use sqlx::PgPool;
use tokio::sync::Semaphore;

use crate::auth::{Hashing, Keys, PasswordChecks};
use crate::db::book::{BookPool, BookQueue, book_pool};
use crate::domain::booking::BookingLimits;
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    /// `POST /book` without a key: its queue, and its workers' connections.
    pub book_queue: BookQueue,
    pub book_pool: BookPool,
    pub keys: Arc<Keys>,
    pub hashing: Hashing,
    /// Checks of a user's current password, per user.
    pub password_checks: PasswordChecks,
    /// The slots public queries (search, availability) run in.
    pub public_queries: Arc<Semaphore>,
    pub limits: Limits,
    pub metrics: Metrics,
}

/// The limits that keep one client from starving the others (README, "Limits").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// A request that takes longer answers `503`; its SQL is cancelled too.
    pub request_timeout: Duration,
    /// Bookings: the horizon, and what a guest may hold.
    pub booking: BookingLimits,
    /// The longest stay a public search or availability query takes.
    pub search_nights: i64,
    /// Public queries (search, availability) running at once.
    pub public_queries: usize,
    /// Connections of the keyless `POST /book`s ([`BookPool`]).
    pub book_connections: usize,
    /// Statements booking the keyless `POST /book`s that wait for a
    /// connection, at once ([`BookQueue`]).
    pub book_workers: usize,
    /// Public queries per client address: a burst, then one per this period.
    pub search_burst: u32,
    pub search_period: Duration,
    /// `/auth/*` calls per client address: a burst, then one per this period.
    pub auth_burst: u32,
    pub auth_period: Duration,
    /// How long a `429` waits before it is sent, so that a client looping on
    /// its answers makes one call a second per connection, not thousands.
    pub refusal_delay: Duration,
    /// How long a change of a hotel's time zone or times waits, an attempt,
    /// for the bookings being written (every booking waits behind it).
    pub hotel_change_lock_wait: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            request_timeout: Duration::from_secs(10),
            booking: BookingLimits::default(),
            search_nights: 30,
            public_queries: half_the_cores(),
            book_connections: default_book_connections(),
            book_workers: cores(),
            search_burst: 20,
            search_period: Duration::from_millis(100),
            auth_burst: 10,
            auth_period: Duration::from_secs(6),
            refusal_delay: Duration::from_secs(1),
            hotel_change_lock_wait: Duration::from_millis(100),
        }
    }
}

impl AppState {
    /// A state with these limits, `hash_slots` password hashes at once.
    /// Starts the workers of `POST /book`, so it must run in a Tokio runtime.
    pub fn new(pool: PgPool, keys: Arc<Keys>, limits: Limits, hash_slots: usize) -> AppState {
        let book_pool = book_pool(&pool, limits.book_connections, limits.request_timeout);
        AppState {
            book_queue: BookQueue::start(book_pool.clone(), limits.booking, limits.book_workers),
            book_pool,
            pool,
            keys,
            hashing: Hashing::new(hash_slots, Duration::from_millis(500)),
            password_checks: PasswordChecks::new(limits.auth_burst, limits.auth_period),
            public_queries: Arc::new(Semaphore::new(limits.public_queries.max(1))),
            limits,
            metrics: Metrics::new(),
        }
    }
}

impl FromRef<AppState> for PgPool {
    fn from_ref(state: &AppState) -> PgPool {
        state.pool.clone()
    }
}

impl FromRef<AppState> for Arc<Keys> {
    fn from_ref(state: &AppState) -> Arc<Keys> {
        state.keys.clone()
    }
}

/// Half the cores, at least one: the default share of work anonymous clients
/// can start at once (password hashes, public queries), so that they never
/// take every core from the people who are booking.
pub fn half_the_cores() -> usize {
    (cores() / 2).max(1)
}

/// Connections of the pool unless configured: twice the cores. More only
/// adds PostgreSQL backends that compete for the same cores.
pub fn default_pool_size() -> u32 {
    u32::try_from(2 * cores()).unwrap_or(1000).min(1000)
}

/// Connections of `POST /book` without an `Idempotency-Key` ([`BookPool`])
/// unless configured: as many as the cores, at least two. Each runs one
/// statement at a time, which keeps a core of PostgreSQL busy; clients beyond
/// them queue, and their nights are booked together.
pub fn default_book_connections() -> usize {
    cores().clamp(2, 1000)
}

/// The cores this process may use, at least one.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |cores| cores.get())
}
