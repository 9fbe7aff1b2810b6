//! The published contract: `GET /openapi.json` is OpenAPI 3.1, documents
//! every route the Router serves and nothing else, and gives every problem
//! answer the `Problem` schema.

use std::collections::BTreeSet;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use room_booking::Limits;
use room_booking::routes::api;
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::helpers::{METHODS, TestApp, document, documented};

/// A concrete path for a templated one: every parameter a fresh UUID.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                uuid::Uuid::new_v4().to_string()
            } else {
                segment.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn the_document_is_openapi_3_1_with_the_bearer_scheme_and_problems() {
    let app = TestApp::new().await;
    let document = document(&app).await;
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let codes = document["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .expect("the codes are listed");
    for code in [
        "room_already_booked",
        "date_in_past",
        "not_found",
        "validation_failed",
    ] {
        assert!(codes.contains(&Value::from(code)), "{code}");
    }
    let book = &document["paths"]["/book"]["post"];
    assert!(book["requestBody"]["content"]["application/json"]["example"].is_object());
    assert_eq!(book["security"][0]["bearer"], serde_json::json!([]));
    for status in ["201", "400", "401", "404", "409", "422", "503"] {
        assert!(
            book["responses"][status].is_object(),
            "/book answers {status}"
        );
    }
    assert_eq!(
        book["responses"]["409"]["content"]["application/problem+json"]["schema"]["$ref"],
        "#/components/schemas/Problem"
    );
    // Public routes carry no security requirement; private ones do.
    assert!(
        document["paths"]["/auth/token"]["post"]
            .get("security")
            .is_none()
    );
    assert!(document["paths"]["/bookings"]["post"]["security"].is_array());
    // Operation ids are unique.
    let mut ids = BTreeSet::new();
    for item in document["paths"].as_object().expect("paths").values() {
        for method in METHODS {
            if let Some(operation) = item.get(method) {
                let id = operation["operationId"].as_str().expect("an id").to_owned();
                assert!(ids.insert(id.clone()), "duplicate operationId {id}");
            }
        }
    }
}

/// Routes reach the app only through `routes::api`, where utoipa-axum's
/// `routes!` gives each handler its route and its operation at once. The
/// document served is the one that router declares, and the running Router
/// serves, at each of its paths, exactly the documented methods: a method it
/// does not serve answers 405 with the served ones in `Allow`.
#[tokio::test]
async fn every_served_route_is_documented_and_every_documented_one_served() {
    let app = TestApp::new().await;
    let document = document(&app).await;
    let (_, declared) = api(&Limits::default(), Arc::new(Semaphore::new(1))).split_for_parts();
    let declared = serde_json::to_value(&declared).expect("a JSON document");
    assert_eq!(documented(&declared), documented(&document));
    assert!(
        documented(&document).len() >= 30,
        "{:?}",
        documented(&document)
    );
    for (path, item) in document["paths"].as_object().expect("paths") {
        let request = Request::builder()
            .method(Method::TRACE)
            .uri(concrete(path))
            .body(Body::empty())
            .expect("a request");
        let response = app.send(request).await;
        response.assert_problem(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
        let allowed: BTreeSet<String> = response
            .header("allow")
            .split(',')
            .map(|method| method.trim().to_lowercase())
            .filter(|method| method != "head")
            .collect();
        let described: BTreeSet<String> = METHODS
            .iter()
            .filter(|method| item.get(**method).is_some())
            .map(|method| method.to_string())
            .collect();
        assert_eq!(allowed, described, "{path}");
    }
}

#[tokio::test]
async fn an_unknown_method_answers_a_problem_with_allow() {
    let app = TestApp::new().await;
    let response = app
        .request(Method::PUT, "/book", Some(serde_json::json!({})))
        .await;
    response.assert_problem(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    assert_eq!(response.header("allow"), "POST");
    let unknown = app.get("/no/such/path").await;
    unknown.assert_problem(StatusCode::NOT_FOUND, "not_found");
}

/// Every `oneOf` in `value`, with its place in the document.
fn one_ofs(value: &Value, at: String, found: &mut Vec<(String, Vec<Value>)>) {
    match value {
        Value::Object(fields) => {
            if let Some(Value::Array(alternatives)) = fields.get("oneOf") {
                found.push((at.clone(), alternatives.clone()));
            }
            for (key, field) in fields {
                one_ofs(field, format!("{at}/{key}"), found);
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                one_ofs(item, format!("{at}/{index}"), found);
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn every_one_of_has_alternatives_no_value_matches_at_once() {
    // A value that matches two alternatives of a `oneOf` fails it. The only
    // alternatives exclusive by construction here are `null` and one schema
    // (an optional field). A search's offer has every field of a hotel, so
    // `GET /hotels` answers items of `anyOf` the two.
    let app = TestApp::new().await;
    let document = document(&app).await;
    let mut found = Vec::new();
    one_ofs(&document, String::new(), &mut found);
    assert!(
        !found.is_empty(),
        "the optional fields are `oneOf` null and a schema"
    );
    for (at, alternatives) in found {
        let nulls = alternatives
            .iter()
            .filter(|alternative| alternative["type"] == "null")
            .count();
        assert!(
            alternatives.len() == 2 && nulls == 1,
            "{at}: oneOf {alternatives:?} is not null against one schema"
        );
    }
    let item = &document["components"]["schemas"]["HotelListItem"];
    assert_eq!(
        item["anyOf"],
        serde_json::json!([
            { "$ref": "#/components/schemas/HotelBody" },
            { "$ref": "#/components/schemas/HotelOfferBody" },
        ])
    );
}
