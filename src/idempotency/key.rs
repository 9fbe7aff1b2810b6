//! The `Idempotency-Key` of a request and the fingerprint of the request
//! it came with.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use utoipa::IntoParams;

use crate::error::Error;
use crate::extract::BODY_LIMIT;

/// The header of the IETF Idempotency-Key draft.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Marks an answer replayed for a repeated `Idempotency-Key`.
pub const REPLAYED: axum::http::HeaderName =
    axum::http::HeaderName::from_static("idempotent-replayed");

/// Fingerprints a request (method, path, query, body) when it carries an
/// `Idempotency-Key`. Only then is the body read here; other requests
/// (`POST /book` without a key) pass through untouched, and `Json` reads
/// their body once.
pub async fn fingerprint_keyed(request: Request, next: Next) -> Response {
    if !request.headers().contains_key(IDEMPOTENCY_KEY) {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(bytes) => bytes,
        Err(_) => return Error::PayloadTooLarge.into_response(),
    };
    let fingerprint = fingerprint(&parts, &bytes);
    parts.extensions.insert(fingerprint);
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// SHA-256 of a request's method, path, query and body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint(pub [u8; 32]);

fn fingerprint(parts: &Parts, body: &Bytes) -> Fingerprint {
    let mut hash = Sha256::new();
    hash.update(parts.method.as_str().as_bytes());
    hash.update(b" ");
    hash.update(
        parts
            .uri
            .path_and_query()
            .map_or("", |path| path.as_str())
            .as_bytes(),
    );
    hash.update(b"\n");
    hash.update(body);
    Fingerprint(hash.finalize().into())
}

/// The `Idempotency-Key` header as the OpenAPI document describes it: the
/// pattern is exactly what [`IdempotencyKey`] takes (1 to 255 visible ASCII
/// characters, bare or in double quotes; `""` is empty, so not a key).
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyKeyHeader {
    /// Makes a retry safe: the same key and request replay the first answer
    /// (marked `Idempotent-Replayed: true`); the same key with another
    /// request answers `422`, and while the first still runs, `409`.
    #[param(
        rename = "Idempotency-Key",
        required = false,
        pattern = r#"^(?:"[!-~]{1,255}"|[!-~]|[!#-~][!-~]|"[!#-~]|[!-~]{3,255})$"#
    )]
    #[allow(dead_code)] // Read by `IdempotencyKey`; here for the document only.
    idempotency_key: String,
}

/// The `Idempotency-Key` of a request, when it has one, with the request's
/// fingerprint. A key is 1 to 255 visible ASCII characters; the draft's
/// quoted form (`"abc"`, a structured-field string) is accepted too.
#[derive(Debug, Clone, Default)]
pub struct IdempotencyKey(pub Option<(String, Fingerprint)>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Error> {
        let Some(value) = parts.headers.get(IDEMPOTENCY_KEY) else {
            return Ok(IdempotencyKey(None));
        };
        let malformed = || {
            Error::Malformed("`Idempotency-Key` must be 1 to 255 visible ASCII characters".into())
        };
        let text = value.to_str().map_err(|_| malformed())?.trim();
        let key = text
            .strip_prefix('"')
            .and_then(|rest| rest.strip_suffix('"'))
            .unwrap_or(text);
        let visible = key.bytes().all(|byte| byte.is_ascii_graphic());
        if key.is_empty() || key.len() > 255 || !visible {
            return Err(malformed());
        }
        let fingerprint = parts
            .extensions
            .get::<Fingerprint>()
            .copied()
            .ok_or_else(|| Error::Internal("the request was not fingerprinted".into()))?;
        Ok(IdempotencyKey(Some((key.to_owned(), fingerprint))))
    }
}
