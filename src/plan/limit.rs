//! Why this module exists: `-l/--limit` is how an operator aims a run at part of the fleet
//! ("rotate only eu hosts but not web3"), with Ansible's pattern language that they already know.
//! Getting this wrong touches the wrong servers, so the algebra is small, exact and tested:
//!
//! Items are separated by `,` (or `:`). Each is a host name, a glob (`web*`, `db[1-3]`), a group
//! name, or `all`; `!item` excludes and `&item` intersects. The selection is (the union of the
//! plain items, or every host if there are none) ∩ every `&` item − every `!` item, in inventory
//! order. A limit that selects no host is an error; an item that matches nothing is a warning.

use crate::error::Problem;
use crate::inventory::Host;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Union,
    Intersect,
    Exclude,
}

/// A host selection: indices into the inventory's hosts, in inventory order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub hosts: Vec<usize>,
    /// Items that matched no host ("--limit: 'wbe1' matches no host").
    pub warnings: Vec<String>,
}

fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Which hosts one item matches: by name, by group, or (with glob characters) by either.
fn matches(item: &str, hosts: &[Host]) -> Result<Vec<bool>, Problem> {
    let any_named_all = hosts
        .iter()
        .any(|h| h.name == "all" || h.groups.iter().any(|g| g == "all"));
    if item == "all" && !any_named_all {
        return Ok(vec![true; hosts.len()]);
    }
    if is_glob(item) {
        let pattern = glob::Pattern::new(item).map_err(|e| {
            Problem::new(
                "--limit",
                format!("\"{item}\" is not a valid pattern: {}", e.msg),
            )
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

/// Apply a `--limit` pattern to the inventory's hosts.
pub fn select(hosts: &[Host], pattern: &str) -> Result<Selection, Problem> {
    let mut items = Vec::new();
    for raw in pattern.split([',', ':']) {
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        let (kind, name) = if let Some(rest) = raw.strip_prefix('!') {
            (Kind::Exclude, rest.trim())
        } else if let Some(rest) = raw.strip_prefix('&') {
            (Kind::Intersect, rest.trim())
        } else {
            (Kind::Union, raw)
        };
        if name.is_empty() {
            return Err(Problem::new("--limit", format!("\"{raw}\" names nothing"))
                .hint("write a host, group or glob after ! or &, e.g. --limit 'eu,!web3'"));
        }
        items.push((kind, name));
    }
    if items.is_empty() {
        return Err(Problem::new("--limit", "the pattern is empty")
            .hint("name hosts, groups or globs, e.g. --limit 'web*,&eu,!web3'"));
    }
    let mut warnings = Vec::new();
    let mut union: Option<Vec<bool>> = None;
    let mut keep = vec![true; hosts.len()];
    for (kind, name) in &items {
        let m = matches(name, hosts)?;
        if !m.iter().any(|b| *b) {
            warnings.push(format!(
                "--limit: \"{name}\" matches no host or group in the inventory"
            ));
        }
        match kind {
            Kind::Union => {
                let u = union.get_or_insert_with(|| vec![false; hosts.len()]);
                for (u, m) in u.iter_mut().zip(&m) {
                    *u |= *m;
                }
            }
            Kind::Intersect => {
                for (k, m) in keep.iter_mut().zip(&m) {
                    *k &= *m;
                }
            }
            Kind::Exclude => {
                for (k, m) in keep.iter_mut().zip(&m) {
                    *k &= !*m;
                }
            }
        }
    }
    let union = union.unwrap_or_else(|| vec![true; hosts.len()]);
    let selected: Vec<usize> = (0..hosts.len()).filter(|i| union[*i] && keep[*i]).collect();
    if selected.is_empty() {
        return Err(
            Problem::new("--limit", format!("\"{pattern}\" selects no host")).hint(
                "check the host and group names in the inventory; ! excludes and & intersects",
            ),
        );
    }
    Ok(Selection {
        hosts: selected,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn host(name: &str, groups: &[&str]) -> Host {
        Host {
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..Host::sample(name)
        }
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
