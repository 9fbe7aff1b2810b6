//! Database faults that need no server to die (those are `wrk/chaos.sh`'s):
//! ended connections cost at most one request and answer `503`, never `500`;
//! a query outliving the request is cancelled; deadlocks are run again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::helpers::{TestApp, test_limits};
use axum::http::{Method, StatusCode};
use chrono::{Days, Utc};
use room_booking::Limits;
use room_booking::db::{self, in_transaction};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

fn night(days: u64) -> String {
    (Utc::now().date_naive() + Days::new(days)).to_string()
}

fn id(value: &Value) -> String {
    value["id"].as_str().expect("an id").to_owned()
}

/// Ends every other session on the test's database, as a restart would.
async fn terminate_connections(app: &TestApp) -> i64 {
    let mut admin = app.pool.acquire().await.expect("a connection").detach();
    let ended: i64 = sqlx::query_scalar(
        "select count(*) from (select pg_terminate_backend(pid) from pg_stat_activity
         where datname = current_database() and pid <> pg_backend_pid()) ended",
    )
    .fetch_one(&mut admin)
    .await
    .expect("terminate the sessions");
    // pg_terminate_backend only signals: wait until the sessions are gone.
    for _ in 0..500 {
        let left: i64 = sqlx::query_scalar(
            "select count(*) from pg_stat_activity
             where datname = current_database() and pid <> pg_backend_pid()",
        )
        .fetch_one(&mut admin)
        .await
        .expect("count the sessions");
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    admin.close().await.ok();
    ended
}

#[tokio::test]
async fn ended_connections_cost_at_most_one_request_and_never_a_500() {
    let app = TestApp::new().await;
    app.create_room("R1").await;
    app.create_user("u1").await;
    // Fill both pools: ten requests at once hold ten connections of the pool,
    // ten bookings (of a room that does not exist) ten of `POST /book`'s.
    let base = app.serve().await;
    let client = app.http_client();
    let warm: Vec<_> = (0..10)
        .flat_map(|_| {
            let rooms = client.get(format!("{base}/rooms"));
            let book = client
                .post(format!("{base}/book"))
                .json(&json!({"room_name": "none", "user_name": "u1", "date": night(1)}));
            [
                (reqwest::StatusCode::OK, rooms),
                (reqwest::StatusCode::NOT_FOUND, book),
            ]
        })
        .map(|(expected, request)| {
            tokio::spawn(async move { (expected, request.send().await.map(|r| r.status())) })
        })
        .collect();
    for request in warm {
        let (expected, status) = request.await.expect("ran");
        assert_eq!(status.expect("answered"), expected);
    }
    let pooled = app.pool.size();
    let book_pooled = app.state.book_pool.status().size;
    assert!(pooled >= 2, "the pool holds {pooled} connections");
    assert!(
        book_pooled >= 2,
        "POST /book's pool holds {book_pooled} connections"
    );
    let ended = terminate_connections(&app).await;
    assert!(
        ended >= i64::from(pooled) - 1 + book_pooled as i64,
        "{ended}"
    );

    let mut failed = 0;
    for n in 0..20 {
        let response = app
            .post(
                "/book",
                json!({"room_name": "R1", "user_name": "u1", "date": night(n + 1)}),
            )
            .await;
        match response.status {
            StatusCode::CREATED => {}
            StatusCode::SERVICE_UNAVAILABLE => {
                response.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable");
                assert_eq!(response.header("retry-after"), "1");
                failed += 1;
            }
            other => panic!("request {n} answered {other}: {}", response.body),
        }
    }
    assert!(
        failed <= 1,
        "{failed} of 20 requests failed after the sessions ended"
    );
    assert_eq!(
        app.count("select count(*) from bookings").await,
        20 - failed,
        "every 201 is in the table"
    );
}

