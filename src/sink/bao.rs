//! An OpenBao / Vault KV v2 store as a sink (`--to bao+https://ADDR/MOUNT/PATH_TEMPLATE`, or an
//! inventory `[sink]` table): each new token is written to its own path, write-once.
//!
//! - **When.** As soon as the journal holds a secret (a create), or once the new token is
//!   verified and before the old ones are revoked (a rotate: [`Keep`]), so a consumer that reads
//!   the store never holds only a revoked token. At the end of the run, [`Sink::deliver`] sends
//!   whatever did not get there (for a `resume`: every secret of the run; what the store already
//!   holds is recognised and counted, never written twice).
//! - **Write-once.** A create writes with `cas=0`: a path that holds a secret is never
//!   overwritten, whoever wrote it. A rotate reads the path first and writes a new version with
//!   `cas` = the version it read (KV v2 keeps the old one). A path that already holds this very
//!   secret (a lost answer, a resume) is success. Then `custom_metadata` names the run.
//! - **Strict.** TLS is verified against webpki roots plus the CA file (`ca_file`, `BAO_CACERT`,
//!   `VAULT_CACERT`); there is no insecure mode. The store token (`token_file`, `BAO_TOKEN`,
//!   `VAULT_TOKEN`) is a [`Secret`] in a header marked sensitive. [`BaoStore::open`] checks the
//!   token, the mount and the token's capabilities before any fleet request.
//!
//! The journal seals every secret with age whatever happens here, so a store that is down or
//! refuses a write loses nothing: the run exits 3 and `tokenfleet resume` sends them again.
//! See docs/DESIGN.md §3 and §7, README "Secret stores".

use super::{Delivered, Sink, SinkError};
use crate::error::{InputError, Problem};
use crate::outcome::{Keep, KeepError, Minted, MintedRows};
use crate::secret::Secret;
use crate::transport::{Endpoint, HostTransport, Response, TransportConfig, TransportError};
use crate::trust::Tls;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// OpenBao's and Vault's default API port.
const DEFAULT_PORT: u16 = 8200;
/// The header a Vault-API token goes in.
const TOKEN_HEADER: &str = "X-Vault-Token";
/// A store token with less time to live than this is warned about before the run.
const SHORT_TTL_SECS: u64 = 15 * 60;

/// Where a run's secrets go in a store, as the user wrote it: `--to` and its files, or the
/// inventory's `[sink]` table (paths already resolved against the inventory's folder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSpec {
    /// `bao+https://ADDR[:PORT]/MOUNT/PATH_TEMPLATE` (`vault+https://` too).
    pub to: String,
    /// A PEM CA file the store's certificate chains to (else `BAO_CACERT`, `VAULT_CACERT`).
    pub ca_file: Option<PathBuf>,
    /// A file holding the store token (else `BAO_TOKEN`, `VAULT_TOKEN`).
    pub token_file: Option<PathBuf>,
    /// Where it was given, for problems: `--to`, or `fleet.toml:12 (sink)`.
    pub origin: String,
}

/// What a path template may expand, per token.
#[derive(Debug, Clone, Copy)]
pub struct PathVars<'a> {
    pub host: &'a str,
    pub account: &'a str,
    pub token_name: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    Host,
    Account,
    TokenName,
}

/// `--to` parsed: the store's address and the path template (the mount included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// Host name or IP literal (no brackets).
    pub address: String,
    pub port: u16,
    /// The template after the address, e.g. `secret/cpanel/{host}/{account}`.
    pub template: String,
    parts: Vec<Part>,
}

const PLACEHOLDERS: &str = "{host}, {account}, {token_name}";

impl Destination {
    /// Parse `bao+https://ADDR[:PORT]/PATH_TEMPLATE`: every mistake is a problem at `origin`.
    pub fn parse(to: &str, origin: &str) -> Result<Destination, Problem> {
        let bad = |msg: String| {
            Problem::new(origin, msg).hint(
                "write --to bao+https://ADDRESS[:PORT]/MOUNT/PATH, e.g. \
                 bao+https://vault.example.net:8200/secret/cpanel/{host}/{account}",
            )
        };
        let rest = match to.split_once("://") {
            Some(("bao+https" | "vault+https", rest)) => rest,
            Some(("bao+http" | "vault+http" | "http", _)) => {
                return Err(Problem::new(
                    origin,
                    "the store must be reached over HTTPS: tokens are never sent in the clear",
                )
                .hint("use bao+https://…; for a dev server, `bao server -dev -dev-tls` and its CA file (BAO_CACERT)"));
            }
            Some((scheme, _)) => {
                return Err(bad(format!(
                    "unknown store scheme '{scheme}': tokenfleet writes to OpenBao or Vault KV v2 (bao+https, vault+https)"
                )));
            }
            None => return Err(bad(format!("'{to}' is not a store URL"))),
        };
        let (authority, template) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.contains('@') {
            return Err(Problem::new(origin, "the store URL must not hold a user or token")
                .hint("give the token in BAO_TOKEN / VAULT_TOKEN or a token file, never on the command line"));
        }
        let (address, port) = split_authority(authority).ok_or_else(|| {
            bad(format!(
                "'{authority}' is not an address with an optional port"
            ))
        })?;
        if template.contains('?') || template.contains('#') {
            return Err(bad("the store URL takes no query or fragment".into()));
        }
        let template = template.trim_end_matches('/').to_string();
        let parts = parse_template(&template).map_err(|m| {
            Problem::new(origin, m).hint(format!(
                "a path is made of letters, digits, '.', '_', '-' and '/', with {PLACEHOLDERS}"
            ))
        })?;
        if !matches!(parts.first(), Some(Part::Lit(l)) if !l.starts_with('/') && l.len() > 1 && l.contains('/'))
        {
            return Err(bad(format!(
                "'{template}' does not start with the KV v2 mount (e.g. secret/)"
            )));
        }
        Ok(Destination {
            address,
            port,
            template,
            parts,
        })
    }

