//! What a simulated fleet looks like before it starts: hosts, accounts, resellers, the cPHulk
//! settings and the faults each host injects, plus the TOML fault file a person can hand to the
//! standalone fleet. Kept apart from the server so tests can build specs without touching sockets.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Deserializer};

/// The whole fleet to start.
#[derive(Clone, Debug)]
pub struct FleetSpec {
    pub hosts: Vec<HostSpec>,
    pub cert_mode: CertMode,
    /// Every host's cPHulk settings at start; change them while the fleet runs with
    /// `Fleet::set_cphulk` or `SimHost::set_cphulk`.
    pub cphulk: CphulkConfig,
    /// The root WHM token valid on every host; `None` picks a random one.
    pub root_token: Option<String>,
    /// Where the hosts listen: all on 127.0.0.1 with ephemeral ports (the default), or each on
    /// its own loopback address with cPanel's ports 2087 and 2083.
    pub addressing: Addressing,
    /// The test CA to sign with (`CertMode::CaSigned`) and to hand out as `ca.pem`; `None`
    /// generates one. Several simulator processes serving one fleet share one this way.
    pub ca: Option<TestCaPem>,
}

/// Where a fleet's hosts listen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Addressing {
    /// Every host on 127.0.0.1, each with two ephemeral ports (what tests have always used).
    #[default]
    Shared,
    /// Every host on its own address in 127.16.0.0–127.250.255.255 (Linux routes all of
    /// 127.0.0.0/8 to the loopback device), listening on 2087 (WHM) and 2083 (cPanel) like a real
    /// server. A fleet claims a random block of addresses, so fleets running at once, in one
    /// process or several, never collide (see `addr.rs`).
    PerHost,
}

/// A test CA as PEM: the certificate and its private key, so another simulator process can sign
/// host certificates that chain to the same CA. The key never prints (`Debug` redacts it).
#[derive(Clone)]
pub struct TestCaPem {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for TestCaPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCaPem")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[redacted]")
            .finish()
    }
}

/// The name of host `h` (1-based) in a uniform fleet of `total` hosts: `web001` style up to 999
/// hosts (what tests and the README show), `web00001` style above, so names always sort.
pub fn host_name(h: usize, total: usize) -> String {
    format!("web{h:0w$}", w = name_width(total))
}

fn name_width(total: usize) -> usize {
    if total <= 999 {
        3
    } else {
        total.to_string().len().max(5)
    }
}

impl FleetSpec {
    /// `hosts` hosts named `web001`, `web002`, … each with `accounts_per_host` accounts named
    /// `u001a0001`-style (host number, `a`, account number), owned by root, unique in the fleet.
    /// Above 999 hosts the numbers get five digits (`web00001`, `u00001a0001`).
    pub fn uniform(hosts: usize, accounts_per_host: usize) -> FleetSpec {
        FleetSpec::uniform_slice(hosts, 1..=hosts, accounts_per_host)
    }

    /// The hosts `range` (1-based) of `FleetSpec::uniform(total, accounts_per_host)`, named as
    /// they are there: one simulator process's share of a fleet split over several.
    pub fn uniform_slice(
        total: usize,
        range: std::ops::RangeInclusive<usize>,
        accounts_per_host: usize,
    ) -> FleetSpec {
        let w = name_width(total);
        let hosts = range
            .map(|h| {
                let mut spec = HostSpec::new(&host_name(h, total));
                spec.accounts = (1..=accounts_per_host)
                    .map(|a| AccountSpec::new(&format!("u{h:0w$}a{a:04}")))
                    .collect();
                spec
            })
            .collect();
        FleetSpec {
            hosts,
            cert_mode: CertMode::SelfSigned,
            cphulk: CphulkConfig::default(),
            root_token: None,
            addressing: Addressing::Shared,
            ca: None,
        }
    }

    /// Apply a fault file to the hosts of this spec. A host named in the file that is not in the
    /// fleet is an error (a typo must not silently leave a host healthy).
    pub fn apply_faults(&mut self, file: &FaultsFile) -> anyhow::Result<()> {
        for name in file.host_names() {
            if !self.hosts.iter().any(|h| h.name == name) {
                bail!(
                    "{}: [hosts.{name}] names a host that is not in the fleet (hosts are {}..{}); fix the name or remove the table",
                    file.origin,
                    self.hosts.first().map_or("", |h| h.name.as_str()),
                    self.hosts.last().map_or("", |h| h.name.as_str()),
                );
            }
        }
        for host in &mut self.hosts {
            host.faults = file.for_host(&host.name)?;
        }
        Ok(())
    }
}

