//! Why this module exists: what a run produces is data that several layers share, so its types
//! live here, apart from all of them: the verdict per target (the run produces it, progress
//! counts it, the report folds it, resume reads it back), each new secret ([`Minted`]: the run
//! mints it, the journal seals it, the sinks deliver it), and the [`Ledger`] through which the
//! run records every step (the journal implements it). See docs/DESIGN.md §4, §5 and §7.

use crate::secret::Secret;
use serde::{Deserialize, Serialize};

/// The outcome of one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Rotated,
    Revoked,
    /// Dry run: the target's token would be created.
    #[serde(rename = "would-create")]
    WouldCreate,
    /// Dry run: the target would be rotated (its old tokens are in `revoked`).
    #[serde(rename = "would-rotate")]
    WouldRotate,
    /// Dry run: the tokens in `revoked` would be revoked.
    #[serde(rename = "would-revoke")]
    WouldRevoke,
    /// `update`: the tokens in `updated` were changed in place (same secret).
    Updated,
    /// Dry run: the tokens in `updated` would be changed.
    #[serde(rename = "would-update")]
    WouldUpdate,
    /// `list`: the target's tokens were listed.
    Listed,
    /// `check`: the host or account answered as the run needs.
    Checked,
    Unchanged,
    Exists,
    /// A token of the target's name exists that this run may have minted, but cannot prove it
    /// did (the journal lost the proof): kept, and named for a human look. Exit 1.
    Unproven,
    Skipped,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Rotated => "rotated",
            Status::Revoked => "revoked",
            Status::WouldCreate => "would-create",
            Status::WouldRotate => "would-rotate",
            Status::WouldRevoke => "would-revoke",
            Status::Updated => "updated",
            Status::WouldUpdate => "would-update",
            Status::Listed => "listed",
            Status::Checked => "checked",
            Status::Unchanged => "unchanged",
            Status::Exists => "exists",
            Status::Unproven => "unproven",
            Status::Skipped => "skipped",
            Status::Failed => "failed",
        }
    }
}

/// One target's result, as the JSON report lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetResult {
    pub host: String,
    /// The account, or the host's `whm_user` for `--scope whm`; `null` for host-level failures.
    pub account: Option<String>,
    pub token_name: Option<String>,
    pub status: Status,
    /// Full message for failed/skipped targets.
    pub error: Option<String>,
    /// Short cause used to fold failures in the summary ("TLS pin mismatch").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// Which step failed, for rotate: "create", "seal", "verify", "revoke".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    pub attempts: u32,
    pub elapsed_ms: u64,
    /// A token on the server that a human must look at: one this run minted and could neither
    /// hand off nor revoke (an orphan), or one whose owner it cannot prove. The summary lists
    /// every one of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention: Option<String>,
    /// Revoke: the `--name` glob; rotate: the `--revoke` glob. What matched is in `revoked`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// The tokens a revoke (or a rotation's revoke of the old ones, or `--replace-existing`)
    /// took, each by name; for a dry run, those it would take. Never the glob.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revoked: Vec<RevokedToken>,
    /// Something the user should know that is not a failure (a token kept on purpose).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// `update`: each token changed in place (dry run: that would be), by name, with its
    /// expiry after the change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub updated: Vec<RevokedToken>,
}

impl Status {
    /// Every status, in the order the summary lists them.
    pub const ALL: [Status; 15] = [
        Status::Created,
        Status::Rotated,
        Status::Revoked,
        Status::Updated,
        Status::WouldCreate,
        Status::WouldRotate,
        Status::WouldRevoke,
        Status::WouldUpdate,
        Status::Listed,
        Status::Checked,
        Status::Unchanged,
        Status::Exists,
        Status::Unproven,
        Status::Skipped,
        Status::Failed,
    ];
}

