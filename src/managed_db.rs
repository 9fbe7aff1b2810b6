//! The self-managed PostgreSQL used when `DATABASE_URL` is unset: a cluster in
//! a data directory, listening only on a Unix socket inside that directory.
//!
//! The `postgres` server is a child of this process. It is started from a
//! thread that lives as long as the process, with a parent-death signal, so
//! that it never outlives us: a clean stop is a fast shutdown (`SIGINT`), and a
//! crash of ours becomes an immediate shutdown (`SIGQUIT`) that PostgreSQL
//! recovers from on the next start.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::{Pid, Uid, User};
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};

/// The superuser `initdb` creates; connections come through the socket only.
const SUPERUSER: &str = "postgres";
const START_TIMEOUT: Duration = Duration::from_secs(60);

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
    #[error("data directory {0} exists but is not a PostgreSQL cluster and is not empty")]
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
}

/// Options of a managed cluster.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// Trade durability for speed (`fsync=off`): for throw-away test clusters only.
    pub ephemeral: bool,
}

/// A running PostgreSQL server owned by this process.
#[derive(Debug)]
pub struct ManagedPostgres {
    data_dir: PathBuf,
    /// `None` when another process of ours already runs the server on this
    /// directory (say `room-booking token` beside a running service): then it
    /// is used as it is, and left running.
    child: Option<Child>,
}

impl ManagedPostgres {
    /// Creates the cluster in `data_dir` unless it exists, starts the server and
    /// waits until it accepts connections.
    pub async fn start(data_dir: &Path, options: &ClusterOptions) -> Result<Self, ManagedDbError> {
        let bin_dir = find_bin_dir().ok_or(ManagedDbError::BinariesNotFound)?;
        let io_error = |what| {
            let dir = data_dir.to_path_buf();
            move |source| ManagedDbError::Io { what, dir, source }
        };
        fs::create_dir_all(data_dir).map_err(io_error("cannot create the data directory"))?;
        let data_dir =
            fs::canonicalize(data_dir).map_err(io_error("cannot resolve the data directory"))?;
        let owner = server_user()?;
        if let Some(user) = &owner {
            nix::unistd::chown(&data_dir, Some(user.uid), Some(user.gid)).map_err(|errno| {
                io_error("cannot hand the data directory to the postgres user")(errno.into())
            })?;
        }
        fs::set_permissions(&data_dir, fs::Permissions::from_mode(0o700))
            .map_err(io_error("cannot set the data directory's mode"))?;

        if !data_dir.join("PG_VERSION").exists() {
            init_cluster(&bin_dir, &data_dir, owner.as_ref()).await?;
        } else if data_dir.join("postmaster.pid").exists() {
            let running = ManagedPostgres {
                data_dir: data_dir.clone(),
                child: None,
            };
            if PgConnection::connect_with(&running.connect_options("postgres"))
                .await
                .is_ok()
            {
                tracing::info!(dir = %data_dir.display(), "using the PostgreSQL already running there");
                return Ok(running);
            }
        }

        let log_path = data_dir.join("postgres.log");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io_error("cannot open postgres.log"))?;
        let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);

        let mut command = Command::new(bin_dir.join("postgres"));
        command
            .arg("-D")
            .arg(&data_dir)
            .arg("-k")
            .arg(&data_dir)
            .args(["-c", "listen_addresses=", "-c", "max_connections=200"])
            .stdin(Stdio::null())
            .stdout(
                log.try_clone()
                    .map_err(io_error("cannot open postgres.log"))?,
            )
            .stderr(log);
        if options.ephemeral {
            command.args([
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]);
        }
        if let Some(user) = &owner {
            command.uid(user.uid.as_raw()).gid(user.gid.as_raw());
        }
        let child = spawn_tied_to_process(command).map_err(io_error("cannot run postgres"))?;
        let server = ManagedPostgres {
            data_dir,
            child: Some(child),
        };
        server.wait_until_ready(&log_path, log_start).await?;
        Ok(server)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Connection options for `database` on this server's socket.
    pub fn connect_options(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .socket(&self.data_dir)
            .username(SUPERUSER)
            .database(database)
    }

    /// A `postgres://` URL for `database`, for `psql`, `sqlx-cli` or `pgbench`.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}@localhost/{database}?host={}",
            self.data_dir.display()
        )
    }

    /// Fast shutdown: ends sessions, checkpoints, and waits for the server to exit.
    pub fn stop(self) {
        let Some(mut child) = self.child else { return };
        let pid = Pid::from_raw(child.id() as i32);
        if let Err(errno) = signal::kill(pid, Signal::SIGINT) {
            tracing::warn!(%errno, "could not signal postgres");
        }
        match child.wait() {
            Ok(status) => {
                tracing::info!(%status, dir = %self.data_dir.display(), "postgres stopped")
            }
            Err(error) => tracing::warn!(%error, "could not wait for postgres"),
        }
    }

    async fn wait_until_ready(
        &self,
        log_path: &Path,
        log_start: u64,
    ) -> Result<(), ManagedDbError> {
        let started = Instant::now();
        let options = self.connect_options("postgres");
        loop {
            if PgConnection::connect_with(&options).await.is_ok() {
                return Ok(());
            }
            let exited = self
                .child
                .as_ref()
                .is_none_or(|child| child_exited(child.id()));
            if started.elapsed() > START_TIMEOUT || exited {
                let hint = if Uid::effective().is_root() {
                    " (as root it runs as an unprivileged user, who must be able to reach the data directory)"
                } else {
                    ""
                };
                return Err(ManagedDbError::Start {
                    dir: self.data_dir.clone(),
                    hint,
                    log: read_from(log_path, log_start),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
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

async fn init_cluster(
    bin_dir: &Path,
    data_dir: &Path,
    owner: Option<&User>,
) -> Result<(), ManagedDbError> {
    let not_empty = fs::read_dir(data_dir)
        .map(|mut entries| entries.next().is_some())
        .unwrap_or(false);
    if not_empty {
        return Err(ManagedDbError::NotACluster(data_dir.to_path_buf()));
    }
    let mut command = tokio::process::Command::new(bin_dir.join("initdb"));
    command
        .arg("-D")
        .arg(data_dir)
        .args([
            "-U",
            SUPERUSER,
            "--auth=trust",
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
        .map_err(|source| ManagedDbError::Io {
            what: "cannot run initdb",
            dir: data_dir.to_path_buf(),
            source,
        })?;
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
    tracing::info!(dir = %data_dir.display(), "created a PostgreSQL cluster");
    Ok(())
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

/// Spawns `command` from a thread that never ends, with `SIGQUIT` as its
/// parent-death signal. The kernel sends that signal when the *thread* that
/// forked the child exits, so a short-lived thread (a test's, say) must not
/// be the one to spawn it.
fn spawn_tied_to_process(mut command: Command) -> io::Result<Child> {
    // SAFETY: prctl is async-signal-safe; the closure allocates nothing.
    unsafe {
        command
            .pre_exec(|| nix::sys::prctl::set_pdeathsig(Signal::SIGQUIT).map_err(io::Error::from));
    }
    let (sender, receiver) = mpsc::channel();
    std::thread::Builder::new()
        .name("postgres-parent".into())
        .spawn(move || {
            let _ = sender.send(command.spawn());
            loop {
                std::thread::park();
            }
        })?;
    receiver
        .recv()
        .map_err(|_| io::Error::other("the postgres-parent thread ended early"))?
}

fn child_exited(pid: u32) -> bool {
    // The child is not reaped here, so an exited one lingers as a zombie.
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
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
