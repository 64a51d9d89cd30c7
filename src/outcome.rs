//! Why this module exists: what became of each target is data that several layers share (the
//! run produces it, progress counts it, the report folds it, resume reads it back from the
//! journal), so its types live here, apart from all of them. See docs/DESIGN.md §5.

use serde::{Deserialize, Serialize};

/// The outcome of one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Rotated,
    Revoked,
    Unchanged,
    Exists,
    Skipped,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Rotated => "rotated",
            Status::Revoked => "revoked",
            Status::Unchanged => "unchanged",
            Status::Exists => "exists",
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
}

impl Status {
    /// Every status, in the order the summary lists them.
    pub const ALL: [Status; 7] = [
        Status::Created,
        Status::Rotated,
        Status::Revoked,
        Status::Unchanged,
        Status::Exists,
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
        }
    }
}
