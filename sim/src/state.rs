//! The data a simulated server keeps: accounts, WHM users and their API tokens (only hashes), with
//! cPanel's validation rules and messages, plus the cPHulk lockout model. No I/O here: the HTTP
//! layer calls these functions under the host's lock.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::spec::{AccountSpec, CphulkConfig};

/// A token as a test sees it (never the secret).
#[derive(Clone, Debug, PartialEq)]
pub struct SimToken {
    pub name: String,
    pub create_time: i64,
    /// Exactly as it was sent: a number, a numeric string, or null (never expires).
    pub expires_at: Value,
}

/// A WHM token as a test sees it, with what WHM keeps besides the name and dates (never the
/// secret): see [`crate::SimHost::whm_token_details`].
#[derive(Clone, Debug, PartialEq)]
pub struct SimWhmToken {
    pub name: String,
    pub create_time: i64,
    /// A number, or null (never expires).
    pub expires_at: Value,
    /// The ACL names granted, in the order they were given (`["all"]` by default).
    pub acls: Vec<String>,
    /// The IP allow-list (addresses or CIDR ranges); empty: any address.
    pub whitelist_ips: Vec<String>,
}

/// Whose token it is: a cPanel account's, or a WHM user's (root or a reseller).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TokenOwner {
    Account(String),
    WhmUser(String),
}

/// A token with its secret, for tests that check final-state invariants ("every live token's
/// secret is in the handoff", "no revoked or live secret appears in any output"). A real server
/// keeps only a hash; the simulator also keeps the secret so tests can ask.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenSecret {
    /// The host's name.
    pub host: String,
    pub owner: TokenOwner,
    pub name: String,
    pub secret: String,
    pub create_time: i64,
    /// As it was sent (number, numeric string or null).
    pub expires_at: Value,
}

#[derive(Clone, Debug)]
pub(crate) struct TokenRec {
    pub name: String,
    /// Kept only so tests can ask for it ([`TokenSecret`]); authentication uses `hash`.
    pub secret: String,
    pub hash: [u8; 32],
    pub create_time: i64,
    pub expires_at: Value,
    pub expires_epoch: Option<i64>,
    /// WHM tokens only (empty for account tokens): the ACLs granted.
    pub acls: Vec<String>,
    /// WHM tokens only: the IP allow-list (empty: any address).
    pub whitelist_ips: Vec<String>,
}

