//! Why this module exists: every byte tokenfleet sends goes through one place that enforces the
//! safety rules of the wire: rustls only, per-host trust (webpki roots plus `tls_ca`, or a
//! SHA-256 pin, or loudly insecure), connect and request timeouts, no redirects, capped response
//! bodies, a sensitive Authorization header, and keep-alive reuse so a lane pays one handshake.
//! It knows nothing of cPanel.

use crate::inventory::{Host, Pin};
use crate::secret::Secret;
use std::time::Duration;

/// Knobs shared by every host.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// Whole-request timeout (`--timeout`).
    pub timeout: Duration,
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
    /// Largest response body read, in bytes; larger is an error.
    pub body_cap: usize,
    /// Idle keep-alive connections kept per port (= the host's per_host limit).
    pub pool_size: usize,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            body_cap: 4 << 20,
            pool_size: 4,
        }
    }
}

/// Which of a host's two ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    Whm,
    Cpanel,
}

/// The Authorization header, built from a secret and never logged.
pub enum Authorization<'a> {
    /// `whm USER:TOKEN`
    Whm { user: &'a str, token: &'a Secret },
    /// `cpanel USER:TOKEN`
    Cpanel { user: &'a str, token: &'a Secret },
    /// `Basic base64(user:pass)`
    Basic { user: &'a str, password: &'a Secret },
}

/// What came back: status and a capped body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// `Location` header of a 3xx answer, for the error message.
    pub location: Option<String>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// Why a request produced no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    /// TCP connect failed or was refused: nothing was sent; safe to retry.
    Connect(String),
    /// TLS handshake failed (untrusted certificate, name mismatch…): nothing was sent.
    Tls(String),
    /// The certificate did not match `tls_pin`: nothing was sent.
    PinMismatch { expected: Pin, got: Pin },
    /// No complete answer within the timeout. `sent`: the request may have reached the server.
    Timeout { sent: bool },
    /// The connection broke. `sent`: the request may have reached the server.
    Io { message: String, sent: bool },
    /// The body exceeded the cap.
    BodyTooLarge { cap: usize },
}

impl TransportError {
    /// True when the server may have acted on the request (a mutation's outcome is unknown).
    pub fn maybe_sent(&self) -> bool {
        matches!(
            self,
            TransportError::Timeout { sent: true }
                | TransportError::Io { sent: true, .. }
                | TransportError::BodyTooLarge { .. }
        )
    }
}

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransportError::Connect(m) => write!(f, "cannot connect: {m}"),
            TransportError::Tls(m) => write!(f, "TLS: {m}"),
            TransportError::PinMismatch { expected, got } => {
                write!(
                    f,
                    "TLS pin mismatch: expected {expected}, server presented {got}"
                )
            }
            TransportError::Timeout { .. } => f.write_str("timed out"),
            TransportError::Io { message, .. } => write!(f, "connection lost: {message}"),
            TransportError::BodyTooLarge { cap } => {
                write!(f, "response body larger than {cap} bytes")
            }
        }
    }
}

/// One host's HTTPS client (both ports), with that host's trust settings.
pub struct HostTransport {
    _private: (),
}

impl HostTransport {
    /// Build the client for `host`. Reads `tls_ca` now, so a bad CA file is an input problem.
    pub fn new(
        host: &Host,
        config: &TransportConfig,
    ) -> Result<HostTransport, crate::error::Problem> {
        let _ = (host, config);
        unimplemented!("transport")
    }

    /// POST a form to `path` (e.g. `/json-api/uapi_cpanel`) on one of the host's ports.
    pub fn post(
        &self,
        port: Port,
        path: &str,
        auth: &Authorization<'_>,
        form: &[(&str, &str)],
    ) -> Result<Response, TransportError> {
        let _ = (port, path, auth, form);
        unimplemented!("transport")
    }

    /// SHA-256 of the leaf certificate the host presented on its last handshake, if any.
    pub fn peer_pin(&self) -> Option<Pin> {
        None
    }
}
