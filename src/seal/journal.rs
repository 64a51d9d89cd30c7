//! Why this module exists: a token is shown once, and a run can die at any moment. The journal
//! (docs/DESIGN.md §4) is the durable record that makes a crash survivable: JSON Lines, 0600,
//! append-only, every record fsynced before [`Journal::append`] returns, each new secret sealed
//! as its own age message. 32 workers append at once and an fsync costs milliseconds, so appends
//! use group commit: one thread fsyncs for every record already written while the others wait
//! on a condvar. Reading keeps every intact record: a torn last line (a crash mid-write) is
//! ignored, any other damaged line (or a lost plan line) is named, never a reason to refuse all.
//!
//! With `--passphrase`, sealing each secret with scrypt would cost ~1 s apiece, so a run
//! generates an ephemeral X25519 identity, seals journal secrets to it, and stores that identity
//! in the plan record sealed with the passphrase (one scrypt).

use super::handoff::HandoffRow;
use super::recipients::{RecipientKind, Recipients, parse_recipient};
use super::sealer::{Keys, SealError, Sealer};
use crate::atomic::{parent_dir, sync_dir};
use crate::secret::Secret;
use age::x25519;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};

/// The journal format version this build writes and reads.
pub const JOURNAL_VERSION: u32 = 1;

/// `OUT.journal` for the handoff path `OUT`.
pub fn journal_path(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_os_string();
    s.push(".journal");
    PathBuf::from(s)
}

pub use crate::time::now_rfc3339;

/// Remove the journal of a run that minted nothing and left nothing to finish (every target
/// `exists` or `unchanged`), so the same command runs again without `--force`. A journal that
/// cannot be removed is left in place: it holds no secret.
pub fn discard_journal(path: &Path) {
    let _ = std::fs::remove_file(path);
}

/// The SHA-256 of a file, hex: what a `delivered` record holds of the handoff it vouches for.
pub fn file_sha256(path: &Path) -> io::Result<String> {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    let mut f = File::open(path)?;
    io::copy(&mut f, &mut hasher)?;
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// The `"kind":"plan"` marker of the first record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum PlanKind {
    #[default]
    #[serde(rename = "plan")]
    Plan,
}

/// The first line of a journal: what the run set out to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanRecord {
    pub v: u32,
    pub kind: PlanKind,
    pub run_id: String,
    /// `create` or `rotate`.
    pub operation: String,
    /// Inventory path as given.
    pub inventory: String,
    pub inventory_sha256: String,
    pub name_template: String,
    /// `account` or `whm`.
    pub scope: String,
    /// Public keys (`age1…`) the handoff and the journal secrets are sealed to.
    pub recipients: Vec<String>,
    /// Sealed with `--passphrase`: journal secrets are sealed to [`PlanRecord::sealed_identity`].
    pub passphrase: bool,
    /// Passphrase mode only: base64 of an scrypt age message holding the run's ephemeral
    /// X25519 identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_identity: Option<String>,
    /// Free-form run options (limit, expiry, revoke glob, jobs…), for resume.
    #[serde(default)]
    pub options: serde_json::Value,
    /// RFC 3339 UTC.
    pub started: String,
}

impl Default for PlanRecord {
    fn default() -> Self {
        PlanRecord {
            v: JOURNAL_VERSION,
            kind: PlanKind::Plan,
            run_id: String::new(),
            operation: String::new(),
            inventory: String::new(),
            inventory_sha256: String::new(),
            name_template: String::new(),
            scope: "account".into(),
            recipients: Vec::new(),
            passphrase: false,
            sealed_identity: None,
            options: serde_json::Value::Object(Default::default()),
            started: now_rfc3339(),
        }
    }
}

/// What an `intent` is about to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Verify,
    Revoke,
}

/// The kind-specific part of an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum EventDetail {
    /// Written before a mutation is sent.
    Intent {
        action: Action,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        names: Vec<String>,
        /// Create only: a listing made by this run just before showed no token of this name
        /// (or this run had just revoked it). The proof that a token of this name found later
        /// was minted by this run: only then may reconcile revoke it as an orphan.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        absent: bool,
    },
    /// A token exists; `sealed` is base64 of a binary age message holding just the token.
    Created {
        sealed: String,
        create_time: i64,
        expires_at: Option<i64>,
        url: String,
    },
    Verified {},
    Revoked {
        names: Vec<String>,
    },
    Failed {
        step: String,
        error: String,
    },
    /// The token name already existed (create without rotate).
    Exists {},
    Skipped {
        #[serde(default)]
        reason: String,
    },
    /// A credential was refused on the host (`account` empty: the host's credential; `token_name`
    /// empty). `credential`: what it was (`WHM credential env:WHM_TOKEN`, `new tokens on the
    /// cPanel port`); `tag`: 4 hex digits of a slow digest of the run id and the secret
    /// ([`crate::secret::Secret::tag`]; `-` for new tokens at verify), enough to tell whether the
    /// secret changed, too few to guess it. A resume does not send a credential
    /// with the same tag again (unless `--retry-refused`): cPHulk counts across runs.
    Refused {
        credential: String,
        tag: String,
    },
    /// The handoff was written whole: the SHA-256 of the file. Only a file at `OUT` with this
    /// digest is this run's handoff (a resume may trust its rows); host, account and token
    /// name are empty.
    Delivered {
        sha256: String,
    },
    /// `resume --to` made this the run's store (its URL and the absolute paths of its files;
    /// never the token): later resumes deliver there too. Host, account and token name are
    /// empty.
    Store {
        to: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ca_file: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token_file: Option<String>,
    },
    /// A sweep's step for one owner (`step`: `intent`, `revoked` or `clean`), with each token
    /// it is about as the census saw it (name, class, flags, created, expires, ACLs,
    /// allow-list): the audit trail of an incident.
    Sweep {
        step: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tokens: Vec<crate::audit::AuditRow>,
    },
}

/// One journal line after the plan: something that happened to one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    // The target first: a line torn anywhere after its first few dozen bytes still says whose
    // it was, so resume can reconcile that target.
    pub host: String,
    pub account: String,
    pub token_name: String,
    #[serde(flatten)]
    pub detail: EventDetail,
    /// RFC 3339 UTC.
    pub at: String,
}