impl TokenRec {
    /// A token record with a fresh secret (WHM tokens get `acls` `["all"]` from their caller).
    pub fn new(
        name: &str,
        create_time: i64,
        expires_at: Value,
        expires_epoch: Option<i64>,
    ) -> (TokenRec, String) {
        let secret = new_secret();
        let rec = TokenRec {
            name: name.to_string(),
            secret: secret.clone(),
            hash: hash_token(&secret),
            create_time,
            expires_at,
            expires_epoch,
            acls: Vec::new(),
            whitelist_ips: Vec::new(),
        };
        (rec, secret)
    }
    pub fn whm_public(&self) -> SimWhmToken {
        SimWhmToken {
            name: self.name.clone(),
            create_time: self.create_time,
            expires_at: self.expires_at.clone(),
            acls: self.acls.clone(),
            whitelist_ips: self.whitelist_ips.clone(),
        }
    }
    fn active(&self, now: i64) -> bool {
        self.expires_epoch.is_none_or(|e| e > now)
    }
    pub fn public(&self) -> SimToken {
        SimToken {
            name: self.name.clone(),
            create_time: self.create_time,
            expires_at: self.expires_at.clone(),
        }
    }
    pub fn with_secret(&self, host: &str, owner: &TokenOwner) -> TokenSecret {
        TokenSecret {
            host: host.to_string(),
            owner: owner.clone(),
            name: self.name.clone(),
            secret: self.secret.clone(),
            create_time: self.create_time,
            expires_at: self.expires_at.clone(),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Account {
    pub owner: String,
    pub suspended: bool,
    pub password: Option<String>,
    pub tokens: Vec<TokenRec>,
}

#[derive(Debug, Default)]
pub(crate) struct HostState {
    pub accounts: BTreeMap<String, Account>,
    /// root and resellers, with their WHM tokens.
    pub whm_users: BTreeMap<String, Vec<TokenRec>>,
    /// Every token revoked so far, oldest first (for tests: [`TokenSecret`]).
    pub revoked: Vec<(TokenOwner, TokenRec)>,
}

pub(crate) fn now_epoch() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub(crate) fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// 32 characters of `A-Z0-9`, as cPanel issues them.
pub(crate) fn new_secret() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    (0..32)
        .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
        .collect()
}

pub(crate) fn valid_token_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 50
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

pub(crate) fn invalid_name_message(name: &str) -> String {
    format!(
        "“{name}” is not a valid API token name. A token name must contain only letters, numbers, hyphens (-), and underscores (_), and must not exceed 50 characters."
    )
}

pub(crate) fn conflict_message(name: &str) -> String {
    format!("A conflicting API token with the name “{name}” already exists.")
}

pub(crate) fn missing_arg(arg: &str) -> String {
    format!("Provide the “{arg}” argument.")
}

pub(crate) const EXPIRES_MESSAGE: &str = "The “expires_at” value must be a future date.";

/// Parse an `expires_at` form value: empty = never (`Ok(None)`); `zero_is_never` for WHM.
pub(crate) fn parse_expires(raw: &str, zero_is_never: bool) -> Result<Option<i64>, String> {
    if raw.is_empty() {
        return Ok(None);
    }
    if !raw.bytes().all(|b| b.is_ascii_digit()) || raw.len() > 18 {
        return Err(EXPIRES_MESSAGE.to_string());
    }
    let v: i64 = raw.parse().map_err(|_| EXPIRES_MESSAGE.to_string())?;
    if v == 0 && zero_is_never {
        return Ok(None);
    }
    if v <= now_epoch() {
        return Err(EXPIRES_MESSAGE.to_string());
    }
    Ok(Some(v))
}

/// The most entries a WHM token's IP allow-list may hold.
pub(crate) const MAX_WHITELIST: usize = 100;

pub(crate) const TOO_MANY_IPS: &str = "You may not specify more than 100 whitelisted IP addresses.";

/// Is `entry` an IP address or a CIDR range (`10.0.0.0/8`, `2001:db8::/32`)?
pub(crate) fn valid_ip_or_cidr(entry: &str) -> bool {
    let (addr, prefix) = match entry.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (entry, None),
    };
    let Ok(ip) = addr.parse::<IpAddr>() else {
        return false;
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    match prefix {
        None => true,
        Some(p) => {
            !p.is_empty()
                && p.len() <= 3
                && p.bytes().all(|b| b.is_ascii_digit())
                && p.parse::<u32>().is_ok_and(|n| n <= max)
        }
    }
}

pub(crate) fn invalid_ip_message(entry: &str) -> String {
    format!("“{entry}” is not a valid IP address or CIDR range.")
}

/// Check a `whitelist_ip`/`whitelist_ip-N` list (at most 100 entries, each an IP or CIDR).
pub(crate) fn check_whitelist(ips: &[&str]) -> Result<(), String> {
    if ips.len() > MAX_WHITELIST {
        return Err(TOO_MANY_IPS.to_string());
    }
    match ips.iter().find(|ip| !valid_ip_or_cidr(ip)) {
        Some(bad) => Err(invalid_ip_message(bad)),
        None => Ok(()),
    }
}

/// Create a token in a token set (an account's or a WHM user's). `create_time` is the server's
/// clock (real time plus the host's `clock_offset`). Returns the secret and the new record.
pub(crate) fn create_in<'a>(
    tokens: &'a mut Vec<TokenRec>,
    name: &str,
    expires_raw: Value,
    expires_epoch: Option<i64>,
    create_time: i64,
) -> Result<(String, &'a mut TokenRec), String> {
    if !valid_token_name(name) {
        return Err(invalid_name_message(name));
    }
    if tokens.iter().any(|t| t.name == name) {
        return Err(conflict_message(name));
    }
    let (rec, secret) = TokenRec::new(name, create_time, expires_raw, expires_epoch);
    tokens.push(rec);
    Ok((secret, tokens.last_mut().expect("just pushed")))
}

/// Remove the tokens named `name` from a token set; returns them (empty: there was none).
pub(crate) fn revoke_in(tokens: &mut Vec<TokenRec>, name: &str) -> Vec<TokenRec> {
    let (gone, kept): (Vec<TokenRec>, Vec<TokenRec>) = std::mem::take(tokens)
        .into_iter()
        .partition(|t| t.name == name);
    *tokens = kept;
    gone
}

pub(crate) fn rename_in(tokens: &mut [TokenRec], name: &str, new_name: &str) -> Result<(), String> {
    if !valid_token_name(new_name) {
        return Err(invalid_name_message(new_name));
    }
    if !tokens.iter().any(|t| t.name == name) {
        return Err(format!("The API token “{name}” does not exist."));
    }
    if name != new_name && tokens.iter().any(|t| t.name == new_name) {
        return Err(conflict_message(new_name));
    }
    if let Some(t) = tokens.iter_mut().find(|t| t.name == name) {
        t.name = new_name.to_string();
    }
    Ok(())
}

pub(crate) fn token_matches(tokens: &[TokenRec], secret: &str) -> bool {
    let h = hash_token(secret);
    let now = now_epoch();
    tokens.iter().any(|t| t.hash == h && t.active(now))
}

impl HostState {
    pub fn new(accounts: &[AccountSpec], resellers: &[String], root_token: &str) -> HostState {
        let mut s = HostState::default();
        s.whm_users.insert(
            "root".to_string(),
            vec![TokenRec {
                name: "tokenfleet-sim-root".to_string(),
                secret: root_token.to_string(),
                hash: hash_token(root_token),
                create_time: now_epoch(),
                expires_at: Value::Null,
                expires_epoch: None,
                acls: vec!["all".to_string()],
                whitelist_ips: Vec::new(),
            }],
        );
        for r in resellers {
            s.whm_users.entry(r.clone()).or_default();
        }
        for a in accounts {
            s.accounts.insert(
                a.user.clone(),
                Account {
                    owner: a.owner.clone(),
                    suspended: a.suspended,
                    password: a.password.clone(),
                    tokens: Vec::new(),
                },
            );
        }
        s
    }

