//! The limits that keep one client from starving the others (SPEC 4.8): the
//! sign-in rate limit, bounded password hashing, the bounds of public
//! queries and a guest's limits.

use std::time::{Duration, Instant};

use crate::helpers::{TestApp, test_limits};
use axum::http::{Method, StatusCode};
use chrono::{Days, Utc};
use room_booking::Limits;
use room_booking::domain::Role;
use room_booking::domain::booking::BookingLimits;
use serde_json::{Value, json};

fn night(days: u64) -> String {
    (Utc::now().date_naive() + Days::new(days)).to_string()
}

fn id(value: &Value) -> String {
    value["id"].as_str().expect("an id").to_owned()
}

#[tokio::test]
async fn sign_ins_beyond_the_burst_answer_429_with_retry_after() {
    let delay = Duration::from_millis(300);
    let limits = Limits {
        auth_burst: 3,
        auth_period: Duration::from_secs(60),
        refusal_delay: delay,
        ..test_limits()
    };
    let app = TestApp::with_limits(limits, 2).await;
    let wrong = json!({"name": "nobody", "password": "wrong password"});
    for _ in 0..3 {
        let answer = app
            .request_as(None, Method::POST, "/auth/token", Some(wrong.clone()))
            .await;
        answer.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    for path in ["/auth/token", "/auth/register"] {
        let asked = Instant::now();
        let limited = app
            .request_as(None, Method::POST, path, Some(wrong.clone()))
            .await;
        limited.assert_problem(StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
        let retry_after: u64 = limited.header("retry-after").parse().expect("seconds");
        assert!((1..=60).contains(&retry_after), "{retry_after}");
        // A refusal is held back, so that a client looping on it slows down.
        assert!(asked.elapsed() >= delay, "{:?}", asked.elapsed());
    }
    // Other routes are not limited by it.
    assert_eq!(app.get("/rooms").await.status, StatusCode::OK);
    assert_eq!(
        app.count("select count(*) from users where name = 'nobody'")
            .await,
        0
    );
}

#[tokio::test]
async fn a_sign_in_that_finds_every_hash_slot_busy_answers_503() {
    let app = TestApp::with_limits(test_limits(), 1).await;
    let taken = app.state.hashing.slot().await.expect("the only slot");
    let waiting = app.register("alice", "correct horse").await;
    waiting.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable");
    assert_eq!(waiting.header("retry-after"), "1");
    assert_eq!(
        app.count("select count(*) from users where name = 'alice'")
            .await,
        0
    );
    drop(taken);
    let registered = app.register("alice", "correct horse").await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{}",
        registered.body
    );
    assert_eq!(
        app.count("select count(*) from users where name = 'alice'")
            .await,
        1
    );
}

#[tokio::test]
async fn public_queries_beyond_the_burst_answer_429_before_they_take_a_slot() {
    let limits = Limits {
        search_burst: 3,
        search_period: Duration::from_secs(60),
        public_queries: 1,
        ..test_limits()
    };
    let app = TestApp::with_limits(limits, 2).await;
    let hotel = id(&app.create_hotel("Open", "Lyon", "UTC").await);
    let stay = format!("check_in={}&check_out={}", night(1), night(3));
    let search = format!("/hotels?{stay}");
    let availability = format!("/hotels/{hotel}/availability?{stay}");
    for path in [&search, &availability, &search] {
        let answer = app.request_as(None, Method::GET, path, None).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.body);
    }
    // The only slot is taken: a query past the burst is refused before it waits.
    let _slot = app.state.public_queries.acquire().await.expect("the slot");
    for path in [&search, &availability] {
        let asked = Instant::now();
        let limited = app.request_as(None, Method::GET, path, None).await;
        limited.assert_problem(StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
        let retry_after: u64 = limited.header("retry-after").parse().expect("seconds");
        assert!((1..=60).contains(&retry_after), "{retry_after}");
        assert!(
            asked.elapsed() < Duration::from_secs(1),
            "it waited for a slot"
        );
    }
    // Creating a hotel is staff's work, not a public query: not limited by it.
    let created = app
        .post(
            "/hotels",
            json!({"name": "Second", "city": "Lyon", "timezone": "UTC"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(
        app.count("select count(*) from hotels where name = 'Second'")
            .await,
        1
    );
}

#[tokio::test]
async fn a_public_query_that_finds_every_slot_busy_answers_503() {
    let limits = Limits {
        public_queries: 1,
        ..test_limits()
    };
    let app = TestApp::with_limits(limits, 2).await;
    let search = format!("/hotels?check_in={}&check_out={}", night(1), night(3));
    let taken = app.state.public_queries.acquire().await.expect("the slot");
    let busy = app.request_as(None, Method::GET, &search, None).await;
    busy.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable");
    assert_eq!(busy.header("retry-after"), "1");
    drop(taken);
    let answered = app.request_as(None, Method::GET, &search, None).await;
    assert_eq!(answered.status, StatusCode::OK, "{}", answered.body);
}

#[tokio::test]
async fn public_queries_take_at_most_the_configured_stay() {
    let app = TestApp::new().await;
    let hotel = id(&app.create_hotel("Open", "Lyon", "UTC").await);
    let thirty = format!("/hotels?check_in={}&check_out={}", night(1), night(31));
    assert_eq!(app.get(&thirty).await.status, StatusCode::OK);
    let long = format!("/hotels?check_in={}&check_out={}", night(1), night(32));
    app.get(&long)
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_stay");
    let availability = format!(
        "/hotels/{hotel}/availability?check_in={}&check_out={}",
        night(1),
        night(32)
    );
    app.get(&availability)
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_stay");
    // Availability is paginated like every list.
    let paged = app
        .get(&format!(
            "/hotels/{hotel}/availability?check_in={}&check_out={}&per_page=1",
            night(1),
            night(3)
        ))
        .await;
    assert_eq!(paged.status, StatusCode::OK, "{}", paged.body);
    assert_eq!(paged.body["per_page"], 1);
    assert_eq!(paged.body["total"], 1);
    let too_many = format!(
        "/hotels/{hotel}/availability?check_in={}&check_out={}&per_page=101",
        night(1),
        night(3)
    );
    app.get(&too_many)
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

#[tokio::test]
async fn a_guest_holds_a_bounded_number_of_bookings_and_nights() {
    let limits = Limits {
        booking: BookingLimits {
            horizon_days: 730,
            guest_live_bookings: 2,
            guest_nights: 3,
        },
        ..test_limits()
    };
    let app = TestApp::with_limits(limits, 2).await;
    let hotel = id(&app.create_hotel("Kept", "Nice", "UTC").await);
    let room_type = id(&app.create_room_type(&hotel, "Double", 2).await);
    let plan = id(&app.create_rate_plan(&hotel, "Flex", Some(24)).await);
    for room in ["1", "2", "3"] {
        app.create_room_of(&hotel, &room_type, room).await;
    }
    app.put_rates(&hotel, &room_type, &plan, &night(0), &night(60), "50.00")
        .await;
    app.create_room("R1").await;
    let (guest, token) = app.user_with_role("guest", Role::Guest).await;
    let (_, staff) = app.user_with_role("staff", Role::Staff).await;
    let stay = |from: u64, to: u64| {
        json!({"hotel_id": hotel, "room_type_id": room_type, "rate_plan_id": plan,
               "check_in": night(from), "check_out": night(to)})
    };
    let as_guest =
        |body: Value| app.request_as(Some(&token), Method::POST, "/bookings", Some(body));

    as_guest(stay(1, 5))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "guest_limit");
    let first = as_guest(stay(1, 4)).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    // A change may not stretch it beyond the limit either.
    let stretched = app
        .request_as(
            Some(&token),
            Method::PATCH,
            &format!("/bookings/{}", id(&first.body)),
            Some(json!({"check_out": night(10)})),
        )
        .await;
    stretched.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "guest_limit");
    // The second live booking is the last: by /book as well as /bookings.
    let second = app
        .request_as(
            Some(&token),
            Method::POST,
            "/book",
            Some(json!({"room_name": "R1", "user_name": "guest", "date": night(7)})),
        )
        .await;
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.body);
    as_guest(stay(10, 11))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "guest_limit");
    app.request_as(
        Some(&token),
        Method::POST,
        "/book",
        Some(json!({"room_name": "R1", "user_name": "guest", "date": night(8)})),
    )
    .await
    .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "guest_limit");
    assert_eq!(
        app.count("select count(*) from bookings").await,
        2,
        "refusals wrote nothing"
    );
    // Staff are not held to the guest limits, not even booking for the guest.
    let by_staff = app
        .request_as(
            Some(&staff),
            Method::POST,
            "/bookings",
            Some(
                json!({"hotel_id": hotel, "room_type_id": room_type, "rate_plan_id": plan,
                        "check_in": night(20), "check_out": night(30), "user_id": guest}),
            ),
        )
        .await;
    assert_eq!(by_staff.status, StatusCode::CREATED, "{}", by_staff.body);
    // A cancelled booking no longer counts.
    let cancelled = app
        .request_as(
            Some(&token),
            Method::DELETE,
            &format!("/bookings/{}", id(&first.body)),
            None,
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::NO_CONTENT);
}

