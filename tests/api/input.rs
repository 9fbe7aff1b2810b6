//! Input nobody expected: NUL characters, amounts that would overflow, time
//! zones the database does not know, ids that are not UUIDs. Each answers a
//! 4xx problem document and changes nothing.

use crate::helpers::TestApp;
use axum::http::{Method, StatusCode};
use chrono::{Days, Utc};
use serde_json::{Value, json};

fn id(value: &Value) -> String {
    value["id"].as_str().expect("an id").to_owned()
}

#[tokio::test]
async fn nul_characters_in_bodies_and_queries_are_malformed_requests() {
    let app = TestApp::new().await;
    let users_before = app.count("select count(*) from users").await;
    let cases = [
        (
            Method::POST,
            "/auth/token",
            r#"{"name":"a\u0000","password":"12345678"}"#,
        ),
        (
            Method::POST,
            "/auth/register",
            r#"{"name":"a\u0000b","password":"12345678"}"#,
        ),
        (Method::POST, "/users", r#"{"name":"x\u0000"}"#),
        (Method::POST, "/rooms", r#"{"name":"\u0000"}"#),
        (
            Method::POST,
            "/book",
            r#"{"room_name":"R\u0000","user_name":"u","date":"01.01.30"}"#,
        ),
        (
            Method::POST,
            "/hotels",
            r#"{"name":"H","timezone":"UTC\u0000"}"#,
        ),
    ];
    for (method, path, body) in cases {
        let response = app.send_raw(method.clone(), path, body).await;
        response.assert_problem(StatusCode::BAD_REQUEST, "malformed_request");
    }
    for path in [
        "/hotels?city=%00",
        "/hotels?city=a%00b&check_in=2030-01-01&check_out=2030-01-02",
        "/bookings?from=2030-01-01%00",
    ] {
        let response = app.get(path).await;
        response.assert_problem(StatusCode::BAD_REQUEST, "malformed_request");
    }
    // An escaped backslash before `u0000` is text, not a NUL.
    let text = app
        .send_raw(Method::POST, "/rooms", r#"{"name":"a\\u0000"}"#)
        .await;
    assert_eq!(text.status, StatusCode::CREATED, "{}", text.body);
    assert_eq!(text.body["name"], "a\\u0000");
    assert_eq!(app.count("select count(*) from users").await, users_before);
}

#[tokio::test]
async fn a_total_beyond_numeric_12_2_is_refused_before_anything_is_written() {
    let app = TestApp::new().await;
    let hotel = id(&app.create_hotel("Dear", "Paris", "UTC").await);
    let room_type = id(&app.create_room_type(&hotel, "Suite", 2).await);
    let plan = id(&app.create_rate_plan(&hotel, "Flex", Some(24)).await);
    app.create_room_of(&hotel, &room_type, "101").await;
    let from = Utc::now().date_naive() + Days::new(10);
    let to = from + Days::new(5);
    app.put_rates(
        &hotel,
        &room_type,
        &plan,
        &from.to_string(),
        &to.to_string(),
        "9999999999.99",
    )
    .await;
    // A price beyond the column is refused at the door.
    let too_dear = app
        .request(
            Method::PUT,
            &format!("/hotels/{hotel}/rates"),
            Some(
                json!({"room_type_id": room_type, "rate_plan_id": plan, "from": from.to_string(),
                        "to": to.to_string(), "price": "10000000000.00", "currency": "EUR"}),
            ),
        )
        .await;
    too_dear.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(
        app.count("select count(*) from daily_rates where price = 9999999999.99")
            .await,
        5,
        "the refused price changed no rate"
    );
    // One night is the largest amount; two nights would overflow the total.
    let two_nights = app
        .post(
            "/bookings",
            json!({"hotel_id": hotel, "room_type_id": room_type, "rate_plan_id": plan,
                   "check_in": from.to_string(), "check_out": (from + Days::new(2)).to_string()}),
        )
        .await;
    two_nights.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    // The search offers only what can be booked: not the two nights.
    let search = |nights: u64| {
        format!(
            "/hotels?city=Paris&check_in={from}&check_out={}&guests=2",
            from + Days::new(nights)
        )
    };
    let offers = app.get(&search(2)).await;
    assert_eq!(offers.status, StatusCode::OK, "{}", offers.body);
    assert_eq!(offers.body["items"], json!([]), "{}", offers.body);
    let offers = app.get(&search(1)).await;
    assert_eq!(
        offers.body["items"][0]["cheapest_total"], "9999999999.99",
        "{}",
        offers.body
    );
    assert_eq!(app.count("select count(*) from bookings").await, 0);
    assert_eq!(app.count("select count(*) from invoices").await, 0);
    let one_night = app
        .post(
            "/bookings",
            json!({"hotel_id": hotel, "room_type_id": room_type, "rate_plan_id": plan,
                   "check_in": from.to_string(), "check_out": (from + Days::new(1)).to_string()}),
        )
        .await;
    assert_eq!(one_night.status, StatusCode::CREATED, "{}", one_night.body);
    assert_eq!(one_night.body["total_price"], "9999999999.99");
    assert_eq!(
        app.count("select count(*) from bookings where total_price = 9999999999.99")
            .await,
        1
    );
}

#[tokio::test]
async fn a_time_zone_the_database_cannot_resolve_is_refused() {
    let app = TestApp::new().await;
    // CET is a zone with summer time for the service's time zone library but
    // a fixed offset for PostgreSQL's `at time zone` (an abbreviation comes
    // first there); names without an Area/ are refused, UTC aside.
    let summer: String = sqlx::query_scalar(
        "select to_char(('2026-07-01 12:00'::timestamp at time zone 'CET') at time zone 'UTC', 'HH24:MI')",
    )
    .fetch_one(&app.pool)
    .await
    .expect("CET in SQL");
    assert_eq!(summer, "11:00", "PostgreSQL reads CET as UTC+1 all year");
    for zone in [
        "Mars/Olympus_Mons",
        "UTC+5",
        "",
        "Europe/Paris ",
        "CET",
        "EET",
        "MET",
        "WET",
        "Japan",
    ] {
        let response = app
            .post("/hotels", json!({"name": "Nowhere", "timezone": zone}))
            .await;
        response.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_timezone");
    }
    assert_eq!(app.count("select count(*) from hotels").await, 1);
    // The database's own check stands behind the service's: a zone PostgreSQL
    // does not know cannot be stored, whoever writes it.
    let refused =
        sqlx::query("insert into hotels (name, timezone) values ('x', 'Mars/Olympus_Mons')")
            .execute(&app.pool)
            .await
            .expect_err("the check refuses it");
    let constraint = match &refused {
        sqlx::Error::Database(db) => db.constraint().map(str::to_owned),
        _ => None,
    };
    assert_eq!(constraint.as_deref(), Some("hotels_timezone_known"));
    let hotel = id(&app.create_hotel("Real", "Paris", "Europe/Paris").await);
    let changed = app
        .patch(
            &format!("/hotels/{hotel}"),
            json!({"timezone": "Not/AZone"}),
        )
        .await;
    changed.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_timezone");
    assert_eq!(
        app.count("select count(*) from hotels where timezone = 'Europe/Paris'")
            .await,
        1
    );
}

#[tokio::test]
async fn a_path_id_that_is_not_a_uuid_is_a_malformed_request() {
    let app = TestApp::new().await;
    for path in [
        "/rooms/42",
        "/users/not-a-uuid",
        "/hotels/x/room-types",
        "/bookings/1/invoice",
    ] {
        let response = app.get(path).await;
        response.assert_problem(StatusCode::BAD_REQUEST, "malformed_request");
    }
    let response = app
        .patch(
            "/hotels/00000000-0000-0000-0000-000000000000/rate-plans/zz",
            json!({"name": "x"}),
        )
        .await;
    response.assert_problem(StatusCode::BAD_REQUEST, "malformed_request");
}

#[tokio::test]
async fn the_horizon_bounds_every_booking() {
    let app = TestApp::new().await;
    app.create_room("R1").await;
    app.create_user("u1").await;
    let today = Utc::now().date_naive();
    let last = today + Days::new(730);
    let book = |date: String| {
        app.post(
            "/book",
            json!({"room_name": "R1", "user_name": "u1", "date": date}),
        )
    };
    let inside = book(last.to_string()).await;
    assert_eq!(inside.status, StatusCode::CREATED, "{}", inside.body);
    let beyond = book((last + Days::new(1)).to_string()).await;
    beyond.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "beyond_horizon");
    let far = book("9999-12-31".into()).await;
    far.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "beyond_horizon");
    assert_eq!(app.count("select count(*) from bookings").await, 1);
}

/// One rule for every body: a field the API does not know is refused with
/// `400`, `POST /book` included, before its value is read (a nesting bomb in
/// an unknown field costs nothing), and nothing is written.
#[tokio::test]
async fn unknown_fields_are_refused_by_every_body() {
    let app = TestApp::new().await;
    app.create_room("ROOM7").await;
    app.create_user("user3").await;
    let date = (Utc::now().date_naive() + Days::new(1))
        .format("%d.%m.%y")
        .to_string();
    let night = json!({"room_name": "ROOM7", "user_name": "user3", "date": date});
    let mut with_admin = night.clone();
    with_admin["is_admin"] = json!(true);
    app.post("/book", with_admin)
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "malformed_request");
    let bomb = format!(
        r#"{{"room_name": "ROOM7", "user_name": "user3", "date": "{date}", "x": {}{}}}"#,
        "[".repeat(32_000),
        "]".repeat(32_000)
    );
    app.send_raw(Method::POST, "/book", &bomb)
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "malformed_request");
    app.post("/rooms", json!({"name": "ROOM8", "is_admin": true}))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "malformed_request");
    assert_eq!(app.count("select count(*) from bookings").await, 0);
    assert_eq!(
        app.count("select count(*) from rooms where name = 'ROOM8'")
            .await,
        0
    );
    let booked = app.post("/book", night).await;
    assert_eq!(booked.status, StatusCode::CREATED, "{}", booked.body);
}

