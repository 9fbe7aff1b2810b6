//! The self-managed PostgreSQL used when `DATABASE_URL` is unset: a cluster in
//! a data directory, listening only on a Unix socket inside that directory.
//!
//! - [`ManagedPostgres::start`] creates the cluster unless it exists and starts
//!   the server; dropping the value stops it (fast shutdown).
//! - [`ManagedPostgres::supervise`] hands the server to a [`Supervisor`], which
//!   restarts it after a crash, adopts a server an operator restarted under it
//!   (`pg_ctl restart`), and reports when it cannot bring it back.
//!
//! Processes. `postgres` runs in a process group of its own, so a Ctrl-C at
//! the terminal reaches only the service, which drains its requests and then
//! stops PostgreSQL itself. Every `postgres` is forked by one thread that lives
//! as long as the process, with `SIGQUIT` as parent-death signal: the kernel
//! sends it when the forking *thread* exits, so the server never outlives us,
//! and a crash of ours becomes an immediate shutdown that PostgreSQL recovers
//! from at the next start.
//!
//! Authentication. A new cluster uses `scram-sha-256` for every connection
//! (the server may run as a shared account such as `nobody`); the superuser's
//! password is generated and kept in the data directory, mode 0600, as
//! `superuser-password`. A cluster created earlier with `trust` has no such
//! file and is still reached without a password.

use std::fs::{self, File, OpenOptions};
use std::future::Future;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError, mpsc};
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use nix::sys::signal::{self, Signal};
use nix::unistd::{Pid, Uid, User};
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use tokio::sync::watch;

/// The superuser `initdb` creates; connections come through the socket only.
const SUPERUSER: &str = "postgres";
/// The superuser's password, in the data directory (mode 0600).
const PASSWORD_FILE: &str = "superuser-password";
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a fast shutdown may take before it becomes an immediate one.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an immediate shutdown (then a kill) may take.
const QUIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the supervisor tries to bring a dead server back.
const GIVE_UP_AFTER: Duration = Duration::from_secs(60);
const WATCH_INTERVAL: Duration = Duration::from_millis(200);
/// The supervisor's first pause after a death: it leaves an operator's
/// `pg_ctl restart` the time to start its postmaster, so that it adopts that
/// one rather than race it for the data directory.
const SETTLE: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Directories that are never a data directory: `chown`ing one of them to
/// the `postgres` user would break the system.
const SYSTEM_DIRECTORIES: &[&str] = &[
    "/", "/tmp", "/var/tmp", "/home", "/root", "/etc", "/usr", "/var", "/dev", "/proc", "/sys",
    "/boot", "/bin", "/lib", "/opt", "/srv", "/run",
];

#[derive(Debug, thiserror::Error)]
pub enum ManagedDbError {
    #[error(
        "PostgreSQL server binaries (initdb, postgres) were not found on PATH, in \
         /usr/lib/postgresql/*/bin, or through pg_config. Install them (Debian/Ubuntu: \
         `apt-get install postgresql`) or set DATABASE_URL to a PostgreSQL server."
    )]
    BinariesNotFound,
    #[error(
        "running as root, but neither the `postgres` nor the `nobody` user exists to run \
         PostgreSQL (it refuses to run as root); create one, or set DATABASE_URL"
    )]
    NoUnprivilegedUser,
    #[error("data directory {0} is a symbolic link; give the path it points to (left unchanged)")]
    Symlink(PathBuf),
    #[error(
        "data directory {0} is a system or home directory; give a directory of its own \
         (left unchanged)"
    )]
    SystemDirectory(PathBuf),
    #[error("data directory {0} exists but is not a directory")]
    NotADirectory(PathBuf),
    #[error(
        "data directory {0} exists but is not a PostgreSQL cluster and is not empty \
         (left unchanged)"
    )]
    NotACluster(PathBuf),
    #[error("{what} (data directory {dir}): {source}")]
    Io {
        what: &'static str,
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("initdb failed in {dir}:\n{output}")]
    InitDb { dir: PathBuf, output: String },
    #[error("PostgreSQL did not start in {dir}{hint}; its log ends with:\n{log}")]
    Start {
        dir: PathBuf,
        hint: &'static str,
        log: String,
    },
    #[error(
        "PostgreSQL in {dir} refuses the superuser's login ({message}). A cluster made by \
         this service keeps that password in {dir}/superuser-password, which is {}; restore \
         the file from the backup of this data directory, or set DATABASE_URL to reach the \
         server with credentials of your own",
        password_file_state(.password_file)
    )]
    Refused {
        dir: PathBuf,
        password_file: bool,
        message: String,
    },
    #[error(
        "the managed PostgreSQL in {dir} died and could not be brought back in {seconds} s: {reason}"
    )]
    GaveUp {
        dir: PathBuf,
        seconds: u64,
        reason: String,
    },
}

