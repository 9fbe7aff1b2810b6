//! Users: who books. Password hashes are written here and never read back
//! into a response.

use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::Role;

#[derive(Debug, Serialize)]
pub struct User {
    pub id: Uuid,
    pub name: String,
    pub email: Option<String>,
    pub role: Role,
}

pub struct NewUser {
    pub name: String,
    pub email: Option<String>,
    pub role: Role,
    pub password_hash: Option<String>,
}

/// A change to a user; `None` leaves a field as it is.
pub struct UserChange {
    pub name: Option<String>,
    /// `Some(None)` clears the email.
    pub email: Option<Option<String>>,
    pub role: Option<Role>,
    pub password_hash: Option<String>,
}

pub async fn list_users(pool: &PgPool, limit: i64, offset: i64) -> sqlx::Result<(Vec<User>, i64)> {
    let users = sqlx::query_as!(
        User,
        r#"select id, name, email, role as "role: Role" from users order by name limit $1 offset $2"#,
        limit,
        offset
    )
    .fetch_all(pool)
    .await?;
    let total = sqlx::query_scalar!(r#"select count(*) as "count!" from users"#)
        .fetch_one(pool)
        .await?;
    Ok((users, total))
}

pub async fn find_user(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<User>> {
    sqlx::query_as!(
        User,
        r#"select id, name, email, role as "role: Role" from users where id = $1"#,
        id
    )
    .fetch_optional(pool)
    .await
}

pub async fn create_user(pool: &PgPool, user: NewUser) -> sqlx::Result<User> {
    sqlx::query_as!(
        User,
        r#"insert into users (name, email, role, password_hash) values ($1, $2, $3, $4)
           returning id, name, email, role as "role: Role""#,
        user.name,
        user.email,
        user.role as Role,
        user.password_hash
    )
    .fetch_one(pool)
    .await
}

pub async fn update_user(
    pool: &PgPool,
    id: Uuid,
    change: UserChange,
) -> sqlx::Result<Option<User>> {
    let (set_email, email) = match change.email {
        Some(email) => (true, email),
        None => (false, None),
    };
    sqlx::query_as!(
        User,
        r#"update users
           set name = coalesce($2, name),
               email = case when $3 then $4 else email end,
               role = coalesce($5, role),
               password_hash = coalesce($6, password_hash)
           where id = $1
           returning id, name, email, role as "role: Role""#,
        id,
        change.name,
        set_email,
        email,
        change.role as Option<Role>,
        change.password_hash
    )
    .fetch_optional(pool)
    .await
}

/// Deletes a user; `false` when there is none. A user that bookings refer to
/// is kept: the foreign key refuses with `23503`.
pub async fn delete_user(pool: &PgPool, id: Uuid) -> sqlx::Result<bool> {
    let deleted = sqlx::query!("delete from users where id = $1", id)
        .execute(pool)
        .await?;
    Ok(deleted.rows_affected() == 1)
}

/// A user's current role; `None` when the user no longer exists.
pub async fn find_role(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<Role>> {
    sqlx::query_scalar!(
        r#"select role as "role: Role" from users where id = $1"#,
        id
    )
    .fetch_optional(pool)
    .await
}

/// Id, role and password hash of a user, for signing in.
pub async fn find_credentials(
    pool: &PgPool,
    name: &str,
) -> sqlx::Result<Option<(Uuid, Role, Option<String>)>> {
    let row = sqlx::query!(
        r#"select id, role as "role: Role", password_hash from users where name = $1"#,
        name
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|row| (row.id, row.role, row.password_hash)))
}

/// Finds a user by name, or creates it as an admin (for `room-booking token --create-admin`).
pub async fn find_or_create_admin(
    pool: &PgPool,
    name: &str,
    create: bool,
) -> sqlx::Result<Option<(Uuid, Role)>> {
    if create {
        sqlx::query!(
            "insert into users (name, role) values ($1, 'admin') on conflict (name) do nothing",
            name
        )
        .execute(pool)
        .await?;
    }
    let row = sqlx::query!(
        r#"select id, role as "role: Role" from users where name = $1"#,
        name
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|row| (row.id, row.role)))
}
