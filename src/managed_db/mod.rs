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

mod cluster;
mod data_dir;
mod process;
mod supervisor;

pub use self::data_dir::data_dir;
pub use self::process::find_bin_dir;
pub use self::supervisor::Supervisor;

use self::cluster::{init_cluster, percent_encode, read_password};
use self::data_dir::{prepare_data_dir, server_user};
use self::process::{
    is_postmaster_alive, live_postmaster, read_from, remove_stale_pid_file, shut_down,
    spawn_tied_to_process,
};

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
    #[error(
        "data directory {dir} is inside {blocked}, which the `{user}` user that runs \
         PostgreSQL cannot enter; give --data-dir (DATA_DIR) a directory it can reach, such \
         as /var/lib/room-booking/data, or let it in: `chmod o+x {blocked}`"
    )]
    Unreachable {
        dir: PathBuf,
        blocked: PathBuf,
        user: String,
    },
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
}

impl ManagedPostgres {
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
}

/// Stops the server if this process runs it (a borrowed one is left
/// running): fast shutdown, then immediate after 30 s, then a kill after 10 s
/// more. It blocks until the postmaster is gone.
impl Drop for ManagedPostgres {
    fn drop(&mut self) {
        self.stop_server();
    }
}