/// Which certificate each host presents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CertMode {
    /// A self-signed certificate per host (what cPanel does out of the box): pin it.
    #[default]
    SelfSigned,
    /// A certificate signed by the fleet's test CA (`Fleet::ca_pem`).
    CaSigned,
}

/// The cPHulk brute-force model, per host and client IP: the failed login that makes
/// `max_failures` within `window` blocks the IP for `block`, so with the default of 5 the sixth
/// request is the first refused as blocked. Failures and blocks last as long as the fleet runs,
/// across client runs against it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CphulkConfig {
    pub max_failures: u32,
    pub window: Duration,
    pub block: Duration,
}

impl Default for CphulkConfig {
    fn default() -> Self {
        CphulkConfig {
            max_failures: 5,
            window: Duration::from_secs(15 * 60),
            block: Duration::from_secs(15 * 60),
        }
    }
}

/// One simulated server.
#[derive(Clone, Debug)]
pub struct HostSpec {
    pub name: String,
    pub accounts: Vec<AccountSpec>,
    /// WHM users besides root; an account whose `owner` is one of them belongs to that reseller.
    pub resellers: Vec<String>,
    /// 401 or 403: what a bad, expired or revoked credential gets.
    pub auth_failure_status: u16,
    pub faults: Faults,
}

impl HostSpec {
    pub fn new(name: &str) -> HostSpec {
        HostSpec {
            name: name.to_string(),
            accounts: Vec::new(),
            resellers: Vec::new(),
            auth_failure_status: 401,
            faults: Faults::default(),
        }
    }

    /// Add `n` root-owned accounts named after the host (`web1` → `web1a0001`, …), so names stay
    /// unique in a fleet whose host names are unique.
    pub fn with_accounts(mut self, n: usize) -> Self {
        let mut prefix: String = self
            .name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_lowercase())
            .take(10)
            .collect();
        if !prefix.starts_with(|c: char| c.is_ascii_lowercase()) {
            prefix.insert(0, 'u');
            prefix.truncate(10);
        }
        let start = self.accounts.len() + 1;
        for i in start..start + n {
            self.accounts
                .push(AccountSpec::new(&format!("{prefix}a{i:04}")));
        }
        self
    }

    /// Add a reseller WHM user owning `n` new accounts named `{reseller}a0001`, ….
    pub fn with_reseller(mut self, reseller: &str, n: usize) -> Self {
        self.resellers.push(reseller.to_string());
        for i in 1..=n {
            let mut account = AccountSpec::new(&format!("{reseller}a{i:04}"));
            account.owner = reseller.to_string();
            self.accounts.push(account);
        }
        self
    }
}

/// One cPanel account on a host.
#[derive(Clone, Debug)]
pub struct AccountSpec {
    pub user: String,
    /// `root` or a reseller of the host.
    pub owner: String,
    pub suspended: bool,
    /// Password for `Basic` logins on the cPanel port; `None` refuses password logins.
    pub password: Option<String>,
}

impl AccountSpec {
    pub fn new(user: &str) -> AccountSpec {
        AccountSpec {
            user: user.to_string(),
            owner: "root".to_string(),
            suspended: false,
            password: None,
        }
    }
}

