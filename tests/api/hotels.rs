//! `/hotels`: hotels, room types, rate plans and daily rates with their
//! refusals and delete rules; then the availability search and a hotel's
//! availability, compared with a brute-force answer computed here, in Rust,
//! from the rows read back with plain SQL.

use std::collections::{BTreeMap, HashMap};

use crate::helpers::{TestApp, TestResponse};
use axum::http::{Method, StatusCode};
use chrono::{Days, NaiveDate, TimeDelta, Utc};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use uuid::Uuid;

fn in_days(days: u64) -> NaiveDate {
    Utc::now().date_naive() + Days::new(days)
}

fn id_of(value: &Value) -> Uuid {
    value["id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("an id in {value}"))
}

/// The `name` of each item of a list.
fn names(body: &Value) -> Vec<&str> {
    body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|item| item["name"].as_str())
        .collect()
}

/// Asserts that `body` has each field of `expected`, with that value.
#[track_caller]
fn assert_has(body: &Value, expected: Value) {
    for (key, value) in expected.as_object().expect("an object") {
        assert_eq!(&body[key], value, "`{key}` of {body}");
    }
}

async fn count_of(app: &TestApp, sql: &'static str, id: Uuid) -> i64 {
    sqlx::query_scalar(sql)
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .expect(sql)
}

async fn put_rates(app: &TestApp, hotel: Uuid, body: Value) -> TestResponse {
    app.request(Method::PUT, &format!("/hotels/{hotel}/rates"), Some(body))
        .await
}

/// The id of a hotel's default room type, as the API lists it.
async fn standard_room_type(app: &TestApp, hotel: Uuid) -> Uuid {
    let listed = app.get(&format!("/hotels/{hotel}/room-types")).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let standard = listed.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|room_type| room_type["name"] == "Standard")
        .expect("a Standard room type");
    id_of(standard)
}

/// Inserts a booking of `[check_in, check_out)` directly, priced when `rate_plan` is given.
async fn insert_booking(
    app: &TestApp,
    room: Uuid,
    user: Uuid,
    (check_in, check_out): (NaiveDate, NaiveDate),
    status: &str,
    rate_plan: Option<Uuid>,
) {
    sqlx::query(
        "insert into bookings (room_id, user_id, stay, guests, status, check_in_at, check_out_at,
                               rate_plan_id, total_price, currency)
         values ($1, $2, daterange($3, $4), 1, $5::booking_status,
                 $3 + time '14:00', $4 + time '11:00',
                 $6, case when $6 is null then null else 100.00 end,
                 case when $6 is null then null else 'EUR' end)",
    )
    .bind(room)
    .bind(user)
    .bind(check_in)
    .bind(check_out)
    .bind(status)
    .bind(rate_plan)
    .execute(&app.pool)
    .await
    .expect("insert a booking");
}

