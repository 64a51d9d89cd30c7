//! Why this module exists: after a panel compromise the question is "which tokens exist on our
//! servers, which are ours, and which must go". This module answers it for one token at a time,
//! with no I/O: a listed token, whose it is and the run's [`Rules`] become an [`AuditRow`] with a
//! [`Class`] (`ours`, `system`, `self`, `unknown`) and [`Flag`]s. The run calls [`Rules::judge`]
//! for every token it lists in `audit` and `sweep`; `inputs.rs` reads what the rules are made of
//! (`--known` journals and reports, `--ioc` files, `--since`); `output.rs` prints the census.
//! See docs/DESIGN.md §9.

use crate::backend::TokenInfo;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

pub mod inputs;
pub mod output;

/// Who a token is: the verdict of the census.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// A tokenfleet journal or report names it, or it matches `--ours`.
    Ours,
    /// Made by cPanel or an integration (DNS cluster, WebPros Dashboard), or protected by the
    /// inventory's `protect` globs: never revoked blindly.
    System,
    /// The credential this run logs in with.
    #[serde(rename = "self")]
    SelfCredential,
    /// Everything else: what a sweep revokes.
    Unknown,
}

impl Class {
    pub const ALL: [Class; 4] = [
        Class::Ours,
        Class::System,
        Class::SelfCredential,
        Class::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Class::Ours => "ours",
            Class::System => "system",
            Class::SelfCredential => "self",
            Class::Unknown => "unknown",
        }
    }
}

/// What stands out about a token, whatever its class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flag {
    /// Named in `--ioc FILE` or in the built-in list of names seen in published compromises.
    Suspicious,
    /// Created at or after `--since` (the start of an incident window).
    CreatedSince,
    /// A WHM token with the `all` ACL (root-equivalent), or every cPanel token with full access.
    FullAccess,
    /// A WHM token with no IP allow-list.
    AllowAnyIp,
    NeverExpires,
    /// Past its expiry: it no longer authenticates, but cPanel keeps it until it is revoked.
    Expired,
    /// Expires within `--expiring-within` (30 days unless told).
    ExpiresSoon,
}

impl Flag {
    pub const ALL: [Flag; 7] = [
        Flag::Suspicious,
        Flag::CreatedSince,
        Flag::FullAccess,
        Flag::AllowAnyIp,
        Flag::NeverExpires,
        Flag::Expired,
        Flag::ExpiresSoon,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Flag::Suspicious => "suspicious",
            Flag::CreatedSince => "created-since",
            Flag::FullAccess => "full-access",
            Flag::AllowAnyIp => "allow-any-ip",
            Flag::NeverExpires => "never-expires",
            Flag::Expired => "expired",
            Flag::ExpiresSoon => "expires-soon",
        }
    }

    pub fn parse(text: &str) -> Option<Flag> {
        Flag::ALL.into_iter().find(|f| f.as_str() == text)
    }
}

/// Whose tokens: a host's WHM user's, or a cPanel account's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OwnerKind {
    Whm,
    Account,
}

impl OwnerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OwnerKind::Whm => "whm",
            OwnerKind::Account => "account",
        }
    }
}

/// One token of the census.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRow {
    pub host: String,
    pub owner_kind: OwnerKind,
    /// The WHM user or the cPanel account.
    pub owner: String,
    pub name: String,
    pub class: Class,
    /// What decided the class ("DNS cluster trust (reverse_trust_*)", "journal web.journal").
    pub why: String,
    pub flags: Vec<Flag>,
    /// Unix seconds.
    pub created_at: Option<i64>,
    /// Unix seconds; `None`: never.
    pub expires_at: Option<i64>,
    /// WHM: the ACLs granted; `None` for cPanel tokens (or when not listed).
    pub acls: Option<Vec<String>>,
    /// WHM: the IP allow-list (empty: any address); `None` for cPanel tokens.
    pub whitelist_ips: Option<Vec<String>>,
}

impl AuditRow {
    pub fn has(&self, flag: Flag) -> bool {
        self.flags.contains(&flag)
    }

    /// A script should look at it: unknown, or suspicious whatever its class.
    pub fn is_finding(&self) -> bool {
        self.class == Class::Unknown || self.has(Flag::Suspicious)
    }
}

/// Names cPanel and its integrations make themselves, with who makes them. Revoking one breaks
/// a DNS cluster or a dashboard link, so none is ever swept.
pub const SYSTEM_NAMES: &[(&str, &str)] = &[
    ("reverse_trust_*", "DNS cluster trust (reverse_trust_*)"),
    ("WebPros_Dashboard", "WebPros Dashboard"),
    ("WP-Dashboard", "WebPros Dashboard"),
];

