//! Why this module exists: a fleet split into shards (`--shard K/N`, docs/DESIGN.md §1) ends
//! as N reports on N machines, and nobody should have to read N JSON files to learn whether
//! every target of the inventory was done. [`check`] takes the inventory and the shard reports
//! and says, per target, done, failed or missing (no report covers it); it flags a host in two
//! reports, reports of another inventory (its SHA-256), of another shard count or operation, dry
//! runs, and shards of N with no report at all. A later report of the same run (a `resume`'s)
//! replaces an earlier one. It reads names and statuses only: no key, no secret, no network.

use crate::inventory::{Accounts, Inventory};
use crate::report::Report;
use crate::shard::{self, Shard};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// A report file, read.
pub struct Input {
    /// As given on the command line.
    pub path: String,
    pub report: Report,
}

/// What became of one target of the inventory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Done,
    Failed,
    Missing,
}

/// One target: `host/account`, or the host alone for an `accounts = "*"` host no report lists
/// an account of (and for `--scope whm`).
#[derive(Debug, Clone, Serialize)]
pub struct TargetCoverage {
    pub host: String,
    pub account: Option<String>,
    pub state: State,
    /// The report's status (`created`, `failed`, ...); none when missing.
    pub status: Option<String>,
    /// The report that covers it.
    pub report: Option<String>,
    /// The shard the host belongs to, for the shard count of the reports.
    pub shard: Option<Shard>,
    /// Why it failed, or why it is missing.
    pub why: Option<String>,
}

/// A host listed by more than one report (each a different run).
#[derive(Debug, Clone, Serialize)]
pub struct Duplicate {
    pub host: String,
    pub reports: Vec<String>,
}

/// A report that is not counted, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Rejected {
    pub report: String,
    pub why: String,
}

/// The verdict over the inventory.
#[derive(Debug, Clone, Serialize)]
pub struct Coverage {
    pub inventory: String,
    pub inventory_sha256: String,
    pub operation: Option<String>,
    /// The shard count of the reports (1 for a run that was not sharded).
    pub shards: Option<u32>,
    /// The shards (K of `shards`) no counted report is of.
    pub shards_without_report: Vec<u32>,
    pub totals: BTreeMap<String, usize>,
    pub targets: Vec<TargetCoverage>,
    pub duplicates: Vec<Duplicate>,
    pub rejected: Vec<Rejected>,
    /// Reports replaced by a later report of the same run (its resume).
    pub superseded: Vec<String>,
}

impl Coverage {
    /// Every target done, and nothing flagged: the shards belong together and cover all.
    pub fn complete(&self) -> bool {
        self.targets.iter().all(|t| t.state == State::Done)
            && self.duplicates.is_empty()
            && self.rejected.is_empty()
            && self.shards_without_report.is_empty()
    }

    fn count(&self, s: State) -> usize {
        self.targets.iter().filter(|t| t.state == s).count()
    }
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// The verdict of `reports` over `inventory`; `whm`: the runs were `--scope whm` (one target
/// per host).
pub fn check(inventory: &Inventory, reports: Vec<Input>, whm: bool) -> Coverage {
    let mut rejected = Vec::new();
    let mut superseded = Vec::new();
    // A later report of the same run (a resume) replaces the earlier one.
    let mut by_run: BTreeMap<String, Input> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for input in reports {
        let id = input.report.run_id.clone();
        match by_run.get(&id) {
            Some(kept) if kept.report.finished >= input.report.finished => {
                superseded.push(input.path);
            }
            Some(_) => {
                let old = by_run.insert(id, input).expect("present");
                superseded.push(old.path);
            }
            None => {
                order.push(id.clone());
                by_run.insert(id, input);
            }
        }
    }
    let mut operation: Option<String> = None;
    let mut shards: Option<u32> = None;
    let mut counted: Vec<Input> = Vec::new();
    for id in order {
        let input = by_run.remove(&id).expect("kept");
        let r = &input.report;
        let n = r.shard.map_or(1, |s| s.n);
        let why = if r.dry_run {
            Some("a dry run: it changed nothing".to_string())
        } else if r
            .inventory_sha256
            .as_deref()
            .is_some_and(|s| s != inventory.sha256)
        {
            Some(format!(
                "its inventory's sha256 {} is not {}'s ({}): another inventory, or this one changed",
                short(r.inventory_sha256.as_deref().unwrap_or("")),
                inventory.path.display(),
                short(&inventory.sha256)
            ))
        } else if r.inventory_sha256.is_none() {
            Some("it names no inventory sha256 (written by an older tokenfleet)".to_string())
        } else if operation.as_ref().is_some_and(|o| *o != r.operation) {
            Some(format!(
                "a {} run, where the others are {}",
                r.operation,
                operation.as_deref().unwrap_or("")
            ))
        } else if shards.is_some_and(|s| s != n) {
            Some(format!(
                "one of {n} shards, where the others are of {}",
                shards.unwrap_or(1)
            ))
        } else {
            None
        };
        match why {
            Some(why) => rejected.push(Rejected {
                report: input.path,
                why,
            }),
            None => {
                operation.get_or_insert_with(|| r.operation.clone());
                shards.get_or_insert(n);
                counted.push(input);
            }
        }
    }

    // Which counted reports list each host, and every entry of each host in report order: one
    // pass over each report (its targets are read back from a spool, not indexed in place).
    let mut entries_of: BTreeMap<String, Vec<(usize, crate::report::TargetResult)>> =
        BTreeMap::new();
    for (i, input) in counted.iter().enumerate() {
        for t in input.report.targets.iter() {
            entries_of.entry(t.host.clone()).or_default().push((i, t));
        }
    }
    // Entries are in report order, so each host's report numbers come out sorted.
    let hosts_in: BTreeMap<&str, Vec<usize>> = entries_of
        .iter()
        .map(|(h, entries)| {
            let mut reports: Vec<usize> = entries.iter().map(|(i, _)| *i).collect();
            reports.dedup();
            (h.as_str(), reports)
        })
        .collect();
    let duplicates: Vec<Duplicate> = hosts_in
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(h, v)| Duplicate {
            host: h.to_string(),
            reports: v.iter().map(|&i| counted[i].path.clone()).collect(),
        })
        .collect();
    let n = shards.unwrap_or(1);
    let have: BTreeSet<u32> = counted
        .iter()
        .map(|c| c.report.shard.map_or(1, |s| s.k))
        .collect();
    let shards_without_report: Vec<u32> = if counted.is_empty() {
        Vec::new()
    } else {
        (1..=n).filter(|k| !have.contains(k)).collect()
    };

