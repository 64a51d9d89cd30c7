//! What the census rules are made of, read and checked before any request: `--known` files
//! (tokenfleet journals and JSON reports: the tokens our runs made), `--ioc` files (one glob per
//! line), `--ours` globs, `--since` and `--expiring-within`. Every mistake is a [`Problem`]
//! naming the file and line, so one run shows them all.

use super::{DEFAULT_EXPIRING_WITHIN, Rules};
use crate::error::Problem;
use serde_json::Value;
use std::io::BufRead;
use std::path::{Path, PathBuf};

/// The raw flags of `audit` and `sweep`.
#[derive(Debug, Clone, Default)]
pub struct RuleFlags {
    pub known: Vec<PathBuf>,
    pub ours: Vec<String>,
    pub ioc: Vec<PathBuf>,
    pub since: Option<String>,
    pub expiring_within: Option<String>,
}

/// The rules, or every problem with the flags.
pub fn rules(flags: &RuleFlags, now: i64) -> Result<Rules, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut rules = Rules {
        now,
        expiring_within: DEFAULT_EXPIRING_WITHIN,
        ..Rules::default()
    };
    if let Some(d) = &flags.expiring_within {
        match duration_secs(d) {
            Ok(s) => rules.expiring_within = s,
            Err(p) => problems.push(p.field("--expiring-within")),
        }
    }
    if let Some(s) = &flags.since {
        match when(s) {
            Ok(t) => rules.since = Some(t),
            Err(m) => {
                problems.push(Problem::new("--since", m).hint(
                    "give a date (2026-02-23, midnight UTC) or RFC 3339 (2026-02-23T00:00:00Z)",
                ))
            }
        }
    }
    for g in &flags.ours {
        match glob::Pattern::new(g) {
            Ok(p) => rules.ours.push(p),
            Err(e) => problems.push(
                Problem::new("--ours", format!("\"{g}\" is not a glob: {e}"))
                    .hint("write it like tf-* or deploy-[0-9]*"),
            ),
        }
    }
    for path in &flags.ioc {
        match read_ioc(path) {
            Ok(globs) => rules.ioc.extend(globs),
            Err(mut p) => problems.append(&mut p),
        }
    }
    let mut from = Vec::new();
    let read_at = std::time::Instant::now();
    let stamps = super::stamps(&flags.known);
    for path in &flags.known {
        match read_known(path) {
            Ok(names) => {
                rules.known.extend(names);
                from.push(path.display().to_string());
            }
            Err(p) => problems.push(p),
        }
    }
    if !flags.known.is_empty() {
        rules.known_files = Some(std::sync::Arc::new(super::KnownFiles {
            paths: flags.known.clone(),
            read: std::sync::Mutex::new(super::KnownRead {
                at: Some(read_at),
                stamps,
                names: rules.known.clone(),
            }),
        }));
    }
    rules.known_from = match from.len() {
        0 => String::new(),
        1 => from.remove(0),
        n => format!("--known ({n} files)"),
    };
    if problems.is_empty() {
        Ok(rules)
    } else {
        Err(problems)
    }
}

/// A duration as `--expires-in` takes it (30d, 12h, 2w, P30D), in seconds, not negative.
pub fn duration_secs(text: &str) -> Result<i64, Problem> {
    let bad = || {
        Problem::new(text, "not a duration".to_string())
            .hint("write it like 30d, 12h, 2w, \"1 week\" or P30D")
    };
    let span: jiff::Span = text.trim().parse().map_err(|_| bad())?;
    let now = jiff::Timestamp::now().to_zoned_datetime(jiff::tz::TimeZone::UTC);
    let later = now.checked_add(span).map_err(|_| bad())?;
    let secs = later.timestamp().as_second() - now.timestamp().as_second();
    if secs < 0 {
        return Err(bad());
    }
    Ok(secs)
}

