//! The data directory: where the cluster lives, who owns it, and which
//! directories are never handed over.

use super::*;

/// Directories that are never a data directory: `chown`ing one of them to
/// the `postgres` user would break the system.
pub(super) const SYSTEM_DIRECTORIES: &[&str] = &[
    "/", "/tmp", "/var/tmp", "/home", "/root", "/etc", "/usr", "/var", "/dev", "/proc", "/sys",
    "/boot", "/bin", "/lib", "/opt", "/srv", "/run",
];

/// The data directory when none is given, relative to the working directory.
pub(super) const DEFAULT_DATA_DIR: &str = ".pgdata";

/// Where, as root, a default data directory the server's user cannot reach
/// goes instead: a directory per working directory, named by a hash of its path.
pub(super) const RELOCATED_DATA_DIRS: &str = "/var/lib/room-booking";

/// The data directory to use: `given`, or [`DEFAULT_DATA_DIR`]. As root,
/// PostgreSQL runs as another user, who must be able to enter every
/// directory above the cluster. When it cannot (a clone under `/root`, mode
/// 700), the default moves to `/var/lib/room-booking/<hash of its path>`,
/// and a given directory is refused with what to do.
pub fn data_dir(given: Option<&Path>) -> Result<PathBuf, ManagedDbError> {
    let chosen = given.unwrap_or(Path::new(DEFAULT_DATA_DIR));
    let Some(user) = server_user()? else {
        return Ok(chosen.to_path_buf());
    };
    let absolute = std::path::absolute(chosen).map_err(|source| ManagedDbError::Io {
        what: "cannot resolve the data directory",
        dir: chosen.to_path_buf(),
        source,
    })?;
    let Some(blocked) = closed_ancestor(&absolute, &user) else {
        return Ok(chosen.to_path_buf());
    };
    if given.is_some() {
        return Err(ManagedDbError::Unreachable {
            dir: absolute,
            blocked,
            user: user.name,
        });
    }
    let parent = Path::new(RELOCATED_DATA_DIRS);
    fs::create_dir_all(parent)
        .and_then(|()| fs::set_permissions(parent, fs::Permissions::from_mode(0o755)))
        .map_err(|source| ManagedDbError::Io {
            what: "cannot create the directory of relocated clusters",
            dir: parent.to_path_buf(),
            source,
        })?;
    let moved = parent.join(path_hash(&absolute));
    tracing::info!(
        dir = %moved.display(),
        instead_of = %absolute.display(),
        "the managed PostgreSQL's data directory moved: its user `{}` cannot enter {}",
        user.name,
        blocked.display()
    );
    Ok(moved)
}

/// The first directory above `path` that `user` may not enter (no search
/// permission for it, its group or others), if any.
pub(super) fn closed_ancestor(path: &Path, user: &User) -> Option<PathBuf> {
    path.ancestors()
        .skip(1)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .filter_map(|dir| fs::metadata(dir).ok().map(|metadata| (dir, metadata)))
        .find(|(_, metadata)| !may_enter(metadata, user))
        .map(|(dir, _)| dir.to_path_buf())
}

fn may_enter(metadata: &fs::Metadata, user: &User) -> bool {
    use std::os::unix::fs::MetadataExt;
    let mode = metadata.mode();
    if metadata.uid() == user.uid.as_raw() {
        mode & 0o100 != 0
    } else if metadata.gid() == user.gid.as_raw() {
        mode & 0o010 != 0
    } else {
        mode & 0o001 != 0
    }
}

/// The first 16 hex digits of the SHA-256 of `path`.
fn path_hash(path: &Path) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(path.as_os_str().as_bytes());
    digest[..8]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The unprivileged user to run PostgreSQL as, when we are root.
pub(super) fn server_user() -> Result<Option<User>, ManagedDbError> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    ["postgres", "nobody"]
        .into_iter()
        .find_map(|name| User::from_name(name).ok().flatten())
        .map(Some)
        .ok_or(ManagedDbError::NoUnprivilegedUser)
}