impl Event {
    /// An event stamped now.
    pub fn new(host: &str, account: &str, token_name: &str, detail: EventDetail) -> Event {
        Event {
            detail,
            host: host.to_string(),
            account: account.to_string(),
            token_name: token_name.to_string(),
            at: now_rfc3339(),
        }
    }

    /// `intent`, `created`, … as written in the file.
    pub fn kind(&self) -> &'static str {
        match self.detail {
            EventDetail::Intent { .. } => "intent",
            EventDetail::Created { .. } => "created",
            EventDetail::Verified {} => "verified",
            EventDetail::Revoked { .. } => "revoked",
            EventDetail::Failed { .. } => "failed",
            EventDetail::Exists {} => "exists",
            EventDetail::Skipped { .. } => "skipped",
            EventDetail::Refused { .. } => "refused",
            EventDetail::Delivered { .. } => "delivered",
            EventDetail::Store { .. } => "store",
            EventDetail::Sweep { .. } => "sweep",
        }
    }
}

/// How a run seals secrets into its journal, and what the plan must record to open them again.
#[derive(Debug, Clone)]
pub struct JournalSealing {
    pub sealer: Sealer,
    /// Passphrase mode: the ephemeral identity sealed with the passphrase (base64).
    pub sealed_identity: Option<String>,
    recipients: Vec<String>,
    passphrase: bool,
}

impl JournalSealing {
    /// For a new run. With a passphrase this costs one scrypt (~1 s); otherwise nothing.
    pub fn new(recipients: &Recipients) -> Result<JournalSealing, SealError> {
        match &recipients.kind {
            RecipientKind::Keys(keys) => Ok(JournalSealing {
                sealer: Sealer::to_keys(keys.clone()),
                sealed_identity: None,
                recipients: recipients.public_keys(),
                passphrase: false,
            }),
            RecipientKind::Passphrase(_) => {
                let eph = x25519::Identity::generate();
                let sk = eph.to_string();
                let sealed = Sealer::new(recipients).seal(
                    age::secrecy::ExposeSecret::expose_secret(&sk).as_bytes(),
                    false,
                )?;
                Ok(JournalSealing {
                    sealer: Sealer::to_keys(vec![eph.to_public()]),
                    sealed_identity: Some(B64.encode(sealed)),
                    recipients: Vec::new(),
                    passphrase: true,
                })
            }
        }
    }

    /// For `resume`: seal new secrets the way the interrupted run did. Passphrase runs need the
    /// passphrase in `keys`.
    pub fn resume(plan: &PlanRecord, keys: &Keys) -> Result<JournalSealing, SealError> {
        if plan.passphrase {
            let id = unlock_ephemeral(plan, keys)?;
            return Ok(JournalSealing {
                sealer: Sealer::to_keys(vec![id.to_public()]),
                sealed_identity: plan.sealed_identity.clone(),
                recipients: Vec::new(),
                passphrase: true,
            });
        }
        let mut parsed = Vec::new();
        for (i, r) in plan.recipients.iter().enumerate() {
            let k = parse_recipient(r, &format!("journal plan: recipients[{i}]"))
                .map_err(|p| SealError::invalid(p.location, p.message))?;
            parsed.push(k);
        }
        if parsed.is_empty() {
            return Err(SealError::invalid("journal plan", "records no recipients"));
        }
        Ok(JournalSealing {
            sealer: Sealer::to_keys(parsed),
            sealed_identity: None,
            recipients: plan.recipients.clone(),
            passphrase: false,
        })
    }

    /// Record the recipients, the passphrase flag and the sealed identity in the plan.
    pub fn apply(&self, plan: &mut PlanRecord) {
        plan.recipients = self.recipients.clone();
        plan.passphrase = self.passphrase;
        plan.sealed_identity = self.sealed_identity.clone();
    }
}

fn unlock_ephemeral(plan: &PlanRecord, keys: &Keys) -> Result<x25519::Identity, SealError> {
    let Some(sealed) = &plan.sealed_identity else {
        return Err(SealError::invalid(
            "journal plan",
            "passphrase run without sealed_identity",
        ));
    };
    if keys.passphrase().is_none() {
        return Err(SealError::NeedPassphrase {
            what: "the journal".into(),
        });
    }
    let pass_only = Keys::new().with_passphrase(keys.passphrase().cloned().expect("checked"));
    let sk = pass_only.unseal_b64(sealed, "journal plan: sealed_identity")?;
    sk.expose()
        .trim()
        .parse::<x25519::Identity>()
        .map_err(|_| SealError::invalid("journal plan", "sealed_identity holds no age identity"))
}

/// The keys that open this journal's sealed secrets: the run's ephemeral identity (passphrase
/// runs, unlocked with `keys`' passphrase) or the identities in `keys`.
pub fn journal_keys(plan: &PlanRecord, keys: &Keys) -> Result<Keys, SealError> {
    if plan.passphrase {
        let mut k = keys.clone();
        k.add_identity(unlock_ephemeral(plan, keys)?);
        Ok(k)
    } else {
        Ok(keys.clone())
    }
}

/// Decrypt the secret of a `created` event. `keys` come from [`journal_keys`].
pub fn unseal_secret(event: &Event, keys: &Keys) -> Result<Secret, SealError> {
    match &event.detail {
        EventDetail::Created { sealed, .. } => keys.unseal_b64(
            sealed,
            &format!(
                "journal: {} {} {}",
                event.host, event.account, event.token_name
            ),
        ),
        _ => Err(SealError::invalid(
            format!("journal: {} {}", event.host, event.account),
            format!("a '{}' event holds no secret", event.kind()),
        )),
    }
}

/// The handoff rows of a journal: every `created` event, decrypted (the last one wins if a
/// target was created twice). Strict: any record that cannot be opened is an error.
#[cfg(test)]
pub fn journal_rows(
    plan: &PlanRecord,
    events: &[Event],
    keys: &Keys,
) -> Result<Vec<HandoffRow>, SealError> {
    let scanned = Scanned {
        plan: Some(plan.clone()),
        lines: (2..events.len() + 2).collect(),
        events: events.to_vec(),
        damaged: Vec::new(),
    };
    let (rows, damaged) = recover_rows(&scanned, keys)?;
    match damaged.first() {
        Some(d) => Err(SealError::invalid(
            format!("line {}", d.line),
            d.why.clone(),
        )),
        None => Ok(rows),
    }
}

