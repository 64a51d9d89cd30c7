//! Why this module exists: one journal, one writer. Two runs appending to the same `OUT.journal`
//! (two `resume`s, or a `resume` while the original run is still alive) each end by writing the
//! handoff from their own secrets, so the last one to finish replaces the other's: half of the
//! secrets then survive only in the journal, and both runs exit 0. Every run that writes a
//! journal (create, rotate, resume; `--force` included) therefore holds an exclusive lock for its
//! whole length, taken before the journal is read, created or moved aside and before any request
//! is sent; a second run refuses at once (exit 2) and names the holder. See docs/DESIGN.md §4.
//!
//! The lock is `flock(LOCK_EX | LOCK_NB)` on a sidecar file `OUT.journal.lock` (0600), not on
//! the journal itself: a create's journal does not exist yet when the lock must be taken, and
//! `--force` renames the old one aside. The kernel drops a flock when its holder dies, however it
//! dies, so a lock file left behind by a SIGKILLed run blocks nobody: the next run locks it and
//! writes itself in. The lock is the flock, never the file's existence; the file's content (the
//! holder's pid, command and start time) only feeds the refusal message. A finishing holder
//! unlinks the file while it still holds the lock; a run that opened the old file just before
//! then locks an inode no path names, so after locking it checks that the path still names the
//! inode it holds, and starts again if not.

use crate::error::Problem;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `OUT.journal.lock` for the journal `OUT.journal`.
pub fn lock_path(journal: &Path) -> PathBuf {
    let mut s = journal.as_os_str().to_os_string();
    s.push(".lock");
    PathBuf::from(s)
}

/// Who holds a journal: what the lock file says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    /// `create`, `rotate` or `resume`.
    pub command: String,
    /// RFC 3339 UTC.
    pub started: String,
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "tokenfleet {} (pid {}, started {})",
            self.command, self.pid, self.started
        )
    }
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another run holds it. `holder` is `None` when its lock file names nobody readable.
    #[error("{}: in use by {}", journal.display(), holder_text(holder.as_ref()))]
    Busy {
        journal: PathBuf,
        holder: Option<Holder>,
    },
    /// The lock file cannot be opened or locked.
    #[error("{}: cannot lock it: {error}", path.display())]
    Io { path: PathBuf, error: io::Error },
}

fn holder_text(holder: Option<&Holder>) -> String {
    match holder {
        Some(h) => h.to_string(),
        None => "another tokenfleet run".to_string(),
    }
}

impl LockError {
    /// The refusal as an input problem (exit 2: nothing was contacted).
    pub fn problem(&self) -> Problem {
        match self {
            LockError::Busy { journal, holder } => Problem::new(
                journal.display().to_string(),
                format!("in use by {}", holder_text(holder.as_ref())),
            )
            .hint("wait for it to finish, or stop it; this run changed nothing"),
            LockError::Io { path, error } => Problem::new(
                path.display().to_string(),
                format!("cannot create or lock the journal's lock file: {error}"),
            )
            .hint(
                "the journal's folder must be writable and not full, and the lock file a regular \
                 file (remove it if it is not: it holds no secret)",
            ),
        }
    }
}

/// How often a run starts again because the lock file it locked was unlinked meanwhile. Each
/// retry means a holder finished in between, so a handful is plenty.
const MAX_ATTEMPTS: usize = 16;

/// How long a refused run waits for a holder that has locked but not yet written itself in.
const HOLDER_WAIT: Duration = Duration::from_millis(200);

/// An exclusive lock on a journal, held until dropped (the lock file is then removed).
#[derive(Debug)]
pub struct JournalLock {
    file: File,
    path: PathBuf,
}

impl JournalLock {
    /// Lock the journal a new run creates at `journal` (create, rotate; `--force` included),
    /// whether or not a file is there yet. The lock file is `journal` + `.lock`, beside it.
    pub fn for_new(journal: &Path, command: &str) -> Result<JournalLock, LockError> {
        Self::acquire(journal, &lock_path(journal), command)
    }