/// Faults a host injects; changeable while the fleet runs (`SimHost::set_faults`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Added to every request (from config: `"20ms"`).
    #[serde(deserialize_with = "de_duration")]
    pub latency: Duration,
    /// Extra uniform random delay in `0..jitter`.
    #[serde(deserialize_with = "de_duration")]
    pub jitter: Duration,
    /// Share of requests answered 503 before doing anything (0.0..=1.0).
    pub error_503_rate: f64,
    /// The next N creates (account or WHM) are performed, then the connection is closed unanswered.
    pub drop_after_create: u32,
    /// The answers of the next N create calls are lost (connection closed), whatever the
    /// outcome: a create refused as a duplicate included.
    pub drop_create_answers: u32,
    /// Never answer (hold the connection for an hour).
    pub hang: bool,
    /// Accept the TCP connection, then never start the TLS handshake: the socket is held open,
    /// nothing read from it, for an hour, then closed. Unlike `hang`, which waits until a
    /// request was read, this stalls before TLS (the connection counts in `connections`, not in
    /// `tls_handshakes`). Checked when a connection is accepted.
    pub hang_accept: bool,
    /// Answer every request normally (same status, headers and body, mutations performed) but
    /// write the body one byte at a time, flushed, sleeping this long before each byte (from
    /// config: `drip = "1s"`, written like `latency`; zero: off). The head goes at once, so only
    /// a client with a deadline for the whole request (not per read) stops waiting; dripping
    /// stops when a write fails (the client went away).
    #[serde(deserialize_with = "de_duration")]
    pub drip: Duration,
    /// Answer 200 with an HTML login page.
    pub html_login: bool,
    /// Answer 302 with this Location.
    pub redirect_to: Option<String>,
    /// Answer 200 with a chunked body that never ends.
    pub endless_body: bool,
    /// Answer 200 with a JSON-looking body of this many bytes.
    pub oversized_body: Option<usize>,
    /// Send the head and part of the body, then reset the connection.
    pub reset_mid_body: bool,
    /// Connections are refused (listeners closed) while set.
    pub down: bool,
    /// The cPanel port refuses every token login (`Authorization: cpanel USER:TOKEN`), valid or
    /// not, exactly as a refused login: it counts in `failed_auth`, feeds cPHulk for the client
    /// and honours `echo_auth`. Password (`Basic`) logins on the cPanel port and everything on
    /// the WHM port are unaffected: a cPanel service whose token logins are disabled or broken,
    /// so a new account token cannot be verified on port 2083.
    pub refuse_cpanel_tokens: bool,
    /// On the WHM port, `uapi_cpanel` and the legacy `cpanel` route are answered 403 with the
    /// cPanel JSON access-denied body (its reason: the token's ACLs do not permit the call),
    /// doing nothing, for a WHM credential that authenticated: an authorization failure, not a
    /// failed login (no `failed_auth`, no cPHulk). Other WHM functions keep working.
    pub deny_uapi_cpanel: bool,
    /// Requests to these route keys (the keys of `HostStats::requests`, e.g.
    /// `cpanel/Tokens/list` or `whm/uapi_cpanel/Tokens/revoke`) are answered with this HTTP
    /// status (401, 403, 500, 503…) before authentication, doing nothing. In a fault file:
    /// `fail_routes = { "cpanel/Tokens/list" = 401 }`. A 401/403 here feeds no cPHulk count;
    /// with `echo_auth` set it quotes the request's Authorization header like a refused login.
    pub fail_routes: BTreeMap<String, u16>,
    /// Like a misconfigured proxy, quote the request's `Authorization` header value verbatim in
    /// error answers (`Access denied (Authorization: whm root:TOKEN)`). In a fault file:
    /// `echo_auth = "401"`, `"403"` or `"reason"` (see [`EchoAuth`]). Applies to every refused
    /// login (a bad, expired or revoked credential; an account token on the WHM port) and to
    /// `fail_routes` answers of 401 or 403; a request without the header has nothing to echo.
    /// With `"reason"`, every create call (any route) is also refused, creating nothing, with
    /// the header quoted in the route's failure envelope (`metadata.reason`, or UAPI `errors`
    /// on the cPanel port). Use `fail_routes` to have a valid credential refused.
    #[serde(deserialize_with = "de_echo_auth")]
    pub echo_auth: Option<EchoAuth>,
    /// The next N creates (account or WHM, any route) are performed (the token exists), then
    /// answered with an API-level failure quoting the new secret: an inner UAPI `status: 0` with
    /// `errors: ["Internal error after saving token SECRET: …"]` (through `uapi_cpanel` the
    /// outer `metadata.result` stays 1, as on real servers), or `metadata.result: 0` with that
    /// text in `metadata.reason` for WHM `api_token_create`.
    pub inner_error_after_create: u32,
    /// The next N creates are performed, then answered 200 with the normal, complete answer
    /// plus a `padding` field that makes the body [`OVERSIZED_CREATE_BYTES`] long: more than
    /// tokenfleet's 4 MiB cap, so the client cannot read the secret of a token that exists.
    pub oversized_after_create: u32,
    /// The next N creates are performed, then answered with a well-formed success envelope whose
    /// `token` has an unexpected shape, rotating per host through: a number, an object
    /// (`{"value": SECRET}`), the secret in lower case (wrong charset), and the secret with 8
    /// more characters (wrong length). None of them authenticates as given.
    pub odd_token_after_create: u32,
    /// Seconds added to the server's clock (`-900`: 15 minutes behind) for every `create_time`
    /// it records, and so reports in create answers and token listings. A token keeps the time
    /// recorded when it was made. Expiry checks stay on the real clock. At most ten years either
    /// way.
    #[serde(deserialize_with = "de_clock_offset")]
    pub clock_offset: i64,
    /// What each command of a WHM API 1 `batch` adds to the batch's one `latency` (from config:
    /// `batch_command_latency = "1ms"`, written like `latency`; default 1 ms): a batch of N
    /// commands is answered after `latency + N × batch_command_latency`, so a bench cannot
    /// make N calls free by batching them.
    pub batch_command_latency: BatchCost,
    /// The next N `batch` requests are performed (every command runs, tokens are made), then
    /// the connection is closed unanswered: a batch's answer lost after it ran.
    pub drop_batch_answers: u32,
    /// SSH front ([`crate::SshFront`]): `uapi`/`whmapi1` run but print a Perl warning
    /// (`Use of uninitialized value … line 42.`) on stdout instead of JSON, exit 0, doing
    /// nothing: the CLI's counterpart of `html_login`.
    pub cli_non_json: bool,
    /// SSH front: the login shell's start-up files print a line on standard output before
    /// every command's own (`Welcome to web001!`, an `echo` in root's `.bashrc`): common on
    /// real servers, and what breaks naive parsers of `uapi` output.
    pub cli_banner: bool,
    /// SSH front: `/usr/local/cpanel/bin/uapi` and `whmapi1` do not exist on this host (exit
    /// 127, `sh: 1: /usr/local/cpanel/bin/uapi: not found`): a server that is not cPanel.
    pub cli_missing: bool,
    /// SSH front: `sudo -n -- …` is refused (`sudo: a password is required`, exit 1), as for a
    /// login whose sudo rule needs a password.
    pub sudo_refused: bool,
}