/// 25 bookings sent at once by one guest, a night each in rooms of their
/// own, against a limit of 20: exactly 20 are live, every other answer is
/// `422 guest_limit`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_guest_limit_holds_under_concurrency() {
    let limits = Limits {
        booking: BookingLimits {
            guest_live_bookings: 20,
            ..BookingLimits::default()
        },
        ..test_limits()
    };
    let app = TestApp::with_limits(limits, 2).await;
    let hotel = id(&app.create_hotel("Busy", "Nice", "UTC").await);
    let room_type = id(&app.create_room_type(&hotel, "Single", 1).await);
    let plan = id(&app.create_rate_plan(&hotel, "Flex", Some(24)).await);
    for room in 0..25 {
        app.create_room_of(&hotel, &room_type, &format!("S{room}"))
            .await;
    }
    app.put_rates(&hotel, &room_type, &plan, &night(0), &night(30), "50.00")
        .await;
    let (_, token) = app.user_with_role("guest", Role::Guest).await;
    let base = app.serve().await;
    let client = reqwest::Client::new();
    for round in 0..3 {
        sqlx::raw_sql("delete from invoice_lines; delete from invoices; delete from bookings")
            .execute(&app.pool)
            .await
            .expect("no bookings");
        let requests = (0..25).map(|_| {
            client
                .post(format!("{base}/bookings"))
                .bearer_auth(&token)
                .json(
                    &json!({"hotel_id": hotel, "room_type_id": room_type, "rate_plan_id": plan,
                              "check_in": night(3), "check_out": night(4)}),
                )
                .send()
        });
        let answers = futures_join_all(requests).await;
        let mut created = 0;
        for answer in answers {
            let answer = answer.expect("answered");
            match answer.status().as_u16() {
                201 => created += 1,
                422 => {
                    let body: Value = answer.json().await.expect("a problem");
                    assert_eq!(body["code"], "guest_limit", "{body}");
                }
                other => panic!("round {round}: {other}"),
            }
        }
        assert_eq!(created, 20, "round {round}");
        assert_eq!(
            app.count("select count(*) from live_bookings").await,
            20,
            "round {round}"
        );
    }
}