#[tokio::test]
async fn creates_reads_lists_and_changes_hotels() {
    let app = TestApp::new().await;
    let created = app
        .post(
            "/hotels",
            json!({"name": "Grand", "city": "Paris", "timezone": "Europe/Paris"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let grand = id_of(&created.body);
    assert_eq!(created.header("location"), format!("/hotels/{grand}"));
    assert_has(
        &created.body,
        json!({"name": "Grand", "city": "Paris", "timezone": "Europe/Paris",
               "check_in_time": "14:00", "check_out_time": "11:00"}),
    );
    let stored: (String, String, String, String, String, bool) = sqlx::query_as(
        "select name, city, timezone, to_char(check_in_time, 'HH24:MI'),
                to_char(check_out_time, 'HH24:MI'), is_default
         from hotels where id = $1",
    )
    .bind(grand)
    .fetch_one(&app.pool)
    .await
    .expect("the hotel is stored");
    assert_eq!(
        stored,
        (
            "Grand".into(),
            "Paris".into(),
            "Europe/Paris".into(),
            "14:00".into(),
            "11:00".into(),
            false
        )
    );
    let room_types: Vec<(String, i32, bool)> =
        sqlx::query_as("select name, capacity, is_default from room_types where hotel_id = $1")
            .bind(grand)
            .fetch_all(&app.pool)
            .await
            .expect("room types");
    assert_eq!(room_types, [("Standard".into(), 2, true)]);

    let seaside = app
        .post(
            "/hotels",
            json!({"name": "  Seaside  ", "timezone": "Asia/Tokyo",
                   "check_in_time": "15:30", "check_out_time": "10:00"}),
        )
        .await;
    assert_eq!(seaside.status, StatusCode::CREATED, "{}", seaside.body);
    assert_has(
        &seaside.body,
        json!({"name": "Seaside", "city": "", "timezone": "Asia/Tokyo",
               "check_in_time": "15:30", "check_out_time": "10:00"}),
    );
    assert_eq!(
        count_of(
            &app,
            "select count(*) from hotels
             where id = $1 and check_in_time = '15:30' and check_out_time = '10:00'",
            id_of(&seaside.body)
        )
        .await,
        1
    );

    let read = app.get(&format!("/hotels/{grand}")).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.body, created.body);

    let all = app.get("/hotels").await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(names(&all.body), ["Default hotel", "Grand", "Seaside"]);
    assert_has(&all.body, json!({"page": 1, "per_page": 20, "total": 3}));
    let paris = app.get("/hotels?city=Paris").await;
    assert_eq!(names(&paris.body), ["Grand"]);
    assert_eq!(paris.body["total"], 1);
    let second = app.get("/hotels?per_page=1&page=2").await;
    assert_eq!(names(&second.body), ["Grand"]);
    assert_has(&second.body, json!({"page": 2, "per_page": 1, "total": 3}));

    let moved = app
        .patch(
            &format!("/hotels/{grand}"),
            json!({"city": "Lyon", "check_out_time": "12:00"}),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.body);
    assert_has(
        &moved.body,
        json!({"id": grand, "name": "Grand", "city": "Lyon", "timezone": "Europe/Paris",
               "check_in_time": "14:00", "check_out_time": "12:00"}),
    );
    let renamed = app
        .patch(
            &format!("/hotels/{grand}"),
            json!({"name": "Grand Hotel", "timezone": "America/New_York"}),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    assert_has(
        &renamed.body,
        json!({"name": "Grand Hotel", "city": "Lyon", "timezone": "America/New_York"}),
    );
    let stored: (String, String, String, String) = sqlx::query_as(
        "select name, city, timezone, to_char(check_out_time, 'HH24:MI') from hotels where id = $1",
    )
    .bind(grand)
    .fetch_one(&app.pool)
    .await
    .expect("the hotel");
    assert_eq!(
        stored,
        (
            "Grand Hotel".into(),
            "Lyon".into(),
            "America/New_York".into(),
            "12:00".into()
        )
    );
}

#[tokio::test]
async fn refuses_bad_hotels_and_changes_nothing() {
    let app = TestApp::new().await;
    let grand = id_of(&app.create_hotel("Grand", "Paris", "Europe/Paris").await);
    let valid = json!({"name": "New", "city": "Nice", "timezone": "Europe/Paris"});
    let with = |key: &str, value: Value| {
        let mut body = valid.clone();
        body[key] = value;
        body
    };

    for zone in ["Mars/Olympus", "", "Paris"] {
        app.post("/hotels", with("timezone", json!(zone)))
            .await
            .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_timezone");
    }
    for (field, time) in [
        ("check_in_time", "25:00"),
        ("check_in_time", "14:60"),
        ("check_out_time", "2pm"),
        ("check_out_time", ""),
    ] {
        app.post("/hotels", with(field, json!(time)))
            .await
            .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    for name in ["", "   ", &"x".repeat(101)] {
        app.post("/hotels", with("name", json!(name)))
            .await
            .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    // A city may be empty, but it is checked as a name otherwise.
    for city in ["Ni\nce", "Nice\u{7}", &"x".repeat(101)] {
        let refused = app.post("/hotels", with("city", json!(city))).await;
        refused.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert!(
            refused.body["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("city")
        );
    }
    for body in [
        with("name", json!(5)),
        with("city", json!(["Nice"])),
        with("stars", json!(5)),
        json!({"name": "New", "city": "Nice"}),
    ] {
        app.post("/hotels", body)
            .await
            .assert_problem(StatusCode::BAD_REQUEST, "malformed_request");
    }
    app.send_raw(Method::POST, "/hotels", "{")
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "malformed_request");
    assert_eq!(app.count("select count(*) from hotels").await, 2);
    assert_eq!(app.count("select count(*) from room_types").await, 2);

    let path = format!("/hotels/{grand}");
    app.patch(
        &path,
        json!({"name": "Renamed", "timezone": "Nowhere/City"}),
    )
    .await
    .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_timezone");
    app.patch(&path, json!({"name": " "}))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    app.patch(&path, json!({"name": "Renamed", "city": "Ly\ron"}))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    app.patch(&path, json!({"name": "Renamed", "check_in_time": "24:00"}))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    app.patch(&path, json!({"name": "Renamed", "stars": 4}))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "malformed_request");
    app.patch(&path, json!({"name": 1}))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "malformed_request");
    let stored: (String, String, String, String) = sqlx::query_as(
        "select name, city, timezone, to_char(check_in_time, 'HH24:MI') from hotels where id = $1",
    )
    .bind(grand)
    .fetch_one(&app.pool)
    .await
    .expect("the hotel");
    assert_eq!(
        stored,
        (
            "Grand".into(),
            "Paris".into(),
            "Europe/Paris".into(),
            "14:00".into()
        )
    );

    let missing = format!("/hotels/{}", Uuid::new_v4());
    app.get(&missing)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.patch(&missing, json!({"name": "X"}))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.delete(&missing)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.get("/hotels/42")
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "malformed_request");
    app.get("/hotels?page=0")
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(app.count("select count(*) from hotels").await, 2);
}

#[tokio::test]
async fn manages_room_types() {
    let app = TestApp::new().await;
    let hotel = id_of(&app.create_hotel("Grand", "Paris", "Europe/Paris").await);
    let other = id_of(&app.create_hotel("Other", "Lyon", "Europe/Paris").await);
    let types = format!("/hotels/{hotel}/room-types");

    let created = app
        .post(&types, json!({"name": "Suite", "capacity": 4}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let suite = id_of(&created.body);
    assert_eq!(created.header("location"), format!("{types}/{suite}"));
    assert_has(
        &created.body,
        json!({"hotel_id": hotel, "name": "Suite", "capacity": 4}),
    );
    let listed = app.get(&types).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(names(&listed.body), ["Standard", "Suite"]);
    assert_eq!(listed.body["total"], 2);
    let standard = standard_room_type(&app, hotel).await;

    for capacity in [0, -1, 101] {
        app.post(&types, json!({"name": "Twin", "capacity": capacity}))
            .await
            .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    app.post(&types, json!({"name": " ", "capacity": 2}))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    for name in ["Suite", "Standard"] {
        app.post(&types, json!({"name": name, "capacity": 2}))
            .await
            .assert_problem(StatusCode::CONFLICT, "already_exists");
    }
    app.post(&types, json!({"name": "Twin", "capacity": "two"}))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "malformed_request");
    app.post(&types, json!({"name": "Twin", "capacity": 2, "beds": 2}))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "malformed_request");
    app.post(
        &format!("/hotels/{}/room-types", Uuid::new_v4()),
        json!({"name": "Twin", "capacity": 2}),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(
        count_of(
            &app,
            "select count(*) from room_types where hotel_id = $1",
            hotel
        )
        .await,
        2
    );
    // A name is unique within its hotel only.
    app.create_room_type(&other.to_string(), "Suite", 2).await;

    let suite_path = format!("{types}/{suite}");
    let changed = app
        .patch(&suite_path, json!({"name": "Junior suite", "capacity": 3}))
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    assert_has(
        &changed.body,
        json!({"id": suite, "hotel_id": hotel, "name": "Junior suite", "capacity": 3}),
    );
    let resized = app.patch(&suite_path, json!({"capacity": 2})).await;
    assert_has(
        &resized.body,
        json!({"name": "Junior suite", "capacity": 2}),
    );
    app.patch(&suite_path, json!({"name": "Standard"}))
        .await
        .assert_problem(StatusCode::CONFLICT, "already_exists");
    for capacity in [0, 101] {
        app.patch(&suite_path, json!({"capacity": capacity}))
            .await
            .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    app.patch(
        &format!("/hotels/{other}/room-types/{suite}"),
        json!({"capacity": 4}),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.patch(
        &format!("{types}/{}", Uuid::new_v4()),
        json!({"capacity": 4}),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
    let stored: (String, i32) =
        sqlx::query_as("select name, capacity from room_types where id = $1")
            .bind(suite)
            .fetch_one(&app.pool)
            .await
            .expect("the room type");
    assert_eq!(stored, ("Junior suite".into(), 2));

    app.delete(&format!("{types}/{standard}"))
        .await
        .assert_problem(StatusCode::CONFLICT, "default_resource");
    app.create_room_of(&hotel.to_string(), &suite.to_string(), "101")
        .await;
    app.delete(&suite_path)
        .await
        .assert_problem(StatusCode::CONFLICT, "in_use");
    app.delete(&format!("/hotels/{other}/room-types/{suite}"))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(
        count_of(
            &app,
            "select count(*) from room_types where hotel_id = $1",
            hotel
        )
        .await,
        2
    );

    let empty = id_of(&app.create_room_type(&hotel.to_string(), "Empty", 1).await);
    let plan = id_of(
        &app.create_rate_plan(&hotel.to_string(), "Flexible", Some(24))
            .await,
    );
    let (from, to) = (in_days(1).to_string(), in_days(4).to_string());
    app.put_rates(
        &hotel.to_string(),
        &empty.to_string(),
        &plan.to_string(),
        &from,
        &to,
        "80.00",
    )
    .await;
    let deleted = app.delete(&format!("{types}/{empty}")).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.body);
    assert_eq!(deleted.body, Value::Null);
    assert_eq!(
        count_of(&app, "select count(*) from room_types where id = $1", empty).await,
        0
    );
    assert_eq!(
        count_of(
            &app,
            "select count(*) from daily_rates where room_type_id = $1",
            empty
        )
        .await,
        0
    );
    assert_eq!(
        count_of(&app, "select count(*) from rate_plans where id = $1", plan).await,
        1
    );
    app.delete(&format!("{types}/{empty}"))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn manages_rate_plans() {
    let app = TestApp::new().await;
    let hotel = id_of(&app.create_hotel("Grand", "Paris", "Europe/Paris").await);
    let other = id_of(&app.create_hotel("Other", "Lyon", "Europe/Paris").await);
    let plans = format!("/hotels/{hotel}/rate-plans");

    let created = app
        .post(
            &plans,
            json!({"name": "Flexible", "free_cancellation_hours": 48}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let flexible = id_of(&created.body);
    assert_eq!(created.header("location"), format!("{plans}/{flexible}"));
    assert_has(
        &created.body,
        json!({"hotel_id": hotel, "name": "Flexible", "free_cancellation_hours": 48}),
    );
    let saver = app
        .post(
            &plans,
            json!({"name": "Saver", "free_cancellation_hours": null}),
        )
        .await;
    assert_eq!(saver.status, StatusCode::CREATED, "{}", saver.body);
    assert_has(
        &saver.body,
        json!({"name": "Saver", "free_cancellation_hours": null}),
    );
    let saver = id_of(&saver.body);
    let stored_plans = || async {
        sqlx::query_as::<_, (String, Option<i32>)>(
            "select name, free_cancellation_hours from rate_plans where hotel_id = $1 order by name",
        )
        .bind(hotel)
        .fetch_all(&app.pool)
        .await
        .expect("rate plans")
    };
    assert_eq!(
        stored_plans().await,
        [("Flexible".into(), Some(48)), ("Saver".into(), None)]
    );
    let listed = app.get(&plans).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(names(&listed.body), ["Flexible", "Saver"]);
    assert_eq!(listed.body["total"], 2);
    assert_eq!(
        listed.body["items"][1]["free_cancellation_hours"],
        Value::Null
    );

    for body in [
        json!({"name": "Late", "free_cancellation_hours": -1}),
        json!({"name": "", "free_cancellation_hours": 24}),
    ] {
        app.post(&plans, body)
            .await
            .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    app.post(
        &plans,
        json!({"name": "Flexible", "free_cancellation_hours": 24}),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "already_exists");
    for body in [
        json!({"name": "Late", "free_cancellation_hours": "48"}),
        json!({"name": "Late", "refundable": true}),
    ] {
        app.post(&plans, body)
            .await
            .assert_problem(StatusCode::BAD_REQUEST, "malformed_request");
    }
    app.post(
        &format!("/hotels/{}/rate-plans", Uuid::new_v4()),
        json!({"name": "Late", "free_cancellation_hours": 24}),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(stored_plans().await.len(), 2);

    let path = format!("{plans}/{flexible}");
    let refundable = app
        .patch(&path, json!({"free_cancellation_hours": null}))
        .await;
    assert_eq!(refundable.status, StatusCode::OK, "{}", refundable.body);
    assert_has(
        &refundable.body,
        json!({"id": flexible, "name": "Flexible", "free_cancellation_hours": null}),
    );
    let renamed = app.patch(&path, json!({"name": "Flex"})).await;
    assert_has(
        &renamed.body,
        json!({"name": "Flex", "free_cancellation_hours": null}),
    );
    let hours = app
        .patch(&path, json!({"free_cancellation_hours": 24}))
        .await;
    assert_has(
        &hours.body,
        json!({"name": "Flex", "free_cancellation_hours": 24}),
    );
    app.patch(&path, json!({"free_cancellation_hours": -5}))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    app.patch(&path, json!({"name": "Saver"}))
        .await
        .assert_problem(StatusCode::CONFLICT, "already_exists");
    app.patch(
        &format!("/hotels/{other}/rate-plans/{flexible}"),
        json!({"name": "Stolen"}),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(
        stored_plans().await,
        [("Flex".into(), Some(24)), ("Saver".into(), None)]
    );

    // Deleting a plan takes its rates along, unless a booking refers to it.
    let standard = standard_room_type(&app, hotel).await;
    let (from, to) = (in_days(1).to_string(), in_days(4).to_string());
    for plan in [flexible, saver] {
        app.put_rates(
            &hotel.to_string(),
            &standard.to_string(),
            &plan.to_string(),
            &from,
            &to,
            "70.00",
        )
        .await;
    }
    let room = id_of(
        &app.create_room_of(&hotel.to_string(), &standard.to_string(), "101")
            .await,
    );
    let user = id_of(&app.create_user("guest").await);
    insert_booking(
        &app,
        room,
        user,
        (in_days(1), in_days(3)),
        "confirmed",
        Some(flexible),
    )
    .await;

    let deleted = app.delete(&format!("{plans}/{saver}")).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.body);
    assert_eq!(
        count_of(&app, "select count(*) from rate_plans where id = $1", saver).await,
        0
    );
    assert_eq!(
        count_of(
            &app,
            "select count(*) from daily_rates where rate_plan_id = $1",
            saver
        )
        .await,
        0
    );
    app.delete(&format!("{plans}/{saver}"))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.delete(&format!("/hotels/{other}/rate-plans/{flexible}"))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.delete(&path)
        .await
        .assert_problem(StatusCode::CONFLICT, "in_use");
    assert_eq!(
        count_of(
            &app,
            "select count(*) from daily_rates where rate_plan_id = $1",
            flexible
        )
        .await,
        3
    );
    assert_eq!(stored_plans().await, [("Flex".into(), Some(24))]);
}

/// `(date, price)` of each item of a rates answer, by date; every item must be
/// of `room_type` and `plan`, in EUR, with the price a decimal string.
fn rate_items(body: &Value, room_type: Uuid, plan: Uuid) -> Vec<(String, String)> {
    let mut items: Vec<(String, String)> = body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| {
            assert_has(
                item,
                json!({"room_type_id": room_type, "rate_plan_id": plan, "currency": "EUR"}),
            );
            let date = item["date"].as_str().expect("a date").to_owned();
            let price = item["price"].as_str().expect("a decimal string");
            (date, price.to_owned())
        })
        .collect();
    items.sort();
    items
}

/// `(night, price)` for each of `days` (counted from today).
fn priced(days: impl IntoIterator<Item = u64>, price: &str) -> Vec<(String, String)> {
    days.into_iter()
        .map(|day| (in_days(day).to_string(), price.to_owned()))
        .collect()
}

#[tokio::test]
async fn upserts_and_reads_daily_rates() {
    let app = TestApp::new().await;
    let hotel = id_of(&app.create_hotel("Grand", "Paris", "Europe/Paris").await);
    let suite = id_of(&app.create_room_type(&hotel.to_string(), "Suite", 4).await);
    let plan = id_of(
        &app.create_rate_plan(&hotel.to_string(), "Flexible", Some(24))
            .await,
    );
    let rates = |from: NaiveDate, to: NaiveDate, price: &str| {
        json!({"room_type_id": suite, "rate_plan_id": plan, "from": from.to_string(),
               "to": to.to_string(), "price": price, "currency": "EUR"})
    };
    // Another hotel's rates on the same nights, which no answer about this hotel shows.
    let other = id_of(&app.create_hotel("Other", "Lyon", "Europe/Paris").await);
    let other_type = standard_room_type(&app, other).await;
    let other_plan = id_of(
        &app.create_rate_plan(&other.to_string(), "Other", None)
            .await,
    );
    let (from, to) = (in_days(30).to_string(), in_days(35).to_string());
    app.put_rates(
        &other.to_string(),
        &other_type.to_string(),
        &other_plan.to_string(),
        &from,
        &to,
        "10.00",
    )
    .await;

    let first = put_rates(&app, hotel, rates(in_days(30), in_days(33), "129.00")).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(
        rate_items(&first.body, suite, plan),
        priced(30..33, "129.00")
    );
    let second = put_rates(&app, hotel, rates(in_days(31), in_days(35), "99.5")).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert_eq!(
        rate_items(&second.body, suite, plan),
        priced(31..35, "99.50")
    );

    let mut expected = priced([30], "129.00");
    expected.extend(priced(31..35, "99.50"));
    let stored = || async {
        sqlx::query_as::<_, (NaiveDate, String, String, String)>(
            "select date, price::text, pg_typeof(price)::text, currency::text from daily_rates
             where room_type_id = $1 and rate_plan_id = $2 order by date",
        )
        .bind(suite)
        .bind(plan)
        .fetch_all(&app.pool)
        .await
        .expect("daily rates")
        .into_iter()
        .map(|(date, price, kind, currency)| {
            assert_eq!((kind.as_str(), currency.as_str()), ("numeric", "EUR"));
            (date.to_string(), price)
        })
        .collect::<Vec<_>>()
    };
    assert_eq!(stored().await, expected);

    let listed = app
        .get(&format!(
            "/hotels/{hotel}/rates?room_type_id={suite}&rate_plan_id={plan}&from={}&to={}",
            in_days(28),
            in_days(40)
        ))
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    assert_eq!(rate_items(&listed.body, suite, plan), expected);
    assert_eq!(listed.body["total"], 5);
    let unfiltered = app
        .get(&format!(
            "/hotels/{hotel}/rates?from={}&to={}",
            in_days(28),
            in_days(40)
        ))
        .await;
    assert_eq!(rate_items(&unfiltered.body, suite, plan), expected);
    let window = app
        .get(&format!(
            "/hotels/{hotel}/rates?room_type_id={suite}&from={}&to={}",
            in_days(31),
            in_days(33)
        ))
        .await;
    assert_eq!(
        rate_items(&window.body, suite, plan),
        priced(31..33, "99.50")
    );
    let last_page = app
        .get(&format!(
            "/hotels/{hotel}/rates?from={}&to={}&per_page=2&page=3",
            in_days(28),
            in_days(40)
        ))
        .await;
    assert_eq!(
        rate_items(&last_page.body, suite, plan),
        priced([34], "99.50")
    );
    assert_has(
        &last_page.body,
        json!({"page": 3, "per_page": 2, "total": 5}),
    );

    let (day, next) = (in_days(31), in_days(32));
    let mut invalid = vec![
        (rates(day, next, "-1.00"), "validation_failed"),
        (rates(day, next, "12.345"), "validation_failed"),
        // More than `numeric(12, 2)` holds.
        (rates(day, next, "10000000000.00"), "validation_failed"),
        (rates(day, day, "50.00"), "validation_failed"),
        (rates(next, day, "50.00"), "validation_failed"),
        (rates(day, in_days(31 + 366), "50.00"), "validation_failed"),
    ];
    for currency in ["eur", "EURO", ""] {
        let mut body = rates(day, next, "50.00");
        body["currency"] = json!(currency);
        invalid.push((body, "validation_failed"));
    }
    for (field, date) in [
        ("from", "2027-02-30"),
        ("to", "2027-13-01"),
        ("from", "31.12.27"),
    ] {
        let mut body = rates(day, next, "50.00");
        body[field] = json!(date);
        invalid.push((body, "invalid_date"));
    }
    for (field, id) in [
        ("room_type_id", other_type),
        ("rate_plan_id", other_plan),
        ("room_type_id", Uuid::new_v4()),
    ] {
        let mut body = rates(day, next, "50.00");
        body[field] = json!(id);
        invalid.push((body, "validation_failed"));
    }
    for (body, code) in invalid {
        put_rates(&app, hotel, body)
            .await
            .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, code);
    }
    for (field, value) in [
        ("price", json!("abc")),
        ("price", Value::Null),
        ("room_type_id", json!("x")),
        ("discount", json!(5)),
    ] {
        let mut body = rates(day, next, "50.00");
        body[field] = value;
        put_rates(&app, hotel, body)
            .await
            .assert_problem(StatusCode::BAD_REQUEST, "malformed_request");
    }
    put_rates(&app, Uuid::new_v4(), rates(day, next, "50.00"))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(stored().await, expected);
    assert_eq!(app.count("select count(*) from daily_rates").await, 10);

    let read = |query: String| {
        let app = &app;
        async move { app.get(&format!("/hotels/{hotel}/rates?{query}")).await }
    };
    read(format!("from={day}&to={day}"))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    read(format!("from=2027-02-30&to={day}"))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_date");
    read(format!("from={day}"))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "malformed_request");
    app.get(&format!(
        "/hotels/{}/rates?from={day}&to={next}",
        Uuid::new_v4()
    ))
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
}

/// A hotel with a room type, a room, a rate plan and three priced nights.
async fn furnished_hotel(app: &TestApp, name: &str) -> (Uuid, Uuid) {
    let hotel = id_of(&app.create_hotel(name, "Paris", "Europe/Paris").await);
    let (hotel_text, from, to) = (hotel.to_string(), in_days(1), in_days(4));
    let double = id_of(&app.create_room_type(&hotel_text, "Double", 2).await);
    let room = id_of(
        &app.create_room_of(&hotel_text, &double.to_string(), "101")
            .await,
    );
    let plan = id_of(
        &app.create_rate_plan(&hotel_text, "Flexible", Some(24))
            .await,
    );
    app.put_rates(
        &hotel_text,
        &double.to_string(),
        &plan.to_string(),
        &from.to_string(),
        &to.to_string(),
        "90.00",
    )
    .await;
    (hotel, room)
}

/// Rows in `hotels`, `room_types`, `rooms`, `rate_plans`, `daily_rates`, `bookings`.
async fn table_counts(app: &TestApp) -> [i64; 6] {
    [
        app.count("select count(*) from hotels").await,
        app.count("select count(*) from room_types").await,
        app.count("select count(*) from rooms").await,
        app.count("select count(*) from rate_plans").await,
        app.count("select count(*) from daily_rates").await,
        app.count("select count(*) from bookings").await,
    ]
}

#[tokio::test]
async fn deletes_a_hotel_with_its_inventory_unless_bookings_refer_to_it() {
    let app = TestApp::new().await;
    let default: Uuid = sqlx::query_scalar("select id from hotels where is_default")
        .fetch_one(&app.pool)
        .await
        .expect("the default hotel");
    let (free, _) = furnished_hotel(&app, "Free").await;
    let (booked, room) = furnished_hotel(&app, "Booked").await;
    let user = id_of(&app.create_user("guest").await);
    // Even a cancelled booking keeps what it refers to.
    insert_booking(
        &app,
        room,
        user,
        (in_days(1), in_days(2)),
        "cancelled",
        None,
    )
    .await;
    // The default hotel (+ Standard); two hotels with Standard and Double, a room,
    // a plan and three rates each; one booking.
    assert_eq!(table_counts(&app).await, [3, 5, 2, 2, 6, 1]);

    app.delete(&format!("/hotels/{default}"))
        .await
        .assert_problem(StatusCode::CONFLICT, "default_resource");
    app.delete(&format!("/hotels/{booked}"))
        .await
        .assert_problem(StatusCode::CONFLICT, "in_use");
    assert_eq!(table_counts(&app).await, [3, 5, 2, 2, 6, 1]);
    assert_eq!(
        app.get(&format!("/hotels/{booked}")).await.status,
        StatusCode::OK
    );

    let deleted = app.delete(&format!("/hotels/{free}")).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.body);
    assert_eq!(deleted.body, Value::Null);
    assert_eq!(table_counts(&app).await, [2, 3, 1, 1, 3, 1]);
    for sql in [
        "select count(*) from hotels where id = $1",
        "select count(*) from room_types where hotel_id = $1",
        "select count(*) from rooms where hotel_id = $1",
        "select count(*) from rate_plans where hotel_id = $1",
    ] {
        assert_eq!(count_of(&app, sql, free).await, 0, "{sql}");
    }
    app.get(&format!("/hotels/{free}"))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.delete(&format!("/hotels/{free}"))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
}

// ---------------------------------------------------------------------------
// The search, against a generated data set and a brute-force answer.

const CITIES: [&str; 3] = ["Paris", "Lyon", "Nice"];
const STATUSES: [&str; 5] = [
    "confirmed",
    "checked_in",
    "checked_out",
    "cancelled",
    "no_show",
];
/// Rates are set for nights `[0, RATED_NIGHTS)` counted from [`night`]`(0)`.
const RATED_NIGHTS: i64 = 14;

/// A night counted from a week after today, so the data set never goes stale.
fn night(offset: i64) -> NaiveDate {
    in_days(7) + TimeDelta::days(offset)
}

/// A small deterministic pseudo-random sequence (an LCG): the same data set on every run.
struct Sequence(u64);

impl Sequence {
    fn below(&mut self, bound: i64) -> i64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        i64::try_from(self.0 >> 33).expect("31 bits") % bound
    }
}

/// Eight hotels in three cities; room types of capacity 1 to 4 (and the
/// default one) with 0 to 2 rooms each; two rate plans priced for most
/// nights, some nights left out and some re-priced by a second PUT; bookings
/// of every status, some cancelled ones overlapping live ones.
async fn build_inventory(app: &TestApp) {
    let mut random = Sequence(2024);
    let user = id_of(&app.create_user("guest").await);
    for h in 0..8 {
        let name = format!("Hotel {h}");
        let hotel = id_of(&app.create_hotel(&name, CITIES[h % 3], "Europe/Paris").await);
        let hotel_text = hotel.to_string();
        let mut plans = Vec::new();
        for (plan, hours) in [("Flexible", Some(24)), ("Saver", None)] {
            plans.push(id_of(&app.create_rate_plan(&hotel_text, plan, hours).await));
        }
        let mut types = vec![(standard_room_type(app, hotel).await, 2)];
        for (name, capacity) in [("Single", 1), ("Double", 2), ("Triple", 3), ("Family", 4)] {
            if random.below(4) > 0 {
                let room_type = app.create_room_type(&hotel_text, name, capacity).await;
                types.push((id_of(&room_type), capacity));
            }
        }
        for (t, &(room_type, capacity)) in types.iter().enumerate() {
            for &plan in &plans {
                if random.below(6) > 0 {
                    let nights = Rated {
                        hotel,
                        room_type,
                        plan,
                        capacity: capacity.into(),
                    };
                    nights.price(app, &mut random).await;
                }
            }
            for n in 0..random.below(3) {
                let room = app
                    .create_room_of(&hotel_text, &room_type.to_string(), &format!("{t}-{n}"))
                    .await;
                book_randomly(app, &mut random, id_of(&room), user).await;
            }
        }
    }
}

/// The nights of one room type under one rate plan.
struct Rated {
    hotel: Uuid,
    room_type: Uuid,
    plan: Uuid,
    capacity: i64,
}

impl Rated {
    /// Prices nights `[0, RATED_NIGHTS)`, a third of the time leaving one out,
    /// then re-prices up to two nights (which may fill the gap).
    async fn price(&self, app: &TestApp, random: &mut Sequence) {
        let base = self.random_price(random);
        let gap = match random.below(3) {
            0 => random.below(RATED_NIGHTS),
            _ => RATED_NIGHTS,
        };
        for (from, to) in [(0, gap), (gap + 1, RATED_NIGHTS)] {
            if from < to {
                self.put(app, from, to, &base).await;
            }
        }
        for _ in 0..random.below(3) {
            let offset = random.below(RATED_NIGHTS);
            let price = self.random_price(random);
            self.put(app, offset, offset + 1, &price).await;
        }
    }

    fn random_price(&self, random: &mut Sequence) -> String {
        let euros = 40 + 20 * self.capacity + random.below(50);
        format!("{euros}.{:02}", random.below(100))
    }

    async fn put(&self, app: &TestApp, from: i64, to: i64, price: &str) {
        app.put_rates(
            &self.hotel.to_string(),
            &self.room_type.to_string(),
            &self.plan.to_string(),
            &night(from).to_string(),
            &night(to).to_string(),
            price,
        )
        .await;
    }
}

fn is_live(status: &str) -> bool {
    !matches!(status, "cancelled" | "no_show")
}

/// Up to three bookings of a room around the rated nights, of any status; a
/// live one that would overlap a live one is stored cancelled instead.
async fn book_randomly(app: &TestApp, random: &mut Sequence, room: Uuid, user: Uuid) {
    let mut live: Vec<(NaiveDate, NaiveDate)> = Vec::new();
    for _ in 0..random.below(4) {
        let check_in = night(random.below(RATED_NIGHTS + 2) - 1);
        let check_out = check_in + TimeDelta::days(1 + random.below(4));
        let mut status = STATUSES[usize::try_from(random.below(5)).expect("an index")];
        if is_live(status) {
            if live
                .iter()
                .any(|&(start, end)| start < check_out && check_in < end)
            {
                status = "cancelled";
            } else {
                live.push((check_in, check_out));
            }
        }
        insert_booking(app, room, user, (check_in, check_out), status, None).await;
    }
}

#[derive(sqlx::FromRow)]
struct HotelRow {
    id: Uuid,
    name: String,
    city: String,
    timezone: String,
}

impl HotelRow {
    /// Whether a stay from `check_in` begins before today at the hotel.
    fn in_the_past(&self, check_in: NaiveDate) -> bool {
        let zone: chrono_tz::Tz = self.timezone.parse().expect("a time zone");
        check_in < Utc::now().with_timezone(&zone).date_naive()
    }
}

#[derive(sqlx::FromRow)]
struct RoomTypeRow {
    id: Uuid,
    hotel_id: Uuid,
    name: String,
    capacity: i32,
}

#[derive(sqlx::FromRow)]
struct RoomRow {
    id: Uuid,
    room_type_id: Uuid,
}

#[derive(sqlx::FromRow)]
struct RatePlanRow {
    id: Uuid,
    hotel_id: Uuid,
    name: String,
}

#[derive(sqlx::FromRow)]
struct RateRow {
    room_type_id: Uuid,
    rate_plan_id: Uuid,
    date: NaiveDate,
    price: Decimal,
    currency: String,
}

#[derive(sqlx::FromRow)]
struct BookingRow {
    room_id: Uuid,
    check_in: NaiveDate,
    check_out: NaiveDate,
    status: String,
}

type Stay = (NaiveDate, NaiveDate);

/// What the brute force counts as blocking a room and as a priced stay.
/// [`Rules::SPEC`] is the specification; the others are wrong on purpose, to
/// show that the data set tells them apart from it.
#[derive(Clone, Copy)]
struct Rules {
    cancelled_blocks: bool,
    missing_nights_ok: bool,
}

impl Rules {
    const SPEC: Rules = Rules {
        cancelled_blocks: false,
        missing_nights_ok: false,
    };
    const CANCELLED_BLOCKS: Rules = Rules {
        cancelled_blocks: true,
        missing_nights_ok: false,
    };
    const MISSING_NIGHTS_OK: Rules = Rules {
        cancelled_blocks: false,
        missing_nights_ok: true,
    };
}

/// The rows the search depends on, read back with plain SQL.
struct Snapshot {
    hotels: Vec<HotelRow>,
    room_types: Vec<RoomTypeRow>,
    rooms: Vec<RoomRow>,
    rate_plans: Vec<RatePlanRow>,
    /// `(room type, rate plan, night)` → price.
    rates: HashMap<(Uuid, Uuid, NaiveDate), Decimal>,
    bookings: Vec<BookingRow>,
}

async fn rows<T>(app: &TestApp, sql: &'static str) -> Vec<T>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    sqlx::query_as(sql).fetch_all(&app.pool).await.expect(sql)
}

impl Snapshot {
    async fn load(app: &TestApp) -> Snapshot {
        let rates: Vec<RateRow> = rows(
            app,
            "select room_type_id, rate_plan_id, date, price, currency::text as currency
             from daily_rates",
        )
        .await;
        assert!(rates.iter().all(|rate| rate.currency == "EUR"));
        Snapshot {
            hotels: rows(app, "select id, name, city, timezone from hotels").await,
            room_types: rows(app, "select id, hotel_id, name, capacity from room_types").await,
            rooms: rows(app, "select id, room_type_id from rooms").await,
            rate_plans: rows(app, "select id, hotel_id, name from rate_plans").await,
            rates: rates
                .into_iter()
                .map(|rate| {
                    (
                        (rate.room_type_id, rate.rate_plan_id, rate.date),
                        rate.price,
                    )
                })
                .collect(),
            bookings: rows(
                app,
                "select room_id, lower(stay) as check_in, upper(stay) as check_out,
                        status::text as status
                 from bookings",
            )
            .await,
        }
    }

    fn room_is_free(&self, room: Uuid, (check_in, check_out): Stay, rules: Rules) -> bool {
        !self.bookings.iter().any(|booking| {
            booking.room_id == room
                && booking.check_in < check_out
                && check_in < booking.check_out
                && (rules.cancelled_blocks || is_live(&booking.status))
        })
    }

    fn rooms_free(&self, room_type: Uuid, stay: Stay, rules: Rules) -> usize {
        self.rooms
            .iter()
            .filter(|room| {
                room.room_type_id == room_type && self.room_is_free(room.id, stay, rules)
            })
            .count()
    }

    /// The price of each night of the stay, or `None` when one has no rate.
    fn nightly(
        &self,
        room_type: Uuid,
        plan: Uuid,
        (check_in, check_out): Stay,
        rules: Rules,
    ) -> Option<Vec<(NaiveDate, Decimal)>> {
        let nights: Vec<NaiveDate> = check_in
            .iter_days()
            .take_while(|night| *night < check_out)
            .collect();
        let prices: Vec<(NaiveDate, Decimal)> = nights
            .iter()
            .filter_map(|&night| Some((night, *self.rates.get(&(room_type, plan, night))?)))
            .collect();
        let priced = prices.len() == nights.len() || rules.missing_nights_ok;
        (priced && !prices.is_empty()).then_some(prices)
    }

    /// Room types of a hotel holding `guests`, and its rate plans.
    fn offers_of(&self, hotel: Uuid, guests: i32) -> (Vec<&RoomTypeRow>, Vec<&RatePlanRow>) {
        let types = self
            .room_types
            .iter()
            .filter(|room_type| room_type.hotel_id == hotel && room_type.capacity >= guests)
            .collect();
        let plans = self
            .rate_plans
            .iter()
            .filter(|plan| plan.hotel_id == hotel)
            .collect();
        (types, plans)
    }

    fn cheapest_total(
        &self,
        hotel: Uuid,
        stay: Stay,
        guests: i32,
        rules: Rules,
    ) -> Option<Decimal> {
        let (types, plans) = self.offers_of(hotel, guests);
        types
            .into_iter()
            .filter(|room_type| self.rooms_free(room_type.id, stay, rules) > 0)
            .flat_map(|room_type| {
                plans
                    .iter()
                    .filter_map(|plan| self.nightly(room_type.id, plan.id, stay, rules))
                    .collect::<Vec<_>>()
            })
            .map(|prices| prices.iter().map(|(_, price)| price).sum())
            .min()
    }

    /// The search's answer: hotel → cheapest total.
    fn search(
        &self,
        city: Option<&str>,
        stay: Stay,
        guests: i32,
        rules: Rules,
    ) -> BTreeMap<Uuid, Decimal> {
        self.hotels
            .iter()
            .filter(|hotel| city.is_none_or(|city| hotel.city == city))
            .filter(|hotel| !hotel.in_the_past(stay.0))
            .filter_map(|hotel| {
                let total = self.cheapest_total(hotel.id, stay, guests, rules)?;
                Some((hotel.id, total))
            })
            .collect()
    }

    /// A hotel's availability in the API's shape.
    fn availability(&self, hotel: Uuid, stay: Stay, guests: i32, rules: Rules) -> Value {
        let (types, plans) = self.offers_of(hotel, guests);
        let items: Vec<Value> = types
            .into_iter()
            .map(|room_type| {
                let rates: Vec<Value> = plans
                    .iter()
                    .filter_map(|plan| {
                        let prices = self.nightly(room_type.id, plan.id, stay, rules)?;
                        let total: Decimal = prices.iter().map(|(_, price)| price).sum();
                        let nightly: Vec<Value> = prices
                            .iter()
                            .map(|(date, price)| {
                                json!({"date": date.to_string(), "price": price.to_string()})
                            })
                            .collect();
                        Some(json!({"rate_plan_id": plan.id, "name": plan.name,
                                    "total": total.to_string(), "currency": "EUR",
                                    "nightly": nightly}))
                    })
                    .collect();
                json!({"room_type_id": room_type.id, "name": room_type.name,
                       "capacity": room_type.capacity,
                       "rooms_free": self.rooms_free(room_type.id, stay, rules),
                       "rates": rates})
            })
            .collect();
        Value::Array(items)
    }
}

/// The search answer as hotel → cheapest total, checking on the way that
/// each item is in EUR, carries its hotel's fields and comes in order of price.
fn search_offers(snapshot: &Snapshot, body: &Value) -> BTreeMap<Uuid, String> {
    let items = body["items"].as_array().expect("items");
    let mut previous = Decimal::MIN;
    items
        .iter()
        .map(|item| {
            let id = id_of(item);
            let hotel = snapshot
                .hotels
                .iter()
                .find(|hotel| hotel.id == id)
                .expect("a known hotel");
            assert_has(
                item,
                json!({"name": hotel.name, "city": hotel.city, "currency": "EUR"}),
            );
            let total = item["cheapest_total"]
                .as_str()
                .expect("a decimal string")
                .to_owned();
            let price: Decimal = total.parse().expect("a decimal");
            assert!(previous <= price, "not ordered by price: {body}");
            previous = price;
            (id, total)
        })
        .collect()
}

fn search_path(city: Option<&str>, (check_in, check_out): Stay, guests: i32) -> String {
    let city = city.map(|city| format!("&city={city}")).unwrap_or_default();
    format!("/hotels?check_in={check_in}&check_out={check_out}&guests={guests}{city}&per_page=100")
}

fn as_strings(offers: BTreeMap<Uuid, Decimal>) -> BTreeMap<Uuid, String> {
    offers
        .into_iter()
        .map(|(hotel, total)| (hotel, total.to_string()))
        .collect()
}

#[tokio::test]
async fn search_matches_a_brute_force_answer() {
    let app = TestApp::new().await;
    build_inventory(&app).await;
    let snapshot = Snapshot::load(&app).await;

    let (mut offers_found, mut cancelled_matter, mut missing_nights_matter) = (0, false, false);
    for city in [None, Some("Paris"), Some("Lyon"), Some("Nice")] {
        for start in [-1, 0, 1, 3, 6, 9, 12, 13] {
            for nights in [1, 2, 4] {
                for guests in 1..=5 {
                    let stay = (night(start), night(start + nights));
                    let path = search_path(city, stay, guests);
                    let response = app.get(&path).await;
                    assert_eq!(response.status, StatusCode::OK, "{path}: {}", response.body);
                    let expected = snapshot.search(city, stay, guests, Rules::SPEC);
                    assert_eq!(response.body["total"], expected.len(), "{path}");
                    assert_eq!(
                        search_offers(&snapshot, &response.body),
                        as_strings(expected.clone()),
                        "{path}"
                    );
                    offers_found += expected.len();
                    cancelled_matter |=
                        snapshot.search(city, stay, guests, Rules::CANCELLED_BLOCKS) != expected;
                    missing_nights_matter |=
                        snapshot.search(city, stay, guests, Rules::MISSING_NIGHTS_OK) != expected;
                }
            }
        }
    }
    assert!(
        offers_found > 0 && cancelled_matter && missing_nights_matter,
        "the data set must exercise the rules: {offers_found} offers, \
         cancelled bookings matter: {cancelled_matter}, missing nights matter: {missing_nights_matter}"
    );
}

#[tokio::test]
async fn search_pages_through_the_offers() {
    let app = TestApp::new().await;
    build_inventory(&app).await;
    let stay = (night(2), night(4));
    let all = app.get(&search_path(None, stay, 1)).await;
    let all_items = all.body["items"].as_array().expect("items").clone();
    assert!(all_items.len() > 3, "{}", all.body);

    let mut paged = Vec::new();
    for page in 1.. {
        let path = format!(
            "/hotels?check_in={}&check_out={}&per_page=3&page={page}",
            stay.0, stay.1
        );
        let response = app.get(&path).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.body);
        assert_has(
            &response.body,
            json!({"page": page, "per_page": 3, "total": all_items.len()}),
        );
        let items = response.body["items"].as_array().expect("items");
        if items.is_empty() {
            break;
        }
        paged.extend(items.iter().cloned());
    }
    assert_eq!(paged, all_items);
}

#[tokio::test]
async fn search_refuses_bad_stays() {
    let app = TestApp::new().await;
    let hotel = id_of(&app.create_hotel("Grand", "Paris", "Europe/Paris").await);
    let (day, next) = (in_days(10), in_days(11));
    for query in [
        format!("check_in={day}"),
        format!("check_out={next}&city=Paris"),
    ] {
        app.get(&format!("/hotels?{query}"))
            .await
            .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    for base in [
        "/hotels?".to_owned(),
        format!("/hotels/{hotel}/availability?"),
    ] {
        for (check_in, check_out) in [(day, day), (next, day)] {
            app.get(&format!("{base}check_in={check_in}&check_out={check_out}"))
                .await
                .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_stay");
        }
        app.get(&format!("{base}check_in=2027-02-30&check_out={next}"))
            .await
            .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_date");
        app.get(&format!("{base}check_in={day}&check_out={next}&guests=0"))
            .await
            .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        app.get(&format!("{base}check_in={day}&check_out={next}&guests=two"))
            .await
            .assert_problem(StatusCode::BAD_REQUEST, "malformed_request");
    }
    app.get(&format!("/hotels/{hotel}/availability?check_in={day}"))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "malformed_request");
    app.get(&format!(
        "/hotels/{}/availability?check_in={day}&check_out={next}",
        Uuid::new_v4()
    ))
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
}

/// Availability items with only the specified fields, sorted by id, so that
/// the API's answer and the brute force compare whatever their order.
fn canonical_availability(items: &Value) -> Vec<Value> {
    let mut types: Vec<Value> = items
        .as_array()
        .expect("items")
        .iter()
        .map(|room_type| {
            let mut rates: Vec<Value> = room_type["rates"]
                .as_array()
                .expect("rates")
                .iter()
                .map(|rate| {
                    let nightly: Vec<Value> = rate["nightly"]
                        .as_array()
                        .expect("nightly prices")
                        .iter()
                        .map(|night| json!({"date": night["date"], "price": night["price"]}))
                        .collect();
                    json!({"rate_plan_id": rate["rate_plan_id"], "name": rate["name"],
                           "total": rate["total"], "currency": rate["currency"],
                           "nightly": nightly})
                })
                .collect();
            rates.sort_by_key(|rate| rate["rate_plan_id"].to_string());
            json!({"room_type_id": room_type["room_type_id"], "name": room_type["name"],
                   "capacity": room_type["capacity"], "rooms_free": room_type["rooms_free"],
                   "rates": rates})
        })
        .collect();
    types.sort_by_key(|room_type| room_type["room_type_id"].to_string());
    types
}

#[tokio::test]
async fn availability_matches_a_brute_force_answer() {
    let app = TestApp::new().await;
    build_inventory(&app).await;
    let snapshot = Snapshot::load(&app).await;

    let (mut rates_found, mut cancelled_matter, mut missing_nights_matter) = (0, false, false);
    for hotel in &snapshot.hotels {
        for (start, nights) in [(-1, 2), (0, 1), (2, 3), (5, 4), (12, 3)] {
            for guests in 1..=5 {
                let (check_in, check_out) = (night(start), night(start + nights));
                let path = format!(
                    "/hotels/{}/availability?check_in={check_in}&check_out={check_out}&guests={guests}",
                    hotel.id
                );
                let response = app.get(&path).await;
                assert_eq!(response.status, StatusCode::OK, "{path}: {}", response.body);
                let stay = (check_in, check_out);
                let expected = snapshot.availability(hotel.id, stay, guests, Rules::SPEC);
                let expected = canonical_availability(&expected);
                assert_eq!(
                    canonical_availability(&response.body["items"]),
                    expected,
                    "{path}"
                );
                rates_found += expected
                    .iter()
                    .map(|room_type| room_type["rates"].as_array().map_or(0, Vec::len))
                    .sum::<usize>();
                let with = |rules| {
                    canonical_availability(&snapshot.availability(hotel.id, stay, guests, rules))
                };
                cancelled_matter |= with(Rules::CANCELLED_BLOCKS) != expected;
                missing_nights_matter |= with(Rules::MISSING_NIGHTS_OK) != expected;
            }
        }
    }
    assert!(
        rates_found > 0 && cancelled_matter && missing_nights_matter,
        "the data set must exercise the rules: {rates_found} rates, \
         cancelled bookings matter: {cancelled_matter}, missing nights matter: {missing_nights_matter}"
    );
}

/// A stay that begins before today at the hotel (yesterday in UTC is always
/// before today in Paris) is not offered by the search, and the hotel's
/// availability refuses it as a booking of it would be refused; so is a stay
/// beyond the booking horizon.
#[tokio::test]
async fn stays_nobody_could_book_are_not_offered() {
    let app = TestApp::new().await;
    let hotel = id_of(&app.create_hotel("Grand", "Paris", "Europe/Paris").await);
    let hotel_text = hotel.to_string();
    let double = id_of(&app.create_room_type(&hotel_text, "Double", 2).await);
    app.create_room_of(&hotel_text, &double.to_string(), "101")
        .await;
    let plan = id_of(
        &app.create_rate_plan(&hotel_text, "Flexible", Some(24))
            .await,
    );
    let yesterday = Utc::now().date_naive() - Days::new(1);
    app.put_rates(
        &hotel_text,
        &double.to_string(),
        &plan.to_string(),
        &yesterday.to_string(),
        &in_days(5).to_string(),
        "90.00",
    )
    .await;
    let search = |from: NaiveDate, to: NaiveDate| {
        format!("/hotels?city=Paris&check_in={from}&check_out={to}")
    };
    let past = app.get(&search(yesterday, in_days(1))).await;
    assert_eq!(past.status, StatusCode::OK, "{}", past.body);
    assert_eq!(past.body["total"], 0, "{}", past.body);
    let ahead = app.get(&search(in_days(1), in_days(3))).await;
    assert_eq!(ahead.body["total"], 1, "{}", ahead.body);

    let availability = |from: NaiveDate, to: NaiveDate| {
        format!("/hotels/{hotel}/availability?check_in={from}&check_out={to}")
    };
    app.get(&availability(yesterday, in_days(1)))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "date_in_past");
    app.get(&availability(in_days(800), in_days(801)))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "beyond_horizon");
    let offered = app.get(&availability(in_days(1), in_days(3))).await;
    assert_eq!(offered.status, StatusCode::OK, "{}", offered.body);
    assert_eq!(
        offered.body["items"][0]["rooms_free"], 1,
        "{}",
        offered.body
    );
}
