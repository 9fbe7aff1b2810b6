//! Start-up and shutdown: opens the database (starting the managed
//! PostgreSQL when `DATABASE_URL` is unset), runs a subcommand, serves HTTP
//! with connection limits, and stops in order on SIGINT/SIGTERM: requests in
//! flight finish, then the pool closes, then the managed PostgreSQL stops
//! (it is owned by a guard that stops it on drop, on every path).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::auth::{self, Keys};
use crate::config::{Command, Config, ServeArgs, TokenArgs};
use crate::db;
use crate::db::users::AdminToken;
use crate::domain::Name;
use crate::managed_db::{
    self, ClusterOptions, DEFAULT_MAX_CONNECTIONS, ManagedDbError, ManagedPostgres, Supervisor,
};
use crate::routes::app;
use crate::state::{AppState, Limits};

/// The database the service uses on its managed PostgreSQL.
pub const MANAGED_DATABASE: &str = "room_booking";

/// The file in the managed data directory that keeps the JWT secret.
const SECRET_FILE: &str = "jwt-secret";

/// Why the service could not start or ended with an error.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    ManagedDb(#[from] crate::managed_db::ManagedDbError),
    #[error("DATABASE_URL is not a valid PostgreSQL URL: {0}")]
    DatabaseUrl(#[source] sqlx::Error),
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("cannot apply the migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Secret(String),
    #[error(
        "the database's schema is not this build's: run `room-booking migrate` (or `serve` without --no-migrate)"
    )]
    SchemaNotCurrent,
    #[error("the user name {0}")]
    BadUserName(String),
    #[error("no user named `{0}` (add --create-admin to create it as an admin)")]
    UnknownUser(String),
    #[error(
        "user `{0}` exists and is not an admin; add --promote to make it one (its earlier tokens end)"
    )]
    NotAdmin(String),
    #[error("{0}")]
    Token(crate::error::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the server failed: {0}")]
    Serve(#[source] std::io::Error),
    #[error("the managed PostgreSQL failed: {0}")]
    DatabaseLost(String),
    #[error(
        "POOL_SIZE ({pool}) and BOOK_POOL_SIZE ({book}) make {} connections, but the database \
         allows {allowed}; lower them, or raise the server's max_connections",
        .pool + .book
    )]
    TooManyConnections { pool: u32, book: u32, allowed: i64 },
}