/// Options of a managed cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Trade durability for speed (`fsync=off`): for throw-away test clusters only.
    pub ephemeral: bool,
    /// The server's `max_connections`.
    pub max_connections: u32,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            ephemeral: false,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// The managed server's `max_connections` unless the service needs more.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 200;

/// A PostgreSQL server on a data directory of ours. Dropping it stops the
/// server if this process runs it.
#[derive(Debug)]
pub struct ManagedPostgres {
    endpoint: Endpoint,
    launch: Launch,
    process: Process,
}

/// Which postmaster serves the data directory, and whether it is ours to stop.
#[derive(Debug)]
enum Process {
    /// Our child: stopped on drop, reaped by us.
    Child(Child),
    /// Another process of ours already ran the server when we started (say
    /// `room-booking token` beside a running service): used as it is, and
    /// left running.
    Borrowed(Pid),
    /// A postmaster that replaced ours while we ran (an operator's `pg_ctl
    /// restart`): not our child, but ours to stop.
    Adopted(Pid),
    /// None (stopped, or not started yet).
    Gone,
}

/// Where and how to connect: the socket directory and the superuser's password.
#[derive(Clone)]
struct Endpoint {
    data_dir: PathBuf,
    /// `None` for a cluster created with `trust` before passwords were used.
    password: Option<String>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("data_dir", &self.data_dir)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Endpoint {
    fn connect_options(&self, database: &str) -> PgConnectOptions {
        let options = PgConnectOptions::new()
            .socket(&self.data_dir)
            .username(SUPERUSER)
            .database(database);
        match &self.password {
            Some(password) => options.password(password),
            None => options,
        }
    }

    fn url(&self, database: &str) -> String {
        // The password is hex: nothing in it needs encoding.
        let credentials = match &self.password {
            Some(password) => format!("{SUPERUSER}:{password}"),
            None => SUPERUSER.to_owned(),
        };
        format!(
            "postgres://{credentials}@localhost/{}?host={}",
            percent_encode(database.as_bytes()),
            percent_encode(self.data_dir.as_os_str().as_bytes())
        )
    }
}

/// What it takes to start `postgres` again on the same cluster.
#[derive(Debug, Clone)]
struct Launch {
    bin_dir: PathBuf,
    /// The unprivileged user PostgreSQL runs as when we are root.
    owner: Option<User>,
    ephemeral: bool,
    max_connections: u32,
}

/// Where this start's lines begin in `postgres.log`.
struct LogMark {
    path: PathBuf,
    start: u64,
}

impl LogMark {
    fn tail(&self) -> String {
        read_from(&self.path, self.start)
    }
}

/// Why a server did not come to accept connections.
enum NotReady {
    Exited,
    Timeout,
    Stopping,
    /// The server runs but refuses the superuser's login (a password file
    /// missing or wrong): waiting longer would not help.
    Refused(String),
}

fn password_file_state(present: &bool) -> &'static str {
    if *present {
        "there but does not match"
    } else {
        "missing"
    }
}

/// How the server answered an attempt to log in.
enum Answer {
    Accepted,
    NotYet,
    /// Authentication failed (`28P01`, `28000`), with PostgreSQL's message.
    Refused(String),
}

