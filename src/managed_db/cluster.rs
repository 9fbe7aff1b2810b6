//! A new cluster: `initdb` with a generated superuser password, kept in
//! the data directory.

use super::*;

/// Runs `initdb` with password authentication and a generated superuser
/// password, then keeps the password in the data directory.
pub(super) async fn init_cluster(
    bin_dir: &Path,
    data_dir: &Path,
    owner: Option<&User>,
) -> Result<(), ManagedDbError> {
    let io_error = |what| {
        let dir = data_dir.to_path_buf();
        move |source| ManagedDbError::Io { what, dir, source }
    };
    let password = random_hex(32).map_err(io_error("cannot generate a password"))?;
    // initdb wants the data directory empty: the password waits beside it.
    let pwfile = PasswordFile::create(data_dir, &password, owner)
        .map_err(io_error("cannot write initdb's password file"))?;
    let mut command = tokio::process::Command::new(bin_dir.join("initdb"));
    command
        .arg("-D")
        .arg(data_dir)
        .arg("--pwfile")
        .arg(&pwfile.0)
        .args([
            "-U",
            SUPERUSER,
            "--auth-local=scram-sha-256",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
            "--no-instructions",
        ])
        .stdin(Stdio::null());
    if let Some(user) = owner {
        command.uid(user.uid.as_raw()).gid(user.gid.as_raw());
    }
    let output = command
        .output()
        .await
        .map_err(io_error("cannot run initdb"))?;
    drop(pwfile);
    if !output.status.success() {
        return Err(ManagedDbError::InitDb {
            dir: data_dir.to_path_buf(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        });
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(data_dir.join(PASSWORD_FILE))
        .map_err(io_error("cannot keep the superuser's password"))?;
    file.write_all(password.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io_error("cannot keep the superuser's password"))?;
    tracing::info!(dir = %data_dir.display(), "created a PostgreSQL cluster");
    Ok(())
}

/// The superuser's password, or `None` for a cluster made with `trust`.
pub(super) fn read_password(data_dir: &Path) -> Result<Option<String>, ManagedDbError> {
    match fs::read_to_string(data_dir.join(PASSWORD_FILE)) {
        Ok(password) => Ok(Some(password.trim().to_owned()).filter(|p| !p.is_empty())),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ManagedDbError::Io {
            what: "cannot read the superuser's password",
            dir: data_dir.to_path_buf(),
            source,
        }),
    }
}

/// initdb's `--pwfile` for the time it runs, removed on drop. As root it
/// goes beside the data directory (whose parent the server's user must be
/// able to reach anyway), readable by that user only; else in the temporary
/// directory.
pub(super) struct PasswordFile(PathBuf);

impl PasswordFile {
    fn create(data_dir: &Path, password: &str, owner: Option<&User>) -> io::Result<PasswordFile> {
        let dir = match (owner, data_dir.parent()) {
            (Some(_), Some(parent)) => parent.to_path_buf(),
            _ => std::env::temp_dir(),
        };
        let path = dir.join(format!(".room-booking-initdb-{}", random_hex(8)?));
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        let pwfile = PasswordFile(path);
        file.write_all(password.as_bytes())?;
        if let Some(user) = owner {
            std::os::unix::fs::fchown(&file, Some(user.uid.as_raw()), Some(user.gid.as_raw()))?;
        }
        Ok(pwfile)
    }
}

impl Drop for PasswordFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

pub(super) fn random_hex(bytes: usize) -> io::Result<String> {
    let mut buffer = vec![0u8; bytes];
    OsRng
        .try_fill_bytes(&mut buffer)
        .map_err(io::Error::other)?;
    Ok(buffer.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// Percent-encodes all but unreserved characters and `/`.
pub(super) fn percent_encode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                char::from(byte).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}
