//! Why this module exists: cPanel's APIs have three envelopes (UAPI, WHM API 1, and UAPI wrapped
//! inside `uapi_cpanel`) and several quirks (HTTP 200 with `status: 0`, `metadata.result: 1` over
//! a failed inner call, `expires_at` as number, string or null). This module turns them into
//! typed calls with one error type, so nothing above it parses JSON. It knows nothing of rayon,
//! bars or files.

use crate::inventory::AuthKind;
use crate::secret::Secret;
use crate::transport::{HostTransport, TransportError};

/// A token as listed by the server (no secret: the server keeps only a hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub name: String,
    pub create_time: Option<i64>,
    /// Unix seconds; `None` = never expires.
    pub expires_at: Option<i64>,
}

/// A token just created: its secret is shown this once.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub name: String,
    pub token: Secret,
    pub create_time: i64,
    pub expires_at: Option<i64>,
}

/// An account as WHM `listaccts` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountInfo {
    pub user: String,
    pub domain: String,
    pub owner: String,
    pub suspended: bool,
}

/// Who makes a call, and so which endpoint and Authorization header it uses.
#[derive(Debug, Clone, Copy)]
pub enum Caller<'a> {
    /// A WHM token (or password) of `whm_user` acting for `account` through `uapi_cpanel`.
    WhmFor {
        whm_user: &'a str,
        credential: &'a Secret,
        auth: AuthKind,
        account: &'a str,
    },
    /// The account itself on the cPanel port (`/execute/Tokens/...`).
    Account {
        user: &'a str,
        credential: &'a Secret,
        auth: AuthKind,
    },
    /// `whm_user`'s own WHM API tokens (`api_token_*`), for `--scope whm`.
    Whm {
        whm_user: &'a str,
        credential: &'a Secret,
        auth: AuthKind,
    },
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// 401/403: the credential was refused. Never retry (cPHulk).
    Auth { status: u16, message: String },
    /// The API answered and said no (inner `status: 0`, `metadata.result: 0`).
    Rejected(String),
    /// A duplicate token name on create.
    Conflict(String),
    /// The answer was not the API's (HTML, non-JSON, redirect, wrong shape).
    Protocol(String),
    /// An HTTP status other than 2xx/401/403, e.g. 429 or 503.
    Http { status: u16 },
    /// No answer at all.
    Transport(TransportError),
}

impl ApiError {
    /// Worth another try after a backoff: connect errors, 429, 5xx.
    pub fn is_retryable(&self) -> bool {
        match self {
            ApiError::Http { status } => *status == 429 || (500..600).contains(status),
            ApiError::Transport(TransportError::Connect(_)) => true,
            ApiError::Transport(e) => e.maybe_sent(),
            _ => false,
        }
    }

    /// A mutation that failed this way may have been performed anyway.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            ApiError::Transport(e) => e.maybe_sent(),
            ApiError::Http { status } => (500..600).contains(status),
            _ => false,
        }
    }

    /// A short cause for folding failures in the summary ("TLS pin mismatch").
    pub fn cause(&self) -> String {
        match self {
            ApiError::Auth { status, .. } => format!("authentication refused (HTTP {status})"),
            ApiError::Rejected(m) => m.clone(),
            ApiError::Conflict(_) => "token name already exists".into(),
            ApiError::Protocol(m) => m.clone(),
            ApiError::Http { status } => format!("HTTP {status}"),
            ApiError::Transport(TransportError::PinMismatch { .. }) => "TLS pin mismatch".into(),
            ApiError::Transport(TransportError::Tls(_)) => "TLS verification failed".into(),
            ApiError::Transport(TransportError::Connect(_)) => "cannot connect".into(),
            ApiError::Transport(TransportError::Timeout { .. }) => "timed out".into(),
            ApiError::Transport(TransportError::Io { .. }) => "connection lost".into(),
            ApiError::Transport(TransportError::BodyTooLarge { .. }) => {
                "response body too large".into()
            }
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Auth { status, message } => {
                write!(f, "authentication refused (HTTP {status}): {message}")
            }
            ApiError::Rejected(m) => write!(f, "the server refused: {m}"),
            ApiError::Conflict(m) => write!(f, "{m}"),
            ApiError::Protocol(m) => write!(f, "protocol error: {m}"),
            ApiError::Http { status } => write!(f, "HTTP {status}"),
            ApiError::Transport(e) => write!(f, "{e}"),
        }
    }
}

/// Typed calls on one host.
pub struct Api<'a> {
    pub transport: &'a HostTransport,
}

impl<'a> Api<'a> {
    pub fn new(transport: &'a HostTransport) -> Self {
        Api { transport }
    }

    /// Create a full-access token named `name`. `expires_at`: unix seconds, `None` = never.
    pub fn create_token(
        &self,
        caller: &Caller<'_>,
        name: &str,
        expires_at: Option<i64>,
    ) -> Result<NewToken, ApiError> {
        let _ = (caller, name, expires_at);
        unimplemented!()
    }

    /// The caller's tokens (the account's, or `whm_user`'s for `Caller::Whm`).
    pub fn list_tokens(&self, caller: &Caller<'_>) -> Result<Vec<TokenInfo>, ApiError> {
        let _ = caller;
        unimplemented!()
    }

    /// Revoke tokens by name. Unknown names are not an error.
    pub fn revoke_tokens(&self, caller: &Caller<'_>, names: &[String]) -> Result<(), ApiError> {
        let _ = (caller, names);
        unimplemented!()
    }

    /// WHM `listaccts` as `whm_user`.
    pub fn list_accounts(
        &self,
        whm_user: &str,
        credential: &Secret,
        auth: AuthKind,
    ) -> Result<Vec<AccountInfo>, ApiError> {
        let _ = (whm_user, credential, auth);
        unimplemented!()
    }

    /// WHM `version`: a cheap authenticated call for `check`.
    pub fn version(
        &self,
        whm_user: &str,
        credential: &Secret,
        auth: AuthKind,
    ) -> Result<String, ApiError> {
        let _ = (whm_user, credential, auth);
        unimplemented!()
    }
}
