//! `/users`: create, list, read, change, delete; passwords never come back.

use crate::helpers::TestApp;
use axum::http::{Method, StatusCode};
use chrono::{Days, Utc};
use serde_json::json;

#[tokio::test]
async fn creates_users_with_a_hashed_password() {
    let app = TestApp::new().await;
    let response = app
        .post("/users", json!({"name": "alice", "email": "alice@example.com", "role": "staff", "password": "correct horse"}))
        .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
    let id = response.body["id"].as_str().expect("an id");
    assert_eq!(response.header("location"), format!("/users/{id}"));
    assert_eq!(response.body["name"], "alice");
    assert_eq!(response.body["email"], "alice@example.com");
    assert_eq!(response.body["role"], "staff");
    let text = response.body.to_string();
    assert!(
        !text.contains("password") && !text.contains("correct horse") && !text.contains("argon2")
    );

    let hash: String = sqlx::query_scalar("select password_hash from users where id = $1::uuid")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .expect("the user is stored");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains("correct horse"));

    let plain = app.post("/users", json!({"name": "bob"})).await;
    assert_eq!(plain.status, StatusCode::CREATED);
    assert_eq!(plain.body["role"], "guest");
    assert_eq!(plain.body["email"], serde_json::Value::Null);
    assert_eq!(
        app.count("select count(*) from users where name = 'bob' and password_hash is null")
            .await,
        1
    );
}

#[tokio::test]
async fn refuses_bad_users_and_stores_nothing() {
    let app = TestApp::new().await;
    app.create_user("alice").await;
    app.post("/users", json!({"name": "alice"}))
        .await
        .assert_problem(StatusCode::CONFLICT, "already_exists");
    for body in [
        json!({"name": ""}),
        json!({"name": "x".repeat(101)}),
        json!({"name": "carol", "email": "no-at-sign"}),
        json!({"name": "carol", "email": "two@@example.com"}),
        json!({"name": "carol", "password": ""}),
        json!({"name": "carol", "password": "short"}),
    ] {
        app.post("/users", body)
            .await
            .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    for body in [
        json!({"name": "carol", "role": "emperor"}),
        json!({"name": 5}),
        json!({}),
    ] {
        app.post("/users", body)
            .await
            .assert_problem(StatusCode::BAD_REQUEST, "malformed_request");
    }
    app.send_raw(Method::POST, "/users", "nope")
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "malformed_request");
    assert_eq!(
        app.count("select count(*) from users where name <> 'admin'")
            .await,
        1
    );
}

