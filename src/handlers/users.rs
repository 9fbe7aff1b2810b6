//! `/users`: who books. Passwords go in, are hashed, and never come out.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use uuid::Uuid;

use super::created;
use super::in_use;
use crate::AppState;
use crate::auth::{AuthUser, Password, hash_password};
use crate::db::users::{self, NewUser, User, UserChange};
use crate::domain::{Name, Page, Pagination, Role};
use crate::error::{Error, Result};
use crate::extract::{Json, Path, Query};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUserRequest {
    pub name: String,
    pub email: Option<String>,
    #[serde(default)]
    pub role: Role,
    pub password: Option<Password>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserChangeRequest {
    pub name: Option<String>,
    /// Absent: unchanged; `null`: cleared.
    #[serde(default, with = "serde_with::rust::double_option")]
    pub email: Option<Option<String>>,
    pub role: Option<Role>,
    pub password: Option<Password>,
}

pub async fn list(
    State(state): State<AppState>,
    caller: AuthUser,
    Query(pagination): Query<Pagination>,
) -> Result<Json<Page<User>>> {
    caller.require(Role::Staff)?;
    let (limit, offset) = pagination.limit_offset()?;
    let (items, total) = users::list_users(&state.pool, limit, offset).await?;
    Ok(Json(Page::new(pagination, items, total)))
}

pub async fn get(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<User>> {
    may_see(caller, id)?;
    let user = users::find_user(&state.pool, id)
        .await?
        .ok_or_else(|| user_not_found(id))?;
    Ok(Json(user))
}

pub async fn create(
    State(state): State<AppState>,
    caller: AuthUser,
    Json(user): Json<NewUserRequest>,
) -> Result<Response> {
    caller.require(Role::Admin)?;
    let new_user = NewUser {
        name: Name::parse("name", &user.name)?,
        email: user.email.as_deref().map(parse_email).transpose()?,
        role: user.role,
        password_hash: match user.password {
            Some(password) => Some(hash_password(password).await?),
            None => None,
        },
    };
    let user = users::create_user(&state.pool, new_user)
        .await
        .map_err(name_taken)?;
    Ok(created(format!("/users/{}", user.id), user))
}

pub async fn update(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
    Json(change): Json<UserChangeRequest>,
) -> Result<Json<User>> {
    may_see(caller, id)?;
    // Only an admin changes other users, or roles: nobody raises its own.
    if caller.id != id || change.role.is_some() {
        caller.require(Role::Admin)?;
    }
    let change = UserChange {
        name: change
            .name
            .as_deref()
            .map(|name| Name::parse("name", name))
            .transpose()?,
        email: change
            .email
            .map(|email| email.as_deref().map(parse_email).transpose())
            .transpose()?,
        role: change.role,
        password_hash: match change.password {
            Some(password) => Some(hash_password(password).await?),
            None => None,
        },
    };
    let user = users::update_user(&state.pool, id, change)
        .await
        .map_err(name_taken)?
        .ok_or_else(|| user_not_found(id))?;
    Ok(Json(user))
}

pub async fn delete(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    caller.require(Role::Admin)?;
    if users::delete_user(&state.pool, id)
        .await
        .map_err(in_use("user"))?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(user_not_found(id))
    }
}

/// A guest sees only its own record; staff see all. Others' records are
/// `404`, so that their existence does not leak.
fn may_see(caller: AuthUser, id: Uuid) -> Result<()> {
    if caller.id == id || caller.is_staff() {
        Ok(())
    } else {
        Err(user_not_found(id))
    }
}

fn user_not_found(id: Uuid) -> Error {
    Error::not_found(format!("no user with id {id}"))
}

pub(crate) fn name_taken(error: sqlx::Error) -> Error {
    match Error::from(error) {
        Error::Conflict {
            code: "already_exists",
            ..
        } => Error::conflict("already_exists", "a user with this name already exists"),
        other => other,
    }
}

/// A light sanity check (something@something); delivery is the real test of an address.
fn parse_email(email: &str) -> Result<String> {
    let email = email.trim();
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !email.contains(char::is_whitespace)
        });
    if valid {
        Ok(email.to_owned())
    } else {
        Err(Error::validation(format!(
            "`{email}` is not an email address"
        )))
    }
}