    /// Lock the existing journal that `journal` names (resume): a symlink is followed, so every
    /// path to one journal takes the same lock.
    pub fn for_existing(journal: &Path, command: &str) -> Result<JournalLock, LockError> {
        let is_link = fs::symlink_metadata(journal).is_ok_and(|m| m.file_type().is_symlink());
        let real = match is_link {
            true => fs::canonicalize(journal).unwrap_or_else(|_| journal.to_path_buf()),
            false => journal.to_path_buf(),
        };
        Self::acquire(journal, &lock_path(&real), command)
    }

    fn acquire(journal: &Path, path: &Path, command: &str) -> Result<JournalLock, LockError> {
        let io_err = |error: io::Error| LockError::Io {
            path: path.to_path_buf(),
            error,
        };
        for _ in 0..MAX_ATTEMPTS {
            // No O_TRUNC: the file may be a live holder's, whose content names it. No symlink
            // is followed: a planted link must not make this run truncate another file.
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(path)
                .map_err(io_err)?;
            if !try_flock(&file).map_err(io_err)? {
                return Err(LockError::Busy {
                    journal: journal.to_path_buf(),
                    holder: read_holder(&file),
                });
            }
            if !names_inode(path, &file).map_err(io_err)? {
                continue; // unlinked by a finishing holder after we opened it: start again
            }
            let me = Holder {
                pid: std::process::id(),
                command: command.to_string(),
                started: crate::time::now_rfc3339(),
            };
            let mut line = serde_json::to_vec(&me).map_err(|e| io_err(io::Error::other(e)))?;
            line.push(b'\n');
            if let Err(e) = file.set_len(0).and_then(|()| file.write_all_at(&line, 0)) {
                // A full disk, most likely: leave no half-written lock file (we still hold it).
                let _ = fs::remove_file(path);
                return Err(io_err(e));
            }
            return Ok(JournalLock {
                file,
                path: path.to_path_buf(),
            });
        }
        Err(io_err(io::Error::other(
            "the lock file kept being replaced while this run tried to lock it",
        )))
    }

