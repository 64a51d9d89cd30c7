//! Why this module exists: `-l/--limit` is how an operator aims a run at part of the fleet
//! ("rotate only eu hosts but not web3", "retry what failed"), with Ansible's pattern language
//! that they already know. Getting this wrong touches the wrong servers, so the algebra is
//! small, exact and tested:
//!
//! Items are separated by `,` (or `:`). Each is a host name, a glob (`web*`, `db[1-3]`), a group
//! name, or `all`, optionally followed by `/ACCOUNT` (that one account of those hosts only);
//! `!item` excludes and `&item` intersects. The selection, a set of targets (host, account), is
//! (the union of the plain items, or every target if there are none) ∩ every `&` item − every
//! `!` item, in inventory order. A limit that selects no host is an error; an item that matches
//! nothing is a warning (with a "did you mean", case included).
//!
//! `@FILE` (Ansible's retry-file habit) stands for FILE's entries: one item (or several, with
//! `,`) per line, blank lines and `#` comments ignored, read from the current folder. A run
//! records the expanded pattern ([`Selection::expanded`]) so that resume does not depend on the
//! file. In a file an entry that matches nothing is an error naming FILE:line: a retry list
//! must not silently shrink. [`retry_line`] writes the entries a failed run lists.

use crate::error::Problem;
use crate::inventory::{Accounts, Host};
use std::collections::BTreeSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Union,
    Intersect,
    Exclude,
}

/// Which accounts of one host a selection holds: all but some, or only some.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSet {
    /// `true`: every account except `names`; `false`: only `names`.
    all_but: bool,
    names: BTreeSet<String>,
}

impl Default for AccountSet {
    fn default() -> Self {
        AccountSet::all()
    }
}

impl AccountSet {
    pub fn all() -> AccountSet {
        AccountSet {
            all_but: true,
            names: BTreeSet::new(),
        }
    }

    fn none() -> AccountSet {
        AccountSet {
            all_but: false,
            names: BTreeSet::new(),
        }
    }

    fn only(name: &str) -> AccountSet {
        AccountSet {
            all_but: false,
            names: BTreeSet::from([name.to_string()]),
        }
    }

    /// Whether the set holds `account`.
    pub fn contains(&self, account: &str) -> bool {
        self.names.contains(account) != self.all_but
    }

    /// Every account (no `/ACCOUNT` item narrowed this host).
    pub fn is_all(&self) -> bool {
        self.all_but && self.names.is_empty()
    }

    fn is_none(&self) -> bool {
        !self.all_but && self.names.is_empty()
    }

    fn complement(&self) -> AccountSet {
        AccountSet {
            all_but: !self.all_but,
            names: self.names.clone(),
        }
    }

    fn union(&self, o: &AccountSet) -> AccountSet {
        let (a, b) = (&self.names, &o.names);
        match (self.all_but, o.all_but) {
            (false, false) => AccountSet {
                all_but: false,
                names: a | b,
            },
            (true, true) => AccountSet {
                all_but: true,
                names: a & b,
            },
            (true, false) => AccountSet {
                all_but: true,
                names: a - b,
            },
            (false, true) => AccountSet {
                all_but: true,
                names: b - a,
            },
        }
    }

    fn intersect(&self, o: &AccountSet) -> AccountSet {
        self.complement().union(&o.complement()).complement()
    }
}

/// A host selection: indices into the inventory's hosts, in inventory order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub hosts: Vec<usize>,
    /// For each of `hosts`, the accounts selected there ([`AccountSet::all`] unless a
    /// `HOST/ACCOUNT` item narrowed it).
    pub accounts: Vec<AccountSet>,
    /// Items that matched no host ("--limit: 'wbe1' matches no host").
    pub warnings: Vec<String>,
    /// The pattern with every `@FILE` replaced by its entries joined with `,`: what a run
    /// records for resume (the file may change or go).
    pub expanded: String,
}

/// One pattern item, with the FILE:line it came from (`None`: the command line).
struct Item {
    kind: Kind,
    host: String,
    account: Option<String>,
    raw: String,
    origin: Option<String>,
}

