//! Users: who books. Password hashes are written here and never read back
//! into a response.

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::{Role, User, Window};

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

pub async fn list_users(pool: &PgPool, window: Window) -> sqlx::Result<(Vec<User>, i64)> {
    super::page_of(window, move |window| async move {
        let rows = sqlx::query!(
            r#"select id, name, email, role as "role: Role", count(*) over () as "total!"
               from users order by name limit $1 offset $2"#,
            window.limit,
            window.offset
        )
        .fetch_all(pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let user = User {
                    id: row.id,
                    name: row.name,
                    email: row.email,
                    role: row.role,
                };
                (user, row.total)
            })
            .collect())
    })
    .await
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

/// What a change or removal of a user came to.
#[derive(Debug)]
pub enum UserWrite<T> {
    Done(T),
    NotFound,
    /// It would leave no admin: the last one is neither demoted nor removed.
    LastAdmin,
}

/// Whether `id` is the only admin. Every admin's row is locked, in one
/// order: of two transactions demoting (or removing) the last two admins at
/// once, the second waits for the first, sees its change and is refused.
async fn is_last_admin(tx: &mut PgConnection, id: Uuid) -> sqlx::Result<bool> {
    let admins =
        sqlx::query_scalar!("select id from users where role = 'admin' order by id for update")
            .fetch_all(&mut *tx)
            .await?;
    Ok(admins == [id])
}

/// Changes a user. A new password or a new role bumps the user's token
/// version, which ends every token issued before. The last admin keeps its role.
pub async fn update_user(
    pool: &PgPool,
    id: Uuid,
    change: UserChange,
) -> sqlx::Result<UserWrite<User>> {
    let mut tx = pool.begin().await?;
    if change.role.is_some_and(|role| role != Role::Admin) && is_last_admin(&mut tx, id).await? {
        return Ok(UserWrite::LastAdmin);
    }
    let (set_email, email) = match change.email {
        Some(email) => (true, email),
        None => (false, None),
    };
    let user = sqlx::query_as!(
        User,
        r#"update users
           set name = coalesce($2, name),
               email = case when $3 then $4 else email end,
               role = coalesce($5, role),
               password_hash = coalesce($6, password_hash),
               token_version = token_version
                   + case when $6::text is not null or $5 is distinct from role and $5 is not null then 1 else 0 end
           where id = $1
           returning id, name, email, role as "role: Role""#,
        id,
        change.name,
        set_email,
        email,
        change.role as Option<Role>,
        change.password_hash
    )
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(user.map_or(UserWrite::NotFound, UserWrite::Done))
}

/// Deletes a user, unless it is the last admin. A user that bookings refer
/// to is kept: the foreign key refuses with `23503`.
pub async fn delete_user(pool: &PgPool, id: Uuid) -> sqlx::Result<UserWrite<()>> {
    let mut tx = pool.begin().await?;
    if is_last_admin(&mut tx, id).await? {
        return Ok(UserWrite::LastAdmin);
    }
    let deleted = sqlx::query!("delete from users where id = $1", id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(if deleted.rows_affected() == 1 {
        UserWrite::Done(())
    } else {
        UserWrite::NotFound
    })
}

/// The role of a token's user, if the user still exists and the token is of
/// its current credentials (`token_version`).
pub async fn find_caller_role(
    pool: &PgPool,
    id: Uuid,
    token_version: i32,
) -> sqlx::Result<Option<Role>> {
    sqlx::query_scalar!(
        r#"select role as "role: Role" from users where id = $1 and token_version = $2"#,
        id,
        token_version
    )
    .fetch_optional(pool)
    .await
}

/// What signing in needs of a user.
pub struct Credentials {
    pub id: Uuid,
    pub role: Role,
    pub token_version: i32,
    pub password_hash: Option<String>,
}

/// Id, role, token version and password hash of a user, by name.
pub async fn find_credentials(pool: &PgPool, name: &str) -> sqlx::Result<Option<Credentials>> {
    sqlx::query_as!(
        Credentials,
        r#"select id, role as "role: Role", token_version, password_hash from users where name = $1"#,
        name
    )
    .fetch_optional(pool)
    .await
}

/// The stored password hash of a user, by id (`None`: no user; `Some(None)`: no password).
pub async fn find_password_hash(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<Option<String>>> {
    sqlx::query_scalar!("select password_hash from users where id = $1", id)
        .fetch_optional(pool)
        .await
}

/// What `room-booking token NAME` may sign for.
pub enum AdminToken {
    /// The user, with its role and token version.
    User {
        id: Uuid,
        role: Role,
        token_version: i32,
    },
    Unknown,
    /// The user exists but is no admin, and promoting it was not asked for.
    NotAdmin,
}

/// Finds an admin by name; with `create`, creates it when missing; with
/// `promote`, makes an existing user an admin (ending its earlier tokens).
pub async fn find_or_create_admin(
    pool: &PgPool,
    name: &str,
    create: bool,
    promote: bool,
) -> sqlx::Result<AdminToken> {
    if create {
        sqlx::query!(
            "insert into users (name, role) values ($1, 'admin') on conflict (name) do nothing",
            name
        )
        .execute(pool)
        .await?;
    }
    if promote {
        sqlx::query!(
            "update users set role = 'admin', token_version = token_version + 1
             where name = $1 and role <> 'admin'",
            name
        )
        .execute(pool)
        .await?;
    }
    let row = sqlx::query!(
        r#"select id, role as "role: Role", token_version from users where name = $1"#,
        name
    )
    .fetch_optional(pool)
    .await?;
    Ok(match row {
        None => AdminToken::Unknown,
        Some(row) if (create || promote) && row.role != Role::Admin => AdminToken::NotAdmin,
        Some(row) => AdminToken::User {
            id: row.id,
            role: row.role,
            token_version: row.token_version,
        },
    })
}
