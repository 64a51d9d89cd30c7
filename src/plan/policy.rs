//! Why this module exists: a WHM token can carry ACLs and an IP allow-list (`api_token_create`
//! takes `acl-N` and `whitelist_ip-N`) and can be changed in place (`api_token_update`), where a
//! cPanel account token can do neither (UAPI `create_full_access` takes only a name and an
//! expiry, and UAPI has no update). So `--acl`, `--whitelist-ip`, `--expiring-within` and the
//! changes of `update` are parsed and checked here, strictly, before any request: a typo in an
//! allow-list would otherwise lock the token's holder out, or leave it open to every address.
//! See docs/DESIGN.md §1.

use crate::backend::TokenInfo;
use crate::error::Problem;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// WHM accepts at most this many allow-list entries per token.
pub const MAX_WHITELIST: usize = 100;

/// What `--scope account` says of `--acl`/`--whitelist-ip`.
pub const ACCOUNT_HAS_NO_POLICY: &str = "cPanel account tokens have no ACLs or IP allow-list (UAPI create_full_access takes only name and expires_at)";

/// What `update` without `--scope whm` says.
pub const ACCOUNT_HAS_NO_UPDATE: &str = "cPanel account tokens cannot be changed in place (UAPI has no update): renew them with `tokenfleet rotate --expiring-within DUR`";

/// The ACLs and IP allow-list a new WHM token is created with. Empty: WHM's defaults (every
/// privilege of the caller, any address).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenPolicy {
    /// ACL names (`^[a-z0-9-]+$`), duplicates folded, in the order given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acls: Vec<String>,
    /// Addresses and CIDRs in canonical form, duplicates folded, at most [`MAX_WHITELIST`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub whitelist: Vec<String>,
}

impl TokenPolicy {
    pub fn is_empty(&self) -> bool {
        self.acls.is_empty() && self.whitelist.is_empty()
    }
}

/// A new expiry for `update`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewExpiry {
    /// Unix seconds.
    At(i64),
    Never,
}

/// What `update` changes on each matching WHM token (`api_token_update`); `None`: left as is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenChange {
    pub expires: Option<NewExpiry>,
    /// Replaces the token's ACLs.
    pub acls: Option<Vec<String>>,
    /// Replaces the allow-list; `Some(empty)`: cleared (`--whitelist-any`, any address).
    pub whitelist: Option<Vec<String>>,
}

impl TokenChange {
    pub fn is_empty(&self) -> bool {
        self.expires.is_none() && self.acls.is_none() && self.whitelist.is_none()
    }

    /// Whether this change could take away something from whoever holds `token`: new ACLs or a
    /// new allow-list (either may be narrower), or an expiry sooner than the token's own. An
    /// expiry extended (or made never) takes nothing away.
    pub fn narrows(&self, token: &TokenInfo) -> bool {
        let sooner = match (self.expires, token.expires_at) {
            (None, _) | (Some(NewExpiry::Never), _) => false,
            (Some(NewExpiry::At(_)), None) => true,
            (Some(NewExpiry::At(new)), Some(old)) => new < old,
        };
        sooner || self.acls.is_some() || self.whitelist.is_some()
    }

    /// The expiry a token has once this change is applied to it.
    pub fn expiry_after(&self, token: &TokenInfo) -> Option<i64> {
        match self.expires {
            None => token.expires_at,
            Some(NewExpiry::Never) => None,
            Some(NewExpiry::At(at)) => Some(at),
        }
    }
}

/// `--expiring-within DUR`: only tokens that expire before `before` (already expired included).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expiring {
    /// Unix seconds: now + DUR when the run was planned (a resume keeps it).
    pub before: i64,
    /// DUR as given, for notes ("30d").
    pub within: String,
}

impl Expiring {
    /// `token` expires before the deadline (a token that never expires does not).
    pub fn holds(&self, token: &TokenInfo) -> bool {
        token.expires_at.is_some_and(|at| at <= self.before)
    }

    /// What a target with no such token notes.
    pub fn none_note(&self, glob: &str) -> String {
        format!(
            "no token matching {glob} expires within {}",
            self.within.trim()
        )
    }
}