/// Every secret a journal still holds: the `created` events that open, the last one winning if
/// a target was created twice. A record that does not open is [`Damaged`] (with its target),
/// unless none opens at all: then the keys are wrong, and that is the error (never a reason to
/// treat every secret as lost).
pub fn recover_rows(
    scanned: &Scanned,
    keys: &Keys,
) -> Result<(Vec<HandoffRow>, Vec<Damaged>), SealError> {
    let keys = match &scanned.plan {
        Some(plan) => journal_keys(plan, keys)?,
        None => keys.clone(),
    };
    let mut rows: Vec<HandoffRow> = Vec::new();
    let mut index = std::collections::HashMap::new();
    let mut damaged = Vec::new();
    let mut first_error = None;
    for (e, line) in scanned.events.iter().zip(&scanned.lines) {
        let EventDetail::Created {
            create_time,
            expires_at,
            url,
            ..
        } = &e.detail
        else {
            continue;
        };
        let token = match unseal_secret(e, &keys) {
            Ok(t) => t,
            Err(err @ (SealError::NeedIdentity { .. } | SealError::NeedPassphrase { .. })) => {
                return Err(err);
            }
            Err(err) => {
                damaged.push(Damaged {
                    line: *line,
                    target: Some((e.host.clone(), e.account.clone())),
                    kind: Some("created".into()),
                    superseded: false,
                    why: format!(
                        "{} {} {}: the sealed secret cannot be opened ({})",
                        e.host,
                        e.account,
                        e.token_name,
                        crate::error::chain(&err)
                    ),
                });
                first_error.get_or_insert(err);
                continue;
            }
        };
        let row = HandoffRow {
            host: e.host.clone(),
            account: e.account.clone(),
            token_name: e.token_name.clone(),
            token,
            url: url.clone(),
            created_at: *create_time,
            expires_at: *expires_at,
        };
        let key = (e.host.clone(), e.account.clone(), e.token_name.clone());
        match index.get(&key) {
            Some(&i) => rows[i] = row,
            None => {
                index.insert(key, rows.len());
                rows.push(row);
            }
        }
    }
    if rows.is_empty()
        && let Some(err) = first_error
    {
        return Err(err);
    }
    let unopened: std::collections::HashSet<usize> = damaged.iter().map(|d| d.line).collect();
    for d in &mut damaged {
        d.superseded = scanned.events.iter().zip(&scanned.lines).any(|(e, line)| {
            *line > d.line
                && !unopened.contains(line)
                && matches!(e.detail, EventDetail::Created { .. })
                && d.target.as_ref() == Some(&(e.host.clone(), e.account.clone()))
        });
    }
    Ok((rows, damaged))
}

/// Group commit: records are written under a lock (so lines never interleave) and numbered;
/// a writer then waits until an fsync that started after its write has finished. Whoever finds
/// no fsync running becomes the leader and syncs for everyone written so far.
#[derive(Default)]
struct GroupCommit {
    state: Mutex<GcState>,
    synced_cv: Condvar,
}

#[derive(Default)]
struct GcState {
    written: u64,
    synced: u64,
    syncing: bool,
    syncs: u64,
    /// A failed write or fsync: the file's state is unknown, so every later append fails.
    poisoned: Option<(io::ErrorKind, String)>,
}

impl GcState {
    fn check(&self) -> io::Result<()> {
        match &self.poisoned {
            Some((k, m)) => Err(io::Error::new(*k, format!("journal unusable after: {m}"))),
            None => Ok(()),
        }
    }
}

impl GroupCommit {
    fn lock(&self) -> MutexGuard<'_, GcState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Run `write` under the lock; returns the record's sequence number.
    fn write(&self, write: impl FnOnce() -> io::Result<()>) -> io::Result<u64> {
        let mut st = self.lock();
        st.check()?;
        if let Err(e) = write() {
            st.poisoned = Some((e.kind(), e.to_string()));
            return Err(e);
        }
        st.written += 1;
        Ok(st.written)
    }

    /// Return once record `seq` is durable.
    fn wait_synced(&self, seq: u64, sync: impl Fn() -> io::Result<()>) -> io::Result<()> {
        let mut st = self.lock();
        loop {
            if st.synced >= seq {
                return Ok(());
            }
            st.check()?;
            if st.syncing {
                st = self.synced_cv.wait(st).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            st.syncing = true;
            let target = st.written;
            drop(st);
            let result = sync();
            st = self.lock();
            st.syncing = false;
            st.syncs += 1;
            match result {
                Ok(()) => st.synced = st.synced.max(target),
                Err(e) => st.poisoned = Some((e.kind(), e.to_string())),
            }
            self.synced_cv.notify_all();
        }
    }
}

/// An open journal, shared by all workers (`&Journal` is `Send + Sync`).
pub struct Journal {
    file: File,
    path: PathBuf,
    gc: GroupCommit,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("path", &self.path).finish()
    }
}

fn invalid_data(m: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, m)
}

