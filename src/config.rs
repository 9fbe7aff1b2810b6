//! Command line and environment: every setting is a flag and a variable alike
//! (`room-booking --help` lists them).

use std::ffi::OsString;
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

    /// The command; `serve` when none is given.
    #[command(subcommand)]
    pub command: Option<Command>,
}

impl Cli {
    /// The settings every command shares and the command, from `args`; with
    /// no command, as if `serve` ended them (its settings then come from the
    /// environment).
    pub fn parse_args<I, T>(args: I) -> Result<(Config, Command), clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let mut cli = Cli::try_parse_from(&args)?;
        if cli.command.is_none() {
            cli = Cli::try_parse_from(args.into_iter().chain([OsString::from("serve")]))?;
        }
        match cli.command {
            Some(command) => Ok((cli.config, command)),
            None => unreachable!("`serve` was given"),
        }
    }
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

impl Command {
    /// The secret given to sign tokens with (`migrate` signs none).
    pub fn jwt_secret(&self) -> Option<&str> {
        match self {
            Command::Serve(serve) => serve.jwt_secret.as_deref(),
            Command::Token(token) => token.jwt_secret.as_deref(),
            Command::Migrate => None,
        }
    }

    /// The log filter when none is set: what `serve` does, and only the
    /// warnings and errors of the one-shot commands, whose output is theirs.
    pub fn default_log_filter(&self) -> &'static str {
        match self {
            Command::Serve(_) => "info",
            Command::Migrate | Command::Token(_) => "warn",
        }
    }
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

    /// Secret that signs access tokens (HS256), at least 32 bytes. Required with
    /// DATABASE_URL; with the managed database it is made once and kept in the
    /// data directory.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
}

/// The settings of every command: where the database is, the token secret, logs.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// PostgreSQL server to use. When unset, the service runs its own PostgreSQL
    /// in the data directory.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,

    /// Directory of the self-managed PostgreSQL cluster (used without
    /// DATABASE_URL). Default: `.pgdata`; as root, when the PostgreSQL user
    /// cannot reach it, `/var/lib/room-booking/<hash of its path>`.
    #[arg(long, env = "DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,

    /// Log filter, in `tracing` EnvFilter syntax. Default: `info` for
    /// `serve`, `warn` for the other commands.
    #[arg(long = "log", env = "RUST_LOG", global = true)]
    pub log_filter: Option<String>,

    /// Log format: `text` (no colours unless stderr is a terminal) or `json`
    /// (one object per line).
    #[arg(long, env = "LOG_FORMAT", default_value = "text", value_parser = ["text", "json"], global = true)]
    pub log_format: String,
}