/// The per-command cost of a `batch` ([`Faults::batch_command_latency`]): 1 ms unless set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchCost(pub Duration);

impl Default for BatchCost {
    fn default() -> Self {
        BatchCost(Duration::from_millis(1))
    }
}

impl<'de> Deserialize<'de> for BatchCost {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<BatchCost, D::Error> {
        de_duration(d).map(BatchCost)
    }
}

/// The most commands one `batch` request may carry. Real cpsrvd bounds a request by its URL and
/// form size rather than by a count; 200 `uapi_cpanel` token calls are about 20 KiB of form,
/// well inside those limits, and more than any one host's lane needs at a time. Beyond it the
/// batch is refused as a whole (`metadata.result: 0`), running nothing.
pub const MAX_BATCH_COMMANDS: usize = 200;

/// The body size of an `oversized_after_create` answer: 8 MiB.
pub const OVERSIZED_CREATE_BYTES: usize = 8 << 20;

/// Where an `echo_auth` server quotes the Authorization header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EchoAuth {
    /// `"401"`: a refused login is answered 401 `text/plain`, the header in the body.
    Unauthorized,
    /// `"403"`: a refused login is answered 403 with a cPanel JSON error
    /// (`cpanelresult.error` and `cpanelresult.data.reason` quote the header).
    Forbidden,
    /// `"reason"`: a refused login is answered with the host's `auth_failure_status` and a WHM
    /// API 1 failure envelope whose `metadata.reason` quotes the header; every create is refused
    /// the same way (see [`Faults::echo_auth`]).
    Reason,
}

impl EchoAuth {
    pub fn parse(text: &str) -> Result<EchoAuth, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "401" => Ok(EchoAuth::Unauthorized),
            "403" => Ok(EchoAuth::Forbidden),
            "reason" => Ok(EchoAuth::Reason),
            other => Err(format!(
                "echo_auth “{other}” is not a mode; write \"401\", \"403\" or \"reason\""
            )),
        }
    }
}

