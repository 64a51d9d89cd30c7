//! Why this module exists: a run over a fleet ends in one verdict per target. This module turns
//! those results into the human summary (counts per status, failures folded by cause), the JSON
//! report of `--report`, and the exit code of DESIGN.md §5. It never sees a secret: results carry
//! names and causes only. It knows nothing of the network.

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