/// Token names seen in published compromises (CVE-2026-41940 and its webshells), besides
/// `lp` followed by hex digits, which [`builtin_suspicious`] recognises.
pub const IOC_NAMES: &[&str] = &["WHM_FullRoot", "bkl"];

/// A name the built-in indicator list knows.
pub fn builtin_suspicious(name: &str) -> bool {
    if IOC_NAMES.contains(&name) {
        return true;
    }
    // Webshells mint `lp<hex>` (e.g. lp3f9a1c2e).
    name.strip_prefix("lp").is_some_and(|hex| {
        (6..=32).contains(&hex.len()) && hex.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

/// What classes and flags a token: built from the command line and the inventory, before any
/// request.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// Unix seconds: "now" for `expired` and `expires-soon`.
    pub now: i64,
    /// `expires-soon` below this many seconds from now.
    pub expiring_within: i64,
    /// `--since`: `created-since` at or after this.
    pub since: Option<i64>,
    /// `--ours` globs.
    pub ours: Vec<glob::Pattern>,
    /// (host, owner, token name) that a `--known` journal or report names, with the file.
    pub known: HashSet<(String, String, String)>,
    /// Where `known` came from, for `why`.
    pub known_from: String,
    /// The `--known` files, read again when a sweep is about to revoke a token they did not
    /// name when last read (see [`Rules::named_since`]).
    pub known_files: Option<std::sync::Arc<KnownFiles>>,
    /// `--ioc` globs.
    pub ioc: Vec<glob::Pattern>,
}

/// The `--known` files as last read, shared by every worker of a sweep.
#[derive(Debug, Default)]
pub struct KnownFiles {
    pub paths: Vec<std::path::PathBuf>,
    pub read: std::sync::Mutex<KnownRead>,
}

/// One reading of the `--known` files.
#[derive(Debug, Default)]
pub struct KnownRead {
    /// When the reading started.
    pub at: Option<std::time::Instant>,
    /// Each file's length and modification time just before it was read: a file whose stamp
    /// is unchanged has nothing new to say.
    pub stamps: Vec<Option<(u64, std::time::SystemTime)>>,
    pub names: HashSet<(String, String, String)>,
}

impl KnownRead {
    /// Read `paths` now. A file that cannot be read (any more) names nothing new.
    pub fn of(paths: &[std::path::PathBuf]) -> KnownRead {
        let at = Some(std::time::Instant::now());
        let stamps = stamps(paths);
        let mut names = HashSet::new();
        for p in paths {
            if let Ok(more) = inputs::read_known(p) {
                names.extend(more);
            }
        }
        KnownRead { at, stamps, names }
    }
}

pub(crate) fn stamps(paths: &[std::path::PathBuf]) -> Vec<Option<(u64, std::time::SystemTime)>> {
    paths
        .iter()
        .map(|p| {
            let m = std::fs::metadata(p).ok()?;
            Some((m.len(), m.modified().ok()?))
        })
        .collect()
}

impl Rules {
    /// Whether a `--known` file names this token now. The files are read again only when
    /// they were last read before `listed_at` (the start of the listing that showed the
    /// token) and have changed since (their length or time): a run of ours journals a
    /// create's intent before it sends the create, so a token that a concurrent create made,
    /// and the listing showed, is named in its journal by then, and a sweep running beside a
    /// rotation never takes the rotation's new tokens. Without such a run, nothing is read.
    pub fn named_since(
        &self,
        key: &(String, String, String),
        listed_at: std::time::Instant,
    ) -> bool {
        let Some(files) = &self.known_files else {
            return false;
        };
        let mut read = files.read.lock().unwrap_or_else(|p| p.into_inner());
        if read.at.is_none_or(|at| at < listed_at) && read.stamps != stamps(&files.paths) {
            *read = KnownRead::of(&files.paths);
        }
        read.names.contains(key)
    }
}

/// Default `--expiring-within`: 30 days.
pub const DEFAULT_EXPIRING_WITHIN: i64 = 30 * 86_400;

/// The owner a token belongs to, as the run knows it.
#[derive(Debug, Clone, Copy)]
pub struct Whose<'a> {
    pub host: &'a str,
    pub kind: OwnerKind,
    pub owner: &'a str,
    /// The inventory's `protect` globs for this host.
    pub protect: &'a [glob::Pattern],
    /// The name of the token this run logs in with as this owner, when known.
    pub credential: Option<&'a str>,
}

impl Rules {
    /// Class and flags of one listed token.
    pub fn judge(&self, whose: &Whose<'_>, t: &TokenInfo) -> AuditRow {
        let name = t.name.as_str();
        let (class, why) = self.class_of(whose, name);
        let mut flags = Vec::new();
        if builtin_suspicious(name) || self.ioc.iter().any(|g| g.matches(name)) {
            flags.push(Flag::Suspicious);
        }
        if let (Some(since), Some(created)) = (self.since, t.create_time)
            && created >= since
        {
            flags.push(Flag::CreatedSince);
        }
        let full = match whose.kind {
            OwnerKind::Whm => t
                .acls
                .as_ref()
                .is_none_or(|acls| acls.iter().any(|a| a == "all")),
            OwnerKind::Account => t.full_access.unwrap_or(true),
        };
        if full {
            flags.push(Flag::FullAccess);
        }
        if whose.kind == OwnerKind::Whm && t.whitelist_ips.is_empty() {
            flags.push(Flag::AllowAnyIp);
        }
        match t.expires_at {
            None => flags.push(Flag::NeverExpires),
            Some(e) if e <= self.now => flags.push(Flag::Expired),
            Some(e) if e - self.now <= self.expiring_within => flags.push(Flag::ExpiresSoon),
            Some(_) => {}
        }
        AuditRow {
            host: whose.host.to_string(),
            owner_kind: whose.kind,
            owner: whose.owner.to_string(),
            name: name.to_string(),
            class,
            why,
            flags,
            created_at: t.create_time,
            expires_at: t.expires_at,
            acls: match whose.kind {
                OwnerKind::Whm => Some(t.acls.clone().unwrap_or_else(|| vec!["all".into()])),
                OwnerKind::Account => None,
            },
            whitelist_ips: match whose.kind {
                OwnerKind::Whm => Some(t.whitelist_ips.clone()),
                OwnerKind::Account => None,
            },
        }
    }

    /// The class, in order of precedence: the credential in use, then what must never be
    /// revoked (system names, `protect`), then ours, then unknown.
    fn class_of(&self, whose: &Whose<'_>, name: &str) -> (Class, String) {
        if whose.credential == Some(name) {
            return (
                Class::SelfCredential,
                "the credential this run logs in with".into(),
            );
        }
        static SYSTEM: std::sync::LazyLock<Vec<(glob::Pattern, &str)>> =
            std::sync::LazyLock::new(|| {
                SYSTEM_NAMES
                    .iter()
                    .map(|(g, who)| (glob::Pattern::new(g).expect("a valid glob"), *who))
                    .collect()
            });
        if let Some((_, who)) = SYSTEM.iter().find(|(g, _)| g.matches(name)) {
            return (Class::System, (*who).to_string());
        }
        if let Some(g) = whose.protect.iter().find(|g| g.matches(name)) {
            return (
                Class::System,
                format!("protect = [\"{}\"] in the inventory", g.as_str()),
            );
        }
        let key = (
            whose.host.to_string(),
            whose.owner.to_string(),
            name.to_string(),
        );
        if self.known.contains(&key) {
            return (Class::Ours, format!("named by {}", self.known_from));
        }
        if let Some(g) = self.ours.iter().find(|g| g.matches(name)) {
            return (Class::Ours, format!("--ours {}", g.as_str()));
        }
        (Class::Unknown, String::new())
    }
}

/// What a sweep takes: `unknown` tokens, narrowed by `--since`, `--flag` and `--name`, and,
/// after a confirmation, only those the operator was shown.
#[derive(Debug, Clone, Default)]
pub struct SweepFilter {
    /// `--since`: only tokens created since (flagged `created-since`).
    pub since: bool,
    /// `--flag`: only tokens with every one of these.
    pub flags: Vec<Flag>,
    /// `--name`: only tokens whose name matches.
    pub name: Option<glob::Pattern>,
    /// The (host, owner, name) confirmed at the prompt: nothing else is revoked.
    pub confirmed: Option<std::sync::Arc<HashSet<(String, String, String)>>>,
}

impl SweepFilter {
    /// Whether the sweep revokes this token. Never anything but `unknown`.
    pub fn takes(&self, row: &AuditRow) -> bool {
        row.class == Class::Unknown
            && (!self.since || row.has(Flag::CreatedSince))
            && self.flags.iter().all(|f| row.has(*f))
            && self.name.as_ref().is_none_or(|g| g.matches(&row.name))
            && self.confirmed.as_ref().is_none_or(|c| {
                c.contains(&(row.host.clone(), row.owner.clone(), row.name.clone()))
            })
    }
}

#[cfg(test)]
mod tests;
