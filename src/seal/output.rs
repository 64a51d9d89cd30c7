//! Why this file exists: one run's sealing side in one value. [`Output`] is prepared (and so
//! validated) before anything is contacted: the journal locked for the whole run (one writer per
//! journal, see `lock.rs`), recipients parsed, passphrase read, `-o` and its journal checked.
//! During the run, [`JournalLedger`] is the run module's [`Ledger`]: every step of every
//! mutation becomes a durable journal record, each new secret sealed on its own. At the end, the
//! handoff file is written from the minted tokens.

use super::handoff::HandoffFormat;
use super::journal::{
    Action, Event, EventDetail, Journal, JournalSealing, PlanRecord, journal_path,
};
use super::lock::JournalLock;
use super::recipients::Recipients;
use super::sealer::{SealError, Sealer};
use crate::error::{InputError, Problem};
use crate::outcome::{Ledger, Minted};
use crate::secret::Secret;
use std::io;
use std::path::{Path, PathBuf};

/// The sealing flags of a run, as given: `-o`, `--journal`, `-r`, `-R`, `--passphrase`,
/// `--armor`, `--format`, `--force`; and the command (`create`, `rotate`) the journal's lock
/// names.
#[derive(Debug, Clone, Copy)]
pub struct SealRequest<'a> {
    pub command: &'a str,
    /// `-o`; `-` is standard output; `None`: no handoff file (the secrets go to a store, `--to`).
    pub output: Option<&'a Path>,
    /// `--journal`; `None`: `OUT.journal`, or with `-o -` `tokenfleet-RUN.journal` here.
    pub journal: Option<&'a Path>,
    /// The run's id (the default journal name of `-o -`).
    pub run_id: &'a str,
    /// Standard output is a terminal: binary `-o -` is refused there, as age does.
    pub stdout_is_terminal: bool,
    pub recipients: &'a [String],
    pub recipient_files: &'a [PathBuf],
    pub passphrase: bool,
    pub armor: bool,
    /// The handoff's plaintext is JSON (else CSV).
    pub json: bool,
    pub force: bool,
}

/// `-o -`: the handoff goes to standard output.
pub fn is_stdout(output: &Path) -> bool {
    output == Path::new("-")
}

/// The journal of a run: `--journal` as given, else `OUT.journal`, else (`-o -`)
/// `tokenfleet-RUN.journal` in the current folder (so too without `-o`).
pub fn journal_for(output: Option<&Path>, journal: Option<&Path>, run_id: &str) -> PathBuf {
    match (journal, output) {
        (Some(j), _) => j.to_path_buf(),
        (None, Some(out)) if !is_stdout(out) => journal_path(out),
        (None, _) => PathBuf::from(format!("tokenfleet-{run_id}.journal")),
    }
}

/// A journal named by `--journal` (or the default of `-o -`): not a folder, not there yet
/// (unless `--force`), in a folder that exists. `OUT.journal` is checked with `-o` itself.
fn check_journal(journal: &Path, force: bool) -> Result<(), Problem> {
    let shown = journal.display().to_string();
    if journal.file_name().is_none() {
        return Err(
            Problem::new("--journal", format!("'{shown}' is not a file path"))
                .hint("give a file name, e.g. --journal deploy.journal"),
        );
    }
    match std::fs::symlink_metadata(journal) {
        Ok(m) if m.is_dir() => {
            return Err(Problem::new("--journal", format!("{shown} is a folder"))
                .hint("give a file name inside it, e.g. --journal deploy.journal"));
        }
        Ok(_) if !force => {
            return Err(
                Problem::new("--journal", format!("{shown} already exists")).hint(format!(
                    "an earlier run left its journal: finish it with `tokenfleet resume {shown}`, \
                     or pass --force to start over (the old journal is kept aside)"
                )),
            );
        }
        _ => {}
    }
    let dir = crate::atomic::parent_dir(journal);
    if !std::fs::metadata(&dir).is_ok_and(|m| m.is_dir()) {
        return Err(Problem::new(
            "--journal",
            format!("folder {} does not exist", dir.display()),
        )
        .hint(format!(
            "create it first (mkdir -p {}) or fix the path",
            dir.display()
        )));
    }
    Ok(())
}

/// Where and how this run seals its secrets.
#[derive(Debug)]
pub struct Output {
    /// The handoff file; `-`: standard output; `None`: none (a store takes the secrets).
    path: Option<PathBuf>,
    journal: PathBuf,
    recipients: Recipients,
    armor: bool,
    format: HandoffFormat,
    force: bool,
    /// Held from before the journal is created (or an old one moved aside) until this value is
    /// dropped at the end of the run.
    _lock: JournalLock,
}

