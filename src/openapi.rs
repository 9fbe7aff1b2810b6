//! The OpenAPI 3.1 description of the API. Its operations come from the
//! routers of the handler modules (each route and its `#[utoipa::path]`
//! registered together, so the document cannot list a route that is not
//! served, nor miss one); this module gives it its title, tags and the
//! parts every operation shares, and serves it at `GET /openapi.json`.
//!
//! Every error answer is an RFC 9457 problem document: the operations list
//! their own problem statuses with a description, and [`document`] gives each
//! of them the `application/problem+json` content and adds the ones every
//! operation can answer (`400`, `401` where a token is needed, `413`/`415`
//! with a body, `500`, `503`).

use axum::body::Bytes;
use serde_json::{Value, json};
use utoipa::OpenApi;

use crate::error::{ErrorCode, Problem};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "room-booking",
        description = "Book hotel rooms: no room is ever sold twice for the same night.",
        license(name = "MIT", identifier = "MIT"),
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
pub struct ApiDoc;

/// The finished document as JSON text, shared by every request that asks for it.
#[derive(Clone, Debug)]
pub struct Document(pub Bytes);

impl Document {
    pub fn new(api: utoipa::openapi::OpenApi) -> Document {
        Document(Bytes::from(
            serde_json::to_vec(&finish(api)).unwrap_or_default(),
        ))
    }
}

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// The document of the routers' operations, completed: security scheme,
/// operation ids, the problem answers every operation shares, links.
pub fn finish(api: utoipa::openapi::OpenApi) -> Value {
    let mut document = serde_json::to_value(api).unwrap_or_default();
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

/// A created resource is what the operations on its path (and below it,
/// with no other parameter) take: OpenAPI links say so, for clients and for
/// schemathesis's stateful phase (which cannot guess it from `/book`). The
/// new row's id comes from the answer's `id`, the others from the request's
/// path (a room type's hotel).
///
/// Which resource a `201` created is what its `Location` header's
/// description names (`/bookings/{id}`), as each create operation declares.
fn link_created_resources(document: &mut Value) {
    let Some(paths) = document["paths"].as_object() else {
        return;
    };
    let created: Vec<(String, String)> = paths
        .iter()
        .filter_map(|(creator, item)| {
            let location = &item["post"]["responses"]["201"]["headers"]["location"];
            let resource = location["description"].as_str()?;
            Some((creator.clone(), resource.to_owned()))
        })
        .collect();
    for (creator, resource) in created {
        let links = links_to(document, &resource);
        let response = &mut document["paths"][&creator]["post"]["responses"]["201"];
        if !links.is_empty() {
            response["links"] = Value::Object(links);
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
}
