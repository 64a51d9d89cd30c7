//! Why this module exists: the run needs a handful of operations on a server (list accounts,
//! list, create and revoke tokens, verify a new token, check a credential) and must not care how
//! they travel. This module states them once as the [`Backend`] trait, typed in and out, with
//! errors that say whether a mutation may have happened ([`ApiError::outcome_unknown`]). Each way
//! of reaching a server is one implementation, registered in [`open`]:
//!
//! - `whm.rs`: `api = "whm"`, a WHM credential acts for every account through `uapi_cpanel`;
//! - `cpanel.rs`: `api = "cpanel"`, each account's own credential on the cPanel port;
//!
//! both over `http.rs` (one call = one HTTPS request on [`crate::transport`]) and `protocol.rs`
//! (cPanel's envelopes and quirks, pure functions, no I/O). See docs/DESIGN.md §7. Server text
//! in an [`ApiError`] has been through `redact.rs` first: no credential of the call and no
//! token-shaped string survives in it.

use crate::inventory::{Api, AuthKind, Host};
pub use crate::outcome::NewToken;
use crate::plan::{TokenChange, TokenPolicy};
use crate::secret::Secret;
use crate::transport::{Endpoint, HostTransport, TransportConfig, TransportError};
use crate::trust::Pin;

mod cpanel;
#[cfg(test)]
pub(crate) mod fake;
mod gate;
mod http;
mod protocol;
mod redact;
mod ssh;
mod whm;

pub use http::{Caller, Http};
pub use protocol::{parse_uapi, parse_uapi_cpanel, parse_whm};
pub use redact::{REDACTED, Redactor};

/// A token as listed by the server (no secret: the server keeps only a hash).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TokenInfo {
    pub name: String,
    pub create_time: Option<i64>,
    /// Unix seconds; `None` = never expires.
    pub expires_at: Option<i64>,
    /// WHM: the ACLs granted (`acls` entries set to 1), sorted; `None`: the listing did not say
    /// (a cPanel token has no ACLs).
    pub acls: Option<Vec<String>>,
    /// WHM: the IP allow-list; empty: any address may use the token.
    pub whitelist_ips: Vec<String>,
    /// cPanel: `has_full_access` as listed; `None`: not said (WHM tokens).
    pub full_access: Option<bool>,
}

impl TokenInfo {
    /// A token known by name and times only.
    pub fn new(name: &str, create_time: Option<i64>, expires_at: Option<i64>) -> TokenInfo {
        TokenInfo {
            name: name.to_string(),
            create_time,
            expires_at,
            ..TokenInfo::default()
        }
    }
}

/// An account as WHM `listaccts` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountInfo {
    pub user: String,
    pub domain: String,
    pub owner: String,
    pub suspended: bool,
}

/// A credential and what kind it is.
#[derive(Debug, Clone, Copy)]
pub struct Cred<'a> {
    pub secret: &'a Secret,
    pub auth: AuthKind,
}

impl<'a> Cred<'a> {
    /// An API token (a new token is always one).
    pub fn token(secret: &'a Secret) -> Cred<'a> {
        Cred {
            secret,
            auth: AuthKind::Token,
        }
    }
}

/// Whose tokens a call is about.
#[derive(Debug, Clone, Copy)]
pub enum Owner<'a> {
    /// A cPanel account. `credential`: the account's own, where the backend uses one
    /// (`api = "cpanel"`; it falls back to the host's); a WHM backend acts with the host's.
    Account {
        user: &'a str,
        credential: Option<Cred<'a>>,
    },
    /// The host's `whm_user` and its own WHM API tokens (`--scope whm`). `credential` replaces
    /// the host's (the calls after a rotation use the new token).
    WhmUser { credential: Option<Cred<'a>> },
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 401/403: the credential was refused. Never retry (cPHulk).
    #[error("authentication refused (HTTP {status}): {message}")]
    Auth { status: u16, message: String },
    /// 401/403 for a credential this host had already accepted `accepted` times: cPHulk started
    /// blocking this IP, or the credential was revoked meanwhile.
    #[error(
        "refused (HTTP {status}) after {accepted} accepted calls: cPHulk may be blocking this IP, or the credential was revoked: {message}"
    )]
    RefusedAfter {
        status: u16,
        accepted: u64,
        message: String,
    },
    /// Not sent: the host's login gate holds it back (this credential, or another one, was
    /// refused on this host in this run; one more failed login would count toward cPHulk).
    #[error("{0}")]
    Withheld(String),
    /// The API answered and said no (inner `status: 0`, `metadata.result: 0`).
    #[error("the server refused: {0}")]
    Rejected(String),
    /// A duplicate token name on create.
    #[error("{0}")]
    Conflict(String),
    /// The answer was not the API's (HTML, non-JSON, redirect, wrong shape).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// An HTTP status other than 2xx/401/403, e.g. 429 or 503.
    #[error("HTTP {status}")]
    Http { status: u16 },
    /// No answer at all.
    #[error("{0}")]
    Transport(TransportError),
    /// SSH: the server's host key is not the one trusted (`ssh_host_key`, `ssh_known_hosts`),
    /// or none is known. Nothing ran on the host. `presented`: the key it showed, when seen.
    #[error("SSH host key not trusted: {message}")]
    HostKey {
        presented: Option<String>,
        message: String,
    },
    /// SSH: the server refused the login (key, user). Never retried: with passwords in the
    /// mix, PAM and cPHulk count failures as for HTTP.
    #[error("SSH login refused: {0}")]
    LoginRefused(String),
    /// The call cannot be made: the plan holds no credential for it. Nothing was sent.
    #[error("{0}")]
    NoCredential(String),
}

