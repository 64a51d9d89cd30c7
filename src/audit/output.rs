//! The census as people and scripts read it: a table with a summary by class and flag, or
//! JSON (documented in docs/audit.schema.json, versioned by `schema_version`) or CSV, one row
//! per token. Owners that could not be listed are named: a census with holes is never "clean".

use super::{AuditRow, Class, Flag};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;

/// The version of the audit's JSON format; raised on any change that is not an addition.
pub const AUDIT_SCHEMA_VERSION: u32 = 1;

/// An owner whose tokens the census could not list.
#[derive(Debug, Clone, Serialize)]
pub struct Unreached {
    pub host: String,
    /// The account or WHM user; `None`: the whole host.
    pub owner: Option<String>,
    pub cause: String,
    pub error: String,
}

/// Counts by class and by flag.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub tokens: usize,
    pub hosts: usize,
    pub by_class: BTreeMap<&'static str, usize>,
    pub by_flag: BTreeMap<&'static str, usize>,
    /// Unknown, or suspicious whatever the class.
    pub findings: usize,
    pub unreached: usize,
}

impl Summary {
    pub fn of(rows: &[AuditRow], unreached: &[Unreached]) -> Summary {
        let mut s = Summary {
            tokens: rows.len(),
            unreached: unreached.len(),
            ..Summary::default()
        };
        for c in Class::ALL {
            s.by_class.insert(c.as_str(), 0);
        }
        for f in Flag::ALL {
            s.by_flag.insert(f.as_str(), 0);
        }
        let mut hosts = std::collections::BTreeSet::new();
        for r in rows {
            hosts.insert(r.host.as_str());
            *s.by_class.entry(r.class.as_str()).or_default() += 1;
            for f in &r.flags {
                *s.by_flag.entry(f.as_str()).or_default() += 1;
            }
            if r.is_finding() {
                s.findings += 1;
            }
        }
        s.hosts = hosts.len();
        s
    }

    /// The exit code scripts read: 0 clean, 1 something unknown or suspicious, or an owner
    /// that could not be listed.
    pub fn exit_code(&self) -> i32 {
        if self.findings > 0 || self.unreached > 0 {
            1
        } else {
            0
        }
    }

    /// `tokens: 412 on 10 hosts; ours 300, system 80, self 10, unknown 22; suspicious 3, …`
    pub fn line(&self) -> String {
        let classes: Vec<String> = Class::ALL
            .iter()
            .map(|c| format!("{} {}", c.as_str(), self.by_class[c.as_str()]))
            .collect();
        let flags: Vec<String> = Flag::ALL
            .iter()
            .filter(|f| self.by_flag[f.as_str()] > 0)
            .map(|f| format!("{} {}", f.as_str(), self.by_flag[f.as_str()]))
            .collect();
        let mut s = format!(
            "audit: {} tokens on {} hosts; {}",
            self.tokens,
            self.hosts,
            classes.join(", ")
        );
        if !flags.is_empty() {
            s.push_str(&format!("; flagged {}", flags.join(", ")));
        }
        if self.unreached > 0 {
            s.push_str(&format!(
                "; {} owners not listed (the census is incomplete)",
                self.unreached
            ));
        }
        s
    }
}

fn day(t: Option<i64>, none: &str) -> String {
    match t {
        Some(_) => crate::time::seconds(t),
        None => none.to_string(),
    }
}

fn flags_text(r: &AuditRow, sep: &str) -> String {
    r.flags
        .iter()
        .map(|f| f.as_str())
        .collect::<Vec<_>>()
        .join(sep)
}

/// One token as the JSON document lists it.
#[derive(Serialize)]
struct JsonRow<'a> {
    host: &'a str,
    owner_kind: &'a str,
    owner: &'a str,
    name: &'a str,
    class: &'a str,
    why: &'a str,
    flags: Vec<&'static str>,
    created_at: Option<String>,
    expires_at: Option<String>,
    acls: &'a Option<Vec<String>>,
    whitelist_ips: &'a Option<Vec<String>>,
}