/// Limit files larger than this are refused (a retry list of 100,000 targets is ~3 MiB).
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// One entry of a retry file (`--limit @FILE`): `host/account`, or `host` for a host-level
/// target (`--scope whm`, a host that failed before its accounts were known).
pub fn retry_line(host: &str, account: Option<&str>) -> String {
    match account {
        Some(a) => format!("{host}/{a}"),
        None => host.to_string(),
    }
}

/// Which hosts one host part matches: by name, by group, or (with glob characters) by either.
fn matches(item: &str, hosts: &[Host], at: &str) -> Result<Vec<bool>, Problem> {
    let any_named_all = hosts
        .iter()
        .any(|h| h.name == "all" || h.groups.iter().any(|g| g == "all"));
    if item == "all" && !any_named_all {
        return Ok(vec![true; hosts.len()]);
    }
    if is_glob(item) {
        let pattern = glob::Pattern::new(item).map_err(|e| {
            Problem::new(at, format!("\"{item}\" is not a valid pattern: {}", e.msg))
                .hint("globs use * ? and [a-z] ranges, e.g. --limit 'web*,!web3'")
        })?;
        return Ok(hosts
            .iter()
            .map(|h| pattern.matches(&h.name) || h.groups.iter().any(|g| pattern.matches(g)))
            .collect());
    }
    Ok(hosts
        .iter()
        .map(|h| h.name == item || h.groups.iter().any(|g| g == item))
        .collect())
}

/// The names a pattern can use: groups (sorted, once each) and hosts (inventory order).
fn known(hosts: &[Host]) -> (Vec<&str>, Vec<&str>) {
    let groups: BTreeSet<&str> = hosts
        .iter()
        .flat_map(|h| h.groups.iter().map(String::as_str))
        .collect();
    (
        groups.into_iter().collect(),
        hosts.iter().map(|h| h.name.as_str()).collect(),
    )
}

/// "did you mean `EU`? patterns are case-sensitive", or the nearest name, for an item that
/// matched nothing.
fn suggestion(name: &str, hosts: &[Host]) -> Option<String> {
    let (groups, names) = known(hosts);
    let all: Vec<&str> = groups.iter().chain(names.iter()).copied().collect();
    if let Some(c) = all.iter().find(|c| c.eq_ignore_ascii_case(name)) {
        return Some(format!("did you mean `{c}`? patterns are case-sensitive"));
    }
    if is_glob(name) {
        let lower = name.to_ascii_lowercase();
        if let Ok(p) = glob::Pattern::new(&lower)
            && all.iter().any(|c| p.matches(&c.to_ascii_lowercase()))
        {
            return Some(format!(
                "`{}` would match if case were ignored: patterns are case-sensitive",
                name
            ));
        }
        return None;
    }
    crate::inventory::did_you_mean(name, &all).map(|c| format!("did you mean `{c}`?"))
}

/// "known groups: eu, us; hosts: web1, web2" (hosts only when few).
fn known_names(hosts: &[Host]) -> String {
    const FEW: usize = 12;
    let (groups, names) = known(hosts);
    let mut out = Vec::new();
    if !groups.is_empty() {
        out.push(format!("known groups: {}", list(&groups, FEW)));
    }
    if names.len() <= FEW {
        out.push(format!("hosts: {}", names.join(", ")));
    } else {
        out.push(format!(
            "{} hosts (web*-style globs match them)",
            names.len()
        ));
    }
    out.join("; ")
}

pub(crate) use crate::error::name_list as list;

/// Split a pattern into items, reading every `@FILE`.
fn items(pattern: &str) -> Result<(Vec<Item>, String), Problem> {
    let mut items = Vec::new();
    let mut expanded: Vec<String> = Vec::new();
    for piece in pattern.split(',') {
        let piece = piece.trim();
        if let Some(path) = piece.strip_prefix('@') {
            let lines = read_file(path.trim())?;
            for (origin, entry) in lines {
                for raw in entry.split([',', ':']) {
                    let raw = raw.trim();
                    if !raw.is_empty() {
                        items.push(item(raw, Some(origin.clone()))?);
                        expanded.push(raw.to_string());
                    }
                }
            }
            continue;
        }
        for raw in piece.split(':') {
            let raw = raw.trim();
            if !raw.is_empty() {
                items.push(item(raw, None)?);
                expanded.push(raw.to_string());
            }
        }
    }
    Ok((items, expanded.join(",")))
}