/// A price is what its published pattern says, `^[0-9]{1,10}(\.[0-9]{1,2})?$`:
/// no separators, exponents, signs or bare points; nothing is written.
#[tokio::test]
async fn prices_outside_their_pattern_are_refused() {
    let app = TestApp::new().await;
    let hotel = id(&app.create_hotel("Exact", "Nice", "UTC").await);
    let room_type = id(&app.create_room_type(&hotel, "Double", 2).await);
    let plan = id(&app.create_rate_plan(&hotel, "Flex", Some(24)).await);
    let from = (Utc::now().date_naive() + Days::new(1)).to_string();
    let to = (Utc::now().date_naive() + Days::new(3)).to_string();
    for price in [
        "1_0.0_5",
        "1e5",
        "+5",
        ".5",
        "-0",
        "5.",
        "1.234",
        "12345678901",
    ] {
        let body = json!({"room_type_id": room_type, "rate_plan_id": plan, "from": from,
                          "to": to, "price": price, "currency": "EUR"});
        app.request(Method::PUT, &format!("/hotels/{hotel}/rates"), Some(body))
            .await
            .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    assert_eq!(app.count("select count(*) from daily_rates").await, 0);
    app.put_rates(&hotel, &room_type, &plan, &from, &to, "9999999999.99")
        .await;
    assert_eq!(app.count("select count(*) from daily_rates").await, 2);
}