/// Ten years, in seconds: the most `clock_offset` may shift the clock.
const MAX_CLOCK_OFFSET: i64 = 10 * 366 * 86400;

fn de_clock_offset<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let v = i64::deserialize(d)?;
    if v.abs() > MAX_CLOCK_OFFSET {
        return Err(serde::de::Error::custom(format!(
            "clock_offset {v} is more than ten years; write seconds, e.g. -900 for 15 minutes behind"
        )));
    }
    Ok(v)
}

fn de_echo_auth<'de, D: Deserializer<'de>>(d: D) -> Result<Option<EchoAuth>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Status(u16),
        Text(String),
    }
    let text = match Raw::deserialize(d)? {
        Raw::Status(n) => n.to_string(),
        Raw::Text(t) => t,
    };
    EchoAuth::parse(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// Parse `"20ms"`, `"1.5s"`, `"2m"`, `"1h"`, `"250us"`, or a bare number of milliseconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num.parse().map_err(|_| {
        format!("“{text}” is not a duration; write e.g. \"20ms\", \"1.5s\" or \"2m\"")
    })?;
    let secs = match unit.trim() {
        "" | "ms" => value / 1000.0,
        "us" | "µs" => value / 1_000_000.0,
        "s" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "“{text}”: unknown unit “{other}”; use us, ms, s, m or h"
            ));
        }
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("“{text}” is not a valid duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Millis(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Millis(ms) => Ok(Duration::from_millis(ms)),
        Raw::Text(t) => parse_duration(&t).map_err(serde::de::Error::custom),
    }
}

/// A fault file: `[default]` applies to every host, `[hosts.NAME]` overrides per host, key by key.
#[derive(Clone, Debug)]
pub struct FaultsFile {
    origin: String,
    default: toml::Table,
    hosts: BTreeMap<String, toml::Table>,
}

