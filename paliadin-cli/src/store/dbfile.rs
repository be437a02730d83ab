//! The turn log's files before SQLite opens them: the database, its `-wal`
//! and its `-shm`, each a regular file of this user reached without a
//! symlink, created here, 0600 from its first byte whatever the umask, when
//! missing. SQLite would follow a symlink planted at any of the three names
//! and create its target with the umask's mode (issue 17: a world-readable
//! log). Never reads or writes a row.

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::StoreError;

/// The three files SQLite keeps for a database in WAL mode.
fn files(db: &Path) -> [PathBuf; 3] {
    let with = |suffix: &str| {
        let mut s = db.as_os_str().to_owned();
        s.push(suffix);
        PathBuf::from(s)
    };
    [db.to_path_buf(), with("-wal"), with("-shm")]
}

/// Makes sure each of the database's files is safe to open: a symlink, a
/// non-regular file or a file of another user is refused (nothing is
/// created anywhere); a missing one is created empty with mode 0600.
pub fn prepare(db: &Path) -> Result<(), StoreError> {
    let uid = rustix::process::geteuid().as_raw();
    for f in files(db) {
        match std::fs::symlink_metadata(&f) {
            Ok(m) if m.file_type().is_symlink() => return Err(unsafe_file(&f, "it is a symlink")),
            Ok(m) if !m.file_type().is_file() => {
                return Err(unsafe_file(&f, "it is not a regular file"))
            }
            Ok(m) if m.uid() != uid => {
                return Err(unsafe_file(&f, &format!("it belongs to uid {}", m.uid())))
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => create(&f)?,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Creates `f` exclusively (never through a symlink) and sets 0600 on the
/// open file, so that no umask widens or narrows it. One that another
/// process created first is fine: it is checked like any existing file.
fn create(f: &Path) -> Result<(), StoreError> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc_nofollow())
        .open(f)
    {
        Ok(file) => {
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match std::fs::symlink_metadata(f) {
            Ok(m) if m.file_type().is_file() => Ok(()),
            _ => Err(unsafe_file(f, "something else appeared there")),
        },
        Err(e) => Err(e.into()),
    }
}

fn libc_nofollow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

fn unsafe_file(f: &Path, why: &str) -> StoreError {
    StoreError::Unsafe {
        path: f.to_path_buf(),
        why: why.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlink_at_any_of_the_files_is_refused_and_nothing_is_created() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("target");
        for suffix in ["", "-wal", "-shm"] {
            let db = tmp.path().join(format!("log{}.db", suffix.len()));
            let mut at = db.as_os_str().to_owned();
            at.push(suffix);
            std::os::unix::fs::symlink(&target, &at).unwrap();
            let e = prepare(&db).unwrap_err();
            assert!(e.to_string().contains("symlink"), "{e}");
            assert!(!target.exists(), "nothing created at the link's target");
        }
    }

    #[test]
    fn missing_files_are_made_private_whatever_the_umask() {
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("log.db");
        prepare(&db).unwrap();
        for f in files(&db) {
            let m = std::fs::symlink_metadata(&f).unwrap();
            assert_eq!(m.permissions().mode() & 0o777, 0o600, "{}", f.display());
        }
        // Again: existing private files are fine.
        prepare(&db).unwrap();
    }
}