    /// Does this WHM user (root or reseller) with this token authenticate now?
    pub fn whm_auth(&self, user: &str, secret: &str) -> bool {
        self.whm_users
            .get(user)
            .is_some_and(|t| token_matches(t, secret))
    }

    pub fn account_token_auth(&self, user: &str, secret: &str) -> bool {
        self.accounts
            .get(user)
            .is_some_and(|a| token_matches(&a.tokens, secret))
    }

    pub fn account_password_auth(&self, user: &str, password: &str) -> bool {
        self.accounts
            .get(user)
            .is_some_and(|a| a.password.as_deref() == Some(password))
    }

    /// May WHM user `whm_user` act for `account`? (root: any account; reseller: its own.)
    pub fn may_act_for(&self, whm_user: &str, account: &str) -> bool {
        match self.accounts.get(account) {
            None => false,
            Some(a) => whm_user == "root" || a.owner == whm_user,
        }
    }

    /// Every token not revoked (expired ones included: they stay listed), accounts first.
    pub fn live(&self, host: &str) -> Vec<TokenSecret> {
        let accounts = self.accounts.iter().flat_map(|(user, a)| {
            let owner = TokenOwner::Account(user.clone());
            a.tokens
                .iter()
                .map(move |t| t.with_secret(host, &owner))
                .collect::<Vec<_>>()
        });
        let whm = self.whm_users.iter().flat_map(|(user, tokens)| {
            let owner = TokenOwner::WhmUser(user.clone());
            tokens
                .iter()
                .map(move |t| t.with_secret(host, &owner))
                .collect::<Vec<_>>()
        });
        accounts.chain(whm).collect()
    }

