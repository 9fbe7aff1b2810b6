//! `/auth`: registration of guests and access tokens.

use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::database::ResultExt;
use super::users::{UserBody, name_taken};
use super::{NameSchema, created, parse_name};
use crate::auth::{Password, TOKEN_TTL_SECONDS};
use crate::db::failure::constraints;
use crate::db::users::{self, NewUser};
use crate::domain::Role;
use crate::error::{Error, Result};
use crate::extract::Json;
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module, each with its OpenAPI operation.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(token))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    #[schema(value_type = NameSchema, example = "alice")]
    pub name: String,
    /// 8 to 256 characters.
    #[schema(value_type = String, format = Password, min_length = 8, max_length = 256, example = "correct horse")]
    pub password: Password,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccessToken {
    pub access_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds.
    pub expires_in: i64,
}

/// Register a guest with a password.
#[utoipa::path(
    post,
    path = "/auth/register",
    tag = "auth",
    request_body = Credentials,
    responses(
        (status = 201, description = "The new guest", body = UserBody, headers(("location" = String))),
        (status = 409, description = "The name is taken"),
        (status = 422, description = "A bad name or password"),
        (status = 429, description = "Too many sign-ins from this address (`Retry-After`)"),
        (status = 503, description = "Password hashing is busy (`Retry-After`)"),
    )
)]
pub async fn register(
    State(state): State<AppState>,
    Json(credentials): Json<Credentials>,
) -> Result<Response> {
    let new_user = NewUser {
        name: parse_name("name", &credentials.name)?,
        email: None,
        role: Role::Guest,
        password_hash: Some(state.hashing.hash(credentials.password).await?),
    };
    let user = users::create_user(&state.pool, new_user)
        .await
        .on_constraint(constraints::USER_NAME_TAKEN, name_taken)?;
    Ok(created(format!("/users/{}", user.id), UserBody::from(user)))
}

/// An access token for a name and password.
///
/// A wrong name and a wrong password get the same answer, in the same time.
#[utoipa::path(
    post,
    path = "/auth/token",
    tag = "auth",
    request_body = Credentials,
    responses(
        (status = 200, description = "A Bearer token", body = AccessToken),
        (status = 401, description = "Wrong name or password"),
        (status = 429, description = "Too many sign-ins from this address (`Retry-After`)"),
        (status = 503, description = "Password hashing is busy (`Retry-After`)"),
    )
)]
pub async fn token(
    State(state): State<AppState>,
    Json(credentials): Json<Credentials>,
) -> Result<Json<AccessToken>> {
    let found = users::find_credentials(&state.pool, credentials.name.trim()).await?;
    let stored = found.as_ref().and_then(|user| user.password_hash.clone());
    let matches = state.hashing.verify(credentials.password, stored).await?;
    let user = found.filter(|_| matches).ok_or(Error::Unauthorized)?;
    Ok(Json(AccessToken {
        access_token: state.keys.mint(user.id, user.role, user.token_version)?,
        token_type: "Bearer",
        expires_in: TOKEN_TTL_SECONDS,
    }))
}
