//! The OpenAPI 3.1 description of the API, generated from the handlers'
//! `#[utoipa::path]` attributes and the wire types' schemas, served at
//! `GET /openapi.json`.
//!
//! Every error answer is an RFC 9457 problem document: the operations list
//! their own problem statuses with a description, and [`document`] gives each
//! of them the `application/problem+json` content and adds the ones every
//! operation can answer (`400`, `401` where a token is needed, `413`/`415`
//! with a body, `500`, `503`).

use std::sync::LazyLock;

use serde_json::{Value, json};
use utoipa::OpenApi;

use crate::error::{ErrorCode, Problem};
use crate::handlers::{auth, book, bookings, health, hotels, rooms, users};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "room-booking",
        description = "Book hotel rooms: no room is ever sold twice for the same night.",
        license(name = "MIT", identifier = "MIT"),
    ),
    paths(
        health::health, health::ready, health::metrics, health::openapi,
        auth::register, auth::token,
        book::book,
        rooms::list, rooms::create, rooms::get, rooms::update, rooms::delete,
        users::list, users::create, users::get, users::update, users::delete,
        hotels::list, hotels::create, hotels::get, hotels::update, hotels::delete,
        hotels::availability,
        hotels::list_room_types, hotels::create_room_type, hotels::update_room_type, hotels::delete_room_type,
        hotels::list_rate_plans, hotels::create_rate_plan, hotels::update_rate_plan, hotels::delete_rate_plan,
        hotels::list_rates, hotels::put_rates,
        bookings::list, bookings::create, bookings::get, bookings::update, bookings::cancel,
        bookings::check_in, bookings::check_out, bookings::no_show, bookings::invoice,
    ),
    components(schemas(Problem, ErrorCode)),
    tags(
        (name = "book", description = "The seed-compatible booking of one night"),
        (name = "bookings", description = "Priced stays, their changes, cancellation and life cycle"),
        (name = "hotels", description = "Hotels, room types, rate plans, rates and the search"),
        (name = "rooms", description = "Rooms"),
        (name = "users", description = "Users and roles"),
        (name = "auth", description = "Registration and access tokens"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
    ),
)]
struct ApiDoc;

static DOCUMENT: LazyLock<Value> = LazyLock::new(build);
static DOCUMENT_JSON: LazyLock<String> =
    LazyLock::new(|| serde_json::to_string(&*DOCUMENT).unwrap_or_default());

/// The OpenAPI document.
pub fn document() -> &'static Value {
    &DOCUMENT
}

/// The OpenAPI document as JSON text.
pub fn document_json() -> &'static str {
    &DOCUMENT_JSON
}

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

fn build() -> Value {
    let mut document = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    document["components"]["securitySchemes"]["bearer"] = json!({
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An access token from POST /auth/token (or `room-booking token NAME`)",
    });
    if let Some(paths) = document["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            for method in METHODS {
                if let Some(operation) = item.get_mut(method) {
                    complete_operation(method, path, operation);
                }
            }
        }
    }
    link_created_resources(&mut document);
    require_a_room_type_or_a_room(&mut document);
    document
}

/// `POST /bookings` takes a room type or a room, one of them not `null`, and
/// not both (`422` otherwise): the schema says so too, so that clients and
/// generated requests can tell a valid stay from the start.
fn require_a_room_type_or_a_room(document: &mut Value) {
    let given =
        |field: &str| json!({ "properties": { field: { "type": "string" } }, "required": [field] });
    let request = &mut document["components"]["schemas"]["NewBookingRequest"];
    if request.is_object() {
        request["anyOf"] = json!([given("room_type_id"), given("room_id")]);
        request["not"] = json!({ "allOf": [given("room_type_id"), given("room_id")] });
    }
}

/// What each `POST` creates (its `201`), as the path of the created resource,
/// whose last parameter is the new row's `id`.
const CREATED: [(&str, &str); 7] = [
    ("/book", "/bookings/{id}"),
    ("/bookings", "/bookings/{id}"),
    ("/hotels", "/hotels/{id}"),
    (
        "/hotels/{id}/room-types",
        "/hotels/{id}/room-types/{room_type_id}",
    ),
    (
        "/hotels/{id}/rate-plans",
        "/hotels/{id}/rate-plans/{rate_plan_id}",
    ),
    ("/rooms", "/rooms/{id}"),
    ("/users", "/users/{id}"),
];

/// A created resource is what the operations on its path (and below it,
/// with no other parameter) take: OpenAPI links say so, for clients and for
/// schemathesis's stateful phase (which cannot guess it from `/book`). The
/// new row's id comes from the answer's `id`, the others from the request's
/// path (a room type's hotel).
fn link_created_resources(document: &mut Value) {
    for (creator, resource) in CREATED {
        let links = links_to(document, resource);
        let created = &mut document["paths"][creator]["post"]["responses"]["201"];
        if created.is_object() && !links.is_empty() {
            created["links"] = Value::Object(links);
        }
    }
}

fn links_to(document: &Value, resource: &str) -> serde_json::Map<String, Value> {
    let names = path_parameters(resource);
    let mut parameters = serde_json::Map::new();
    for (index, name) in names.iter().enumerate() {
        let source = if index + 1 == names.len() {
            "$response.body#/id".to_owned()
        } else {
            format!("$request.path.{name}")
        };
        parameters.insert((*name).to_owned(), Value::String(source));
    }
    let mut links = serde_json::Map::new();
    let Some(paths) = document["paths"].as_object() else {
        return links;
    };
    let below = format!("{resource}/");
    let on_it = paths.iter().filter(|(path, _)| {
        (*path == resource || path.starts_with(&below)) && path_parameters(path) == names
    });
    for (_, item) in on_it {
        let operations = METHODS.iter().filter_map(|method| item.get(*method));
        for id in operations.filter_map(|operation| operation["operationId"].as_str()) {
            links.insert(
                id.to_owned(),
                json!({ "operationId": id, "parameters": parameters }),
            );
        }
    }
    links
}

