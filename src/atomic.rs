//! Why this module exists: a handoff file (or report) must never be half-written, world-readable
//! or silently clobbered. Every file tokenfleet writes goes through [`write_atomic`]: a temp file
//! in the same folder created 0600 with O_EXCL, written, fsynced, then renamed over the target
//! (or hard-linked when overwriting is not allowed), and the folder fsynced. Any failure removes
//! the temp file. [`check_output`] validates `-o` before a run so a bad path fails in second zero.

use crate::error::Problem;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The folder a path lives in (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// fsync a folder so a rename or a new file in it survives a crash.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = format!(
        ".{name}.tmp-{}-{:016x}",
        std::process::id(),
        fastrand::u64(..)
    );
    parent_dir(path).join(tmp)
}

/// Removes the temp file on drop unless disarmed: a failed write leaves nothing behind.
struct TempGuard {
    path: PathBuf,
    armed: bool,
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
/// Write `bytes` to `path` atomically with mode 0600.
///
/// With `force == false` an existing `path` is never replaced, even if it appears during the
/// write (the final step is a hard link, which fails if the target exists); the error then has
/// kind [`io::ErrorKind::AlreadyExists`]. Errors do not repeat the path: callers name it.
pub fn write_atomic(path: &Path, bytes: &[u8], force: bool) -> io::Result<()> {
    use std::io::Write;
    write_atomic_with(path, force, |file| file.write_all(bytes))
}

/// [`write_atomic`], with the content streamed by `write` into the temp file (the handoff is
/// encrypted straight into it, so no whole plaintext or ciphertext is ever held in memory).
pub fn write_atomic_with(
    path: &Path,
    force: bool,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    if path.file_name().is_none() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "output path has no file name",
        ));
    }
    if !force && fs::symlink_metadata(path).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "already exists",
        ));
    }
    let tmp = temp_path(path);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    let mut guard = TempGuard {
        path: tmp.clone(),
        armed: true,
    };
    write(&mut file)?;
    file.sync_all()?;
    drop(file);
    if force {
        fs::rename(&tmp, path)?;
        guard.armed = false;
    } else {
        match fs::hard_link(&tmp, path) {
            // The target now names the data; the temp name is removed by the guard.
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "already exists",
                ));
            }
            // Filesystems without hard links: the existence check above is the best we can do.
            Err(_) => {
                if fs::symlink_metadata(path).is_ok() {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        "already exists",
                    ));
                }
                fs::rename(&tmp, path)?;
                guard.armed = false;
            }
        }
    }
    drop(guard);
    sync_dir(&parent_dir(path))
}

fn dir_writable(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}

