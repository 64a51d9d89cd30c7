//! Why this module exists: raw flags and a parsed inventory become one validated [`Plan`] before
//! any work starts (as ripgrep turns flags into a plan): `--limit` and `--accounts` select hosts
//! and accounts, the `--name` template is expanded and every name checked, credentials are
//! resolved (env, file, prompt). If anything is wrong the user hears all of it and nothing is
//! contacted. It knows nothing of how steps are sent.

use crate::error::{InputError, Problem};
use crate::inventory::credential::Resolver;
use crate::inventory::{Accounts, Api, CredentialRef, Host, Inventory};
use crate::secret::Secret;

pub mod limit;
pub mod name;

pub use name::{NameTemplate, NameVars, valid_token_name};

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

/// Name problems beyond this many are folded into one summary problem.
const MAX_NAME_PROBLEMS: usize = 20;

fn glob_of(raw: &str, flag: &str, example: &str) -> Result<glob::Pattern, Problem> {
    glob::Pattern::new(raw).map_err(|e| {
        Problem::new(flag, format!("\"{raw}\" is not a valid glob: {}", e.msg)).hint(format!(
            "globs use * ? and [a-z] ranges, e.g. {flag} '{example}'"
        ))
    })
}

/// `--name` for revoke: a token name or a glob over token names.
fn revoke_name(raw: &str) -> Result<glob::Pattern, Problem> {
    let plain = raw
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_-*?[]!".contains(&b));
    if raw.is_empty() || !plain {
        return Err(Problem::new("--name", format!("\"{raw}\" is neither a token name nor a glob over token names"))
            .hint("token names use letters, digits, '_' and '-'; globs add * ? and [..]; placeholders such as {date} are not expanded by revoke"));
    }
    glob_of(raw, "--name", "deploy-*")
}

/// Where a `prompt` credential goes once asked.
enum Slot {
    Host(usize),
    Target(usize, usize),
}

struct Deferred {
    slot: Slot,
    host: String,
    user: String,
    label: String,
    used_at: String,
}

/// The fix for a template that expands to an invalid token name.
const NAME_HINT: &str = "token names are 1 to 50 of A-Z a-z 0-9 _ -: shorten the fixed text or drop a placeholder, e.g. --name 'ci-{date}-{account}'";