/// A date (midnight UTC) or an RFC 3339 time, as unix seconds.
pub fn when(text: &str) -> Result<i64, String> {
    let t = text.trim();
    if let Ok(ts) = t.parse::<jiff::Timestamp>() {
        return Ok(ts.as_second());
    }
    if let Ok(date) = t.parse::<jiff::civil::Date>() {
        return date
            .to_zoned_datetime(jiff::tz::TimeZone::UTC)
            .map(|z| z.timestamp().as_second())
            .map_err(|e| e.to_string());
    }
    Err(format!("\"{t}\" is not a date or a time"))
}

/// One glob per line; blank lines and `#` comments ignored.
fn read_ioc(path: &Path) -> Result<Vec<glob::Pattern>, Vec<Problem>> {
    let shown = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| {
        vec![
            Problem::new(&shown, format!("cannot read the indicator list: {e}"))
                .field("--ioc")
                .hint("one token name or glob per line, e.g. WHM_FullRoot"),
        ]
    })?;
    let mut globs = Vec::new();
    let mut problems = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                problems.push(Problem::new(format!("{shown}:{}", n + 1), e.to_string()));
                break;
            }
        };
        let item = line.split('#').next().unwrap_or("").trim();
        if item.is_empty() {
            continue;
        }
        match glob::Pattern::new(item) {
            Ok(g) => globs.push(g),
            Err(e) => problems.push(
                Problem::new(
                    format!("{shown}:{}", n + 1),
                    format!("\"{item}\" is not a glob: {e}"),
                )
                .hint("one token name or glob per line (WHM_FullRoot, lp*)"),
            ),
        }
    }
    if problems.is_empty() {
        Ok(globs)
    } else {
        Err(problems)
    }
}

/// The tokens a tokenfleet journal or JSON report names: (host, owner, token name). A journal's
/// `created` records (and create intents: a token whose record was lost is still ours); a
/// report's targets that were `created` or `rotated`.
pub fn read_known(path: &Path) -> Result<Vec<(String, String, String)>, Problem> {
    let shown = path.display().to_string();
    let hint = "pass a tokenfleet journal (OUT.journal) or JSON report (--report FILE) of the runs that made your tokens; an age handoff is encrypted: pass its journal instead";
    let bytes = std::fs::read(path).map_err(|e| {
        Problem::new(&shown, format!("cannot read it: {e}"))
            .field("--known")
            .hint(hint)
    })?;
    if crate::seal::journal::bytes_look_like_journal(&bytes) {
        return Ok(journal_names(&bytes));
    }
    let report: Value = serde_json::from_slice(&bytes).map_err(|_| {
        Problem::new(&shown, "neither a tokenfleet journal nor a JSON report")
            .field("--known")
            .hint(hint)
    })?;
    let Some(targets) = report.get("targets").and_then(Value::as_array) else {
        return Err(Problem::new(
            &shown,
            "a JSON file, but not a tokenfleet report (no targets)",
        )
        .field("--known")
        .hint(hint));
    };
    Ok(targets
        .iter()
        .filter(|t| {
            matches!(
                t.get("status").and_then(Value::as_str),
                Some("created" | "rotated")
            )
        })
        .filter_map(|t| {
            Some((
                t.get("host")?.as_str()?.to_string(),
                t.get("account")?.as_str()?.to_string(),
                t.get("token_name")?.as_str()?.to_string(),
            ))
        })
        .collect())
}

fn journal_names(bytes: &[u8]) -> Vec<(String, String, String)> {
    bytes
        .split(|b| *b == b'\n')
        .filter_map(|line| serde_json::from_slice::<Value>(line).ok())
        .filter(|v| {
            let kind = v.get("kind").and_then(Value::as_str);
            kind == Some("created")
                || (kind == Some("intent")
                    && v.get("action").and_then(Value::as_str) == Some("create"))
        })
        .filter_map(|v| {
            let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
            let name = s("token_name").filter(|n| !n.is_empty())?;
            Some((s("host")?, s("account")?, name))
        })
        .collect()
}