/// Validate `-o PATH` before the run: it must not exist (unless `force`), must not be a folder
/// nor a symlink to nowhere, and its folder must exist and be writable.
pub fn check_output(path: &Path, force: bool) -> Result<(), Problem> {
    let shown = path.display().to_string();
    if path.as_os_str().is_empty() || path.file_name().is_none() {
        return Err(Problem::new("-o", format!("'{shown}' is not a file path"))
            .hint("give a file name, e.g. -o tokens.age"));
    }
    // `metadata` follows a symlink and sees nothing at a dangling one, which then passed here and
    // failed only at the end, when tokens existed (the handoff is never written over a link
    // without --force). A link to nowhere is refused even with --force: it most likely points
    // where the secrets were meant to go (an unmounted volume?), and replacing it would put
    // them somewhere else.
    if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
        && fs::metadata(path).is_err()
    {
        let target = fs::read_link(path)
            .map(|t| t.display().to_string())
            .unwrap_or_else(|_| "?".into());
        return Err(Problem::new(
            "-o",
            format!("{shown} is a symlink to {target}, which does not exist"),
        )
        .hint("fix or remove the link, or choose another file name"));
    }
    match fs::metadata(path) {
        Ok(m) if m.is_dir() => {
            return Err(Problem::new("-o", format!("{shown} is a folder"))
                .hint("give a file name inside it, e.g. -o tokens.age"));
        }
        Ok(_) if !force => {
            return Err(Problem::new("-o", format!("{shown} already exists"))
                .hint("choose another file name, or pass --force to replace it"));
        }
        _ => {}
    }
    let mut journal = path.as_os_str().to_os_string();
    journal.push(".journal");
    let journal = PathBuf::from(journal);
    if !force && fs::symlink_metadata(&journal).is_ok() {
        return Err(
            Problem::new("-o", format!("{} already exists", journal.display())).hint(format!(
                "an earlier run left its journal: finish it with `tokenfleet resume {}`, or pass \
                 --force to start over (the old journal is kept aside)",
                journal.display()
            )),
        );
    }
    let dir = parent_dir(path);
    match fs::metadata(&dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(
                Problem::new("-o", format!("{} is not a folder", dir.display()))
                    .hint("fix the path of the output file"),
            );
        }
        Err(_) => {
            return Err(
                Problem::new("-o", format!("folder {} does not exist", dir.display())).hint(
                    format!(
                        "create it first (mkdir -p {}) or fix the path",
                        dir.display()
                    ),
                ),
            );
        }
    }
    if !dir_writable(&dir) {
        return Err(
            Problem::new("-o", format!("folder {} is not writable", dir.display()))
                .hint("choose a folder you can write to"),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn writes_0600_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("out.age");
        write_atomic(&p, b"hello", false).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"hello");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(entries(d.path()), vec!["out.age".to_string()]);
    }

    #[test]
    fn refuses_overwrite_without_force() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("out.age");
        fs::write(&p, b"old").unwrap();
        let e = write_atomic(&p, b"new", false).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&p).unwrap(), b"old");
        assert_eq!(entries(d.path()), vec!["out.age".to_string()]);
        write_atomic(&p, b"new", true).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(entries(d.path()), vec!["out.age".to_string()]);
    }

    #[test]
    fn failed_rename_leaves_no_temp_file() {
        let d = tempfile::tempdir().unwrap();
        // The target is a non-empty folder: rename over it fails after the temp file was written.
        let p = d.path().join("target");
        fs::create_dir(&p).unwrap();
        fs::write(p.join("keep"), b"x").unwrap();
        assert!(write_atomic(&p, b"data", true).is_err());
        assert_eq!(entries(d.path()), vec!["target".to_string()]);
    }

    #[test]
    fn missing_folder_fails_cleanly() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("nope").join("out.age");
        assert!(write_atomic(&p, b"data", false).is_err());
        assert!(entries(d.path()).is_empty());
    }

    #[test]
    fn check_output_cases() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("out.age");
        check_output(&p, false).unwrap();
        fs::write(&p, b"x").unwrap();
        let e = check_output(&p, false).unwrap_err();
        assert!(e.message.contains("already exists"), "{e}");
        assert!(e.hint.as_deref().unwrap().contains("--force"));
        check_output(&p, true).unwrap();
        let q = d.path().join("other.age");
        fs::write(d.path().join("other.age.journal"), b"{}").unwrap();
        let e = check_output(&q, false).unwrap_err();
        assert!(
            e.hint.as_deref().unwrap().contains("tokenfleet resume"),
            "{e}"
        );
        check_output(&q, true).unwrap();
        let e = check_output(&d.path().join("missing/out.age"), false).unwrap_err();
        assert!(e.message.contains("does not exist"), "{e}");
        let e = check_output(d.path(), true).unwrap_err();
        assert!(e.message.contains("is a folder"), "{e}");
        check_output(Path::new("relative-out.age"), false).unwrap();
    }

    #[test]
    fn check_output_refuses_a_dangling_symlink_even_with_force() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("out.age");
        std::os::unix::fs::symlink(d.path().join("gone/out.age"), &p).unwrap();
        for force in [false, true] {
            let e = check_output(&p, force).unwrap_err();
            assert!(
                e.message.contains("is a symlink to") && e.message.contains("does not exist"),
                "{e}"
            );
        }
        // A link to an existing file is an existing file; a link to a folder is a folder.
        fs::write(d.path().join("real.age"), b"x").unwrap();
        let live = d.path().join("live.age");
        std::os::unix::fs::symlink(d.path().join("real.age"), &live).unwrap();
        assert!(
            check_output(&live, false)
                .unwrap_err()
                .message
                .contains("already exists")
        );
        check_output(&live, true).unwrap();
        let dir_link = d.path().join("dir.age");
        std::os::unix::fs::symlink(d.path(), &dir_link).unwrap();
        assert!(
            check_output(&dir_link, true)
                .unwrap_err()
                .message
                .contains("is a folder")
        );
        // A dangling link at the journal's path is there: refused without --force (with it, the
        // link is moved aside like any old journal).
        let q = d.path().join("q.age");
        std::os::unix::fs::symlink(d.path().join("nowhere"), d.path().join("q.age.journal"))
            .unwrap();
        assert!(
            check_output(&q, false)
                .unwrap_err()
                .message
                .contains("q.age.journal already exists")
        );
        check_output(&q, true).unwrap();
    }
}