impl ApiError {
    /// Worth another try after a backoff: no answer (connect error, timeout, connection lost),
    /// 429, 5xx. A body over the cap would be over it again; a TLS or pin failure says who the
    /// server is, which a retry does not change.
    pub fn is_retryable(&self) -> bool {
        match self {
            ApiError::Http { status } => *status == 429 || (500..600).contains(status),
            ApiError::Transport(
                TransportError::Connect(_)
                | TransportError::Timeout { .. }
                | TransportError::Io { .. },
            ) => true,
            _ => false,
        }
    }

    /// The credential was refused (or its request withheld after a refusal): stop the host.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            ApiError::Auth { .. }
                | ApiError::RefusedAfter { .. }
                | ApiError::Withheld(_)
                | ApiError::LoginRefused(_)
        )
    }

    /// The server itself refused the login (not a call the login gate held back): what the
    /// journal records, so a resume does not send that credential again.
    pub fn refused_by_server(&self) -> bool {
        matches!(
            self,
            ApiError::Auth { .. } | ApiError::RefusedAfter { .. } | ApiError::LoginRefused(_)
        )
    }

    /// The failure is the host's, whatever the target: a refused credential (cPHulk), or a
    /// certificate that is not the one trusted. Nothing more is sent to that host.
    pub fn stops_host(&self) -> bool {
        self.is_refusal()
            || matches!(
                self,
                ApiError::Transport(TransportError::Tls(_) | TransportError::PinMismatch { .. })
                    | ApiError::HostKey { .. }
            )
    }

    /// A mutation that failed this way may have been performed anyway.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            ApiError::Transport(e) => e.maybe_sent(),
            ApiError::Http { status } => (500..600).contains(status),
            _ => false,
        }
    }

    /// The failure says the host is broken, not the target: nothing came back, 429/5xx after
    /// every retry, or an answer that is not the API. A refusal by the API itself (a bad name,
    /// a duplicate) says nothing about the host.
    pub fn host_broken(&self) -> bool {
        matches!(
            self,
            ApiError::Transport(_) | ApiError::Http { .. } | ApiError::Protocol(_)
        )
    }

    /// A short cause for folding failures in the summary ("TLS pin mismatch").
    pub fn cause(&self) -> String {
        match self {
            ApiError::Auth { message, .. } | ApiError::RefusedAfter { message, .. }
                if is_cphulk(message) =>
            {
                "blocked by cPHulk (brute-force protection)".into()
            }
            ApiError::Auth { status, .. } => format!("authentication refused (HTTP {status})"),
            ApiError::RefusedAfter { status, .. } => format!(
                "refused (HTTP {status}) after accepted calls: cPHulk may be blocking this IP"
            ),
            ApiError::Withheld(_) => "not sent: a credential was refused on this host".into(),
            ApiError::Rejected(m) => m.clone(),
            ApiError::Conflict(_) => "token name already exists".into(),
            ApiError::Protocol(m) => m.clone(),
            ApiError::NoCredential(m) => m.clone(),
            ApiError::HostKey { .. } => "SSH host key not trusted".into(),
            ApiError::LoginRefused(_) => "SSH login refused".into(),
            ApiError::Http { status } => format!("HTTP {status}"),
            ApiError::Transport(TransportError::PinMismatch { .. }) => "TLS pin mismatch".into(),
            ApiError::Transport(TransportError::Tls(_)) => "TLS verification failed".into(),
            ApiError::Transport(TransportError::Connect(_)) => "cannot connect".into(),
            ApiError::Transport(TransportError::Timeout { .. }) => "timed out".into(),
            ApiError::Transport(TransportError::Io { .. }) => "connection lost".into(),
            ApiError::Transport(TransportError::BodyTooLarge { .. }) => {
                "response body too large".into()
            }
            ApiError::Transport(TransportError::Request(_)) => "request could not be built".into(),
        }
    }

    /// The SSH host key the server presented, when the call failed on it.
    pub fn presented_host_key(&self) -> Option<&str> {
        match self {
            ApiError::HostKey { presented, .. } => presented.as_deref(),
            _ => None,
        }
    }

    /// The certificate the server presented, when the call failed on a pin mismatch.
    pub fn presented_pin(&self) -> Option<Pin> {
        match self {
            ApiError::Transport(TransportError::PinMismatch { got, .. }) => Some(*got),
            _ => None,
        }
    }
}

