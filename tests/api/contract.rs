//! The API as a contract: what schemathesis (`.ci/schemathesis.sh`) found
//! where the service and `GET /openapi.json` disagreed, each case pinned here.

use crate::helpers::TestApp;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};

/// serde reads a struct from a JSON array of its fields too: `[null, null]`
/// was a valid `PATCH /rooms/{id}` that changed nothing and answered `200`.
/// Every body of the API is an object; anything else is `400`.
#[tokio::test]
async fn bodies_must_be_json_objects() {
    let app = TestApp::new().await;
    let room = app.create_room("ROOM1").await;
    let room_path = format!("/rooms/{}", room["id"].as_str().expect("an id"));

    for body in [
        "[null, null]",
        r#"["ROOM2", null]"#,
        "[]",
        "null",
        "7",
        r#""ROOM2""#,
    ] {
        app.send_raw(Method::PATCH, &room_path, body)
            .await
            .assert_problem(StatusCode::BAD_REQUEST, "malformed_request");
        app.send_raw(Method::POST, "/hotels", body)
            .await
            .assert_problem(StatusCode::BAD_REQUEST, "malformed_request");
    }
    app.send_raw(Method::POST, "/book", r#"["ROOM1", "admin", "2099-01-01"]"#)
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "malformed_request");

    assert_eq!(app.get(&room_path).await.body["name"], "ROOM1");
    assert_eq!(
        app.count("select count(*) from hotels where not is_default")
            .await,
        0
    );
    assert_eq!(app.count("select count(*) from bookings").await, 0);

    // An object, with white space before it, is still read.
    let renamed = app
        .send_raw(Method::PATCH, &room_path, " \n\t{\"name\": \"ROOM2\"}")
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    assert_eq!(renamed.body["name"], "ROOM2");
}

