//! Extractors that answer the service's problem documents when the request
//! cannot be read: `Json`, `Query` and `Path` with [`Error`] as rejection.
//!
//! PostgreSQL text cannot hold a NUL character, so a string with one is
//! refused here (`400 malformed_request`), before it reaches a query.

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;

/// Bodies are small JSON documents; anything larger answers `413`.
pub const BODY_LIMIT: usize = 64 * 1024;

/// `axum::Json`, rejecting with the service's problem document, refusing
/// strings that contain NUL and bodies that are not a JSON object.
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request(request: Request, state: &S) -> Result<Self, Error> {
        if !is_json(request.headers()) {
            return Err(Error::UnsupportedMediaType);
        }
        let bytes =
            Bytes::from_request(request, state)
                .await
                .map_err(|rejection| match rejection.status() {
                    StatusCode::PAYLOAD_TOO_LARGE => Error::PayloadTooLarge,
                    _ => Error::Malformed(rejection.body_text()),
                })?;
        // Every body of this API is an object; serde would also read a
        // struct from an array of its fields (`[null, null]`).
        if bytes.iter().find(|byte| !byte.is_ascii_whitespace()) != Some(&b'{') {
            return Err(Error::Malformed("the body must be a JSON object".into()));
        }
        if json_has_nul(&bytes) {
            return Err(Error::Malformed(
                "a string in the body contains a NUL character".into(),
            ));
        }
        let axum::Json(value) = axum::Json::<T>::from_bytes(&bytes)?;
        Ok(Json(value))
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Query`, rejecting with the service's problem document.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(Error))]
pub struct Query<T>(pub T);

/// `axum::extract::Path`, rejecting with the service's problem document.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(Error))]
pub struct Path<T>(pub T);

impl From<JsonRejection> for Error {
    fn from(rejection: JsonRejection) -> Self {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => Error::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Error::UnsupportedMediaType,
            // A syntax error, a missing field or a field of the wrong type: the
            // body does not have the documented shape.
            _ => Error::Malformed(rejection.body_text()),
        }
    }
}

impl From<QueryRejection> for Error {
    fn from(rejection: QueryRejection) -> Self {
        Error::Malformed(rejection.body_text())
    }
}

impl From<PathRejection> for Error {
    fn from(rejection: PathRejection) -> Self {
        Error::Malformed(rejection.body_text())
    }
}

/// Whether the request says its body is JSON: `application/json` or
/// `application/*+json`, parameters (`; charset=utf-8`) aside, parsed with
/// `mime` as `axum::Json` does.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<mime::Mime>().ok())
        .is_some_and(|mime| {
            mime.type_() == mime::APPLICATION
                && (mime.subtype() == mime::JSON || mime.suffix() == Some(mime::JSON))
        })
}

/// Whether a JSON text holds a NUL character in a string (`\u0000`). JSON
/// cannot carry a raw NUL in a string, so the escape is the only way in; an
/// escaped backslash before `u0000` is not one, hence the count.
fn json_has_nul(body: &[u8]) -> bool {
    body.windows(6).enumerate().any(|(at, window)| {
        window.eq_ignore_ascii_case(b"\\u0000")
            && body[..at]
                .iter()
                .rev()
                .take_while(|byte| **byte == b'\\')
                .count()
                % 2
                == 0
    })
}

/// Whether a query string decodes to a NUL character anywhere.
fn query_has_nul(query: &str) -> bool {
    query.as_bytes().windows(3).any(|window| window == b"%00") || query.contains('\0')
}

/// The most a request line and its headers may take; beyond, `431`.
pub const MAX_HEAD_BYTES: usize = 32 * 1024;

/// The bytes of a request's line and headers, as sent (give or take the
/// spaces HTTP allows around a header's value).
fn head_bytes(request: &Request) -> usize {
    let line = request.method().as_str().len()
        + request
            .uri()
            .path_and_query()
            .map_or(0, |path| path.as_str().len())
        + " HTTP/1.1\r\n".len()
        + 1;
    request.headers().iter().fold(line, |bytes, (name, value)| {
        bytes + name.as_str().len() + value.len() + ": \r\n".len()
    })
}

/// Reads a request before any handler: refuses a head over
/// [`MAX_HEAD_BYTES`] and NUL characters in the query string.
pub async fn screen_request(request: Request, next: Next) -> Response {
    if head_bytes(&request) > MAX_HEAD_BYTES {
        return Error::HeadersTooLarge(MAX_HEAD_BYTES).into_response();
    }
    if request.uri().query().is_some_and(query_has_nul) {
        return Error::Malformed("the query string contains a NUL character".into())
            .into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_escaped_nul_characters_only() {
        assert!(json_has_nul(br#"{"name":"a\u0000"}"#));
        assert!(json_has_nul(br#"{"name":"\\\u0000"}"#));
        assert!(!json_has_nul(br#"{"name":"\\u0000"}"#));
        assert!(!json_has_nul(br#"{"name":"a"}"#));
    }

    #[test]
    fn reads_json_content_types_as_axum_does() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, value.parse().expect("a header value"));
            is_json(&headers)
        };
        assert!(with("application/json"));
        assert!(with("application/json; charset=utf-8"));
        assert!(with("Application/JSON"));
        assert!(with("application/problem+json"));
        assert!(!with("text/plain"));
        assert!(!with("application/jsonx"));
        assert!(!is_json(&HeaderMap::new()));
    }

    #[test]
    fn finds_nul_in_query_strings() {
        assert!(query_has_nul("city=%00"));
        assert!(query_has_nul("city=a%00b"));
        assert!(!query_has_nul("city=%2500"));
        assert!(!query_has_nul("city=Paris"));
    }
}
