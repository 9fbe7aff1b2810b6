//! The supervisor: a thread that watches the server, restarts it after a
//! crash, adopts one an operator restarted, and reports when it gives up.

use super::*;

impl ManagedPostgres {
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
pub(super) struct Shared {
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

pub(super) enum Recovery {
    Restarted,
    Adopted(Pid),
}

pub(super) enum RecoveryFailure {
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
pub(super) fn watch_over(
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