/// What the JSON document says about the census itself.
#[derive(Debug, Clone, Serialize)]
pub struct Meta {
    pub run_id: String,
    pub started: String,
    pub finished: String,
    /// RFC 3339: what `expired` and `expires-soon` were measured against.
    pub now: String,
    pub since: Option<String>,
    pub expiring_within_secs: i64,
    pub scope: String,
    pub inventory_sha256: String,
}

pub fn write_json(
    out: &mut dyn Write,
    meta: &Meta,
    rows: &[AuditRow],
    unreached: &[Unreached],
) -> std::io::Result<()> {
    // Streamed, one token per line: a census of 100,000s of tokens is never held twice.
    let at = |t: Option<i64>| t.map(crate::time::rfc3339);
    let head = serde_json::json!({
        "schema_version": AUDIT_SCHEMA_VERSION,
        "kind": "audit",
        "run_id": meta.run_id,
        "started": meta.started,
        "finished": meta.finished,
        "now": meta.now,
        "since": meta.since,
        "expiring_within_secs": meta.expiring_within_secs,
        "scope": meta.scope,
        "inventory_sha256": meta.inventory_sha256,
        "summary": Summary::of(rows, unreached),
        "unreached": unreached,
    });
    let head = serde_json::to_string(&head)?;
    let mut out = std::io::BufWriter::new(out);
    // `{…head fields…,"tokens":[` then the rows, then `]}`.
    write!(out, "{},\n\"tokens\": [", &head[..head.len() - 1])?;
    for (i, r) in rows.iter().enumerate() {
        out.write_all(if i == 0 { b"\n" } else { b",\n" })?;
        let row = JsonRow {
            host: &r.host,
            owner_kind: r.owner_kind.as_str(),
            owner: &r.owner,
            name: &r.name,
            class: r.class.as_str(),
            why: &r.why,
            flags: r.flags.iter().map(|f| f.as_str()).collect(),
            created_at: at(r.created_at),
            expires_at: at(r.expires_at),
            acls: &r.acls,
            whitelist_ips: &r.whitelist_ips,
        };
        serde_json::to_writer(&mut out, &row)?;
    }
    writeln!(out, "\n]}}")?;
    out.flush()
}

pub fn write_csv(out: &mut dyn Write, rows: &[AuditRow]) -> std::io::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    let io = |e: csv::Error| std::io::Error::other(e);
    w.write_record([
        "host",
        "owner_kind",
        "owner",
        "name",
        "class",
        "flags",
        "created_at",
        "expires_at",
        "acls",
        "whitelist_ips",
        "why",
    ])
    .map_err(io)?;
    for r in rows {
        let list = |v: &Option<Vec<String>>| v.as_ref().map(|v| v.join(";")).unwrap_or_default();
        w.write_record([
            r.host.as_str(),
            r.owner_kind.as_str(),
            &r.owner,
            &r.name,
            r.class.as_str(),
            &flags_text(r, ";"),
            &crate::time::seconds(r.created_at),
            &crate::time::seconds(r.expires_at),
            &list(&r.acls),
            &list(&r.whitelist_ips),
            &r.why,
        ])
        .map_err(io)?;
    }
    w.flush()
}

/// The table, then what could not be listed, then the summary line.
pub fn write_table(
    out: &mut dyn Write,
    rows: &[AuditRow],
    unreached: &[Unreached],
) -> std::io::Result<()> {
    let table: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            let owner = match r.owner_kind {
                super::OwnerKind::Whm => format!("{} (WHM)", r.owner),
                super::OwnerKind::Account => r.owner.clone(),
            };
            [
                r.host.clone(),
                owner,
                r.name.clone(),
                r.class.as_str().to_string(),
                day(r.created_at, "?"),
                day(r.expires_at, "never"),
                flags_text(r, ","),
            ]
        })
        .collect();
    crate::table::write_table(
        out,
        [
            "HOST", "OWNER", "TOKEN", "CLASS", "CREATED", "EXPIRES", "FLAGS",
        ],
        &table,
    )?;
    for u in unreached {
        let whose = match &u.owner {
            Some(o) => format!("{}/{o}", u.host),
            None => u.host.clone(),
        };
        writeln!(out, "not listed: {whose}: {}", u.error)?;
    }
    writeln!(out, "{}", Summary::of(rows, unreached).line())
}
