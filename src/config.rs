//! Command line and environment: every setting is a flag and a variable alike
//! (`room-booking --help` lists them).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::domain::booking::BookingLimits;
use crate::state::{Limits, default_pool_size};

#[derive(Debug, Parser)]
#[command(
    name = "room-booking",
    version,
    about = "A REST service for booking hotel rooms"
)]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (the default).
    Serve(ServeArgs),
    /// Apply the database migrations and exit.
    Migrate,
    /// Print an access token for a user, signed with the configured secret.
    Token(TokenArgs),
}

#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// The user's name.
    pub user: String,
    /// Create the user as an admin first, unless it exists (an existing
    /// user that is not an admin is refused, unless --promote).
    #[arg(long)]
    pub create_admin: bool,
    /// Make an existing user an admin (ending its earlier tokens).
    #[arg(long)]
    pub promote: bool,
}

#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// Do not apply migrations on start-up (run `room-booking migrate` first).
    #[arg(long)]
    pub no_migrate: bool,
}

#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on.
    #[arg(
        long,
        env = "BIND_ADDR",
        default_value = "127.0.0.1:3000",
        global = true
    )]
    pub bind: SocketAddr,

    /// PostgreSQL server to use. When unset, the service runs its own PostgreSQL
    /// in the data directory.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,

    /// Directory of the self-managed PostgreSQL cluster (used without DATABASE_URL).
    #[arg(long, env = "DATA_DIR", default_value = ".pgdata", global = true)]
    pub data_dir: PathBuf,

    /// Database connections of the pool (every route but `POST /book`
    /// without an `Idempotency-Key`). Default: twice the cores.
    #[arg(long, env = "POOL_SIZE", default_value_t = default_pool_size(), value_parser = clap::value_parser!(u32).range(1..=1000), global = true)]
    pub pool_size: u32,

    /// Database connections of `POST /book` without an `Idempotency-Key`,
    /// beside the pool. Default: the cores, at least two.
    #[arg(long, env = "BOOK_POOL_SIZE", default_value_t = Limits::default().book_connections as u32, value_parser = clap::value_parser!(u32).range(1..=1000), global = true)]
    pub book_pool_size: u32,

    /// Seconds a request may take before it answers 503.
    #[arg(long, env = "REQUEST_TIMEOUT", default_value = "10", value_parser = parse_seconds, global = true)]
    pub request_timeout: Duration,

    /// Seconds to wait for a free database connection before answering 503.
    #[arg(long, env = "POOL_ACQUIRE_TIMEOUT", default_value = "5", value_parser = parse_seconds, global = true)]
    pub acquire_timeout: Duration,

    /// Secret that signs access tokens (HS256), at least 32 bytes. Required with
    /// DATABASE_URL; with the managed database it is made once and kept in the
    /// data directory.
    #[arg(long, env = "JWT_SECRET", global = true, hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Log filter, in `tracing` EnvFilter syntax.
    #[arg(long = "log", env = "RUST_LOG", default_value = "info", global = true)]
    pub log_filter: String,

    /// Log format: `text` (no colours unless stderr is a terminal) or `json`
    /// (one object per line).
    #[arg(long, env = "LOG_FORMAT", default_value = "text", value_parser = ["text", "json"], global = true)]
    pub log_format: String,

    /// Password hashes (Argon2id) running at once; default: half the cores, at least 1.
    #[arg(long, env = "HASH_SLOTS", value_parser = clap::value_parser!(u16).range(1..=1024), global = true)]
    pub hash_slots: Option<u16>,

    /// `/auth/*` calls a client address may make in a burst.
    #[arg(long, env = "AUTH_BURST", default_value_t = Limits::default().auth_burst, value_parser = clap::value_parser!(u32).range(1..=1_000_000), global = true)]
    pub auth_burst: u32,

    /// Seconds after which a client address gets one more `/auth/*` call.
    #[arg(long, env = "AUTH_PERIOD", default_value = "6", value_parser = parse_seconds, global = true)]
    pub auth_period: Duration,

    /// Seconds a `429` waits before it is sent (0: at once).
    #[arg(long, env = "REFUSAL_DELAY", default_value = "1", value_parser = parse_delay, global = true)]
    pub refusal_delay: Duration,

    /// Seconds a change of a hotel's time zone or times waits, an attempt,
    /// for the bookings being written; every booking waits behind it meanwhile.
    #[arg(long, env = "HOTEL_CHANGE_LOCK_WAIT", default_value = "0.1", value_parser = parse_seconds, global = true)]
    pub hotel_change_lock_wait: Duration,

    /// Most connections open at once; further ones wait to be accepted. The
    /// service raises its open-file limit to fit them where it may.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=1_000_000), global = true)]
    pub max_connections: u32,

    /// Seconds a client has to send a request's headers; also how long an
    /// idle keep-alive connection stays open.
    #[arg(long, env = "HEADER_READ_TIMEOUT", default_value = "5", value_parser = parse_seconds, global = true)]
    pub header_read_timeout: Duration,

    /// Public queries (search, availability) running at once; default: half
    /// the cores, at least 1.
    #[arg(long, env = "PUBLIC_QUERIES", default_value_t = Limits::default().public_queries as u32, value_parser = clap::value_parser!(u32).range(1..=1000), global = true)]
    pub public_queries: u32,

    /// When every connection of `POST /book` (without an `Idempotency-Key`)
    /// is busy, requests wait in a queue, and each of this many workers books
    /// all those waiting in one statement on the next connection that comes
    /// free. Default: the cores.
    #[arg(long, env = "BOOK_WORKERS", default_value_t = Limits::default().book_workers as u32, value_parser = clap::value_parser!(u32).range(1..=1000), global = true)]
    pub book_workers: u32,

    /// Public queries a client address may make in a burst.
    #[arg(long, env = "SEARCH_BURST", default_value_t = Limits::default().search_burst, value_parser = clap::value_parser!(u32).range(1..=1_000_000), global = true)]
    pub search_burst: u32,

    /// Seconds after which a client address gets one more public query.
    #[arg(long, env = "SEARCH_PERIOD", default_value = "0.1", value_parser = parse_seconds, global = true)]
    pub search_period: Duration,

    /// Longest stay, in nights, a search or availability query takes.
    #[arg(long, env = "SEARCH_MAX_NIGHTS", default_value_t = Limits::default().search_nights, value_parser = clap::value_parser!(i64).range(1..=365), global = true)]
    pub search_max_nights: i64,

    /// Days ahead a check-in may be.
    #[arg(long, env = "BOOKING_HORIZON_DAYS", default_value_t = BookingLimits::default().horizon_days, value_parser = clap::value_parser!(i64).range(1..=3650), global = true)]
    pub booking_horizon_days: i64,

    /// Live (confirmed or checked-in) bookings a guest may hold.
    #[arg(long, env = "GUEST_MAX_BOOKINGS", default_value_t = BookingLimits::default().guest_live_bookings, value_parser = clap::value_parser!(i64).range(1..=100_000), global = true)]
    pub guest_max_bookings: i64,

    /// Nights per stay a guest may book.
    #[arg(long, env = "GUEST_MAX_NIGHTS", default_value_t = BookingLimits::default().guest_nights, value_parser = clap::value_parser!(i64).range(1..=365), global = true)]
    pub guest_max_nights: i64,
}

