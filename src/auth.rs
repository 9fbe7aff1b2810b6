//! Who is calling: passwords (accepted as [`Password`], never printed, stored
//! only as Argon2id hashes), HS256 access tokens, and the extractors that
//! turn `Authorization: Bearer` into a caller.

use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use axum::extract::FromRef;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::domain::Role;
use crate::error::{Error, Result};

/// A password as the client sent it. `Debug` hides it, so it cannot reach a log.
#[derive(Deserialize)]
#[serde(transparent)]
pub struct Password(String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

impl Password {
    pub const MIN_LEN: usize = 8;
    pub const MAX_LEN: usize = 256;
}

impl Password {
    fn checked(self) -> Result<Password> {
        let length = self.0.chars().count();
        if !(Password::MIN_LEN..=Password::MAX_LEN).contains(&length) {
            return Err(Error::validation(format!(
                "`password` must be between {} and {} characters",
                Password::MIN_LEN,
                Password::MAX_LEN
            )));
        }
        Ok(self)
    }
}

/// Argon2id work, bounded: at most `slots` hashes run at once, on blocking
/// threads. A request that cannot get a slot within `wait` answers `503`
/// with `Retry-After`; one whose client has gone never starts its hash (the
/// handler is dropped while it waits for a slot).
#[derive(Clone, Debug)]
pub struct Hashing {
    slots: Arc<Semaphore>,
    wait: Duration,
}

impl Hashing {
    pub fn new(slots: usize, wait: Duration) -> Hashing {
        Hashing {
            slots: Arc::new(Semaphore::new(slots.max(1))),
            wait,
        }
    }

    /// A hashing slot, waited for at most `wait` (`503` beyond): held while
    /// a hash runs.
    pub async fn slot(&self) -> Result<OwnedSemaphorePermit> {
        match tokio::time::timeout(self.wait, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) | Err(_) => {
                tracing::warn!("password hashing is busy");
                Err(Error::Unavailable)
            }
        }
    }

    /// Checks the length and hashes with Argon2id.
    pub async fn hash(&self, password: Password) -> Result<String> {
        let password = password.checked()?;
        let permit = self.slot().await?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default()
                .hash_password(password.0.as_bytes(), &salt)
                .map(|hash| hash.to_string())
                .map_err(|error| Error::Internal(format!("password hashing failed: {error}")))
        })
        .await
        .map_err(|error| Error::Internal(format!("password hashing task failed: {error}")))?
    }

    /// Checks a password against a stored hash. Without a stored hash it
    /// still does the work of one check, so that an unknown name and a wrong
    /// password take the same time and get the same answer.
    pub async fn verify(&self, password: Password, stored: Option<String>) -> Result<bool> {
        let permit = self.slot().await?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let known = stored.is_some();
            let hash = stored.unwrap_or_else(|| UNKNOWN_USER_HASH.clone());
            let parsed = PasswordHash::new(&hash).map_err(|error| {
                Error::Internal(format!("a stored password hash is unreadable: {error}"))
            })?;
            let matches = Argon2::default()
                .verify_password(password.0.as_bytes(), &parsed)
                .is_ok();
            Ok(matches && known)
        })
        .await
        .map_err(|error| Error::Internal(format!("password check task failed: {error}")))?
    }
}

/// An Argon2id hash of a random password nobody knows.
static UNKNOWN_USER_HASH: LazyLock<String> = LazyLock::new(|| {
    let mut password = [0u8; 32];
    OsRng.fill_bytes(&mut password);
    Argon2::default()
        .hash_password(&password, &SaltString::generate(&mut OsRng))
        .map(|hash| hash.to_string())
        .unwrap_or_default()
});

/// How long an access token lives.
pub const TOKEN_TTL_SECONDS: i64 = 3600;

/// The smallest JWT secret accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

/// What a token says: who (`sub`), with which role and version of the
/// user's credentials (`ver`), until when.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    pub role: Role,
    #[serde(default)]
    pub ver: i32,
    pub iat: i64,
    pub exp: i64,
}

/// The HS256 keys made from the configured secret.
pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// What a token must be: HS256, with `exp` and `sub`, not expired (no
    /// leeway). Made once: it holds sets that every request would build again.
    validation: Validation,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Keys(***)")
    }
}

impl Keys {
    /// Refuses a secret shorter than [`MIN_SECRET_LEN`] bytes.
    pub fn new(secret: &[u8]) -> std::result::Result<Keys, String> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(format!(
                "JWT_SECRET must be at least {MIN_SECRET_LEN} bytes long"
            ));
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Ok(Keys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        })
    }

    /// Mints an access token for a user.
    pub fn mint(&self, user_id: Uuid, role: Role, token_version: i32) -> Result<String> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user_id,
            role,
            ver: token_version,
            iat: now,
            exp: now + TOKEN_TTL_SECONDS,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|error| Error::Internal(format!("cannot sign a token: {error}")))
    }

    /// Verifies signature (HS256 only) and expiry.
    pub fn verify(&self, token: &str) -> Result<Claims> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|_| Error::Unauthorized)
    }
}