#[tokio::test]
async fn a_query_that_outlives_the_request_is_cancelled_with_it() {
    let limits = Limits {
        request_timeout: Duration::from_secs(2),
        ..test_limits()
    };
    let app = TestApp::with_limits(limits, 2).await;
    app.create_room("R1").await;
    app.create_user("u1").await;
    let timeout: String = sqlx::query_scalar("show statement_timeout")
        .fetch_one(&app.pool)
        .await
        .expect("the setting");
    assert_eq!(timeout, "1500ms");
    // A lock held elsewhere makes the booking wait; the statement gives up
    // before the request does, and nothing is left running.
    let mut blocker = app.pool.begin().await.expect("a transaction");
    sqlx::query("lock table bookings in exclusive mode")
        .execute(&mut *blocker)
        .await
        .expect("lock");
    let started = Instant::now();
    let response = app
        .post(
            "/book",
            json!({"room_name": "R1", "user_name": "u1", "date": night(1)}),
        )
        .await;
    response.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let waiting: i64 = sqlx::query_scalar(
        "select count(*) from pg_stat_activity
         where datname = current_database() and wait_event_type = 'Lock'",
    )
    .fetch_one(&mut *blocker)
    .await
    .expect("count the waiting sessions");
    assert_eq!(waiting, 0, "the cancelled statement still waits");
    blocker.rollback().await.expect("unlock");
    assert_eq!(app.count("select count(*) from bookings").await, 0);
}

#[tokio::test]
async fn a_transaction_that_loses_a_deadlock_is_run_again() {
    let app = TestApp::new().await;
    let a = id(&app.create_room("A").await);
    let b = id(&app.create_room("B").await);
    let (a, b): (uuid::Uuid, uuid::Uuid) = (a.parse().expect("uuid"), b.parse().expect("uuid"));
    // The other party: holds A, and will want B.
    let mut other = app.pool.acquire().await.expect("a connection").detach();
    let mut other_tx = other.begin().await.expect("a transaction");
    sqlx::query("select 1 from rooms where id = $1 for update")
        .bind(a)
        .execute(&mut *other_tx)
        .await
        .expect("lock A");

    let attempts = Arc::new(AtomicU32::new(0));
    let holding_b = Arc::new(tokio::sync::Notify::new());
    let work = {
        let pool = app.pool.clone();
        let attempts = attempts.clone();
        let holding_b = holding_b.clone();
        tokio::spawn(async move {
            let mut conn = pool.acquire().await.expect("a connection");
            in_transaction(&mut conn, move |tx: &mut PgConnection| {
                let attempts = attempts.clone();
                let holding_b = holding_b.clone();
                Box::pin(async move {
                    let attempt = attempts.fetch_add(1, Ordering::SeqCst) + 1;
                    // This side detects the cycle first, and so is the one aborted.
                    sqlx::query("set local deadlock_timeout = '100ms'")
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query("select 1 from rooms where id = $1 for update")
                        .bind(b)
                        .execute(&mut *tx)
                        .await?;
                    if attempt == 1 {
                        holding_b.notify_one();
                    }
                    sqlx::query("select 1 from rooms where id = $1 for update")
                        .bind(a)
                        .execute(&mut *tx)
                        .await?;
                    Ok::<u32, sqlx::Error>(attempt)
                })
            })
            .await
        })
    };
    holding_b.notified().await;
    // Now wait for B: a cycle, which PostgreSQL breaks by aborting the work.
    sqlx::query("select 1 from rooms where id = $1 for update")
        .bind(b)
        .execute(&mut *other_tx)
        .await
        .expect("the other party gets B once the work is aborted");
    other_tx.commit().await.expect("commit");
    let finished = work
        .await
        .expect("the work ran")
        .expect("the work succeeded");
    assert_eq!(finished, 2, "the work ran twice");
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    assert!(!db::is_retryable(&sqlx::Error::PoolClosed));
}