impl TargetResult {
    /// A result for `host` (and `account`, `token_name`) that has not succeeded yet: `failed`,
    /// with no error; the caller fills in the rest.
    pub fn new(host: &str, account: Option<&str>, token_name: Option<&str>) -> TargetResult {
        TargetResult {
            host: host.to_string(),
            account: account.map(str::to_string),
            token_name: token_name.map(str::to_string),
            status: Status::Failed,
            error: None,
            cause: None,
            step: None,
            attempts: 0,
            elapsed_ms: 0,
            attention: None,
            pattern: None,
            revoked: Vec::new(),
            note: None,
            updated: Vec::new(),
        }
    }
}

impl TargetResult {
    /// The target did not get what was asked: it failed, its token's owner is unproven, or it
    /// was skipped because of a problem (not on purpose). Exit 1, and a retry takes it again.
    pub fn went_wrong(&self) -> bool {
        matches!(self.status, Status::Failed | Status::Unproven)
            || (self.status == Status::Skipped && self.error.is_some())
    }
}

/// A token a run revoked (or, dry run, would revoke), as the server listed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedToken {
    pub name: String,
    /// RFC 3339 UTC, when the server says.
    pub created_at: Option<String>,
    /// RFC 3339 UTC; `null` = never expires (or not said).
    pub expires_at: Option<String>,
}

impl RevokedToken {
    /// From a listing's entry (Unix seconds).
    pub fn from_listing(name: &str, create_time: Option<i64>, expires_at: Option<i64>) -> Self {
        let at = |t: Option<i64>| t.map(crate::time::rfc3339);
        RevokedToken {
            name: name.to_string(),
            created_at: at(create_time),
            expires_at: at(expires_at),
        }
    }

    /// `name (created 2026-01-02, expires never)`, as the summary and the dry run print it.
    pub fn describe(&self) -> String {
        let day = |t: &Option<String>, none: &str| {
            t.as_deref()
                .map(|s| s.get(..10).unwrap_or(s).to_string())
                .unwrap_or_else(|| none.to_string())
        };
        format!(
            "{} (created {}, expires {})",
            self.name,
            day(&self.created_at, "?"),
            day(&self.expires_at, "never")
        )
    }
}

impl Status {
    /// A dry run's "would" status for what a real run would report.
    pub fn would(self) -> Status {
        match self {
            Status::Created => Status::WouldCreate,
            Status::Rotated => Status::WouldRotate,
            Status::Revoked => Status::WouldRevoke,
            Status::Updated => Status::WouldUpdate,
            other => other,
        }
    }
}

/// A token just created: its secret is shown this once.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub name: String,
    pub token: Secret,
    pub create_time: i64,
    pub expires_at: Option<i64>,
}

/// A new secret and where it works: one handoff row.
#[derive(Debug, Clone)]
pub struct Minted {
    pub host: String,
    /// The account, or the host's `whm_user` for `--scope whm`.
    pub account: String,
    pub token: NewToken,
    /// `https://ADDRESS:PORT` where the token works.
    pub url: String,
}

/// The new secrets of a run, however they are held (in memory, or spooled encrypted by
/// `seal::MintedSpool`): counted, and read in order from the start as often as needed.
pub trait MintedRows {
    fn count(&self) -> usize;
    fn rows(&self) -> Box<dyn Iterator<Item = Minted> + '_>;
}

impl MintedRows for [Minted] {
    fn count(&self) -> usize {
        self.len()
    }
    fn rows(&self) -> Box<dyn Iterator<Item = Minted> + '_> {
        Box::new(self.iter().cloned())
    }
}

impl MintedRows for Vec<Minted> {
    fn count(&self) -> usize {
        self.len()
    }
    fn rows(&self) -> Box<dyn Iterator<Item = Minted> + '_> {
        Box::new(self.iter().cloned())
    }
}

/// A destination that takes each new secret during the run, as soon as the journal holds it (a
/// secret store): a rotation revokes the old tokens only once the new one is where its users
/// read it. The journal holds the secret whatever this says.
pub trait Keep: Send + Sync {
    /// Store one new secret; `Err`: why not (repeating a success is a success).
    fn keep(&self, minted: &Minted) -> Result<(), KeepError>;
}