/// The longest time any setting takes: a day.
const MAX_SECONDS: f64 = 86_400.0;

/// The shortest: a millisecond, the resolution of the service's timers (a
/// shorter timeout or period would silently become one).
const MIN_SECONDS: f64 = 0.001;

/// A delay in seconds; zero is none.
fn parse_delay(text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(0.0) => Ok(Duration::ZERO),
        _ => parse_seconds(text),
    }
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if !(MIN_SECONDS..=MAX_SECONDS).contains(&seconds) {
        return Err(format!(
            "`{text}` must be a number of seconds from {MIN_SECONDS} (a millisecond) to {MAX_SECONDS}"
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Some defaults are written twice, as text for clap and as values in
    /// `Limits::default()`; they must say the same.
    #[test]
    fn the_settings_default_to_the_limits_defaults() {
        let cli = Cli::try_parse_from(["room-booking"]).expect("no arguments needed");
        assert_eq!(cli.config.limits(), Limits::default());
    }

    #[test]
    fn durations_are_bounded_and_a_delay_may_be_zero() {
        assert_eq!(parse_seconds("0.1"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_seconds("0.001"), Ok(Duration::from_millis(1)));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("0.0009").is_err());
        assert!(parse_seconds("0.000001").is_err());
        assert!(parse_delay("0.0001").is_err());
        assert!(parse_seconds("1e30").is_err());
        assert!(parse_seconds("NaN").is_err());
        assert_eq!(parse_delay("0"), Ok(Duration::ZERO));
        assert!(parse_delay("-1").is_err());
    }
}
