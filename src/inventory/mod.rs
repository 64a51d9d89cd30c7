//! Why this module exists: the inventory is the only input that names servers and credentials,
//! so it is parsed (CSV or TOML) into validated [`Host`] values in full, with every problem
//! reported at once (file, line or key, field, fix), before a single request is sent. It knows
//! nothing of HTTP or output.
//! See docs/DESIGN.md §2.

use crate::error::{InputError, Problem};
pub use crate::trust::{Pin, Tls};
use std::fmt;
use std::path::{Path, PathBuf};

/// How tokenfleet reaches an account's tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    /// A root or reseller WHM token acts for each account through `uapi_cpanel` (port 2087).
    Whm,
    /// Each account's own credential, straight to UAPI on the cPanel port (2083).
    Cpanel,
    /// The system OpenSSH client runs `uapi --user` and `whmapi1` on the server as root: the
    /// SSH key is the credential (see [`Ssh`]).
    Ssh,
}

/// How `api = "ssh"` logs in and trusts the server: the SSH analogue of [`Tls`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ssh {
    /// `ssh_user`; `None`: root.
    pub user: Option<String>,
    /// `ssh_port`; `None`: 22 (or what the user's ssh config says).
    pub port: Option<u16>,
    /// `ssh_identity`: a private key file; `None`: the agent and the user's ssh config.
    pub identity: Option<PathBuf>,
    /// `ssh_known_hosts`: the only known_hosts file trusted for this host.
    pub known_hosts: Option<PathBuf>,
    /// `ssh_host_key`: the only host key trusted, as `ssh-keygen -lf` prints it (`SHA256:…`).
    pub host_key: Option<String>,
    /// `ssh_insecure`: any host key is accepted (warned on every run).
    pub insecure: bool,
}

impl Ssh {
    /// The login user (`ssh_user`, default root).
    pub fn login(&self) -> &str {
        self.user.as_deref().unwrap_or("root")
    }

    /// What the login is, for a journal's `refused` record: the user and the key file (its
    /// path, size and modification time: tokenfleet never reads a private key), so a resume can
    /// tell whether it changed since the server refused it.
    pub fn login_tag(&self, salt: &str) -> String {
        let key = match &self.identity {
            Some(path) => {
                let meta = std::fs::metadata(path).ok();
                let stamp = meta
                    .as_ref()
                    .and_then(|m| m.modified().ok())
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                format!("{} {} {stamp}", path.display(), meta.map_or(0, |m| m.len()))
            }
            None => "agent".to_string(),
        };
        crate::secret::Secret::new(format!("ssh\0{}\0{key}", self.login())).tag(salt)
    }

    /// The login as the journal and messages name it.
    pub fn describe(&self) -> String {
        match &self.identity {
            Some(p) => format!("SSH login {} with {}", self.login(), p.display()),
            None => format!("SSH login {} (agent)", self.login()),
        }
    }
}

/// `SHA256:` and 43 characters of unpadded base64: an OpenSSH host key fingerprint.
pub fn valid_ssh_fingerprint(v: &str) -> bool {
    v.strip_prefix("SHA256:").is_some_and(|b| {
        b.len() == 43
            && b.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
    })
}

/// What kind of credential a `credential` reference yields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthKind {
    Token,
    Password,
}

/// Where a credential comes from. Literal secrets are refused by the parser.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CredentialRef {
    /// `env:NAME`
    Env(String),
    /// `file:PATH`, already resolved against the inventory's folder.
    File(PathBuf),
    /// `prompt`: asked on the terminal before the first request.
    Prompt,
}

impl fmt::Display for CredentialRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialRef::Env(name) => write!(f, "env:{name}"),
            CredentialRef::File(path) => write!(f, "file:{}", path.display()),
            CredentialRef::Prompt => f.write_str("prompt"),
        }
    }
}

/// One account named in the inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSpec {
    pub user: String,
    /// The account's own credential, for `api = "cpanel"`. Falls back to the host's.
    pub credential: Option<CredentialRef>,
    /// Where the account is written (`inventory.csv:9`, `inventory.toml:32 (hosts[1] web2)`):
    /// problems with its own credential point here.
    pub origin: String,
}

/// Which accounts of a host are targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accounts {
    /// `"*"`: every account on the server, discovered with WHM `listaccts` at run time.
    All,
    Listed(Vec<AccountSpec>),
}