/// The settings of `serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Do not apply migrations on start-up (run `room-booking migrate` first).
    #[arg(long)]
    pub no_migrate: bool,

    /// Secret that signs access tokens (HS256), at least 32 bytes. Required with
    /// DATABASE_URL; with the managed database it is made once and kept in the
    /// data directory.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Address to listen on.
    #[arg(long, env = "BIND_ADDR", default_value = "127.0.0.1:3000")]
    pub bind: SocketAddr,

    /// Database connections of the pool (every route but `POST /book`
    /// without an `Idempotency-Key`). Default: twice the cores.
    #[arg(long, env = "POOL_SIZE", default_value_t = default_pool_size(), value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub pool_size: u32,

    /// Database connections of `POST /book` without an `Idempotency-Key`,
    /// beside the pool. Default: the cores, at least two.
    #[arg(long, env = "BOOK_POOL_SIZE", default_value_t = Limits::default().book_connections as u32, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub book_pool_size: u32,

    /// Seconds a request may take before it answers 503.
    #[arg(long, env = "REQUEST_TIMEOUT", default_value = "10", value_parser = parse_seconds)]
    pub request_timeout: Duration,

    /// Seconds to wait for a free database connection before answering 503.
    #[arg(long, env = "POOL_ACQUIRE_TIMEOUT", default_value = "5", value_parser = parse_seconds)]
    pub acquire_timeout: Duration,

    /// Password hashes (Argon2id) running at once; default: half the cores, at least 1.
    #[arg(long, env = "HASH_SLOTS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub hash_slots: Option<u16>,

    /// `/auth/*` calls a client address may make in a burst.
    #[arg(long, env = "AUTH_BURST", default_value_t = Limits::default().auth_burst, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub auth_burst: u32,

    /// Seconds after which a client address gets one more `/auth/*` call.
    #[arg(long, env = "AUTH_PERIOD", default_value = "6", value_parser = parse_seconds)]
    pub auth_period: Duration,

    /// Seconds a `429` waits before it is sent (0: at once).
    #[arg(long, env = "REFUSAL_DELAY", default_value = "1", value_parser = parse_delay)]
    pub refusal_delay: Duration,

    /// Seconds a change of a hotel's time zone or times waits, an attempt,
    /// for the bookings being written; every booking waits behind it meanwhile.
    #[arg(long, env = "HOTEL_CHANGE_LOCK_WAIT", default_value = "0.1", value_parser = parse_seconds)]
    pub hotel_change_lock_wait: Duration,

    /// Most connections open at once; further ones wait to be accepted. The
    /// service raises its open-file limit to fit them where it may.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,

    /// Seconds a client has to send a request's headers; also how long an
    /// idle keep-alive connection stays open.
    #[arg(long, env = "HEADER_READ_TIMEOUT", default_value = "5", value_parser = parse_seconds)]
    pub header_read_timeout: Duration,

    /// Public queries (search, availability) running at once; default: half
    /// the cores, at least 1.
    #[arg(long, env = "PUBLIC_QUERIES", default_value_t = Limits::default().public_queries as u32, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub public_queries: u32,

    /// When every connection of `POST /book` (without an `Idempotency-Key`)
    /// is busy, requests wait in a queue, and each of this many workers books
    /// all those waiting in one statement on the next connection that comes
    /// free. Default: the cores.
    #[arg(long, env = "BOOK_WORKERS", default_value_t = Limits::default().book_workers as u32, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub book_workers: u32,

    /// Public queries a client address may make in a burst.
    #[arg(long, env = "SEARCH_BURST", default_value_t = Limits::default().search_burst, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub search_burst: u32,

    /// Seconds after which a client address gets one more public query.
    #[arg(long, env = "SEARCH_PERIOD", default_value = "0.1", value_parser = parse_seconds)]
    pub search_period: Duration,

    /// Longest stay, in nights, a search or availability query takes.
    #[arg(long, env = "SEARCH_MAX_NIGHTS", default_value_t = Limits::default().search_nights, value_parser = clap::value_parser!(i64).range(1..=365))]
    pub search_max_nights: i64,

    /// Days ahead a check-in may be.
    #[arg(long, env = "BOOKING_HORIZON_DAYS", default_value_t = BookingLimits::default().horizon_days, value_parser = clap::value_parser!(i64).range(1..=3650))]
    pub booking_horizon_days: i64,

    /// Live (confirmed or checked-in) bookings a guest may hold.
    #[arg(long, env = "GUEST_MAX_BOOKINGS", default_value_t = BookingLimits::default().guest_live_bookings, value_parser = clap::value_parser!(i64).range(1..=100_000))]
    pub guest_max_bookings: i64,

    /// Nights per stay a guest may book.
    #[arg(long, env = "GUEST_MAX_NIGHTS", default_value_t = BookingLimits::default().guest_nights, value_parser = clap::value_parser!(i64).range(1..=365))]
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
        for args in [&["room-booking"][..], &["room-booking", "serve"]] {
            let parsed = Cli::parse_args(args).expect("no arguments needed");
            let (_, Command::Serve(serve)) = parsed else {
                panic!("{args:?} is serve")
            };
            assert_eq!(serve.limits(), Limits::default());
        }
        let (config, _) = Cli::parse_args(["room-booking", "--data-dir", "/d", "migrate"])
            .expect("settings of every command come before it");
        assert_eq!(config.data_dir, Some(PathBuf::from("/d")));
        assert!(Cli::parse_args(["room-booking", "token", "x", "--bind", "1.2.3.4:5"]).is_err());
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
