//! Why this module exists: a run over a fleet ends in one verdict per target. This module turns
//! those results into the human summary (counts per status, failures folded by cause), the JSON
//! report of `--report`, and the exit code of docs/DESIGN.md §5. It never sees a secret: results carry
//! names and causes only. It knows nothing of the network.

use crate::error::exit;
pub use crate::outcome::{Status, TargetResult};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;

/// The whole run, as `--report FILE` writes it (docs/DESIGN.md §5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The report's format: [`SCHEMA_VERSION`], described by docs/report.schema.json.
    pub schema_version: u32,
    pub run_id: String,
    pub operation: String,
    /// A dry run: only read-only calls were sent; statuses are `would-…`.
    pub dry_run: bool,
    /// RFC 3339 UTC.
    pub started: String,
    /// RFC 3339 UTC.
    pub finished: String,
    pub totals: BTreeMap<Status, usize>,
    pub targets: Vec<TargetResult>,
}

fn plural(n: usize, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

/// The version of the report's JSON format; raised on any change that is not an addition.
pub const SCHEMA_VERSION: u32 = 1;

/// Targets whose revoked tokens the summary names one by one; the report names all.
const SHOWN_BY_NAME: usize = 20;

impl Report {
    /// A report finished now, with totals counted from `targets`.
    pub fn new(
        run_id: impl Into<String>,
        operation: impl Into<String>,
        started: impl Into<String>,
        targets: Vec<TargetResult>,
    ) -> Report {
        let mut r = Report {
            schema_version: SCHEMA_VERSION,
            run_id: run_id.into(),
            operation: operation.into(),
            dry_run: false,
            started: started.into(),
            finished: jiff::Timestamp::now().to_string(),
            totals: BTreeMap::new(),
            targets,
        };
        r.recount();
        r
    }

    /// Recompute `totals` from `targets`.
    pub fn recount(&mut self) {
        self.totals.clear();
        for t in &self.targets {
            *self.totals.entry(t.status).or_insert(0) += 1;
        }
    }

    fn count(&self, s: Status) -> usize {
        self.totals.get(&s).copied().unwrap_or(0)
    }

    /// The human summary for stderr: one line of counts, then failed and skipped targets folded
    /// by cause, most frequent first, with up to three example hosts each.
    pub fn summary(&self) -> String {
        let mut hosts: Vec<&str> = self.targets.iter().map(|t| t.host.as_str()).collect();
        hosts.sort_unstable();
        hosts.dedup();
        let mut out = format!(
            "{}: {}, {}",
            self.operation,
            plural(hosts.len(), "host"),
            plural(self.targets.len(), "target")
        );
        let counts: Vec<String> = Status::ALL
            .iter()
            .filter(|s| self.count(**s) > 0)
            .map(|s| format!("{} {}", self.count(*s), s.as_str()))
            .collect();
        if !counts.is_empty() {
            out.push_str(": ");
            out.push_str(&counts.join(", "));
        }
        out.push('\n');
        for status in [Status::Unproven, Status::Failed, Status::Skipped] {
            let folded = self.fold(status);
            if folded.is_empty() {
                continue;
            }
            out.push_str(status.as_str());
            out.push_str(":\n");
            for f in folded {
                let mut examples = f
                    .hosts
                    .iter()
                    .take(3)
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ");
                if f.hosts.len() > 3 {
                    examples.push_str(", …");
                }
                out.push_str(&format!(
                    "  {}, {}: {} ({examples})\n",
                    plural(f.hosts.len(), "host"),
                    plural(f.targets, "target"),
                    f.cause
                ));
            }
        }
        // By name, never by glob: what a revoke or rotation took (or, dry run, would take).
        {
            let named: Vec<&TargetResult> = self
                .targets
                .iter()
                .filter(|t| !t.revoked.is_empty())
                .collect();
            if !named.is_empty() {
                out.push_str(if self.dry_run {
                    "would revoke, by name:\n"
                } else {
                    "revoked, by name:\n"
                });
                for t in named.iter().take(SHOWN_BY_NAME) {
                    let tokens: Vec<String> = t.revoked.iter().map(|r| r.describe()).collect();
                    out.push_str(&format!(
                        "  {} {}: {}\n",
                        t.host,
                        t.account.as_deref().unwrap_or("-"),
                        tokens.join(", ")
                    ));
                }
                if named.len() > SHOWN_BY_NAME {
                    out.push_str(&format!(
                        "  … and {} more targets (the --report names each token)\n",
                        named.len() - SHOWN_BY_NAME
                    ));
                }
            }
        }
        let notes: Vec<&TargetResult> = self.targets.iter().filter(|t| t.note.is_some()).collect();
        if !notes.is_empty() {
            out.push_str("notes:\n");
            for t in notes {
                out.push_str(&format!(
                    "  {} {}: {}\n",
                    t.host,
                    t.account.as_deref().unwrap_or("-"),
                    t.note.as_deref().unwrap_or_default()
                ));
            }
        }
        // Never folded: each of these is a live token someone must act on.
        let look: Vec<&TargetResult> = self
            .targets
            .iter()
            .filter(|t| t.attention.is_some())
            .collect();
        if !look.is_empty() {
            out.push_str("needs a look (live tokens on the servers):\n");
            for t in look {
                out.push_str(&format!(
                    "  {} {}: {}\n",
                    t.host,
                    t.account.as_deref().unwrap_or("-"),
                    t.attention.as_deref().unwrap_or_default()
                ));
            }
        }
        out
    }

    /// Targets of `status` grouped by cause (fallback: error), most targets first.
    pub fn fold(&self, status: Status) -> Vec<Folded<'_>> {
        let mut groups: Vec<Folded<'_>> = Vec::new();
        for t in self.targets.iter().filter(|t| t.status == status) {
            let cause = t
                .cause
                .as_deref()
                .or(t.error.as_deref())
                .filter(|c| !c.is_empty())
                .unwrap_or("no cause recorded");
            let g = match groups.iter_mut().position(|g| g.cause == cause) {
                Some(i) => &mut groups[i],
                None => {
                    groups.push(Folded {
                        cause,
                        hosts: Vec::new(),
                        targets: 0,
                    });
                    groups.last_mut().expect("just pushed")
                }
            };
            g.targets += 1;
            if !g.hosts.contains(&t.host.as_str()) {
                g.hosts.push(&t.host);
            }
        }
        // Stable: equal counts keep first-seen order.
        groups.sort_by(|a, b| {
            b.targets
                .cmp(&a.targets)
                .then(b.hosts.len().cmp(&a.hosts.len()))
        });
        groups
    }

    /// The exit code of docs/DESIGN.md §5.
    pub fn exit_code(&self, handoff_failed: bool, interrupted: bool) -> i32 {
        if interrupted {
            return exit::INTERRUPTED;
        }
        if handoff_failed {
            return exit::HANDOFF_FAILED;
        }
        let bad = self.targets.iter().any(|t| {
            matches!(t.status, Status::Failed | Status::Unproven)
                || (t.status == Status::Skipped && t.error.is_some())
                || t.attention.is_some()
        });
        if bad { exit::SOME_FAILED } else { exit::OK }
    }

    /// The JSON report (pretty, trailing newline), as [`Report::write`] streams it.
    #[cfg(test)]
    fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("report serializes");
        s.push('\n');
        s
    }

    /// Write the JSON report to `dest` (`-` = stdout); files are written 0600 through the
    /// atomic writer, replacing an earlier report.
    pub fn write(&self, dest: &str) -> std::io::Result<()> {
        // Streamed: a report of 100,000 targets is never held as one string.
        let stream = |w: &mut dyn Write| -> std::io::Result<()> {
            let mut w = std::io::BufWriter::new(w);
            serde_json::to_writer_pretty(&mut w, self)?;
            w.write_all(b"\n")?;
            w.flush()
        };
        if dest == "-" {
            return stream(&mut std::io::stdout().lock());
        }
        crate::atomic::write_atomic_with(std::path::Path::new(dest), true, |f| stream(f))
    }
}