/// One server, fully validated, with defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Unique label used in `--limit`, reports and the handoff.
    pub name: String,
    /// DNS name or IP to connect to (defaults to `name`).
    pub address: String,
    pub groups: Vec<String>,
    pub api: Api,
    pub whm_port: u16,
    pub cpanel_port: u16,
    pub whm_user: String,
    /// The host-level credential: the WHM token/password of `whm_user` (api = "whm" or
    /// scope whm), or the default account credential for api = "cpanel".
    pub credential: Option<CredentialRef>,
    pub auth: AuthKind,
    pub tls: Tls,
    /// `api = "ssh"`: the login and host-key trust.
    pub ssh: Ssh,
    /// Requests in flight to this server at most; `None` = the `--per-host` option.
    pub per_host: Option<usize>,
    /// Token-name globs that `audit` classes `system` and `sweep` never revokes: the
    /// `[defaults]` list and the host's own, together.
    pub protect: Vec<glob::Pattern>,
    /// `api = "cpanel"` with token logins: the name the accounts' own credential tokens carry
    /// (cPanel cannot say which token a login used), so `audit` classes it `self` and `sweep`
    /// may work on those accounts.
    pub credential_name: Option<String>,
    pub accounts: Accounts,
    /// Where the host was defined, for messages: `inventory.csv:4` or `inventory.toml: hosts[2]`.
    pub origin: String,
    /// Where each host key that is set was written, when that is not [`Host::origin`] (a CSV
    /// cell on a later row, a `[defaults]` key): see [`Host::at`].
    pub keys_at: Vec<(&'static str, String)>,
}

impl Host {
    /// Where `key`'s value was written (its CSV row, its TOML line in the host or in
    /// `[defaults]`), else where the host is defined: problems with a value point at the value.
    pub fn at(&self, key: &str) -> &str {
        self.keys_at
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(self.origin.as_str(), |(_, at)| at.as_str())
    }
}

#[cfg(test)]
impl Host {
    /// A host for tests: `name` at address `name`, WHM on 2087, cPanel on 2083, root, token
    /// auth, no credential, default TLS, every account.
    pub(crate) fn sample(name: &str) -> Host {
        Host {
            name: name.into(),
            address: name.into(),
            groups: Vec::new(),
            api: Api::Whm,
            whm_port: 2087,
            cpanel_port: 2083,
            whm_user: "root".into(),
            credential: None,
            auth: AuthKind::Token,
            tls: Tls::default(),
            ssh: Ssh::default(),
            per_host: None,
            protect: Vec::new(),
            credential_name: None,
            accounts: Accounts::All,
            origin: "test".into(),
            keys_at: Vec::new(),
        }
    }
}

/// A parsed, validated inventory.
#[derive(Debug, Clone)]
pub struct Inventory {
    pub path: PathBuf,
    /// Hex SHA-256 of the file's bytes (recorded in the journal; resume compares it).
    pub sha256: String,
    pub hosts: Vec<Host>,
    /// The `[sink]` table (TOML only): a secret store the run's new tokens go to, unless `--to`.
    pub sink: Option<SinkTable>,
}

/// An inventory's `[sink]`: `to = "bao+https://…"`, `ca_file`, `token_file` (paths resolved
/// against the inventory's folder). Checked by the sink when the run opens it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkTable {
    pub to: String,
    pub ca_file: Option<PathBuf>,
    pub token_file: Option<PathBuf>,
    /// `fleet.toml:12 (sink)`.
    pub loc: String,
}

impl Api {
    pub fn as_str(self) -> &'static str {
        match self {
            Api::Whm => "whm",
            Api::Cpanel => "cpanel",
            Api::Ssh => "ssh",
        }
    }
}

impl AuthKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthKind::Token => "token",
            AuthKind::Password => "password",
        }
    }
}

impl Accounts {
    /// The listed accounts (empty for `"*"`).
    pub fn listed(&self) -> &[AccountSpec] {
        match self {
            Accounts::All => &[],
            Accounts::Listed(list) => list,
        }
    }
}

/// Inventories larger than this are refused (100,000 accounts in CSV fit in a few MiB).
pub const MAX_INVENTORY_BYTES: u64 = 64 * 1024 * 1024;

/// The keys a host (or `[defaults]`) may set, besides `name` and `accounts`.
pub(crate) const HOST_KEYS: &[&str] = &[
    "address",
    "api",
    "whm_port",
    "cpanel_port",
    "whm_user",
    "credential",
    "auth",
    "tls_ca",
    "tls_pin",
    "tls_insecure",
    "per_host",
    "groups",
    "protect",
    "credential_name",
    "ssh_user",
    "ssh_port",
    "ssh_identity",
    "ssh_known_hosts",
    "ssh_host_key",
    "ssh_insecure",
];