/// A secret for the managed database, made once and kept in the data
/// directory with mode 0600. A secret that is there is read as it is. Else
/// one process at a time makes it, under an exclusive lock of `<path>.lock`,
/// so that two processes starting at once agree on one secret. It is written
/// whole to a file of its own, then renamed into place, so a crash never
/// leaves `path` empty or half written. An empty `path` (left by an older
/// version's crash) signed nothing and is replaced.
pub fn load_or_create_secret(path: &Path) -> std::io::Result<String> {
    if let Some(secret) = read_secret(path)? {
        return Ok(secret);
    }
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(lock_path)?;
    // Released when `lock` is closed, at the end of this function.
    lock.lock()?;
    // Another process may have made it while this one waited.
    if let Some(secret) = read_secret(path)? {
        return Ok(secret);
    }
    let mut bytes = [0u8; 48];
    OsRng.fill_bytes(&mut bytes);
    let secret: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    let mut draft = path.as_os_str().to_owned();
    draft.push(".new");
    let draft = std::path::PathBuf::from(draft);
    // A draft left by a crash is of no use.
    match fs::remove_file(&draft) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    let written = write_new(&draft, &secret).and_then(|()| fs::rename(&draft, path));
    if written.is_err() {
        let _ = fs::remove_file(&draft);
    }
    written?;
    // The rename itself is on disk once the directory is.
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(secret)
}

/// The secret in `path`; `None` when the file is missing or empty.
fn read_secret(path: &Path) -> std::io::Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(secret) if !secret.trim().is_empty() => Ok(Some(secret.trim().to_owned())),
        Ok(_) => Ok(None),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

/// Creates `path` (mode 0600), which must not exist, with `secret` in it, on disk.
fn write_new(path: &Path, secret: &str) -> std::io::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(secret.as_bytes())?;
    file.sync_all()
}

/// The caller, from `Authorization: Bearer <token>`, as the database knows it
/// now: a deleted user's token stops working, a changed role applies at once.
#[derive(Debug, Clone, Copy)]
pub struct AuthUser {
    pub id: Uuid,
    pub role: Role,
}

impl AuthUser {
    /// `403` unless the caller has at least `role`.
    pub fn require(&self, role: Role) -> Result<()> {
        if self.role >= role {
            Ok(())
        } else {
            Err(Error::Forbidden)
        }
    }

    pub fn is_staff(&self) -> bool {
        self.role >= Role::Staff
    }
}

impl<S> FromRequestParts<S> for AuthUser
where
    S: Send + Sync,
    Arc<Keys>: FromRef<S>,
    PgPool: FromRef<S>,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        let claims = TokenClaims::from_request_parts(parts, state).await?.0;
        let pool = PgPool::from_ref(state);
        let role = crate::db::users::find_caller_role(&pool, claims.sub, claims.ver)
            .await?
            .ok_or(Error::Unauthorized)?;
        Ok(AuthUser {
            id: claims.sub,
            role,
        })
    }
}

/// A caller with at least the staff role; anyone else answers `403`.
#[derive(Debug, Clone, Copy)]
pub struct Staff(pub AuthUser);

/// A caller with the admin role; anyone else answers `403`.
#[derive(Debug, Clone, Copy)]
pub struct Admin(pub AuthUser);

macro_rules! at_least {
    ($extractor:ident, $role:expr) => {
        impl<S> FromRequestParts<S> for $extractor
        where
            S: Send + Sync,
            Arc<Keys>: FromRef<S>,
            PgPool: FromRef<S>,
        {
            type Rejection = Error;

            async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
                let caller = AuthUser::from_request_parts(parts, state).await?;
                caller.require($role)?;
                Ok($extractor(caller))
            }
        }
    };
}

at_least!(Staff, Role::Staff);
at_least!(Admin, Role::Admin);

/// A verified token's claims, without asking the database; for `POST /book`,
/// whose one statement checks the caller itself.
pub struct TokenClaims(pub Claims);

impl<S> FromRequestParts<S> for TokenClaims
where
    S: Send + Sync,
    Arc<Keys>: FromRef<S>,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            // The scheme name is case-insensitive (RFC 9110).
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .ok_or(Error::Unauthorized)?
            .1;
        Arc::<Keys>::from_ref(state)
            .verify(token.trim())
            .map(TokenClaims)
    }
}

/// Checks of a user's current password (`PATCH /users/{self}`) per user: a
/// burst, then one per period, as `/auth/*` per address, so that a stolen
/// token cannot try password after password. Per process.
#[derive(Clone)]
pub struct PasswordChecks(Arc<governor::DefaultKeyedRateLimiter<Uuid>>);

impl PasswordChecks {
    pub fn new(burst: u32, period: Duration) -> PasswordChecks {
        let burst = std::num::NonZeroU32::new(burst).unwrap_or(std::num::NonZeroU32::MIN);
        let quota = governor::Quota::with_period(period.max(Duration::from_millis(1)))
            .unwrap_or_else(|| governor::Quota::per_second(std::num::NonZeroU32::MIN))
            .allow_burst(burst);
        PasswordChecks(Arc::new(governor::RateLimiter::keyed(quota)))
    }

    /// Takes one check for `user`, or answers `429` with the seconds to wait.
    pub fn take(&self, user: Uuid) -> Result<(), crate::error::Error> {
        use governor::clock::{Clock, DefaultClock};
        self.0.check_key(&user).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            crate::error::Error::TooManyRequests(wait.as_secs().max(1))
        })
    }
}