    /// The literal start of the template (the mount and any fixed folders), up to its last `/`.
    fn prefix(&self) -> &str {
        match self.parts.first() {
            Some(Part::Lit(l)) => match l.rfind('/') {
                Some(i) => &l[..i],
                None => l,
            },
            _ => "",
        }
    }

    pub fn uses(&self, what: &str) -> bool {
        self.parts.iter().any(|p| {
            matches!(
                (p, what),
                (Part::Host, "host") | (Part::Account, "account") | (Part::TokenName, "token_name")
            )
        })
    }

    /// The full path (mount included) of one token; every value is percent-encoded, so no
    /// value can add a folder or climb out of one.
    pub fn render(&self, v: &PathVars<'_>) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(l) => out.push_str(l),
                Part::Host => out.push_str(&encode(v.host)),
                Part::Account => out.push_str(&encode(v.account)),
                Part::TokenName => out.push_str(&encode(v.token_name)),
            }
        }
        out
    }
}

fn split_authority(a: &str) -> Option<(String, u16)> {
    if a.is_empty() {
        return None;
    }
    if let Some(rest) = a.strip_prefix('[') {
        let (addr, after) = rest.split_once(']')?;
        let port = match after {
            "" => DEFAULT_PORT,
            p => p.strip_prefix(':')?.parse().ok().filter(|p| *p > 0)?,
        };
        return Some((addr.to_string(), port));
    }
    let (addr, port) = match a.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok().filter(|p| *p > 0)?),
        None => (a, DEFAULT_PORT),
    };
    let ok = !addr.is_empty()
        && addr
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    ok.then(|| (addr.to_string(), port))
}

fn parse_template(t: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut rest = t;
    while let Some(c) = rest.chars().next() {
        if c == '{' {
            let end = rest
                .find('}')
                .ok_or_else(|| format!("'{t}' has a '{{' without its '}}'"))?;
            let part = match &rest[1..end] {
                "host" => Part::Host,
                "account" => Part::Account,
                "token_name" => Part::TokenName,
                other => {
                    return Err(format!(
                        "unknown placeholder {{{other}}} in the store path: it takes {PLACEHOLDERS}"
                    ));
                }
            };
            if !lit.is_empty() {
                parts.push(Part::Lit(std::mem::take(&mut lit)));
            }
            parts.push(part);
            rest = &rest[end + 1..];
            continue;
        }
        if !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/')) {
            return Err(format!("the store path '{t}' holds '{c}'"));
        }
        lit.push(c);
        rest = &rest[c.len_utf8()..];
    }
    if !lit.is_empty() {
        parts.push(Part::Lit(lit));
    }
    // Empty or dot folders would be read differently by the server than they are written here.
    let shape: String = parts
        .iter()
        .map(|p| match p {
            Part::Lit(l) => l.as_str(),
            _ => "x",
        })
        .collect();
    if shape
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(format!(
            "the store path '{t}' has an empty, '.' or '..' folder"
        ));
    }
    Ok(parts)
}

/// Percent-encode everything but `A-Za-z0-9._-` (a value is one path segment).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'_' | b'-')
            || (b == b'.' && s != "." && s != "..")
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.is_empty() {
        out.push_str("%00");
    }
    out
}

/// What the run tells the store about itself.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub run_id: String,
    /// `create` or `rotate` (a rotate writes new versions).
    pub operation: String,
    pub retries: u32,
    pub timeout: Duration,
    /// A rotate's `--revoke`: the stored secret a new version may replace is one of these
    /// tokens (or the new name), never someone else's.
    pub replaces: Option<glob::Pattern>,
    /// A create with `--replace-existing`: a new version over the same-named token's secret.
    pub replace_existing: bool,
}