impl ManagedPostgres {
    /// Creates the cluster in `data_dir` unless it exists, starts the server and
    /// waits until it accepts connections. When a server of ours already runs
    /// there and answers, it is used as it is (and left running on drop).
    pub async fn start(data_dir: &Path, options: &ClusterOptions) -> Result<Self, ManagedDbError> {
        let bin_dir = find_bin_dir().ok_or(ManagedDbError::BinariesNotFound)?;
        let owner = server_user()?;
        let data_dir = prepare_data_dir(data_dir, owner.as_ref())?;
        if !data_dir.join("PG_VERSION").exists() {
            init_cluster(&bin_dir, &data_dir, owner.as_ref()).await?;
        }
        let password = read_password(&data_dir)?;
        let mut server = ManagedPostgres {
            endpoint: Endpoint { data_dir, password },
            launch: Launch {
                bin_dir,
                owner,
                ephemeral: options.ephemeral,
                max_connections: options.max_connections,
            },
            process: Process::Gone,
        };
        if let Some(pid) = live_postmaster(server.data_dir()) {
            server.process = Process::Borrowed(pid);
            match server.answer().await {
                Answer::Accepted => {
                    tracing::info!(dir = %server.data_dir().display(), "using the PostgreSQL already running there");
                    return Ok(server);
                }
                // Left running: it is not ours to stop.
                Answer::Refused(message) => return Err(server.refused(message)),
                // Starting ours will fail on the lock file, with a clear log.
                Answer::NotYet => server.process = Process::Gone,
            }
        }
        remove_stale_pid_file(server.data_dir())?;
        let log = server.spawn()?;
        match server
            .wait_until_ready(Instant::now() + START_TIMEOUT, &|| false)
            .await
        {
            Ok(()) => Ok(server),
            // Dropping `server` stops the child.
            Err(NotReady::Refused(message)) => Err(server.refused(message)),
            Err(_) => Err(server.start_error(&log)),
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.endpoint.data_dir
    }

    /// Connection options for `database` on this server's socket, with the
    /// superuser's password when the cluster has one.
    pub fn connect_options(&self, database: &str) -> PgConnectOptions {
        self.endpoint.connect_options(database)
    }

    /// A `postgres://` URL for `database`, for `psql`, `sqlx-cli` or `pgbench`.
    /// It carries the superuser's password: do not log it.
    pub fn url(&self, database: &str) -> String {
        self.endpoint.url(database)
    }

    /// Fast shutdown: ends sessions, checkpoints, and waits for the server to
    /// exit. The same as dropping the value.
    pub fn stop(self) {
        drop(self);
    }

    /// Hands the server to a [`Supervisor`] that restarts it when it dies and
    /// gives up after a minute of failed attempts.
    pub fn supervise(self) -> Result<Supervisor, ManagedDbError> {
        self.supervise_giving_up_after(GIVE_UP_AFTER)
    }

    /// [`ManagedPostgres::supervise`], giving up once `limit` has passed
    /// without the server back.
    pub fn supervise_giving_up_after(self, limit: Duration) -> Result<Supervisor, ManagedDbError> {
        let dir = self.data_dir().to_path_buf();
        let io_error = |source| ManagedDbError::Io {
            what: "cannot start the PostgreSQL supervisor",
            dir: dir.clone(),
            source,
        };
        // The supervisor's own runtime, for its connection checks: it must
        // not depend on the caller's (a test's runtime ends with the test).
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(io_error)?;
        let shared = Arc::new(Shared {
            stopping: Mutex::new(false),
            wake: Condvar::new(),
            up: AtomicBool::new(true),
            restarts: AtomicU64::new(0),
            failure: watch::Sender::new(None),
        });
        let endpoint = self.endpoint.clone();
        let (server_sender, server_receiver) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("postgres-supervisor".into())
            .spawn({
                let shared = shared.clone();
                move || {
                    if let Ok(server) = server_receiver.recv() {
                        watch_over(server, &shared, &runtime, limit);
                    }
                }
            })
            .map_err(io_error)?;
        // Sent only once the thread exists, so that a failure above leaves
        // `self` to be dropped (and the server stopped) here, not lost.
        if let Err(mpsc::SendError(server)) = server_sender.send(self) {
            drop(server);
            return Err(io_error(io::Error::other(
                "the supervisor thread ended early",
            )));
        }
        Ok(Supervisor {
            endpoint,
            shared,
            limit,
            thread: Some(thread),
        })
    }

    /// Starts `postgres` on the cluster, as our child.
    fn spawn(&mut self) -> Result<LogMark, ManagedDbError> {
        let data_dir = &self.endpoint.data_dir;
        let io_error = |what| {
            let dir = data_dir.clone();
            move |source| ManagedDbError::Io { what, dir, source }
        };
        let path = data_dir.join("postgres.log");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_error("cannot open postgres.log"))?;
        let start = log.metadata().map(|m| m.len()).unwrap_or(0);

        let mut command = Command::new(self.launch.bin_dir.join("postgres"));
        command
            .arg("-D")
            .arg(data_dir)
            .arg("-k")
            .arg(data_dir)
            .args(["-c", "listen_addresses=", "-c"])
            .arg(format!("max_connections={}", self.launch.max_connections))
            .stdin(Stdio::null())
            .stdout(
                log.try_clone()
                    .map_err(io_error("cannot open postgres.log"))?,
            )
            .stderr(log)
            // Its own process group: the terminal's Ctrl-C reaches only us.
            .process_group(0);
        if self.launch.ephemeral {
            command.args([
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]);
        }
        if let Some(user) = &self.launch.owner {
            command.uid(user.uid.as_raw()).gid(user.gid.as_raw());
        }
        let child = spawn_tied_to_process(command).map_err(io_error("cannot run postgres"))?;
        self.process = Process::Child(child);
        Ok(LogMark { path, start })
    }

