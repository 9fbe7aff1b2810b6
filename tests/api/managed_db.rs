//! The managed PostgreSQL itself: real clusters in temporary directories,
//! started, killed, restarted under the supervisor, and refused where a data
//! directory is unsafe.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, Uid, User, getpgid};
use room_booking::managed_db::{ClusterOptions, ManagedDbError, ManagedPostgres, find_bin_dir};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{Connection, Executor};

const EPHEMERAL: ClusterOptions = ClusterOptions {
    ephemeral: true,
    max_connections: room_booking::managed_db::DEFAULT_MAX_CONNECTIONS,
};

/// A directory under the temporary directory, removed at the end of the test.
/// Declare it before the server so that the server is dropped first.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "room-booking-managed-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn postmaster_pid(dir: &Path) -> Pid {
    let text = std::fs::read_to_string(dir.join("postmaster.pid")).expect("postmaster.pid");
    Pid::from_raw(
        text.lines()
            .next()
            .unwrap_or_default()
            .parse()
            .expect("a pid"),
    )
}

/// Whether `pid` runs (a zombie waiting for its parent does not).
fn is_running(pid: Pid) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit(')')
            .next()
            .unwrap_or_default()
            .trim_start()
            .starts_with('Z')
    })
}

fn parent_of(pid: Pid) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("a live process");
    let after_name = stat.rsplit(')').next().unwrap_or_default();
    after_name
        .split_whitespace()
        .nth(1)
        .expect("ppid")
        .parse()
        .expect("a number")
}

/// Has the supervisor's logs kept (in the binary's one subscriber).
fn capture_logs() {
    crate::helpers::captured_logs();
}

