//! `Idempotency-Key` (SPEC 4.4, IETF draft): a retry replays the first
//! answer, another body with the same key is refused, a retry while the
//! first runs is told so, keys are the caller's own and expire after 24 hours.

use crate::helpers::{TestApp, TestResponse};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use chrono::{Days, Utc};
use room_booking::domain::Role;
use serde_json::{Value, json};

fn night(days: u64) -> String {
    (Utc::now().date_naive() + Days::new(days)).to_string()
}

async fn book(app: &TestApp, token: &str, key: Option<&str>, body: &Value) -> TestResponse {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri("/book")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    app.send(
        request
            .body(Body::from(body.to_string()))
            .expect("a request"),
    )
    .await
}

#[tokio::test]
async fn a_retry_with_the_same_key_replays_the_first_answer() {
    let app = TestApp::new().await;
    app.create_room("R1").await;
    app.create_user("u1").await;
    let token = app.admin_token().to_owned();
    let body = json!({"room_name": "R1", "user_name": "u1", "date": night(3)});
    let first = book(&app, &token, Some("key-1"), &body).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert_eq!(first.header("idempotent-replayed"), "");
    let again = book(&app, &token, Some("key-1"), &body).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.body, first.body);
    assert_eq!(again.header("location"), first.header("location"));
    assert_eq!(again.header("idempotent-replayed"), "true");
    assert_eq!(app.count("select count(*) from bookings").await, 1);
    assert_eq!(app.count("select count(*) from idempotency_keys").await, 1);

    // Without a key, the same request is a new one: the night is taken.
    let plain = book(&app, &token, None, &body).await;
    plain.assert_problem(StatusCode::CONFLICT, "room_already_booked");
    // A refused request records nothing under its key: nothing was done.
    let refused = book(&app, &token, Some("key-2"), &body).await;
    refused.assert_problem(StatusCode::CONFLICT, "room_already_booked");
    assert_eq!(app.count("select count(*) from idempotency_keys").await, 1);
    assert_eq!(app.count("select count(*) from bookings").await, 1);
}

#[tokio::test]
async fn the_same_key_with_another_body_is_refused() {
    let app = TestApp::new().await;
    app.create_room("R1").await;
    app.create_user("u1").await;
    let token = app.admin_token().to_owned();
    let first = json!({"room_name": "R1", "user_name": "u1", "date": night(3)});
    let other = json!({"room_name": "R1", "user_name": "u1", "date": night(4)});
    assert_eq!(
        book(&app, &token, Some("k"), &first).await.status,
        StatusCode::CREATED
    );
    let mismatch = book(&app, &token, Some("k"), &other).await;
    mismatch.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_mismatch");
    assert_eq!(app.count("select count(*) from bookings").await, 1);
}

#[tokio::test]
async fn keys_are_the_callers_own() {
    let app = TestApp::new().await;
    app.create_room("R1").await;
    app.create_user("u1").await;
    let (_, staff) = app.user_with_role("staff", Role::Staff).await;
    let admin = app.admin_token().to_owned();
    let first = json!({"room_name": "R1", "user_name": "u1", "date": night(3)});
    assert_eq!(
        book(&app, &admin, Some("shared"), &first).await.status,
        StatusCode::CREATED
    );
    // Another caller's same key is its own: no replay of the admin's answer.
    let theirs = book(&app, &staff, Some("shared"), &first).await;
    theirs.assert_problem(StatusCode::CONFLICT, "room_already_booked");
    assert_eq!(theirs.header("idempotent-replayed"), "");
}

#[tokio::test]
async fn a_malformed_key_is_a_bad_request() {
    let app = TestApp::new().await;
    app.create_room("R1").await;
    app.create_user("u1").await;
    let token = app.admin_token().to_owned();
    let body = json!({"room_name": "R1", "user_name": "u1", "date": night(3)});
    for key in ["", "   ", &"k".repeat(256), "with space", "naïve"] {
        let response = book(&app, &token, Some(key), &body).await;
        response.assert_problem(StatusCode::BAD_REQUEST, "malformed_request");
    }
    // The draft's quoted form is the same key as the bare one.
    assert_eq!(
        book(&app, &token, Some("\"abc\""), &body).await.status,
        StatusCode::CREATED
    );
    let bare = book(&app, &token, Some("abc"), &body).await;
    assert_eq!(bare.header("idempotent-replayed"), "true");
    assert_eq!(app.count("select count(*) from bookings").await, 1);
}

