//! Files that other processes read: created private (0600 files, 0700
//! directories) and written atomically (temp file, fsync, rename), so that a
//! reader sees the old file or the whole new one, never half of it. Never
//! follows a symlink where it reads something another process wrote.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` and its missing parents with mode 0700.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

fn temp_sibling(path: &Path) -> std::path::PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    path.with_file_name(format!(".{name}.{}.{nonce}.tmp", std::process::id()))
}

fn write_temp(
    path: &Path,
    data: &[u8],
    mode: u32,
    durable: bool,
) -> io::Result<std::path::PathBuf> {
    let tmp = temp_sibling(path);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)?;
    let res = f
        .write_all(data)
        .and_then(|_| if durable { f.sync_all() } else { Ok(()) });
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(tmp)
}

/// Writes `data` to `path` atomically with `mode`, replacing what was there,
/// and flushed to disk before it appears (for files that must survive a crash).
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    replace(path, data, mode, true)
}

/// Like [`write_atomic`] without the flush: still all-or-nothing for
/// readers, for state that is read within moments and never needed after a
/// power loss (markers, a reply about to be collected). Saves a disk flush
/// on every turn.
pub fn write_atomic_volatile(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    replace(path, data, mode, false)
}

fn replace(path: &Path, data: &[u8], mode: u32, durable: bool) -> io::Result<()> {
    let tmp = write_temp(path, data, mode, durable)?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))?;
    fs::rename(&tmp, path).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// Writes `data` to `path` atomically (not flushed, as
/// [`write_atomic_volatile`]) unless `path` already exists. Returns
/// `Ok(false)` when it existed (nothing was changed).
pub fn write_atomic_new(path: &Path, data: &[u8], mode: u32) -> io::Result<bool> {
    let tmp = write_temp(path, data, mode, false)?;
    let res = rustix::fs::renameat_with(
        rustix::fs::CWD,
        &tmp,
        rustix::fs::CWD,
        path,
        rustix::fs::RenameFlags::NOREPLACE,
    );
    match res {
        Ok(()) => Ok(true),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            if e == rustix::io::Errno::EXIST {
                Ok(false)
            } else {
                Err(e.into())
            }
        }
    }
}

/// Reads `path` if it is a regular file (not a symlink, not a directory),
/// at most `limit` bytes. `Ok(None)` when there is no such regular file.
pub fn read_regular(path: &Path, limit: u64) -> io::Result<Option<Vec<u8>>> {
    let f = match OpenOptions::new()
        .read(true)
        .custom_flags(
            rustix::fs::OFlags::NOFOLLOW.bits() as i32 | rustix::fs::OFlags::NONBLOCK.bits() as i32,
        )
        .open(path)
    {
        Ok(f) => f,
        Err(e) if matches!(e.kind(), io::ErrorKind::NotFound) => return Ok(None),
        // ELOOP: a symlink, which never counts.
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    if !f.metadata()?.is_file() {
        return Ok(None);
    }
    let mut buf = Vec::new();
    File::take(f, limit).read_to_end(&mut buf)?;
    Ok(Some(buf))
}

/// Whether `path` exists without following a final symlink.
pub fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_are_private_and_new_means_new() {
        let d = std::env::temp_dir().join(format!("paliadin-fsutil-{}", std::process::id()));
        private_dir(&d.join("x")).unwrap();
        assert_eq!(
            fs::metadata(d.join("x")).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let p = d.join("x/f");
        write_atomic(&p, b"one", 0o600).unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!write_atomic_new(&p, b"two", 0o600).unwrap());
        assert_eq!(read_regular(&p, 100).unwrap().unwrap(), b"one");
        std::os::unix::fs::symlink(&p, d.join("x/link")).unwrap();
        assert_eq!(read_regular(&d.join("x/link"), 100).unwrap(), None);
        assert_eq!(read_regular(&d.join("x"), 100).unwrap(), None);
        assert_eq!(
            fs::read_dir(d.join("x")).unwrap().count(),
            2,
            "no temp file left behind"
        );
        fs::remove_dir_all(&d).unwrap();
    }
}
