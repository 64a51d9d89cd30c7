//! Why this module exists: the full TOML form (`[defaults]` plus `[[hosts]]`) is what people
//! write by hand, so typos are likely. This module walks toml's span-carrying document
//! (`DeTable`) rather than deserializing into structs, so that every unknown key gets a
//! "did you mean" hint and every problem a real line number: `inventory.toml:14 (hosts[2] web3)`.
//! Parse errors report toml's message and line, never the offending text (it may be a secret).

use super::{HOST_KEYS, Raw, RawAccount, RawAccounts, RawHost, RawInventory, RawKey};
use crate::error::Problem;
use ::toml::Spanned;
use ::toml::de::{DeTable, DeValue};

const TOP_KEYS: &[&str] = &["defaults", "hosts", "sink"];
const SINK_KEYS: &[&str] = &["to", "ca_file", "token_file"];
const ACCOUNT_KEYS: &[&str] = &["user", "credential"];

fn host_keys() -> Vec<&'static str> {
    let mut v = vec!["name", "accounts"];
    v.extend_from_slice(HOST_KEYS);
    v
}

fn defaults_keys() -> Vec<&'static str> {
    let mut v = vec!["accounts"];
    v.extend_from_slice(HOST_KEYS);
    v
}

struct Ctx<'a> {
    lines: super::Lines,
    file: &'a str,
}

impl Ctx<'_> {
    fn loc(&self, offset: usize, what: &str) -> String {
        format!("{}:{} ({what})", self.file, self.lines.line(offset))
    }
}

fn raw_of(v: &DeValue<'_>) -> Raw {
    match v {
        DeValue::String(s) => Raw::Str(s.to_string()),
        DeValue::Integer(i) => {
            let digits: String = i.as_str().chars().filter(|c| *c != '_').collect();
            match i64::from_str_radix(&digits, i.radix()) {
                Ok(n) => Raw::Int(n),
                Err(_) => Raw::Other("an integer out of range"),
            }
        }
        DeValue::Float(_) => Raw::Other("a decimal number"),
        DeValue::Boolean(b) => Raw::Bool(*b),
        DeValue::Datetime(_) => Raw::Other("a date"),
        DeValue::Array(a) => {
            let mut out = Vec::with_capacity(a.len());
            for item in a.iter() {
                match item.get_ref() {
                    DeValue::String(s) => out.push(s.to_string()),
                    _ => return Raw::Other("a list with non-string items"),
                }
            }
            Raw::List(out)
        }
        DeValue::Table(_) => Raw::Other("a table"),
    }
}

/// Entries of a table in file order (toml's map is sorted by key).
fn entries<'t, 'i>(
    t: &'t DeTable<'i>,
) -> Vec<(
    &'t Spanned<::toml::de::DeString<'i>>,
    &'t Spanned<DeValue<'i>>,
)> {
    let mut v: Vec<_> = t.iter().collect();
    v.sort_by_key(|(k, _)| k.span().start);
    v
}

fn accounts_of(
    ctx: &Ctx<'_>,
    what: &str,
    v: &Spanned<DeValue<'_>>,
    problems: &mut Vec<Problem>,
) -> Option<(RawAccounts, String)> {
    let loc = ctx.loc(v.span().start, what);
    match v.get_ref() {
        DeValue::String(s) if s.trim() == "*" => Some((RawAccounts::All, loc)),
        DeValue::Array(items) => {
            let mut list = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let iloc = ctx.loc(item.span().start, what);
                match item.get_ref() {
                    DeValue::String(s) => list.push(RawAccount { user: s.trim().to_string(), credential: None, loc: iloc }),
                    DeValue::Table(t) => {
                        let mut user = None;
                        let mut credential = None;
                        for (k, val) in entries(t) {
                            let kloc = ctx.loc(k.span().start, what);
                            match (k.get_ref().as_ref(), val.get_ref()) {
                                ("user", DeValue::String(s)) => user = Some(s.trim().to_string()),
                                ("credential", DeValue::String(s)) => credential = Some(s.to_string()),
                                (key @ ("user" | "credential"), _) => problems.push(
                                    Problem::new(kloc, format!("accounts[{i}].{key} must be a string")).field("accounts"),
                                ),
                                (other, _) => problems.push(super::unknown_key(
                                    &kloc,
                                    &format!("accounts[{i}].{other}"),
                                    "account key",
                                    ACCOUNT_KEYS,
                                ).hint(match super::did_you_mean(other, ACCOUNT_KEYS) {
                                    Some(c) => format!("did you mean \"{c}\"?"),
                                    None => "an account table has user and credential".to_string(),
                                })),
                            }
                        }
                        match user {
                            Some(user) => list.push(RawAccount { user, credential, loc: iloc }),
                            None => problems.push(
                                Problem::new(iloc, format!("accounts[{i}] has no user"))
                                    .field("accounts")
                                    .hint("write { user = \"carol\", credential = \"file:secrets/carol.token\" }"),
                            ),
                        }
                    }
                    _ => problems.push(
                        Problem::new(iloc, format!("accounts[{i}] must be a user name or a table"))
                            .field("accounts")
                            .hint("write accounts = [\"alice\", { user = \"carol\", credential = \"env:CAROL_TOKEN\" }]"),
                    ),
                }
            }
            Some((RawAccounts::Listed(list), loc))
        }
        _ => {
            problems.push(
                Problem::new(loc, "accounts must be \"*\" or a list")
                    .field("accounts")
                    .hint(
                        "write accounts = \"*\" (every account) or accounts = [\"alice\", \"bob\"]",
                    ),
            );
            None
        }
    }
}

