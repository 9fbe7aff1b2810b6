//! `/users`: who books. Passwords go in, are hashed, and never come out.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::database::ResultExt;
use super::{NameSchema, Page, Pagination, created, in_use, parse_name};
use crate::auth::{Admin, AuthUser, Password, Staff};
use crate::db::failure::constraints;
use crate::db::users::{self, NewUser, UserChange, UserWrite};
use crate::domain::{Role, User};
use crate::error::{Error, ErrorCode, Result};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module, each with its OpenAPI operation.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, update, delete))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserBody {
    pub id: Uuid,
    pub name: String,
    pub email: Option<String>,
    pub role: Role,
}

impl From<User> for UserBody {
    fn from(user: User) -> Self {
        UserBody {
            id: user.id,
            name: user.name,
            email: user.email,
            role: user.role,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserRequest {
    #[schema(value_type = NameSchema, example = "user3")]
    pub name: String,
    pub email: Option<String>,
    /// Default `guest`.
    pub role: Option<Role>,
    /// 8 to 256 characters.
    #[schema(value_type = Option<String>, format = Password, min_length = 8, max_length = 256)]
    pub password: Option<Password>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserChangeRequest {
    #[schema(value_type = Option<NameSchema>)]
    pub name: Option<String>,
    /// Absent: unchanged; `null`: cleared.
    #[serde(default, with = "serde_with::rust::double_option")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    /// Admins only.
    pub role: Option<Role>,
    /// A new password (8 to 256 characters); ends the user's earlier tokens.
    #[schema(value_type = Option<String>, format = Password, min_length = 8, max_length = 256)]
    pub password: Option<Password>,
    /// The current password, needed to change one's own.
    #[schema(value_type = Option<String>, format = Password)]
    pub current_password: Option<Password>,
}

/// List users (staff).
#[utoipa::path(
    get,
    path = "/users",
    tag = "users",
    security(("bearer" = [])),
    params(Pagination),
    responses(
        (status = 200, description = "A page of users", body = Page<UserBody>),
        (status = 403, description = "Not staff"),
        (status = 422, description = "Bad paging"),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    _: Staff,
    Query(pagination): Query<Pagination>,
) -> Result<Json<Page<UserBody>>> {
    let window = pagination.window()?;
    let listed = users::list_users(&state.pool, window).await?;
    Ok(Json(Page::new(pagination, listed)))
}

/// One user (a guest sees only itself).
#[utoipa::path(
    get,
    path = "/users/{id}",
    tag = "users",
    security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "The user", body = UserBody),
        (status = 404, description = "No such user, or another user for a guest"),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<UserBody>> {
    may_see(caller, id)?;
    let user = users::find_user(&state.pool, id)
        .await?
        .ok_or_else(|| user_not_found(id))?;
    Ok(Json(user.into()))
}

/// Create a user (admin).
#[utoipa::path(
    post,
    path = "/users",
    tag = "users",
    security(("bearer" = [])),
    request_body = NewUserRequest,
    responses(
        (status = 201, description = "Created", body = UserBody, headers(("location" = String, description = "/users/{id}"))),
        (status = 403, description = "Not an admin"),
        (status = 409, description = "The name is taken"),
        (status = 422, description = "A bad name, email or password"),
        (status = 503, description = "Password hashing is busy (`Retry-After`)"),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    _: Admin,
    Json(user): Json<NewUserRequest>,
) -> Result<Response> {
    let new_user = NewUser {
        name: parse_name("name", &user.name)?,
        email: user.email.as_deref().map(parse_email).transpose()?,
        role: user.role.unwrap_or_default(),
        password_hash: match user.password {
            Some(password) => Some(state.hashing.hash(password).await?),
            None => None,
        },
    };
    let user = users::create_user(&state.pool, new_user)
        .await
        .on_constraint(constraints::USER_NAME_TAKEN, name_taken)?;
    Ok(created(format!("/users/{}", user.id), UserBody::from(user)))
}

/// Change a user: one's own name, email and password (with the current
/// one), or as an admin anything of anyone.
#[utoipa::path(
    patch,
    path = "/users/{id}",
    tag = "users",
    security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    request_body = UserChangeRequest,
    responses(
        (status = 200, description = "The changed user", body = UserBody),
        (status = 403, description = "Changing another user or a role without being an admin; a wrong current password"),
        (status = 404, description = "No such user, or another user for a guest"),
        (status = 409, description = "The name is taken (`already_exists`), or the last admin would lose its role (`last_admin`)"),
        (status = 429, description = "Too many checks of the current password (`Retry-After`)"),
        (status = 422, description = "A bad name, email or password; no current password"),
        (status = 503, description = "Password hashing is busy (`Retry-After`)"),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
    Json(change): Json<UserChangeRequest>,
) -> Result<Json<UserBody>> {
    may_see(caller, id)?;
    // Only an admin changes other users, or roles: nobody raises its own.
    if caller.id != id || change.role.is_some() {
        caller.require(Role::Admin)?;
    }
    let name = change
        .name
        .as_deref()
        .map(|name| parse_name("name", name))
        .transpose()?;
    let email = change
        .email
        .map(|email| email.as_deref().map(parse_email).transpose())
        .transpose()?;
    let password_hash = match change.password {
        Some(password) => {
            // One's own password needs the current one (when there is one:
            // a user made without a password sets its first with its token);
            // an admin resetting another user's does not.
            if caller.id == id {
                let stored = users::find_password_hash(&state.pool, id)
                    .await?
                    .ok_or_else(|| user_not_found(id))?;
                if stored.is_some() {
                    let current = change.current_password.ok_or_else(|| {
                        Error::validation("`current_password` is needed to change your password")
                    })?;
                    state.password_checks.take(id)?;
                    if !state.hashing.verify(current, stored).await? {
                        return Err(Error::Forbidden);
                    }
                }
            }
            Some(state.hashing.hash(password).await?)
        }
        None => None,
    };
    let change = UserChange {
        name,
        email,
        role: change.role,
        password_hash,
    };
    match users::update_user(&state.pool, id, change)
        .await
        .on_constraint(constraints::USER_NAME_TAKEN, name_taken)?
    {
        UserWrite::Done(user) => Ok(Json(user.into())),
        UserWrite::NotFound => Err(user_not_found(id)),
        UserWrite::LastAdmin => Err(last_admin()),
    }
}

/// Delete a user (admin); refused while bookings refer to it.
#[utoipa::path(
    delete,
    path = "/users/{id}",
    tag = "users",
    security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Not an admin"),
        (status = 404, description = "No such user"),
        (status = 409, description = "Bookings refer to it (`in_use`), or it is the last admin (`last_admin`)"),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    Admin(_caller): Admin,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    match users::delete_user(&state.pool, id)
        .await
        .on_constraint(constraints::BOOKING_OF_USER, in_use("user"))?
    {
        UserWrite::Done(()) => Ok(StatusCode::NO_CONTENT),
        UserWrite::NotFound => Err(user_not_found(id)),
        UserWrite::LastAdmin => Err(last_admin()),
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

/// Nobody could administer the service any more (recovery would need the
/// host's shell).
fn last_admin() -> Error {
    Error::conflict(
        ErrorCode::LastAdmin,
        "this is the last admin: make another user an admin first",
    )
}

fn user_not_found(id: Uuid) -> Error {
    Error::not_found(format!("no user with id {id}"))
}

pub(crate) fn name_taken() -> Error {
    Error::conflict(
        ErrorCode::AlreadyExists,
        "a user with this name already exists",
    )
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
                && !email.contains(char::is_control)
        });
    if valid {
        Ok(email.to_owned())
    } else {
        Err(Error::validation(format!(
            "`{email}` is not an email address"
        )))
    }
}