/// Runs a subcommand: opens the database, does the work, and stops what it started.
pub async fn run(config: Config, command: Command) -> Result<(), StartupError> {
    // Room for both pools, and for psql and a migration beside them.
    let max_connections = match &command {
        Command::Serve(serve) => {
            (serve.pool_size + serve.book_pool_size + 20).max(DEFAULT_MAX_CONNECTIONS)
        }
        Command::Migrate | Command::Token(_) => DEFAULT_MAX_CONNECTIONS,
    };
    let (options, managed) = match &config.database_url {
        Some(url) => {
            if command.jwt_secret().is_none() && !matches!(command, Command::Migrate) {
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
            let cluster = ClusterOptions {
                max_connections,
                ..ClusterOptions::default()
            };
            let data_dir = managed_db::data_dir(config.data_dir.as_deref())?;
            let server = ManagedPostgres::start(&data_dir, &cluster).await?;
            // Not its URL: that carries the superuser's password.
            tracing::info!(dir = %server.data_dir().display(), "managed PostgreSQL is up");
            (server.connect_options(MANAGED_DATABASE), Some(server))
        }
    };
    let secret = match (command.jwt_secret(), &managed) {
        (Some(secret), _) => secret.to_owned(),
        (None, Some(server)) => auth::load_or_create_secret(&server.data_dir().join(SECRET_FILE))
            .map_err(|error| {
            StartupError::Secret(format!(
                "cannot keep the JWT secret in the data directory: {error}"
            ))
        })?,
        // `migrate` against DATABASE_URL signs nothing.
        (None, None) => String::new(),
    };
    if managed.is_some() {
        db::create_database_if_missing(&options, MANAGED_DATABASE)
            .await
            .map_err(StartupError::Connect)?;
    }
    // The service watches its PostgreSQL and restarts it after a crash.
    let managed = match (managed, &command) {
        (Some(server), Command::Serve(_)) => Some(Managed::Supervised(server.supervise()?)),
        (Some(server), _) => Some(Managed::Plain(server)),
        (None, _) => None,
    };
    // `managed` lives to the end of this function: dropping it stops PostgreSQL,
    // after the pool below has closed.
    let result = run_with_database(command, options, &secret, managed.as_ref()).await;
    if let Some(server) = managed {
        tracing::debug!(
            dir = %server.data_dir().display(),
            "stopping the managed PostgreSQL, unless it belongs to a running service"
        );
        drop(server);
    }
    result
}

/// The managed PostgreSQL: supervised while serving, plain for a subcommand.
/// Dropping either stops the server.
enum Managed {
    Plain(ManagedPostgres),
    Supervised(Supervisor),
}

impl Managed {
    fn data_dir(&self) -> &std::path::Path {
        match self {
            Managed::Plain(server) => server.data_dir(),
            Managed::Supervised(supervisor) => supervisor.data_dir(),
        }
    }
}

async fn run_with_database(
    command: Command,
    options: PgConnectOptions,
    secret: &str,
    managed: Option<&Managed>,
) -> Result<(), StartupError> {
    let pool = match &command {
        Command::Serve(serve) => open_pool(serve, options).await,
        Command::Migrate | Command::Token(_) => open_pool(ONE_SHOT, options).await,
    }
    .map_err(StartupError::Connect)?;
    let keys = Keys::new(secret.as_bytes()).map_err(StartupError::Secret);
    let result = match command {
        Command::Migrate => {
            db::MIGRATOR.run(&pool).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Serve(serve) => {
            let keys = Arc::new(keys?);
            let (pool_size, book) = (serve.pool_size, serve.book_pool_size);
            let allowed = db::connections_allowed(&pool)
                .await
                .map_err(StartupError::Connect)?;
            if i64::from(pool_size + book) > allowed {
                return Err(StartupError::TooManyConnections {
                    pool: pool_size,
                    book,
                    allowed,
                });
            }
            if serve.no_migrate {
                require_current_schema(&pool).await?;
            } else {
                db::MIGRATOR.run(&pool).await?;
            }
            let state = AppState::new(pool.clone(), keys, serve.limits(), serve.hash_slots());
            let book_pool = state.book_pool.clone();
            let supervisor = match managed {
                Some(Managed::Supervised(supervisor)) => Some(supervisor),
                _ => None,
            };
            let served = self::serve(&serve, state, supervisor).await;
            db::book::close_book_pool(&book_pool).await;
            served
        }
        Command::Token(TokenArgs {
            user,
            create_admin,
            promote,
            ..
        }) => mint_token(&pool, &keys?, &user, create_admin, promote).await,
    };
    pool.close().await;
    result
}

/// The pool of `migrate` and `token`: two connections, with `serve`'s
/// default timeouts.
const ONE_SHOT: PoolSettings = PoolSettings {
    pool_size: 2,
    acquire_timeout: Duration::from_secs(5),
    request_timeout: Duration::from_secs(10),
};

/// What a pool is opened with.
struct PoolSettings {
    pool_size: u32,
    acquire_timeout: Duration,
    request_timeout: Duration,
}

impl From<&ServeArgs> for PoolSettings {
    fn from(serve: &ServeArgs) -> Self {
        PoolSettings {
            pool_size: serve.pool_size,
            acquire_timeout: serve.acquire_timeout,
            request_timeout: serve.request_timeout,
        }
    }
}

/// The pool of these settings, on `options` (see [`db::open_pool`]).
async fn open_pool(
    config: impl Into<PoolSettings>,
    options: PgConnectOptions,
) -> sqlx::Result<PgPool> {
    let config = config.into();
    // A little under the request timeout, so that a request that times out
    // also stops its query.
    let statement_timeout = config
        .request_timeout
        .saturating_sub(Duration::from_millis(500))
        .max(Duration::from_millis(100));
    db::open_pool(
        options,
        config.pool_size,
        config.acquire_timeout,
        statement_timeout,
    )
    .await
}

/// Prints a token for `user` to standard output.
async fn mint_token(
    pool: &PgPool,
    keys: &Keys,
    user: &str,
    create_admin: bool,
    promote: bool,
) -> Result<(), StartupError> {
    let user = Name::parse(user).map_err(StartupError::BadUserName)?;
    let user = user.as_str();
    require_current_schema(pool).await?;
    let found = db::users::find_or_create_admin(pool, user, create_admin, promote)
        .await
        .map_err(StartupError::Connect)?;
    let (id, role, token_version) = match found {
        AdminToken::User {
            id,
            role,
            token_version,
        } => (id, role, token_version),
        AdminToken::Unknown => return Err(StartupError::UnknownUser(user.to_owned())),
        AdminToken::NotAdmin => return Err(StartupError::NotAdmin(user.to_owned())),
    };
    let token = keys
        .mint(id, role, token_version)
        .map_err(StartupError::Token)?;
    println!("{token}");
    Ok(())
}

/// Refuses a database whose schema lacks a migration of this build, with a
/// message that says what to run, instead of failing its requests.
async fn require_current_schema(pool: &PgPool) -> Result<(), StartupError> {
    match db::schema_is_current(pool).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(StartupError::SchemaNotCurrent),
        Err(error) => Err(StartupError::Connect(error)),
    }
}

/// Connections the kernel queues for `accept` while every permit is taken
/// (or between two accepts); beyond, it drops the SYN and the client retries
/// after a second or more.
const LISTEN_BACKLOG: u32 = 1024;

fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Raises the soft limit on open files to the hard one (a connection is a
/// file) and returns the limit in force, if it can be read.
fn raise_open_file_limit() -> Option<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => Some(hard),
            Err(_) => Some(soft),
        },
        Ok((soft, _)) => Some(soft),
        Err(_) => None,
    }
}