    /// Run one UAPI `Tokens` function as `account`. Returns the flat UAPI envelope and, when a
    /// create was performed, the new token's secret. `server_now`: the server's clock (real time
    /// plus `clock_offset`), recorded as a new token's `create_time`.
    pub fn uapi_tokens(
        &mut self,
        account: &str,
        function: &str,
        args: &Args,
        server_now: i64,
    ) -> (Value, Option<String>) {
        let Some(acct) = self.accounts.get_mut(account) else {
            return (
                uapi_err(format!("The user “{account}” does not exist.")),
                None,
            );
        };
        match function {
            "create_full_access" => {
                let Some(name) = args.get("name") else {
                    return (uapi_err(missing_arg("name")), None);
                };
                if acct.suspended {
                    return (
                        uapi_err(format!("The account “{account}” is suspended.")),
                        None,
                    );
                }
                let raw = args.get("expires_at").unwrap_or("");
                let epoch = match parse_expires(raw, false) {
                    Ok(e) => e,
                    Err(m) => return (uapi_err(m), None),
                };
                let raw_value = if raw.is_empty() {
                    Value::Null
                } else {
                    Value::String(raw.to_string())
                };
                match create_in(&mut acct.tokens, name, raw_value, epoch, server_now) {
                    Ok((secret, rec)) => (
                        uapi_ok(json!({"create_time": rec.create_time, "token": secret.clone()})),
                        Some(secret),
                    ),
                    Err(m) => (uapi_err(m), None),
                }
            }
            "list" => {
                let data: Vec<Value> = acct
                    .tokens
                    .iter()
                    .map(|t| {
                        json!({
                            "create_time": t.create_time,
                            "expires_at": t.expires_at,
                            "features": [],
                            "has_full_access": 1,
                            "name": t.name,
                        })
                    })
                    .collect();
                (uapi_ok(Value::Array(data)), None)
            }
            "revoke" => {
                let Some(name) = args.get("name") else {
                    return (uapi_err(missing_arg("name")), None);
                };
                let gone = revoke_in(&mut acct.tokens, name);
                let any = !gone.is_empty();
                let owner = TokenOwner::Account(account.to_string());
                self.revoked
                    .extend(gone.into_iter().map(|t| (owner.clone(), t)));
                (uapi_ok(json!(if any { 1 } else { 0 })), None)
            }
            "rename" => {
                let Some(name) = args.get("name") else {
                    return (uapi_err(missing_arg("name")), None);
                };
                let Some(new_name) = args.get("new_name") else {
                    return (uapi_err(missing_arg("new_name")), None);
                };
                match rename_in(&mut acct.tokens, name, new_name) {
                    Ok(()) => (uapi_ok(Value::Null), None),
                    Err(m) => (uapi_err(m), None),
                }
            }
            other => (
                uapi_err(format!(
                    "Could not find the function “{other}” in the module “Tokens”."
                )),
                None,
            ),
        }
    }
}

/// Form/query arguments: first value wins for a key; all values kept in order for repeated keys.
#[derive(Debug, Default)]
pub(crate) struct Args {
    pub pairs: Vec<(String, String)>,
}

impl Args {
    pub fn parse(query: &[u8], body: &[u8]) -> Args {
        let mut pairs: Vec<(String, String)> = form_urlencoded::parse(query)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        pairs.extend(form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())));
        Args { pairs }
    }
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    /// `key`, `key-1`, `key-2`, … in order (the WHM API 1 repeated-argument form).
    pub fn repeated(&self, key: &str) -> Vec<&str> {
        let prefix = format!("{key}-");
        self.pairs
            .iter()
            .filter(|(k, _)| {
                k == key
                    || k.strip_prefix(&prefix)
                        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            })
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

pub(crate) fn uapi_ok(data: Value) -> Value {
    json!({"data": data, "errors": null, "messages": null, "metadata": {}, "status": 1, "warnings": null})
}

pub(crate) fn uapi_err(message: String) -> Value {
    json!({"data": null, "errors": [message], "messages": null, "metadata": {}, "status": 0, "warnings": null})
}

/// cPHulk: failed logins per client IP within a window block the IP for a while.
#[derive(Debug, Default)]
pub(crate) struct Cphulk {
    failures: HashMap<IpAddr, Vec<Instant>>,
    blocked_until: HashMap<IpAddr, Instant>,
}

impl Cphulk {
    pub fn is_blocked(&mut self, ip: IpAddr, now: Instant) -> bool {
        match self.blocked_until.get(&ip) {
            Some(until) if *until > now => true,
            Some(_) => {
                self.blocked_until.remove(&ip);
                false
            }
            None => false,
        }
    }

    /// Record a failed login; true when it tripped the block.
    pub fn record_failure(&mut self, ip: IpAddr, now: Instant, cfg: &CphulkConfig) -> bool {
        let list = self.failures.entry(ip).or_default();
        list.retain(|t| now.saturating_duration_since(*t) < cfg.window);
        list.push(now);
        if list.len() as u32 >= cfg.max_failures.max(1) {
            list.clear();
            self.blocked_until.insert(
                ip,
                now + cfg.block.min(Duration::from_secs(100 * 365 * 86400)),
            );
            return true;
        }
        false
    }

    pub fn reset(&mut self) {
        self.failures.clear();
        self.blocked_until.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rule() {
        assert!(valid_token_name("ci-20250101_x"));
        assert!(valid_token_name(&"a".repeat(50)));
        assert!(!valid_token_name(&"a".repeat(51)));
        assert!(!valid_token_name(""));
        assert!(!valid_token_name("bad name"));
        assert!(!valid_token_name("é"));
    }

    #[test]
    fn secrets_look_real() {
        let s = new_secret();
        assert_eq!(s.len(), 32);
        assert!(
            s.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        );
        assert_ne!(s, new_secret());
    }

    #[test]
    fn expires_rules() {
        assert_eq!(parse_expires("", false), Ok(None));
        assert_eq!(parse_expires("0", true), Ok(None));
        assert!(parse_expires("0", false).is_err());
        assert!(parse_expires("12ab", false).is_err());
        assert!(parse_expires("-5", false).is_err());
        let future = now_epoch() + 3600;
        assert_eq!(parse_expires(&future.to_string(), false), Ok(Some(future)));
    }

    #[test]
    fn cphulk_blocks_after_max_and_forgets_outside_window() {
        let cfg = CphulkConfig {
            max_failures: 3,
            window: Duration::from_secs(10),
            block: Duration::from_secs(60),
        };
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        let mut c = Cphulk::default();
        assert!(!c.record_failure(ip, t0, &cfg));
        assert!(!c.record_failure(ip, t0 + Duration::from_secs(5), &cfg));
        // The first failure leaves the window before the third arrives.
        assert!(!c.record_failure(ip, t0 + Duration::from_secs(11), &cfg));
        assert!(!c.is_blocked(ip, t0 + Duration::from_secs(11)));
        assert!(c.record_failure(ip, t0 + Duration::from_secs(12), &cfg));
        assert!(c.is_blocked(ip, t0 + Duration::from_secs(13)));
        assert!(c.is_blocked(ip, t0 + Duration::from_secs(71)));
        assert!(!c.is_blocked(ip, t0 + Duration::from_secs(72)));
    }

    #[test]
    fn allow_list_entries_are_ips_or_cidr_ranges() {
        for ok in [
            "10.0.0.1",
            "10.0.0.0/8",
            "0.0.0.0/0",
            "2001:db8::1",
            "2001:db8::/32",
            "::/128",
        ] {
            assert!(valid_ip_or_cidr(ok), "{ok}");
        }
        for bad in [
            "",
            "any",
            "10.0.0",
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "::/129",
            "host.example",
            "10.0.0.1 ",
        ] {
            assert!(!valid_ip_or_cidr(bad), "{bad:?}");
        }
        assert!(check_whitelist(&["10.0.0.1"; 100]).is_ok());
        assert_eq!(
            check_whitelist(&["10.0.0.1"; 101]),
            Err(TOO_MANY_IPS.to_string())
        );
        assert_eq!(
            check_whitelist(&["10.0.0.1", "nope"]),
            Err(invalid_ip_message("nope"))
        );
    }

    #[test]
    fn repeated_args() {
        let a = Args::parse(
            b"token_name=a&token_name-1=b",
            b"token_name-2=c&token_name-x=d",
        );
        assert_eq!(a.repeated("token_name"), vec!["a", "b", "c"]);
        assert_eq!(a.get("token_name"), Some("a"));
    }

    proptest::proptest! {
        #[test]
        fn name_rule_matches_the_documented_regex(name in "[A-Za-z0-9_ .é-]{0,60}") {
            let expected = !name.is_empty()
                && name.len() <= 50
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            proptest::prop_assert_eq!(valid_token_name(&name), expected);
        }

        #[test]
        fn form_args_round_trip(pairs in proptest::collection::vec(("[a-z_.-]{1,10}", "\\PC{0,20}"), 0..8)) {
            let body = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .finish();
            let args = Args::parse(b"", body.as_bytes());
            proptest::prop_assert_eq!(args.pairs, pairs);
        }
    }
}