#[tokio::test]
async fn lists_reads_and_changes_users() {
    let app = TestApp::new().await;
    for name in ["carol", "alice", "bob"] {
        app.create_user(name).await;
    }
    // The harness's admin is a user too.
    let list = app.get("/users?per_page=2&page=1").await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body["total"], 4);
    assert_eq!(list.body["per_page"], 2);
    let names: Vec<&str> = list.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|u| u["name"].as_str())
        .collect();
    assert_eq!(names, ["admin", "alice"]);

    let alice = &list.body["items"][1];
    let id = alice["id"].as_str().expect("an id");
    let read = app.get(&format!("/users/{id}")).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(&read.body, alice);

    let changed = app
        .patch(
            &format!("/users/{id}"),
            json!({"email": "a@example.com", "role": "admin"}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    assert_eq!(changed.body["email"], "a@example.com");
    assert_eq!(changed.body["role"], "admin");
    assert_eq!(changed.body["name"], "alice");

    let cleared = app
        .patch(&format!("/users/{id}"), json!({"email": null}))
        .await;
    assert_eq!(cleared.body["email"], serde_json::Value::Null);
    assert_eq!(cleared.body["role"], "admin");

    app.patch(&format!("/users/{id}"), json!({"name": "bob"}))
        .await
        .assert_problem(StatusCode::CONFLICT, "already_exists");
    app.patch(&format!("/users/{id}"), json!({"password": "x"}))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let missing = uuid::Uuid::new_v4();
    app.patch(&format!("/users/{missing}"), json!({"name": "zed"}))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.get(&format!("/users/{missing}"))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");

    let (name, email, role, hash): (String, Option<String>, String, Option<String>) =
        sqlx::query_as(
            "select name, email, role::text, password_hash from users where id = $1::uuid",
        )
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .expect("alice");
    assert_eq!(
        (name.as_str(), email, role.as_str(), hash),
        ("alice", None, "admin", None)
    );
}

#[tokio::test]
async fn deletes_a_user_unless_bookings_refer_to_it() {
    let app = TestApp::new().await;
    let idle = app.create_user("idle").await;
    let booker = app.create_user("booker").await;
    app.create_room("ROOM1").await;
    let date = (Utc::now().date_naive() + Days::new(1))
        .format("%d.%m.%y")
        .to_string();
    let booked = app
        .post(
            "/book",
            json!({"room_name": "ROOM1", "user_name": "booker", "date": date}),
        )
        .await;
    assert_eq!(booked.status, StatusCode::CREATED);

    let path = format!("/users/{}", idle["id"].as_str().expect("id"));
    assert_eq!(app.delete(&path).await.status, StatusCode::NO_CONTENT);
    app.delete(&path)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");

    app.delete(&format!("/users/{}", booker["id"].as_str().expect("id")))
        .await
        .assert_problem(StatusCode::CONFLICT, "in_use");
    assert_eq!(
        app.count("select count(*) from users where name <> 'admin'")
            .await,
        1
    );
    assert_eq!(app.count("select count(*) from bookings").await, 1);
}

const ADMINS: &str = "select count(*) from users where role = 'admin'";

/// The only admin can neither give up its role nor delete itself: nobody
/// could administer the service afterwards. With a second admin it can.
#[tokio::test]
async fn the_last_admin_keeps_its_role_and_its_record() {
    let app = TestApp::new().await;
    let me = format!("/users/{}", app.admin_id());
    for role in ["guest", "staff"] {
        app.patch(&me, json!({ "role": role }))
            .await
            .assert_problem(StatusCode::CONFLICT, "last_admin");
    }
    app.delete(&me)
        .await
        .assert_problem(StatusCode::CONFLICT, "last_admin");
    assert_eq!(app.count(ADMINS).await, 1);
    // A change that keeps the role is no demotion.
    let renamed = app
        .patch(&me, json!({ "role": "admin", "name": "root" }))
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);

    let (other, _) = app
        .user_with_role("second", room_booking::domain::Role::Admin)
        .await;
    let demoted = app.patch(&me, json!({ "role": "staff" })).await;
    assert_eq!(demoted.status, StatusCode::OK, "{}", demoted.body);
    assert_eq!(app.count(ADMINS).await, 1);
    // The remaining admin is the last one now.
    let token = app
        .keys
        .mint(other, room_booking::domain::Role::Admin, 0)
        .expect("a token");
    app.request_as(
        Some(&token),
        Method::DELETE,
        &format!("/users/{other}"),
        None,
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "last_admin");
    assert_eq!(app.count(ADMINS).await, 1);
}

/// Two admins demoting each other at once: one of them stays an admin.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_admins_demoting_each_other_at_once_leave_one() {
    let app = TestApp::new().await;
    let base = app.serve().await;
    let client = reqwest::Client::new();
    for round in 0..10 {
        let (one, one_token) = app
            .user_with_role(&format!("one{round}"), room_booking::domain::Role::Admin)
            .await;
        let (two, two_token) = app
            .user_with_role(&format!("two{round}"), room_booking::domain::Role::Admin)
            .await;
        // The harness's admin steps down first, so that these two are the last.
        sqlx::query("update users set role = 'staff' where role = 'admin' and id <> all($1)")
            .bind(vec![one, two])
            .execute(&app.pool)
            .await
            .expect("leave two admins");
        let demote = |token: String, target: uuid::Uuid| {
            client
                .patch(format!("{base}/users/{target}"))
                .bearer_auth(token)
                .json(&json!({ "role": "guest" }))
                .send()
        };
        let (first, second) = tokio::join!(demote(one_token, two), demote(two_token, one));
        let mut statuses = [
            first.expect("answered").status().as_u16(),
            second.expect("answered").status().as_u16(),
        ];
        statuses.sort_unstable();
        assert_eq!(app.count(ADMINS).await, 1, "round {round}: {statuses:?}");
        // The other is refused: as the last admin's demotion (409), or,
        // arriving after it was demoted itself, for its ended token (401)
        // or its role (403).
        assert!(
            statuses[0] == 200 && [401, 403, 409].contains(&statuses[1]),
            "round {round}: {statuses:?}"
        );
    }
}
