//! Why this module exists: a run is described once and built once. [`RunRecord`] is the typed
//! record of a `create` or `rotate` (its flags, options and plan fingerprint) that the journal
//! carries and `resume` reads back, so both ends agree by type, not by string keys; [`defaults`]
//! is the one place the option defaults live; [`backends`] turns a validated plan into the
//! backend of each host, for `create`/`rotate`/`revoke`/`list`/`check` and `resume` alike (as
//! ripgrep's `HiArgs` builds its workers). See docs/DESIGN.md §4 and §7.

use crate::backend::{self, Fleet, HostAccess};
use crate::error::{InputError, Problem};
use crate::plan::{Expiring, Plan, TokenPolicy};
use crate::run::RunOptions;
use crate::seal::PlanRecord;
use crate::sink::bao::{BaoStore, Destination, PathVars, RunInfo, StoreSpec};
use crate::transport::TransportConfig;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The defaults of the run options, used by the command line and by resume of journals that
/// predate an option.
pub mod defaults {
    /// `--jobs`: requests in flight over the whole fleet.
    pub const JOBS: u32 = 32;
    /// `--per-host`: requests in flight per server (below cPHulk's 5 failed logins).
    pub const PER_HOST: u32 = 4;
    /// `--timeout`, seconds per request.
    pub const TIMEOUT_SECS: u64 = 30;
    /// `--retries` after a retryable failure.
    pub const RETRIES: u32 = 3;
    /// TCP + TLS connect timeout cap, seconds: a host that is down costs this, not the whole
    /// request timeout.
    pub const CONNECT_TIMEOUT_SECS: u64 = 5;
}

fn default_jobs() -> u32 {
    defaults::JOBS
}
fn default_per_host() -> u32 {
    defaults::PER_HOST
}
fn default_timeout() -> u64 {
    defaults::TIMEOUT_SECS
}
fn default_retries() -> u32 {
    defaults::RETRIES
}
fn yes() -> bool {
    true
}

/// The options of a `create` or `rotate`, as the journal's plan line records them (its
/// `options`): everything needed to rebuild the same plan (names expand with the same date and
/// run id) and to tell whether the inventory changed in a way that matters. Fields added later
/// have defaults, so older journals still read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run date (`{date}`), YYYYMMDD.
    #[serde(default)]
    pub date: Option<String>,
    /// The inventory's absolute path, for a resume started from another folder.
    #[serde(default)]
    pub inventory_abs: Option<String>,
    /// The plan's fingerprint (`resume::fingerprint`): hosts, where their tokens live, accounts.
    #[serde(default)]
    pub targets: Option<serde_json::Value>,
    #[serde(default)]
    pub limit: Option<String>,
    #[serde(default)]
    pub accounts: Option<String>,
    #[serde(default = "default_jobs")]
    pub jobs: u32,
    #[serde(default = "default_per_host")]
    pub per_host: u32,
    #[serde(default = "default_timeout")]
    pub timeout: u64,
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// `--name` as given (a template).
    #[serde(default)]
    pub name: Option<String>,
    /// `--revoke` (rotate).
    #[serde(default)]
    pub revoke: Option<String>,
    /// Unix seconds.
    #[serde(default)]
    pub expires_at: Option<i64>,
    #[serde(default = "yes")]
    pub verify: bool,
    #[serde(default)]
    pub replace_existing: bool,
    /// The handoff file (`-o`) as given; `-`: standard output.
    #[serde(default)]
    pub output: Option<String>,
    /// The handoff file's absolute path (none for `-o -`): where a resume writes it when the
    /// journal is not `OUT.journal` (`--journal`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_abs: Option<String>,
    /// `--journal` as given; `None`: the journal is `OUT.journal` (or `-o -`'s default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal: Option<String>,
    #[serde(default)]
    pub armor: Option<bool>,
    /// The handoff's plaintext format: `csv` or `json`.
    #[serde(default)]
    pub format: Option<String>,
    /// `--shard K/N` (or `--shard-count` with the index): a resume rebuilds only this shard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<crate::shard::Shard>,
    /// `--acl`, `--whitelist-ip` (`--scope whm`): a resume creates the same tokens.
    #[serde(default, skip_serializing_if = "TokenPolicy::is_empty")]
    pub policy: TokenPolicy,
    /// `rotate --expiring-within`: its deadline as the run computed it, which a resume keeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiring: Option<Expiring>,
    /// `--to` or the inventory's `[sink]`: the store a resume writes to again (never its token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreRecord>,
}