/// Serves HTTP/1.1 until SIGINT or SIGTERM, then lets the requests in flight
/// finish (bounded by the request timeout).
async fn serve(
    config: &ServeArgs,
    state: AppState,
    supervisor: Option<&Supervisor>,
) -> Result<(), StartupError> {
    let listener = listen(config.bind).map_err(|source| StartupError::Bind {
        addr: config.bind,
        source,
    })?;
    let addr = listener.local_addr().map_err(StartupError::Serve)?;
    tracing::info!(%addr, "listening");
    make_room_for(config.max_connections);
    let pruning = tokio::spawn(crate::idempotency::prune_expired_keys(state.pool.clone()));
    let (gave_up, watching) = watch_supervisor(supervisor, state.metrics.db_restarts.clone());
    tokio::pin!(gave_up);
    let mut lost: Option<ManagedDbError> = None;
    let router = app(state);
    let connections = Arc::new(Semaphore::new(config.max_connections as usize));
    let graceful = GracefulShutdown::new();
    // HTTP/1.1 only: the header-read timeout starts as a connection opens, so a
    // connection that sends nothing (or an HTTP/2 preface, byte by byte) is
    // closed like one that sends half a header. (A protocol-sniffing server
    // would wait for the first bytes before any timeout applied.)
    let builder = http1_builder(config.header_read_timeout);
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
            error = &mut gave_up => { lost = Some(error); break }
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, say: wait a little, go on.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
            error = &mut gave_up => { lost = Some(error); break }
        };
        let _ = stream.set_nodelay(true);
        let service =
            router
                .clone()
                .map_request(move |mut request: axum::http::Request<Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    request
                });
        let connection =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // The connection holds its place under the cap until it closes;
            // an idle one is closed by the header-read timeout.
            let _permit = permit;
            if let Err(error) = connection.await {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: finishing the requests in flight");
    drain(graceful, config.request_timeout + Duration::from_secs(1)).await;
    pruning.abort();
    if let Some(watching) = watching {
        watching.abort();
    }
    if let Some(error) = lost {
        return Err(StartupError::DatabaseLost(error.to_string()));
    }
    tracing::info!("shut down");
    Ok(())
}

/// Raises the open-file limit for `max_connections` connections (each takes
/// a file; the pool, the logs and the managed PostgreSQL's pipes a few more),
/// and warns when it stays below.
fn make_room_for(max_connections: u32) {
    let open_files = raise_open_file_limit();
    if let Some(open_files) = open_files.filter(|&n| n < u64::from(max_connections) + 64) {
        tracing::warn!(
            open_files,
            max_connections,
            "the open-file limit is below MAX_CONNECTIONS; connections beyond it wait"
        );
    }
}

/// Lets the requests in flight finish, for at most `limit`.
async fn drain(graceful: GracefulShutdown, limit: Duration) {
    if tokio::time::timeout(limit, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still running after {limit:?}; stopping anyway");
    }
}

/// An HTTP/1.1 connection builder with the header-read timeout; its read
/// buffer stays near the bound of a request's head (`screen_request`
/// answers a larger head `431`).
fn http1_builder(header_read_timeout: Duration) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .max_buf_size(crate::extract::MAX_HEAD_BYTES.max(64 * 1024))
        .keep_alive(true);
    builder
}

/// What serving watches of the supervisor: its giving up (which ends the
/// service; never, without one), and a task copying its restarts to `/metrics`.
fn watch_supervisor(
    supervisor: Option<&Supervisor>,
    seen: Arc<std::sync::atomic::AtomicU64>,
) -> (
    impl Future<Output = ManagedDbError>,
    Option<tokio::task::JoinHandle<()>>,
) {
    let gave_up = supervisor.map(Supervisor::failed);
    let watching = supervisor.map(|supervisor| {
        let restarts = supervisor.restarts_counter();
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                seen.store(restarts(), std::sync::atomic::Ordering::Relaxed);
            }
        })
    });
    let gave_up = async move {
        match gave_up {
            Some(failed) => failed.await,
            None => std::future::pending().await,
        }
    };
    (gave_up, watching)
}

/// Resolves on SIGINT or SIGTERM.
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
    tracing::info!("signal received");
}

impl ServeArgs {
    /// The limits of SPEC 4.8 from the settings.
    pub fn limits(&self) -> Limits {
        Limits {
            request_timeout: self.request_timeout,
            booking: crate::domain::booking::BookingLimits {
                horizon_days: self.booking_horizon_days,
                guest_live_bookings: self.guest_max_bookings,
                guest_nights: self.guest_max_nights,
            },
            search_nights: self.search_max_nights,
            public_queries: self.public_queries as usize,
            book_connections: self.book_pool_size as usize,
            book_workers: self.book_workers as usize,
            search_burst: self.search_burst,
            search_period: self.search_period,
            auth_burst: self.auth_burst,
            auth_period: self.auth_period,
            refusal_delay: self.refusal_delay,
            hotel_change_lock_wait: self.hotel_change_lock_wait,
        }
    }

    /// Password hashes at once: the setting, or half the cores.
    pub fn hash_slots(&self) -> usize {
        self.hash_slots
            .map_or_else(crate::state::half_the_cores, usize::from)
    }
}