/// A limit file's entries with their `FILE:line`.
fn read_file(path: &str) -> Result<Vec<(String, String)>, Problem> {
    use std::io::Read;
    let hint = "give --limit @FILE a readable file with one host, group or HOST/ACCOUNT per line \
                (e.g. the retry file a failed run writes); blank lines and # comments are ignored";
    if path.is_empty() {
        return Err(Problem::new("--limit", "@ names no file").hint(hint));
    }
    let shown = format!("--limit @{path}");
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| Problem::new(&shown, format!("cannot read the limit file: {e}")).hint(hint))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(Problem::new(
            &shown,
            format!("the limit file is larger than {} MiB", MAX_FILE_BYTES >> 20),
        )
        .hint("a retry list names hosts or targets, one per line"));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| Problem::new(&shown, "the limit file is not UTF-8 text").hint(hint))?;
    let entries: Vec<(String, String)> = text
        .lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let entry = line.split('#').next().unwrap_or("").trim();
            (!entry.is_empty()).then(|| (format!("{path}:{}", i + 1), entry.to_string()))
        })
        .collect();
    if entries.is_empty() {
        return Err(Problem::new(&shown, "the limit file lists no hosts").hint(
            "an empty retry file means nothing failed; otherwise list one host or HOST/ACCOUNT per line",
        ));
    }
    Ok(entries)
}

fn item(raw: &str, origin: Option<String>) -> Result<Item, Problem> {
    let at = origin.clone().unwrap_or_else(|| "--limit".to_string());
    let (kind, name) = if let Some(rest) = raw.strip_prefix('!') {
        (Kind::Exclude, rest.trim())
    } else if let Some(rest) = raw.strip_prefix('&') {
        (Kind::Intersect, rest.trim())
    } else {
        (Kind::Union, raw)
    };
    if name.is_empty() {
        return Err(Problem::new(&at, format!("\"{raw}\" names nothing"))
            .hint("write a host, group or glob after ! or &, e.g. --limit 'eu,!web3'"));
    }
    let (host, account) = match name.split_once('/') {
        None => (name, None),
        Some((host, account)) => {
            let (host, account) = (host.trim(), account.trim());
            if host.is_empty() || !crate::inventory::valid_user_name(account) {
                return Err(
                    Problem::new(&at, format!("\"{raw}\" is not HOST/ACCOUNT")).hint(
                        "write a host (or group, glob) and one cPanel user name, e.g. web1/alice",
                    ),
                );
            }
            (host, Some(account.to_string()))
        }
    };
    Ok(Item {
        kind,
        host: host.to_string(),
        account,
        raw: raw.to_string(),
        origin,
    })
}

