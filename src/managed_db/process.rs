//! The postmaster as a process: finding the binaries, spawning it tied to
//! us, its pid file, and stopping it.

use super::*;

/// Signals `pid` (a postmaster), escalating from a fast shutdown to an
/// immediate one and then to a kill, each bounded, until `exited()`.
pub(super) fn shut_down(pid: Pid, dir: &Path, mut exited: impl FnMut() -> bool) {
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

/// The pid in `postmaster.pid` when that process is a live postgres.
pub(super) fn live_postmaster(data_dir: &Path) -> Option<Pid> {
    let pid = postmaster_pid(data_dir)?;
    is_postmaster_alive(pid).then_some(pid)
}

pub(super) fn postmaster_pid(data_dir: &Path) -> Option<Pid> {
    let text = fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    let pid: i32 = text.lines().next()?.trim().parse().ok()?;
    (pid > 0).then(|| Pid::from_raw(pid))
}

/// Removes a `postmaster.pid` left by a dead server. One naming a live
/// postgres stays (starting then fails with a clear message in the log).
pub(super) fn remove_stale_pid_file(data_dir: &Path) -> Result<(), ManagedDbError> {
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
pub(super) fn is_postmaster_alive(pid: Pid) -> bool {
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
pub(super) fn spawn_tied_to_process(mut command: Command) -> io::Result<Child> {
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

pub(super) fn read_from(path: &Path, offset: u64) -> String {
    let mut text = String::new();
    if let Ok(mut file) = File::open(path) {
        let _ = file.seek(SeekFrom::Start(offset));
        let _ = file.read_to_string(&mut text);
    }
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