/// Every value of a repeatable, comma-separated flag, trimmed, empty items dropped.
fn items(raw: &[String]) -> impl Iterator<Item = &str> {
    raw.iter()
        .flat_map(|r| r.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// `--acl`: names of `^[a-z0-9-]+$`, duplicates folded.
pub fn acls(raw: &[String]) -> Result<Vec<String>, Problem> {
    let mut out: Vec<String> = Vec::new();
    for a in items(raw) {
        if !a
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(Problem::new("--acl", format!("\"{a}\" is not an ACL name")).hint(
                "ACL names are lowercase letters, digits and '-', as WHM lists them (e.g. --acl list-accts,clustering; `all` is every privilege)",
            ));
        }
        if !out.iter().any(|o| o == a) {
            out.push(a.to_string());
        }
    }
    if out.is_empty() && !raw.is_empty() {
        return Err(
            Problem::new("--acl", "no ACL name was given").hint("e.g. --acl list-accts,clustering")
        );
    }
    Ok(out)
}

/// One allow-list entry, strictly: an IPv4 or IPv6 address, or `ADDRESS/PREFIX` whose address
/// has no bits set past the prefix. Returns the canonical form.
fn whitelist_entry(raw: &str) -> Result<String, Problem> {
    let bad = |why: String| {
        Problem::new("--whitelist-ip", format!("\"{raw}\" {why}")).hint(
            "give IPv4 or IPv6 addresses or CIDRs, e.g. --whitelist-ip 203.0.113.7,198.51.100.0/24,2001:db8::/32",
        )
    };
    let (addr, prefix) = match raw.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (raw, None),
    };
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| bad("is not an IP address or CIDR".into()))?;
    let Some(p) = prefix else {
        return Ok(ip.to_string());
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let digits = !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    let len: u32 = match p.parse() {
        Ok(n) if digits && n <= max && (p == "0" || !p.starts_with('0')) => n,
        _ => return Err(bad(format!("has no valid prefix length (0 to {max})"))),
    };
    let network = match ip {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & mask).into())
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & mask).into())
        }
    };
    if network != ip {
        return Err(Problem::new(
            "--whitelist-ip",
            format!("\"{raw}\" has bits set past its /{len} prefix"),
        )
        .hint(format!(
            "write the network, {network}/{len}, or the one address, {ip}"
        )));
    }
    Ok(format!("{ip}/{len}"))
}

/// `--whitelist-ip`: addresses and CIDRs, canonical, duplicates folded, at most 100.
pub fn whitelist(raw: &[String]) -> Result<Vec<String>, Problem> {
    let mut out: Vec<String> = Vec::new();
    for item in items(raw) {
        let entry = whitelist_entry(item)?;
        if !out.contains(&entry) {
            out.push(entry);
        }
    }
    if out.is_empty() && !raw.is_empty() {
        return Err(Problem::new("--whitelist-ip", "no address was given")
            .hint("e.g. --whitelist-ip 203.0.113.7; --whitelist-any (update) clears the list"));
    }
    if out.len() > MAX_WHITELIST {
        return Err(Problem::new(
            "--whitelist-ip",
            format!(
                "{} addresses or CIDRs (after folding duplicates); WHM allows at most {MAX_WHITELIST} per token",
                out.len()
            ),
        )
        .hint("merge addresses into CIDRs (e.g. 198.51.100.0/24) to stay within 100"));
    }
    Ok(out)
}