    #[cfg(test)]
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for JournalLock {
    /// Unlink the lock file while still holding the lock (the flock goes with the file handle,
    /// closed right after), unless the path no longer names it.
    fn drop(&mut self) {
        if names_inode(&self.path, &self.file).unwrap_or(false) {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// `flock(LOCK_EX | LOCK_NB)`: true when locked, false when another open file holds it.
fn try_flock(file: &File) -> io::Result<bool> {
    loop {
        // SAFETY: the descriptor is valid for as long as `file` lives, which spans the call.
        let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(e),
        }
    }
}

/// Whether `path` still names the inode `file` has open.
fn names_inode(path: &Path, file: &File) -> io::Result<bool> {
    let held = file.metadata()?;
    match fs::symlink_metadata(path) {
        Ok(now) => Ok(now.dev() == held.dev() && now.ino() == held.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// What a held lock file says about its holder. A holder writes itself in right after locking,
/// so an empty or half-written file is read again for a moment before giving up on it.
fn read_holder(file: &File) -> Option<Holder> {
    let deadline = std::time::Instant::now() + HOLDER_WAIT;
    loop {
        let mut text = String::new();
        let mut f = file;
        let read = f
            .read_to_string(&mut text)
            .ok()
            .and_then(|_| serde_json::from_str::<Holder>(text.trim()).ok());
        if read.is_some() || std::time::Instant::now() >= deadline {
            return read;
        }
        std::thread::sleep(Duration::from_millis(10));
        // Read from the start again next time.
        let _ = io::Seek::seek(&mut f, io::SeekFrom::Start(0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_second_lock_conflicts_and_names_the_holder() {
        let d = tempfile::tempdir().unwrap();
        let journal = d.path().join("out.age.journal");
        let first = JournalLock::for_new(&journal, "create").unwrap();
        let lock_file = d.path().join("out.age.journal.lock");
        assert_eq!(first.path(), lock_file);
        assert_eq!(
            fs::metadata(&lock_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // A second open of the same file in this process: flock locks belong to the open file,
        // so this conflicts exactly as another process would.
        let e = JournalLock::for_new(&journal, "resume").unwrap_err();
        let LockError::Busy { holder, .. } = &e else {
            panic!("{e}")
        };
        let holder = holder.as_ref().expect("the holder wrote itself in");
        assert_eq!(holder.pid, std::process::id());
        assert_eq!(holder.command, "create");
        assert!(holder.started.ends_with('Z'), "{}", holder.started);
        let p = e.problem().to_string();
        assert!(
            p.contains("out.age.journal: in use by tokenfleet create (pid ")
                && p.contains("hint: wait for it to finish, or stop it; this run changed nothing"),
            "{p}"
        );
        // The refused attempt left the holder's lock and content alone.
        assert!(JournalLock::for_existing(&journal, "resume").is_err());
        drop(first);
        assert!(!lock_file.exists(), "the holder removes its lock file");
        let again = JournalLock::for_new(&journal, "resume").unwrap();
        drop(again);
    }

    /// A run killed with SIGKILL leaves its lock file behind, unlocked (the kernel dropped the
    /// flock): the next run takes it over and writes itself in.
    #[test]
    fn a_stale_lock_file_blocks_nobody() {
        let d = tempfile::tempdir().unwrap();
        let journal = d.path().join("j");
        let lock_file = lock_path(&journal);
        fs::write(
            &lock_file,
            "{\"pid\":999999,\"command\":\"create\",\"started\":\"2020-01-01T00:00:00Z\"}\n\
             and a long tail that must not survive the rewrite\n",
        )
        .unwrap();
        let lock = JournalLock::for_new(&journal, "resume").unwrap();
        let text = fs::read_to_string(&lock_file).unwrap();
        let holder: Holder = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(holder.pid, std::process::id());
        assert_eq!(holder.command, "resume");
        drop(lock);
        assert!(!lock_file.exists());
    }

    /// A locked file that names nobody (a holder that has not written itself in) still refuses.
    #[test]
    fn an_unreadable_holder_still_refuses() {
        let d = tempfile::tempdir().unwrap();
        let journal = d.path().join("j");
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(lock_path(&journal))
            .unwrap();
        assert!(try_flock(&f).unwrap());
        let e = JournalLock::for_new(&journal, "create").unwrap_err();
        assert!(matches!(e, LockError::Busy { holder: None, .. }), "{e:?}");
        assert!(e.to_string().contains("in use by another tokenfleet run"));
    }

    /// The lock file replaced under a run that opened it: it locks the new one, not the
    /// unlinked inode, so two runs never both believe they hold the journal.
    #[test]
    fn an_unlinked_lock_file_is_not_a_lock() {
        let d = tempfile::tempdir().unwrap();
        let journal = d.path().join("j");
        let path = lock_path(&journal);
        let old = File::create(&path).unwrap();
        fs::remove_file(&path).unwrap();
        assert!(!names_inode(&path, &old).unwrap());
        let lock = JournalLock::for_new(&journal, "create").unwrap();
        assert!(names_inode(&path, &lock.file).unwrap());
        // The unlinked inode can be flocked by anyone: it guards nothing.
        assert!(try_flock(&old).unwrap());
        assert!(JournalLock::for_new(&journal, "resume").is_err());
    }

    #[test]
    fn a_symlinked_lock_file_is_refused_and_left_alone() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        fs::write(&victim, "keep me").unwrap();
        let journal = d.path().join("j");
        std::os::unix::fs::symlink(&victim, lock_path(&journal)).unwrap();
        let e = JournalLock::for_new(&journal, "create").unwrap_err();
        assert!(matches!(e, LockError::Io { .. }), "{e:?}");
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep me");
    }

    /// Resume through a symlink to the journal takes the same lock as through its real path.
    #[test]
    fn every_path_to_a_journal_takes_one_lock() {
        let d = tempfile::tempdir().unwrap();
        let journal = d.path().join("out.age.journal");
        fs::write(&journal, "{}\n").unwrap();
        let link = d.path().join("link.journal");
        std::os::unix::fs::symlink(&journal, &link).unwrap();
        let held = JournalLock::for_existing(&journal, "resume").unwrap();
        let e = JournalLock::for_existing(&link, "resume").unwrap_err();
        assert!(matches!(e, LockError::Busy { .. }), "{e:?}");
        assert!(e.to_string().starts_with(&link.display().to_string()));
        drop(held);
    }
}