/// Runs every future at once and waits for all of them.
async fn futures_join_all<F: std::future::Future + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut outputs = Vec::new();
    for handle in handles {
        outputs.push(handle.await.expect("the task ran"));
    }
    outputs
}

/// A token cannot try password after password: a user's checks of its
/// current password (`PATCH /users/{self}`) take the sign-in budget, per
/// user; beyond it `429` with `Retry-After`, the right password too, and
/// nothing changes. Another user's budget is its own.
#[tokio::test]
async fn checks_of_the_current_password_are_rate_limited_per_user() {
    let limits = Limits {
        auth_burst: 3,
        auth_period: Duration::from_secs(600),
        ..test_limits()
    };
    let app = TestApp::with_limits(limits, 2).await;
    // Made by the admin, whose calls take no sign-in budget; tokens minted.
    let user = |name: &'static str| {
        let app = &app;
        async move {
            let created = app
                .post(
                    "/users",
                    json!({"name": name, "password": "the right password"}),
                )
                .await;
            assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
            let id = app.user_id(name).await;
            (app.keys.mint(id, Role::Guest, 0).expect("a token"), id)
        }
    };
    let (token, id) = user("mallory").await;
    let change = |current: &str| json!({"password": "a new password", "current_password": current});
    let path = format!("/users/{id}");
    for _ in 0..3 {
        app.request_as(Some(&token), Method::PATCH, &path, Some(change("a guess")))
            .await
            .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    }
    let limited = app
        .request_as(
            Some(&token),
            Method::PATCH,
            &path,
            Some(change("the right password")),
        )
        .await;
    limited.assert_problem(StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
    assert!(
        limited
            .header("retry-after")
            .parse::<u64>()
            .is_ok_and(|s| s >= 1)
    );
    let (alices, alice) = user("alice").await;
    let changed = app
        .request_as(
            Some(&alices),
            Method::PATCH,
            &format!("/users/{alice}"),
            Some(change("the right password")),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    // Mallory's password is the one it had.
    let body = json!({"name": "mallory", "password": "the right password"});
    let again = app
        .request_as(None, Method::POST, "/auth/token", Some(body))
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
}
