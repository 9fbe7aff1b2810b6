//! `/rooms`: create, list with pagination, read, change, delete.

use crate::helpers::TestApp;
use axum::http::{Method, StatusCode};
use chrono::{Days, Utc};
use serde_json::json;

#[tokio::test]
async fn creates_a_room_in_the_default_hotel() {
    let app = TestApp::new().await;
    let response = app.post("/rooms", json!({"name": "ROOM1"})).await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
    let id = response.body["id"].as_str().expect("an id");
    assert_eq!(response.header("location"), format!("/rooms/{id}"));
    assert_eq!(response.body["name"], "ROOM1");

    let (hotel_default, type_default): (bool, bool) = sqlx::query_as(
        "select h.is_default, rt.is_default from rooms r
         join hotels h on h.id = r.hotel_id join room_types rt on rt.id = r.room_type_id
         where r.id = $1::uuid and r.name = 'ROOM1'",
    )
    .bind(id)
    .fetch_one(&app.pool)
    .await
    .expect("the room is stored");
    assert!(hotel_default && type_default);
    assert!(response.body["hotel_id"].is_string() && response.body["room_type_id"].is_string());

    let read = app.get(&format!("/rooms/{id}")).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.body, response.body);
}

#[tokio::test]
async fn refuses_bad_rooms_and_stores_nothing() {
    let app = TestApp::new().await;
    app.create_room("ROOM1").await;

    let duplicate = app.post("/rooms", json!({"name": "ROOM1"})).await;
    duplicate.assert_problem(StatusCode::CONFLICT, "already_exists");

    for name in ["", "   ", &"x".repeat(101)] {
        app.post("/rooms", json!({"name": name}))
            .await
            .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    let unknown = uuid::Uuid::new_v4();
    app.post("/rooms", json!({"name": "ROOM2", "hotel_id": unknown}))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    app.post("/rooms", json!({"name": "ROOM2", "room_type_id": unknown}))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");

    app.post("/rooms", json!({"title": "ROOM2"}))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "malformed_request");
    app.post("/rooms", json!({"name": "ROOM2", "hotel_id": "not-a-uuid"}))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "malformed_request");
    app.send_raw(Method::POST, "/rooms", "{")
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "malformed_request");

    assert_eq!(app.count("select count(*) from rooms").await, 1);
}

#[tokio::test]
async fn lists_rooms_page_by_page() {
    let app = TestApp::new().await;
    for n in 0..25 {
        app.create_room(&format!("ROOM{n:02}")).await;
    }
    let first = app.get("/rooms").await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.body["page"], 1);
    assert_eq!(first.body["per_page"], 20);
    assert_eq!(first.body["total"], 25);
    assert_eq!(first.body["items"].as_array().map(Vec::len), Some(20));
    assert_eq!(first.body["items"][0]["name"], "ROOM00");

    let second = app.get("/rooms?page=2&per_page=20").await;
    let names: Vec<&str> = second.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|room| room["name"].as_str())
        .collect();
    assert_eq!(names, ["ROOM20", "ROOM21", "ROOM22", "ROOM23", "ROOM24"]);

    let beyond = app.get("/rooms?page=9").await;
    assert_eq!(beyond.body["items"], json!([]));
    assert_eq!(beyond.body["total"], 25);

    for query in ["per_page=101", "per_page=0", "page=0"] {
        app.get(&format!("/rooms?{query}"))
            .await
            .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    app.get("/rooms?page=first")
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "malformed_request");
}

#[tokio::test]
async fn renames_a_room() {
    let app = TestApp::new().await;
    let room = app.create_room("ROOM1").await;
    let id = room["id"].as_str().expect("an id");
    app.create_room("ROOM2").await;

    let renamed = app
        .patch(&format!("/rooms/{id}"), json!({"name": "ROOM9"}))
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    assert_eq!(renamed.body["name"], "ROOM9");
    assert_eq!(renamed.body["room_type_id"], room["room_type_id"]);

    app.patch(&format!("/rooms/{id}"), json!({"name": "ROOM2"}))
        .await
        .assert_problem(StatusCode::CONFLICT, "already_exists");
    app.patch(&format!("/rooms/{id}"), json!({"name": ""}))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    app.patch(
        &format!("/rooms/{id}"),
        json!({"room_type_id": uuid::Uuid::new_v4()}),
    )
    .await
    .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let missing = uuid::Uuid::new_v4();
    app.patch(&format!("/rooms/{missing}"), json!({"name": "X"}))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");

    let names: Vec<String> = sqlx::query_scalar("select name from rooms order by name")
        .fetch_all(&app.pool)
        .await
        .expect("rooms");
    assert_eq!(names, ["ROOM2", "ROOM9"]);
}

#[tokio::test]
async fn reading_an_unknown_or_malformed_id() {
    let app = TestApp::new().await;
    let missing = uuid::Uuid::new_v4();
    app.get(&format!("/rooms/{missing}"))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.get("/rooms/42")
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "malformed_request");
}

#[tokio::test]
async fn deletes_a_room_unless_bookings_refer_to_it() {
    let app = TestApp::new().await;
    let free = app.create_room("FREE").await;
    let booked = app.create_room("BOOKED").await;
    app.create_user("user1").await;
    let date = (Utc::now().date_naive() + Days::new(1))
        .format("%d.%m.%y")
        .to_string();
    let booking = app
        .post(
            "/book",
            json!({"room_name": "BOOKED", "user_name": "user1", "date": date}),
        )
        .await;
    assert_eq!(booking.status, StatusCode::CREATED);

    let deleted = app
        .delete(&format!("/rooms/{}", free["id"].as_str().expect("id")))
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(deleted.body, serde_json::Value::Null);
    app.delete(&format!("/rooms/{}", free["id"].as_str().expect("id")))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");

    app.delete(&format!("/rooms/{}", booked["id"].as_str().expect("id")))
        .await
        .assert_problem(StatusCode::CONFLICT, "in_use");
    assert_eq!(
        app.count("select count(*) from rooms where name = 'BOOKED'")
            .await,
        1
    );
    assert_eq!(
        app.count("select count(*) from rooms where name = 'FREE'")
            .await,
        0
    );
    assert_eq!(app.count("select count(*) from bookings").await, 1);
}