impl FaultsFile {
    pub fn load(path: &Path) -> anyhow::Result<FaultsFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read fault file {}", path.display()))?;
        FaultsFile::parse(&text, &path.display().to_string())
    }

    /// Parse fault-file text; `origin` names it in errors. Every table is checked here, so a typo
    /// in a key or a value is reported at once with the table it is in.
    pub fn parse(text: &str, origin: &str) -> anyhow::Result<FaultsFile> {
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
        let default = match table.remove("default") {
            None => toml::Table::new(),
            Some(toml::Value::Table(t)) => t,
            Some(_) => bail!("{origin}: `default` must be a table: write [default]"),
        };
        let mut hosts = BTreeMap::new();
        match table.remove("hosts") {
            None => {}
            Some(toml::Value::Table(t)) => {
                for (name, value) in t {
                    match value {
                        toml::Value::Table(t) => {
                            hosts.insert(name, t);
                        }
                        _ => {
                            bail!("{origin}: `hosts.{name}` must be a table: write [hosts.{name}]")
                        }
                    }
                }
            }
            Some(_) => bail!("{origin}: `hosts` must hold tables: write [hosts.NAME]"),
        }
        if let Some(key) = table.keys().next() {
            bail!(
                "{origin}: unknown key `{key}`; only [default] and [hosts.NAME] tables are allowed"
            );
        }
        let file = FaultsFile {
            origin: origin.to_string(),
            default,
            hosts,
        };
        Faults::deserialize(file.default.clone())
            .map_err(|e| anyhow::anyhow!("{origin}: [default]: {e}"))?;
        for name in file.hosts.keys() {
            file.for_host(name)?;
        }
        Ok(file)
    }

    /// A fault file with no tables (every host healthy), to build on with [`Self::base_latency`].
    pub fn empty(origin: &str) -> FaultsFile {
        FaultsFile {
            origin: origin.to_string(),
            default: toml::Table::new(),
            hosts: BTreeMap::new(),
        }
    }

    /// Use this latency and jitter for every host where the file sets none (command-line flags
    /// under a file).
    pub fn base_latency(&mut self, latency: Duration, jitter: Duration) {
        for (key, d) in [("latency", latency), ("jitter", jitter)] {
            self.default
                .entry(key)
                .or_insert_with(|| toml::Value::String(format!("{}us", d.as_micros())));
        }
    }

    pub fn host_names(&self) -> impl Iterator<Item = &str> {
        self.hosts.keys().map(String::as_str)
    }

    /// The faults of one host: `[default]` overlaid with `[hosts.NAME]`.
    pub fn for_host(&self, name: &str) -> anyhow::Result<Faults> {
        let mut merged = self.default.clone();
        if let Some(t) = self.hosts.get(name) {
            for (k, v) in t {
                merged.insert(k.clone(), v.clone());
            }
        }
        Faults::deserialize(merged)
            .map_err(|e| anyhow::anyhow!("{}: [hosts.{name}]: {e}", self.origin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("20ms").unwrap(), Duration::from_millis(20));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_millis(7));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3 parsecs").is_err());
    }

    #[test]
    fn fault_file_merges_default_and_host() {
        let f = FaultsFile::parse(
            "[default]\nlatency = \"20ms\"\n[hosts.web003]\nerror_503_rate = 0.3\n[hosts.web007]\ndown = true\nlatency = 5\n",
            "t.toml",
        )
        .unwrap();
        let a = f.for_host("web001").unwrap();
        assert_eq!(a.latency, Duration::from_millis(20));
        assert!(!a.down);
        let b = f.for_host("web003").unwrap();
        assert_eq!(b.latency, Duration::from_millis(20));
        assert_eq!(b.error_503_rate, 0.3);
        let c = f.for_host("web007").unwrap();
        assert!(c.down);
        assert_eq!(c.latency, Duration::from_millis(5));
        let mut g = f.clone();
        g.base_latency(Duration::from_millis(50), Duration::from_millis(3));
        assert_eq!(
            g.for_host("web001").unwrap().latency,
            Duration::from_millis(20)
        );
        assert_eq!(
            g.for_host("web001").unwrap().jitter,
            Duration::from_millis(3)
        );
        let mut e = FaultsFile::empty("flags");
        e.base_latency(Duration::from_micros(1500), Duration::ZERO);
        assert_eq!(
            e.for_host("x").unwrap().latency,
            Duration::from_micros(1500)
        );
    }

    #[test]
    fn fault_file_rejects_typos() {
        let e = FaultsFile::parse("[hosts.web1]\nlatencyy = \"1ms\"\n", "t.toml").unwrap_err();
        assert!(e.to_string().contains("latencyy"), "{e}");
        assert!(e.to_string().contains("hosts.web1"), "{e}");
        let e = FaultsFile::parse("[default]\nlatency = \"soon\"\n", "t.toml").unwrap_err();
        assert!(e.to_string().contains("soon"), "{e}");
        let mut spec = FleetSpec::uniform(2, 1);
        let f = FaultsFile::parse("[hosts.web009]\ndown = true\n", "t.toml").unwrap();
        assert!(spec.apply_faults(&f).is_err());
    }

    #[test]
    fn uniform_names_are_unique_and_short() {
        let spec = FleetSpec::uniform(3, 2);
        let names: Vec<_> = spec
            .hosts
            .iter()
            .flat_map(|h| h.accounts.iter().map(|a| a.user.clone()))
            .collect();
        assert_eq!(names[0], "u001a0001");
        assert_eq!(names[5], "u003a0002");
        let set: std::collections::BTreeSet<_> = names.iter().collect();
        assert_eq!(set.len(), 6);
        let h = HostSpec::new("Web-1.example").with_accounts(2);
        assert_eq!(h.accounts[1].user, "web1exampla0002");
        assert!(h.accounts.iter().all(|a| a.user.len() <= 16));
    }

    proptest::proptest! {
        #[test]
        fn any_millis_round_trip(ms in 0u64..10_000_000) {
            proptest::prop_assert_eq!(parse_duration(&format!("{ms}ms")).unwrap(), Duration::from_millis(ms));
            proptest::prop_assert_eq!(parse_duration(&ms.to_string()).unwrap(), Duration::from_millis(ms));
        }

        #[test]
        fn any_text_parses_or_errors_without_panicking(t in "\\PC{0,12}") {
            let _ = parse_duration(&t);
        }
    }
}