/// A value as written in the file, before its key's rules are applied. CSV cells are `Str`.
#[derive(Debug, Clone)]
pub(crate) enum Raw {
    Str(String),
    Int(i64),
    Bool(bool),
    List(Vec<String>),
    /// Any other TOML type; the payload names it ("a table").
    Other(&'static str),
}

/// One `key = value` as written, with where it was written.
#[derive(Debug, Clone)]
pub(crate) struct RawKey {
    pub key: String,
    pub value: Raw,
    pub loc: String,
}

#[derive(Debug, Clone)]
pub(crate) struct RawAccount {
    pub user: String,
    /// The credential reference as written (parsed and checked by [`validate`]).
    pub credential: Option<String>,
    pub loc: String,
}

#[derive(Debug, Clone)]
pub(crate) enum RawAccounts {
    All,
    Listed(Vec<RawAccount>),
}

#[derive(Debug, Clone)]
pub(crate) struct RawHost {
    pub name: String,
    /// Where the host is defined: used for host-level problems and [`Host::origin`].
    pub loc: String,
    pub keys: Vec<RawKey>,
    pub accounts: Option<(RawAccounts, String)>,
}

/// What a format parser hands to [`validate`]: structure checked, values not yet.
#[derive(Debug, Clone, Default)]
pub(crate) struct RawInventory {
    pub defaults: Vec<RawKey>,
    pub default_accounts: Option<(RawAccounts, String)>,
    pub hosts: Vec<RawHost>,
    /// `[sink]`: (key, value, location) per key, and the table's own location.
    pub sink: Option<RawSink>,
}

/// `[sink]` as parsed: (key, value, location) per key, and the table's own location.
pub(crate) type RawSink = (Vec<(String, String, String)>, String);

/// The `[sink]` table, checked: `to` required, the paths resolved against `base`.
fn sink_of(raw: Option<RawSink>, base: &Path, problems: &mut Vec<Problem>) -> Option<SinkTable> {
    let (keys, loc) = raw?;
    let get = |k: &str| {
        keys.iter()
            .find(|(key, _, _)| key == k)
            .map(|(_, v, _)| v.clone())
    };
    let Some(to) = get("to") else {
        problems.push(
            Problem::new(&loc, "[sink] has no `to`")
                .field("to")
                .hint("to = \"bao+https://vault.example.net:8200/secret/cpanel/{host}/{account}\""),
        );
        return None;
    };
    let path = |k: &str| get(k).map(|v| base.join(v));
    Some(SinkTable {
        to,
        ca_file: path("ca_file"),
        token_file: path("token_file"),
        loc,
    })
}

/// Parse and validate an inventory file; `.csv` or `.toml` by extension.
pub fn load(path: &Path) -> Result<Inventory, InputError> {
    let shown = path.display().to_string();
    let bytes = read_capped(path, MAX_INVENTORY_BYTES).map_err(InputError::one)?;
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase());
    let format = match ext.as_deref() {
        Some("csv") => Format::Csv,
        Some("toml") => Format::Toml,
        _ => {
            return Err(InputError::one(
                Problem::new(&shown, "the inventory must be a .csv or a .toml file")
                    .hint("rename the file to end in .csv (flat form) or .toml (full form)"),
            ));
        }
    };
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let base = if base.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        base
    };
    let mut inv = parse_bytes(&bytes, format, &shown, &base)?;
    inv.path = path.to_path_buf();
    Ok(inv)
}

/// Which inventory syntax a file uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Toml,
}

/// Parse and validate inventory bytes. `file` names the file in messages; relative paths
/// (`file:`, `tls_ca`) resolve against `base`. [`load`] reads the file and calls this.
pub fn parse_bytes(
    bytes: &[u8],
    format: Format,
    file: &str,
    base: &Path,
) -> Result<Inventory, InputError> {
    use sha2::Digest;
    let sha256 = hex(&sha2::Sha256::digest(bytes));
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let line = 1 + bytes[..e.valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count();
            return Err(InputError::one(
                Problem::new(format!("{file}:{line}"), "the file is not UTF-8 text")
                    .hint("save the inventory as UTF-8 (plain text, no binary content)"),
            ));
        }
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return Err(InputError::one(Problem::new(file, "the inventory is empty").hint(match format {
            Format::Csv => "start with a header line such as `host,account,credential`, then one row per account",
            Format::Toml => "add at least one [[hosts]] table with a name (see inventories/example.toml)",
        })));
    }
    let mut problems = Vec::new();
    let raw = match format {
        Format::Csv => self::csv::parse(text, file, &mut problems),
        Format::Toml => self::toml::parse(text, file, &mut problems),
    };
    let sink_raw = raw.sink.clone();
    let hosts = validate(raw, file, base, &mut problems);
    let sink = sink_of(sink_raw, base, &mut problems);
    if !problems.is_empty() {
        return Err(InputError { problems });
    }
    Ok(Inventory {
        path: PathBuf::from(file),
        sha256,
        hosts,
        sink,
    })
}

fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>, Problem> {
    use std::io::Read;
    let shown = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| {
        Problem::new(&shown, format!("cannot open the inventory: {e}"))
            .hint("check the path given to -i/--inventory")
    })?;
    let mut bytes = Vec::new();
    file.take(cap + 1).read_to_end(&mut bytes).map_err(|e| {
        Problem::new(&shown, format!("cannot read the inventory: {e}"))
            .hint("give -i/--inventory a readable .csv or .toml file (not a folder)")
    })?;
    if bytes.len() as u64 > cap {
        return Err(Problem::new(
            &shown,
            format!("the inventory is larger than {} KiB", cap >> 10),
        )
        .hint("split the fleet into several inventories and run once per file"));
    }
    Ok(bytes)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Maps byte offsets to 1-based line numbers in O(log n), so that locating every problem in a
/// 100,000-row inventory stays linear overall.
pub(crate) struct Lines {
    newlines: Vec<usize>,
}