impl Output {
    /// Validate the sealing options and lock the journal: recipients (with the passphrase read
    /// now through `ask_passphrase`), the output path and its journal. The lock is taken first:
    /// a journal in use by another run is the one problem to report (its "already exists" would
    /// send the user to a `resume` that is refused too), and no passphrase is asked for a run
    /// that cannot start. Nothing is written yet but the lock file.
    pub fn prepare(
        req: &SealRequest<'_>,
        ask_passphrase: &mut dyn FnMut() -> Result<Secret, Problem>,
    ) -> Result<Output, InputError> {
        let SealRequest {
            command,
            output: path,
            journal: given_journal,
            run_id,
            stdout_is_terminal,
            recipients,
            recipient_files,
            passphrase,
            armor,
            json,
            force,
        } = *req;
        let stdout = path.is_some_and(is_stdout);
        // `OUT.journal` is checked with `-o` by `check_output`; any other journal here.
        let own_journal = stdout || path.is_none() || given_journal.is_some();
        let journal = journal_for(path, given_journal, run_id);
        let check_paths = || {
            let mut problems = Vec::new();
            if let Some(path) = path.filter(|_| !stdout)
                && let Err(p) = super::check_output(path, force)
            {
                problems.push(p);
            }
            if own_journal && let Err(p) = check_journal(&journal, force) {
                problems.push(p);
            }
            problems
        };
        let lock = match JournalLock::for_new(&journal, command) {
            Ok(lock) => Some(lock),
            Err(e @ super::LockError::Busy { .. }) => {
                return Err(InputError::one(e.problem()));
            }
            // A folder that is missing or not writable is reported by the path checks below.
            Err(e) => {
                let folder_ok = {
                    let ok_out = path
                        .filter(|_| !stdout)
                        .is_none_or(|p| super::check_output(p, true).is_ok());
                    ok_out && (!own_journal || check_journal(&journal, true).is_ok())
                };
                if folder_ok {
                    return Err(InputError::one(e.problem()));
                }
                None
            }
        };
        let mut problems = Vec::new();
        // --passphrase with -r/-R is refused before asking (no point typing it twice), and a
        // passphrase that cannot be read is the one problem to report (not also "no recipients").
        let combined = passphrase && (!recipients.is_empty() || !recipient_files.is_empty());
        let pass = if combined {
            Some(Secret::new(String::new()))
        } else if passphrase {
            match ask_passphrase() {
                Ok(p) => Some(p),
                Err(p) => {
                    problems.push(p);
                    None
                }
            }
        } else {
            None
        };
        let recipients = if passphrase && pass.is_none() {
            None
        } else {
            match Recipients::from_args(recipients, recipient_files, pass) {
                Ok(r) => Some(r),
                Err(e) => {
                    problems.extend(e.problems);
                    None
                }
            }
        };
        problems.extend(check_paths());
        if stdout && !armor && stdout_is_terminal {
            problems.push(
                Problem::new("-o -", "refusing to write binary age output to a terminal")
                    .hint("redirect it (`-o - > deploy.age`, `-o - | …`), or add --armor"),
            );
        }
        match (recipients, lock) {
            (Some(recipients), Some(lock)) if problems.is_empty() => Ok(Output {
                path: path.map(Path::to_path_buf),
                journal,
                recipients,
                armor,
                format: if json {
                    HandoffFormat::Json
                } else {
                    HandoffFormat::Csv
                },
                force,
                _lock: lock,
            }),
            _ => Err(InputError { problems }),
        }
    }

    pub fn journal_path(&self) -> &Path {
        &self.journal
    }

    /// Create the journal with the plan as its first record (its sealing filled in here).
    /// `lazy_created`: a plain create, whose `created` records need not wait for the disk.
    pub fn start_journal(
        &self,
        mut record: PlanRecord,
        lazy_created: bool,
    ) -> Result<JournalLedger, SealError> {
        let sealing = JournalSealing::new(&self.recipients)?;
        sealing.apply(&mut record);
        let journal = Journal::create(&self.journal, &record, self.force).map_err(|error| {
            SealError::CreateJournal {
                path: self.journal.clone(),
                error,
            }
        })?;
        Ok(JournalLedger {
            journal,
            sealer: sealing.sealer,
            lazy_created,
        })
    }

    /// The handoff file (`-o`); `-`: standard output; `None`: no handoff file.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub fn recipients(&self) -> &Recipients {
        &self.recipients
    }

    /// `--armor`, the plaintext format, and `--force`.
    pub fn handoff_options(&self) -> (bool, HandoffFormat, bool) {
        (self.armor, self.format, self.force)
    }
}

/// The run module names intents by word; the journal by type.
fn action_of(action: &str) -> Action {
    match action {
        "verify" => Action::Verify,
        "revoke" => Action::Revoke,
        _ => Action::Create,
    }
}

/// The journal, as the run module's ledger.
pub struct JournalLedger {
    journal: Journal,
    sealer: Sealer,
    /// Plain create: a `created` record need not be durable before the worker moves on (no
    /// further step follows for that account, and a lost record is reconciled from its durable
    /// `intent`); it is made durable by [`Ledger::flush`] before the run reports. Rotate waits,
    /// since verify and revoke follow.
    lazy_created: bool,
}

impl JournalLedger {
    /// Continue an existing journal (resume) with the sealing of its plan.
    pub fn resume(journal: Journal, sealer: Sealer, lazy_created: bool) -> JournalLedger {
        JournalLedger {
            journal,
            sealer,
            lazy_created,
        }
    }

    pub fn path(&self) -> &Path {
        self.journal.path()
    }

