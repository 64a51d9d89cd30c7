//! Why this module exists: every byte tokenfleet sends goes through one place that enforces the
//! safety rules of the wire: rustls only, per-host trust (webpki roots plus `tls_ca`, or a
//! SHA-256 pin, or loudly insecure), connect and request timeouts, no redirects, capped response
//! bodies, a sensitive Authorization header, and keep-alive reuse so a lane pays one handshake.
//! It knows nothing of cPanel.
//! See docs/DESIGN.md §6 and §7.

use crate::error::Problem;
use crate::secret::Secret;
use crate::trust::{Pin, Tls};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, LOCATION};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::error::Error as StdError;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// cpsrvd closes idle keep-alive connections after 60 s; drop ours a little before that so a
/// request never races the server's close.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(50);

/// Knobs shared by every host.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// Whole-request deadline (`--timeout`): connect, send, head and body, to the last byte.
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
            connect_timeout: Duration::from_secs(5),
            body_cap: 4 << 20,
            pool_size: 4,
        }
    }
}

/// Where one host is and how its certificate is trusted: all the transport needs to know of it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// DNS name or IP literal (IPv6 without brackets is fine).
    pub address: String,
    pub tls: Tls,
    /// Where the host was defined (`inventory.toml: hosts[2]`), for problems with its TLS files.
    pub origin: String,
}

/// The Authorization header, built from a secret and never logged.
pub enum Authorization<'a> {
    /// `SCHEME USER:TOKEN` (the scheme is the API's, e.g. `whm` or `cpanel`).
    Token {
        scheme: &'static str,
        user: &'a str,
        token: &'a Secret,
    },
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
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// TCP connect failed or was refused: nothing was sent; safe to retry.
    /// The text starts with the address and port tried (`203.0.113.10:2087: …`).
    #[error("cannot connect to {0}")]
    Connect(String),
    /// TLS handshake failed (untrusted certificate, name mismatch…): nothing was sent.
    #[error("TLS: {0}")]
    Tls(String),
    /// The certificate did not match `tls_pin`: nothing was sent.
    #[error("TLS pin mismatch: expected {expected}, server presented {got}")]
    PinMismatch { expected: Pin, got: Pin },
    /// No complete answer within the timeout. `sent`: the request may have reached the server.
    #[error("timed out")]
    Timeout { sent: bool },
    /// The connection broke. `sent`: the request may have reached the server.
    #[error("connection lost: {message}")]
    Io { message: String, sent: bool },
    /// The body exceeded the cap.
    #[error("response body larger than {cap} bytes")]
    BodyTooLarge { cap: usize },
    /// The request could not be built (e.g. a credential holding characters an HTTP header
    /// cannot carry): nothing was sent and retrying cannot help.
    #[error("cannot build the request: {0}")]
    Request(String),
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

/// What the verifiers of one host share with [`HostTransport`]: the leaf of the last handshake
/// and the last pin mismatch, so a failed handshake can be reported precisely after reqwest has
/// flattened it into its own error type.
#[derive(Debug, Default)]
struct Seen {
    last_leaf: Option<Pin>,
    last_mismatch: Option<(Pin, Pin)>,
}

type SeenCell = Arc<Mutex<Seen>>;

fn record_leaf(seen: &SeenCell, leaf: Pin) {
    if let Ok(mut s) = seen.lock() {
        s.last_leaf = Some(leaf);
    }
}

/// The error a pin verifier hands to rustls, carried through reqwest's error chain as
/// `rustls::Error::Other` so it can be recognised again.
#[derive(Debug)]
struct PinMismatchError {
    expected: Pin,
    got: Pin,
}

impl std::fmt::Display for PinMismatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "certificate pin mismatch: expected {}, got {}",
            self.expected, self.got
        )
    }
}

impl StdError for PinMismatchError {}

/// How one host's leaf certificate is judged.
#[derive(Debug)]
enum Trust {
    /// webpki roots plus `tls_ca`, with name checks.
    Roots(Arc<WebPkiServerVerifier>),
    /// Exactly this leaf; chain and name are not checked.
    Pin(Pin),
    /// Anything (`tls_insecure`).
    Insecure,
}

