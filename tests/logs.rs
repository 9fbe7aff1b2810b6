//! Logs as operators read them: plain text without colour codes when stderr
//! is not a terminal, one JSON object per line with `LOG_FORMAT=json`.

use std::process::Command;

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