/// The names of a path's `{parameters}`, in order.
fn path_parameters(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .collect()
}

/// Names the operation after its method and path, and gives every problem
/// status its problem document.
fn complete_operation(method: &str, path: &str, operation: &mut Value) {
    operation["operationId"] = Value::String(operation_id(method, path));
    let secured = operation
        .get("security")
        .and_then(Value::as_array)
        .is_some_and(|security| !security.is_empty());
    let has_body = operation.get("requestBody").is_some();
    let mut common = vec![
        (
            "400",
            "Malformed request: a body, query, path id or header that cannot be read, a body that is not a JSON object, or a string holding a NUL character, which PostgreSQL text cannot store (`malformed_request`)",
        ),
        (
            "500",
            "Internal error (`internal_error`); the cause is logged, never sent",
        ),
        (
            "503",
            "The database is unreachable or the request ran out of time (`service_unavailable`, `Retry-After`)",
        ),
    ];
    if secured {
        common.push(("401", "No token, or not a valid one (`unauthorized`)"));
    }
    if has_body {
        common.push(("413", "The body is too large (`payload_too_large`)"));
        common.push((
            "415",
            "The body is not `application/json` (`unsupported_media_type`)",
        ));
    }
    let Some(responses) = operation["responses"].as_object_mut() else {
        return;
    };
    for (status, description) in common {
        responses
            .entry(status)
            .or_insert_with(|| json!({ "description": description }));
    }
    for (status, response) in responses.iter_mut() {
        let is_problem = status.starts_with('4') || status.starts_with('5');
        if is_problem && response.get("content").is_none() {
            response["content"] = json!({
                "application/problem+json": {
                    "schema": { "$ref": "#/components/schemas/Problem" }
                }
            });
        }
        if matches!(status.as_str(), "503" | "429") {
            response["headers"]["retry-after"] = json!({
                "description": "Seconds to wait before trying again",
                "schema": { "type": "integer" }
            });
        }
    }
}

/// `get /hotels/{id}/room-types` becomes `get_hotels_id_room_types`.
fn operation_id(method: &str, path: &str) -> String {
    let words: Vec<String> = path
        .split(['/', '-', '.'])
        .filter(|word| !word.is_empty())
        .map(|word| word.trim_matches(|c| c == '{' || c == '}').to_owned())
        .collect();
    format!("{method}_{}", words.join("_"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_ids_follow_method_and_path() {
        assert_eq!(
            operation_id("get", "/hotels/{id}/room-types"),
            "get_hotels_id_room_types"
        );
        assert_eq!(operation_id("get", "/openapi.json"), "get_openapi_json");
    }

    #[test]
    fn created_resources_link_to_their_operations() {
        let document = document();
        let links =
            |creator: &str| document["paths"][creator]["post"]["responses"]["201"]["links"].clone();
        for creator in ["/book", "/bookings"] {
            let links = links(creator);
            let cancel = &links["delete_bookings_id"];
            assert_eq!(cancel["operationId"], "delete_bookings_id", "{creator}");
            assert_eq!(cancel["parameters"], json!({ "id": "$response.body#/id" }));
            assert!(links["post_bookings_id_check_in"].is_object(), "{creator}");
            assert!(links["get_bookings_id_invoice"].is_object(), "{creator}");
        }
        let hotel = links("/hotels");
        assert_eq!(
            hotel["put_hotels_id_rates"]["parameters"],
            json!({ "id": "$response.body#/id" })
        );
        assert!(hotel["post_hotels_id_room_types"].is_object());
        // Operations that need another id than the new hotel's are not linked.
        assert!(
            hotel
                .get("patch_hotels_id_room_types_room_type_id")
                .is_none()
        );
        let room_type = links("/hotels/{id}/room-types");
        assert_eq!(
            room_type["delete_hotels_id_room_types_room_type_id"]["parameters"],
            json!({ "id": "$request.path.id", "room_type_id": "$response.body#/id" })
        );
        assert!(
            links("/hotels/{id}/rate-plans")["patch_hotels_id_rate_plans_rate_plan_id"].is_object()
        );
        assert!(links("/rooms")["delete_rooms_id"].is_object());
        assert!(links("/users")["get_users_id"].is_object());
    }

    #[test]
    fn a_new_booking_names_a_room_type_or_a_room_not_both() {
        let document = document();
        let request = &document["components"]["schemas"]["NewBookingRequest"];
        let given = |field: &str| json!({ "properties": { field: { "type": "string" } }, "required": [field] });
        assert_eq!(
            request["anyOf"],
            json!([given("room_type_id"), given("room_id")])
        );
        assert_eq!(
            request["not"]["allOf"],
            json!([given("room_type_id"), given("room_id")])
        );
    }

    #[test]
    fn every_problem_answer_is_a_problem_document() {
        let document = document();
        assert_eq!(document["openapi"], "3.1.0");
        let paths = document["paths"].as_object().expect("paths");
        assert!(paths.len() >= 20);
        for (path, item) in paths {
            for method in METHODS {
                let Some(operation) = item.get(method) else {
                    continue;
                };
                let responses = operation["responses"].as_object().expect("responses");
                for (status, response) in responses {
                    if status.starts_with('4') || status.starts_with('5') {
                        assert!(
                            response["content"]["application/problem+json"].is_object(),
                            "{method} {path} {status}"
                        );
                    }
                }
            }
        }
    }
}