/// The store of a run: opened (checked) before the first fleet request.
pub struct BaoStore {
    dest: Destination,
    transport: HostTransport,
    token: Secret,
    /// The KV v2 mount, e.g. `secret` (no slashes around it).
    mount: String,
    run: RunInfo,
    /// Tokens (host, account, name) the store holds now, written or recognised by this process.
    kept: Mutex<HashSet<(String, String, String)>>,
    /// The store stopped answering: later writes try once, without retries.
    down: AtomicBool,
    /// What the final delivery could not write, per token: (message, short cause).
    missing: Mutex<HashMap<Key, (String, String)>>,
    /// What the preflight found worth saying before the run (a store token about to expire).
    warnings: Vec<String>,
}

/// A token by (host, account, token name).
pub type Key = (String, String, String);

impl std::fmt::Debug for BaoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BaoStore")
            .field("to", &self.dest.template)
            .finish_non_exhaustive()
    }
}

/// Why one write did not happen.
#[derive(Debug, Clone)]
enum WriteError {
    /// The path holds another secret: never overwritten.
    Held(String),
    /// The store refused or failed (with the short cause).
    Store { message: String, cause: String },
}

impl WriteError {
    fn message(&self) -> String {
        match self {
            WriteError::Held(m) => m.clone(),
            WriteError::Store { message, .. } => message.clone(),
        }
    }
    fn cause(&self) -> String {
        match self {
            WriteError::Held(_) => "the store path holds another secret".into(),
            WriteError::Store { cause, .. } => cause.clone(),
        }
    }
}

/// The store token: the token file, else `BAO_TOKEN`, else `VAULT_TOKEN`.
fn read_token(spec: &StoreSpec) -> Result<Secret, Problem> {
    if let Some(path) = &spec.token_file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Problem::new(
                &spec.origin,
                format!("cannot read the store token file {}: {e}", path.display()),
            )
            .field("token_file")
            .hint("give a readable file holding the token, or set BAO_TOKEN / VAULT_TOKEN")
        })?;
        let text = Secret::new(text);
        let t = text.expose().trim();
        if t.is_empty() {
            return Err(Problem::new(
                &spec.origin,
                format!("the store token file {} is empty", path.display()),
            )
            .field("token_file")
            .hint("write the token into it (bao token create -policy=… -field=token > FILE)"));
        }
        return Ok(Secret::new(t));
    }
    for var in ["BAO_TOKEN", "VAULT_TOKEN"] {
        if let Ok(v) = std::env::var(var) {
            let v = Secret::new(v);
            if !v.expose().trim().is_empty() {
                return Ok(Secret::new(v.expose().trim()));
            }
        }
    }
    Err(Problem::new(&spec.origin, "no store token was given")
        .hint("set BAO_TOKEN (or VAULT_TOKEN), or give a token file (--to-token-file FILE, or token_file in [sink])"))
}

/// The CA file and where it was named: the given one (`ca_file`: `--to-ca` or the `[sink]`
/// key), else `BAO_CACERT`, else `VAULT_CACERT` (none: webpki roots).
fn ca_file(spec: &StoreSpec) -> Option<(PathBuf, &'static str)> {
    if let Some(path) = &spec.ca_file {
        return Some((path.clone(), "ca_file"));
    }
    ["BAO_CACERT", "VAULT_CACERT"].into_iter().find_map(|var| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(|v| (PathBuf::from(v), var))
    })
}

impl BaoStore {
    /// Check everything before the fleet is touched: the URL, the token, the CA, that the store
    /// answers and takes the token, that the mount is KV v2, and that the token may write
    /// `sample` (a path of the plan) — each failure is exit 2 with its fix.
    pub fn open(
        spec: &StoreSpec,
        run: RunInfo,
        sample: &PathVars<'_>,
    ) -> Result<BaoStore, InputError> {
        let dest = Destination::parse(&spec.to, &spec.origin).map_err(InputError::one)?;
        let token = read_token(spec).map_err(InputError::one)?;
        let ca = ca_file(spec);
        let named = ca.as_ref().map_or("ca_file", |(_, by)| *by);
        let endpoint = Endpoint {
            address: dest.address.clone(),
            tls: Tls {
                ca: ca.as_ref().map(|(path, _)| path.clone()),
                pin: None,
                insecure: false,
            },
            origin: spec.origin.clone(),
        };
        let transport = HostTransport::new(
            &endpoint,
            &TransportConfig {
                timeout: run.timeout,
                connect_timeout: run.timeout.min(Duration::from_secs(5)),
                body_cap: 1 << 20,
                pool_size: 8,
            },
        )
        .map_err(|p| {
            // The transport names the fleet's key (tls_ca): name where this CA came from.
            InputError::one(p.field(named).hint(
                "the store's CA file (--to-ca, ca_file in [sink], BAO_CACERT or VAULT_CACERT) must be the PEM CA file of its certificate",
            ))
        })?;
        let mut store = BaoStore {
            dest,
            transport,
            token,
            mount: String::new(),
            run,
            kept: Mutex::new(HashSet::new()),
            down: AtomicBool::new(false),
            missing: Mutex::new(HashMap::new()),
            warnings: Vec::new(),
        };
        store.preflight(spec, sample).map_err(InputError::one)?;
        Ok(store)
    }

