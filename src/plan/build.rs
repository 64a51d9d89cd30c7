//! [`build`]: flags and an inventory become a [`Plan`], every problem collected before any is
//! reported, prompts asked only once everything else is valid. The steps: the flags (names,
//! globs, `--limit`), then each selected host (its credential, its targets and their names and
//! credentials), then the checks over the whole plan, then the prompts.

use super::limit;
use super::name::{NameError, NameTemplate, NameVars};
use super::{HostPlan, Operation, Plan, PlanRequest, Prompter, Scope, Target, Work};
use crate::error::{InputError, Problem};
use crate::inventory::credential::Resolver;
use crate::inventory::{AccountSpec, Accounts, Api, CredentialRef, Host, Inventory};

/// How many targets a folded problem names as examples.
const EXAMPLES: usize = 3;

/// The fix for a template that expands to an invalid token name.
const NAME_HINT: &str = "token names are 1 to 50 of A-Z a-z 0-9 _ -: shorten the fixed text or drop a placeholder, e.g. --name 'ci-{date}-{account}'";

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

/// The problem with `--name` as a template, for a create or rotate (checked even when the
/// inventory is broken, so one run shows every mistake).
pub fn template_problem(op: Operation, name: Option<&str>) -> Option<Problem> {
    if !matches!(op, Operation::Create | Operation::Rotate) {
        return None;
    }
    let msg = NameTemplate::parse(name?).err()?;
    Some(Problem::new("--name", msg))
}

/// One problem per kind of invalid expansion, however many targets share it: "expands to names
/// over 50 characters for 2400 targets (the longest, …; e.g. web1/alice, web2/bob)".
fn fold_names(names: Vec<(String, NameError)>) -> Vec<Problem> {
    let mut kinds: Vec<(super::name::Wrong, Vec<(String, NameError)>)> = Vec::new();
    for (target, e) in names {
        match kinds.iter_mut().find(|(w, _)| *w == e.wrong) {
            Some((_, list)) => list.push((target, e)),
            None => kinds.push((e.wrong, vec![(target, e)])),
        }
    }
    kinds
        .into_iter()
        .map(|(wrong, list)| {
            if let [(target, e)] = list.as_slice() {
                return Problem::new("--name", format!("{target}: {e}")).hint(NAME_HINT);
            }
            let template = &list[0].1.template;
            let n = list.len();
            let examples: Vec<&str> = list.iter().map(|(t, _)| t.as_str()).collect();
            let examples = super::limit::list(&examples[..n.min(EXAMPLES)], EXAMPLES);
            let more = if n > EXAMPLES { ", …" } else { "" };
            let message = match wrong {
                super::name::Wrong::TooLong => {
                    let longest = list.iter().map(|(_, e)| e).max_by_key(|e| e.length()).unwrap();
                    format!(
                        "--name \"{template}\" expands to names over {} characters for {n} targets (the longest, \"{}\", is {}; e.g. {examples}{more})",
                        super::name::MAX_NAME_LEN,
                        longest.expanded,
                        longest.length()
                    )
                }
                super::name::Wrong::Char(c) => format!(
                    "--name \"{template}\" expands to names containing {c:?} for {n} targets (e.g. {examples}{more}); token names use only letters, digits, '_' and '-'"
                ),
                super::name::Wrong::Empty => format!(
                    "--name \"{template}\" expands to an empty name for {n} targets (e.g. {examples}{more})"
                ),
            };
            Problem::new("--name", message).hint(NAME_HINT)
        })
        .collect()
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

/// The flags, parsed: what every host's targets are made from.
struct Flags {
    op: Operation,
    name: Option<NameTemplate>,
    /// For revoke: `--name` as a glob; for rotate: `--revoke`.
    revoke: Option<glob::Pattern>,
    accounts_glob: Option<glob::Pattern>,
    /// The hosts `--limit` selects, each with the accounts it selects there.
    selected: Vec<(usize, limit::AccountSet)>,
    /// `--limit` with `@FILE`s expanded.
    limit: Option<String>,
}

/// The plan under construction, and everything found wrong so far.
struct Builder<'r> {
    req: &'r PlanRequest,
    flags: Flags,
    problems: Vec<Problem>,
    /// Invalid expansions: (host/account, what is wrong), folded by mistake in
    /// [`Builder::check_whole`].
    name_problems: Vec<(String, NameError)>,
    /// Hosts with `tls_insecure = true`, named in one warning.
    insecure: Vec<String>,
    /// Hosts with `ssh_insecure = true`, named in one warning.
    ssh_insecure: Vec<String>,
    /// SSH hosts that log in as another user than root.
    ssh_not_root: Vec<String>,
    /// SSH hosts whose `--per-host` was lowered to sshd's `MaxSessions` default.
    ssh_capped: Vec<String>,
    /// `--scope all` hosts with `api = "cpanel"`: their WHM tokens are not listed (one warning).
    no_whm: Vec<String>,
    warnings: Vec<String>,
    resolver: Resolver,
    deferred: Vec<Deferred>,
    hosts: Vec<HostPlan>,
}