    let mut targets = Vec::new();
    for host in &inventory.hosts {
        let shard_of = shards.map(|n| Shard {
            k: shard::owner(&host.name, n),
            n,
        });
        let missing_why = || match shard_of {
            Some(s) if !have.contains(&s.k) => format!("shard {s} has no report"),
            Some(s) => format!("the report of shard {s} does not list it"),
            None => "no report".to_string(),
        };
        // Every entry of this host, in report order (the first report for a duplicate).
        let entries: Vec<(&str, &crate::report::TargetResult)> = entries_of
            .get(host.name.as_str())
            .into_iter()
            .flatten()
            .map(|(i, t)| (counted[*i].path.as_str(), t))
            .collect();
        let host_level = entries.iter().find(|(_, t)| t.account.is_none());
        let verdict = |account: Option<&str>,
                       found: Option<&(&str, &crate::report::TargetResult)>| {
            let (state, status, report, why) = match found {
                None => (State::Missing, None, None, Some(missing_why())),
                Some((path, t)) => {
                    let state = if t.went_wrong() {
                        State::Failed
                    } else {
                        State::Done
                    };
                    let why = (state == State::Failed)
                        .then(|| t.error.clone().or_else(|| t.cause.clone()))
                        .flatten();
                    (
                        state,
                        Some(t.status.as_str().to_string()),
                        Some(path.to_string()),
                        why,
                    )
                }
            };
            TargetCoverage {
                host: host.name.clone(),
                account: account.map(str::to_string),
                state,
                status,
                report,
                shard: shard_of,
                why,
            }
        };
        match (&host.accounts, whm) {
            (_, true) => {
                let found = entries.first();
                targets.push(verdict(Some(host.whm_user.as_str()), found));
            }
            (Accounts::Listed(accounts), false) => {
                for a in accounts {
                    let found = entries
                        .iter()
                        .find(|(_, t)| t.account.as_deref() == Some(a.user.as_str()))
                        .or(host_level);
                    targets.push(verdict(Some(&a.user), found));
                }
            }
            (Accounts::All, false) => {
                let mut seen = BTreeSet::new();
                for e in entries.iter().filter(|(_, t)| t.account.is_some()) {
                    let account = e.1.account.as_deref().expect("filtered");
                    if seen.insert(account) {
                        targets.push(verdict(Some(account), Some(e)));
                    }
                }
                if seen.is_empty() {
                    targets.push(verdict(None, host_level));
                }
            }
        }
    }
    let mut cov = Coverage {
        inventory: inventory.path.display().to_string(),
        inventory_sha256: inventory.sha256.clone(),
        operation,
        shards,
        shards_without_report,
        totals: BTreeMap::new(),
        targets,
        duplicates,
        rejected,
        superseded,
    };
    for (s, name) in [
        (State::Done, "done"),
        (State::Failed, "failed"),
        (State::Missing, "missing"),
    ] {
        cov.totals.insert(name.to_string(), cov.count(s));
    }
    cov
}