/// `--expiring-within DUR` (as `--expires-in` takes it), as a deadline from `now`.
pub fn expiring_within(raw: &str, now: jiff::Timestamp) -> Result<Expiring, Problem> {
    let bad = || {
        Problem::new("--expiring-within", format!("\"{raw}\" is not a duration"))
            .hint("write it like 30d, 12h, 2w, \"1 week\" or P30D")
    };
    let span: jiff::Span = raw.trim().parse().map_err(|_| bad())?;
    let at = now
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .checked_add(span)
        .map_err(|e| {
            Problem::new(
                "--expiring-within",
                format!("\"{raw}\" is out of range: {e}"),
            )
        })?
        .timestamp();
    if at < now {
        return Err(
            Problem::new("--expiring-within", format!("\"{raw}\" is negative"))
                .hint("give a positive duration, e.g. 30d; 0s takes only tokens already expired"),
        );
    }
    Ok(Expiring {
        before: at.as_second(),
        within: raw.trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn acls_are_split_folded_and_checked() {
        assert_eq!(
            acls(&v(&["list-accts,clustering", "all", "clustering"])).unwrap(),
            v(&["list-accts", "clustering", "all"])
        );
        let e = acls(&v(&["List_Accts"])).unwrap_err();
        assert_eq!(e.location, "--acl");
        assert!(e.message.contains("List_Accts"), "{}", e.message);
        assert!(acls(&v(&[","])).is_err());
        assert!(acls(&[]).unwrap().is_empty());
    }

    #[test]
    fn allow_lists_are_strict_canonical_and_bounded() {
        assert_eq!(
            whitelist(&v(&[
                "203.0.113.7, 198.51.100.0/24",
                "2001:DB8::/32",
                "203.0.113.7"
            ]))
            .unwrap(),
            v(&["203.0.113.7", "198.51.100.0/24", "2001:db8::/32"])
        );
        for bad in [
            "10.0.0.1/8",
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0.0/08",
            "10.0.0",
            "300.1.1.1",
            "010.0.0.1",
            "example.com",
            "::1/129",
            "fe80::1%eth0",
            "10.0.0.0/+8",
        ] {
            let e = whitelist(&v(&[bad])).unwrap_err();
            assert_eq!(e.location, "--whitelist-ip", "{bad}");
            assert!(e.message.contains(bad), "{bad}: {}", e.message);
            assert!(e.hint.is_some(), "{bad}");
        }
        assert_eq!(
            whitelist(&v(&["0.0.0.0/0", "::/0"])).unwrap(),
            v(&["0.0.0.0/0", "::/0"])
        );
        let hundred: Vec<String> = (0..100).map(|i| format!("10.0.0.{i}")).collect();
        assert_eq!(whitelist(&hundred).unwrap().len(), 100);
        let mut over = hundred.clone();
        over.push("10.0.1.0".into());
        let e = whitelist(&over).unwrap_err();
        assert!(e.message.contains("101"), "{}", e.message);
        // Duplicates fold before the count.
        let mut dup = hundred;
        dup.push("10.0.0.1".into());
        assert_eq!(whitelist(&dup).unwrap().len(), 100);
    }

    #[test]
    fn a_change_narrows_unless_it_only_extends_the_expiry() {
        let t = TokenInfo::new("x", Some(1), Some(2_000));
        let extend = TokenChange {
            expires: Some(NewExpiry::At(3_000)),
            ..TokenChange::default()
        };
        assert!(!extend.narrows(&t));
        assert_eq!(extend.expiry_after(&t), Some(3_000));
        let never = TokenChange {
            expires: Some(NewExpiry::Never),
            ..TokenChange::default()
        };
        assert!(!never.narrows(&t));
        let sooner = TokenChange {
            expires: Some(NewExpiry::At(1_000)),
            ..TokenChange::default()
        };
        assert!(sooner.narrows(&t));
        assert!(extend.narrows(&TokenInfo::new("y", None, None)));
        let acl = TokenChange {
            acls: Some(v(&["all"])),
            ..TokenChange::default()
        };
        assert!(acl.narrows(&t));
        assert!(TokenChange::default().is_empty());
    }

    #[test]
    fn expiring_within_is_a_deadline() {
        let now = jiff::Timestamp::from_second(1_000_000).unwrap();
        let e = expiring_within("30d", now).unwrap();
        assert_eq!(e.before, 1_000_000 + 30 * 86_400);
        assert!(e.holds(&TokenInfo::new("a", None, Some(1_000))));
        assert!(e.holds(&TokenInfo::new("a", None, Some(e.before))));
        assert!(!e.holds(&TokenInfo::new("a", None, Some(e.before + 1))));
        assert!(!e.holds(&TokenInfo::new("a", None, None)));
        assert_eq!(
            e.none_note("ci-*"),
            "no token matching ci-* expires within 30d"
        );
        assert!(expiring_within("soon", now).is_err());
        assert!(expiring_within("-1d", now).is_err());
    }
}
