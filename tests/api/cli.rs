//! The binary's commands as an operator runs them: logs (plain text without
//! colour codes when stderr is not a terminal, one JSON object per line with
//! `LOG_FORMAT=json`), the `token` command, and start-ups refused with a
//! message that names the fix.

use std::process::Command;
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use room_booking::domain::Role;

use crate::helpers::TestApp;

/// Runs `room-booking migrate` against a server that is not there: it logs
/// an error and exits non-zero.
fn failing_start(format: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_room-booking"))
        .env(
            "DATABASE_URL",
            "postgres://nobody@127.0.0.1:1/none?connect_timeout=1",
        )
        .env("LOG_FORMAT", format)
        .env("POOL_ACQUIRE_TIMEOUT", "1")
        .arg("migrate")
        .output()
        .expect("run room-booking");
    assert!(!output.status.success());
    String::from_utf8(output.stderr).expect("UTF-8 logs")
}

#[test]
fn logs_to_a_pipe_have_no_colour_codes() {
    let logs = failing_start("text");
    assert!(logs.contains("ERROR"), "{logs}");
    assert!(!logs.contains('\u{1b}'), "ANSI codes in {logs:?}");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let logs = failing_start("json");
    let events: Vec<serde_json::Value> = logs
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).expect("a JSON object"))
        .collect();
    let error = events
        .iter()
        .find(|event| event["level"] == "ERROR")
        .unwrap_or_else(|| panic!("no error event in {logs}"));
    assert!(
        error["message"].is_string() || error["error"].is_string(),
        "{error}"
    );
    assert!(error["timestamp"].is_string());
}

#[test]
fn the_managed_clusters_password_never_reaches_the_log() {
    let parent = std::env::temp_dir().join(format!("room-booking-logs-{}", std::process::id()));
    std::fs::create_dir_all(&parent).expect("a directory");
    // As root the cluster runs as another user, who must reach the directory.
    let mut permissions = std::fs::metadata(&parent).expect("metadata").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&parent, permissions).expect("chmod");
    let data_dir = parent.join("pgdata");
    let output = Command::new(env!("CARGO_BIN_EXE_room-booking"))
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "debug")
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("migrate")
        .output()
        .expect("run room-booking");
    let logs = String::from_utf8_lossy(&output.stderr).into_owned();
    let password = std::fs::read_to_string(data_dir.join("superuser-password"));
    let _ = std::fs::remove_dir_all(&parent);
    assert!(output.status.success(), "{logs}");
    let password = password.expect("the password file");
    assert!(password.trim().len() >= 16);
    assert!(logs.contains("managed PostgreSQL is up"), "{logs}");
    assert!(
        !logs.contains(password.trim()),
        "the password is in the log"
    );
}

/// The service's binary on the database of `url`, with the tests' secret.
fn room_booking(url: &str) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_room-booking"));
    command
        .env("DATABASE_URL", url)
        .env("JWT_SECRET", crate::helpers::TEST_SECRET)
        .env("RUST_LOG", "warn");
    command
}

#[tokio::test]
async fn the_token_command_does_not_promote_an_existing_guest_silently() {
    let app = TestApp::new().await;
    let url = app.database_url();
    app.user_with_role("guest", Role::Guest).await;
    let token = |args: &[&str]| {
        room_booking(&url)
            .arg("token")
            .args(args)
            .output()
            .expect("run room-booking token")
    };
    let refused = token(&["guest", "--create-admin"]);
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("is not an admin"), "{message}");
    assert!(refused.stdout.is_empty());
    assert_eq!(
        app.count("select count(*) from users where role = 'admin' and name = 'guest'")
            .await,
        0
    );

    let promoted = token(&["guest", "--promote"]);
    assert!(
        promoted.status.success(),
        "{}",
        String::from_utf8_lossy(&promoted.stderr)
    );
    let minted = String::from_utf8_lossy(&promoted.stdout).trim().to_owned();
    let claims = app.keys.verify(&minted).expect("a valid token");
    assert_eq!(claims.role, Role::Admin);
    assert_eq!(
        claims.ver, 1,
        "the promotion ended the guest's earlier tokens"
    );
    assert_eq!(
        app.request_as(Some(&minted), Method::GET, "/users", None)
            .await
            .status,
        StatusCode::OK
    );
    // A new name is created as an admin.
    let created = token(&["root", "--create-admin"]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    assert_eq!(
        app.count("select count(*) from users where role = 'admin' and name = 'root'")
            .await,
        1
    );
}