/// Failed or skipped targets sharing one cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folded<'a> {
    pub cause: &'a str,
    /// Distinct hosts, first-seen order.
    pub hosts: Vec<&'a str>,
    pub targets: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(host: &str, account: &str, status: Status, cause: Option<&str>) -> TargetResult {
        TargetResult {
            host: host.into(),
            account: Some(account.into()),
            token_name: Some("deploy-1".into()),
            status,
            error: cause.map(|c| format!("{c}: details")),
            cause: cause.map(str::to_string),
            step: None,
            attempts: 1,
            elapsed_ms: 12,
            attention: None,
            pattern: None,
            revoked: Vec::new(),
            note: None,
        }
    }

    fn sample() -> Report {
        let mut targets = Vec::new();
        for h in 1..=5 {
            for a in 0..2 {
                targets.push(t(
                    &format!("web{h}"),
                    &format!("a{a}"),
                    Status::Failed,
                    Some("TLS pin mismatch"),
                ));
            }
        }
        targets.push(t("db1", "x", Status::Failed, Some("HTTP 500")));
        targets.push(t("db1", "y", Status::Created, None));
        targets.push(t("db2", "z", Status::Created, None));
        targets.push(t("db2", "w", Status::Skipped, Some("account suspended")));
        Report::new("r1", "rotate", "2025-01-01T00:00:00Z", targets)
    }

    #[test]
    fn totals_count_each_status() {
        let r = sample();
        assert_eq!(r.totals.get(&Status::Failed), Some(&11));
        assert_eq!(r.totals.get(&Status::Created), Some(&2));
        assert_eq!(r.totals.get(&Status::Skipped), Some(&1));
        assert_eq!(r.totals.get(&Status::Rotated), None);
    }

    #[test]
    fn summary_folds_by_cause_most_frequent_first() {
        let s = sample().summary();
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(
            lines[0],
            "rotate: 7 hosts, 14 targets: 2 created, 1 skipped, 11 failed"
        );
        assert_eq!(lines[1], "failed:");
        assert_eq!(
            lines[2],
            "  5 hosts, 10 targets: TLS pin mismatch (web1, web2, web3, …)"
        );
        assert_eq!(lines[3], "  1 host, 1 target: HTTP 500 (db1)");
        assert_eq!(lines[4], "skipped:");
        assert_eq!(lines[5], "  1 host, 1 target: account suspended (db2)");
        assert_eq!(lines.len(), 6);
    }

    #[test]
    fn every_token_that_needs_a_look_is_listed_never_folded() {
        let mut orphan = t("web1", "alice", Status::Failed, Some("HTTP 500"));
        orphan.attention = Some("token deploy-1 is live and nobody holds its secret".into());
        let mut unproven = t("web2", "bob", Status::Unproven, Some("owner unproven"));
        unproven.attention = Some("token deploy-1 may have been minted by this run".into());
        let ok = t("web3", "carol", Status::Created, None);
        let r = Report::new("r", "create", "s", vec![orphan, unproven, ok]);
        let s = r.summary();
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(
            lines[0],
            "create: 3 hosts, 3 targets: 1 created, 1 unproven, 1 failed"
        );
        let look = lines
            .iter()
            .position(|l| l.starts_with("needs a look"))
            .unwrap();
        assert_eq!(
            &lines[look + 1..],
            [
                "  web1 alice: token deploy-1 is live and nobody holds its secret",
                "  web2 bob: token deploy-1 may have been minted by this run",
            ]
        );
        assert_eq!(r.exit_code(false, false), exit::SOME_FAILED);
    }

    #[test]
    fn fold_falls_back_to_error() {
        let mut x = t("h", "a", Status::Failed, None);
        x.error = Some("connection refused".into());
        let r = Report::new(
            "r",
            "create",
            "s",
            vec![x, t("h2", "b", Status::Failed, None)],
        );
        let f = r.fold(Status::Failed);
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].cause, "connection refused");
        assert_eq!(f[1].cause, "no cause recorded");
        let empty = Report::new("r", "create", "s", vec![]);
        assert_eq!(empty.summary(), "create: 0 hosts, 0 targets\n");
    }

    #[test]
    fn exit_codes() {
        let ok = Report::new("r", "create", "s", vec![t("h", "a", Status::Created, None)]);
        assert_eq!(ok.exit_code(false, false), exit::OK);
        let mut quiet_skip = t("h", "b", Status::Skipped, None);
        quiet_skip.error = None;
        let ok2 = Report::new(
            "r",
            "create",
            "s",
            vec![quiet_skip, t("h", "c", Status::Exists, None)],
        );
        assert_eq!(ok2.exit_code(false, false), exit::OK);
        let skipped = Report::new(
            "r",
            "create",
            "s",
            vec![t("h", "a", Status::Skipped, Some("401"))],
        );
        assert_eq!(skipped.exit_code(false, false), exit::SOME_FAILED);
        assert_eq!(sample().exit_code(false, false), exit::SOME_FAILED);
        assert_eq!(sample().exit_code(true, false), exit::HANDOFF_FAILED);
        assert_eq!(ok.exit_code(true, true), exit::INTERRUPTED);
    }

    #[test]
    fn json_shape() {
        let r = sample();
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        for k in ["run_id", "operation", "started", "finished"] {
            assert!(v[k].is_string(), "{k}");
        }
        assert_eq!(v["totals"]["failed"], 11);
        assert_eq!(v["totals"]["created"], 2);
        let t0 = &v["targets"][0];
        for k in [
            "host",
            "account",
            "token_name",
            "status",
            "error",
            "attempts",
            "elapsed_ms",
        ] {
            assert!(t0.get(k).is_some(), "{k}");
        }
        assert_eq!(t0["status"], "failed");
        let created = &v["targets"][11];
        assert!(created["error"].is_null());
        assert!(created.get("cause").is_none());
        let back: Report = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn report_file_is_0600_and_replaceable() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("report.json");
        sample().write(p.to_str().unwrap()).unwrap();
        sample().write(p.to_str().unwrap()).unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(v["run_id"], "r1");
    }
}
