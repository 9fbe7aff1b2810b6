//! Idempotency-Key records: the answer to the first request with a key,
//! stored in the transaction of the work it guards.

use sqlx::PgConnection;
use sqlx::PgPool;
use uuid::Uuid;

/// How long a key is kept, in hours.
pub const KEY_TTL_HOURS: i32 = 24;

/// The stored answer to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub location: Option<String>,
    pub body: Vec<u8>,
}

/// What a key means for a request that carries it.
#[derive(Debug)]
pub enum KeyState {
    /// Never seen (or expired): do the work and record the answer.
    Fresh,
    /// The first request with this key is still running.
    InUse,
    /// Seen with another request.
    Mismatch,
    /// Seen with this request: replay its answer.
    Replay(StoredResponse),
}

/// Claims `key` for the rest of the transaction `tx` (an advisory lock, so a
/// concurrent request with the same key is told at once instead of waiting)
/// and reads what the key already holds, in one round trip.
///
/// The read must not share the lock's snapshot: under READ COMMITTED a
/// statement sees the rows committed before it began, so a read in the
/// statement that takes the lock could miss the record of the request that
/// held the lock until a moment before (it commits, then lets go of the
/// lock) and take a retry for a new request. The function
/// `claim_idempotency_key` (migration 0006) reads in a query of its own,
/// with a snapshot taken after the lock.
pub async fn claim(
    tx: &mut PgConnection,
    caller: Uuid,
    key: &str,
    fingerprint: &[u8],
) -> sqlx::Result<KeyState> {
    let row = sqlx::query!(
        r#"select locked as "locked!", fingerprint, status, location, body
           from claim_idempotency_key($1, $2, $3)"#,
        caller,
        key,
        KEY_TTL_HOURS
    )
    .fetch_one(&mut *tx)
    .await?;
    if !row.locked {
        return Ok(KeyState::InUse);
    }
    Ok(match (row.fingerprint, row.status, row.body) {
        (Some(stored), Some(status), Some(body)) if stored == fingerprint => {
            KeyState::Replay(StoredResponse {
                status: u16::try_from(status).unwrap_or(500),
                location: row.location,
                body,
            })
        }
        (Some(_), ..) => KeyState::Mismatch,
        _ => KeyState::Fresh,
    })
}

/// Records the answer of the work done under `key`, in the same transaction;
/// answers whether it did. A record of the key younger than
/// [`KEY_TTL_HOURS`] is never overwritten: [`claim`] found none and its lock
/// keeps other requests with the key out, so finding one means another
/// request did the work, and this transaction must not commit.
pub async fn record(
    tx: &mut PgConnection,
    caller: Uuid,
    key: &str,
    fingerprint: &[u8],
    response: &StoredResponse,
) -> sqlx::Result<bool> {
    let recorded = sqlx::query!(
        "insert into idempotency_keys (caller, key, fingerprint, status, location, body)
         values ($1, $2, $3, $4, $5, $6)
         on conflict (caller, key) do update
             set fingerprint = excluded.fingerprint, status = excluded.status,
                 location = excluded.location, body = excluded.body, created_at = now()
             where idempotency_keys.created_at <= now() - make_interval(hours => $7)",
        caller,
        key,
        fingerprint,
        i16::try_from(response.status).unwrap_or(i16::MAX),
        response.location,
        response.body,
        KEY_TTL_HOURS
    )
    .execute(tx)
    .await?;
    Ok(recorded.rows_affected() == 1)
}

/// Deletes the records older than [`KEY_TTL_HOURS`]; answers how many.
pub async fn prune(pool: &PgPool) -> sqlx::Result<u64> {
    let deleted = sqlx::query!(
        "delete from idempotency_keys where created_at <= now() - make_interval(hours => $1)",
        KEY_TTL_HOURS
    )
    .execute(pool)
    .await?;
    Ok(deleted.rows_affected())
}