/// JSON Schema's `integer` includes `2.0`: the document promised it, the
/// service answered `400` for `{"capacity": 2.0}`. Whole numbers written
/// with a fraction are read as integers; `2.5` is still refused.
#[tokio::test]
async fn integers_may_be_written_with_a_zero_fraction() {
    let app = TestApp::new().await;
    let hotel = app
        .create_hotel("Hotel du Nord", "Paris", "Europe/Paris")
        .await;
    let hotel = hotel["id"].as_str().expect("an id");

    let created = app
        .post(
            &format!("/hotels/{hotel}/room-types"),
            json!({"name": "Double", "capacity": 2.0}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["capacity"], 2);
    let room_type = created.body["id"].as_str().expect("an id");

    let changed = app
        .patch(
            &format!("/hotels/{hotel}/room-types/{room_type}"),
            json!({"capacity": 3.0}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    assert_eq!(changed.body["capacity"], 3);

    let plan = app
        .post(
            &format!("/hotels/{hotel}/rate-plans"),
            json!({"name": "Flexible", "free_cancellation_hours": 48.0}),
        )
        .await;
    assert_eq!(plan.status, StatusCode::CREATED, "{}", plan.body);
    assert_eq!(plan.body["free_cancellation_hours"], 48);
    let plan_path = format!(
        "/hotels/{hotel}/rate-plans/{}",
        plan.body["id"].as_str().expect("an id")
    );
    let changed = app
        .patch(&plan_path, json!({"free_cancellation_hours": 24.0}))
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    assert_eq!(changed.body["free_cancellation_hours"], 24);
    // `null` still makes it non-refundable, and absence changes nothing.
    let changed = app
        .patch(&plan_path, json!({"free_cancellation_hours": null}))
        .await;
    assert_eq!(changed.body["free_cancellation_hours"], Value::Null);
    let renamed = app.patch(&plan_path, json!({"name": "Saver"})).await;
    assert_eq!(renamed.body["free_cancellation_hours"], Value::Null);

    let stored: (i32, Option<i32>) = sqlx::query_as(
        "select rt.capacity, rp.free_cancellation_hours
         from room_types rt, rate_plans rp
         where rt.id = $1::uuid and rp.id = $2::uuid",
    )
    .bind(room_type)
    .bind(plan.body["id"].as_str())
    .fetch_one(&app.pool)
    .await
    .expect("both are stored");
    assert_eq!(stored, (3, None));

    for capacity in [json!(2.5), json!(1e10), json!(-3e9), json!("2")] {
        app.post(
            &format!("/hotels/{hotel}/room-types"),
            json!({"name": "Triple", "capacity": capacity}),
        )
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "malformed_request");
    }
    app.patch(&plan_path, json!({"free_cancellation_hours": 0.5}))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "malformed_request");
    assert_eq!(
        app.count("select count(*) from room_types where name = 'Triple'")
            .await,
        0
    );
}

/// `guests` is 1 to 100, as documented: `GET /hotels?guests=0` without dates
/// used to ignore it and answer `200`.
#[tokio::test]
async fn the_hotel_list_checks_guests_without_dates_too() {
    let app = TestApp::new().await;
    for guests in ["0", "101", "-1"] {
        app.get(&format!("/hotels?guests={guests}"))
            .await
            .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    let listed = app.get("/hotels?guests=2").await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    assert_eq!(listed.body["total"], 1);
}

/// Pages are 1 to 1,000,000, as the document says; a page past the end of
/// the list is empty. `page=9223372036854775806` was refused although the
/// document allowed any page from 1.
#[tokio::test]
async fn pages_are_bounded_as_documented() {
    let app = TestApp::new().await;
    for path in ["/rooms", "/users", "/hotels", "/bookings"] {
        let last = app.get(&format!("{path}?page=1000000&per_page=100")).await;
        assert_eq!(last.status, StatusCode::OK, "{path}: {}", last.body);
        assert_eq!(last.body["items"], json!([]), "{path}");
        assert_eq!(last.body["page"], 1_000_000);
        for page in ["1000001", "9223372036854775806", "0"] {
            app.get(&format!("{path}?page={page}"))
                .await
                .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        }
    }
    let document = app.get("/openapi.json").await.body;
    let page = &document["paths"]["/rooms"]["get"]["parameters"][0];
    assert_eq!(page["name"], "page");
    assert_eq!(page["schema"]["minimum"], 1);
    assert_eq!(page["schema"]["maximum"], 1_000_000);
}

/// An empty `Idempotency-Key` is `400`, as it was; the document now says which
/// keys are valid (it described any string, or even `null`).
#[tokio::test]
async fn the_document_states_which_idempotency_keys_are_valid() {
    let app = TestApp::new().await;
    let document = app.get("/openapi.json").await.body;
    let operations = [
        ("/book", "post"),
        ("/bookings", "post"),
        ("/bookings/{id}", "patch"),
        ("/bookings/{id}", "delete"),
        ("/bookings/{id}/check-in", "post"),
        ("/bookings/{id}/check-out", "post"),
        ("/bookings/{id}/no-show", "post"),
    ];
    for (path, method) in operations {
        let parameters = document["paths"][path][method]["parameters"]
            .as_array()
            .expect("parameters");
        let key = parameters
            .iter()
            .find(|parameter| parameter["name"] == "Idempotency-Key")
            .unwrap_or_else(|| panic!("{method} {path} documents Idempotency-Key"));
        assert_eq!(key["in"], "header");
        assert_eq!(key["required"], false);
        assert_eq!(key["schema"]["type"], "string", "{method} {path}");
        assert!(key["schema"]["pattern"].is_string(), "{method} {path}");
    }

    let room = app.create_room("ROOM7").await;
    app.create_user("user3").await;
    for key in ["", "\"\"", "caf\u{e9}", &"k".repeat(256)] {
        let request = Request::builder()
            .method(Method::POST)
            .uri("/book")
            .header("authorization", format!("Bearer {}", app.admin_token()))
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .body(Body::from(
                json!({"room_name": "ROOM7", "user_name": "user3", "date": "2099-01-01"})
                    .to_string(),
            ))
            .expect("a request");
        app.send(request)
            .await
            .assert_problem(StatusCode::BAD_REQUEST, "malformed_request");
    }
    assert_eq!(app.count("select count(*) from bookings").await, 0);
    assert_eq!(room["name"], "ROOM7");
}

/// The document's constraints for what the rules check alone: dates are
/// `format: date`, names, prices and currencies have patterns, counts have
/// bounds. Schemathesis generates from these; each was a `422` or `400`
/// for a request the document called valid.
#[tokio::test]
async fn the_document_states_the_shape_of_values() {
    let app = TestApp::new().await;
    let document = app.get("/openapi.json").await.body;
    let schemas = &document["components"]["schemas"];
    assert!(schemas["Name"]["pattern"].is_string());
    assert_eq!(
        schemas["NewRoom"]["properties"]["name"]["$ref"],
        "#/components/schemas/Name"
    );
    for (schema, field) in [
        ("NewBookingRequest", "check_in"),
        ("NewBookingRequest", "check_out"),
        ("BookingChangeRequest", "check_in"),
        ("RatesRequest", "from"),
        ("RatesRequest", "to"),
    ] {
        assert_eq!(
            schemas[schema]["properties"][field]["format"], "date",
            "{schema}.{field}"
        );
    }
    let rates = &schemas["RatesRequest"]["properties"];
    assert_eq!(rates["currency"]["pattern"], "^[A-Z]{3}$");
    assert!(rates["price"]["pattern"].is_string());
    assert_eq!(
        schemas["NewRoomType"]["properties"]["capacity"]["maximum"],
        100
    );
    assert_eq!(
        schemas["NewBookingRequest"]["properties"]["guests"]["minimum"],
        1
    );
    let password = &schemas["Credentials"]["properties"]["password"];
    assert_eq!(
        (password["minLength"].clone(), password["maxLength"].clone()),
        (json!(8), json!(256))
    );

    // A price the pattern refuses is refused by the service too.
    let hotel = app
        .create_hotel("Hotel du Nord", "Paris", "Europe/Paris")
        .await;
    let hotel = hotel["id"].as_str().expect("an id");
    let room_type = app.create_room_type(hotel, "Double", 2).await;
    let plan = app.create_rate_plan(hotel, "Flexible", Some(48)).await;
    for (price, status) in [
        ("", StatusCode::BAD_REQUEST),
        ("cheap", StatusCode::BAD_REQUEST),
        ("-1.00", StatusCode::UNPROCESSABLE_ENTITY),
        ("1.001", StatusCode::UNPROCESSABLE_ENTITY),
        ("10000000000.00", StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let body = json!({
            "room_type_id": room_type["id"], "rate_plan_id": plan["id"],
            "from": "2099-01-01", "to": "2099-01-02", "price": price, "currency": "EUR",
        });
        let response = app
            .request(Method::PUT, &format!("/hotels/{hotel}/rates"), Some(body))
            .await;
        assert_eq!(response.status, status, "{price}: {}", response.body);
    }
    assert_eq!(app.count("select count(*) from daily_rates").await, 0);
}
