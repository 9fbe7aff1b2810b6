//! What every handler can reach: the pool, the signing keys, the limits,
//! password hashing and the metrics.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use sqlx::PgPool;

use crate::auth::{Hashing, Keys};
use crate::domain::booking::BookingLimits;
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub keys: Arc<Keys>,
    pub hashing: Hashing,
    pub limits: Limits,
    pub metrics: Metrics,
}

/// The limits that keep one client from starving the others (README, "Limits").
#[derive(Debug, Clone)]
pub struct Limits {
    /// A request that takes longer answers `503`; its SQL is cancelled too.
    pub request_timeout: Duration,
    /// Bookings: the horizon, and what a guest may hold.
    pub booking: BookingLimits,
    /// The longest stay a public search or availability query takes.
    pub search_nights: i64,
    /// Public queries (search, availability) running at once.
    pub public_queries: usize,
    /// `/auth/*` calls per client address: a burst, then one per this period.
    pub auth_burst: u32,
    pub auth_period: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            request_timeout: Duration::from_secs(10),
            booking: BookingLimits::default(),
            search_nights: 30,
            public_queries: 4,
            auth_burst: 10,
            auth_period: Duration::from_secs(6),
        }
    }
}

impl AppState {
    /// A state with default limits, `slots` password hashes at once.
    pub fn new(pool: PgPool, keys: Arc<Keys>, limits: Limits, hash_slots: usize) -> AppState {
        AppState {
            pool,
            keys,
            hashing: Hashing::new(hash_slots, Duration::from_millis(500)),
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