/// The one verifier type for every trust mode: it records the presented leaf, then judges it.
/// Handshake signatures are always checked with the provider's algorithms, so even a pinned or
/// insecure peer must hold the certificate's private key.
#[derive(Debug)]
struct Verifier {
    trust: Trust,
    provider: Arc<CryptoProvider>,
    seen: SeenCell,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = Pin::of_der(end_entity.as_ref());
        record_leaf(&self.seen, got);
        match &self.trust {
            Trust::Roots(inner) => {
                inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            Trust::Pin(expected) => {
                if got == *expected {
                    Ok(ServerCertVerified::assertion())
                } else {
                    if let Ok(mut s) = self.seen.lock() {
                        s.last_mismatch = Some((*expected, got));
                    }
                    Err(rustls::Error::Other(rustls::OtherError(Arc::new(
                        PinMismatchError {
                            expected: *expected,
                            got,
                        },
                    ))))
                }
            }
            Trust::Insecure => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Read the PEM certificates of `tls_ca`. Any problem names the file and the fix.
fn read_ca_file(
    host: &Endpoint,
    path: &std::path::Path,
) -> Result<Vec<CertificateDer<'static>>, Problem> {
    let problem = |message: String| {
        Problem::new(host.origin.clone(), message)
            .field("tls_ca")
            .hint(
                "point tls_ca at a readable PEM file holding the CA certificate \
             (\"-----BEGIN CERTIFICATE-----\"), or use tls_pin to pin the host's own certificate",
            )
    };
    let bytes = std::fs::read(path)
        .map_err(|e| problem(format!("cannot read CA file {}: {e}", path.display())))?;
    let mut certs = Vec::new();
    for item in CertificateDer::pem_slice_iter(&bytes) {
        match item {
            Ok(cert) => certs.push(cert),
            Err(e) => {
                return Err(problem(format!(
                    "CA file {} is not valid PEM: {e}",
                    path.display()
                )));
            }
        }
    }
    if certs.is_empty() {
        return Err(problem(format!(
            "CA file {} holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// The rustls configuration for one host: ring provider, HTTP/1.1 ALPN, and the host's trust.
fn client_config(
    host: &Endpoint,
    ca: &[CertificateDer<'static>],
    seen: SeenCell,
) -> Result<rustls::ClientConfig, Problem> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // A pin is the strictest statement and wins over `tls_insecure`; `tls_ca` matters only
    // without a pin.
    let trust = if let Some(pin) = host.tls.pin {
        Trust::Pin(pin)
    } else if host.tls.insecure {
        Trust::Insecure
    } else {
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(path) = &host.tls.ca {
            for cert in ca.iter().cloned() {
                roots.add(cert).map_err(|e| {
                    Problem::new(host.origin.clone(), format!("CA file {}: unusable certificate: {e}", path.display()))
                        .field("tls_ca")
                        .hint("tls_ca must hold CA certificates (PEM); to trust one server's own certificate use tls_pin")
                })?;
            }
        }
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| {
                    Problem::new(
                        host.origin.clone(),
                        format!("cannot build the TLS verifier: {e}"),
                    )
                    .field("tls_ca")
                })?;
        Trust::Roots(verifier)
    };
    let verifier = Arc::new(Verifier {
        trust,
        provider: provider.clone(),
        seen,
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Problem::new(host.origin.clone(), format!("cannot configure TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The process's one I/O runtime. Every host's connections are driven by its few threads, so a
/// fleet of 10,000 hosts costs no thread per host: the `--jobs` workers hand each request to it
/// and wait for the answer ([`HostTransport::post`]).
pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .clamp(1, 4);
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            // Name lookups run here (IP literals need none); a handful is plenty.
            .max_blocking_threads(4)
            .thread_name("tokenfleet-io")
            .enable_all()
            .build()
            .expect("cannot start the I/O threads")
    })
}

/// One host's HTTPS client (any of its ports), with that host's trust settings. The client and
/// its connection pool exist only while the host is being worked on: built at the first request,
/// dropped by [`HostTransport::release`] when the host is done, which closes its idle
/// connections (a fleet of thousands must not hold a socket per finished host).
pub struct HostTransport {
    endpoint: Endpoint,
    /// `tls_ca`'s certificates, read (and checked) when the transport is built.
    ca: Vec<CertificateDer<'static>>,
    client: Mutex<Option<reqwest::Client>>,
    /// The whole request's deadline, connect to last byte (see [`HostTransport::post`]).
    timeout: Duration,
    connect_timeout: Duration,
    pool_size: usize,
    /// `address` as it goes into a URL (IPv6 literals bracketed).
    url_host: String,
    pin: Option<Pin>,
    body_cap: usize,
    seen: SeenCell,
}

impl std::fmt::Debug for HostTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostTransport")
            .field("host", &self.url_host)
            .finish_non_exhaustive()
    }
}

/// `address` ready for `https://{}:{port}`: IPv6 literals get brackets.
fn url_host(address: &str) -> String {
    if address.contains(':') && !address.starts_with('[') {
        format!("[{address}]")
    } else {
        address.to_string()
    }
}

/// The Authorization header value, marked sensitive so reqwest and hyper never print it.
fn authorization_value(auth: &Authorization<'_>) -> Result<HeaderValue, TransportError> {
    use base64::Engine;
    // Every intermediate string holding the secret is a `Secret`, so it is zeroized on drop.
    let text = match auth {
        Authorization::Token {
            scheme,
            user,
            token,
        } => Secret::new(format!("{scheme} {user}:{}", token.expose())),
        Authorization::Basic { user, password } => {
            let raw = Secret::new(format!("{user}:{}", password.expose()));
            let encoded = zeroize::Zeroizing::new(
                base64::engine::general_purpose::STANDARD.encode(raw.expose().as_bytes()),
            );
            Secret::new(format!("Basic {}", encoded.as_str()))
        }
    };
    let mut value = HeaderValue::from_str(text.expose()).map_err(|_| {
        TransportError::Request(
            "the credential or user name holds characters an HTTP header cannot carry \
             (a stray newline or control character in the credential file?)"
                .to_string(),
        )
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// Walk an error's sources, looking through `io::Error` wrappers (whose `source()` skips the
/// wrapped error itself; hyper-rustls nests them two deep).
fn find_in_chain<'e, T: StdError + 'static>(err: &'e (dyn StdError + 'static)) -> Option<&'e T> {
    fn walk<'e, T: StdError + 'static>(
        err: &'e (dyn StdError + 'static),
        depth: usize,
    ) -> Option<&'e T> {
        if depth > 16 {
            return None;
        }
        if let Some(t) = err.downcast_ref::<T>() {
            return Some(t);
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(t) = walk::<T>(inner, depth + 1)
        {
            return Some(t);
        }
        err.source().and_then(|next| walk::<T>(next, depth + 1))
    }
    walk(err, 0)
}

/// The innermost message of an error chain (through `io::Error` wrappers), for text that must
/// not carry a URL or header.
fn root_message(err: &(dyn StdError + 'static)) -> String {
    let mut current: &(dyn StdError + 'static) = err;
    for _ in 0..16 {
        let next = match current
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => current.source(),
        };
        match next {
            Some(n) => current = n,
            None => break,
        }
    }
    current.to_string()
}

impl HostTransport {
    /// The transport for `host`. Reads `tls_ca` now, so a bad CA file is an input problem; the
    /// client itself is built at the first request.
    pub fn new(
        host: &Endpoint,
        config: &TransportConfig,
    ) -> Result<HostTransport, crate::error::Problem> {
        let ca = match &host.tls.ca {
            Some(path) if host.tls.pin.is_none() && !host.tls.insecure => read_ca_file(host, path)?,
            _ => Vec::new(),
        };
        let transport = HostTransport {
            endpoint: host.clone(),
            ca,
            client: Mutex::new(None),
            timeout: config.timeout,
            connect_timeout: config.connect_timeout,
            pool_size: config.pool_size.max(1),
            url_host: url_host(&host.address),
            pin: host.tls.pin,
            body_cap: config.body_cap,
            seen: Arc::new(Mutex::new(Seen::default())),
        };
        // Every problem of the TLS settings is found now, before any request.
        client_config(&transport.endpoint, &transport.ca, transport.seen.clone())?;
        Ok(transport)
    }

    /// The host's client, built on first use.
    fn client(&self) -> Result<reqwest::Client, TransportError> {
        let mut slot = self.client.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = slot.as_ref() {
            return Ok(client.clone());
        }
        let tls = client_config(&self.endpoint, &self.ca, self.seen.clone())
            .map_err(|p| TransportError::Request(p.to_string()))?;
        let _in_runtime = runtime().enter();
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(self.timeout)
            .connect_timeout(self.connect_timeout)
            .pool_max_idle_per_host(self.pool_size)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .http1_only()
            .no_proxy()
            .user_agent(concat!("tokenfleet/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| TransportError::Request(format!("cannot build the HTTPS client: {e}")))?;
        *slot = Some(client.clone());
        Ok(client)
    }

    /// The host is done: drop its client, closing its idle connections. A later request builds
    /// a new one.
    pub fn release(&self) {
        let client = self.client.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(client) = client {
            // The pool's timers live on the runtime: drop it there.
            let _in_runtime = runtime().enter();
            drop(client);
        }
    }

    /// POST a form to `path` (e.g. `/json-api/uapi_cpanel`) on `port` of the host. The calling
    /// thread waits while the I/O threads do the exchange.
    pub fn post(
        &self,
        port: u16,
        path: &str,
        auth: &Authorization<'_>,
        form: &[(&str, &str)],
    ) -> Result<Response, TransportError> {
        let url = format!("https://{}:{port}{path}", self.url_host);
        let auth = authorization_value(auth)?;
        let client = self.client()?;
        // The timeout set on the request is a deadline for the whole exchange, body included,
        // so a server that drips a byte at a time cannot hold a request for ever; the outer one
        // is a backstop a little later.
        let request = client
            .post(&url)
            .timeout(self.timeout)
            .header(AUTHORIZATION, auth)
            .form(form);
        self.exchange(request, port)
    }

    /// Send a JSON API request (`GET` when `body` is `None`, else `POST` with the JSON body) to
    /// `path` on `port`, with the secret `token` in the header `header` (marked sensitive): how
    /// a secret store (OpenBao, Vault: `X-Vault-Token`) is spoken to. Same deadlines, trust,
    /// body cap and error mapping as [`HostTransport::post`].
    pub fn json(
        &self,
        port: u16,
        path: &str,
        header: &'static str,
        token: &Secret,
        body: Option<&serde_json::Value>,
    ) -> Result<Response, TransportError> {
        let url = format!("https://{}:{port}{path}", self.url_host);
        let mut value = HeaderValue::from_str(token.expose()).map_err(|_| {
            TransportError::Request(
                "the store token holds characters an HTTP header cannot carry (a stray newline \
                 or control character in the token file?)"
                    .to_string(),
            )
        })?;
        value.set_sensitive(true);
        let client = self.client()?;
        let request = match body {
            None => client.get(&url),
            Some(b) => client
                .post(&url)
                .header(CONTENT_TYPE, "application/json")
                .body(serde_json::to_vec(b).expect("JSON values serialize")),
        };
        let request = request.timeout(self.timeout).header(header, value);
        self.exchange(request, port)
    }

    /// Send `request` and read its capped answer; the calling thread waits while the I/O
    /// threads do the exchange.
    fn exchange(
        &self,
        request: reqwest::RequestBuilder,
        port: u16,
    ) -> Result<Response, TransportError> {
        let exchange = async {
            let mut response = request
                .send()
                .await
                .map_err(|e| self.map_send_error(e, port))?;
            let status = response.status().as_u16();
            let header = |name| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v: &HeaderValue| v.to_str().ok())
                    .map(str::to_string)
            };
            let location = header(LOCATION);
            let content_type = header(CONTENT_TYPE);
            if let Some(len) = response.content_length()
                && len > self.body_cap as u64
            {
                return Err(TransportError::BodyTooLarge { cap: self.body_cap });
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(map_read_error)? {
                if body.len() + chunk.len() > self.body_cap {
                    return Err(TransportError::BodyTooLarge { cap: self.body_cap });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Response {
                status,
                location,
                content_type,
                body,
            })
        };
        let backstop = self.timeout + Duration::from_secs(1);
        runtime().block_on(async {
            match tokio::time::timeout(backstop, exchange).await {
                Ok(answer) => answer,
                Err(_) => Err(TransportError::Timeout { sent: true }),
            }
        })
    }

    /// The host as it goes into a URL (IPv6 literals bracketed).
    pub fn url_host(&self) -> &str {
        &self.url_host
    }

    /// SHA-256 of the leaf certificate the host presented on its last handshake, if any.
    pub fn peer_pin(&self) -> Option<Pin> {
        self.seen.lock().ok().and_then(|s| s.last_leaf)
    }

    /// Turn reqwest's error for a request that produced no response into ours. The text never
    /// holds the URL's query, a header or a form value: only the innermost cause.
    fn map_send_error(&self, err: reqwest::Error, port: u16) -> TransportError {
        let err = err.without_url();
        let dyn_err: &(dyn StdError + 'static) = &err;
        if let Some(rustls_err) = find_in_chain::<rustls::Error>(dyn_err) {
            return self.map_tls_error(rustls_err);
        }
        if err.is_timeout() {
            return TransportError::Timeout {
                sent: !err.is_connect(),
            };
        }
        if err.is_connect() {
            let message = root_message(dyn_err);
            let at = format!("{}:{port}", self.url_host);
            if err.is_dns() {
                return TransportError::Connect(format!(
                    "{at}: cannot resolve the address: {message}"
                ));
            }
            return TransportError::Connect(format!("{at}: {message}"));
        }
        TransportError::Io {
            message: root_message(dyn_err),
            sent: true,
        }
    }

    fn map_tls_error(&self, err: &rustls::Error) -> TransportError {
        if let rustls::Error::Other(other) = err
            && let Some(m) = other.0.downcast_ref::<PinMismatchError>()
        {
            return TransportError::PinMismatch {
                expected: m.expected,
                got: m.got,
            };
        }
        let presented = self.peer_pin();
        if let Some(expected) = self.pin
            && let Some((e, got)) = self.seen.lock().ok().and_then(|s| s.last_mismatch)
            && e == expected
        {
            return TransportError::PinMismatch { expected, got };
        }
        let advice = match presented {
            Some(pin) => format!(
                "if this is the server's own certificate, pin it with tls_pin = \"{pin}\" (check it out of band), \
                 or trust its CA with tls_ca"
            ),
            None => "pin the server's certificate with tls_pin (tokenfleet check prints it) or trust its CA with tls_ca"
                .to_string(),
        };
        let message = match err {
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
                format!("the certificate is not signed by a trusted CA (unknown issuer); {advice}")
            }
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            ) => format!("the certificate is not valid for this address (name mismatch); {advice}"),
            rustls::Error::InvalidCertificate(
                CertificateError::Expired | CertificateError::ExpiredContext { .. },
            ) => format!("the certificate has expired; {advice}"),
            rustls::Error::InvalidCertificate(e) => {
                format!("the certificate was refused ({e:?}); {advice}")
            }
            other => format!("handshake failed: {other}"),
        };
        TransportError::Tls(message)
    }
}

/// An error while reading the body: the request was sent.
fn map_read_error(err: reqwest::Error) -> TransportError {
    if err.is_timeout() {
        return TransportError::Timeout { sent: true };
    }
    let err = err.without_url();
    TransportError::Io {
        message: root_message(&err),
        sent: true,
    }
}

#[cfg(test)]
pub(crate) mod test_server;
#[cfg(test)]
mod tests;