pub(crate) fn parse(text: &str, file: &str, problems: &mut Vec<Problem>) -> RawInventory {
    let ctx = Ctx {
        lines: super::Lines::new(text),
        file,
    };
    let mut out = RawInventory::default();
    let doc = match DeTable::parse(text) {
        Ok(d) => d,
        Err(e) => {
            let loc = match e.span() {
                Some(span) => format!("{file}:{}", ctx.lines.line(span.start)),
                None => file.to_string(),
            };
            problems.push(
                Problem::new(
                    loc,
                    format!(
                        "not valid TOML: {}",
                        e.message().trim_end_matches('\n').trim_end_matches('.')
                    ),
                )
                .hint("fix the syntax; strings need quotes, e.g. api = \"whm\""),
            );
            return out;
        }
    };
    let doc = doc.get_ref();
    let hkeys = host_keys();
    let dkeys = defaults_keys();
    for (k, v) in entries(doc) {
        match k.get_ref().as_ref() {
            "defaults" => {
                let DeValue::Table(t) = v.get_ref() else {
                    problems.push(
                        Problem::new(
                            ctx.loc(k.span().start, "defaults"),
                            "defaults must be a table",
                        )
                        .field("defaults")
                        .hint("write a [defaults] section"),
                    );
                    continue;
                };
                for (dk, dv) in entries(t) {
                    let key = dk.get_ref().as_ref();
                    let loc = ctx.loc(dk.span().start, "defaults");
                    if key == "accounts" {
                        out.default_accounts = accounts_of(&ctx, "defaults", dv, problems);
                    } else if HOST_KEYS.contains(&key) {
                        out.defaults.push(RawKey {
                            key: key.to_string(),
                            value: raw_of(dv.get_ref()),
                            loc,
                        });
                    } else if key == "name" {
                        problems.push(
                            Problem::new(loc, "a host name cannot be a default")
                                .field("name")
                                .hint("give each [[hosts]] table its own name"),
                        );
                    } else {
                        problems.push(super::unknown_key(&loc, key, "key", &dkeys));
                    }
                }
            }
            "sink" => {
                let loc = ctx.loc(k.span().start, "sink");
                let DeValue::Table(t) = v.get_ref() else {
                    problems.push(
                        Problem::new(loc, "sink must be a table")
                            .field("sink")
                            .hint("write a [sink] section with to = \"bao+https://…\""),
                    );
                    continue;
                };
                let mut keys = Vec::new();
                for (sk, sv) in entries(t) {
                    let key = sk.get_ref().as_ref();
                    let kloc = ctx.loc(sk.span().start, "sink");
                    if !SINK_KEYS.contains(&key) {
                        problems.push(super::unknown_key(&kloc, key, "key", SINK_KEYS));
                        continue;
                    }
                    match sv.get_ref() {
                        DeValue::String(s) if !s.trim().is_empty() => {
                            keys.push((key.to_string(), s.trim().to_string(), kloc))
                        }
                        _ => problems.push(
                            Problem::new(kloc, format!("{key} must be a non-empty string"))
                                .field(key)
                                .hint("quote it: to = \"bao+https://…\""),
                        ),
                    }
                }
                out.sink = Some((keys, loc));
            }
            "hosts" => {
                let DeValue::Array(items) = v.get_ref() else {
                    problems.push(
                        Problem::new(
                            ctx.loc(k.span().start, "hosts"),
                            "hosts must be an array of tables",
                        )
                        .field("hosts")
                        .hint("write each host as a [[hosts]] table"),
                    );
                    continue;
                };
                for (i, item) in items.iter().enumerate() {
                    let DeValue::Table(t) = item.get_ref() else {
                        problems.push(
                            Problem::new(
                                ctx.loc(item.span().start, &format!("hosts[{i}]")),
                                "each host must be a table",
                            )
                            .field("hosts")
                            .hint("write each host as a [[hosts]] table"),
                        );
                        continue;
                    };
                    let name = match t.get("name").map(|n| n.get_ref()) {
                        Some(DeValue::String(s)) => Some(s.trim().to_string()),
                        _ => None,
                    };
                    let what = match &name {
                        Some(n) => format!("hosts[{i}] {n}"),
                        None => format!("hosts[{i}]"),
                    };
                    let host_loc = ctx.loc(item.span().start, &what);
                    let mut host = RawHost {
                        name: name.clone().unwrap_or_default(),
                        loc: host_loc.clone(),
                        keys: Vec::new(),
                        accounts: None,
                    };
                    if name.is_none() {
                        problems.push(
                            Problem::new(&host_loc, "this host has no name (a string)")
                                .field("name")
                                .hint("add name = \"web1\": the label used in --limit, reports and the handoff"),
                        );
                    }
                    for (hk, hv) in entries(t) {
                        let key = hk.get_ref().as_ref();
                        let loc = ctx.loc(hk.span().start, &what);
                        match key {
                            "name" => {}
                            "accounts" => host.accounts = accounts_of(&ctx, &what, hv, problems),
                            _ if HOST_KEYS.contains(&key) => host.keys.push(RawKey {
                                key: key.to_string(),
                                value: raw_of(hv.get_ref()),
                                loc,
                            }),
                            _ => problems.push(super::unknown_key(&loc, key, "key", &hkeys)),
                        }
                    }
                    if name.is_some() {
                        out.hosts.push(host);
                    }
                }
            }
            other => {
                let loc = ctx.loc(k.span().start, other);
                let p = super::unknown_key(&loc, other, "top-level key", TOP_KEYS);
                let p = if HOST_KEYS.contains(&other) || other == "name" || other == "accounts" {
                    p.hint(format!(
                        "{other} belongs in [defaults] or in a [[hosts]] table"
                    ))
                } else {
                    p
                };
                problems.push(p);
            }
        }
    }
    out
}
