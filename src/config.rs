//! Command line and environment: every setting is a flag and a variable alike
//! (`room-booking --help` lists them).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

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
    /// Create the user as an admin first, unless it exists.
    #[arg(long)]
    pub create_admin: bool,
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

    /// Maximum number of database connections.
    #[arg(long, env = "POOL_SIZE", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000), global = true)]
    pub pool_size: u32,

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
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if !(seconds > 0.0 && seconds.is_finite()) {
        return Err(format!("`{text}` must be a positive number of seconds"));
    }
    Ok(Duration::from_secs_f64(seconds))
}
