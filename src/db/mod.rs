//! All SQL of the service. Functions take a pool or a connection and answer
//! domain structs; queries are checked against the schema at compile time.

pub mod book;
pub mod bookings;
pub mod hotels;
pub mod rooms;
pub mod search;
pub mod users;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{Connection, PgPool};

/// The migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// Creates `database` on the server unless it exists.
pub async fn create_database_if_missing(
    server: &PgConnectOptions,
    database: &str,
) -> sqlx::Result<()> {
    let mut conn = PgConnection::connect_with(&server.clone().database("postgres")).await?;
    let exists: bool =
        sqlx::query_scalar("select exists (select 1 from pg_database where datname = $1)")
            .bind(database)
            .fetch_one(&mut conn)
            .await?;
    if !exists {
        // Identifiers cannot be bound; quote it as PostgreSQL would.
        let quoted = format!("\"{}\"", database.replace('"', "\"\""));
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("create database {quoted}")))
            .execute(&mut conn)
            .await?;
    }
    conn.close().await
}

/// Whether the database answers at all (`GET /ready`).
pub async fn ping(pool: &PgPool) -> sqlx::Result<()> {
    sqlx::query("select 1").execute(pool).await.map(|_| ())
}
