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

pub use build::{build, template_problem};
pub use expiry::expiry;

pub use name::{NameTemplate, NameVars};

/// What the run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Create,
    Rotate,
    Revoke,
    List,
    Check,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Rotate => "rotate",
            Operation::Revoke => "revoke",
            Operation::List => "list",
            Operation::Check => "check",
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
}

/// A validated run: every host, target, name and credential checked.
#[derive(Debug, Clone)]
pub struct Plan {
    pub op: Operation,
    pub scope: Scope,
    pub run_id: String,
    pub date: String,
    pub name: Option<NameTemplate>,
    /// For revoke: `--name` as a glob; for rotate: `--revoke`.
    pub revoke: Option<glob::Pattern>,
    pub expires_at: Option<i64>,
    /// `--accounts`, applied again to discovered accounts.
    pub accounts_glob: Option<glob::Pattern>,
    pub hosts: Vec<HostPlan>,
    /// Non-fatal findings to print before the run (world-readable credential file, tls_insecure).
    pub warnings: Vec<String>,
}

impl Plan {
    /// The target for an account discovered at run time (accounts = "*"). `Err` = the expanded
    /// name is invalid (a per-target failure). Callers filter with [`Plan::wants_account`] first.
    pub fn target_for(&self, host: &HostPlan, account: &str) -> Result<Target, String> {
        let token_name = match self.op {
            Operation::Create | Operation::Rotate => {
                let template = self
                    .name
                    .as_ref()
                    .ok_or("the plan has no --name template")?;
                Some(template.expand(&NameVars {
                    date: &self.date,
                    host: &host.host.name,
                    account,
                    run: &self.run_id,
                })?)
            }
            Operation::Revoke => self.revoke.as_ref().map(|p| p.as_str().to_string()),
            Operation::List | Operation::Check => None,
        };
        Ok(Target {
            account: Some(account.to_string()),
            token_name,
            credential: None,
        })
    }

    /// Whether `--accounts` (if given) selects this account.
    pub fn wants_account(&self, account: &str) -> bool {
        self.accounts_glob
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