    /// Waits until the server accepts connections, it exits, `deadline`
    /// passes or `stopping()` says so.
    async fn wait_until_ready(
        &mut self,
        deadline: Instant,
        stopping: &(dyn Fn() -> bool + Sync),
    ) -> Result<(), NotReady> {
        loop {
            match self.answer().await {
                Answer::Accepted => return Ok(()),
                Answer::Refused(message) => return Err(NotReady::Refused(message)),
                Answer::NotYet => {}
            }
            if self.exit_status().is_some() {
                return Err(NotReady::Exited);
            }
            if stopping() {
                return Err(NotReady::Stopping);
            }
            if Instant::now() >= deadline {
                return Err(NotReady::Timeout);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn answer(&self) -> Answer {
        match PgConnection::connect_with(&self.connect_options("postgres")).await {
            Ok(connection) => {
                let _ = connection.close().await;
                Answer::Accepted
            }
            Err(sqlx::Error::Database(error))
                if matches!(error.code().as_deref(), Some("28P01" | "28000")) =>
            {
                Answer::Refused(error.message().to_owned())
            }
            Err(_) => Answer::NotYet,
        }
    }

    fn refused(&self, message: String) -> ManagedDbError {
        ManagedDbError::Refused {
            dir: self.data_dir().to_path_buf(),
            password_file: self.endpoint.password.is_some(),
            message,
        }
    }

    fn start_error(&self, log: &LogMark) -> ManagedDbError {
        let hint = if Uid::effective().is_root() {
            " (as root it runs as an unprivileged user, who must be able to reach the data directory)"
        } else {
            ""
        };
        ManagedDbError::Start {
            dir: self.data_dir().to_path_buf(),
            hint,
            log: log.tail(),
        }
    }

    /// `Some(how it ended)` once the postmaster is gone; reaps our child.
    fn exit_status(&mut self) -> Option<String> {
        match &mut self.process {
            Process::Child(child) => match child.try_wait() {
                Ok(None) => None,
                Ok(Some(status)) => Some(status.to_string()),
                Err(error) => Some(format!("cannot wait for it: {error}")),
            },
            Process::Borrowed(pid) | Process::Adopted(pid) => {
                (!is_postmaster_alive(*pid)).then(|| format!("process {pid} is gone"))
            }
            Process::Gone => Some("not running".to_owned()),
        }
    }

    /// Stops the server if it is ours: fast shutdown, escalating to an
    /// immediate one (`SIGQUIT`) after 30 s, then to `SIGKILL`.
    fn stop_server(&mut self) {
        let dir = self.endpoint.data_dir.clone();
        match std::mem::replace(&mut self.process, Process::Gone) {
            Process::Child(mut child) => {
                // A reaped child's pid may belong to another process by now:
                // signal only a child that has not been waited for.
                if !matches!(child.try_wait(), Ok(None)) {
                    return;
                }
                let pid = Pid::from_raw(child.id() as i32);
                shut_down(pid, &dir, || !matches!(child.try_wait(), Ok(None)));
                if let Ok(Some(status)) = child.try_wait() {
                    tracing::info!(%status, dir = %dir.display(), "postgres stopped");
                }
            }
            Process::Adopted(pid) => {
                if is_postmaster_alive(pid) && live_postmaster(&dir) == Some(pid) {
                    shut_down(pid, &dir, || !is_postmaster_alive(pid));
                    tracing::info!(%pid, dir = %dir.display(), "postgres stopped");
                }
            }
            Process::Borrowed(_) | Process::Gone => {}
        }
    }

    /// Brings a dead server back: adopts a postmaster someone else started
    /// on the data directory, else starts ours, retrying with backoff until
    /// `limit` has passed.
    fn recover(
        &mut self,
        shared: &Shared,
        runtime: &tokio::runtime::Runtime,
        limit: Duration,
    ) -> Result<Recovery, RecoveryFailure> {
        let deadline = Instant::now() + limit;
        let stopping = || shared.is_stopping();
        let mut pause = SETTLE;
        let mut problem = String::from("no attempt finished in time");
        loop {
            if shared.sleep(pause) {
                return Err(RecoveryFailure::Stopping);
            }
            if Instant::now() >= deadline {
                return Err(RecoveryFailure::GaveUp(problem));
            }
            pause = (pause * 2).min(MAX_BACKOFF);

            if let Some(pid) = live_postmaster(self.data_dir()) {
                // Not ours: an operator restarted it (`pg_ctl restart`).
                // Fighting it for the lock file would only fail; use it.
                self.process = Process::Adopted(pid);
                match runtime.block_on(self.wait_until_ready(deadline, &stopping)) {
                    Ok(()) => return Ok(Recovery::Adopted(pid)),
                    Err(NotReady::Stopping) => return Err(RecoveryFailure::Stopping),
                    Err(NotReady::Exited | NotReady::Timeout) => {
                        problem = format!(
                            "a postmaster (pid {pid}) holds the data directory but does not accept connections"
                        );
                        continue;
                    }
                    Err(NotReady::Refused(message)) => {
                        problem = self.refused(message).to_string();
                        continue;
                    }
                }
            }
            self.process = Process::Gone;
            if let Err(error) = remove_stale_pid_file(self.data_dir()) {
                problem = error.to_string();
                continue;
            }
            let log = match self.spawn() {
                Ok(log) => log,
                Err(error) => {
                    problem = error.to_string();
                    continue;
                }
            };
            match runtime.block_on(self.wait_until_ready(deadline, &stopping)) {
                Ok(()) => return Ok(Recovery::Restarted),
                // Dropping the server stops the child that was starting.
                Err(NotReady::Stopping) => return Err(RecoveryFailure::Stopping),
                Err(NotReady::Exited | NotReady::Timeout) => {
                    problem = format!("postgres did not start; its log ends with:\n{}", log.tail());
                    self.stop_server();
                }
                Err(NotReady::Refused(message)) => {
                    problem = self.refused(message).to_string();
                    self.stop_server();
                }
            }
        }
    }
}

/// Stops the server if this process runs it (a borrowed one is left
/// running): fast shutdown, then immediate after 30 s, then a kill after 10 s
/// more. It blocks until the postmaster is gone.
impl Drop for ManagedPostgres {
    fn drop(&mut self) {
        self.stop_server();
    }
}

/// Signals `pid` (a postmaster), escalating from a fast shutdown to an
/// immediate one and then to a kill, each bounded, until `exited()`.
fn shut_down(pid: Pid, dir: &Path, mut exited: impl FnMut() -> bool) {
    let steps = [
        (Signal::SIGINT, STOP_TIMEOUT),
        (Signal::SIGQUIT, QUIT_TIMEOUT),
        (Signal::SIGKILL, QUIT_TIMEOUT),
    ];
    for (signal, patience) in steps {
        if let Err(errno) = signal::kill(pid, signal) {
            tracing::warn!(%errno, %pid, ?signal, "could not signal postgres");
        }
        let until = Instant::now() + patience;
        while Instant::now() < until {
            if exited() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        tracing::warn!(%pid, ?signal, dir = %dir.display(), "postgres did not stop in time");
    }
    tracing::error!(%pid, dir = %dir.display(), "postgres did not stop, even killed");
}

/// Watches over a managed PostgreSQL from a thread of its own: restarts it
/// when it dies, and stops it when dropped.
///
/// - A death is noticed within a fifth of a second (our child exits, or an
///   adopted postmaster's process is gone) and logged as an error.
/// - After a pause of a second, so that an operator's `pg_ctl restart` can
///   start its own postmaster: a live postmaster on the data directory
///   (`postmaster.pid` names a live `postgres` process) is adopted once it
///   accepts connections. Otherwise a `postmaster.pid` whose process is gone
///   is removed and `postgres` is started again (crash recovery is
///   automatic). Attempts repeat with a doubling pause (at most 5 s) for a
///   minute; then [`Supervisor::failed`] resolves and the server is stopped.
/// - Each return (restart or adoption) counts in [`Supervisor::restarts`].
/// - An adopted postmaster is not our child: it has no parent-death signal,
///   so a crash of ours leaves it running (the next start uses it as it
///   finds it). Dropping the `Supervisor` stops it like our own.
/// - Dropping the `Supervisor` ends supervision first, then stops the
///   server; it blocks until the server is gone (a fast shutdown, bounded as
///   in [`ManagedPostgres`]'s drop).
pub struct Supervisor {
    endpoint: Endpoint,
    shared: Arc<Shared>,
    limit: Duration,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What the supervisor thread and its handle share.
struct Shared {
    stopping: Mutex<bool>,
    wake: Condvar,
    up: AtomicBool,
    restarts: AtomicU64,
    /// `Some(reason)` once the supervisor gave up.
    failure: watch::Sender<Option<String>>,
}

impl Shared {
    fn is_stopping(&self) -> bool {
        *self.stopping.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sleeps for `duration` or until a stop; answers whether it is a stop.
    fn sleep(&self, duration: Duration) -> bool {
        let stopping = self.stopping.lock().unwrap_or_else(PoisonError::into_inner);
        let (stopping, _) = self
            .wake
            .wait_timeout_while(stopping, duration, |stopping| !*stopping)
            .unwrap_or_else(PoisonError::into_inner);
        *stopping
    }
}

enum Recovery {
    Restarted,
    Adopted(Pid),
}

enum RecoveryFailure {
    Stopping,
    GaveUp(String),
}

impl Supervisor {
    /// How many times the server came back after dying (restarted by us, or
    /// adopted after an operator's restart): for `db_restarts_total`.
    pub fn restarts(&self) -> u64 {
        self.shared.restarts.load(Ordering::Relaxed)
    }

    /// A reader of [`Supervisor::restarts`] that can outlive this borrow.
    pub fn restarts_counter(&self) -> impl Fn() -> u64 + Send + 'static {
        let shared = self.shared.clone();
        move || shared.restarts.load(Ordering::Relaxed)
    }

    /// Whether the server is up: false from a death until it is back.
    pub fn is_up(&self) -> bool {
        self.shared.up.load(Ordering::Relaxed)
    }

    pub fn data_dir(&self) -> &Path {
        &self.endpoint.data_dir
    }

    /// See [`ManagedPostgres::connect_options`].
    pub fn connect_options(&self, database: &str) -> PgConnectOptions {
        self.endpoint.connect_options(database)
    }

    /// See [`ManagedPostgres::url`]; it carries the password.
    pub fn url(&self, database: &str) -> String {
        self.endpoint.url(database)
    }

    /// Resolves when the supervisor gave up bringing the server back: the
    /// service should then exit with this error. Never resolves otherwise.
    pub fn failed(&self) -> impl Future<Output = ManagedDbError> + Send + 'static {
        let mut failure = self.shared.failure.subscribe();
        let dir = self.endpoint.data_dir.clone();
        let seconds = self.limit.as_secs();
        async move {
            let reason = failure
                .wait_for(Option::is_some)
                .await
                .ok()
                .map(|reason| reason.clone().unwrap_or_default());
            let Some(reason) = reason else {
                // The supervisor was stopped on purpose.
                return std::future::pending().await;
            };
            ManagedDbError::GaveUp {
                dir,
                seconds,
                reason,
            }
        }
    }

    /// Stops supervising, then the server. The same as dropping the value.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        *self
            .shared
            .stopping
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = true;
        self.shared.wake.notify_all();
        // The thread stops the server last, so no restart can follow it.
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the PostgreSQL supervisor panicked");
        }
    }
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("data_dir", &self.endpoint.data_dir)
            .field("up", &self.is_up())
            .field("restarts", &self.restarts())
            .finish()
    }
}

/// The supervisor thread: watch, recover, and stop the server at the end.
fn watch_over(
    mut server: ManagedPostgres,
    shared: &Shared,
    runtime: &tokio::runtime::Runtime,
    limit: Duration,
) {
    let dir = server.data_dir().display().to_string();
    while !shared.sleep(WATCH_INTERVAL) {
        let Some(status) = server.exit_status() else {
            continue;
        };
        shared.up.store(false, Ordering::Relaxed);
        tracing::error!(%dir, %status, "PostgreSQL exited unexpectedly; bringing it back");
        match server.recover(shared, runtime, limit) {
            Ok(recovery) => {
                let restarts = shared.restarts.fetch_add(1, Ordering::Relaxed) + 1;
                shared.up.store(true, Ordering::Relaxed);
                match recovery {
                    Recovery::Restarted => {
                        tracing::warn!(%dir, restarts, "PostgreSQL restarted and accepts connections again")
                    }
                    Recovery::Adopted(pid) => tracing::warn!(
                        %dir, %pid, restarts,
                        "PostgreSQL was restarted by someone else; using that server"
                    ),
                }
            }
            Err(RecoveryFailure::Stopping) => break,
            Err(RecoveryFailure::GaveUp(reason)) => {
                tracing::error!(%dir, %reason, "PostgreSQL could not be brought back; giving up");
                shared.failure.send_replace(Some(reason));
                break;
            }
        }
    }
    drop(server);
}

/// The unprivileged user to run PostgreSQL as, when we are root.
fn server_user() -> Result<Option<User>, ManagedDbError> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    ["postgres", "nobody"]
        .into_iter()
        .find_map(|name| User::from_name(name).ok().flatten())
        .map(Some)
        .ok_or(ManagedDbError::NoUnprivilegedUser)
}