    /// Record that `handoff` was written whole (its digest), so a resume knows the file at
    /// `OUT` is this run's and may trust its rows. Best effort: without it, resume trusts the
    /// file less, never more.
    pub fn delivered(&self, handoff: &Path) {
        // Standard output left no file to vouch for (and `-` may name someone's file).
        if is_stdout(handoff) {
            return;
        }
        if let Ok(sha256) = crate::seal::journal::file_sha256(handoff) {
            let _ = self
                .journal
                .append(&Event::new("", "", "", EventDetail::Delivered { sha256 }));
        }
    }
}

impl Ledger for JournalLedger {
    fn intent(&self, host: &str, account: &str, token_name: &str, action: &str) -> io::Result<()> {
        let action = action_of(action);
        self.journal.append(&Event::new(
            host,
            account,
            token_name,
            EventDetail::Intent {
                action,
                names: Vec::new(),
                // The run writes a create intent only after a listing showed the name absent
                // (the Ledger contract): the record carries that proof for resume.
                absent: action == Action::Create,
            },
        ))
    }

    fn created(&self, m: &Minted) -> io::Result<()> {
        let sealed = self
            .sealer
            .seal_secret(&m.token.token)
            .map_err(|e| io::Error::other(format!("cannot seal the new token: {e}")))?;
        let event = Event::new(
            &m.host,
            &m.account,
            &m.token.name,
            EventDetail::Created {
                sealed,
                create_time: m.token.create_time,
                expires_at: m.token.expires_at,
                url: m.url.clone(),
            },
        );
        if self.lazy_created {
            self.journal.append_lazy(&event)
        } else {
            self.journal.append(&event)
        }
    }

    fn flush(&self) -> io::Result<()> {
        self.journal.flush()
    }

    fn verified(&self, host: &str, account: &str, token_name: &str) -> io::Result<()> {
        self.journal.append(&Event::new(
            host,
            account,
            token_name,
            EventDetail::Verified {},
        ))
    }

    fn revoked(
        &self,
        host: &str,
        account: &str,
        token_name: &str,
        names: &[String],
    ) -> io::Result<()> {
        self.journal.append(&Event::new(
            host,
            account,
            token_name,
            EventDetail::Revoked {
                names: names.to_vec(),
            },
        ))
    }

    fn failed(
        &self,
        host: &str,
        account: &str,
        token_name: &str,
        step: &str,
        error: &str,
    ) -> io::Result<()> {
        let detail = EventDetail::Failed {
            step: step.to_string(),
            error: error.to_string(),
        };
        self.journal
            .append(&Event::new(host, account, token_name, detail))
    }

    fn exists(&self, host: &str, account: &str, token_name: &str) -> io::Result<()> {
        self.journal.append(&Event::new(
            host,
            account,
            token_name,
            EventDetail::Exists {},
        ))
    }

    fn refused(&self, host: &str, account: &str, credential: &str, tag: &str) -> io::Result<()> {
        let detail = EventDetail::Refused {
            credential: credential.to_string(),
            tag: tag.to_string(),
        };
        self.journal.append(&Event::new(host, account, "", detail))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request<'a>(out: &'a Path, keys: &'a [String], tty: bool, armor: bool) -> SealRequest<'a> {
        SealRequest {
            command: "create",
            output: Some(out),
            journal: None,
            run_id: "0badcafe",
            stdout_is_terminal: tty,
            recipients: keys,
            recipient_files: &[],
            passphrase: false,
            armor,
            json: false,
            force: false,
        }
    }

    #[test]
    fn stdout_handoff_journal_and_terminal() {
        assert_eq!(
            journal_for(Some(Path::new("-")), None, "0badcafe"),
            PathBuf::from("tokenfleet-0badcafe.journal")
        );
        assert_eq!(
            journal_for(Some(Path::new("o.age")), None, "x"),
            PathBuf::from("o.age.journal")
        );
        assert_eq!(
            journal_for(Some(Path::new("-")), Some(Path::new("j")), "x"),
            PathBuf::from("j")
        );
        let d = tempfile::tempdir().unwrap();
        let key = vec![age::x25519::Identity::generate().to_public().to_string()];
        let mut never = || -> Result<Secret, Problem> { unreachable!() };
        // Binary to a terminal: refused, as age refuses it; armored is fine.
        let j = d.path().join("t.journal");
        let mut req = request(Path::new("-"), &key, true, false);
        req.journal = Some(&j);
        let e = Output::prepare(&req, &mut never).unwrap_err().to_string();
        assert!(e.contains("binary age output to a terminal"), "{e}");
        req.armor = true;
        let out = Output::prepare(&req, &mut never).unwrap();
        assert_eq!(
            (out.path(), out.journal_path()),
            (Some(Path::new("-")), j.as_path())
        );
        drop(out);
        // A --journal that is there already is refused, with the resume that finishes it.
        std::fs::write(&j, "{}").unwrap();
        let e = Output::prepare(&req, &mut never).unwrap_err().to_string();
        assert!(
            e.contains("already exists") && e.contains("tokenfleet resume"),
            "{e}"
        );
    }
}