impl Journal {
    /// Create a journal whose first line is `plan` (0600, fsynced with its folder). An existing
    /// journal is refused unless `force`; with `force` it is kept as `PATH.old-UNIXTIME` rather
    /// than destroyed (it may hold the only copy of earlier secrets).
    pub fn create(path: &Path, plan: &PlanRecord, force: bool) -> io::Result<Journal> {
        if std::fs::symlink_metadata(path).is_ok() {
            if !force {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "{} already exists (an interrupted run? `tokenfleet resume` it, or pass \
                         --force to start over; the old journal is kept aside)",
                        path.display()
                    ),
                ));
            }
            // Under the journal's lock: a name nobody has taken yet, so an earlier aside file
            // (perhaps the only copy of its secrets) is never replaced.
            let stamp = jiff::Timestamp::now().as_second();
            let aside = (0..)
                .map(|n| {
                    let mut a = path.as_os_str().to_os_string();
                    a.push(if n == 0 {
                        format!(".old-{stamp}")
                    } else {
                        format!(".old-{stamp}-{n}")
                    });
                    PathBuf::from(a)
                })
                .find(|a| std::fs::symlink_metadata(a).is_err())
                .expect("a free name");
            std::fs::rename(path, &aside)?;
        }
        let file = OpenOptions::new()
            .append(true)
            .read(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        let mut line = serde_json::to_vec(plan).map_err(io::Error::other)?;
        line.push(b'\n');
        let written = (&file)
            .write_all(&line)
            .and_then(|()| file.sync_all())
            .and_then(|()| sync_dir(&parent_dir(path)));
        if let Err(e) = written {
            // No secret in it yet, and a torn plan line would only stand in the next run's way.
            let _ = std::fs::remove_file(path);
            return Err(e);
        }
        Ok(Journal {
            file,
            path: path.to_path_buf(),
            gc: GroupCommit::default(),
        })
    }

    /// Reopen a journal to append (resume). A torn last line is repaired first: completed with
    /// a newline if it parses, cut off if not (it was never acknowledged as durable).
    pub fn open_append(path: &Path) -> io::Result<Journal> {
        let file = OpenOptions::new().read(true).append(true).open(path)?;
        let len = file.metadata()?.len();
        if len == 0 {
            return Err(invalid_data(format!(
                "{} is empty: not a journal",
                path.display()
            )));
        }
        let mut last = [0u8; 1];
        file.read_exact_at(&mut last, len - 1)?;
        if last[0] != b'\n' {
            // Find the start of the torn line.
            let mut start = len;
            let mut buf = vec![0u8; 8192];
            'scan: while start > 0 {
                let from = start.saturating_sub(buf.len() as u64);
                let chunk = &mut buf[..(start - from) as usize];
                file.read_exact_at(chunk, from)?;
                for (i, b) in chunk.iter().enumerate().rev() {
                    if *b == b'\n' {
                        start = from + i as u64 + 1;
                        break 'scan;
                    }
                }
                start = from;
            }
            if start == 0 {
                return Err(invalid_data(format!(
                    "{}: the plan record is incomplete (crash while creating the journal)",
                    path.display()
                )));
            }
            let mut tail = vec![0u8; (len - start) as usize];
            file.read_exact_at(&mut tail, start)?;
            if serde_json::from_slice::<Event>(&tail).is_ok() {
                (&file).write_all(b"\n")?;
            } else {
                file.set_len(start)?;
            }
            file.sync_all()?;
        }
        Ok(Journal {
            file,
            path: path.to_path_buf(),
            gc: GroupCommit::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one event; durable (fsynced) when this returns. Safe to call from many threads:
    /// concurrent callers share fsyncs (group commit).
    pub fn append(&self, event: &Event) -> io::Result<()> {
        let mut line = serde_json::to_vec(event).map_err(io::Error::other)?;
        line.push(b'\n');
        let seq = self.gc.write(|| self.write_whole(&line))?;
        self.gc.wait_synced(seq, || self.file.sync_data())
    }

    /// Append one event without waiting for it to be durable: it is written in order now and
    /// becomes durable with the next fsync any append triggers, or at [`Journal::flush`]. For
    /// records whose loss a resume can repair (a `created` after a durable `intent`: the token
    /// is then reconciled as an orphan), so a plain create pays one fsync wait per target, not two.
    pub fn append_lazy(&self, event: &Event) -> io::Result<()> {
        let mut line = serde_json::to_vec(event).map_err(io::Error::other)?;
        line.push(b'\n');
        self.gc.write(|| self.write_whole(&line)).map(|_| ())
    }

    /// Write one record, or nothing: part of a record on a full disk (a short write) is cut off
    /// again, so no reader ever takes a record the run was told had failed.
    fn write_whole(&self, line: &[u8]) -> io::Result<()> {
        let before = self.file.metadata()?.len();
        (&self.file).write_all(line).inspect_err(|_| {
            let _ = self.file.set_len(before);
        })
    }

    /// Make every record written so far durable.
    pub fn flush(&self) -> io::Result<()> {
        let seq = self.gc.lock().written;
        let result = self.gc.wait_synced(seq, || self.file.sync_data());
        if result.is_err() {
            // Poisoned: still make durable what was written whole before the failure.
            let _ = self.file.sync_data();
        }
        result
    }

    #[cfg(test)]
    /// How many fsyncs appends have issued (diagnostics, benchmarks).
    pub fn sync_count(&self) -> u64 {
        self.gc.lock().syncs
    }
}

/// A journal line that could not be used, and the target it was about when that can be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damaged {
    /// 1-based line number in the file.
    pub line: usize,
    /// (host, account), when the record names them.
    pub target: Option<(String, String)>,
    /// The record's kind (`created`, `intent`, …), when the damaged text still shows it.
    pub kind: Option<String>,
    /// A sealed secret that no longer opens, of a target that a later readable `created`
    /// record replaced: nothing of it is live any more.
    pub superseded: bool,
    pub why: String,
}

/// A journal as read back: whatever is intact, and what is not.
#[derive(Debug, Clone)]
pub struct Scanned {
    /// `None` when the first line is missing or damaged (the secrets may still open with the
    /// recipients' identities, but the run cannot be rebuilt).
    pub plan: Option<PlanRecord>,
    pub events: Vec<Event>,
    /// The line of each event in `events`.
    pub lines: Vec<usize>,
    pub damaged: Vec<Damaged>,
}

/// A string field of a damaged line, if its text still holds it whole.
fn field_in(raw: &[u8], key: &str) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    let start = text.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let len = text[start..].find('"')?;
    Some(text[start..start + len].to_string())
}

/// The host and account a damaged line names, if its text still holds them (and only one
/// record's worth: a torn record run into the next one names nobody for sure).
fn target_in(raw: &[u8]) -> Option<(String, String)> {
    if String::from_utf8_lossy(raw).matches("\"host\":\"").count() != 1 {
        return None;
    }
    Some((field_in(raw, "host")?, field_in(raw, "account")?))
}