/// Apply a `--limit` pattern to the inventory's hosts.
pub fn select(hosts: &[Host], pattern: &str) -> Result<Selection, Problem> {
    let (items, expanded) = items(pattern)?;
    if items.is_empty() {
        return Err(Problem::new("--limit", "the pattern is empty")
            .hint("name hosts, groups or globs, e.g. --limit 'web*,&eu,!web3'"));
    }
    let mut warnings = Vec::new();
    let mut problems: Vec<Problem> = Vec::new();
    let mut first_unmatched: Option<&str> = None;
    let mut union: Option<Vec<AccountSet>> = None;
    let mut keep = vec![AccountSet::all(); hosts.len()];
    for it in &items {
        let at = it.origin.as_deref().unwrap_or("--limit");
        let m = matches(&it.host, hosts, at)?;
        let sets: Vec<AccountSet> = m
            .iter()
            .map(|hit| match (hit, &it.account) {
                (false, _) => AccountSet::none(),
                (true, None) => AccountSet::all(),
                (true, Some(a)) => AccountSet::only(a),
            })
            .collect();
        let host_hit = m.iter().any(|b| *b);
        // An account item matches when a matched host lists it or discovers its accounts.
        let hit = match &it.account {
            None => host_hit,
            Some(a) => hosts.iter().zip(&m).any(|(h, hit)| {
                *hit && match &h.accounts {
                    Accounts::All => true,
                    Accounts::Listed(l) => l.iter().any(|s| s.user == *a),
                }
            }),
        };
        if !hit {
            first_unmatched.get_or_insert(&it.host);
            let what = match (&it.account, host_hit) {
                (Some(a), true) => format!(
                    "\"{}\": {} lists no account {a}",
                    it.raw,
                    if m.iter().filter(|b| **b).count() == 1 {
                        it.host.clone()
                    } else {
                        format!("no host matching {}", it.host)
                    }
                ),
                _ => format!("\"{}\" matches no host or group in the inventory", it.raw),
            };
            let hint = if host_hit {
                None
            } else {
                suggestion(&it.host, hosts)
            };
            match &it.origin {
                Some(origin) => {
                    let mut fix = String::from(
                        "remove the line or correct it: a limit file lists hosts, groups or HOST/ACCOUNT of this inventory",
                    );
                    if let Some(h) = hint {
                        fix = format!("{h}; {fix}");
                    }
                    problems.push(Problem::new(origin, what).hint(fix));
                }
                None => warnings.push(match hint {
                    Some(h) => format!("--limit: {what} ({h})"),
                    None => format!("--limit: {what}"),
                }),
            }
        }
        match it.kind {
            Kind::Union => {
                let u = union.get_or_insert_with(|| vec![AccountSet::none(); hosts.len()]);
                for (u, s) in u.iter_mut().zip(&sets) {
                    *u = u.union(s);
                }
            }
            Kind::Intersect => {
                for (k, s) in keep.iter_mut().zip(&sets) {
                    *k = k.intersect(s);
                }
            }
            Kind::Exclude => {
                for (k, s) in keep.iter_mut().zip(&sets) {
                    *k = k.intersect(&s.complement());
                }
            }
        }
    }
    if let Some(first) = problems.first() {
        // Every bad line at once would need a Vec<Problem>; the first names FILE:line and
        // the count says how many more there are.
        let more = problems.len() - 1;
        let mut p = first.clone();
        if more > 0 {
            p.message.push_str(&format!(
                " (and {more} more such line{})",
                if more == 1 { "" } else { "s" }
            ));
        }
        return Err(p);
    }
    let union = union.unwrap_or_else(|| vec![AccountSet::all(); hosts.len()]);
    let mut selected = Vec::new();
    let mut accounts = Vec::new();
    for (i, h) in hosts.iter().enumerate() {
        let set = union[i].intersect(&keep[i]);
        let any = if set.is_all() {
            true
        } else if set.is_none() {
            false
        } else {
            match &h.accounts {
                Accounts::All => true,
                Accounts::Listed(l) => l.iter().any(|s| set.contains(&s.user)),
            }
        };
        if any {
            selected.push(i);
            accounts.push(set);
        }
    }
    if selected.is_empty() {
        let mut hint = format!("{}; ! excludes and & intersects", known_names(hosts));
        if let Some(s) = first_unmatched.and_then(|n| suggestion(n, hosts)) {
            hint = format!("{s}; {hint}");
        }
        return Err(
            Problem::new("--limit", format!("\"{}\" selects no host", pattern.trim())).hint(hint),
        );
    }
    Ok(Selection {
        hosts: selected,
        accounts,
        warnings,
        expanded,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    use crate::inventory::AccountSpec;

    fn host(name: &str, groups: &[&str]) -> Host {
        Host {
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..Host::sample(name)
        }
    }

    fn with_accounts(mut h: Host, users: &[&str]) -> Host {
        h.accounts = Accounts::Listed(
            users
                .iter()
                .map(|u| AccountSpec {
                    user: u.to_string(),
                    credential: None,
                    origin: "test".into(),
                })
                .collect(),
        );
        h
    }

    fn fleet() -> Vec<Host> {
        vec![
            host("web1", &["eu", "shared"]),
            host("web2", &["eu"]),
            host("web3", &["us", "shared"]),
            host("db1", &["eu"]),
            host("db2", &["us"]),
        ]
    }

    /// Hosts with listed accounts (web3 discovers its accounts).
    fn accounts_fleet() -> Vec<Host> {
        vec![
            with_accounts(host("web1", &["eu"]), &["alice", "bob"]),
            with_accounts(host("web2", &["eu"]), &["bob", "carol"]),
            host("web3", &["us"]),
            with_accounts(host("db1", &["us"]), &["dave"]),
        ]
    }

    /// The (host, account) targets a pattern selects over [`accounts_fleet`] (web3's
    /// discovered accounts stand for `zed` and `bob`).
    fn targets(pattern: &str) -> Result<BTreeSet<(String, String)>, Problem> {
        let hosts = accounts_fleet();
        let sel = select(&hosts, pattern)?;
        let mut out = BTreeSet::new();
        for (i, set) in sel.hosts.iter().zip(&sel.accounts) {
            let h = &hosts[*i];
            let users: Vec<&str> = match &h.accounts {
                Accounts::All => vec!["bob", "zed"],
                Accounts::Listed(l) => l.iter().map(|s| s.user.as_str()).collect(),
            };
            for u in users {
                if set.contains(u) {
                    out.insert((h.name.clone(), u.to_string()));
                }
            }
        }
        Ok(out)
    }

    fn pairs(list: &[(&str, &str)]) -> BTreeSet<(String, String)> {
        list.iter()
            .map(|(h, a)| (h.to_string(), a.to_string()))
            .collect()
    }

    fn names(pattern: &str) -> Vec<String> {
        let hosts = fleet();
        select(&hosts, pattern)
            .unwrap()
            .hosts
            .iter()
            .map(|i| hosts[*i].name.clone())
            .collect()
    }

    #[test]
    fn names_globs_groups_and_the_algebra() {
        assert_eq!(names("web1"), ["web1"]);
        assert_eq!(names("web*"), ["web1", "web2", "web3"]);
        assert_eq!(names("db[1-2]"), ["db1", "db2"]);
        assert_eq!(names("eu"), ["web1", "web2", "db1"]);
        assert_eq!(names("db2,web1"), ["web1", "db2"], "inventory order");
        assert_eq!(names("db2:web1"), ["web1", "db2"], "':' separates too");
        assert_eq!(names("web*,&eu"), ["web1", "web2"]);
        assert_eq!(names("eu,!web2"), ["web1", "db1"]);
        assert_eq!(
            names("!web3"),
            ["web1", "web2", "db1", "db2"],
            "only exclusions: from all hosts"
        );
        assert_eq!(names("&shared"), ["web1", "web3"]);
        assert_eq!(names("all,!db*"), ["web1", "web2", "web3"]);
        assert_eq!(names("web*, &eu , !web1"), ["web2"]);
    }

    #[test]
    fn nothing_selected_is_an_error_and_unmatched_items_warn() {
        let hosts = fleet();
        let e = select(&hosts, "nope").unwrap_err();
        assert!(e.message.contains("selects no host"), "{e}");
        assert_eq!(e.location, "--limit");
        let s = select(&hosts, "web1,wbe2").unwrap();
        assert_eq!(s.hosts, [0]);
        assert_eq!(s.warnings.len(), 1);
        assert!(s.warnings[0].contains("wbe2"));
        assert!(select(&hosts, "web*,!web*").is_err());
        assert!(select(&hosts, " , ").unwrap_err().message.contains("empty"));
        assert!(
            select(&hosts, "web1,!")
                .unwrap_err()
                .message
                .contains("names nothing")
        );
        assert!(
            select(&hosts, "web[")
                .unwrap_err()
                .message
                .contains("not a valid pattern")
        );
    }

    #[test]
    fn host_slash_account_selects_that_account_only() {
        assert_eq!(
            targets("web1/alice,web2").unwrap(),
            pairs(&[("web1", "alice"), ("web2", "bob"), ("web2", "carol")])
        );
        assert_eq!(
            targets("eu,!web1/alice").unwrap(),
            pairs(&[("web1", "bob"), ("web2", "bob"), ("web2", "carol")])
        );
        assert_eq!(
            targets("*/bob").unwrap(),
            pairs(&[("web1", "bob"), ("web2", "bob"), ("web3", "bob")]),
            "a glob host part, and a discovering host keeps the account"
        );
        assert_eq!(
            targets("eu,&*/bob").unwrap(),
            pairs(&[("web1", "bob"), ("web2", "bob")])
        );
        assert_eq!(targets("web3/zed").unwrap(), pairs(&[("web3", "zed")]));
        // A host whose every selected account is excluded is not selected.
        let hosts = accounts_fleet();
        let sel = select(&hosts, "db1,web1/alice,!db1/dave").unwrap();
        assert_eq!(sel.hosts, [0]);
        // An account a listing host does not have: a warning, and nothing selected there.
        let sel = select(&hosts, "web1/zed,db1").unwrap();
        assert_eq!(sel.hosts, [3]);
        assert!(
            sel.warnings[0].contains("web1 lists no account zed"),
            "{:?}",
            sel.warnings
        );
        assert!(
            select(&hosts, "web1/Bad User")
                .unwrap_err()
                .message
                .contains("HOST/ACCOUNT")
        );
        assert!(select(&hosts, "/alice").is_err());
        assert_eq!(sel.expanded, "web1/zed,db1");
    }

    #[test]
    fn unmatched_items_suggest_names_and_case() {
        let hosts = fleet();
        let s = select(&hosts, "EU,web1").unwrap();
        assert!(
            s.warnings[0].contains("did you mean `eu`? patterns are case-sensitive"),
            "{:?}",
            s.warnings
        );
        let e = select(&hosts, "EU").unwrap_err();
        let hint = e.hint.unwrap();
        assert!(
            hint.contains("did you mean `eu`? patterns are case-sensitive"),
            "{hint}"
        );
        assert!(hint.contains("known groups: eu, shared, us"), "{hint}");
        assert!(hint.contains("hosts: web1, web2, web3, db1, db2"), "{hint}");
        let e = select(&hosts, "WEB*").unwrap_err();
        assert!(e.hint.unwrap().contains("case"), "globs too");
        let s = select(&hosts, "wbe1,web2").unwrap();
        assert!(
            s.warnings[0].contains("did you mean `web1`?"),
            "{:?}",
            s.warnings
        );
        // Many hosts: the hint counts them instead of listing.
        let many: Vec<Host> = (0..40).map(|i| host(&format!("h{i}"), &["g"])).collect();
        let hint = select(&many, "nope").unwrap_err().hint.unwrap();
        assert!(
            hint.contains("40 hosts") && hint.contains("known groups: g"),
            "{hint}"
        );
    }

    #[test]
    fn at_file_reads_one_entry_a_line_and_names_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("retry.txt");
        let shown = path.display().to_string();
        std::fs::write(
            &path,
            "# tokenfleet: failed targets\n\nweb1/alice\n  web2   # a comment\nweb3/zed,db1\n",
        )
        .unwrap();
        let hosts = accounts_fleet();
        let sel = select(&hosts, &format!("@{shown}")).unwrap();
        assert_eq!(sel.expanded, "web1/alice,web2,web3/zed,db1");
        assert_eq!(
            targets(&format!("@{shown}")).unwrap(),
            targets(&sel.expanded).unwrap(),
            "the file means its lines joined with ','"
        );
        // Mixed with ordinary items.
        assert_eq!(
            targets(&format!("@{shown},!web2/bob")).unwrap(),
            pairs(&[
                ("web1", "alice"),
                ("web2", "carol"),
                ("web3", "zed"),
                ("db1", "dave")
            ])
        );
        // A line naming an unknown host or account is an error at FILE:line.
        std::fs::write(&path, "web1/alice\n\nwbe2\nweb1/zed\n").unwrap();
        let e = select(&hosts, &format!("@{shown}")).unwrap_err();
        assert_eq!(e.location, format!("{shown}:3"));
        assert!(
            e.message.contains("\"wbe2\" matches no host") && e.message.contains("1 more"),
            "{e}"
        );
        assert!(e.hint.unwrap().contains("did you mean `web2`?"));
        // Missing, empty and unreadable files name the file with a fix.
        let e = select(&hosts, "@no-such-file.txt").unwrap_err();
        assert_eq!(e.location, "--limit @no-such-file.txt");
        assert!(e.hint.unwrap().contains("one host"), "fix given");
        std::fs::write(&path, "# nothing failed\n\n").unwrap();
        let e = select(&hosts, &format!("@{shown}")).unwrap_err();
        assert!(e.message.contains("lists no hosts"), "{e}");
        assert!(select(&hosts, "@").unwrap_err().message.contains("no file"));
        let e = select(&hosts, &format!("@{}", dir.path().display())).unwrap_err();
        assert!(e.message.contains("cannot read"), "a folder: {e}");
    }

    fn target_strategy() -> impl Strategy<Value = Vec<(String, Option<String>)>> {
        // Every target of accounts_fleet, host-level entries included, in any subset.
        let all: Vec<(String, Option<String>)> = vec![
            ("web1".into(), Some("alice".into())),
            ("web1".into(), Some("bob".into())),
            ("web2".into(), Some("bob".into())),
            ("web2".into(), Some("carol".into())),
            ("web3".into(), Some("zed".into())),
            ("web3".into(), None),
            ("db1".into(), Some("dave".into())),
            ("db1".into(), None),
        ];
        proptest::sample::subsequence(all, 1..=8)
    }

    proptest! {
        #[test]
        fn a_retry_file_selects_exactly_its_targets(failed in target_strategy()) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("failed.txt");
            let mut text = String::from("# failed targets; retry with --limit @failed.txt\n");
            for (h, a) in &failed {
                text.push_str(&retry_line(h, a.as_deref()));
                text.push('\n');
            }
            std::fs::write(&path, text).unwrap();
            let got = targets(&format!("@{}", path.display())).unwrap();
            // A host-level entry stands for every target of the host.
            let mut want = BTreeSet::new();
            for (h, a) in &failed {
                match a {
                    Some(a) => { want.insert((h.clone(), a.clone())); }
                    None => {
                        for (host, acct) in targets(h).unwrap() {
                            want.insert((host, acct));
                        }
                    }
                }
            }
            prop_assert_eq!(got, want);
        }

        #[test]
        fn target_items_behave_like_sets(a in target_item(), b in target_item(), c in target_item()) {
            let t = |p: &str| targets(p).unwrap_or_default();
            let (sa, sb, sc) = (t(&a), t(&b), t(&c));
            let all = t("all");
            prop_assert_eq!(t(&format!("{a},{b}")), &sa | &sb);
            prop_assert_eq!(t(&format!("{a},&{b}")), &sa & &sb);
            prop_assert_eq!(t(&format!("{a},!{b}")), &sa - &sb);
            prop_assert_eq!(t(&format!("!{a}")), &all - &sa);
            prop_assert_eq!(t(&format!("{a},{b},&{c}")), &(&sa | &sb) & &sc);
        }
    }

    fn target_item() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("web1"),
            Just("web1/alice"),
            Just("web2/bob"),
            Just("*/bob"),
            Just("eu"),
            Just("eu/carol"),
            Just("us"),
            Just("web3/zed"),
            Just("db1/dave"),
            Just("web*"),
        ]
        .prop_map(String::from)
    }

    fn item() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("web1"),
            Just("web2"),
            Just("web3"),
            Just("db1"),
            Just("db2"),
            Just("eu"),
            Just("us"),
            Just("shared"),
            Just("web*"),
            Just("db?"),
            Just("*1"),
            Just("nope"),
        ]
        .prop_map(String::from)
    }

    fn set(pattern: &str) -> BTreeSet<usize> {
        select(&fleet(), pattern)
            .map(|s| s.hosts.into_iter().collect())
            .unwrap_or_default()
    }

    proptest! {
        #[test]
        fn union_intersection_and_exclusion_behave_like_sets(a in item(), b in item(), c in item()) {
            let all: BTreeSet<usize> = (0..fleet().len()).collect();
            let (sa, sb, sc) = (set(&a), set(&b), set(&c));
            prop_assert_eq!(set(&format!("{a},{b}")), &sa | &sb);
            prop_assert_eq!(set(&format!("{a},&{b}")), &sa & &sb);
            prop_assert_eq!(set(&format!("{a},!{b}")), &sa - &sb);
            prop_assert_eq!(set(&format!("!{a}")), &all - &sa);
            prop_assert_eq!(set(&format!("{a},{b},&{c}")), &(&sa | &sb) & &sc);
            // Order of items does not matter.
            prop_assert_eq!(set(&format!("!{c},{a},&{b}")), set(&format!("{a},&{b},!{c}")));
        }

        #[test]
        fn arbitrary_patterns_never_panic(p in ".{0,40}") {
            let hosts = fleet();
            if let Ok(s) = select(&hosts, &p) {
                prop_assert!(!s.hosts.is_empty());
                prop_assert!(s.hosts.windows(2).all(|w| w[0] < w[1]));
            }
        }
    }
}