/// Where the run's secrets go in a secret store, as the journal records it: the URL and the
/// absolute paths of its files. The store token is never recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreRecord {
    pub to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<String>,
}

impl StoreRecord {
    pub fn of(spec: &StoreSpec) -> StoreRecord {
        let abs = |p: &Option<std::path::PathBuf>| {
            p.as_ref().map(|p| {
                std::path::absolute(p)
                    .unwrap_or_else(|_| p.clone())
                    .display()
                    .to_string()
            })
        };
        StoreRecord {
            to: spec.to.clone(),
            ca_file: abs(&spec.ca_file),
            token_file: abs(&spec.token_file),
        }
    }

    /// The store again, for a resume (its problems located at the journal).
    pub fn spec(&self, origin: &str) -> StoreSpec {
        StoreSpec {
            to: self.to.clone(),
            ca_file: self.ca_file.as_ref().map(Into::into),
            token_file: self.token_file.as_ref().map(Into::into),
            origin: origin.to_string(),
        }
    }
}

/// Open the store of a create or rotate over `plan`: the path template is checked against
/// every target the plan knows (each must get a path of its own), then the store itself
/// (reachable, the token taken, a KV v2 mount, the token may write there). All before the first
/// fleet request; every problem is exit 2.
/// `replace_existing`: a create with `--replace-existing` replaces the same-named token, so it
/// writes a new version over that token's stored secret, as a rotate does.
pub fn store(
    plan: &Plan,
    spec: &StoreSpec,
    retries: u32,
    replace_existing: bool,
    net: NetOptions,
) -> Result<BaoStore, InputError> {
    let dest = Destination::parse(&spec.to, &spec.origin).map_err(InputError::one)?;
    let mut problems = Vec::new();
    let mut seen: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    let mut sample: Option<(String, String, String)> = None;
    for hp in &plan.hosts {
        if hp.discover && plan.scope == crate::plan::Scope::Account && !dest.uses("account") {
            problems.push(
                Problem::new(
                    &spec.origin,
                    format!(
                        "{} has accounts = \"*\", but the store path {} has no {{account}}: every account's token would go to one path",
                        hp.host.name, dest.template
                    ),
                )
                .hint("put {account} in the path, e.g. …/{host}/{account}"),
            );
        }
        if plan.hosts.len() > 1 && !dest.uses("host") && hp.discover {
            problems.push(
                Problem::new(
                    &spec.origin,
                    format!(
                        "the store path {} has no {{host}}, and the run has several hosts",
                        dest.template
                    ),
                )
                .hint("put {host} in the path, e.g. …/{host}/{account}"),
            );
        }
        for t in &hp.targets {
            let account = t
                .account
                .clone()
                .unwrap_or_else(|| hp.host.whm_user.clone());
            // `check` has no names: a stand-in, so the sample path is one a run could write.
            let name = t
                .token_name
                .clone()
                .unwrap_or_else(|| "tokenfleet-check".into());
            let path = dest.render(&PathVars {
                host: &hp.host.name,
                account: &account,
                token_name: &name,
            });
            let who = format!("{}/{account}", hp.host.name);
            if let Some(other) = seen.get(&path) {
                if problems.len() < 10 {
                    problems.push(
                        Problem::new(
                            &spec.origin,
                            format!("{other} and {who} would write to the same store path {path}"),
                        )
                        .hint("give each target its own path: use {host} and {account} (and {token_name} to keep each token apart)"),
                    );
                }
                continue;
            }
            if sample.is_none() {
                sample = Some((hp.host.name.clone(), account.clone(), name.clone()));
            }
            seen.insert(path, who);
        }
    }
    if !problems.is_empty() {
        problems.dedup_by(|a, b| a.message == b.message);
        return Err(InputError { problems });
    }
    let (host, account, token_name) = sample.unwrap_or_else(|| {
        let host = plan
            .hosts
            .first()
            .map(|h| h.host.name.clone())
            .unwrap_or_default();
        (host, "account".into(), "token".into())
    });
    BaoStore::open(
        spec,
        RunInfo {
            run_id: plan.run_id.clone(),
            operation: plan.op().as_str().to_string(),
            retries,
            timeout: Duration::from_secs(net.timeout_secs),
            replaces: match &plan.work {
                crate::plan::Work::Rotate { revoke, .. } => Some(revoke.clone()),
                _ => None,
            },
            replace_existing,
        },
        &PathVars {
            host: &host,
            account: &account,
            token_name: &token_name,
        },
    )
}