/// Read a journal, keeping every intact record. A torn last line (no newline: a crash mid-write)
/// is ignored; any other line that does not parse is [`Damaged`], as is a missing or damaged
/// plan line. Only a file that is no journal at all, or one written by a newer tokenfleet, is
/// an error.
pub fn scan_journal(path: &Path) -> Result<Scanned, SealError> {
    let file = File::open(path).map_err(|e| SealError::io(path, e))?;
    scan_journal_from(BufReader::new(file), path)
}

/// [`scan_journal`] of what `r` reads (`open -`: a journal on standard input); `path` names it
/// in errors.
pub fn scan_journal_from(mut r: impl BufRead, path: &Path) -> Result<Scanned, SealError> {
    let shown = path.display().to_string();
    let mut buf = Vec::new();
    let mut out = Scanned {
        plan: None,
        events: Vec::new(),
        lines: Vec::new(),
        damaged: Vec::new(),
    };
    let mut line_no = 0usize;
    loop {
        buf.clear();
        let n = r
            .read_until(b'\n', &mut buf)
            .map_err(|e| SealError::io(path, e))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let complete = buf.ends_with(b"\n");
        let loc = || format!("{shown}:{line_no}");
        if line_no == 1 {
            match serde_json::from_slice::<PlanRecord>(&buf) {
                Ok(p) if p.v == JOURNAL_VERSION => {
                    out.plan = Some(p);
                    continue;
                }
                Ok(p) => {
                    return Err(SealError::invalid(
                        loc(),
                        format!(
                            "journal version {} is not supported (expected {JOURNAL_VERSION})",
                            p.v
                        ),
                    ));
                }
                Err(_) if !complete => {
                    return Err(SealError::invalid(loc(), "the plan record is incomplete")
                        .with_hint(
                            "the run crashed while creating its journal; nothing to resume",
                        ));
                }
                Err(e) => {
                    let v: Option<serde_json::Value> = serde_json::from_slice(&buf).ok();
                    if let Some(v) = v.as_ref().and_then(|v| v.get("v")).and_then(|v| v.as_u64())
                        && v > u64::from(JOURNAL_VERSION)
                    {
                        return Err(SealError::invalid(
                            loc(),
                            format!(
                                "journal version {v} is newer than this tokenfleet understands ({JOURNAL_VERSION})"
                            ),
                        ));
                    }
                    if serde_json::from_slice::<Event>(&buf).is_err() && !looks_like_record(&buf) {
                        return Err(SealError::invalid(
                            loc(),
                            format!(
                                "not a tokenfleet journal: first line is not a plan record ({e})"
                            ),
                        ));
                    }
                    out.damaged.push(Damaged {
                        line: 1,
                        target: None,
                        kind: None,
                        superseded: false,
                        why: "the plan record (the first line) is missing or damaged".into(),
                    });
                    // A first line that is an event: the plan line was lost, the event is not.
                }
            }
        }
        match serde_json::from_slice::<Event>(&buf) {
            Ok(e) => {
                out.events.push(e);
                out.lines.push(line_no);
            }
            Err(_) if !complete => break, // torn last line: a crash mid-write
            Err(_) if line_no == 1 => {}  // already named as the missing plan
            Err(e) => out.damaged.push(Damaged {
                line: line_no,
                target: target_in(&buf),
                kind: field_in(&buf, "kind"),
                superseded: false,
                why: format!("the record does not parse ({e})"),
            }),
        }
    }
    if out.plan.is_none() && out.events.is_empty() {
        return Err(SealError::invalid(
            shown,
            "empty file: not a tokenfleet journal",
        ));
    }
    Ok(out)
}

/// Whether a line has the shape of a journal record (damaged, perhaps): a JSON-ish object
/// naming one of the record kinds.
fn looks_like_record(raw: &[u8]) -> bool {
    let text = String::from_utf8_lossy(raw);
    text.trim_start().starts_with('{')
        && [
            "intent",
            "created",
            "verified",
            "revoked",
            "failed",
            "exists",
            "skipped",
            "delivered",
            "store",
            "plan",
        ]
        .iter()
        .any(|k| text.contains(&format!("\"kind\":\"{k}\"")))
}

/// Read a journal strictly: its plan and events, any damage an error.
#[cfg(test)]
pub fn read_journal(path: &Path) -> Result<(PlanRecord, Vec<Event>), SealError> {
    let s = scan_journal(path)?;
    if let Some(d) = s.damaged.first() {
        return Err(SealError::invalid(
            format!("{}:{}", path.display(), d.line),
            format!("corrupt journal record: {}", d.why),
        ));
    }
    let plan = s
        .plan
        .ok_or_else(|| SealError::invalid(path.display().to_string(), "no plan"))?;
    Ok((plan, s.events))
}

/// The plan record of a journal (its first line) alone, without reading the rest: what kind
/// of run it was. `None` when the file or its first line cannot be read.
pub fn plan_record(path: &Path) -> Option<PlanRecord> {
    let mut first = String::new();
    BufReader::new(File::open(path).ok()?)
        .read_line(&mut first)
        .ok()?;
    serde_json::from_str(&first).ok()
}

/// True when these bytes start with a journal record (see [`looks_like_journal`]).
pub fn bytes_look_like_journal(bytes: &[u8]) -> bool {
    let first = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    first.first() == Some(&b'{') && looks_like_record(first)
}