/// A refusal that is cPHulk's block, not a judgement of the credential.
fn is_cphulk(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("brute force protection") || m.contains("cphulk")
}

/// The operations a run performs on one server. One value serves one host for the whole run
/// and is shared by the workers of that host's lane (at most `per_host` calls at once).
///
/// Every method is one logical call; retries are the run's business. A mutation that fails
/// with [`ApiError::outcome_unknown`] may have happened on the server.
pub trait Backend: Send + Sync {
    /// Every account on the server (for `accounts = "*"`).
    fn list_accounts(&self) -> Result<Vec<AccountInfo>, ApiError>;
    /// The owner's tokens.
    fn list_tokens(&self, owner: Owner<'_>) -> Result<Vec<TokenInfo>, ApiError>;
    /// Create a full-access token named `name`; `expires_at`: unix seconds, `None` = never.
    /// A name already taken is [`ApiError::Conflict`].
    fn create_token(
        &self,
        owner: Owner<'_>,
        name: &str,
        expires_at: Option<i64>,
    ) -> Result<NewToken, ApiError>;
    /// [`Backend::create_token`] with ACLs and an IP allow-list (WHM tokens: `acl-N`,
    /// `whitelist_ip-N`). The default serves an empty `policy` and refuses any other unsent.
    fn create_token_with(
        &self,
        owner: Owner<'_>,
        name: &str,
        expires_at: Option<i64>,
        policy: &TokenPolicy,
    ) -> Result<NewToken, ApiError> {
        if policy.is_empty() {
            return self.create_token(owner, name, expires_at);
        }
        Err(ApiError::Rejected(
            "this backend cannot give a token ACLs or an IP allow-list".into(),
        ))
    }
    /// Revoke tokens by name; names that do not exist are not an error.
    fn revoke_tokens(&self, owner: Owner<'_>, names: &[String]) -> Result<(), ApiError>;
    /// Change the owner's token `name` in place, keeping its secret (WHM `api_token_update`):
    /// its expiry, ACLs, allow-list. The default: not supported, nothing sent.
    fn update_token(
        &self,
        owner: Owner<'_>,
        name: &str,
        change: &TokenChange,
    ) -> Result<(), ApiError> {
        let _ = (owner, name, change);
        Err(ApiError::Rejected(
            "this backend cannot change a token in place".into(),
        ))
    }
    /// Whether [`Backend::list_tokens_many`] and [`Backend::create_tokens_many`] carry many
    /// calls in one request (WHM API 1 `batch`); the defaults make one call per owner.
    fn batches(&self) -> bool {
        false
    }
    /// The tokens of each owner (accounts of this host), in order: one result per owner, or an
    /// `Err` of the whole when the request carrying them failed (every owner shares it).
    fn list_tokens_many(&self, owners: &[Owner<'_>]) -> Many<Vec<TokenInfo>> {
        Ok(owners.iter().map(|o| self.list_tokens(*o)).collect())
    }
    /// [`Backend::create_token`] for each (owner, name), in order, as
    /// [`Backend::list_tokens_many`] answers. An `Err` of the whole that
    /// [`ApiError::outcome_unknown`] says may have made every token of the batch. The default
    /// sends nothing more after a refused credential (cPHulk).
    fn create_tokens_many(
        &self,
        items: &[(Owner<'_>, &str)],
        expires_at: Option<i64>,
    ) -> Many<NewToken> {
        let mut out = Vec::new();
        let mut refused = None;
        for (owner, name) in items {
            let r = match &refused {
                Some(why) => Err(ApiError::Withheld(String::clone(why))),
                None => self.create_token(*owner, name, expires_at),
            };
            if let Err(e) = &r
                && e.is_refusal()
                && refused.is_none()
            {
                refused = Some(format!("not sent: {}", e.cause()));
            }
            out.push(r);
        }
        Ok(out)
    }
    /// A read-only call that authenticates with `token` alone: proof that a new token works
    /// where the handoff says it does.
    /// `name`: the new token's name (a backend that cannot log in with it checks it is listed).
    fn verify(&self, owner: Owner<'_>, name: &str, token: &Secret) -> Result<(), ApiError>;
    /// A cheap authenticated call with the host's own credential (`check`): the server's
    /// version on success.
    fn whoami(&self) -> Result<String, ApiError>;
    /// The name of the WHM token the host's own credential is (WHM `api_token_get_details` on
    /// it), `None` for a password: the token a revoke must never take unasked, since every call
    /// after it would be refused.
    fn credential_token(&self) -> Result<Option<String>, ApiError>;
    /// Where the owner's tokens work, as the handoff's `url` (`https://ADDRESS:PORT`).
    fn url(&self, owner: Owner<'_>) -> String;
    /// The SHA-256 of the certificate the server presented last, in `tls_pin`'s form.
    fn peer_pin(&self) -> Option<Pin>;
    /// SSH: the host key fingerprint the server presented last (`SHA256:…`, `ssh_host_key`'s
    /// form).
    fn host_key(&self) -> Option<String> {
        None
    }
    /// The run is done with this host: let go of what it holds open (connections). A later
    /// call may open them again.
    fn release(&self) {}
}

/// What a call carrying many owners' calls answers: one result per owner, or the request's
/// own failure.
pub type Many<T> = Result<Vec<Result<T, ApiError>>, ApiError>;

/// The backends of a fleet, in plan order: `fleet[i]` serves `plan.hosts[i]`.
pub type Fleet = Vec<Box<dyn Backend>>;

/// What every backend of a host is built from.
pub struct HostAccess<'a> {
    pub host: &'a Host,
    /// The host's WHM credential (or an account's default one), resolved by the plan.
    pub credential: Option<&'a Secret>,
    pub transport: TransportConfig,
}

/// The backend for one host: the one registration point for a new way of reaching servers.
/// Reads TLS files now, so a bad CA file is an input problem.
pub fn open(access: &HostAccess<'_>) -> Result<Box<dyn Backend>, crate::error::Problem> {
    let host = access.host;
    if host.api == Api::Ssh {
        if let Err(why) = ssh_client_ready() {
            return Err(crate::error::Problem::new(host.at("api"), why)
                .field("api")
                .hint("install OpenSSH's client 8.5 or later (Debian: apt-get install openssh-client), or reach this host with api = \"whm\""));
        }
        let backend = ssh::SshBackend::new(host, &access.transport).map_err(|e| {
            crate::error::Problem::new(
                &host.origin,
                format!("cannot make a private folder for the SSH control sockets: {e}"),
            )
        })?;
        return Ok(Box::new(backend));
    }
    let transport = HostTransport::new(
        &Endpoint {
            address: host.address.clone(),
            tls: host.tls.clone(),
            // Its problems are about the TLS settings: point at tls_ca where it is written.
            origin: host.at("tls_ca").to_string(),
        },
        &access.transport,
    )?;
    let http = Http::new(transport, host.whm_port, host.cpanel_port);
    let credential = access.credential.cloned();
    Ok(match host.api {
        Api::Whm => Box::new(whm::WhmBackend::new(http, host, credential)),
        Api::Cpanel => Box::new(cpanel::CpanelBackend::new(http, host, credential)),
        Api::Ssh => unreachable!("handled above"),
    })
}

/// The system OpenSSH client is there, and new enough for `KnownHostsCommand` (8.5): asked
/// once per process (`ssh -V`).
fn ssh_client_ready() -> Result<(), String> {
    static READY: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    READY
        .get_or_init(|| {
            let out = std::process::Command::new("ssh")
                .arg("-V")
                .stdin(std::process::Stdio::null())
                .output()
                .map_err(|e| format!("api = \"ssh\" runs the OpenSSH client, and `ssh` cannot be run: {e}"))?;
            let said = String::from_utf8_lossy(&out.stderr).to_string()
                + &String::from_utf8_lossy(&out.stdout);
            match openssh_version(&said) {
                Some(v) if v >= (8, 5) => Ok(()),
                Some((major, minor)) => Err(format!(
                    "api = \"ssh\" needs OpenSSH 8.5 or later (for KnownHostsCommand); this ssh is {major}.{minor}"
                )),
                None => Err(format!(
                    "api = \"ssh\" needs OpenSSH's client; `ssh -V` said {:?}",
                    said.trim()
                )),
            }
        })
        .clone()
}

/// `OpenSSH_9.2p1 Debian-2…` → (9, 2).
fn openssh_version(text: &str) -> Option<(u32, u32)> {
    let rest = text.trim().strip_prefix("OpenSSH_")?;
    let mut it = rest.split(|c: char| !c.is_ascii_digit());
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

#[cfg(test)]
#[test]
fn openssh_versions_are_read_from_ssh_v() {
    assert_eq!(
        openssh_version("OpenSSH_9.2p1 Debian-2+deb12u10, OpenSSL 3.0.19 27 Jan 2026"),
        Some((9, 2))
    );
    assert_eq!(openssh_version("OpenSSH_10.0p2, LibreSSL"), Some((10, 0)));
    assert_eq!(openssh_version("OpenSSH_8.4p1"), Some((8, 4)));
    assert_eq!(openssh_version("dropbear"), None);
}
