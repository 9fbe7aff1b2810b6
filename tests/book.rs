//! `POST /book`, the seed-compatible booking of one night.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use chrono::{Days, NaiveDate, Utc};
use common::TestApp;
use serde_json::json;

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

fn in_days(days: u64) -> NaiveDate {
    today() + Days::new(days)
}

async fn app_with_room_and_user() -> TestApp {
    let app = TestApp::new().await;
    app.create_room("ROOM7").await;
    app.create_user("user3").await;
    app
}

#[tokio::test]
async fn books_a_night_in_each_accepted_date_format() {
    let app = app_with_room_and_user().await;
    let cases = [
        (in_days(1).format("%d.%m.%y").to_string(), in_days(1)),
        (in_days(2).format("%d/%m/%y").to_string(), in_days(2)),
        (in_days(3).format("%Y-%m-%d").to_string(), in_days(3)),
    ];
    for (text, night) in cases {
        let response = app
            .post(
                "/book",
                json!({"room_name": "ROOM7", "user_name": "user3", "date": text}),
            )
            .await;
        assert_eq!(
            response.status,
            StatusCode::CREATED,
            "{text}: {}",
            response.body
        );
        let id = response.body["id"].as_str().expect("an id").to_owned();
        assert_eq!(response.body["room_name"], "ROOM7");
        assert_eq!(response.body["user_name"], "user3");
        assert_eq!(response.body["date"], night.to_string());
        assert_eq!(response.body["status"], "confirmed");
        assert_eq!(response.header("location"), format!("/bookings/{id}"));

        let (stay, status, check_in, check_out): (String, String, String, String) = sqlx::query_as(
            "select b.stay::text, b.status::text,
                    to_char(b.check_in_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI'),
                    to_char(b.check_out_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI')
             from bookings b join rooms r on r.id = b.room_id join users u on u.id = b.user_id
             where b.id = $1::uuid and r.name = 'ROOM7' and u.name = 'user3'",
        )
        .bind(&id)
        .fetch_one(&app.pool)
        .await
        .expect("the booking is stored");
        let next = night + Days::new(1);
        assert_eq!(stay, format!("[{night},{next})"));
        assert_eq!(status, "confirmed");
        // The default hotel is in UTC with check-in at 14:00 and check-out at 11:00.
        assert_eq!(check_in, format!("{night} 14:00"));
        assert_eq!(check_out, format!("{next} 11:00"));
    }
    assert_eq!(app.count("select count(*) from bookings").await, 3);
}

#[tokio::test]
async fn today_can_be_booked() {
    let app = app_with_room_and_user().await;
    let date = today().format("%d.%m.%y").to_string();
    let response = app
        .post(
            "/book",
            json!({"room_name": "ROOM7", "user_name": "user3", "date": date}),
        )
        .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
    assert_eq!(response.body["date"], today().to_string());
}

#[tokio::test]
async fn a_taken_night_is_a_conflict_and_changes_nothing() {
    let app = app_with_room_and_user().await;
    app.create_user("user4").await;
    let date = in_days(5).format("%d.%m.%y").to_string();
    let first = app
        .post(
            "/book",
            json!({"room_name": "ROOM7", "user_name": "user3", "date": date}),
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED);

    for user in ["user3", "user4"] {
        let again = app
            .post(
                "/book",
                json!({"room_name": "ROOM7", "user_name": user, "date": date}),
            )
            .await;
        again.assert_problem(StatusCode::CONFLICT, "room_already_booked");
    }
    let owners: Vec<String> =
        sqlx::query_scalar("select u.name from bookings b join users u on u.id = b.user_id")
            .fetch_all(&app.pool)
            .await
            .expect("bookings");
    assert_eq!(owners, ["user3"]);

    // The next night and another room are still free.
    app.create_room("ROOM8").await;
    let next = in_days(6).format("%d.%m.%y").to_string();
    let response = app
        .post(
            "/book",
            json!({"room_name": "ROOM7", "user_name": "user4", "date": next}),
        )
        .await;
    assert_eq!(response.status, StatusCode::CREATED);
    let response = app
        .post(
            "/book",
            json!({"room_name": "ROOM8", "user_name": "user4", "date": date}),
        )
        .await;
    assert_eq!(response.status, StatusCode::CREATED);
    assert_eq!(app.count("select count(*) from bookings").await, 3);
}

#[tokio::test]
async fn unknown_room_or_user_is_not_found() {
    let app = app_with_room_and_user().await;
    let date = in_days(1).format("%d.%m.%y").to_string();
    let response = app
        .post(
            "/book",
            json!({"room_name": "ROOM99", "user_name": "user3", "date": date}),
        )
        .await;
    response.assert_problem(StatusCode::NOT_FOUND, "not_found");
    assert!(
        response.body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("ROOM99")
    );

    let response = app
        .post(
            "/book",
            json!({"room_name": "ROOM7", "user_name": "nobody", "date": date}),
        )
        .await;
    response.assert_problem(StatusCode::NOT_FOUND, "not_found");
    assert!(
        response.body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("nobody")
    );
    assert_eq!(app.count("select count(*) from bookings").await, 0);
}

#[tokio::test]
async fn bad_and_past_dates_are_unprocessable() {
    let app = app_with_room_and_user().await;
    for date in [
        "31.02.27",
        "29.02.27",
        "32.01.27",
        "24.13.27",
        "tomorrow",
        "",
        "2027-02-30",
        "24.11.2027",
    ] {
        let response = app
            .post(
                "/book",
                json!({"room_name": "ROOM7", "user_name": "user3", "date": date}),
            )
            .await;
        response.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_date");
    }
    let yesterday = (today() - Days::new(1)).format("%d.%m.%y").to_string();
    let response = app
        .post(
            "/book",
            json!({"room_name": "ROOM7", "user_name": "user3", "date": yesterday}),
        )
        .await;
    response.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "date_in_past");
    assert_eq!(app.count("select count(*) from bookings").await, 0);
}

#[tokio::test]
async fn malformed_requests_are_refused() {
    let app = app_with_room_and_user().await;
    let date = in_days(1).format("%d.%m.%y").to_string();
    let malformed = [
        r#"{"room_name": "ROOM7", "user_name": "user3", "date": "#.to_owned(),
        "not json".to_owned(),
        r#"{"room_name": "ROOM7", "user_name": "user3"}"#.to_owned(),
        format!(r#"{{"room_name": 7, "user_name": "user3", "date": "{date}"}}"#),
        "[]".to_owned(),
    ];
    for body in &malformed {
        let response = app.send_raw(Method::POST, "/book", body).await;
        response.assert_problem(StatusCode::BAD_REQUEST, "malformed_request");
    }

    let no_content_type = Request::builder()
        .method(Method::POST)
        .uri("/book")
        .header("authorization", format!("Bearer {}", app.admin_token()))
        .body(Body::from(
            json!({"room_name": "ROOM7", "user_name": "user3", "date": date}).to_string(),
        ))
        .expect("a request");
    app.send(no_content_type)
        .await
        .assert_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");

    let huge =
        json!({"room_name": "R".repeat(100_000), "user_name": "user3", "date": date}).to_string();
    app.send_raw(Method::POST, "/book", &huge)
        .await
        .assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");

    assert_eq!(app.count("select count(*) from bookings").await, 0);
}

#[tokio::test]
async fn unknown_routes_answer_a_problem_document() {
    let app = TestApp::new().await;
    app.get("/nowhere")
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_hundred_racing_clients_get_exactly_one_night() {
    let app = app_with_room_and_user().await;
    let base = app.serve().await;
    let client = app.http_client();
    let date = in_days(10).format("%d.%m.%y").to_string();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(100));
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let (client, url, date, barrier) = (
                client.clone(),
                format!("{base}/book"),
                date.clone(),
                barrier.clone(),
            );
            tokio::spawn(async move {
                barrier.wait().await;
                let response = client
                    .post(url)
                    .json(&json!({"room_name": "ROOM7", "user_name": "user3", "date": date}))
                    .send()
                    .await
                    .expect("the server answers");
                let status = response.status().as_u16();
                let body: serde_json::Value = response.json().await.expect("a JSON body");
                (status, body)
            })
        })
        .collect();

    let mut created = 0;
    let mut conflicts = 0;
    for task in tasks {
        let (status, body) = task.await.expect("the task finishes");
        match status {
            201 => created += 1,
            409 => {
                assert_eq!(body["code"], "room_already_booked");
                conflicts += 1;
            }
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    assert_eq!((created, conflicts), (1, 99));
    assert_eq!(app.count("select count(*) from bookings").await, 1);
}