#[tokio::test]
async fn concurrent_changes_moving_bookings_between_rooms_answer_200_or_409_never_500() {
    let app = TestApp::new().await;
    let hotel = id(&app.create_hotel("Swap", "Paris", "UTC").await);
    let first = id(&app.create_room_type(&hotel, "First", 2).await);
    let second = id(&app.create_room_type(&hotel, "Second", 2).await);
    let plan = id(&app.create_rate_plan(&hotel, "Flex", Some(24)).await);
    for (room_type, room) in [
        (&first, "F1"),
        (&first, "F2"),
        (&second, "S1"),
        (&second, "S2"),
    ] {
        app.create_room_of(&hotel, room_type, room).await;
    }
    for room_type in [&first, &second] {
        app.put_rates(&hotel, room_type, &plan, &night(0), &night(60), "80.00")
            .await;
    }
    let mut bookings = Vec::new();
    for room_type in [&first, &first, &second, &second] {
        let created = app
            .post(
                "/bookings",
                json!({"hotel_id": hotel, "room_type_id": room_type, "rate_plan_id": plan,
                       "check_in": night(20), "check_out": night(23)}),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        bookings.push(id(&created.body));
    }
    let base = app.serve().await;
    let client = app.http_client();
    // Every round, each booking asks for the other type and other nights.
    for round in 0..8u64 {
        let tasks: Vec<_> = bookings
            .iter()
            .enumerate()
            .map(|(n, booking)| {
                let target = if (n as u64 + round).is_multiple_of(2) {
                    &second
                } else {
                    &first
                };
                let body = json!({"room_type_id": target, "check_in": night(20 + round % 2),
                                  "check_out": night(23 + round % 2)});
                let request = client
                    .patch(format!("{base}/bookings/{booking}"))
                    .json(&body);
                tokio::spawn(async move { request.send().await.map(|r| r.status()) })
            })
            .collect();
        for task in tasks {
            let status = task.await.expect("ran").expect("answered");
            assert!(
                status == reqwest::StatusCode::OK || status == reqwest::StatusCode::CONFLICT,
                "round {round}: {status}"
            );
        }
    }
    let overlaps = app
        .count(
            "select count(*) from live_bookings a join live_bookings b
             on a.room_id = b.room_id and a.id < b.id and a.stay && b.stay",
        )
        .await;
    assert_eq!(overlaps, 0);
    // Booking and invoice changed together: each invoice's total is its booking's.
    let mismatched = app
        .count(
            "select count(*) from bookings b join invoices i on i.booking_id = b.id
             where i.total <> b.total_price
                or i.total <> (select sum(amount) from invoice_lines l where l.invoice_id = i.id)",
        )
        .await;
    assert_eq!(mismatched, 0);
}

#[tokio::test]
async fn metrics_count_requests_bookings_conflicts_and_replays() {
    let app = TestApp::new().await;
    app.create_room("R1").await;
    app.create_user("u1").await;
    let body = json!({"room_name": "R1", "user_name": "u1", "date": night(2)});
    assert_eq!(
        app.post("/book", body.clone()).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.post("/book", body.clone()).await.status,
        StatusCode::CONFLICT
    );
    for n in 0..3 {
        app.get(&format!("/scanner/{n}")).await;
    }
    let metrics = app.request_as(None, Method::GET, "/metrics", None).await;
    assert_eq!(metrics.status, StatusCode::OK);
    let text = metrics.body.as_str().expect("text").to_owned();
    let line = |prefix: &str| -> f64 {
        text.lines()
            .find(|line| line.starts_with(prefix))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("no line {prefix} in\n{text}"))
    };
    assert_eq!(
        line(r#"http_requests_total{method="POST",route="/book",status="201"}"#),
        1.0
    );
    assert_eq!(
        line(r#"http_requests_total{method="POST",route="/book",status="409"}"#),
        1.0
    );
    // Unmatched paths share one series.
    assert_eq!(
        line(r#"http_requests_total{method="GET",route="unmatched",status="404"}"#),
        3.0
    );
    assert!(!text.contains("/scanner/"));
    // Methods outside RFC 9110 share one series too, on a route as elsewhere.
    for n in 0..3 {
        let method = Method::from_bytes(format!("SCAN{n}").as_bytes()).expect("a method");
        let response = app.request_as(None, method.clone(), "/book", None).await;
        assert_eq!(response.status, StatusCode::METHOD_NOT_ALLOWED);
        app.request_as(None, method, "/scanner", None).await;
    }
    let text = app
        .request_as(None, Method::GET, "/metrics", None)
        .await
        .body
        .as_str()
        .expect("text")
        .to_owned();
    assert!(!text.contains("SCAN"), "{text}");
    assert!(
        text.contains(r#"http_requests_total{method="other",route="/book",status="405"} 3"#),
        "{text}"
    );
    assert!(
        text.contains(r#"http_requests_total{method="other",route="unmatched",status="404"} 3"#),
        "{text}"
    );
    assert_eq!(line(r#"bookings_created_total{route="/book"}"#), 1.0);
    assert_eq!(line(r#"booking_conflicts_total{route="/book"}"#), 1.0);
    assert!(text.contains("http_request_duration_seconds_bucket{"));
    assert!(line("db_pool_connections") >= 1.0);
    assert!(text.contains("db_pool_idle"));
    assert!(text.contains("db_pool_in_use"));
    // The two bookings, one after the other, took one connection of
    // `POST /book`'s own, which is back and idle.
    assert_eq!(line("db_book_pool_connections"), 1.0);
    assert_eq!(line("db_book_pool_idle"), 1.0);
    assert_eq!(line("db_book_pool_in_use"), 0.0);
    assert_eq!(line("db_restarts_total"), 0.0);
}
