//! Why this module exists: transport and cpanel tests need a real TLS server to talk to, and the
//! rules allow only servers the test starts itself on 127.0.0.1. This is a small blocking
//! HTTP/1.1-over-rustls server (std threads, `ServerConnection` + `StreamOwned`) with rcgen
//! certificates, which records what it saw (accepts, requests, headers) so tests can assert on
//! the wire. Every loop is bounded in count and by socket timeouts.

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Most connections one server accepts, and most requests one connection serves.
const MAX_ACCEPTS: usize = 64;
const MAX_REQUESTS_PER_CONNECTION: usize = 64;
/// A connection thread gives up after this long without bytes (bounds every test in time).
const IDLE: Duration = Duration::from_secs(10);

/// One request as the server read it.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The form fields of an `application/x-www-form-urlencoded` body, decoded.
    pub fn form(&self) -> Vec<(String, String)> {
        self.body
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (decode(k), decode(v))
            })
            .collect()
    }
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What the server does with a request.
pub(crate) enum Reply {
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Send the body with chunked encoding (no Content-Length).
    Chunked { status: u16, body: Vec<u8> },
    /// Wait, then do the inner reply (the client has usually given up by then).
    Delay(Duration, Box<Reply>),
    /// Close the connection without answering.
    Close,
}

impl Reply {
    pub fn json(status: u16, body: &str) -> Reply {
        Reply::Respond {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
        }
    }
}

type Handler = dyn Fn(&Recorded) -> Reply + Send + Sync;

/// A running server; stopped and joined on drop.
pub(crate) struct TestServer {
    pub port: u16,
    accepts: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<Recorded>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    pub fn start(
        config: Arc<ServerConfig>,
        handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("local addr").port();
        let accepts = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let thread = {
            let (accepts, requests, stop) = (accepts.clone(), requests.clone(), stop.clone());
            std::thread::spawn(move || {
                for _ in 0..MAX_ACCEPTS {
                    let Ok((tcp, _)) = listener.accept() else {
                        break;
                    };
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    accepts.fetch_add(1, Ordering::SeqCst);
                    let (config, requests, handler) =
                        (config.clone(), requests.clone(), handler.clone());
                    std::thread::spawn(move || serve(tcp, config, &requests, &*handler));
                }
            })
        };
        TestServer {
            port,
            accepts,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    pub fn accepts(&self) -> usize {
        self.accepts.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().expect("requests lock").clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(
    tcp: TcpStream,
    config: Arc<ServerConfig>,
    requests: &Mutex<Vec<Recorded>>,
    handler: &Handler,
) {
    let _ = tcp.set_read_timeout(Some(IDLE));
    let _ = tcp.set_write_timeout(Some(IDLE));
    let Ok(conn) = ServerConnection::new(config) else {
        return;
    };
    let mut stream = BufReader::new(StreamOwned::new(conn, tcp));
    for _ in 0..MAX_REQUESTS_PER_CONNECTION {
        let Some(request) = read_request(&mut stream) else {
            return;
        };
        requests
            .lock()
            .expect("requests lock")
            .push(request.clone());
        if !reply(stream.get_mut(), handler(&request)) {
            return;
        }
    }
}

/// Read one HTTP/1.1 request; `None` on EOF, error or garbage.
fn read_request(stream: &mut impl BufRead) -> Option<Recorded> {
    let mut line = String::new();
    if stream.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    for _ in 0..100 {
        let mut h = String::new();
        if stream.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len.min(1 << 20)];
    stream.read_exact(&mut body).ok()?;
    Some(Recorded {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Write a reply; false when the connection should end.
fn reply(stream: &mut impl Write, reply: Reply) -> bool {
    match reply {
        Reply::Respond {
            status,
            headers,
            body,
        } => {
            let mut head = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", body.len());
            for (k, v) in headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            stream.write_all(head.as_bytes()).is_ok()
                && stream.write_all(&body).is_ok()
                && stream.flush().is_ok()
        }
        Reply::Chunked { status, body } => {
            let mut out =
                format!("HTTP/1.1 {status} X\r\nTransfer-Encoding: chunked\r\n\r\n").into_bytes();
            for chunk in body.chunks(512) {
                out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                out.extend_from_slice(chunk);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
            stream.write_all(&out).is_ok() && stream.flush().is_ok()
        }
        Reply::Delay(d, inner) => {
            std::thread::sleep(d);
            self::reply(stream, *inner)
        }
        Reply::Close => false,
    }
}

/// A certificate and its key.
pub(crate) struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: Vec<u8>,
}

impl Identity {
    pub fn leaf(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }

    pub fn server_config(&self) -> Arc<ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(
                self.chain.clone(),
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone())),
            )
            .expect("server cert");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

/// A self-signed certificate for `sans`, like cPanel's per-host default.
pub(crate) fn self_signed(sans: &[&str]) -> Identity {
    let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    let ck = rcgen::generate_simple_self_signed(sans).expect("self-signed");
    Identity {
        chain: vec![ck.cert.der().clone()],
        key: ck.signing_key.serialize_der(),
    }
}

/// A test certificate authority.
pub(crate) struct TestCa {
    pub cert: rcgen::Certificate,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    pub fn new() -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "tokenfleet test CA");
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().expect("ca key");
        let cert = params.self_signed(&key).expect("ca cert");
        TestCa {
            cert,
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    pub fn issue(&self, sans: &[&str]) -> Identity {
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(sans).expect("leaf params");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("leaf cert");
        Identity {
            chain: vec![cert.der().clone(), self.cert.der().clone()],
            key: key.serialize_der(),
        }
    }
}