/// Creates the data directory unless it exists, checks it is safe to hand
/// over, then gives it to `owner` with mode 0700. Refused, and left as they
/// are: a symbolic link, a system or home directory, and a directory that
/// is neither empty nor a cluster already.
fn prepare_data_dir(given: &Path, owner: Option<&User>) -> Result<PathBuf, ManagedDbError> {
    let io_error = |what| {
        let dir = given.to_path_buf();
        move |source| ManagedDbError::Io { what, dir, source }
    };
    match fs::symlink_metadata(given) {
        Ok(metadata) if metadata.file_type().is_symlink() => {
            return Err(ManagedDbError::Symlink(given.to_path_buf()));
        }
        Ok(metadata) if !metadata.is_dir() => {
            return Err(ManagedDbError::NotADirectory(given.to_path_buf()));
        }
        Ok(_) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(io_error("cannot read the data directory")(error)),
    }
    refuse_system_directory(
        &std::path::absolute(given).map_err(io_error("cannot resolve the data directory"))?,
    )?;
    fs::create_dir_all(given).map_err(io_error("cannot create the data directory"))?;
    let dir = fs::canonicalize(given).map_err(io_error("cannot resolve the data directory"))?;
    refuse_system_directory(&dir)?;

    // Owner and mode change through a descriptor opened without following a
    // link, so that the directory checked is the one changed.
    let handle = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_DIRECTORY | nix::libc::O_NOFOLLOW)
        .open(&dir)
        .map_err(io_error("cannot open the data directory"))?;
    let is_cluster = dir.join("PG_VERSION").is_file();
    let is_empty = fs::read_dir(&dir)
        .map_err(io_error("cannot read the data directory"))?
        .next()
        .is_none();
    if !is_cluster && !is_empty {
        return Err(ManagedDbError::NotACluster(dir));
    }
    if let Some(user) = owner {
        std::os::unix::fs::fchown(&handle, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
            .map_err(io_error(
                "cannot hand the data directory to the postgres user",
            ))?;
    }
    handle
        .set_permissions(fs::Permissions::from_mode(0o700))
        .map_err(io_error("cannot set the data directory's mode"))?;
    Ok(dir)
}

