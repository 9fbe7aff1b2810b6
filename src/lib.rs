//! room-booking: a REST service for booking hotel rooms that never sells one
//! room twice for the same night.
//!
//! The layout, from the outside in:
//! - [`routes`]: the Router, the map of the API;
//! - [`handlers`]: HTTP in, HTTP out, no SQL;
//! - [`db`]: all SQL, checked against the schema at compile time;
//! - [`error`]: the one error type and its problem documents;
//! - [`domain`]: roles, statuses, dates, names, pagination;
//! - [`managed_db`]: the PostgreSQL the service runs itself when
//!   `DATABASE_URL` is unset;
//! - [`config`]: flags and environment variables.
//!
//! The guarantee itself lives in the schema: the exclusion constraint
//! `bookings_no_overlap` (see `migrations/`).

pub mod auth;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod extract;
pub mod handlers;
pub mod managed_db;
pub mod routes;

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::config::{Command, Config, ServeArgs, TokenArgs};
use crate::managed_db::{ClusterOptions, ManagedPostgres};
pub use crate::routes::app;

/// The database the service uses on its managed PostgreSQL.
pub const MANAGED_DATABASE: &str = "room_booking";

/// The file in the managed data directory that keeps the JWT secret.
const SECRET_FILE: &str = "jwt-secret";

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub keys: Arc<auth::Keys>,
    pub request_timeout: Duration,
}

/// Why the service could not start or ended with an error.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    ManagedDb(#[from] managed_db::ManagedDbError),
    #[error("DATABASE_URL is not a valid PostgreSQL URL: {0}")]
    DatabaseUrl(#[source] sqlx::Error),
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("cannot apply the migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Secret(String),
    #[error("no user named `{0}` (add --create-admin to create it as an admin)")]
    UnknownUser(String),
    #[error("{0}")]
    Token(error::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("the server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// Runs a subcommand: opens the database (starting the managed PostgreSQL
/// when `DATABASE_URL` is unset), does the work, and stops what it started.
pub async fn run(config: Config, command: Command) -> Result<(), StartupError> {
    let (options, managed) = match &config.database_url {
        Some(url) => {
            if config.jwt_secret.is_none() && !matches!(command, Command::Migrate) {
                return Err(StartupError::Secret(
                    "JWT_SECRET must be set when DATABASE_URL is set".into(),
                ));
            }
            let options = url
                .parse::<PgConnectOptions>()
                .map_err(StartupError::DatabaseUrl)?;
            (options, None)
        }
        None => {
            let server =
                ManagedPostgres::start(&config.data_dir, &ClusterOptions::default()).await?;
            tracing::info!(url = %server.url(MANAGED_DATABASE), "managed PostgreSQL is up");
            (server.connect_options(MANAGED_DATABASE), Some(server))
        }
    };
    let secret = match (&config.jwt_secret, &managed) {
        (Some(secret), _) => Ok(secret.clone()),
        (None, Some(server)) => auth::load_or_create_secret(&server.data_dir().join(SECRET_FILE))
            .map_err(|error| {
                StartupError::Secret(format!(
                    "cannot keep the JWT secret in the data directory: {error}"
                ))
            }),
        // `migrate` against DATABASE_URL signs nothing.
        (None, None) => Ok(String::new()),
    };
    let result = match secret {
        Ok(secret) => {
            run_with_database(&config, command, options, managed.is_some(), &secret).await
        }
        Err(error) => Err(error),
    };
    if let Some(server) = managed {
        server.stop();
    }
    result
}

async fn run_with_database(
    config: &Config,
    command: Command,
    options: PgConnectOptions,
    managed: bool,
    secret: &str,
) -> Result<(), StartupError> {
    if managed {
        db::create_database_if_missing(&options, MANAGED_DATABASE)
            .await
            .map_err(StartupError::Connect)?;
    }
    let pool = PgPoolOptions::new()
        .max_connections(config.pool_size)
        .acquire_timeout(config.acquire_timeout)
        // sqlx pings a connection on every acquire by default: a second round
        // trip per request. A broken connection fails its query instead, which
        // answers 503 and is dropped from the pool.
        .test_before_acquire(false)
        .connect_with(options)
        .await
        .map_err(StartupError::Connect)?;
    let keys = auth::Keys::new(secret.as_bytes()).map_err(StartupError::Secret);
    let result = match command {
        Command::Migrate => {
            db::MIGRATOR.run(&pool).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Serve(ServeArgs { no_migrate }) => {
            let keys = Arc::new(keys?);
            if !no_migrate {
                db::MIGRATOR.run(&pool).await?;
            }
            let state = AppState {
                pool: pool.clone(),
                keys,
                request_timeout: config.request_timeout,
            };
            serve(config, state).await
        }
        Command::Token(TokenArgs { user, create_admin }) => {
            mint_token(&pool, &keys?, &user, create_admin).await
        }
    };
    pool.close().await;
    result
}

/// Prints a token for `user` to standard output.
async fn mint_token(
    pool: &PgPool,
    keys: &auth::Keys,
    user: &str,
    create_admin: bool,
) -> Result<(), StartupError> {
    let (id, role) = db::users::find_or_create_admin(pool, user, create_admin)
        .await
        .map_err(StartupError::Connect)?
        .ok_or_else(|| StartupError::UnknownUser(user.to_owned()))?;
    let token = keys.mint(id, role).map_err(StartupError::Token)?;
    println!("{token}");
    Ok(())
}

async fn serve(config: &Config, state: AppState) -> Result<(), StartupError> {
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|source| StartupError::Bind {
            addr: config.bind,
            source,
        })?;
    let addr = listener.local_addr().map_err(StartupError::Serve)?;
    tracing::info!(%addr, "listening");
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(StartupError::Serve)?;
    tracing::info!("shut down");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM; requests in flight then finish.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down");
}