/// Validate `req` against `inventory`: selection, names, credentials. All problems at once.
/// Prompts are asked only when everything else is valid.
pub fn build(
    inventory: &Inventory,
    req: &PlanRequest,
    prompt: &mut Prompter<'_>,
) -> Result<Plan, InputError> {
    let op = req.op.ok_or_else(|| {
        InputError::one(
            Problem::new("command line", "no operation was given")
                .hint("run create, rotate, revoke, list or check"),
        )
    })?;
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let flags = parse_flags(inventory, req, op, &mut problems, &mut warnings);
    let mut b = Builder {
        req,
        problems,
        name_problems: Vec::new(),
        insecure: Vec::new(),
        ssh_insecure: Vec::new(),
        ssh_capped: Vec::new(),
        ssh_not_root: Vec::new(),
        no_whm: Vec::new(),
        warnings,
        resolver: Resolver::new(),
        deferred: Vec::new(),
        hosts: Vec::with_capacity(flags.selected.len()),
        flags,
    };
    for (idx, only) in std::mem::take(&mut b.flags.selected) {
        let hp = b.host_plan(&inventory.hosts[idx], only);
        b.hosts.push(hp);
    }
    b.check_whole(inventory);
    let mut plan = b.finish(prompt)?;
    plan.inventory_sha256 = inventory.sha256.clone();
    plan.sink = inventory.sink.clone();
    Ok(plan)
}

/// ACLs, allow-lists and in-place changes exist for WHM tokens only; `update` needs a change.
fn policy_problems(req: &PlanRequest, op: Operation, problems: &mut Vec<Problem>) {
    use super::policy::{ACCOUNT_HAS_NO_POLICY, ACCOUNT_HAS_NO_UPDATE};
    let whm = req.scope == Scope::Whm;
    if !req.policy.is_empty() && !whm {
        let flag = if req.policy.acls.is_empty() {
            "--whitelist-ip"
        } else {
            "--acl"
        };
        problems.push(
            Problem::new(flag, ACCOUNT_HAS_NO_POLICY)
                .hint("add --scope whm to give the hosts' WHM tokens ACLs and an allow-list, or drop the flag"),
        );
    }
    if op != Operation::Update {
        return;
    }
    if !whm {
        problems.push(
            Problem::new("update", ACCOUNT_HAS_NO_UPDATE)
                .hint("add --scope whm to change the hosts' WHM tokens in place"),
        );
    }
    if req.change.as_ref().is_none_or(|c| c.is_empty()) {
        problems.push(
            Problem::new("update", "nothing to change")
                .hint("give at least one of --expires-in DUR, --expires-at WHEN, --never-expires, --acl ACL, --whitelist-ip ADDR or --whitelist-any"),
        );
    }
}