    fn preflight(&mut self, spec: &StoreSpec, sample: &PathVars<'_>) -> Result<(), Problem> {
        let shown = self.shown();
        let reached = format!("the store at {shown}");
        let at = |m: String| Problem::new(&spec.origin, m).reached(&reached);
        let answer = self
            .call("/v1/auth/token/lookup-self", None, 1)
            .map_err(|e| {
                at(format!("cannot reach the store at {shown}: {e}")).hint(match e {
                    TransportError::Tls(_) => {
                        "give the store's CA file (--to-ca FILE, ca_file in [sink], or BAO_CACERT)"
                    }
                    _ => "check the address and that the store is up",
                })
            })?;
        match answer.status {
            200 => {
                // A token that runs out mid-run gets the later writes refused (they wait in the
                // journal): said now, while a longer-lived token can still be given.
                let ttl = json_of(&answer)["data"]["ttl"].as_u64().unwrap_or(0);
                if ttl > 0 && ttl < SHORT_TTL_SECS {
                    let left = if ttl >= 120 {
                        format!("{} min", ttl / 60)
                    } else {
                        format!("{ttl} s")
                    };
                    self.warnings.push(format!(
                        "the store token expires in {left} (its ttl): writes after that are refused, and those tokens wait in the journal for a resume with a new store token"
                    ));
                }
            }
            403 => {
                return Err(at(format!(
                    "the store at {shown} refused the token (permission denied)"
                ))
                .hint(
                    "check BAO_TOKEN / VAULT_TOKEN or the token file: it may be wrong or expired",
                ));
            }
            s => {
                return Err(at(format!(
                    "the store at {shown} answered {s} to a token lookup: {}",
                    self.errors_of(&answer)
                ))
                .hint("is it OpenBao or Vault, unsealed?"));
            }
        }
        let prefix = self.dest.prefix().to_string();
        let answer = self
            .call(&format!("/v1/sys/internal/ui/mounts/{prefix}"), None, 1)
            .map_err(|e| at(format!("the store at {shown}: {e}")))?;
        let body = json_of(&answer);
        let data = &body["data"];
        let mount = data["path"].as_str().unwrap_or("").trim_end_matches('/');
        if answer.status != 200 || mount.is_empty() {
            return Err(at(format!(
                "the store at {shown} has no secrets engine at {prefix}: {}",
                self.errors_of(&answer)
            ))
            .hint(
                "start the path with a KV v2 mount (`bao secrets list`; `bao secrets enable -path=secret kv-v2`)",
            ));
        }
        let version = data["options"]["version"].as_str().unwrap_or("1");
        if data["type"].as_str() != Some("kv") || version != "2" {
            return Err(at(format!(
                "{mount}/ at {shown} is not a KV version 2 engine (type {}, version {version}): tokenfleet writes KV v2 with check-and-set",
                data["type"].as_str().unwrap_or("?")
            ))
            .hint(format!("`bao kv enable-versioning {mount}/`, or give a kv-v2 mount")));
        }
        if !self.dest.template.starts_with(&format!("{mount}/")) {
            return Err(at(format!(
                "the mount {mount}/ does not start the path {}",
                self.dest.template
            )));
        }
        // The path is the secret's as `bao kv` names it; KV v2's API parts are added here. A
        // path copied from the API or a policy would land one folder down, where `bao kv get`
        // of the path it shows finds nothing.
        let rest = &self.dest.template[mount.len() + 1..];
        if let Some(part) = ["data/", "metadata/"]
            .into_iter()
            .find(|p| rest.starts_with(p))
        {
            return Err(at(format!(
                "the path {} names KV v2's API folder {part} after the mount {mount}/",
                self.dest.template
            ))
            .hint(format!(
                "give the path as `bao kv put -mount={mount}` takes it, without {part} (tokenfleet adds it): {mount}/{}",
                &rest[part.len()..]
            )));
        }
        self.mount = mount.to_string();
        // The token may write the paths of this run (a sample one: its policy is per path):
        // the secret, and its metadata (custom_metadata is set after each write).
        let path = self.dest.render(sample);
        let data = self.data_path(&path).trim_start_matches("/v1/").to_string();
        let meta = self
            .metadata_path(&path)
            .trim_start_matches("/v1/")
            .to_string();
        let answer = self
            .call(
                "/v1/sys/capabilities-self",
                Some(&json!({ "paths": [data, meta] })),
                1,
            )
            .map_err(|e| at(format!("the store at {shown}: {e}")))?;
        // A policy without the default's `sys/capabilities-self` cannot be asked: the writes
        // themselves will tell (per target), as they would with any other store.
        if answer.status == 403 {
            return Ok(());
        }
        let body = json_of(&answer);
        let caps_of = |key: &str| -> Vec<String> {
            body["data"][key]
                .as_array()
                .or_else(|| body[key].as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        let rotate = self.run.operation == "rotate" || self.run.replace_existing;
        let wants: [(&str, &[&str]); 2] = [
            (
                &data,
                if rotate {
                    &["create", "read", "update"]
                } else {
                    &["create", "read"]
                },
            ),
            (
                &meta,
                if rotate {
                    &["read", "update"]
                } else {
                    &["update"]
                },
            ),
        ];
        for (key, need) in wants {
            let caps = caps_of(key);
            let missing: Vec<&str> = need
                .iter()
                .copied()
                .filter(|c| !caps.iter().any(|h| h == c || h == "root"))
                .collect();
            if answer.status != 200 || !missing.is_empty() {
                return Err(at(format!(
                    "the store token may not {} {key} (its capabilities there: {})",
                    missing.join("/"),
                    if caps.is_empty() { "none".to_string() } else { caps.join(", ") }
                ))
                .hint(format!(
                    "grant its policy path \"{m}/data/…\" {{ capabilities = [{data}] }} and path \"{m}/metadata/…\" {{ capabilities = [{meta}] }}",
                    m = self.mount,
                    data = quoted(wants[0].1),
                    meta = quoted(wants[1].1),
                )));
            }
        }
        Ok(())
    }

    /// `https://ADDR:PORT` for messages.
    fn shown(&self) -> String {
        format!("https://{}:{}", self.transport.url_host(), self.dest.port)
    }

    fn data_path(&self, full: &str) -> String {
        let rest = full
            .strip_prefix(&format!("{}/", self.mount))
            .unwrap_or(full);
        format!("/v1/{}/data/{rest}", self.mount)
    }

    fn metadata_path(&self, full: &str) -> String {
        let rest = full
            .strip_prefix(&format!("{}/", self.mount))
            .unwrap_or(full);
        format!("/v1/{}/metadata/{rest}", self.mount)
    }

    /// One request, retried (with backoff) while nothing came back or the store said 5xx/429:
    /// every write here is safe to send again (check-and-set, and a repeat is recognised).
    fn call(
        &self,
        path: &str,
        body: Option<&Value>,
        tries: u32,
    ) -> Result<Response, TransportError> {
        let mut last = None;
        for n in 0..tries.max(1) {
            if n > 0 {
                std::thread::sleep(Duration::from_millis(200 << (n - 1).min(5)));
            }
            match self
                .transport
                .json(self.dest.port, path, TOKEN_HEADER, &self.token, body)
            {
                Ok(r) if r.status == 429 || r.status >= 500 => last = Some(Ok(r)),
                Ok(r) => return Ok(r),
                Err(e @ TransportError::Request(_)) => return Err(e),
                Err(e) => last = Some(Err(e)),
            }
        }
        last.expect("at least one try")
    }

    fn tries(&self) -> u32 {
        if self.down.load(Ordering::Relaxed) {
            1
        } else {
            self.run.retries + 1
        }
    }

    /// A call whose failure to answer is a store error (and, after its retries, marks the
    /// store down for the rest of the run).
    fn send(&self, path: &str, body: Option<&Value>) -> Result<Response, WriteError> {
        match self.call(path, body, self.tries()) {
            Ok(r) => {
                if r.status < 500 {
                    self.down.store(false, Ordering::Relaxed);
                }
                Ok(r)
            }
            Err(e) => {
                self.down.store(true, Ordering::Relaxed);
                Err(WriteError::Store {
                    message: format!("the store at {} did not answer: {e}", self.shown()),
                    cause: "store unreachable".into(),
                })
            }
        }
    }

    fn refused(&self, what: &str, r: &Response) -> WriteError {
        let cause = match r.status {
            403 => "store permission denied".to_string(),
            s if s >= 500 || s == 429 => "store unavailable".to_string(),
            s => format!("store answered {s}"),
        };
        WriteError::Store {
            message: format!(
                "the store refused {what} ({}): {}",
                r.status,
                self.errors_of(r)
            ),
            cause,
        }
    }

    /// The server's `errors`, short, scrubbed of secrets.
    fn errors_of(&self, r: &Response) -> String {
        let body = json_of(r);
        let text = match body["errors"].as_array() {
            Some(a) if !a.is_empty() => a
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("; "),
            _ => String::from_utf8_lossy(&r.body[..r.body.len().min(200)]).into_owned(),
        };
        // The store token in any form, and anything token-shaped (a store that quotes a value
        // it was sent): the same scrub as every cPanel server's text.
        let text = crate::backend::Redactor::new()
            .credential("", &self.token)
            .redact(&text);
        // One line: the server's multi-error lists come with newlines and tabs.
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let short: String = text.chars().take(300).collect();
        if short.trim().is_empty() {
            "no details".into()
        } else {
            short
        }
    }

    /// What the path holds now: `None` if nothing (or only deleted versions, with their
    /// version number for check-and-set), else its version and whether it is `m`'s secret.
    fn read(&self, path: &str, m: &Minted) -> Result<Current, WriteError> {
        let r = self.send(&self.data_path(path), None)?;
        let body = json_of(&r);
        let version = body["data"]["metadata"]["version"].as_u64().unwrap_or(0);
        match r.status {
            200 => {
                let data = &body["data"]["data"];
                let same = data["token"].as_str() == Some(m.token.token.expose());
                // Whose token it is, when the secret says (tokenfleet's always do).
                let differs = |field: &str, ours: &str| {
                    data[field].as_str().is_some_and(|theirs| theirs != ours)
                };
                Ok(Current {
                    version,
                    live: true,
                    same,
                    name: data["token_name"].as_str().unwrap_or("?").to_string(),
                    other_owner: (differs("host", &m.host) || differs("account", &m.account)).then(
                        || {
                            format!(
                                "{}/{}",
                                data["host"].as_str().unwrap_or("?"),
                                data["account"].as_str().unwrap_or("?")
                            )
                        },
                    ),
                })
            }
            404 => Ok(Current {
                version,
                live: false,
                same: false,
                name: String::new(),
                other_owner: None,
            }),
            _ => Err(self.refused(&format!("to read {path}"), &r)),
        }
    }

    /// Write one token where the template puts it, write-once; `Ok` also when the path already
    /// holds this very secret.
    fn put(&self, m: &Minted) -> Result<(), WriteError> {
        let path = self.path_of(m);
        let rotate = self.run.operation == "rotate";
        let mut cas = 0;
        if rotate || self.run.replace_existing {
            let now = self.read(&path, m)?;
            if now.same {
                return self.annotate(&path, m);
            }
            // A new version pushes the current one into history (and out, on a mount with a
            // small max_versions): only over a token this rotation replaces, of this very
            // host and account (a path an earlier run's template gave another account).
            if now.live
                && let Some(owner) = &now.other_owner
            {
                return Err(WriteError::Held(format!(
                    "{path} holds the secret of token {} of {owner} (version {}), not of {}/{}: never overwritten",
                    now.name, now.version, m.host, m.account
                )));
            }
            let ours = now.name == m.token.name
                || self
                    .run
                    .replaces
                    .as_ref()
                    .is_some_and(|g| g.matches(&now.name));
            if now.live && !ours {
                return Err(WriteError::Held(format!(
                    "{path} holds the secret of token {} (version {}), which this rotation does not replace (--revoke): never overwritten",
                    now.name, now.version
                )));
            }
            cas = now.version;
        }
        let body = json!({
            "options": { "cas": cas },
            "data": {
                "token": m.token.token.expose(),
                "url": m.url,
                "token_name": m.token.name,
                "host": m.host,
                "account": m.account,
                "created_at": crate::time::rfc3339(m.token.create_time),
                "expires_at": m.token.expires_at.map(crate::time::rfc3339).unwrap_or_default(),
            }
        });
        let r = self.send(&self.data_path(&path), Some(&body))?;
        drop(body);
        match r.status {
            200 | 204 => return self.annotate(&path, m),
            400 if self.errors_of(&r).contains("check-and-set") => {}
            _ => return Err(self.refused(&format!("the write of {path}"), &r)),
        }
        // Check-and-set said no: an answer lost on the way (this secret is there) is success;
        // anything else is someone's secret, never overwritten.
        let now = self.read(&path, m)?;
        if now.same {
            return self.annotate(&path, m);
        }
        let what = if now.live {
            let run = self.run_of(&path).unwrap_or_default();
            let by = if run.is_empty() {
                String::new()
            } else {
                format!(" of run {run}")
            };
            format!(
                "{path} already holds another secret (version {}, token {}{by})",
                now.version, now.name
            )
        } else {
            format!(
                "{path} holds deleted versions (up to {}); `bao kv metadata delete` frees it",
                now.version
            )
        };
        let why = if rotate {
            "it changed since this rotate read it; nothing was overwritten".to_string()
        } else {
            "a create never overwrites a stored secret: put {token_name} in the path, or rotate"
                .to_string()
        };
        Err(WriteError::Held(format!("{what}: {why}")))
    }

    /// The run id a path's `custom_metadata` names, if any.
    fn run_of(&self, path: &str) -> Option<String> {
        let r = self.send(&self.metadata_path(path), None).ok()?;
        json_of(&r)["data"]["custom_metadata"]["tokenfleet_run"]
            .as_str()
            .map(str::to_string)
    }

    /// Name the run in the path's `custom_metadata`, and remember the token as kept.
    fn annotate(&self, path: &str, m: &Minted) -> Result<(), WriteError> {
        // Replacing custom_metadata replaces all of it: what others put there is kept (a new
        // path has none; a rotated one is read first).
        let mut custom = serde_json::Map::new();
        if self.run.operation == "rotate" || self.run.replace_existing {
            let r = self.send(&self.metadata_path(path), None)?;
            if r.status == 200
                && let Some(old) = json_of(&r)["data"]["custom_metadata"].as_object()
            {
                custom = old.clone();
            }
        }
        let ours = json!({
            "tokenfleet_run": self.run.run_id,
            "tokenfleet_operation": self.run.operation,
            "host": m.host,
            "account": m.account,
            "token_name": m.token.name,
            // custom_metadata values may not be empty.
            "expires_at": m.token.expires_at.map(crate::time::rfc3339).unwrap_or_else(|| "never".into()),
        });
        if let Value::Object(o) = ours {
            custom.extend(o);
        }
        let meta = json!({ "custom_metadata": custom });
        let r = self.send(&self.metadata_path(path), Some(&meta))?;
        if !matches!(r.status, 200 | 204) {
            return Err(self.refused(
                &format!("the custom_metadata of {path} (the secret itself is stored)"),
                &r,
            ));
        }
        self.kept
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key_of(m));
        Ok(())
    }

    /// The full path (mount included) of a token.
    pub fn path_of(&self, m: &Minted) -> String {
        self.dest.render(&PathVars {
            host: &m.host,
            account: &m.account,
            token_name: &m.token.name,
        })
    }

    fn is_kept(&self, m: &Minted) -> bool {
        self.kept
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&key_of(m))
    }