/// Validate `req` against `inventory`: selection, names, credentials. All problems at once.
/// Prompts are asked only when everything else is valid.
pub fn build(
    inventory: &Inventory,
    req: &PlanRequest,
    prompt: &mut Prompter<'_>,
) -> Result<Plan, InputError> {
    let mut problems: Vec<Problem> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    let op = match req.op {
        Some(op) => op,
        None => {
            return Err(Problem::new("command line", "no operation was given")
                .hint("run create, rotate, revoke, list or check")
                .into());
        }
    };
    let scope = req.scope;
    let mut name = None;
    let mut revoke = None;
    match op {
        Operation::Create | Operation::Rotate => match &req.name {
            None => problems.push(
                Problem::new("--name", format!("{} needs --name TEMPLATE", op.as_str()))
                    .hint("e.g. --name 'deploy-{date}-{account}'; placeholders are {date}, {host}, {account}, {run}"),
            ),
            Some(raw) => match NameTemplate::parse(raw) {
                Ok(t) => name = Some(t),
                Err(e) => problems.push(Problem::new("--name", e).hint("e.g. --name 'deploy-{date}-{account}'")),
            },
        },
        Operation::Revoke => match &req.name {
            None => problems.push(
                Problem::new("--name", "revoke needs --name NAME_OR_GLOB")
                    .hint("e.g. --name 'deploy-2024*' revokes every token whose name matches"),
            ),
            Some(raw) => match revoke_name(raw) {
                Ok(p) => revoke = Some(p),
                Err(p) => problems.push(p),
            },
        },
        Operation::List | Operation::Check => {}
    }
    if op == Operation::Rotate {
        match &req.revoke {
            None => problems.push(
                Problem::new(
                    "--revoke",
                    "rotate needs --revoke GLOB: the old tokens to revoke once the new one works",
                )
                .hint("e.g. --revoke 'deploy-*' (the new token is never revoked)"),
            ),
            Some(raw) => match glob_of(raw, "--revoke", "deploy-*") {
                Ok(p) => revoke = Some(p),
                Err(p) => problems.push(p),
            },
        }
    }
    let accounts_glob = match &req.accounts {
        None => None,
        Some(raw) => match glob_of(raw, "--accounts", "a*") {
            Ok(p) => Some(p),
            Err(p) => {
                problems.push(p);
                None
            }
        },
    };
    if accounts_glob.is_some() && scope == Scope::Whm {
        warnings
            .push("--accounts has no effect with --scope whm (one WHM token per host)".to_string());
    }
    let selected: Vec<usize> = match &req.limit {
        None => (0..inventory.hosts.len()).collect(),
        Some(pattern) => match limit::select(&inventory.hosts, pattern) {
            Ok(sel) => {
                warnings.extend(sel.warnings);
                sel.hosts
            }
            Err(p) => {
                problems.push(p);
                Vec::new()
            }
        },
    };

    let mut resolver = Resolver::new();
    let mut deferred: Vec<Deferred> = Vec::new();
    let mut name_problems: Vec<Problem> = Vec::new();
    let mut hosts: Vec<HostPlan> = Vec::with_capacity(selected.len());
    let expand = |template: &Option<NameTemplate>,
                  host: &Host,
                  account: &str|
     -> Option<Result<String, String>> {
        template.as_ref().map(|t| {
            t.expand(&NameVars {
                date: &req.date,
                host: &host.name,
                account,
                run: &req.run_id,
            })
        })
    };
    for idx in selected {
        let host = &inventory.hosts[idx];
        let hp_index = hosts.len();
        if host.tls.insecure {
            warnings.push(format!(
                "{}: tls_insecure = true: certificate NOT verified",
                host.name
            ));
        }
        let discover = scope == Scope::Account && matches!(host.accounts, Accounts::All);
        let needs_host_credential = scope == Scope::Whm || host.api == Api::Whm || discover;
        let mut hp = HostPlan {
            host: host.clone(),
            per_host: host.per_host.unwrap_or(req.per_host).max(1),
            credential: None,
            discover,
            targets: Vec::new(),
        };
        if needs_host_credential || (op == Operation::Check && host.credential.is_some()) {
            match &host.credential {
                None => problems.push(
                    Problem::new(&host.origin, format!("no credential for {} (WHM) on host {}", host.whm_user, host.name))
                        .field("credential")
                        .hint("set credential = \"env:WHM_TOKEN\" (or file:PATH, prompt) on the host or in [defaults] (the credential column in CSV)"),
                ),
                Some(CredentialRef::Prompt) => deferred.push(Deferred {
                    slot: Slot::Host(hp_index),
                    host: host.name.clone(),
                    user: host.whm_user.clone(),
                    label: format!("{}: {} (WHM)", host.name, host.whm_user),
                    used_at: host.origin.clone(),
                }),
                Some(c) => hp.credential = resolver.read(c, &host.origin),
            }
        }
        let mut push_name =
            |who: String, result: Option<Result<String, String>>| -> Option<String> {
                match result {
                    None => None,
                    Some(Ok(n)) => Some(n),
                    Some(Err(e)) => {
                        name_problems
                            .push(Problem::new("--name", format!("{who}: {e}")).hint(NAME_HINT));
                        None
                    }
                }
            };
        let fixed_name = || {
            revoke
                .as_ref()
                .filter(|_| op == Operation::Revoke)
                .map(|p| p.as_str().to_string())
        };
        match scope {
            Scope::Whm => {
                let token_name = match op {
                    Operation::Create | Operation::Rotate => push_name(
                        format!("{}/{}", host.name, host.whm_user),
                        expand(&name, host, &host.whm_user),
                    ),
                    _ => fixed_name(),
                };
                hp.targets.push(Target {
                    account: None,
                    token_name,
                    credential: None,
                });
            }
            Scope::Account => {
                let listed = host.accounts.listed();
                if matches!(host.accounts, Accounts::Listed(_)) && listed.is_empty() {
                    warnings.push(format!(
                        "{}: no accounts listed; nothing to do on this host for --scope account",
                        host.name
                    ));
                }
                for spec in listed {
                    if accounts_glob
                        .as_ref()
                        .is_some_and(|g| !g.matches(&spec.user))
                    {
                        continue;
                    }
                    let token_name = match op {
                        Operation::Create | Operation::Rotate => push_name(
                            format!("{}/{}", host.name, spec.user),
                            expand(&name, host, &spec.user),
                        ),
                        _ => fixed_name(),
                    };
                    let mut target = Target {
                        account: Some(spec.user.clone()),
                        token_name,
                        credential: None,
                    };
                    if host.api == Api::Cpanel {
                        match spec.credential.as_ref().or(host.credential.as_ref()) {
                            None => problems.push(
                                Problem::new(&host.origin, format!("no credential for account {} (api = \"cpanel\")", spec.user))
                                    .field("credential")
                                    .hint("give the account its own credential, or set credential on the host"),
                            ),
                            Some(CredentialRef::Prompt) => deferred.push(Deferred {
                                slot: Slot::Target(hp_index, hp.targets.len()),
                                host: host.name.clone(),
                                user: spec.user.clone(),
                                label: format!("{}: {} (cPanel)", host.name, spec.user),
                                used_at: host.origin.clone(),
                            }),
                            Some(c) => target.credential = resolver.read(c, &host.origin),
                        }
                    }
                    hp.targets.push(target);
                }
            }
        }
        hosts.push(hp);
    }
    if name_problems.len() > MAX_NAME_PROBLEMS {
        let more = name_problems.len() - MAX_NAME_PROBLEMS;
        name_problems.truncate(MAX_NAME_PROBLEMS);
        name_problems.push(Problem::new(
            "--name",
            format!("… and {more} more invalid token names"),
        ));
    }
    problems.append(&mut name_problems);
    if problems.is_empty()
        && !hosts.is_empty()
        && hosts.iter().all(|h| h.targets.is_empty() && !h.discover)
    {
        let hint = if req.accounts.is_some() {
            "check the --accounts glob against the inventory's account names"
        } else {
            "list accounts for the selected hosts, or use --scope whm for the hosts' WHM tokens"
        };
        problems.push(
            Problem::new(
                inventory.path.display().to_string(),
                "the selected hosts have no accounts to work on",
            )
            .hint(hint),
        );
    }
    problems.extend(resolver.problems());
    if !problems.is_empty() {
        return Err(InputError { problems });
    }
    // Everything else is valid: now it is worth asking the operator.
    for d in deferred {
        if let Some(secret) = resolver.prompt(&d.host, &d.user, &d.label, &d.used_at, prompt) {
            match d.slot {
                Slot::Host(h) => hosts[h].credential = Some(secret),
                Slot::Target(h, t) => hosts[h].targets[t].credential = Some(secret),
            }
        }
    }
    let problems = resolver.problems();
    if !problems.is_empty() {
        return Err(InputError { problems });
    }
    warnings.append(&mut resolver.warnings);
    Ok(Plan {
        op,
        scope,
        run_id: req.run_id.clone(),
        date: req.date.clone(),
        name,
        revoke,
        expires_at: req.expires_at,
        accounts_glob,
        hosts,
        warnings,
    })
}

#[cfg(test)]
mod tests;