impl RunRecord {
    /// The record as the journal stores it.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a run record is plain data")
    }

    /// Read the journal's `options` back; a journal without any reads as all defaults.
    pub fn from_value(v: &serde_json::Value) -> Result<RunRecord, serde_json::Error> {
        if v.is_null() {
            return serde_json::from_value(serde_json::json!({}));
        }
        serde_json::from_value(v.clone())
    }

    /// The run options this record asks for.
    pub fn run_options(&self) -> RunOptions {
        RunOptions {
            jobs: self.jobs.max(1) as usize,
            retries: self.retries,
            verify: self.verify,
            replace_existing: self.replace_existing,
            ..RunOptions::default()
        }
    }
}

/// The journal's plan line for a `create` or `rotate` of `plan` over the inventory at
/// `inventory` (its bytes hash to `sha256`).
pub fn plan_record(
    plan: &Plan,
    inventory: &std::path::Path,
    sha256: &str,
    record: &RunRecord,
) -> PlanRecord {
    PlanRecord {
        run_id: plan.run_id.clone(),
        operation: plan.op().as_str().to_string(),
        inventory: inventory.display().to_string(),
        inventory_sha256: sha256.to_string(),
        name_template: plan
            .name()
            .map(|n| n.as_str().to_string())
            .unwrap_or_default(),
        scope: plan.scope.as_str().into(),
        options: record.to_value(),
        ..PlanRecord::default()
    }
}

/// How the network side of a run behaves, from `--timeout`.
#[derive(Debug, Clone, Copy)]
pub struct NetOptions {
    pub timeout_secs: u64,
}

/// The backend of every host of `plan`, in plan order (`backends[i]` serves `plan.hosts[i]`).
/// Every problem (an unreadable CA file, say) is reported at once, and nothing is contacted.
pub fn backends(plan: &Plan, net: NetOptions) -> Result<Fleet, InputError> {
    let mut problems = Vec::new();
    let mut out = Vec::with_capacity(plan.hosts.len());
    for hp in &plan.hosts {
        let access = HostAccess {
            host: &hp.host,
            credential: hp.credential.as_ref(),
            transport: TransportConfig {
                timeout: Duration::from_secs(net.timeout_secs),
                connect_timeout: Duration::from_secs(
                    net.timeout_secs.min(defaults::CONNECT_TIMEOUT_SECS),
                ),
                pool_size: hp.per_host,
                ..TransportConfig::default()
            },
        };
        match backend::open(&access) {
            Ok(b) => out.push(b),
            Err(p) => problems.push(p),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(InputError { problems })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_old_journal_without_options_reads_as_the_defaults() {
        let r = RunRecord::from_value(&serde_json::Value::Null).unwrap();
        assert_eq!(
            (r.jobs, r.per_host, r.timeout, r.retries, r.verify),
            (32, 4, 30, 3, true)
        );
        let r =
            RunRecord::from_value(&serde_json::json!({"jobs": 8, "name": "ci-{date}"})).unwrap();
        assert_eq!((r.jobs, r.name.as_deref()), (8, Some("ci-{date}")));
    }

    #[test]
    fn a_record_survives_the_journal() {
        let r = RunRecord {
            date: Some("20261201".into()),
            inventory_abs: Some("/x/inv.toml".into()),
            targets: Some(serde_json::json!({"scope": "account", "hosts": []})),
            limit: Some("eu,!web3".into()),
            accounts: Some("u*".into()),
            jobs: 7,
            per_host: 2,
            timeout: 9,
            retries: 1,
            name: Some("ci-{run}".into()),
            revoke: Some("old-*".into()),
            expires_at: Some(1_900_000_000),
            verify: false,
            replace_existing: true,
            output: Some("out.age".into()),
            output_abs: Some("/x/out.age".into()),
            journal: Some("run.journal".into()),
            armor: Some(true),
            format: Some("json".into()),
            shard: Some(crate::shard::Shard { k: 2, n: 5 }),
            policy: TokenPolicy {
                acls: vec!["list-accts".into()],
                whitelist: vec!["203.0.113.0/24".into()],
            },
            expiring: Some(Expiring {
                before: 1_900_000_000,
                within: "30d".into(),
            }),
            store: Some(StoreRecord {
                to: "bao+https://127.0.0.1:8200/secret/{host}/{account}".into(),
                ca_file: Some("/x/ca.pem".into()),
                token_file: None,
            }),
        };
        let text = serde_json::to_string(&r.to_value()).unwrap();
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(RunRecord::from_value(&back).unwrap(), r);
    }
}