/// What `coverage` prints: the lists, then a summary line last (as a run's totals).
pub fn render(cov: &Coverage) -> String {
    let mut out = String::new();
    let name = |t: &TargetCoverage| match &t.account {
        Some(a) => format!("{}/{a}", t.host),
        None => t.host.clone(),
    };
    for (state, title) in [(State::Failed, "failed"), (State::Missing, "missing")] {
        let list: Vec<&TargetCoverage> = cov.targets.iter().filter(|t| t.state == state).collect();
        if list.is_empty() {
            continue;
        }
        out.push_str(&format!("{title} ({}):\n", list.len()));
        for t in list {
            let mut line = format!("  {}", name(t));
            if let Some(s) = t.status.as_deref().filter(|_| state == State::Failed) {
                line.push_str(&format!(" [{s}]"));
            }
            if let Some(r) = &t.report {
                line.push_str(&format!(" in {r}"));
            }
            if let Some(why) = &t.why {
                line.push_str(&format!(": {why}"));
            }
            out.push_str(&line);
            out.push('\n');
        }
    }
    if !cov.duplicates.is_empty() {
        out.push_str(&format!(
            "duplicates ({} hosts in more than one report):\n",
            cov.duplicates.len()
        ));
        for d in &cov.duplicates {
            out.push_str(&format!("  {}: {}\n", d.host, d.reports.join(", ")));
        }
    }
    if !cov.rejected.is_empty() {
        out.push_str(&format!("not counted ({}):\n", cov.rejected.len()));
        for r in &cov.rejected {
            out.push_str(&format!("  {}: {}\n", r.report, r.why));
        }
    }
    if let (false, Some(n)) = (cov.shards_without_report.is_empty(), cov.shards) {
        let ks: Vec<String> = cov
            .shards_without_report
            .iter()
            .map(|k| format!("{k}/{n}"))
            .collect();
        out.push_str(&format!("shards without a report: {}\n", ks.join(", ")));
    }
    for s in &cov.superseded {
        out.push_str(&format!(
            "note: {s} is replaced by a later report of the same run\n"
        ));
    }
    let reports = match cov.shards {
        Some(n) => format!(
            "{} of {n} shard reports",
            n as usize - cov.shards_without_report.len()
        ),
        None => "no report counted".to_string(),
    };
    out.push_str(&format!(
        "coverage of {} (sha256 {}): {}{}, {} targets: {} done, {} failed, {} missing{}\n",
        cov.inventory,
        short(&cov.inventory_sha256),
        cov.operation
            .as_deref()
            .map(|o| format!("{o}, "))
            .unwrap_or_default(),
        reports,
        cov.targets.len(),
        cov.count(State::Done),
        cov.count(State::Failed),
        cov.count(State::Missing),
        if cov.complete() {
            ": complete"
        } else {
            ": INCOMPLETE"
        }
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Status, TargetResult};

    fn inventory(hosts: &[(&str, Option<&[&str]>)]) -> Inventory {
        let text: String = hosts
            .iter()
            .map(|(h, accounts)| {
                let accounts = match accounts {
                    None => "\"*\"".to_string(),
                    Some(a) => format!(
                        "[{}]",
                        a.iter()
                            .map(|a| format!("\"{a}\""))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                format!(
                    "[[hosts]]\nname = \"{h}\"\ncredential = \"env:X\"\naccounts = {accounts}\n\n"
                )
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("inv.toml");
        std::fs::write(&p, text).unwrap();
        crate::inventory::load(&p).unwrap()
    }

    fn report(inv: &Inventory, shard: Shard, results: &[(&str, Option<&str>, Status)]) -> Report {
        let mut r = Report::new(
            format!("run{}", shard.k),
            "create",
            "2026-01-01T00:00:00Z",
            results
                .iter()
                .map(|(h, a, s)| {
                    let mut t = TargetResult::new(h, *a, Some("x"));
                    t.status = *s;
                    if *s == Status::Failed {
                        t.error = Some("refused".into());
                    }
                    t
                })
                .collect::<Vec<_>>(),
        );
        r.shard = Some(shard);
        r.inventory_sha256 = Some(inv.sha256.clone());
        r
    }

    /// Every host's targets in the report of its own shard of `n`.
    fn shard_reports(inv: &Inventory, n: u32, status: Status) -> Vec<Input> {
        (1..=n)
            .map(|k| {
                let s = Shard { k, n };
                let mut results = Vec::new();
                for h in inv.hosts.iter().filter(|h| s.contains(&h.name)) {
                    if let Accounts::Listed(a) = &h.accounts {
                        for a in a {
                            results.push((h.name.as_str(), Some(a.user.as_str()), status));
                        }
                    }
                }
                Input {
                    path: format!("r{k}.json"),
                    report: report(inv, s, &results),
                }
            })
            .collect()
    }

    fn fleet() -> Inventory {
        inventory(&[
            ("web1", Some(&["a", "b"])),
            ("web2", Some(&["c"])),
            ("web3", Some(&["d", "e"])),
            ("web4", Some(&["f"])),
            ("web5", Some(&["g"])),
        ])
    }

    #[test]
    fn every_shard_done_is_complete() {
        let inv = fleet();
        let cov = check(&inv, shard_reports(&inv, 3, Status::Created), false);
        assert!(cov.complete(), "{}", render(&cov));
        assert_eq!(cov.targets.len(), 7);
        assert!(render(&cov).contains("7 targets: 7 done, 0 failed, 0 missing: complete"));
    }

    #[test]
    fn a_missing_report_names_its_shard_and_its_targets() {
        let inv = fleet();
        let mut reports = shard_reports(&inv, 3, Status::Created);
        let gone = reports.remove(1);
        let cov = check(&inv, reports, false);
        assert!(!cov.complete());
        assert_eq!(cov.shards_without_report, [2]);
        let missing: Vec<String> = cov
            .targets
            .iter()
            .filter(|t| t.state == State::Missing)
            .map(|t| format!("{}/{}", t.host, t.account.as_deref().unwrap()))
            .collect();
        let expected: Vec<String> = gone
            .report
            .targets
            .iter()
            .map(|t| format!("{}/{}", t.host, t.account.as_deref().unwrap()))
            .collect();
        assert_eq!(missing, expected);
        assert!(
            render(&cov).contains("shard 2/3 has no report"),
            "{}",
            render(&cov)
        );
    }

    #[test]
    fn failures_duplicates_and_foreign_reports_are_flagged() {
        let inv = fleet();
        let mut reports = shard_reports(&inv, 2, Status::Created);
        // A failed target.
        let mut first = reports[0].report.targets.to_vec();
        first[0].status = Status::Failed;
        first[0].error = Some("refused".into());
        // Another run listing a host of shard 1 again.
        let dup_host = first[0].host.clone();
        reports[0].report.targets = first.into();
        let mut again = report(
            &inv,
            Shard { k: 2, n: 2 },
            &[(dup_host.as_str(), Some("zz"), Status::Created)],
        );
        again.run_id = "other".into();
        reports.push(Input {
            path: "again.json".into(),
            report: again,
        });
        // A report of another inventory, and one of another shard count.
        let mut foreign = report(&inv, Shard { k: 1, n: 2 }, &[]);
        foreign.run_id = "foreign".into();
        foreign.inventory_sha256 = Some("00".repeat(32));
        reports.push(Input {
            path: "foreign.json".into(),
            report: foreign,
        });
        let mut three = report(&inv, Shard { k: 1, n: 3 }, &[]);
        three.run_id = "three".into();
        reports.push(Input {
            path: "three.json".into(),
            report: three,
        });
        let cov = check(&inv, reports, false);
        let text = render(&cov);
        assert!(!cov.complete());
        assert_eq!(cov.totals["failed"], 1, "{text}");
        assert_eq!(cov.duplicates.len(), 1, "{text}");
        assert_eq!(cov.duplicates[0].host, dup_host);
        let rejected: Vec<&str> = cov.rejected.iter().map(|r| r.report.as_str()).collect();
        assert_eq!(rejected, ["foreign.json", "three.json"], "{text}");
        assert!(text.contains("refused"), "{text}");
    }

    #[test]
    fn a_later_report_of_the_same_run_replaces_the_earlier() {
        let inv = fleet();
        let mut first = shard_reports(&inv, 1, Status::Failed);
        let mut later = shard_reports(&inv, 1, Status::Created);
        later[0].report.finished = "2099-01-01T00:00:00Z".into();
        later[0].path = "resumed.json".into();
        first.append(&mut later);
        let cov = check(&inv, first, false);
        assert!(cov.complete(), "{}", render(&cov));
        assert_eq!(cov.superseded, ["r1.json"]);
    }

    #[test]
    fn a_star_host_counts_the_accounts_its_report_lists() {
        let inv = inventory(&[("web1", None), ("web2", None)]);
        let s = Shard { k: 1, n: 1 };
        let r = report(
            &inv,
            s,
            &[
                ("web1", Some("a"), Status::Created),
                ("web1", Some("b"), Status::Created),
            ],
        );
        let cov = check(
            &inv,
            vec![Input {
                path: "r.json".into(),
                report: r,
            }],
            false,
        );
        assert_eq!(cov.totals["done"], 2);
        assert_eq!(cov.totals["missing"], 1, "web2, per host");
        assert!(cov.targets[2].account.is_none());
    }
}