impl Lines {
    pub(crate) fn new(text: &str) -> Lines {
        Lines {
            newlines: text
                .bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i)
                .collect(),
        }
    }

    /// 1-based line of byte `offset`.
    pub(crate) fn line(&self, offset: usize) -> usize {
        1 + self.newlines.partition_point(|n| *n < offset)
    }
}

/// A value quoted for a message, unless it could be a secret put in the wrong place: values
/// longer than 20 characters are described, never echoed.
pub(crate) fn show(value: &str) -> String {
    let n = value.chars().count();
    if n <= 20 && !value.chars().any(char::is_control) {
        format!("\"{value}\"")
    } else {
        format!("a {n}-character value")
    }
}

/// Levenshtein distance, for "did you mean" hints.
pub(crate) fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest candidate to a mistyped key, if it is close enough to be a typo.
pub(crate) fn did_you_mean<'a>(key: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let key = key.to_ascii_lowercase();
    let limit = (key.chars().count() / 3).max(2);
    candidates
        .iter()
        .map(|c| (distance(&key, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// A problem for an unknown key or column, with a hint naming the closest valid one.
pub(crate) fn unknown_key(loc: &str, key: &str, what: &str, candidates: &[&str]) -> Problem {
    let p = Problem::new(loc, format!("unknown {what}")).field(key);
    match did_you_mean(key, candidates) {
        Some(c) => p.hint(format!("did you mean \"{c}\"?")),
        None => p.hint(format!("valid {what}s: {}", candidates.join(", "))),
    }
}

/// `^[A-Za-z0-9._-]+$`: host labels used in `--limit`, reports and the handoff.
pub fn valid_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// cPanel user names: `^[a-z0-9][a-z0-9_-]{0,31}$` (cPanel itself allows 16, resellers' older
/// systems fewer; 32 leaves room without accepting nonsense).
pub fn valid_user_name(user: &str) -> bool {
    let b = user.as_bytes();
    !b.is_empty()
        && b.len() <= 32
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
}

/// Host settings from one source (`[defaults]` or one host), typed; `None` = not set there.
#[derive(Debug, Clone, Default)]
struct Settings {
    address: Option<String>,
    groups: Option<Vec<String>>,
    api: Option<Api>,
    whm_port: Option<u16>,
    cpanel_port: Option<u16>,
    whm_user: Option<String>,
    credential: Option<CredentialRef>,
    auth: Option<AuthKind>,
    tls_ca: Option<PathBuf>,
    tls_pin: Option<Pin>,
    tls_insecure: Option<bool>,
    per_host: Option<usize>,
    protect: Option<Vec<glob::Pattern>>,
    credential_name: Option<String>,
    ssh_user: Option<String>,
    ssh_port: Option<u16>,
    ssh_identity: Option<PathBuf>,
    ssh_known_hosts: Option<PathBuf>,
    ssh_host_key: Option<String>,
    ssh_insecure: Option<bool>,
    /// Where each key set here was written.
    at: Vec<(&'static str, String)>,
}

impl Settings {
    fn or(self, d: &Settings) -> Settings {
        let mut at = self.at;
        for (k, loc) in &d.at {
            if !at.iter().any(|(mine, _)| mine == k) {
                at.push((k, loc.clone()));
            }
        }
        Settings {
            at,
            address: self.address.or_else(|| d.address.clone()),
            groups: self.groups.or_else(|| d.groups.clone()),
            api: self.api.or(d.api),
            whm_port: self.whm_port.or(d.whm_port),
            cpanel_port: self.cpanel_port.or(d.cpanel_port),
            whm_user: self.whm_user.or_else(|| d.whm_user.clone()),
            credential: self.credential.or_else(|| d.credential.clone()),
            auth: self.auth.or(d.auth),
            tls_ca: self.tls_ca.or_else(|| d.tls_ca.clone()),
            tls_pin: self.tls_pin.or(d.tls_pin),
            tls_insecure: self.tls_insecure.or(d.tls_insecure),
            per_host: self.per_host.or(d.per_host),
            credential_name: self.credential_name.or_else(|| d.credential_name.clone()),
            ssh_user: self.ssh_user.or_else(|| d.ssh_user.clone()),
            ssh_port: self.ssh_port.or(d.ssh_port),
            ssh_identity: self.ssh_identity.or_else(|| d.ssh_identity.clone()),
            ssh_known_hosts: self.ssh_known_hosts.or_else(|| d.ssh_known_hosts.clone()),
            ssh_host_key: self.ssh_host_key.or_else(|| d.ssh_host_key.clone()),
            ssh_insecure: self.ssh_insecure.or(d.ssh_insecure),
            // Both lists: a host's own protect adds to the defaults', never drops one.
            protect: match (self.protect, &d.protect) {
                (Some(mut mine), Some(theirs)) => {
                    mine.extend(theirs.iter().cloned());
                    Some(mine)
                }
                (mine, theirs) => mine.or_else(|| theirs.clone()),
            },
        }
    }
}

fn expect_str<'a>(k: &'a RawKey, problems: &mut Vec<Problem>) -> Option<&'a str> {
    match &k.value {
        Raw::Str(s) => Some(s.trim()),
        other => {
            problems.push(type_problem(k, "a string", other));
            None
        }
    }
}

fn type_name(raw: &Raw) -> &'static str {
    match raw {
        Raw::Str(_) => "a string",
        Raw::Int(_) => "an integer",
        Raw::Bool(_) => "a boolean",
        Raw::List(_) => "a list",
        Raw::Other(t) => t,
    }
}

fn type_problem(k: &RawKey, want: &str, got: &Raw) -> Problem {
    Problem::new(&k.loc, format!("expected {want}, found {}", type_name(got)))
        .field(&k.key)
        .hint(type_hint(&k.key, want))
}

/// How to write a value of the expected type, with an example for the key.
fn type_hint(key: &str, want: &str) -> String {
    let example = match key {
        "whm_port" => "whm_port = 2087",
        "cpanel_port" => "cpanel_port = 2083",
        "per_host" => "per_host = 4",
        "tls_insecure" => "tls_insecure = false",
        "ssh_port" => "ssh_port = 22",
        "ssh_insecure" => "ssh_insecure = false",
        "groups" => "groups = [\"eu\", \"shared\"]",
        "protect" => "protect = [\"backup-*\", \"TNC-WP-TOOLBOX\"]",
        _ => return format!("write {key} as {want}"),
    };
    format!("write {key} as {want}, e.g. {example} (a blank CSV cell inherits)")
}

/// A TOML list of strings, or a CSV cell with `;` between the items.
fn list_of(k: &RawKey, want: &str, problems: &mut Vec<Problem>) -> Option<Vec<String>> {
    match &k.value {
        Raw::List(l) => Some(l.iter().map(|g| g.trim().to_string()).collect()),
        Raw::Str(v) => Some(
            v.split(';')
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .map(String::from)
                .collect(),
        ),
        other => {
            problems.push(type_problem(k, want, other));
            None
        }
    }
}

fn expect_int(k: &RawKey, problems: &mut Vec<Problem>) -> Option<i64> {
    match &k.value {
        Raw::Int(i) => Some(*i),
        Raw::Str(s) => match s.trim().parse::<i64>() {
            Ok(i) => Some(i),
            Err(_) => {
                problems.push(
                    Problem::new(&k.loc, format!("{} is not a whole number", show(s.trim())))
                        .field(&k.key)
                        .hint(type_hint(&k.key, "a whole number")),
                );
                None
            }
        },
        other => {
            problems.push(type_problem(k, "an integer", other));
            None
        }
    }
}

fn apply_key(s: &mut Settings, k: &RawKey, base: &Path, problems: &mut Vec<Problem>) {
    match k.key.as_str() {
        "address" => {
            if let Some(v) = expect_str(k, problems) {
                if v.is_empty() || v.contains(char::is_whitespace) || v.contains('/') {
                    problems.push(
                        Problem::new(&k.loc, format!("{} is not a DNS name or IP address", show(v)))
                            .field("address")
                            .hint("write the bare name or IP, without https:// or a path, e.g. address = \"203.0.113.10\""),
                    );
                } else {
                    s.address = Some(v.to_string());
                }
            }
        }
        "groups" => {
            let Some(list) = list_of(k, "a list of group names", problems) else {
                return;
            };
            let mut ok = true;
            for g in &list {
                if !valid_host_name(g) {
                    ok = false;
                    problems.push(
                        Problem::new(&k.loc, format!("group name {} is not valid", show(g)))
                            .field("groups")
                            .hint("group names use letters, digits, '.', '_' and '-' (separate CSV groups with ';')"),
                    );
                }
            }
            if ok {
                s.groups = Some(list);
            }
        }
        "api" => {
            if let Some(v) = expect_str(k, problems) {
                match v.to_ascii_lowercase().as_str() {
                    "whm" => s.api = Some(Api::Whm),
                    "cpanel" => s.api = Some(Api::Cpanel),
                    "ssh" => s.api = Some(Api::Ssh),
                    _ => problems.push(
                        Problem::new(&k.loc, format!("{} is not an API", show(v)))
                            .field("api")
                            .hint("write api = \"whm\" (a WHM token acts for each account), api = \"cpanel\" (each account's own credential) or api = \"ssh\" (uapi and whmapi1 over SSH as root)"),
                    ),
                }
            }
        }
        "whm_port" | "cpanel_port" | "ssh_port" => {
            if let Some(i) = expect_int(k, problems) {
                match u16::try_from(i) {
                    Ok(p) if p >= 1 => match k.key.as_str() {
                        "whm_port" => s.whm_port = Some(p),
                        "ssh_port" => s.ssh_port = Some(p),
                        _ => s.cpanel_port = Some(p),
                    },
                    _ => problems.push(
                        Problem::new(&k.loc, format!("{i} is not a TCP port"))
                            .field(&k.key)
                            .hint("ports are 1 to 65535; cPanel listens on 2083, WHM on 2087, SSH on 22"),
                    ),
                }
            }
        }
        "whm_user" => {
            if let Some(v) = expect_str(k, problems) {
                if valid_user_name(v) {
                    s.whm_user = Some(v.to_string());
                } else {
                    problems.push(
                        Problem::new(&k.loc, format!("{} is not a valid user name", show(v)))
                            .field("whm_user")
                            .hint("write root or a reseller's user name (lowercase letters, digits, '_', '-')"),
                    );
                }
            }
        }
        "credential" => {
            if let Some(v) = expect_str(k, problems) {
                match credential::parse_ref(v, base) {
                    Ok(c) => s.credential = Some(c),
                    Err((msg, hint)) => {
                        problems.push(Problem::new(&k.loc, msg).field("credential").hint(hint))
                    }
                }
            }
        }
        "auth" => {
            if let Some(v) = expect_str(k, problems) {
                match v.to_ascii_lowercase().as_str() {
                    "token" => s.auth = Some(AuthKind::Token),
                    "password" => s.auth = Some(AuthKind::Password),
                    _ => problems.push(
                        Problem::new(&k.loc, format!("{} is not an auth kind", show(v)))
                            .field("auth")
                            .hint("write auth = \"token\" (an API token) or auth = \"password\""),
                    ),
                }
            }
        }
        "tls_ca" => {
            if let Some(v) = expect_str(k, problems) {
                if v.is_empty() {
                    problems.push(Problem::new(&k.loc, "the CA path is empty").field("tls_ca"));
                    return;
                }
                let path = base.join(v);
                if path.is_file() {
                    s.tls_ca = Some(path);
                } else {
                    problems.push(
                        Problem::new(&k.loc, format!("CA file {} does not exist", path.display()))
                            .field("tls_ca")
                            .hint("give a PEM file; relative paths are relative to the inventory's folder"),
                    );
                }
            }
        }
        "tls_pin" => {
            if let Some(v) = expect_str(k, problems) {
                match v.parse::<Pin>() {
                    Ok(p) => s.tls_pin = Some(p),
                    Err(_) => problems.push(
                        Problem::new(&k.loc, format!("{} is not a SHA-256 fingerprint", show(v)))
                            .field("tls_pin")
                            .hint("write 64 hex digits (colons optional), e.g. the value `tokenfleet check` prints"),
                    ),
                }
            }
        }
        "ssh_user" => {
            if let Some(v) = expect_str(k, problems) {
                if valid_user_name(v) {
                    s.ssh_user = Some(v.to_string());
                } else {
                    problems.push(
                        Problem::new(&k.loc, format!("{} is not a valid user name", show(v)))
                            .field("ssh_user")
                            .hint("write the login user, e.g. ssh_user = \"root\" (uapi --user needs root)"),
                    );
                }
            }
        }
        "ssh_identity" | "ssh_known_hosts" => {
            if let Some(v) = expect_str(k, problems) {
                let path = base.join(v);
                if !v.is_empty() && path.is_file() {
                    if k.key == "ssh_identity" {
                        s.ssh_identity = Some(path);
                    } else {
                        s.ssh_known_hosts = Some(path);
                    }
                } else {
                    let what = if k.key == "ssh_identity" {
                        "give the private key file ssh -i would take (or leave it out to use the agent)"
                    } else {
                        "give a known_hosts file as ssh writes it; `ssh-keyscan -p PORT HOST` prints its lines, to check against the server's console"
                    };
                    problems.push(
                        Problem::new(&k.loc, format!("file {} does not exist", path.display()))
                            .field(&k.key)
                            .hint(format!(
                                "{what}; relative paths are relative to the inventory's folder"
                            )),
                    );
                }
            }
        }
        "ssh_host_key" => {
            if let Some(v) = expect_str(k, problems) {
                if valid_ssh_fingerprint(v) {
                    s.ssh_host_key = Some(v.to_string());
                } else {
                    problems.push(
                        Problem::new(&k.loc, format!("{} is not an SSH host key fingerprint", show(v)))
                            .field("ssh_host_key")
                            .hint("write it as `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` prints it on the server, e.g. ssh_host_key = \"SHA256:…\" (43 characters after SHA256:), or the value `tokenfleet check` prints"),
                    );
                }
            }
        }
        "tls_insecure" | "ssh_insecure" => {
            let b = match &k.value {
                Raw::Bool(b) => Some(*b),
                Raw::Str(v) => match v.trim().to_ascii_lowercase().as_str() {
                    "true" | "yes" | "1" => Some(true),
                    "false" | "no" | "0" => Some(false),
                    other => {
                        problems.push(
                            Problem::new(&k.loc, format!("{} is not true or false", show(other)))
                                .field(&k.key)
                                .hint("write true or false"),
                        );
                        None
                    }
                },
                other => {
                    problems.push(type_problem(k, "true or false", other));
                    None
                }
            };
            if k.key == "ssh_insecure" {
                s.ssh_insecure = b.or(s.ssh_insecure);
            } else {
                s.tls_insecure = b.or(s.tls_insecure);
            }
        }
        "credential_name" => {
            if let Some(v) = expect_str(k, problems) {
                let ok = (1..=50).contains(&v.len())
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if ok {
                    s.credential_name = Some(v.to_string());
                } else {
                    problems.push(
                        Problem::new(&k.loc, format!("{} is not a token name", show(v)))
                            .field("credential_name")
                            .hint("the name of the accounts' own credential tokens, 1-50 of A-Z a-z 0-9 _ -, as cPanel lists it"),
                    );
                }
            }
        }
        "protect" => {
            let Some(list) = list_of(k, "a list of token-name globs", problems) else {
                return;
            };
            let mut globs = Vec::new();
            for g in &list {
                match glob::Pattern::new(g) {
                    Ok(p) => globs.push(p),
                    Err(e) => problems.push(
                        Problem::new(&k.loc, format!("{} is not a glob: {e}", show(g)))
                            .field("protect")
                            .hint("token-name globs such as \"backup-*\" (separate CSV globs with ';')"),
                    ),
                }
            }
            s.protect = Some(globs);
        }
        "per_host" => {
            if let Some(i) = expect_int(k, problems) {
                if (1..=1024).contains(&i) {
                    s.per_host = Some(i as usize);
                } else {
                    problems.push(
                        Problem::new(&k.loc, format!("{i} requests in flight is not possible"))
                            .field("per_host")
                            .hint("per_host is 1 to 1024; a few (the default is 4) is polite to a cPanel server"),
                    );
                }
            }
        }
        other => {
            // Parsers filter unknown keys; this is a safety net, not a path users reach.
            problems.push(unknown_key(&k.loc, other, "key", HOST_KEYS));
        }
    }
}

/// The cross-key rules of an `api = "ssh"` host.
fn ssh_rules(loc: &str, s: &Settings, ssh: &Ssh, problems: &mut Vec<Problem>) {
    let at = |key: &str| {
        s.at.iter()
            .find(|(k, _)| *k == key)
            .map_or(loc.to_string(), |(_, l)| l.clone())
    };
    if let Some(user) = s.whm_user.as_deref().filter(|u| *u != "root") {
        problems.push(
            Problem::new(at("whm_user"), format!("whm_user = {} with api = \"ssh\": whmapi1 on the server runs as root, so the WHM tokens it lists and makes are root's", show(user)))
                .field("whm_user")
                .hint("remove whm_user for SSH hosts (root's WHM tokens), or reach this reseller's own WHM tokens with api = \"whm\" and its credential"),
        );
    }
    if ssh.insecure && (ssh.host_key.is_some() || ssh.known_hosts.is_some()) {
        problems.push(
            Problem::new(at("ssh_insecure"), "ssh_insecure = true contradicts ssh_host_key / ssh_known_hosts")
                .field("ssh_insecure")
                .hint("keep ssh_host_key or ssh_known_hosts (they verify the server) and remove ssh_insecure"),
        );
    }
    if ssh.host_key.is_some() && ssh.known_hosts.is_some() {
        problems.push(
            Problem::new(at("ssh_host_key"), "both ssh_host_key and ssh_known_hosts are set for this host")
                .field("ssh_host_key")
                .hint("give one: ssh_host_key pins the one key; ssh_known_hosts trusts that file's keys for the host"),
        );
    }
}

fn settings_of(keys: &[RawKey], base: &Path, problems: &mut Vec<Problem>) -> Settings {
    let mut s = Settings::default();
    for k in keys {
        apply_key(&mut s, k, base, problems);
        if let Some(key) = HOST_KEYS.iter().find(|h| **h == k.key) {
            s.at.retain(|(k, _)| k != key);
            s.at.push((key, k.loc.clone()));
        }
    }
    s
}

/// Apply each key's rules, defaults and the cross-key rules; push every problem.
pub(crate) fn validate(
    raw: RawInventory,
    file: &str,
    base: &Path,
    problems: &mut Vec<Problem>,
) -> Vec<Host> {
    let defaults = settings_of(&raw.defaults, base, problems);
    if raw.hosts.is_empty() {
        if problems.is_empty() {
            problems
                .push(Problem::new(file, "the inventory names no hosts").hint(
                    "add a [[hosts]] table (TOML) or a row with a host and an account (CSV)",
                ));
        }
        return Vec::new();
    }
    let mut seen: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    let mut hosts = Vec::with_capacity(raw.hosts.len());
    for rh in raw.hosts {
        let before = problems.len();
        if !valid_host_name(&rh.name) {
            problems.push(
                Problem::new(&rh.loc, format!("host name {} is not valid", show(&rh.name)))
                    .field("name")
                    .hint("host names use letters, digits, '.', '_' and '-'; put a URL or odd name in address"),
            );
        }
        if let Some(first) = seen.get(&rh.name) {
            problems.push(
                Problem::new(
                    &rh.loc,
                    format!(
                        "host {} is defined twice (first at {first})",
                        show(&rh.name)
                    ),
                )
                .field("name")
                .hint("host names must be unique: rename one, or merge their accounts"),
            );
        } else {
            seen.insert(rh.name.clone(), rh.loc.clone());
        }
        let s = settings_of(&rh.keys, base, problems).or(&defaults);
        let api = s.api.unwrap_or(Api::Whm);
        let ssh = Ssh {
            user: s.ssh_user.clone(),
            port: s.ssh_port,
            identity: s.ssh_identity.clone(),
            known_hosts: s.ssh_known_hosts.clone(),
            host_key: s.ssh_host_key.clone(),
            insecure: s.ssh_insecure.unwrap_or(false),
        };
        if api == Api::Ssh {
            ssh_rules(&rh.loc, &s, &ssh, problems);
        }
        let tls = Tls {
            ca: s.tls_ca,
            pin: s.tls_pin,
            insecure: s.tls_insecure.unwrap_or(false),
        };
        if tls.insecure && tls.pin.is_some() {
            problems.push(
                Problem::new(
                    &rh.loc,
                    "tls_insecure = true and tls_pin contradict each other",
                )
                .field("tls_insecure")
                .hint("keep tls_pin (it verifies the certificate) and remove tls_insecure"),
            );
        }
        let accounts_src = rh.accounts.as_ref().or(raw.default_accounts.as_ref());
        let mut accounts = Accounts::Listed(Vec::new());
        match accounts_src {
            None => {}
            Some((RawAccounts::All, loc)) => {
                if api == Api::Cpanel {
                    problems.push(
                        Problem::new(loc, "accounts = \"*\" needs api = \"whm\": discovering accounts uses WHM listaccts")
                            .field("accounts")
                            .hint("list the accounts by name, or set api = \"whm\" with a WHM credential"),
                    );
                }
                accounts = Accounts::All;
            }
            Some((RawAccounts::Listed(list), _)) => {
                let mut specs: Vec<AccountSpec> = Vec::with_capacity(list.len());
                let mut users: std::collections::HashMap<&str, &str> =
                    std::collections::HashMap::new();
                for ra in list {
                    if !valid_user_name(&ra.user) {
                        problems.push(
                            Problem::new(&ra.loc, format!("{} is not a cPanel user name", show(&ra.user)))
                                .field("account")
                                .hint("cPanel user names are lowercase letters, digits, '_' and '-', starting with a letter or digit"),
                        );
                    } else if ra.user == "root" {
                        problems.push(
                            Problem::new(&ra.loc, "root is not a cPanel account")
                                .field("account")
                                .hint("to manage root's WHM tokens use --scope whm; list cPanel accounts here"),
                        );
                    }
                    if let Some(first) = users.get(ra.user.as_str()) {
                        problems.push(
                            Problem::new(
                                &ra.loc,
                                format!(
                                    "account {} is listed twice for host {} (first at {first})",
                                    show(&ra.user),
                                    rh.name
                                ),
                            )
                            .field("account")
                            .hint("list each account once per host"),
                        );
                        continue;
                    }
                    users.insert(&ra.user, &ra.loc);
                    let credential = match &ra.credential {
                        None => None,
                        Some(v) => match credential::parse_ref(v.trim(), base) {
                            Ok(c) => Some(c),
                            Err((msg, hint)) => {
                                problems.push(
                                    Problem::new(&ra.loc, msg).field("credential").hint(hint),
                                );
                                None
                            }
                        },
                    };
                    if api == Api::Cpanel
                        && credential.is_none()
                        && ra.credential.is_none()
                        && s.credential.is_none()
                    {
                        problems.push(
                            Problem::new(&ra.loc, format!("api = \"cpanel\" needs a credential for account {}", ra.user))
                                .field("credential")
                                .hint("give the account its own credential (e.g. { user = \"carol\", credential = \"file:secrets/carol.token\" }) or set credential on the host"),
                        );
                    }
                    specs.push(AccountSpec {
                        user: ra.user.clone(),
                        credential,
                        origin: ra.loc.clone(),
                    });
                }
                accounts = Accounts::Listed(specs);
            }
        }
        if problems.len() > before {
            continue;
        }
        hosts.push(Host {
            address: s.address.unwrap_or_else(|| rh.name.clone()),
            name: rh.name,
            groups: s.groups.unwrap_or_default(),
            api,
            whm_port: s.whm_port.unwrap_or(2087),
            cpanel_port: s.cpanel_port.unwrap_or(2083),
            whm_user: s.whm_user.unwrap_or_else(|| "root".to_string()),
            credential: s.credential,
            auth: s.auth.unwrap_or(AuthKind::Token),
            tls,
            ssh,
            per_host: s.per_host,
            protect: s.protect.unwrap_or_default(),
            credential_name: s.credential_name,
            accounts,
            keys_at: s.at.into_iter().filter(|(_, at)| *at != rh.loc).collect(),
            origin: rh.loc,
        });
    }
    hosts
}

pub mod credential;
mod csv;
mod toml;

#[cfg(test)]
mod tests;
