//! Tests of the simulator itself, through real HTTPS requests from a plain client (reqwest with
//! rustls): every endpoint, each quirk, each fault, cPHulk and the counters. One binary, one module
//! per area; the helpers here build pinned or CA-trusting clients and send WHM and UAPI calls.

mod addressing;
mod auth;
mod batch;
mod certs;
mod counters;
mod endpoints;
mod faults;
mod inventory;
mod policy;
mod ssh;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use cpanel_sim::{Fleet, FleetSpec, SimHost};
use reqwest::blocking::Client;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use serde_json::Value;

/// Accepts exactly the given leaf certificates (what tokenfleet's `tls_pin` does).
#[derive(Debug)]
struct PinVerifier {
    ders: BTreeSet<Vec<u8>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.ders.contains(end_entity.as_ref()) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("certificate pin mismatch".into()))
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
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
        verify_tls13_signature(
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

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn builder() -> reqwest::blocking::ClientBuilder {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .http1_only()
}

/// A client that trusts exactly these hosts' certificates (by pin).
pub fn pinned_client(hosts: &[SimHost]) -> Client {
    pinned_builder(hosts).build().unwrap()
}

pub fn pinned_builder(hosts: &[SimHost]) -> reqwest::blocking::ClientBuilder {
    let verifier = PinVerifier {
        ders: hosts.iter().map(|h| h.cert_der()).collect(),
        provider: provider(),
    };
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    builder().tls_backend_preconfigured(config)
}

/// A client that trusts only the given CA (PEM) through normal WebPKI verification.
pub fn ca_builder(ca_pem: &str) -> reqwest::blocking::ClientBuilder {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    builder().tls_backend_preconfigured(config)
}

/// A fleet plus a client pinned to all of its hosts.
pub struct Env {
    pub fleet: Fleet,
    pub client: Client,
}

impl Env {
    pub fn start(spec: FleetSpec) -> Env {
        let fleet = Fleet::start(spec).unwrap();
        let client = pinned_client(fleet.hosts());
        Env { fleet, client }
    }
    pub fn host(&self, name: &str) -> SimHost {
        self.fleet.host(name).clone()
    }
    pub fn root_auth(&self) -> String {
        format!("whm root:{}", self.fleet.root_token())
    }
}

pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: String,
    pub headers: reqwest::header::HeaderMap,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

fn finish(r: reqwest::blocking::Response) -> Reply {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = r.text().unwrap();
    Reply {
        status,
        content_type,
        body,
        headers,
    }
}

/// POST a form to a WHM API 1 function on `host`'s WHM port.
pub fn whm_post(
    c: &Client,
    host: &SimHost,
    auth: Option<&str>,
    function: &str,
    form: &[(&str, &str)],
) -> Reply {
    try_whm_post(c, host, auth, function, form).unwrap()
}

pub fn try_whm_post(
    c: &Client,
    host: &SimHost,
    auth: Option<&str>,
    function: &str,
    form: &[(&str, &str)],
) -> reqwest::Result<Reply> {
    let mut fields = vec![("api.version", "1")];
    fields.extend_from_slice(form);
    let mut req = c
        .post(format!("{}/json-api/{function}", host.whm_url()))
        .form(&fields);
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    req.send().map(finish)
}

/// GET a WHM API 1 function with a query string.
pub fn whm_get(
    c: &Client,
    host: &SimHost,
    auth: &str,
    function: &str,
    query: &[(&str, &str)],
) -> Reply {
    finish(
        c.get(format!(
            "{}/json-api/{function}?{}",
            host.whm_url(),
            form_urlencoded::Serializer::new(String::new())
                .extend_pairs(query)
                .finish()
        ))
        .header("Authorization", auth)
        .send()
        .unwrap(),
    )
}

/// `uapi_cpanel` as `auth` for `account`.
pub fn uapi_via_whm(
    c: &Client,
    host: &SimHost,
    auth: &str,
    account: &str,
    function: &str,
    form: &[(&str, &str)],
) -> Reply {
    try_uapi_via_whm(c, host, auth, account, function, form).unwrap()
}

pub fn try_uapi_via_whm(
    c: &Client,
    host: &SimHost,
    auth: &str,
    account: &str,
    function: &str,
    form: &[(&str, &str)],
) -> reqwest::Result<Reply> {
    let mut fields = vec![
        ("cpanel.user", account),
        ("cpanel.module", "Tokens"),
        ("cpanel.function", function),
    ];
    fields.extend_from_slice(form);
    try_whm_post(c, host, Some(auth), "uapi_cpanel", &fields)
}

/// POST to `/execute/Tokens/<function>` on the cPanel port.
pub fn uapi_post(
    c: &Client,
    host: &SimHost,
    auth: &str,
    function: &str,
    form: &[(&str, &str)],
) -> Reply {
    finish(
        c.post(format!("{}/execute/Tokens/{function}", host.cpanel_url()))
            .form(form)
            .header("Authorization", auth)
            .send()
            .unwrap(),
    )
}

/// Create a token for `account` through root's `uapi_cpanel`; returns the secret.
pub fn create_token(env: &Env, host: &SimHost, account: &str, name: &str) -> String {
    let r = uapi_via_whm(
        &env.client,
        host,
        &env.root_auth(),
        account,
        "create_full_access",
        &[("name", name)],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["data"]["uapi"]["status"], 1, "{}", r.body);
    v["data"]["uapi"]["data"]["token"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Poll `cond` (bounded: at most `tries` times, 20 ms apart).
pub fn wait_until(tries: usize, mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..tries {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}