/// Why a [`Keep`] did not take a secret.
#[derive(Debug, Clone)]
pub struct KeepError {
    /// The whole story, for the target's error.
    pub message: String,
    /// Short, for folding in the summary ("store unreachable").
    pub cause: String,
}

/// The journal, seen from the run: every step of a mutation is recorded before the next one.
/// A `create` intent is written only after a listing by this run showed no token of that name
/// (or after this run revoked it): it is the proof that a token of that name found later was
/// minted by this run. An `Err` from any write means the journal can no longer be trusted: the
/// run mints nothing more, and a secret `created` could not record is revoked.
pub trait Ledger: Sync {
    fn intent(
        &self,
        host: &str,
        account: &str,
        token_name: &str,
        action: &str,
    ) -> std::io::Result<()>;
    fn created(&self, minted: &Minted) -> std::io::Result<()>;
    fn verified(&self, host: &str, account: &str, token_name: &str) -> std::io::Result<()>;
    fn revoked(
        &self,
        host: &str,
        account: &str,
        token_name: &str,
        names: &[String],
    ) -> std::io::Result<()>;
    fn failed(
        &self,
        host: &str,
        account: &str,
        token_name: &str,
        step: &str,
        error: &str,
    ) -> std::io::Result<()>;
    /// The token name was already taken by a token this run did not make: no secret, nothing
    /// to reconcile.
    fn exists(&self, host: &str, account: &str, token_name: &str) -> std::io::Result<()> {
        let _ = (host, account, token_name);
        Ok(())
    }

    /// A sweep's step for one owner: `intent` (these tokens are about to be revoked), `revoked`
    /// (gone), or `clean` (nothing to take): the audit trail of an incident, each token with
    /// its metadata, and what a resumed sweep skips.
    fn sweep(
        &self,
        host: &str,
        account: &str,
        step: &str,
        tokens: &[crate::audit::AuditRow],
    ) -> std::io::Result<()> {
        let _ = (host, account, step, tokens);
        Ok(())
    }

    /// A credential was refused on `host` (`account` empty: the host's own): see the journal's
    /// `refused` record. `tag` tells a changed secret from the same one, nothing more.
    fn refused(
        &self,
        host: &str,
        account: &str,
        credential: &str,
        tag: &str,
    ) -> std::io::Result<()> {
        let _ = (host, account, credential, tag);
        Ok(())
    }

    /// Make every record durable; called once when the run's work is done, before anything
    /// is reported.
    fn flush(&self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A ledger that records nothing: for operations that mint no secret (revoke, list, check).
pub struct NoLedger;

impl Ledger for NoLedger {
    fn intent(&self, _: &str, _: &str, _: &str, _: &str) -> std::io::Result<()> {
        Ok(())
    }
    fn created(&self, _: &Minted) -> std::io::Result<()> {
        Ok(())
    }
    fn verified(&self, _: &str, _: &str, _: &str) -> std::io::Result<()> {
        Ok(())
    }
    fn revoked(&self, _: &str, _: &str, _: &str, _: &[String]) -> std::io::Result<()> {
        Ok(())
    }
    fn failed(&self, _: &str, _: &str, _: &str, _: &str, _: &str) -> std::io::Result<()> {
        Ok(())
    }
}

/// A token as `list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ListingRow {
    pub host: String,
    pub account: String,
    pub token_name: String,
    pub create_time: Option<i64>,
    pub expires_at: Option<i64>,
}

/// One host (or one account credential, for `api = "cpanel"`) as `check` saw it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckRow {
    pub host: String,
    /// The account whose credential was checked (`api = "cpanel"`), else the WHM user.
    pub user: String,
    pub url: String,
    pub ok: bool,
    /// The server version on success, the error otherwise.
    pub detail: String,
    /// The certificate's SHA-256, in the form `tls_pin` accepts.
    pub tls_pin: Option<String>,
    /// SSH hosts: the host key's fingerprint, in the form `ssh_host_key` accepts.
    pub ssh_host_key: Option<String>,
    pub elapsed_ms: u64,
}