/// Creates the data directory unless it exists, checks it is safe to hand
/// over, then gives it to `owner` with mode 0700. Refused, and left as they
/// are: a symbolic link, a system or home directory, and a directory that
/// is neither empty nor a cluster already.
pub(super) fn prepare_data_dir(
    given: &Path,
    owner: Option<&User>,
) -> Result<PathBuf, ManagedDbError> {
    let io_error = |what| {
        let dir = given.to_path_buf();
        move |source| ManagedDbError::Io { what, dir, source }
    };
    match fs::symlink_metadata(given) {
        Ok(metadata) if metadata.file_type().is_symlink() => {
            return Err(ManagedDbError::Symlink(given.to_path_buf()));
        }
        Ok(metadata) if !metadata.is_dir() => {
            return Err(ManagedDbError::NotADirectory(given.to_path_buf()));
        }
        Ok(_) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(io_error("cannot read the data directory")(error)),
    }
    refuse_system_directory(
        &std::path::absolute(given).map_err(io_error("cannot resolve the data directory"))?,
    )?;
    fs::create_dir_all(given).map_err(io_error("cannot create the data directory"))?;
    let dir = fs::canonicalize(given).map_err(io_error("cannot resolve the data directory"))?;
    refuse_system_directory(&dir)?;

    // Owner and mode change through a descriptor opened without following a
    // link, so that the directory checked is the one changed.
    let handle = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_DIRECTORY | nix::libc::O_NOFOLLOW)
        .open(&dir)
        .map_err(io_error("cannot open the data directory"))?;
    let is_cluster = dir.join("PG_VERSION").is_file();
    let is_empty = fs::read_dir(&dir)
        .map_err(io_error("cannot read the data directory"))?
        .next()
        .is_none();
    if !is_cluster && !is_empty {
        return Err(ManagedDbError::NotACluster(dir));
    }
    if let Some(user) = owner {
        std::os::unix::fs::fchown(&handle, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
            .map_err(io_error(
                "cannot hand the data directory to the postgres user",
            ))?;
    }
    handle
        .set_permissions(fs::Permissions::from_mode(0o700))
        .map_err(io_error("cannot set the data directory's mode"))?;
    Ok(dir)
}

pub(super) fn refuse_system_directory(dir: &Path) -> Result<(), ManagedDbError> {
    let homes: Vec<PathBuf> = [
        std::env::var_os("HOME").map(PathBuf::from),
        User::from_uid(Uid::effective())
            .ok()
            .flatten()
            .map(|user| user.dir),
    ]
    .into_iter()
    .flatten()
    .filter(|home| home.is_absolute())
    .flat_map(|home| [fs::canonicalize(&home).ok(), Some(home)])
    .flatten()
    .collect();
    let forbidden = SYSTEM_DIRECTORIES
        .iter()
        .any(|system| dir == Path::new(system))
        || homes.iter().any(|home| dir == home);
    if forbidden {
        return Err(ManagedDbError::SystemDirectory(dir.to_path_buf()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_closed_to_the_user_is_found_above_the_cluster() {
        let top = std::env::temp_dir().join(format!("rb-closed-{}", std::process::id()));
        let closed = top.join("home");
        let clone = closed.join("clone");
        fs::create_dir_all(&clone).expect("directories");
        fs::set_permissions(&top, fs::Permissions::from_mode(0o755)).expect("chmod");
        fs::set_permissions(&closed, fs::Permissions::from_mode(0o700)).expect("chmod");
        // Someone who owns none of them.
        let stranger = User::from_name("nobody")
            .ok()
            .flatten()
            .expect("the nobody user");
        let found = closed_ancestor(&clone.join(".pgdata"), &stranger);
        fs::set_permissions(&closed, fs::Permissions::from_mode(0o711)).expect("chmod");
        let open = closed_ancestor(&clone.join(".pgdata"), &stranger);
        fs::remove_dir_all(&top).expect("clean up");
        assert_eq!(found, Some(closed));
        assert_eq!(open, None);
    }

    #[test]
    fn relocated_clusters_are_named_by_a_stable_hash_of_the_path() {
        let one = path_hash(Path::new("/root/room-booking/.pgdata"));
        assert_eq!(one.len(), 16);
        assert_eq!(one, path_hash(Path::new("/root/room-booking/.pgdata")));
        assert_ne!(one, path_hash(Path::new("/root/other/.pgdata")));
    }
}