/// The flags that do not depend on a host: names, globs, `--limit`.
fn parse_flags(
    inventory: &Inventory,
    req: &PlanRequest,
    op: Operation,
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<String>,
) -> Flags {
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
        Operation::Update => match &req.name {
            None => problems.push(
                Problem::new("--name", "update needs --name NAME_OR_GLOB")
                    .hint("e.g. --name 'whm-*' changes every WHM token whose name matches"),
            ),
            Some(raw) => match revoke_name(raw) {
                Ok(p) => revoke = Some(p),
                Err(p) => problems.push(p),
            },
        },
        Operation::List | Operation::Check | Operation::Audit | Operation::Sweep => {}
    }
    policy_problems(req, op, problems);
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
        Some(raw) => glob_of(raw, "--accounts", "a*")
            .map_err(|p| problems.push(p))
            .ok(),
    };
    if accounts_glob.is_some() && req.scope == Scope::Whm {
        warnings
            .push("--accounts has no effect with --scope whm (one WHM token per host)".to_string());
    }
    let mut expanded = None;
    let selected = match &req.limit {
        None => (0..inventory.hosts.len())
            .map(|i| (i, limit::AccountSet::all()))
            .collect(),
        Some(pattern) => match limit::select(&inventory.hosts, pattern) {
            Ok(sel) => {
                warnings.extend(sel.warnings);
                expanded = Some(sel.expanded);
                if req.scope == Scope::Whm && sel.accounts.iter().any(|a| !a.is_all()) {
                    problems.push(
                        Problem::new("--limit", "HOST/ACCOUNT items select accounts, but --scope whm works on each host's WHM user")
                            .hint("name the hosts alone (web1, not web1/alice) with --scope whm"),
                    );
                }
                sel.hosts.into_iter().zip(sel.accounts).collect()
            }
            Err(p) => {
                problems.push(p);
                Vec::new()
            }
        },
    };
    // A shard is a part of what `--limit` selects: its hosts by rendezvous hash of the name.
    let selected = match req.shard {
        Some(shard) => selected
            .into_iter()
            .filter(|(i, _)| shard.contains(&inventory.hosts[*i].name))
            .collect(),
        None => selected,
    };
    Flags {
        op,
        name,
        revoke,
        accounts_glob,
        selected,
        limit: expanded,
    }
}

/// sshd's default `MaxSessions`: commands one SSH connection carries at once.
pub const SSH_MAX_SESSIONS: usize = 10;

/// One warning naming `hosts` (the first few) with `what`.
fn warn_hosts(warnings: &mut Vec<String>, hosts: &[String], what: &str) {
    match hosts {
        [] => {}
        [one] => warnings.push(format!("{one}: {what}")),
        many => {
            let names: Vec<&str> = many.iter().map(String::as_str).collect();
            warnings.push(format!(
                "{} hosts ({}): {what}",
                many.len(),
                limit::list(&names, 5)
            ));
        }
    }
}