/// Pools larger than the database allows stop the start with a message that
/// names the settings, instead of 503s under load (the test server allows
/// 200 connections).
#[tokio::test]
async fn pools_larger_than_the_database_allows_stop_the_start() {
    let app = TestApp::new().await;
    let url = app.database_url();
    let mut serve = room_booking(&url)
        .env("POOL_SIZE", "150")
        .env("BOOK_POOL_SIZE", "100")
        .args(["serve", "--bind", "127.0.0.1:0", "--no-migrate"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run room-booking serve");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = serve.try_wait().expect("its status") {
            break status;
        }
        if Instant::now() > deadline {
            serve.kill().ok();
            serve.wait().ok();
            panic!("the service started with pools of 250 connections on a server of 200");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!status.success());
    let mut message = String::new();
    std::io::Read::read_to_string(
        &mut serve.stderr.take().expect("its standard error"),
        &mut message,
    )
    .expect("read it");
    assert!(
        message.contains("POOL_SIZE (150) and BOOK_POOL_SIZE (100) make 250 connections")
            && message.contains("allows 200"),
        "{message}"
    );
}

/// A database without this build's migrations: `serve --no-migrate` and
/// `token` stop with a message that says to migrate (not 500s on every
/// request, not "cannot connect"); `migrate` then makes both work. A blank
/// user name is refused before anything is written.
#[tokio::test]
async fn an_unmigrated_database_is_refused_with_what_to_run() {
    let app = TestApp::new().await;
    let url = app.database_url();
    let empty = format!("rbtest_empty_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("create database {empty}")))
        .execute(&app.pool)
        .await
        .expect("an empty database");
    let empty_url = crate::helpers::with_database(&url, &empty);
    let run = |args: &[&str]| {
        room_booking(&empty_url)
            .args(args)
            .output()
            .expect("run room-booking")
    };
    for args in [
        &["serve", "--bind", "127.0.0.1:0", "--no-migrate"][..],
        &["token", "admin", "--create-admin"],
    ] {
        let refused = run(args);
        assert!(!refused.status.success(), "{args:?}");
        let message = String::from_utf8_lossy(&refused.stderr);
        assert!(
            message.contains("run `room-booking migrate`"),
            "{args:?}: {message}"
        );
        assert!(refused.stdout.is_empty());
    }
    let blank = run(&["token", "  ", "--create-admin"]);
    assert!(!blank.status.success());
    let message = String::from_utf8_lossy(&blank.stderr);
    assert!(
        message.contains("the user name must not be empty"),
        "{message}"
    );

    assert!(run(&["migrate"]).status.success());
    let minted = run(&["token", "admin", "--create-admin"]);
    assert!(
        minted.status.success(),
        "{}",
        String::from_utf8_lossy(&minted.stderr)
    );
    let token = String::from_utf8_lossy(&minted.stdout).trim().to_owned();
    assert_eq!(
        app.keys.verify(&token).expect("a valid token").role,
        Role::Admin
    );
}

/// A timeout or period under a millisecond (the resolution of the service's
/// timers) stops start-up with a message naming the setting, before any
/// database is reached.
#[test]
fn settings_in_seconds_under_a_millisecond_are_refused() {
    for (variable, flag) in [
        ("REQUEST_TIMEOUT", "--request-timeout"),
        ("POOL_ACQUIRE_TIMEOUT", "--acquire-timeout"),
        ("HEADER_READ_TIMEOUT", "--header-read-timeout"),
        ("AUTH_PERIOD", "--auth-period"),
        ("SEARCH_PERIOD", "--search-period"),
        ("REFUSAL_DELAY", "--refusal-delay"),
        ("HOTEL_CHANGE_LOCK_WAIT", "--hotel-change-lock-wait"),
    ] {
        let output = room_booking("postgres://nobody@127.0.0.1:1/none")
            .env(variable, "0.0005")
            .arg("serve")
            .output()
            .expect("run room-booking");
        assert_eq!(output.status.code(), Some(2), "{variable}");
        let message = String::from_utf8_lossy(&output.stderr);
        assert!(
            message.contains(flag) && message.contains("from 0.001 (a millisecond)"),
            "{variable}: {message}"
        );
    }
}

/// `serve` on the database of `url`, on a free port, until dropped.
struct Served {
    child: std::process::Child,
    addr: String,
}

impl Served {
    fn start(url: &str, settings: &[(&str, &str)]) -> Served {
        use std::io::BufRead;
        let mut child = room_booking(url)
            .env("RUST_LOG", "info")
            .envs(settings.iter().copied())
            .args(["serve", "--bind", "127.0.0.1:0", "--no-migrate"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run room-booking serve");
        let stderr = child.stderr.take().expect("its standard error");
        let mut lines = std::io::BufReader::new(stderr).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("it logs until it listens")
                .expect("a line");
            if let Some(rest) = line.split("addr=").nth(1) {
                break rest
                    .split_whitespace()
                    .next()
                    .expect("an address")
                    .to_owned();
            }
        };
        // Keep reading, so that the service never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Served { child, addr }
    }

    /// Sends `request` on a new connection and answers the whole answer.
    fn answer(&self, request: &[u8]) -> String {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&self.addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("a timeout");
        let _ = stream.write_all(request);
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    }

    /// Sends `request` on a new connection and answers the status line.
    fn status_line(&self, request: &[u8]) -> String {
        self.answer(request)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A request's line and headers may take 32 KiB; a larger head answers `431`.
#[tokio::test]
async fn a_request_head_beyond_32_kib_answers_431() {
    let app = TestApp::new().await;
    let served = Served::start(&app.database_url(), &[]);
    let request = |header_bytes: usize| {
        format!(
            "GET /health HTTP/1.1\r\nhost: x\r\nx-filler: {}\r\nconnection: close\r\n\r\n",
            "a".repeat(header_bytes)
        )
        .into_bytes()
    };
    assert_eq!(served.status_line(&request(30 * 1024)), "HTTP/1.1 200 OK");
    let refused = served.answer(&request(40 * 1024));
    assert!(
        refused.starts_with("HTTP/1.1 431 Request Header Fields Too Large")
            && refused.contains(r#""code":"headers_too_large""#),
        "{refused}"
    );
    assert_eq!(
        served.status_line(&request(400 * 1024)),
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
}