fn refuse_system_directory(dir: &Path) -> Result<(), ManagedDbError> {
    let homes: Vec<PathBuf> = [
        std::env::var_os("HOME").map(PathBuf::from),
        User::from_uid(Uid::effective())
            .ok()
            .flatten()
            .map(|user| user.dir),
    ]
    .into_iter()
    .flatten()
    .filter(|home| home.is_absolute())
    .flat_map(|home| [fs::canonicalize(&home).ok(), Some(home)])
    .flatten()
    .collect();
    let forbidden = SYSTEM_DIRECTORIES
        .iter()
        .any(|system| dir == Path::new(system))
        || homes.iter().any(|home| dir == home);
    if forbidden {
        return Err(ManagedDbError::SystemDirectory(dir.to_path_buf()));
    }
    Ok(())
}

/// Runs `initdb` with password authentication and a generated superuser
/// password, then keeps the password in the data directory.
async fn init_cluster(
    bin_dir: &Path,
    data_dir: &Path,
    owner: Option<&User>,
) -> Result<(), ManagedDbError> {
    let io_error = |what| {
        let dir = data_dir.to_path_buf();
        move |source| ManagedDbError::Io { what, dir, source }
    };
    let password = random_hex(32).map_err(io_error("cannot generate a password"))?;
    // initdb wants the data directory empty: the password waits beside it.
    let pwfile = PasswordFile::create(data_dir, &password, owner)
        .map_err(io_error("cannot write initdb's password file"))?;
    let mut command = tokio::process::Command::new(bin_dir.join("initdb"));
    command
        .arg("-D")
        .arg(data_dir)
        .arg("--pwfile")
        .arg(&pwfile.0)
        .args([
            "-U",
            SUPERUSER,
            "--auth-local=scram-sha-256",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
            "--no-instructions",
        ])
        .stdin(Stdio::null());
    if let Some(user) = owner {
        command.uid(user.uid.as_raw()).gid(user.gid.as_raw());
    }
    let output = command
        .output()
        .await
        .map_err(io_error("cannot run initdb"))?;
    drop(pwfile);
    if !output.status.success() {
        return Err(ManagedDbError::InitDb {
            dir: data_dir.to_path_buf(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        });
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(data_dir.join(PASSWORD_FILE))
        .map_err(io_error("cannot keep the superuser's password"))?;
    file.write_all(password.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io_error("cannot keep the superuser's password"))?;
    tracing::info!(dir = %data_dir.display(), "created a PostgreSQL cluster");
    Ok(())
}

/// The superuser's password, or `None` for a cluster made with `trust`.
fn read_password(data_dir: &Path) -> Result<Option<String>, ManagedDbError> {
    match fs::read_to_string(data_dir.join(PASSWORD_FILE)) {
        Ok(password) => Ok(Some(password.trim().to_owned()).filter(|p| !p.is_empty())),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ManagedDbError::Io {
            what: "cannot read the superuser's password",
            dir: data_dir.to_path_buf(),
            source,
        }),
    }
}

/// initdb's `--pwfile` for the time it runs, removed on drop. As root it
/// goes beside the data directory (whose parent the server's user must be
/// able to reach anyway), readable by that user only; else in the temporary
/// directory.
struct PasswordFile(PathBuf);

impl PasswordFile {
    fn create(data_dir: &Path, password: &str, owner: Option<&User>) -> io::Result<PasswordFile> {
        let dir = match (owner, data_dir.parent()) {
            (Some(_), Some(parent)) => parent.to_path_buf(),
            _ => std::env::temp_dir(),
        };
        let path = dir.join(format!(".room-booking-initdb-{}", random_hex(8)?));
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        let pwfile = PasswordFile(path);
        file.write_all(password.as_bytes())?;
        if let Some(user) = owner {
            std::os::unix::fs::fchown(&file, Some(user.uid.as_raw()), Some(user.gid.as_raw()))?;
        }
        Ok(pwfile)
    }
}

impl Drop for PasswordFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

fn random_hex(bytes: usize) -> io::Result<String> {
    let mut buffer = vec![0u8; bytes];
    OsRng
        .try_fill_bytes(&mut buffer)
        .map_err(io::Error::other)?;
    Ok(buffer.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// Percent-encodes all but unreserved characters and `/`.
fn percent_encode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                char::from(byte).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// The pid in `postmaster.pid` when that process is a live postgres.
fn live_postmaster(data_dir: &Path) -> Option<Pid> {
    let pid = postmaster_pid(data_dir)?;
    is_postmaster_alive(pid).then_some(pid)
}

fn postmaster_pid(data_dir: &Path) -> Option<Pid> {
    let text = fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    let pid: i32 = text.lines().next()?.trim().parse().ok()?;
    (pid > 0).then(|| Pid::from_raw(pid))
}

/// Removes a `postmaster.pid` left by a dead server. One naming a live
/// postgres stays (starting then fails with a clear message in the log).
fn remove_stale_pid_file(data_dir: &Path) -> Result<(), ManagedDbError> {
    let path = data_dir.join("postmaster.pid");
    if !path.exists() || live_postmaster(data_dir).is_some() {
        return Ok(());
    }
    tracing::info!(dir = %data_dir.display(), "removing the postmaster.pid of a server that is gone");
    match fs::remove_file(&path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(ManagedDbError::Io {
            what: "cannot remove a stale postmaster.pid",
            dir: data_dir.to_path_buf(),
            source: error,
        }),
        _ => Ok(()),
    }
}

/// Whether `pid` is a running (not zombie) `postgres` process. The name
/// check keeps a recycled pid from being taken for a postmaster.
fn is_postmaster_alive(pid: Pid) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // "<pid> (<name>) <state> ...": the name may itself hold parentheses.
    let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
        return false;
    };
    let name = stat.get(open + 1..close).unwrap_or_default();
    let state = stat.get(close + 1..).unwrap_or_default().trim_start();
    matches!(name, "postgres" | "postmaster") && !state.starts_with(['Z', 'X'])
}

/// The directory holding `initdb` and `postgres`: next to `initdb` on `PATH`,
/// else the newest `/usr/lib/postgresql/*/bin`, else `pg_config --bindir`.
pub fn find_bin_dir() -> Option<PathBuf> {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .filter_map(|dir| fs::canonicalize(dir.join("initdb")).ok())
            .filter_map(|initdb| initdb.parent().map(Path::to_path_buf))
            .find(|dir| has_server(dir))
    });
    on_path
        .or_else(|| {
            let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
                .ok()?
                .filter_map(|entry| entry.ok())
                .filter_map(|entry| {
                    let version = entry.file_name().to_str()?.parse().ok()?;
                    Some((version, entry.path().join("bin")))
                })
                .filter(|(_, dir)| has_server(dir))
                .collect();
            versions.sort();
            versions.pop().map(|(_, dir)| dir)
        })
        .or_else(|| {
            let output = Command::new("pg_config").arg("--bindir").output().ok()?;
            let dir = PathBuf::from(String::from_utf8(output.stdout).ok()?.trim());
            has_server(&dir).then_some(dir)
        })
}

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `command` from the "postgres-parent" thread, which never ends,
/// with `SIGQUIT` as the child's parent-death signal. The kernel sends that
/// signal when the *thread* that forked the child exits, so no short-lived
/// thread (a test's, the supervisor's) may be the one to fork it.
fn spawn_tied_to_process(mut command: Command) -> io::Result<Child> {
    static PARENT: OnceLock<Option<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let parent = PARENT.get_or_init(|| {
        let (sender, receiver) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("postgres-parent".into())
            .spawn(move || {
                // The sender lives in a static: this loop never ends.
                while let Ok((mut command, reply)) = receiver.recv() {
                    let _ = reply.send(command.spawn());
                }
                loop {
                    std::thread::park();
                }
            })
            .ok()
            .map(|_| sender)
    });
    let parent = parent
        .as_ref()
        .ok_or_else(|| io::Error::other("cannot start the postgres-parent thread"))?;
    // SAFETY: prctl is async-signal-safe; the closure allocates nothing. It
    // runs after the change of user, which would otherwise clear the setting.
    unsafe {
        command
            .pre_exec(|| nix::sys::prctl::set_pdeathsig(Signal::SIGQUIT).map_err(io::Error::from));
    }
    let (reply, answer) = mpsc::channel();
    parent
        .send((command, reply))
        .map_err(|_| io::Error::other("the postgres-parent thread is gone"))?;
    answer
        .recv()
        .map_err(|_| io::Error::other("the postgres-parent thread is gone"))?
}

fn read_from(path: &Path, offset: u64) -> String {
    let mut text = String::new();
    if let Ok(mut file) = File::open(path) {
        let _ = file.seek(SeekFrom::Start(offset));
        let _ = file.read_to_string(&mut text);
    }
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