impl Builder<'_> {
    /// One selected host: its credential and its targets.
    fn host_plan(&mut self, host: &Host, only: limit::AccountSet) -> HostPlan {
        let (op, scope) = (self.flags.op, self.req.scope);
        if host.api == Api::Ssh {
            if host.ssh.insecure {
                self.ssh_insecure.push(host.name.clone());
            }
            if host.ssh.login() != "root" {
                self.ssh_not_root.push(host.name.clone());
            }
        } else if host.tls.insecure {
            self.insecure.push(host.name.clone());
        }
        let discover = scope != Scope::Whm && matches!(host.accounts, Accounts::All);
        // Over SSH the key is the credential: ssh reads it, tokenfleet never holds it.
        let needs_host_credential =
            host.api != Api::Ssh && (scope == Scope::Whm || host.api == Api::Whm || discover);
        let mut planned = host.clone();
        if let Accounts::Listed(list) = &mut planned.accounts {
            // The targets hold the accounts now: a second copy of 100,000 of them (each with
            // where it is written) would only cost memory for the whole run.
            *list = Vec::new();
        }
        let mut hp = HostPlan {
            host: planned,
            per_host: self.per_host(host),
            credential: None,
            discover,
            targets: Vec::new(),
            limit_accounts: only,
        };
        if needs_host_credential
            || (op == Operation::Check && host.credential.is_some() && host.api != Api::Ssh)
        {
            hp.credential = self.host_credential(host);
        }
        match scope {
            Scope::Whm => {
                let token_name = self.token_name(host, &host.whm_user);
                hp.targets.push(Target {
                    account: None,
                    token_name,
                    credential: None,
                });
            }
            Scope::Account => self.account_targets(host, &mut hp),
            Scope::All => {
                // Only a WHM credential can list WHM tokens: an `api = "cpanel"` host's census
                // is its accounts', and the run says so.
                if host.api != Api::Cpanel {
                    hp.targets.push(Target {
                        account: None,
                        token_name: None,
                        credential: None,
                    });
                } else {
                    self.no_whm.push(host.name.clone());
                }
                self.account_targets(host, &mut hp);
            }
        }
        hp
    }

    /// Requests in flight to `host` at most: its `per_host`, else `--per-host`; over SSH the
    /// option is held to sshd's default `MaxSessions` (10 commands per connection), since one
    /// connection carries them all. An inventory `per_host` above it is the user's word that
    /// the server allows more.
    fn per_host(&mut self, host: &Host) -> usize {
        match host.per_host {
            Some(n) => n.max(1),
            None if host.api == Api::Ssh && self.req.per_host > SSH_MAX_SESSIONS => {
                self.ssh_capped.push(host.name.clone());
                SSH_MAX_SESSIONS
            }
            None => self.req.per_host.max(1),
        }
    }

    /// The WHM credential of `host.whm_user`; a prompt is deferred until all else is valid.
    fn host_credential(&mut self, host: &Host) -> Option<crate::secret::Secret> {
        match &host.credential {
            None => {
                self.problems.push(
                    Problem::new(&host.origin, format!("no credential for {} (WHM) on host {}", host.whm_user, host.name))
                        .field("credential")
                        .hint("set credential = \"env:WHM_TOKEN\" (or file:PATH, prompt) on the host or in [defaults] (the credential column in CSV)"),
                );
                None
            }
            Some(CredentialRef::Prompt) => {
                self.deferred.push(Deferred {
                    slot: Slot::Host(self.hosts.len()),
                    host: host.name.clone(),
                    user: host.whm_user.clone(),
                    label: format!("{}: {} (WHM)", host.name, host.whm_user),
                    used_at: host.at("credential").to_string(),
                });
                None
            }
            Some(c) => self.resolver.read(c, host.at("credential"), &host.name),
        }
    }

    /// The token name for `account` on `host`: the expanded template (create, rotate), the
    /// glob (revoke), or none (list, check). An invalid expansion is a name problem.
    fn token_name(&mut self, host: &Host, account: &str) -> Option<String> {
        match self.flags.op {
            Operation::Create | Operation::Rotate => {
                let template = self.flags.name.as_ref()?;
                let expanded = template.expand(&NameVars {
                    date: &self.req.date,
                    host: &host.name,
                    account,
                    run: &self.req.run_id,
                });
                match expanded {
                    Ok(n) => Some(n),
                    Err(e) => {
                        self.name_problems
                            .push((format!("{}/{account}", host.name), e));
                        None
                    }
                }
            }
            Operation::Revoke | Operation::Update => {
                self.flags.revoke.as_ref().map(|p| p.as_str().to_string())
            }
            Operation::List | Operation::Check | Operation::Audit | Operation::Sweep => None,
        }
    }

    /// The listed accounts of `host` that `--accounts` selects, one target each.
    fn account_targets(&mut self, host: &Host, hp: &mut HostPlan) {
        let listed = host.accounts.listed();
        if matches!(host.accounts, Accounts::Listed(_)) && listed.is_empty() {
            self.warnings.push(format!(
                "{}: no accounts listed; nothing to do on this host for --scope account",
                host.name
            ));
        }
        for spec in listed {
            if !hp.limit_accounts.contains(&spec.user)
                || self
                    .flags
                    .accounts_glob
                    .as_ref()
                    .is_some_and(|g| !g.matches(&spec.user))
            {
                continue;
            }
            let mut target = Target {
                account: Some(spec.user.clone()),
                token_name: self.token_name(host, &spec.user),
                credential: None,
            };
            if host.api == Api::Cpanel {
                target.credential = self.account_credential(host, spec, hp.targets.len());
            }
            hp.targets.push(target);
        }
    }

    /// An account's own credential (`api = "cpanel"`), falling back to the host's.
    fn account_credential(
        &mut self,
        host: &Host,
        spec: &AccountSpec,
        index: usize,
    ) -> Option<crate::secret::Secret> {
        let used_at = match &spec.credential {
            Some(_) => spec.origin.as_str(),
            None => host.at("credential"),
        };
        match spec.credential.as_ref().or(host.credential.as_ref()) {
            None => {
                self.problems.push(
                    Problem::new(
                        &spec.origin,
                        format!("no credential for account {} (api = \"cpanel\")", spec.user),
                    )
                    .field("credential")
                    .hint("give the account its own credential, or set credential on the host"),
                );
                None
            }
            Some(CredentialRef::Prompt) => {
                self.deferred.push(Deferred {
                    slot: Slot::Target(self.hosts.len(), index),
                    host: host.name.clone(),
                    user: spec.user.clone(),
                    label: format!("{}: {} (cPanel)", host.name, spec.user),
                    used_at: used_at.to_string(),
                });
                None
            }
            Some(c) => self
                .resolver
                .read(c, used_at, &format!("{}/{}", host.name, spec.user)),
        }
    }

    /// The checks over the whole plan: name problems folded, a selection with nothing to do.
    fn check_whole(&mut self, inventory: &Inventory) {
        let names = std::mem::take(&mut self.name_problems);
        self.problems.extend(fold_names(names));
        match self.insecure.as_slice() {
            [] => {}
            [one] => self.warnings.push(format!(
                "{one}: tls_insecure = true: certificate NOT verified"
            )),
            many => {
                let names: Vec<&str> = many.iter().map(String::as_str).collect();
                self.warnings.push(format!(
                    "tls_insecure = true on {} hosts ({}): certificates NOT verified",
                    many.len(),
                    limit::list(&names, 5)
                ));
            }
        }
        warn_hosts(
            &mut self.warnings,
            &self.ssh_insecure,
            "ssh_insecure = true: host key NOT verified",
        );
        warn_hosts(
            &mut self.warnings,
            &self.ssh_not_root,
            "ssh_user is not root: `uapi --user` and whmapi1 need root, so each command fails there unless this login may run them as root",
        );
        warn_hosts(
            &mut self.warnings,
            &self.ssh_capped,
            "--per-host lowered to 10 over SSH (sshd's MaxSessions default; set per_host on the host if its sshd allows more)",
        );
        if !self.no_whm.is_empty() {
            let names: Vec<&str> = self.no_whm.iter().map(String::as_str).collect();
            self.warnings.push(format!(
                "api = \"cpanel\" on {} ({}): no WHM credential, so their WHM tokens are not listed (only their accounts')",
                if names.len() == 1 { "1 host".to_string() } else { format!("{} hosts", names.len()) },
                limit::list(&names, 5)
            ));
        }
        if self.problems.is_empty()
            && !self.hosts.is_empty()
            && self
                .hosts
                .iter()
                .all(|h| h.targets.is_empty() && !h.discover)
        {
            let hint = if self.req.accounts.is_some() {
                "check the --accounts glob against the inventory's account names"
            } else {
                "list accounts for the selected hosts, or use --scope whm for the hosts' WHM tokens"
            };
            self.problems.push(
                Problem::new(
                    inventory.path.display().to_string(),
                    "the selected hosts have no accounts to work on",
                )
                .hint(hint),
            );
        }
        self.problems.extend(self.resolver.problems());
    }

    /// Everything else is valid: now it is worth asking the operator.
    fn finish(mut self, prompt: &mut Prompter<'_>) -> Result<Plan, InputError> {
        if !self.problems.is_empty() {
            return Err(InputError {
                problems: self.problems,
            });
        }
        for d in std::mem::take(&mut self.deferred) {
            let asked = self
                .resolver
                .prompt(&d.host, &d.user, &d.label, &d.used_at, prompt);
            if let Some(secret) = asked {
                match d.slot {
                    Slot::Host(h) => self.hosts[h].credential = Some(secret),
                    Slot::Target(h, t) => self.hosts[h].targets[t].credential = Some(secret),
                }
            }
        }
        let problems = self.resolver.problems();
        if !problems.is_empty() {
            return Err(InputError { problems });
        }
        self.warnings.append(&mut self.resolver.warnings);
        let req = self.req;
        let work = match (self.flags.op, self.flags.name, self.flags.revoke) {
            (Operation::Create, Some(name), _) => Work::Create { name },
            (Operation::Rotate, Some(name), Some(revoke)) => Work::Rotate { name, revoke },
            (Operation::Revoke, _, Some(pattern)) => Work::Revoke { pattern },
            (Operation::Update, _, Some(pattern)) => Work::Update {
                pattern,
                change: req.change.clone().unwrap_or_default(),
            },
            (Operation::List, ..) => Work::List,
            (Operation::Check, ..) => Work::Check,
            (Operation::Audit, ..) => Work::Audit {
                rules: req.census.clone().expect("audit carries its rules"),
            },
            (Operation::Sweep, ..) => Work::Sweep {
                rules: req.census.clone().expect("sweep carries its rules"),
                filter: req.sweep.clone().unwrap_or_default(),
            },
            _ => unreachable!("parse_flags reports a missing --name or --revoke as a problem"),
        };
        Ok(Plan {
            work,
            scope: req.scope,
            run_id: req.run_id.clone(),
            date: req.date.clone(),
            expires_at: req.expires_at,
            accounts_glob: self.flags.accounts_glob,
            hosts: self.hosts,
            limit: self.flags.limit,
            warnings: self.warnings,
            shard: req.shard,
            inventory_sha256: String::new(),
            policy: req.policy.clone(),
            expiring: req.expiring.clone(),
            sink: None,
        })
    }
}
