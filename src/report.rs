//! Why this module exists: a run over a fleet ends in one verdict per target. This module turns
//! those results into the human summary (a recap of the hosts that did not fully succeed, with
//! counts by status and cause, then the totals, like Ansible's PLAY RECAP), the JSON
//! report of `--report`, and the exit code of docs/DESIGN.md §5. It never sees a secret: results carry
//! names and causes only. It knows nothing of the network.

use crate::error::exit;
pub use crate::outcome::{Status, TargetResult};
use crate::spool::Spool;
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
    /// Spooled: read back from a temporary file for each pass (see `spool.rs`).
    pub targets: Spool<TargetResult>,
    /// `--shard K/N`: this report covers only that shard's hosts (`tokenfleet coverage`
    /// checks a set of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<crate::shard::Shard>,
    /// SHA-256 of the inventory file the run read, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory_sha256: Option<String>,
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
        targets: impl Into<Spool<TargetResult>>,
    ) -> Report {
        let mut r = Report {
            schema_version: SCHEMA_VERSION,
            run_id: run_id.into(),
            operation: operation.into(),
            dry_run: false,
            started: started.into(),
            finished: jiff::Timestamp::now().to_string(),
            totals: BTreeMap::new(),
            targets: targets.into(),
            shard: None,
            inventory_sha256: None,
        };
        r.recount();
        r
    }

    /// Recompute `totals` from `targets`.
    pub fn recount(&mut self) {
        self.totals.clear();
        for t in self.targets.iter() {
            *self.totals.entry(t.status).or_insert(0) += 1;
        }
    }

    fn count(&self, s: Status) -> usize {
        self.totals.get(&s).copied().unwrap_or(0)
    }

    /// The human summary for stderr, each thing said once: the tokens a revoke took by name,
    /// the notes, every token that needs a look, then the recap (one line per host that did not
    /// fully succeed, with its counts by status and cause) and last the totals, like Ansible's
    /// PLAY RECAP. `colour`: status words in colour (a terminal that wants it).
    pub fn summary(&self, colour: bool) -> String {
        let digest = Digest::of(self);
        let mut out = String::new();
        out.push_str(&self.tokens_by_name(&digest));
        if self.operation == "update" {
            out.push_str(&self.updated_by_name());
        }
        out.push_str(&notes(&digest));
        out.push_str(&needs_a_look(&digest, colour));
        let recap = recap(&digest, colour);
        out.push_str(&recap.text);
        out.push_str(&self.totals(&digest, recap.hosts, colour));
        out
    }

    /// "create: 7 hosts (6 in the recap), 14 targets: 2 created, 11 failed, 1 skipped".
    fn totals(&self, digest: &Digest, in_recap: usize, colour: bool) -> String {
        let mut out = format!(
            "{}: {}",
            paint_bold(&self.operation, colour),
            plural(digest.hosts.len(), "host")
        );
        if in_recap > 0 {
            out.push_str(&format!(" ({in_recap} in the recap)"));
        }
        out.push_str(&format!(", {}", plural(self.targets.len(), "target")));
        let counts: Vec<String> = SHOWN_ORDER
            .iter()
            .filter(|s| self.count(**s) > 0)
            .map(|s| paint(*s, &format!("{} {}", self.count(*s), s.as_str()), colour))
            .collect();
        if !counts.is_empty() {
            out.push_str(": ");
            out.push_str(&counts.join(", "));
        }
        out.push('\n');
        out
    }

    /// By name, never by glob: what a revoke, a rotation or `--replace-existing` took (or, dry
    /// run, would take), each token with its creation and expiry.
    fn tokens_by_name(&self, digest: &Digest) -> String {
        let mut out = String::new();
        if digest.named == 0 {
            return out;
        }
        out.push_str(if self.dry_run {
            "would revoke, by name:\n"
        } else {
            "revoked, by name:\n"
        });
        for t in &digest.named_shown {
            let tokens: Vec<String> = t.revoked.iter().map(|r| r.describe()).collect();
            out.push_str(&format!(
                "  {} {}: {}\n",
                t.host,
                t.account.as_deref().unwrap_or("-"),
                tokens.join(", ")
            ));
        }
        if digest.named > SHOWN_BY_NAME {
            out.push_str(&format!(
                "  … and {} more targets (the --report names each token)\n",
                digest.named - SHOWN_BY_NAME
            ));
        }
        out
    }

    /// `update`: each token changed in place (dry run: that would be), by name, with its
    /// expiry after the change; the first targets, the report has all.
    fn updated_by_name(&self) -> String {
        let mut lines = Vec::new();
        let mut more = 0;
        for t in self.targets.iter().filter(|t| !t.updated.is_empty()) {
            if lines.len() == SHOWN_BY_NAME {
                more += 1;
                continue;
            }
            let tokens: Vec<String> = t.updated.iter().map(|r| r.describe()).collect();
            lines.push(format!(
                "  {} {}: {}\n",
                t.host,
                t.account.as_deref().unwrap_or("-"),
                tokens.join(", ")
            ));
        }
        if lines.is_empty() {
            return String::new();
        }
        let mut out = String::from(if self.dry_run {
            "would update, by name:\n"
        } else {
            "updated, by name:\n"
        });
        out.push_str(&lines.concat());
        if more > 0 {
            out.push_str(&format!(
                "  … and {more} more targets (the --report names each token)\n"
            ));
        }
        out
    }

    /// The exit code of docs/DESIGN.md §5.
    pub fn exit_code(&self, handoff_failed: bool, interrupted: bool) -> i32 {
        if interrupted {
            return exit::INTERRUPTED;
        }
        if handoff_failed {
            return exit::HANDOFF_FAILED;
        }
        let bad = self
            .targets
            .iter()
            .any(|t| t.went_wrong() || t.attention.is_some());
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

/// The order counts are said in, everywhere a person reads them: what was done, then what
/// failed (the cause), then what was skipped because of it.
pub const SHOWN_ORDER: [Status; 15] = [
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
    Status::Failed,
    Status::Unproven,
    Status::Skipped,
];

/// Hosts the recap names one by one; the rest are folded by cause.
const RECAP_HOSTS: usize = 20;

/// The cause of a target skipped because the run was interrupted (see `run::lanes`).
const INTERRUPTED: &str = "interrupted";

/// What the summary needs of the results, gathered in one pass over them: per host its counts
/// by status and the targets that did not fully succeed; the notes, the tokens that need a look,
/// and the first targets whose revoked tokens are named. Targets that went well are counted,
/// not kept.
#[derive(Default)]
struct Digest {
    hosts: BTreeMap<String, HostDigest>,
    notes: Vec<TargetResult>,
    look: Vec<TargetResult>,
    named: usize,
    named_shown: Vec<TargetResult>,
}

#[derive(Default)]
struct HostDigest {
    counts: BTreeMap<Status, usize>,
    bad: Vec<TargetResult>,
}

impl Digest {
    fn of(report: &Report) -> Digest {
        let mut d = Digest::default();
        for t in report.targets.iter() {
            if !t.revoked.is_empty() {
                d.named += 1;
                if d.named_shown.len() < SHOWN_BY_NAME {
                    d.named_shown.push(t.clone());
                }
            }
            if t.note.is_some() {
                d.notes.push(t.clone());
            }
            if t.attention.is_some() {
                d.look.push(t.clone());
            }
            let host = match d.hosts.get_mut(&t.host) {
                Some(h) => h,
                None => d.hosts.entry(t.host.clone()).or_default(),
            };
            *host.counts.entry(t.status).or_insert(0) += 1;
            if not_ok(&t) {
                host.bad.push(t);
            }
        }
        d
    }
}

/// One line per host that did not fully succeed (a target failed, unproven or skipped), by
/// host name, the first [`RECAP_HOSTS`]; the rest folded by their main cause. Hosts whose only
/// trouble is a Ctrl-C are not named: one line counts them.
fn recap(digest: &Digest, colour: bool) -> Recap {
    let mut lines: Vec<(&str, String, &str, bool)> = Vec::new();
    let (mut cut_hosts, mut cut_targets) = (0, 0);
    for (host, h) in &digest.hosts {
        if h.bad.is_empty() {
            continue;
        }
        if h.bad.iter().all(|t| cause_of(t) == INTERRUPTED) {
            cut_hosts += 1;
            cut_targets += h.bad.len();
            continue;
        }
        let (line, main) = host_recap(h, colour);
        let any_failed = h
            .bad
            .iter()
            .any(|t| matches!(t.status, Status::Failed | Status::Unproven));
        lines.push((host, line, main, any_failed));
    }
    let mut text = String::new();
    if !lines.is_empty() {
        text.push_str(&paint_bold(
            "recap (hosts that did not fully succeed):",
            colour,
        ));
        text.push('\n');
        let width = lines
            .iter()
            .take(RECAP_HOSTS)
            .map(|(h, _, _, _)| h.chars().count())
            .max()
            .unwrap_or(0);
        for (host, line, _, any_failed) in lines.iter().take(RECAP_HOSTS) {
            let name = format!("{host:<width$}");
            let name = paint(
                if *any_failed {
                    Status::Failed
                } else {
                    Status::Skipped
                },
                &name,
                colour,
            );
            text.push_str(&format!("  {name}  {line}\n"));
        }
        if lines.len() > RECAP_HOSTS {
            let mut folded: Vec<(&str, usize)> = Vec::new();
            for (_, _, main, _) in &lines[RECAP_HOSTS..] {
                match folded.iter_mut().find(|(c, _)| c == main) {
                    Some(f) => f.1 += 1,
                    None => folded.push((main, 1)),
                }
            }
            folded.sort_by_key(|x| std::cmp::Reverse(x.1));
            let folded: Vec<String> = folded
                .iter()
                .map(|(c, n)| format!("{n} with {c}"))
                .collect();
            text.push_str(&format!(
                "  … and {} more {}: {} (the --report lists every target)\n",
                lines.len() - RECAP_HOSTS,
                if lines.len() - RECAP_HOSTS == 1 {
                    "host"
                } else {
                    "hosts"
                },
                folded.join(", ")
            ));
        }
    }
    if cut_hosts > 0 {
        text.push_str(&format!(
            "interrupted: {} on {} not started\n",
            plural(cut_targets, "target"),
            plural(cut_hosts, "host")
        ));
    }
    Recap {
        text,
        hosts: lines.len(),
    }
}

fn notes(digest: &Digest) -> String {
    let mut out = String::new();
    if !digest.notes.is_empty() {
        out.push_str("notes:\n");
        for t in &digest.notes {
            out.push_str(&format!(
                "  {} {}: {}\n",
                t.host,
                t.account.as_deref().unwrap_or("-"),
                t.note.as_deref().unwrap_or_default()
            ));
        }
    }
    out
}

/// Never folded: each of these is a live token someone must act on.
fn needs_a_look(digest: &Digest, colour: bool) -> String {
    let mut out = String::new();
    if !digest.look.is_empty() {
        out.push_str(&paint(
            Status::Unproven,
            "needs a look (live tokens on the servers):",
            colour,
        ));
        out.push('\n');
        for t in &digest.look {
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

/// The recap's text, and how many hosts it names or folds.
struct Recap {
    text: String,
    hosts: usize,
}

/// A target that did not fully succeed.
fn not_ok(t: &TargetResult) -> bool {
    matches!(
        t.status,
        Status::Failed | Status::Unproven | Status::Skipped
    ) || t.attention.is_some()
}

fn cause_of(t: &TargetResult) -> &str {
    t.cause
        .as_deref()
        .or(t.error.as_deref())
        .filter(|c| !c.is_empty())
        .unwrap_or("no cause recorded")
}

/// A host's recap line after its name, and its main cause (for folding): "18 created, 2 failed:
/// HTTP 500" when its troubles share one cause, else each troubled status with its causes:
/// "18 created, 2 failed (HTTP 500), 3 skipped (2 account suspended, 1 interrupted)".
/// The causes of `targets` with how many share each, the most common first.
fn tally_causes<'t>(targets: impl Iterator<Item = &'t TargetResult>) -> Vec<(&'t str, usize)> {
    let mut causes: Vec<(&str, usize)> = Vec::new();
    for t in targets {
        let c = cause_of(t);
        match causes.iter_mut().find(|(x, _)| *x == c) {
            Some(x) => x.1 += 1,
            None => causes.push((c, 1)),
        }
    }
    causes.sort_by_key(|x| std::cmp::Reverse(x.1));
    causes
}

fn host_recap(h: &HostDigest, colour: bool) -> (String, &str) {
    let causes = tally_causes(h.bad.iter());
    let main = causes.first().map(|c| c.0).unwrap_or("no cause recorded");
    let one_cause = causes.len() == 1;
    let mut parts = Vec::new();
    for s in SHOWN_ORDER {
        let n = h.counts.get(&s).copied().unwrap_or(0);
        if n == 0 {
            continue;
        }
        let mut part = paint(s, &format!("{n} {}", s.as_str()), colour);
        let by = tally_causes(h.bad.iter().filter(|t| t.status == s));
        if !one_cause && !by.is_empty() {
            let text = if by.len() == 1 {
                by[0].0.to_string()
            } else {
                by.iter()
                    .map(|(c, n)| format!("{n} {c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            part.push_str(&format!(" ({text})"));
        }
        parts.push(part);
    }
    let mut line = parts.join(", ");
    if one_cause {
        line.push_str(": ");
        line.push_str(main);
    }
    (line, main)
}

/// `text` in the colour of `status` when `colour` (green for what was done, yellow for
/// skipped, red for failed, magenta for unproven); unchanged otherwise.
pub fn paint(status: Status, text: &str, colour: bool) -> String {
    if !colour {
        return text.to_string();
    }
    let style = console::Style::new().force_styling(true);
    let style = match status {
        Status::Created | Status::Rotated | Status::Revoked | Status::Updated => style.green(),
        Status::WouldCreate | Status::WouldRotate | Status::WouldRevoke | Status::WouldUpdate => {
            style.cyan()
        }
        Status::Listed | Status::Checked | Status::Unchanged | Status::Exists => style,
        Status::Unproven => style.magenta().bold(),
        Status::Skipped => style.yellow(),
        Status::Failed => style.red().bold(),
    };
    style.apply_to(text).to_string()
}

fn paint_bold(text: &str, colour: bool) -> String {
    if !colour {
        return text.to_string();
    }
    console::Style::new()
        .force_styling(true)
        .bold()
        .apply_to(text)
        .to_string()
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
            updated: Vec::new(),
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
    fn the_recap_names_each_troubled_host_once_then_the_totals() {
        let s = sample().summary(false);
        assert_eq!(
            s,
            "recap (hosts that did not fully succeed):\n\
             \x20 db1   1 created, 1 failed: HTTP 500\n\
             \x20 db2   1 created, 1 skipped: account suspended\n\
             \x20 web1  2 failed: TLS pin mismatch\n\
             \x20 web2  2 failed: TLS pin mismatch\n\
             \x20 web3  2 failed: TLS pin mismatch\n\
             \x20 web4  2 failed: TLS pin mismatch\n\
             \x20 web5  2 failed: TLS pin mismatch\n\
             rotate: 7 hosts (7 in the recap), 14 targets: 2 created, 11 failed, 1 skipped\n"
        );
    }

    #[test]
    fn a_host_with_several_causes_gives_each_by_status() {
        let r = Report::new(
            "r",
            "create",
            "s",
            vec![
                t("web1", "a", Status::Created, None),
                t("web1", "b", Status::Failed, Some("HTTP 500")),
                t("web1", "c", Status::Failed, Some("HTTP 500")),
                t("web1", "d", Status::Failed, Some("timed out")),
                t("web1", "e", Status::Skipped, Some("account suspended")),
                t("web2", "f", Status::Created, None),
            ],
        );
        let s = r.summary(false);
        assert_eq!(
            s.lines().nth(1).unwrap(),
            "  web1  1 created, 3 failed (2 HTTP 500, 1 timed out), 1 skipped (account suspended)"
        );
        assert_eq!(
            s.lines().last().unwrap(),
            "create: 2 hosts (1 in the recap), 6 targets: 2 created, 3 failed, 1 skipped"
        );
    }

    #[test]
    fn past_twenty_hosts_the_recap_folds_by_cause_and_an_interruption_is_one_line() {
        let mut targets = Vec::new();
        for h in 0..25 {
            let cause = if h < 22 {
                "TLS pin mismatch"
            } else {
                "HTTP 500"
            };
            targets.push(t(&format!("web{h:02}"), "a", Status::Failed, Some(cause)));
        }
        for h in 0..40 {
            targets.push(t(&format!("db{h:02}"), "a", Status::Created, None));
            targets.push(t(
                &format!("db{h:02}"),
                "b",
                Status::Skipped,
                Some("interrupted"),
            ));
        }
        let s = Report::new("r", "create", "s", targets).summary(false);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 1 + 20 + 1 + 1 + 1, "{s}");
        assert_eq!(
            lines[21],
            "  … and 5 more hosts: 3 with HTTP 500, 2 with TLS pin mismatch (the --report lists every target)"
        );
        assert_eq!(lines[22], "interrupted: 40 targets on 40 hosts not started");
        assert_eq!(
            lines[23],
            "create: 65 hosts (25 in the recap), 105 targets: 40 created, 25 failed, 40 skipped"
        );
    }

    #[test]
    fn colour_is_only_there_when_asked_for() {
        let plain = sample().summary(false);
        assert!(!plain.contains('\x1b'));
        let painted = sample().summary(true);
        assert!(painted.contains("\x1b[31"), "failed in red: {painted:?}");
        assert!(painted.contains("\x1b[32m2 created"), "{painted:?}");
        assert_eq!(console::strip_ansi_codes(&painted), plain);
    }

    #[test]
    fn every_token_that_needs_a_look_is_listed_never_folded() {
        let mut orphan = t("web1", "alice", Status::Failed, Some("HTTP 500"));
        orphan.attention = Some("token deploy-1 is live and nobody holds its secret".into());
        let mut unproven = t("web2", "bob", Status::Unproven, Some("owner unproven"));
        unproven.attention = Some("token deploy-1 may have been minted by this run".into());
        let ok = t("web3", "carol", Status::Created, None);
        let r = Report::new("r", "create", "s", vec![orphan, unproven, ok]);
        let s = r.summary(false);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(
            lines.last().unwrap(),
            &"create: 3 hosts (2 in the recap), 3 targets: 1 created, 1 failed, 1 unproven"
        );
        let look = lines
            .iter()
            .position(|l| l.starts_with("needs a look"))
            .unwrap();
        assert_eq!(
            &lines[look + 1..look + 3],
            [
                "  web1 alice: token deploy-1 is live and nobody holds its secret",
                "  web2 bob: token deploy-1 may have been minted by this run",
            ]
        );
        assert_eq!(r.exit_code(false, false), exit::SOME_FAILED);
    }

    #[test]
    fn a_cause_falls_back_to_the_error() {
        let mut x = t("h", "a", Status::Failed, None);
        x.error = Some("connection refused".into());
        let r = Report::new(
            "r",
            "create",
            "s",
            vec![x, t("h2", "b", Status::Failed, None)],
        );
        let s = r.summary(false);
        assert!(s.contains("  h   1 failed: connection refused\n"), "{s}");
        assert!(s.contains("  h2  1 failed: no cause recorded\n"), "{s}");
        let empty = Report::new("r", "create", "s", vec![]);
        assert_eq!(empty.summary(false), "create: 0 hosts, 0 targets\n");
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
