//! `/auth`: registration of guests and access tokens.

use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::created;
use super::users::name_taken;
use crate::AppState;
use crate::auth::{Password, TOKEN_TTL_SECONDS, hash_password, verify_password};
use crate::db::users::{self, NewUser};
use crate::domain::{Name, Role};
use crate::error::{Error, Result};
use crate::extract::Json;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub name: String,
    pub password: Password,
}

#[derive(Debug, Serialize)]
pub struct AccessToken {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
}

/// `POST /auth/register`: a new guest with a password.
pub async fn register(
    State(state): State<AppState>,
    Json(credentials): Json<Credentials>,
) -> Result<Response> {
    let new_user = NewUser {
        name: Name::parse("name", &credentials.name)?,
        email: None,
        role: Role::Guest,
        password_hash: Some(hash_password(credentials.password).await?),
    };
    let user = users::create_user(&state.pool, new_user)
        .await
        .map_err(name_taken)?;
    Ok(created(format!("/users/{}", user.id), user))
}

/// `POST /auth/token`: a token for a name and password. A wrong name and a
/// wrong password get the same answer.
pub async fn token(
    State(state): State<AppState>,
    Json(credentials): Json<Credentials>,
) -> Result<Json<AccessToken>> {
    let found = users::find_credentials(&state.pool, credentials.name.trim()).await?;
    let (stored, user) = match found {
        Some((id, role, hash)) => (hash, Some((id, role))),
        None => (None, None),
    };
    let matches = verify_password(credentials.password, stored).await?;
    let (id, role) = user.filter(|_| matches).ok_or(Error::Unauthorized)?;
    Ok(Json(AccessToken {
        access_token: state.keys.mint(id, role)?,
        token_type: "Bearer",
        expires_in: TOKEN_TTL_SECONDS,
    }))
}
