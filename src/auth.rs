//! Passwords: accepted as [`Password`] (never printed) and stored only as
//! Argon2id hashes with a random salt.

use std::fmt;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
use serde::Deserialize;

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

/// Checks the length and hashes with Argon2id on a blocking thread (it is
/// deliberately slow).
pub async fn hash_password(password: Password) -> Result<String> {
    let length = password.0.chars().count();
    if !(Password::MIN_LEN..=Password::MAX_LEN).contains(&length) {
        return Err(Error::validation(format!(
            "`password` must be between {} and {} characters",
            Password::MIN_LEN,
            Password::MAX_LEN
        )));
    }
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.0.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|error| Error::Internal(format!("password hashing failed: {error}")))
    })
    .await
    .map_err(|error| Error::Internal(format!("password hashing task failed: {error}")))?
}
