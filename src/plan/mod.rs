//! Why this module exists: raw flags and a parsed inventory become one validated [`Plan`] before
//! any work starts (as ripgrep turns flags into a plan): `--limit` and `--accounts` select hosts
//! and accounts, the `--name` template is expanded and every name checked, credentials are
//! resolved (env, file, prompt). If anything is wrong the user hears all of it and nothing is
//! contacted. It knows nothing of how steps are sent.
//! See docs/DESIGN.md §1 and §2.

use crate::inventory::Host;
use crate::secret::Secret;

mod build;
mod expiry;
pub mod limit;
pub mod name;
pub mod policy;

pub use build::{build, template_problem};
pub use expiry::expiry;

pub use name::{NameTemplate, NameVars};
pub use policy::{Expiring, NewExpiry, TokenChange, TokenPolicy};

/// What the run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Create,
    Rotate,
    Revoke,
    List,
    Check,
    /// WHM tokens changed in place (`api_token_update`).
    Update,
    Audit,
    Sweep,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Rotate => "rotate",
            Operation::Revoke => "revoke",
            Operation::List => "list",
            Operation::Check => "check",
            Operation::Update => "update",
            Operation::Audit => "audit",
            Operation::Sweep => "sweep",
        }
    }
}

/// Whose tokens: cPanel accounts' or each host's `whm_user`'s.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    #[default]
    Account,
    Whm,
    /// `audit` and `sweep`: each host's WHM user and its accounts.
    All,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Account => "account",
            Scope::Whm => "whm",
            Scope::All => "all",
        }
    }
}

/// What the command line asked for, before validation.
#[derive(Debug, Clone, Default)]
pub struct PlanRequest {
    pub op: Option<Operation>,
    pub scope: Scope,
    /// `--name` (create, rotate: a template; revoke: a name or glob).
    pub name: Option<String>,
    /// `--revoke` glob for rotate.
    pub revoke: Option<String>,
    /// Unix seconds, already computed from `--expires-in`/`--expires-at` and checked future.
    pub expires_at: Option<i64>,
    /// `-l/--limit`
    pub limit: Option<String>,
    /// `--accounts`
    pub accounts: Option<String>,
    /// `--per-host` default for hosts that set none.
    pub per_host: usize,
    pub run_id: String,
    /// UTC date YYYYMMDD for `{date}`.
    pub date: String,
    /// `--shard K/N`: only the hosts of this shard (after `--limit`).
    pub shard: Option<crate::shard::Shard>,
    /// `--acl`, `--whitelist-ip` (create, rotate): parsed; refused without `--scope whm`.
    pub policy: TokenPolicy,
    /// `--expiring-within` (rotate, update).
    pub expiring: Option<Expiring>,
    /// What `update` changes.
    pub change: Option<TokenChange>,
    /// `audit`, `sweep`: the census rules, already checked.
    pub census: Option<std::sync::Arc<crate::audit::Rules>>,
    /// `sweep`: what it takes.
    pub sweep: Option<crate::audit::SweepFilter>,
}

/// One unit of work: an account (or the host's WHM user) and the token name it gets.
#[derive(Debug, Clone)]
pub struct Target {
    /// `None` for `--scope whm`.
    pub account: Option<String>,
    /// Expanded token name (create, rotate) or the name/glob to revoke; `None` for list/check.
    pub token_name: Option<String>,
    /// The account's own credential (`api = "cpanel"`).
    pub credential: Option<Secret>,
}

/// One host's share of the plan.
#[derive(Debug, Clone)]
pub struct HostPlan {
    pub host: Host,
    /// Effective per-host concurrency limit.
    pub per_host: usize,
    /// The WHM credential of `host.whm_user` (api = "whm", `--scope whm`, discovery).
    pub credential: Option<Secret>,
    /// Accounts are `"*"`: discover them with `listaccts`, then call [`Plan::target_for`].
    pub discover: bool,
    pub targets: Vec<Target>,
    /// The accounts `--limit` selects here (`HOST/ACCOUNT` items), applied again to
    /// discovered accounts by [`Plan::wants_account`].
    pub limit_accounts: limit::AccountSet,
}

/// What the run does, with what that operation needs, validated.
#[derive(Debug, Clone)]
pub enum Work {
    /// A new token per target, named by the template.
    Create {
        name: NameTemplate,
    },
    /// A new token per target, verified, then the old ones matching `revoke` revoked.
    Rotate {
        name: NameTemplate,
        revoke: glob::Pattern,
    },
    /// Every token whose name matches `pattern` (`--name`).
    Revoke {
        pattern: glob::Pattern,
    },
    List,
    Check,
    /// Every WHM token whose name matches `pattern` (`--name`) gets `change`, in place.
    Update {
        pattern: glob::Pattern,
        change: TokenChange,
    },
    /// Every token listed, classed and flagged.
    Audit {
        rules: std::sync::Arc<crate::audit::Rules>,
    },
    /// The census, then the revoke of what `filter` takes.
    Sweep {
        rules: std::sync::Arc<crate::audit::Rules>,
        filter: crate::audit::SweepFilter,
    },
}