/// True when the file starts with a journal record: its plan line (`{"…","kind":"plan",…}`),
/// or, when that was lost, any other record.
pub fn looks_like_journal(path: &Path) -> io::Result<bool> {
    let mut f = File::open(path)?;
    let mut first = [0u8; 1];
    if f.read(&mut first)? == 0 || first[0] != b'{' {
        return Ok(false);
    }
    let mut r = BufReader::new(File::open(path)?.take(1 << 20));
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line)?;
    // A journal whose plan line was lost still starts with one of its records.
    Ok(looks_like_record(&line))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    fn plan_for(r: &Recipients) -> (PlanRecord, JournalSealing) {
        let sealing = JournalSealing::new(r).unwrap();
        let mut plan = PlanRecord {
            run_id: "r1".into(),
            operation: "rotate".into(),
            inventory: "inv.toml".into(),
            inventory_sha256: "ab".repeat(32),
            name_template: "deploy-{date}".into(),
            options: serde_json::json!({"revoke": "deploy-*", "jobs": 32}),
            ..PlanRecord::default()
        };
        sealing.apply(&mut plan);
        (plan, sealing)
    }

    fn created(sealer: &Sealer, host: &str, account: &str, token: &str) -> Event {
        Event::new(
            host,
            account,
            "deploy-1",
            EventDetail::Created {
                sealed: sealer.seal_secret(&Secret::new(token)).unwrap(),
                create_time: 1_700_000_000,
                expires_at: None,
                url: format!("https://{host}:2083"),
            },
        )
    }

    #[test]
    fn record_shapes_match_the_contract() {
        let id = x25519::Identity::generate();
        let (plan, sealing) = plan_for(&Recipients::keys(vec![id.to_public()]));
        let v = serde_json::to_value(&plan).unwrap();
        assert_eq!(v["v"], 1);
        assert_eq!(v["kind"], "plan");
        assert_eq!(v["recipients"][0], id.to_public().to_string());
        assert_eq!(v["passphrase"], false);
        assert!(v.get("sealed_identity").is_none());
        for k in [
            "run_id",
            "operation",
            "inventory",
            "inventory_sha256",
            "name_template",
            "scope",
        ] {
            assert!(v[k].is_string(), "{k}");
        }
        assert_eq!(v["options"]["jobs"], 32);
        let e = serde_json::to_value(created(&sealing.sealer, "web1", "alice", "T")).unwrap();
        assert_eq!(e["kind"], "created");
        assert_eq!(e["host"], "web1");
        assert!(e["sealed"].is_string() && e["create_time"] == 1_700_000_000);
        assert!(e["expires_at"].is_null() && e["at"].is_string());
        let f = Event::new(
            "h",
            "a",
            "n",
            EventDetail::Failed {
                step: "verify".into(),
                error: "401".into(),
            },
        );
        let f = serde_json::to_value(f).unwrap();
        assert_eq!(
            (f["kind"].as_str(), f["step"].as_str()),
            (Some("failed"), Some("verify"))
        );
        let r = Event::new(
            "h",
            "a",
            "n",
            EventDetail::Revoked {
                names: vec!["old".into()],
            },
        );
        assert_eq!(serde_json::to_value(r).unwrap()["names"][0], "old");
        let i = Event::new(
            "h",
            "a",
            "n",
            EventDetail::Intent {
                action: Action::Create,
                names: vec![],
                absent: true,
            },
        );
        let line = serde_json::to_string(&i).unwrap();
        assert!(
            line.starts_with(r#"{"host":"h","account":"a","token_name":"n","kind":"intent","action":"create","absent":true"#),
            "{line}"
        );
        let v = Event::new("h", "a", "n", EventDetail::Verified {});
        assert_eq!(
            serde_json::from_str::<Event>(&serde_json::to_string(&v).unwrap()).unwrap(),
            v
        );
    }

    #[test]
    fn journal_roundtrip_0600_and_unseal() {
        let d = tempfile::tempdir().unwrap();
        let p = journal_path(&d.path().join("out.age"));
        assert!(p.ends_with("out.age.journal"));
        let id = x25519::Identity::generate();
        let (plan, sealing) = plan_for(&Recipients::keys(vec![id.to_public()]));
        let j = Journal::create(&p, &plan, false).unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        j.append(&Event::new(
            "web1",
            "alice",
            "deploy-1",
            EventDetail::Intent {
                action: Action::Create,
                names: vec![],
                absent: true,
            },
        ))
        .unwrap();
        j.append(&created(&sealing.sealer, "web1", "alice", "TOKENAAAA"))
            .unwrap();
        j.append(&Event::new(
            "web1",
            "alice",
            "deploy-1",
            EventDetail::Verified {},
        ))
        .unwrap();
        drop(j);
        let raw = std::fs::read_to_string(&p).unwrap();
        assert!(!raw.contains("TOKENAAAA"), "plaintext secret in journal");
        let (plan2, events) = read_journal(&p).unwrap();
        assert_eq!(plan2, plan);
        assert_eq!(events.len(), 3);
        let keys = Keys::from_identities(vec![id]);
        assert_eq!(
            unseal_secret(&events[1], &keys).unwrap().expose(),
            "TOKENAAAA"
        );
        assert!(unseal_secret(&events[0], &keys).is_err());
        let rows = journal_rows(&plan2, &events, &keys).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].token.expose(), "TOKENAAAA");
        assert!(looks_like_journal(&p).unwrap());
        // A second create refuses; --force keeps the old one aside.
        assert_eq!(
            Journal::create(&p, &plan, false).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        Journal::create(&p, &plan, true).unwrap();
        let kept = std::fs::read_dir(d.path()).unwrap().filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".journal.old-")
        });
        assert_eq!(kept.count(), 1);
        assert_eq!(read_journal(&p).unwrap().1.len(), 0);
    }

    /// A journal of four sealed secrets, as text lines (the plan first).
    fn four_secrets(d: &Path) -> (PathBuf, Keys, Vec<String>) {
        let p = d.join("j");
        let id = x25519::Identity::generate();
        let (plan, sealing) = plan_for(&Recipients::keys(vec![id.to_public()]));
        let j = Journal::create(&p, &plan, false).unwrap();
        for (h, t) in [
            ("web1", "T1"),
            ("web2", "T2"),
            ("web3", "T3"),
            ("web4", "T4"),
        ] {
            j.append(&created(&sealing.sealer, h, "a", t)).unwrap();
        }
        drop(j);
        let text = std::fs::read_to_string(&p).unwrap();
        let lines = text.lines().map(str::to_string).collect();
        (p, Keys::from_identities(vec![id]), lines)
    }

    fn hosts(rows: &[HandoffRow]) -> Vec<&str> {
        rows.iter().map(|r| r.host.as_str()).collect()
    }

    #[test]
    fn one_damaged_record_hides_no_other_secret() {
        let d = tempfile::tempdir().unwrap();
        let (p, keys, lines) = four_secrets(d.path());
        let write = |lines: &[String]| std::fs::write(&p, lines.join("\n") + "\n").unwrap();

        // A flipped byte inside one sealed secret: that record is named, with its target.
        let mut flipped = lines.clone();
        let at = flipped[2].find("\"sealed\":\"").unwrap() + 60;
        let mut bytes = flipped[2].clone().into_bytes();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        flipped[2] = String::from_utf8(bytes).unwrap();
        write(&flipped);
        let scanned = scan_journal(&p).unwrap();
        let (rows, damaged) = recover_rows(&scanned, &keys).unwrap();
        assert_eq!(hosts(&rows), ["web1", "web3", "web4"]);
        assert_eq!(damaged.len(), 1);
        assert_eq!(damaged[0].line, 3);
        assert_eq!(damaged[0].target, Some(("web2".into(), "a".into())));
        assert!(!damaged[0].superseded);
        // A later readable secret of the same target replaces the unreadable one.
        let mut replaced = flipped.clone();
        replaced.push(replaced[2].clone());
        replaced[2] = flipped[2].clone();
        replaced[5] = lines[2].clone();
        write(&replaced);
        let (_, damaged) = recover_rows(&scan_journal(&p).unwrap(), &keys).unwrap();
        assert_eq!(damaged.len(), 1);
        assert!(damaged[0].superseded, "{damaged:?}");

        // A torn line in the middle: skipped and named; every other record kept.
        let mut torn = lines.clone();
        torn[3].truncate(40);
        write(&torn);
        let scanned = scan_journal(&p).unwrap();
        assert_eq!(scanned.damaged.len(), 1);
        assert_eq!(scanned.damaged[0].line, 4);
        assert_eq!(scanned.lines, [2, 3, 5]);
        let (rows, _) = recover_rows(&scanned, &keys).unwrap();
        assert_eq!(hosts(&rows), ["web1", "web2", "web4"]);

        // The plan line lost: named as such; the secrets still open with the identity.
        write(&lines[1..]);
        assert!(looks_like_journal(&p).unwrap());
        let scanned = scan_journal(&p).unwrap();
        assert!(scanned.plan.is_none());
        assert_eq!(scanned.damaged[0].line, 1);
        assert!(
            scanned.damaged[0].why.contains("plan record"),
            "{:?}",
            scanned.damaged
        );
        let (rows, _) = recover_rows(&scanned, &keys).unwrap();
        assert_eq!(rows.len(), 4);

        // The wrong key is an error, never "every record damaged".
        write(&lines);
        let other = Keys::from_identities(vec![x25519::Identity::generate()]);
        assert!(recover_rows(&scan_journal(&p).unwrap(), &other).is_err());
    }

    #[test]
    fn torn_last_line_is_tolerated_and_repaired_but_garbage_is_not() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("j");
        let id = x25519::Identity::generate();
        let (plan, sealing) = plan_for(&Recipients::keys(vec![id.to_public()]));
        let j = Journal::create(&p, &plan, false).unwrap();
        j.append(&created(&sealing.sealer, "web1", "a", "T1"))
            .unwrap();
        drop(j);
        let whole = serde_json::to_string(&created(&sealing.sealer, "web2", "b", "T2")).unwrap();
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(&whole.as_bytes()[..whole.len() / 2]).unwrap();
        drop(f);
        let (_, events) = read_journal(&p).unwrap();
        assert_eq!(events.len(), 1);
        // Resume cuts the torn tail, then appends whole lines.
        let j = Journal::open_append(&p).unwrap();
        j.append(&created(&sealing.sealer, "web3", "c", "T3"))
            .unwrap();
        drop(j);
        let (_, events) = read_journal(&p).unwrap();
        assert_eq!(
            events.iter().map(|e| e.host.as_str()).collect::<Vec<_>>(),
            ["web1", "web3"]
        );
        // A complete last record that only lacks its newline is kept.
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(whole.as_bytes()).unwrap();
        drop(f);
        assert_eq!(read_journal(&p).unwrap().1.len(), 3);
        Journal::open_append(&p).unwrap();
        assert!(std::fs::read_to_string(&p).unwrap().ends_with("}\n"));
        assert_eq!(read_journal(&p).unwrap().1.len(), 3);
        // Garbage in the middle is an error naming the line.
        let text = std::fs::read_to_string(&p).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        lines.insert(2, "{\"kind\":\"created\",\"host\":");
        std::fs::write(&p, lines.join("\n") + "\n").unwrap();
        let e = read_journal(&p).unwrap_err().to_string();
        assert!(e.contains(":3") && e.contains("corrupt"), "{e}");
        // Not a journal at all.
        std::fs::write(&p, "host,account\n").unwrap();
        assert!(
            read_journal(&p)
                .unwrap_err()
                .to_string()
                .contains("not a tokenfleet journal")
        );
        assert!(!looks_like_journal(&p).unwrap());
    }

    #[test]
    fn concurrent_appends_all_land_in_whole_lines() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("j");
        let id = x25519::Identity::generate();
        let (plan, sealing) = plan_for(&Recipients::keys(vec![id.to_public()]));
        let j = Arc::new(Journal::create(&p, &plan, false).unwrap());
        let threads = 32;
        let per = 8;
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let j = Arc::clone(&j);
                let s = sealing.sealer.clone();
                std::thread::spawn(move || {
                    for i in 0..per {
                        j.append(&created(
                            &s,
                            &format!("web{t}"),
                            &format!("acct{i}"),
                            &format!("T{t}x{i}"),
                        ))
                        .unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert!(j.sync_count() <= (threads * per) as u64);
        let raw = std::fs::read_to_string(&p).unwrap();
        assert!(raw.ends_with('\n'));
        assert_eq!(raw.lines().count(), 1 + threads * per);
        let (_, events) = read_journal(&p).unwrap();
        let mut seen: Vec<(String, String)> = events
            .iter()
            .map(|e| (e.host.clone(), e.account.clone()))
            .collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), threads * per);
        let keys = Keys::from_identities(vec![id]);
        let rows = journal_rows(&plan, &events, &keys).unwrap();
        assert!(
            rows.iter()
                .any(|r| r.host == "web31" && r.account == "acct7" && r.token.expose() == "T31x7")
        );
    }

    /// Lazy appends cost no fsync of their own; `flush` makes them durable with one, and they
    /// read back in order between durable records.
    #[test]
    fn lazy_appends_are_written_in_order_and_flushed_once() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("j");
        let id = x25519::Identity::generate();
        let (plan, sealing) = plan_for(&Recipients::keys(vec![id.to_public()]));
        let j = Journal::create(&p, &plan, false).unwrap();
        for i in 0..5 {
            j.append_lazy(&created(
                &sealing.sealer,
                "web1",
                &format!("a{i}"),
                &format!("T{i}"),
            ))
            .unwrap();
        }
        assert_eq!(j.sync_count(), 0, "no fsync for lazy records");
        j.flush().unwrap();
        assert_eq!(j.sync_count(), 1, "one fsync covers them all");
        j.flush().unwrap();
        assert_eq!(j.sync_count(), 1, "nothing new: no fsync");
        j.append(&Event::new(
            "web1",
            "a9",
            "deploy-1",
            EventDetail::Verified {},
        ))
        .unwrap();
        let (_, events) = read_journal(&p).unwrap();
        let accounts: Vec<&str> = events.iter().map(|e| e.account.as_str()).collect();
        assert_eq!(accounts, ["a0", "a1", "a2", "a3", "a4", "a9"]);
    }

    /// Group commit, deterministically: the first fsync is held until every thread has written
    /// its record, so at most two fsyncs cover all of them.
    #[test]
    fn one_fsync_covers_many_writers() {
        let gc = Arc::new(GroupCommit::default());
        let n = 16u64;
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let gc = Arc::clone(&gc);
                std::thread::spawn(move || {
                    let seq = gc.write(|| Ok(())).unwrap();
                    gc.wait_synced(seq, || {
                        // Bounded wait for all writers (fails the assertion below, not hangs).
                        let deadline = Instant::now() + Duration::from_secs(20);
                        while gc.lock().written < n && Instant::now() < deadline {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        Ok(())
                    })
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap().unwrap();
        }
        let st = gc.lock();
        assert_eq!(st.synced, n);
        assert!(st.syncs <= 2, "{} fsyncs for {n} writers", st.syncs);
    }

    #[test]
    fn failed_fsync_poisons_the_journal() {
        let gc = GroupCommit::default();
        let seq = gc.write(|| Ok(())).unwrap();
        let e = gc
            .wait_synced(seq, || Err(io::Error::other("EIO")))
            .unwrap_err();
        assert!(e.to_string().contains("EIO"));
        assert!(gc.write(|| Ok(())).is_err());
    }

    #[test]
    fn passphrase_mode_uses_one_scrypt_and_an_ephemeral_identity() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("j");
        let mut r = Recipients::passphrase(Secret::new("pass phrase"));
        r.set_scrypt_work_factor(10);
        let (plan, sealing) = plan_for(&r);
        assert!(plan.passphrase && plan.recipients.is_empty());
        let sealed_id = plan.sealed_identity.clone().unwrap();
        assert!(!sealed_id.contains("AGE-SECRET-KEY"));
        let j = Journal::create(&p, &plan, false).unwrap();
        j.append(&created(&sealing.sealer, "web1", "alice", "PASSTOKEN"))
            .unwrap();
        drop(j);
        let (plan2, events) = read_journal(&p).unwrap();
        // The sealed secret is an X25519 message (cheap), not scrypt.
        let EventDetail::Created { sealed, .. } = &events[0].detail else {
            panic!()
        };
        let ct = B64.decode(sealed).unwrap();
        assert!(!ct.windows(6).any(|w| w == b"scrypt"));
        let e = journal_rows(&plan2, &events, &Keys::new()).unwrap_err();
        assert!(matches!(e, SealError::NeedPassphrase { .. }), "{e}");
        assert!(
            journal_rows(
                &plan2,
                &events,
                &Keys::new().with_passphrase(Secret::new("wrong"))
            )
            .is_err()
        );
        let keys = Keys::new().with_passphrase(Secret::new("pass phrase"));
        let rows = journal_rows(&plan2, &events, &keys).unwrap();
        assert_eq!(rows[0].token.expose(), "PASSTOKEN");
        // Resume seals to the same ephemeral identity.
        let again = JournalSealing::resume(&plan2, &keys).unwrap();
        let e2 = created(&again.sealer, "web2", "bob", "PASS2");
        let jk = journal_keys(&plan2, &keys).unwrap();
        assert_eq!(unseal_secret(&e2, &jk).unwrap().expose(), "PASS2");
    }

    #[test]
    fn resume_sealing_from_recipients() {
        let id = x25519::Identity::generate();
        let (plan, _) = plan_for(&Recipients::keys(vec![id.to_public()]));
        let s = JournalSealing::resume(&plan, &Keys::new()).unwrap();
        let e = created(&s.sealer, "w", "a", "TOK");
        assert_eq!(
            unseal_secret(&e, &Keys::from_identities(vec![id]))
                .unwrap()
                .expose(),
            "TOK"
        );
    }

    #[test]
    fn journal_and_sealer_are_send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Journal>();
        assert_send_sync::<Sealer>();
        assert_send_sync::<Keys>();
    }
}

#[cfg(test)]
mod interop {
    use super::*;

    /// A journal's sealed secret is a plain age message: `base64 -d | age -d -i key.txt` opens
    /// it. Skipped only when `age` is missing and `CI` is unset.
    #[test]
    fn age_cli_opens_a_sealed_journal_secret() {
        if !crate::seal::age_cli_available() {
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let id = x25519::Identity::generate();
        let key = d.path().join("key.txt");
        let sk = age::secrecy::ExposeSecret::expose_secret(&id.to_string()).to_string();
        std::fs::write(&key, format!("{sk}\n")).unwrap();
        let sealer = Sealer::to_keys(vec![id.to_public()]);
        let sealed = sealer
            .seal_secret(&Secret::new("JPQNSRU0DH448UJLGXH7KVJECC5QN9N9"))
            .unwrap();
        let msg = d.path().join("one.age");
        std::fs::write(&msg, B64.decode(sealed).unwrap()).unwrap();
        let o = std::process::Command::new("age")
            .arg("-d")
            .arg("-i")
            .arg(&key)
            .arg(&msg)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(o.stdout, b"JPQNSRU0DH448UJLGXH7KVJECC5QN9N9");
    }
}