/// Polls `condition` until it holds, failing the test after `limit`.
async fn eventually(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let until = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < until, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn select_one(options: &PgConnectOptions) -> Result<i32, sqlx::Error> {
    let mut connection = PgConnection::connect_with(options).await?;
    let one: i32 = sqlx::query_scalar("select 1")
        .fetch_one(&mut connection)
        .await?;
    connection.close().await?;
    Ok(one)
}

/// A PostgreSQL command line as the user the server runs as (it refuses root).
fn as_server_user(program: &str) -> Command {
    let bin_dir = find_bin_dir().expect("PostgreSQL binaries");
    let mut command = Command::new(bin_dir.join(program));
    if Uid::effective().is_root() {
        let user = ["postgres", "nobody"]
            .into_iter()
            .find_map(|name| User::from_name(name).ok().flatten())
            .expect("an unprivileged user");
        command.uid(user.uid.as_raw()).gid(user.gid.as_raw());
    }
    command
}

#[tokio::test]
async fn runs_in_its_own_process_group_and_stops_when_dropped() {
    let dir = TempDir::new();
    let server = ManagedPostgres::start(dir.path(), &EPHEMERAL)
        .await
        .expect("start");
    let pid = postmaster_pid(server.data_dir());
    assert_eq!(
        getpgid(Some(pid)).expect("its group"),
        pid,
        "a group of its own"
    );
    assert_ne!(getpgid(None).expect("our group"), pid);
    assert_eq!(
        select_one(&server.connect_options("postgres"))
            .await
            .expect("connect"),
        1
    );

    drop(server);
    assert!(!is_running(pid), "postgres still runs after the drop");
    assert!(
        !dir.path().join("postmaster.pid").exists(),
        "a fast shutdown removes postmaster.pid"
    );

    // A second start reuses the cluster and its password.
    let server = ManagedPostgres::start(dir.path(), &EPHEMERAL)
        .await
        .expect("restart");
    assert_eq!(
        select_one(&server.connect_options("postgres"))
            .await
            .expect("connect"),
        1
    );
    let pid = postmaster_pid(server.data_dir());
    server.stop();
    assert!(!is_running(pid));
}

#[tokio::test]
async fn a_connection_needs_the_generated_password() {
    let dir = TempDir::new();
    let server = ManagedPostgres::start(dir.path(), &EPHEMERAL)
        .await
        .expect("start");
    let password_file = dir.path().join("superuser-password");
    let metadata = std::fs::metadata(&password_file).expect("the password is kept");
    assert_eq!(metadata.permissions().mode() & 0o777, 0o600);
    let password = std::fs::read_to_string(&password_file).expect("readable");
    assert_eq!(password.len(), 64, "32 random bytes in hex");

    let hba = std::fs::read_to_string(dir.path().join("pg_hba.conf")).expect("pg_hba.conf");
    let rules: Vec<&str> = hba
        .lines()
        .filter(|line| !line.trim_start().starts_with('#') && !line.trim().is_empty())
        .collect();
    assert!(!rules.is_empty());
    assert!(
        rules.iter().all(|rule| rule.ends_with("scram-sha-256")),
        "{rules:?}"
    );

    let bare = PgConnectOptions::new()
        .socket(dir.path())
        .username("postgres")
        .database("postgres");
    assert!(
        select_one(&bare).await.is_err(),
        "no password, no connection"
    );
    let wrong = bare.clone().password("not-the-password");
    let error = select_one(&wrong)
        .await
        .expect_err("a wrong password is refused");
    let code = error.as_database_error().and_then(|error| error.code());
    assert_eq!(code.as_deref(), Some("28P01"), "{error}");

    assert_eq!(
        select_one(&server.connect_options("postgres"))
            .await
            .expect("connect"),
        1
    );
    let url = server.url("postgres");
    assert!(url.contains(password.trim()));
    let from_url: PgConnectOptions = url.parse().expect("a valid URL");
    assert_eq!(select_one(&from_url).await.expect("connect by URL"), 1);
}

#[tokio::test]
async fn a_cluster_made_with_trust_is_still_reached_without_a_password() {
    let dir = TempDir::new();
    std::fs::create_dir(dir.path()).expect("create");
    if Uid::effective().is_root() {
        let user = User::from_name("postgres")
            .ok()
            .flatten()
            .or_else(|| User::from_name("nobody").ok().flatten());
        let user = user.expect("an unprivileged user");
        nix::unistd::chown(dir.path(), Some(user.uid), Some(user.gid)).expect("chown");
    }
    let status = as_server_user("initdb")
        .arg("-D")
        .arg(dir.path())
        .args(["-U", "postgres", "--auth=trust", "--no-instructions"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run initdb");
    assert!(status.success());

    let server = ManagedPostgres::start(dir.path(), &EPHEMERAL)
        .await
        .expect("start");
    assert!(!dir.path().join("superuser-password").exists());
    assert!(
        server
            .url("postgres")
            .starts_with("postgres://postgres@localhost/")
    );
    assert_eq!(
        select_one(&server.connect_options("postgres"))
            .await
            .expect("connect"),
        1
    );
}

/// A cluster whose password file is missing (a data directory restored
/// without it, say) or wrong is refused at once, saying which and what to
/// do, instead of after the start's timeout of a minute; the server started
/// for the attempt is stopped again.
#[tokio::test]
async fn a_cluster_that_refuses_the_kept_password_is_reported_at_once() {
    let dir = TempDir::new();
    let server = ManagedPostgres::start(dir.path(), &EPHEMERAL)
        .await
        .expect("start");
    drop(server);
    let password_file = dir.path().join("superuser-password");
    std::fs::remove_file(&password_file).expect("remove the password file");
    for (present, says) in [(false, "missing"), (true, "does not match")] {
        if present {
            std::fs::write(&password_file, "not-the-password").expect("write");
        }
        let started = Instant::now();
        let error = ManagedPostgres::start(dir.path(), &EPHEMERAL)
            .await
            .expect_err("refused");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "took {:?}: {error}",
            started.elapsed()
        );
        assert!(
            matches!(error, ManagedDbError::Refused { password_file, .. } if password_file == present),
            "{error}"
        );
        let text = error.to_string();
        assert!(
            text.contains("superuser-password")
                && text.contains(says)
                && text.contains("DATABASE_URL"),
            "{text}"
        );
        assert!(
            !dir.path().join("postmaster.pid").exists(),
            "the server started for the attempt is stopped"
        );
    }
}

#[tokio::test]
async fn the_supervisor_restarts_a_killed_postgres() {
    capture_logs();
    let dir = TempDir::new();
    // Durable, as the service runs it: a committed row survives the crash.
    let server = ManagedPostgres::start(dir.path(), &ClusterOptions::default())
        .await
        .expect("start");
    let options = server.connect_options("postgres");
    let mut connection = PgConnection::connect_with(&options).await.expect("connect");
    connection
        .execute("create table kept (n int); insert into kept values (42)")
        .await
        .expect("write");
    connection.close().await.expect("close");
    let supervisor = server.supervise().expect("supervise");
    assert!(supervisor.is_up());
    assert_eq!(supervisor.restarts(), 0);

    let first = postmaster_pid(dir.path());
    kill(first, Signal::SIGKILL).expect("kill -9");
    eventually("the supervisor notices", Duration::from_secs(10), || {
        !supervisor.is_up()
    })
    .await;
    eventually("postgres is back", Duration::from_secs(60), || {
        supervisor.is_up() && supervisor.restarts() == 1
    })
    .await;

    let second = postmaster_pid(dir.path());
    assert_ne!(second, first);
    assert_eq!(
        parent_of(second),
        std::process::id() as i32,
        "our child again"
    );
    assert_eq!(getpgid(Some(second)).expect("its group"), second);
    let mut connection = PgConnection::connect_with(&supervisor.connect_options("postgres"))
        .await
        .expect("connect after the restart");
    let kept: i32 = sqlx::query_scalar("select n from kept")
        .fetch_one(&mut connection)
        .await
        .expect("the data survived");
    assert_eq!(kept, 42);
    connection.close().await.expect("close");

    drop(supervisor);
    assert!(
        !is_running(second),
        "dropping the supervisor stops postgres"
    );
}

#[tokio::test]
async fn the_supervisor_adopts_a_server_restarted_with_pg_ctl() {
    capture_logs();
    let dir = TempDir::new();
    let server = ManagedPostgres::start(dir.path(), &EPHEMERAL)
        .await
        .expect("start");
    let supervisor = server.supervise().expect("supervise");
    let first = postmaster_pid(dir.path());

    let status = as_server_user("pg_ctl")
        .args(["restart", "-m", "immediate", "-D"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run pg_ctl");
    assert!(status.success(), "pg_ctl restart");
    let second = postmaster_pid(dir.path());
    assert_ne!(second, first);

    eventually("the supervisor adopts it", Duration::from_secs(60), || {
        supervisor.is_up() && supervisor.restarts() == 1
    })
    .await;
    assert_eq!(
        postmaster_pid(dir.path()),
        second,
        "pg_ctl's server, not a rival"
    );
    assert_ne!(parent_of(second), std::process::id() as i32);
    assert_eq!(
        select_one(&supervisor.connect_options("postgres"))
            .await
            .expect("connect"),
        1
    );

    drop(supervisor);
    assert!(!is_running(second), "the adopted server is stopped too");
}

#[tokio::test]
async fn the_supervisor_reports_when_it_gives_up() {
    capture_logs();
    let dir = TempDir::new();
    let server = ManagedPostgres::start(dir.path(), &EPHEMERAL)
        .await
        .expect("start");
    let supervisor = server
        .supervise_giving_up_after(Duration::from_secs(3))
        .expect("supervise");
    let failed = supervisor.failed();
    // Without PG_VERSION, postgres refuses the directory.
    std::fs::rename(
        dir.path().join("PG_VERSION"),
        dir.path().join("PG_VERSION.away"),
    )
    .expect("rename");
    kill(postmaster_pid(dir.path()), Signal::SIGKILL).expect("kill -9");

    let error = tokio::time::timeout(Duration::from_secs(30), failed)
        .await
        .expect("the supervisor gives up in time");
    assert!(matches!(error, ManagedDbError::GaveUp { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains(&dir.path().display().to_string()),
        "{error}"
    );
    assert!(!supervisor.is_up());
    assert_eq!(supervisor.restarts(), 0);
}

/// Owner and mode of `path`, not following a link.
fn owner_and_mode(path: &Path) -> (u32, u32, u32) {
    let metadata = std::fs::symlink_metadata(path).expect("metadata");
    (metadata.uid(), metadata.gid(), metadata.mode())
}

#[tokio::test]
async fn unsafe_data_directories_are_refused_and_left_unchanged() {
    let dir = TempDir::new();
    std::fs::create_dir(dir.path()).expect("create");

    // A link to an empty directory (which would otherwise be fine).
    let target = dir.path().join("target");
    std::fs::create_dir(&target).expect("create");
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    let before = owner_and_mode(&target);
    let error = ManagedPostgres::start(&link, &EPHEMERAL)
        .await
        .expect_err("a link");
    assert!(
        matches!(&error, ManagedDbError::Symlink(path) if *path == link),
        "{error}"
    );
    assert_eq!(owner_and_mode(&target), before);

    // A system directory.
    let before = owner_and_mode(Path::new("/tmp"));
    let error = ManagedPostgres::start(Path::new("/tmp"), &EPHEMERAL)
        .await
        .expect_err("/tmp");
    assert!(
        matches!(&error, ManagedDbError::SystemDirectory(path) if path == Path::new("/tmp")),
        "{error}"
    );
    assert!(error.to_string().contains("/tmp"));
    assert_eq!(owner_and_mode(Path::new("/tmp")), before);
    let error = ManagedPostgres::start(&dir.path().join("../../tmp/."), &EPHEMERAL)
        .await
        .expect_err("/tmp by another name");
    assert!(
        matches!(error, ManagedDbError::SystemDirectory(_)),
        "{error}"
    );

    // Someone else's directory with files in it.
    let foreign = dir.path().join("foreign");
    std::fs::create_dir(&foreign).expect("create");
    std::fs::write(foreign.join("notes.txt"), "mine").expect("write");
    std::fs::set_permissions(&foreign, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let before = owner_and_mode(&foreign);
    let error = ManagedPostgres::start(&foreign, &EPHEMERAL)
        .await
        .expect_err("not a cluster");
    assert!(
        matches!(&error, ManagedDbError::NotACluster(path) if *path == foreign),
        "{error}"
    );
    assert_eq!(owner_and_mode(&foreign), before);
    assert_eq!(
        owner_and_mode(&foreign.join("notes.txt")).0,
        before.0,
        "its files are untouched"
    );
}

#[tokio::test]
async fn the_server_allows_the_connections_it_is_started_with() {
    let dir = TempDir::new();
    let server = ManagedPostgres::start(
        dir.path(),
        &ClusterOptions {
            ephemeral: true,
            max_connections: 250,
        },
    )
    .await
    .expect("start");
    let mut conn = PgConnection::connect_with(&server.connect_options("postgres"))
        .await
        .expect("connect");
    let max: String = sqlx::query_scalar("show max_connections")
        .fetch_one(&mut conn)
        .await
        .expect("the setting");
    assert_eq!(max, "250");
    server.stop();
}

/// `room-booking` with no database settings, in `dir`.
fn room_booking_in(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_room-booking"));
    command
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("DATA_DIR")
        .env_remove("JWT_SECRET")
        .env_remove("RUST_LOG");
    command
}

/// The two set-up commands in a clone under a private (mode 700) home. As
/// root, PostgreSQL runs as another user, who cannot enter the home: the
/// default cluster moves to `/var/lib/room-booking/<hash>` and the log says
/// so; a `--data-dir` there is refused with the fix. As anyone else the
/// cluster stays in the clone. Either way `token` prints the token alone.
#[test]
fn the_set_up_commands_work_in_a_private_home() {
    let home = TempDir::new();
    let clone = home.path().join("room-booking");
    std::fs::create_dir_all(&clone).expect("a clone");
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o700)).expect("chmod");

    let migrated = room_booking_in(&clone)
        .env("RUST_LOG", "info")
        .arg("migrate")
        .output()
        .expect("run room-booking migrate");
    let logs = String::from_utf8_lossy(&migrated.stderr).into_owned();
    assert!(migrated.status.success(), "{logs}");
    let token = room_booking_in(&clone)
        .args(["token", "admin", "--create-admin"])
        .output()
        .expect("run room-booking token");
    assert!(token.status.success());
    assert_eq!(
        String::from_utf8_lossy(&token.stderr),
        "",
        "token logs nothing"
    );
    let token = String::from_utf8_lossy(&token.stdout).into_owned();
    assert_eq!(token.trim().split('.').count(), 3, "a JWT alone: {token}");

    if !Uid::effective().is_root() {
        assert!(clone.join(".pgdata/PG_VERSION").is_file(), "{logs}");
        return;
    }
    assert!(!clone.join(".pgdata").exists(), "{logs}");
    let moved = logs
        .split("dir=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("the log names the new place: {logs}"));
    let cluster = TempDir(moved.clone());
    assert!(
        moved.starts_with("/var/lib/room-booking/") && moved.join("PG_VERSION").is_file(),
        "{logs}"
    );
    assert!(logs.contains("cannot enter"), "{logs}");
    let server_user = User::from_uid(Uid::from_raw(std::fs::metadata(&moved).expect("it").uid()))
        .expect("users")
        .expect("the cluster's owner");
    assert_ne!(server_user.uid, Uid::from_raw(0));

    let inside = clone.join("data");
    let refused = room_booking_in(&clone)
        .arg("--data-dir")
        .arg(&inside)
        .arg("migrate")
        .output()
        .expect("run room-booking migrate");
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        message.contains(&format!("chmod o+x {}", home.path().display()))
            && message.contains(&format!("`{}` user", server_user.name)),
        "{message}"
    );
    assert!(!inside.exists(), "nothing made: {message}");
    drop(cluster);
}