impl Work {
    pub fn op(&self) -> Operation {
        match self {
            Work::Create { .. } => Operation::Create,
            Work::Rotate { .. } => Operation::Rotate,
            Work::Revoke { .. } => Operation::Revoke,
            Work::List => Operation::List,
            Work::Check => Operation::Check,
            Work::Update { .. } => Operation::Update,
            Work::Audit { .. } => Operation::Audit,
            Work::Sweep { .. } => Operation::Sweep,
        }
    }
}

/// A validated run: every host, target, name and credential checked.
#[derive(Debug, Clone)]
pub struct Plan {
    pub work: Work,
    pub scope: Scope,
    pub run_id: String,
    pub date: String,
    pub expires_at: Option<i64>,
    /// `--accounts`, applied again to discovered accounts.
    pub accounts_glob: Option<glob::Pattern>,
    pub hosts: Vec<HostPlan>,
    /// `--limit` with every `@FILE` replaced by its entries: what a run records for resume.
    pub limit: Option<String>,
    /// Non-fatal findings to print before the run (world-readable credential file, tls_insecure).
    pub warnings: Vec<String>,
    /// `--shard K/N`: the plan holds only this shard's hosts.
    pub shard: Option<crate::shard::Shard>,
    /// SHA-256 of the inventory file's bytes: the report carries it, so `coverage` can tell
    /// that shard reports belong to one inventory.
    pub inventory_sha256: String,
    /// `--acl`, `--whitelist-ip`: what every new WHM token is created with.
    pub policy: TokenPolicy,
    /// `--expiring-within`: only targets holding a matching token that expires by then.
    pub expiring: Option<Expiring>,
    /// The inventory's `[sink]` (a create or rotate writes there unless `--to` says otherwise).
    pub sink: Option<crate::inventory::SinkTable>,
}

impl Plan {
    pub fn op(&self) -> Operation {
        self.work.op()
    }

    /// The name template of a create or rotate.
    pub fn name(&self) -> Option<&NameTemplate> {
        match &self.work {
            Work::Create { name } | Work::Rotate { name, .. } => Some(name),
            _ => None,
        }
    }

    /// The glob of the tokens to revoke: revoke's `--name`, or rotate's `--revoke`.
    #[cfg(test)]
    pub fn revoke_glob(&self) -> Option<&glob::Pattern> {
        match &self.work {
            Work::Rotate { revoke, .. } => Some(revoke),
            Work::Revoke { pattern } => Some(pattern),
            _ => None,
        }
    }

    /// The target for an account discovered at run time (accounts = "*"). `Err` = the expanded
    /// name is invalid (a per-target failure). Callers filter with [`Plan::wants_account`] first.
    pub fn target_for(&self, host: &HostPlan, account: &str) -> Result<Target, String> {
        let token_name = match &self.work {
            Work::Create { name } | Work::Rotate { name, .. } => Some(
                name.expand(&NameVars {
                    date: &self.date,
                    host: &host.host.name,
                    account,
                    run: &self.run_id,
                })
                .map_err(|e| e.to_string())?,
            ),
            Work::Revoke { pattern } | Work::Update { pattern, .. } => {
                Some(pattern.as_str().to_string())
            }
            Work::List | Work::Check | Work::Audit { .. } | Work::Sweep { .. } => None,
        };
        Ok(Target {
            account: Some(account.to_string()),
            token_name,
            credential: None,
        })
    }

    /// Whether `--accounts` (if given) and `--limit`'s `HOST/ACCOUNT` items (if any) select
    /// this account of `host`.
    pub fn wants_account(&self, host: &HostPlan, account: &str) -> bool {
        host.limit_accounts.contains(account)
            && self
                .accounts_glob
                .as_ref()
                .is_none_or(|g| g.matches(account))
    }

    /// Targets known before the run (discovered accounts come later).
    pub fn target_count(&self) -> usize {
        self.hosts.iter().map(|h| h.targets.len()).sum()
    }
}

/// Ask for a `prompt` credential: `label` says whose ("web1: root (WHM)").
pub type Prompter<'a> = dyn FnMut(&str) -> Result<Secret, String> + 'a;

#[cfg(test)]
mod tests;