#[tokio::test]
async fn an_expired_key_is_forgotten_and_pruned() {
    let app = TestApp::new().await;
    app.create_room("R1").await;
    app.create_user("u1").await;
    let token = app.admin_token().to_owned();
    let body = json!({"room_name": "R1", "user_name": "u1", "date": night(3)});
    assert_eq!(
        book(&app, &token, Some("old"), &body).await.status,
        StatusCode::CREATED
    );
    sqlx::query("update idempotency_keys set created_at = now() - interval '24 hours 1 second'")
        .execute(&app.pool)
        .await
        .expect("backdate the key");
    // Past 24 hours the key is new again: the request runs (and the night is taken).
    let late = book(&app, &token, Some("old"), &body).await;
    late.assert_problem(StatusCode::CONFLICT, "room_already_booked");
    assert_eq!(late.header("idempotent-replayed"), "");
    let pruned = room_booking::idempotency::store::prune(&app.pool)
        .await
        .expect("prune");
    assert_eq!(pruned, 1);
    assert_eq!(app.count("select count(*) from idempotency_keys").await, 0);
}

#[tokio::test]
async fn a_retry_while_the_first_runs_is_told_the_key_is_in_use() {
    let app = TestApp::new().await;
    app.create_room("R1").await;
    app.create_user("u1").await;
    let token = app.admin_token().to_owned();
    let body = json!({"room_name": "R1", "user_name": "u1", "date": night(3)});
    // Hold the room row so that the first request's booking waits inside its
    // transaction, with the key claimed.
    let mut blocker = app.pool.begin().await.expect("a transaction");
    sqlx::query("lock table bookings in exclusive mode")
        .execute(&mut *blocker)
        .await
        .expect("lock bookings");
    let first = {
        let router = app.router();
        let request = Request::builder()
            .method(Method::POST)
            .uri("/book")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json")
            .header("idempotency-key", "busy")
            .body(Body::from(body.to_string()))
            .expect("a request");
        tokio::spawn(async move {
            use tower::ServiceExt;
            router
                .oneshot(request)
                .await
                .map(|response| response.status())
        })
    };
    // Wait until the first request holds its key's lock (this database's:
    // other tests take such locks at the same time).
    let mut claimed = false;
    for _ in 0..200 {
        claimed = app
            .count(
                "select count(*) from pg_locks
                 where locktype = 'advisory' and granted
                   and database = (select oid from pg_database where datname = current_database())",
            )
            .await
            == 1;
        if claimed {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(claimed, "the first request did not claim its key");
    let second = book(&app, &token, Some("busy"), &body).await;
    second.assert_problem(StatusCode::CONFLICT, "idempotency_key_in_use");
    blocker.rollback().await.expect("release the lock");
    let first = first
        .await
        .expect("the first request ran")
        .expect("an answer");
    assert_eq!(first, StatusCode::CREATED);
    let replay = book(&app, &token, Some("busy"), &body).await;
    assert_eq!(replay.status, StatusCode::CREATED);
    assert_eq!(replay.header("idempotent-replayed"), "true");
    assert_eq!(app.count("select count(*) from bookings").await, 1);
}

#[tokio::test]
async fn priced_bookings_changes_cancellations_and_the_life_cycle_take_keys() {
    let app = TestApp::new().await;
    let hotel = app.create_hotel("Keyed", "Paris", "UTC").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let room_type = app.create_room_type(&hotel, "Double", 2).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let plan = app.create_rate_plan(&hotel, "Flex", Some(24)).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    app.create_room_of(&hotel, &room_type, "1").await;
    app.create_room_of(&hotel, &room_type, "2").await;
    app.put_rates(&hotel, &room_type, &plan, &night(0), &night(40), "100.00")
        .await;
    let token = app.admin_token().to_owned();
    let send = |method: Method, path: String, key: &'static str, body: Option<Value>| {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header("idempotency-key", key);
        let body = match body {
            Some(body) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(body.to_string())
            }
            None => Body::empty(),
        };
        app.send(request.body(body).expect("a request"))
    };
    let new = json!({"hotel_id": hotel, "room_type_id": room_type, "rate_plan_id": plan,
                     "check_in": night(10), "check_out": night(12)});
    let created = send(
        Method::POST,
        "/bookings".into(),
        "create",
        Some(new.clone()),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let replayed = send(Method::POST, "/bookings".into(), "create", Some(new)).await;
    assert_eq!(replayed.body, created.body);
    assert_eq!(replayed.header("idempotent-replayed"), "true");
    // The retry did not take the second room.
    assert_eq!(app.count("select count(*) from bookings").await, 1);
    assert_eq!(app.count("select count(*) from invoices").await, 1);
    let id = created.body["id"].as_str().expect("id").to_owned();

    let change = json!({"check_out": night(13)});
    let changed = send(
        Method::PATCH,
        format!("/bookings/{id}"),
        "change",
        Some(change.clone()),
    )
    .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    let again = send(
        Method::PATCH,
        format!("/bookings/{id}"),
        "change",
        Some(change),
    )
    .await;
    assert_eq!(again.body, changed.body);
    assert_eq!(again.header("idempotent-replayed"), "true");

    let cancelled = send(Method::DELETE, format!("/bookings/{id}"), "cancel", None).await;
    assert_eq!(cancelled.status, StatusCode::NO_CONTENT);
    let again = send(Method::DELETE, format!("/bookings/{id}"), "cancel", None).await;
    assert_eq!(again.status, StatusCode::NO_CONTENT);
    assert_eq!(again.header("idempotent-replayed"), "true");
    // The life cycle: a replayed refusal is not recorded, so it is refused again.
    let no_show = send(
        Method::POST,
        format!("/bookings/{id}/no-show"),
        "late",
        None,
    )
    .await;
    no_show.assert_problem(StatusCode::CONFLICT, "invalid_transition");
    assert_eq!(
        app.count("select count(*) from idempotency_keys").await,
        3,
        "create, change and cancel are recorded"
    );
}

/// A retry that asks for a key while the first request with it commits must
/// see the committed answer: it is never told that the key is new. The retry
/// asks again and again (in a transaction of its own each time, as a request
/// does) while the first one commits; many rounds, so that some of them ask
/// exactly while the commit ends. (With the key read in the statement that
/// took the lock, 3 to 102 of the 1,500 were told the key was new in 3 of 4
/// runs.)
#[tokio::test]
async fn a_retry_during_the_first_commit_replays_and_never_starts_anew() {
    use room_booking::idempotency::store::{KeyState, StoredResponse, claim, record};
    use sqlx::Connection;

    let app = TestApp::new().await;
    let caller = app.admin_id();
    let answer = StoredResponse {
        status: 201,
        location: Some("/bookings/1".to_owned()),
        body: b"{}".to_vec(),
    };
    // Busy backends beside the two, so that PostgreSQL's processes are
    // preempted mid-statement now and then, as on a loaded server, where
    // retries after a timeout happen.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..6 {
        let (pool, stop) = (app.pool.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                sqlx::query("select sum(g) from generate_series(1, 300000) g")
                    .execute(&pool)
                    .await
                    .expect("a busy query");
            }
        }));
    }
    let mut first = app.pool.acquire().await.expect("a connection");
    let mut retry = app.pool.acquire().await.expect("a connection");
    const ROUNDS: usize = 1500;
    let (mut replayed, mut fresh) = (0, 0);
    for round in 0..ROUNDS {
        let key = format!("race-{round}");
        let mut tx = first.begin().await.expect("a transaction");
        assert!(matches!(
            claim(&mut tx, caller, &key, b"request")
                .await
                .expect("claim"),
            KeyState::Fresh
        ));
        assert!(
            record(&mut tx, caller, &key, b"request", &answer)
                .await
                .expect("record")
        );
        let retrying = async {
            loop {
                let mut tx = retry.begin().await.expect("a transaction");
                match claim(&mut tx, caller, &key, b"request")
                    .await
                    .expect("claim")
                {
                    KeyState::InUse => {}
                    other => return other,
                }
            }
        };
        let (committed, seen) = tokio::join!(tx.commit(), retrying);
        committed.expect("commit");
        match seen {
            KeyState::Replay(stored) => {
                assert_eq!(stored, answer);
                replayed += 1;
            }
            KeyState::Fresh => fresh += 1,
            KeyState::Mismatch => panic!("round {round}: the same request was called another"),
            KeyState::InUse => unreachable!(),
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for busy in load {
        busy.await.expect("the busy queries ran");
    }
    assert_eq!(
        fresh, 0,
        "{fresh} of {ROUNDS} retries were told the key was new ({replayed} replayed)"
    );
}

/// The last guard: an answer is never recorded over a live record of the
/// same key (its transaction must then roll back); an expired one is replaced.
#[tokio::test]
async fn an_answer_is_never_recorded_over_a_live_one() {
    use room_booking::idempotency::store::{StoredResponse, record};

    let app = TestApp::new().await;
    let caller = app.admin_id();
    let answer = |body: &[u8]| StoredResponse {
        status: 201,
        location: None,
        body: body.to_vec(),
    };
    let mut conn = app.pool.acquire().await.expect("a connection");
    assert!(
        record(&mut conn, caller, "k", b"first", &answer(b"1"))
            .await
            .expect("record")
    );
    assert!(
        !record(&mut conn, caller, "k", b"second", &answer(b"2"))
            .await
            .expect("record")
    );
    let kept = async || -> Vec<u8> {
        sqlx::query_scalar("select body from idempotency_keys where key = 'k'")
            .fetch_one(&app.pool)
            .await
            .expect("the record")
    };
    assert_eq!(kept().await, b"1");
    sqlx::query("update idempotency_keys set created_at = now() - interval '24 hours 1 second'")
        .execute(&app.pool)
        .await
        .expect("backdate the key");
    assert!(
        record(&mut conn, caller, "k", b"third", &answer(b"3"))
            .await
            .expect("record")
    );
    assert_eq!(kept().await, b"3");
}