    /// What the preflight found worth a warning before the run.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// What the preflight found, for `check`.
    pub fn describe(&self) -> String {
        format!(
            "{} answers, takes the token; {}/ is KV v2 and the token may write {}/",
            self.shown(),
            self.mount,
            self.dest.prefix()
        )
    }

    /// The final delivery could not write this token: why (message, short cause).
    pub fn missing(&self, key: &Key) -> Option<(String, String)> {
        self.missing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    /// The store holds this token (written or recognised by this process).
    pub fn holds(&self, key: &Key) -> bool {
        self.kept
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(key)
    }
}

/// `"create", "read"`: capabilities as a policy file writes them.
fn quoted(caps: &[&str]) -> String {
    caps.iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

struct Current {
    version: u64,
    live: bool,
    same: bool,
    name: String,
    /// `host/account` when the secret names another owner than the token being written.
    other_owner: Option<String>,
}

fn key_of(m: &Minted) -> (String, String, String) {
    (m.host.clone(), m.account.clone(), m.token.name.clone())
}

fn json_of(r: &Response) -> Value {
    serde_json::from_slice(&r.body).unwrap_or(Value::Null)
}

impl Keep for BaoStore {
    fn keep(&self, m: &Minted) -> Result<(), KeepError> {
        if self.is_kept(m) {
            return Ok(());
        }
        self.put(m).map_err(|e| KeepError {
            message: e.message(),
            cause: e.cause(),
        })
    }
}

impl Sink for BaoStore {
    fn deliver(&self, minted: &dyn MintedRows) -> Result<Option<Delivered>, SinkError> {
        if minted.count() == 0 {
            return Ok(None);
        }
        let mut failed: Vec<String> = Vec::new();
        let mut unreachable = false;
        let mut untried = 0;
        for m in minted.rows() {
            if self.is_kept(&m) {
                continue;
            }
            let mut missing = self.missing.lock().unwrap_or_else(|p| p.into_inner());
            if unreachable {
                untried += 1;
                missing.insert(
                    key_of(&m),
                    (
                        "not tried: the store stopped answering".into(),
                        "store unreachable".into(),
                    ),
                );
                continue;
            }
            drop(missing);
            if let Err(e) = self.put(&m) {
                if matches!(&e, WriteError::Store { cause, .. } if cause == "store unreachable") {
                    unreachable = true;
                }
                self.missing
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key_of(&m), (e.message(), e.cause()));
                failed.push(format!(
                    "{}/{} {}: {}",
                    m.host,
                    m.account,
                    m.token.name,
                    e.message()
                ));
            }
        }
        let total = minted.count();
        if failed.is_empty() {
            return Ok(Some(Delivered {
                count: total,
                message: format!(
                    "wrote {total} token(s) to the store at {} under {}/ (read one with: bao kv get -mount={} PATH)",
                    self.shown(),
                    self.dest.prefix(),
                    self.mount
                ),
            }));
        }
        let missing = failed.len() + untried;
        let mut text = format!(
            "{missing} of {total} token(s) are not in the store at {}:",
            self.shown()
        );
        for f in failed.iter().take(20) {
            text.push_str("\n    ");
            text.push_str(f);
        }
        if failed.len() > 20 {
            text.push_str(&format!("\n    … and {} more", failed.len() - 20));
        }
        if untried > 0 {
            text.push_str(&format!(
                "\n    {untried} more not tried: the store stopped answering"
            ));
        }
        Err(SinkError(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dest(s: &str) -> Result<Destination, String> {
        Destination::parse(s, "--to").map_err(|p| p.message)
    }

    #[test]
    fn a_store_url_is_parsed_strictly() {
        let d = dest("bao+https://127.0.0.5:18200/secret/cpanel/{host}/{account}").unwrap();
        assert_eq!((d.address.as_str(), d.port), ("127.0.0.5", 18200));
        assert_eq!(d.prefix(), "secret/cpanel");
        assert!(d.uses("host") && d.uses("account") && !d.uses("token_name"));
        let d = dest("vault+https://vault.example.net/kv/{host}/{account}/{token_name}/").unwrap();
        assert_eq!(
            (d.port, d.template.as_str()),
            (8200, "kv/{host}/{account}/{token_name}")
        );
        let d = dest("bao+https://[::1]:8201/secret/{host}").unwrap();
        assert_eq!((d.address.as_str(), d.port), ("::1", 8201));
        for (bad, says) in [
            ("bao+http://127.0.0.1/secret/{host}", "HTTPS"),
            ("http://127.0.0.1/secret/{host}", "HTTPS"),
            ("s3://b/secret/{host}", "unknown store scheme"),
            ("127.0.0.1/secret", "not a store URL"),
            (
                "bao+https://root:x@127.0.0.1/secret/{host}",
                "user or token",
            ),
            ("bao+https://127.0.0.1:0/secret/{host}", "not an address"),
            ("bao+https://127.0.0.1/{host}/x", "mount"),
            ("bao+https://127.0.0.1/secret", "mount"),
            (
                "bao+https://127.0.0.1/secret/{hots}",
                "unknown placeholder {hots}",
            ),
            ("bao+https://127.0.0.1/secret/{host", "without its"),
            ("bao+https://127.0.0.1/secret//{host}", "empty"),
            ("bao+https://127.0.0.1/secret/../{host}", "'..'"),
            ("bao+https://127.0.0.1/secret/a b/{host}", "holds ' '"),
            ("bao+https://127.0.0.1/secret/{host}?x=1", "query"),
        ] {
            let e = dest(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    /// What the store says is cut to one short line, with the store token (in any form) and
    /// anything token-shaped (a cPanel token it was sent) scrubbed.
    #[test]
    fn server_text_never_carries_a_secret() {
        let dest = dest("bao+https://127.0.0.1:8200/secret/{host}/{account}").unwrap();
        let endpoint = Endpoint {
            address: "127.0.0.1".into(),
            tls: Tls::default(),
            origin: "--to".into(),
        };
        let store = BaoStore {
            dest,
            transport: HostTransport::new(&endpoint, &TransportConfig::default()).unwrap(),
            token: Secret::new("hvs.store-token-value"),
            mount: "secret".into(),
            run: RunInfo {
                run_id: "r".into(),
                operation: "create".into(),
                retries: 0,
                timeout: Duration::from_secs(1),
                replaces: None,
                replace_existing: false,
            },
            kept: Mutex::new(HashSet::new()),
            down: AtomicBool::new(false),
            missing: Mutex::new(HashMap::new()),
            warnings: Vec::new(),
        };
        let answer = |body: &str| Response {
            status: 400,
            location: None,
            content_type: None,
            body: body.as_bytes().to_vec(),
        };
        let said = store.errors_of(&answer(
            r#"{"errors":["1 error occurred:\n\t* token hvs.store-token-value may not write","bad value JPQNSRU0DH448UJLGXH7KVJECC5QN9N9"]}"#,
        ));
        assert!(
            !said.contains("store-token-value") && !said.contains("JPQNSRU0DH448UJL"),
            "{said}"
        );
        assert!(!said.contains('\n') && !said.contains('\t'), "{said}");
        assert!(
            said.contains("may not write") && said.contains("[redacted]"),
            "{said}"
        );
        assert_eq!(store.errors_of(&answer("")), "no details");
        assert!(store.errors_of(&answer(&"x".repeat(5000))).len() <= 300);
    }

    #[test]
    fn values_are_one_segment_each() {
        let d = dest("bao+https://h/secret/t/{host}/{account}/{token_name}").unwrap();
        let p = d.render(&PathVars {
            host: "web1.example.net",
            account: "../x",
            token_name: "ci-1",
        });
        assert_eq!(p, "secret/t/web1.example.net/..%2Fx/ci-1");
        let p = d.render(&PathVars {
            host: "..",
            account: ".",
            token_name: "",
        });
        assert_eq!(p, "secret/t/%2E%2E/%2E/%00");
    }

    proptest! {
        /// Whatever the values, the rendered path has exactly the template's folders, none of
        /// them empty, `.` or `..`, and distinct values give distinct paths.
        #[test]
        fn rendering_never_adds_or_climbs_folders(
            host in "\\PC{0,12}", account in "\\PC{0,12}", other in "\\PC{0,12}"
        ) {
            let d = dest("bao+https://h/secret/t/{host}/{account}").unwrap();
            let v = |a: &str| d.render(&PathVars { host: &host, account: a, token_name: "n" });
            let p = v(&account);
            let segs: Vec<&str> = p.split('/').collect();
            prop_assert_eq!(segs.len(), 4);
            prop_assert!(segs.iter().all(|s| !s.is_empty() && *s != "." && *s != ".."));
            prop_assert!(p.chars().all(|c| c.is_ascii_alphanumeric() || "._-/%".contains(c)));
            if other != account {
                prop_assert_ne!(v(&other), p);
            }
        }
    }
}
