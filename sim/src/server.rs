//! The simulated servers' network side: a small hand-written HTTP/1.1 server over TLS (keep-alive,
//! Content-Length bodies) that gives exact control over faults a real HTTP stack would hide: a
//! create performed and then the connection dropped, a reset mid-body, a body that never ends, a
//! listener that disappears. Also the counters tests read.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::spec::{CphulkConfig, EchoAuth, Faults, MAX_BATCH_COMMANDS, OVERSIZED_CREATE_BYTES};
use crate::state::{
    Args, Cphulk, HostState, TokenOwner, missing_arg, now_epoch, parse_expires, uapi_err,
};

const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 1024 * 1024;
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HANG_FOR: Duration = Duration::from_secs(3600);

pub(crate) const TOKEN_ONLY_UAPI: &str =
    "Token authentication allows access to UAPI or API 2 calls only.";
pub(crate) const ACCESS_DENIED_JSON: &str = r#"{"cpanelresult":{"apiversion":"2","error":"Access denied","data":{"reason":"Access denied","result":"0"},"type":"text"}}"#;
pub(crate) const LEGACY_BAD_USER: &str = "User parameter is invalid or was not supplied";
const JSON: &str = "application/json; charset=utf-8";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Port {
    Whm,
    Cpanel,
}

/// Counters for one host, both ports together.
#[derive(Default)]
pub(crate) struct Stats {
    pub requests: Mutex<BTreeMap<String, u64>>,
    pub total: AtomicU64,
    pub in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
    pub failed_auth: AtomicU64,
    pub blocked: AtomicU64,
    pub tls_handshakes: AtomicU64,
    pub connections: AtomicU64,
    /// WHM API 1 `batch` requests that ran (authenticated, within the cap).
    pub batches: AtomicU64,
    /// Commands those batches ran (each also counts under its own route key).
    pub batch_commands: AtomicU64,
    /// Requests refused 401/403 by `fail_routes` (a batch counts once).
    pub refused_by_route: AtomicU64,
}

pub(crate) struct InFlight<'a>(&'a Stats);

impl<'a> InFlight<'a> {
    pub(crate) fn enter(stats: &'a Stats) -> InFlight<'a> {
        let now = stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        stats.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(stats)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

pub(crate) enum PortCmd {
    Down(std::sync::mpsc::Sender<()>),
    Up(std::net::TcpListener),
}

pub(crate) struct HostInner {
    pub name: String,
    /// Where it listens: 127.0.0.1, or its own loopback address; `address` is its text.
    pub ip: std::net::Ipv4Addr,
    pub address: String,
    pub whm_port: u16,
    pub cpanel_port: u16,
    pub cert_der: Vec<u8>,
    pub acceptor: TlsAcceptor,
    pub auth_failure_status: u16,
    /// Changeable while the fleet runs (`SimHost::set_cphulk`).
    pub cphulk_cfg: Mutex<CphulkConfig>,
    pub state: Mutex<HostState>,
    pub cphulk: Mutex<Cphulk>,
    pub faults: Mutex<Faults>,
    pub stats: Stats,
    pub port_ctl: Vec<mpsc::UnboundedSender<PortCmd>>,
    /// How many `odd_token_after_create` answers this host gave: picks the next odd shape.
    pub odd_answers: AtomicU64,
}

/// Lock a mutex, recovering from poisoning (a panicking test thread must not wedge the fleet).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl HostInner {
    pub(crate) fn count(&self, key: &str) {
        self.stats.total.fetch_add(1, Ordering::Relaxed);
        let mut map = lock(&self.stats.requests);
        match map.get_mut(key) {
            Some(n) => *n += 1,
            None => {
                map.insert(key.to_string(), 1);
            }
        }
    }

    /// A command inside a `batch`: counted under its own route key (so per-route counts and
    /// `mutations` mean the same whatever the batch size), not as a request of its own.
    fn count_command(&self, key: &str) {
        self.stats.batch_commands.fetch_add(1, Ordering::Relaxed);
        let mut map = lock(&self.stats.requests);
        *map.entry(key.to_string()).or_insert(0) += 1;
    }

    fn is_down(&self) -> bool {
        lock(&self.faults).down
    }

    /// Use up one of a fault's "next N" counters: true when it was not yet at zero.
    pub(crate) fn take(&self, counter: impl FnOnce(&mut Faults) -> &mut u32) -> bool {
        let mut f = lock(&self.faults);
        let n = counter(&mut f);
        if *n > 0 {
            *n -= 1;
            true
        } else {
            false
        }
    }

    /// Called after any create call, whatever its outcome: true when its answer is lost.
    pub(crate) fn take_drop_create_answer(&self) -> bool {
        self.take(|f| &mut f.drop_create_answers)
    }

    /// Called after a create was performed: the answer one of the after-create faults puts in
    /// place of the normal one, in this order of precedence (one create uses up one counter):
    /// `drop_after_create`, `inner_error_after_create`, `oversized_after_create`,
    /// `odd_token_after_create`. `None`: answer normally.
    pub(crate) fn after_create(&self, created: &Created) -> Option<Action> {
        if self.take(|f| &mut f.drop_after_create) {
            return Some(Action::Drop);
        }
        if self.take(|f| &mut f.inner_error_after_create) {
            return Some(Action::Reply(created.inner_error()));
        }
        if self.take(|f| &mut f.oversized_after_create) {
            return Some(Action::Reply(created.oversized()));
        }
        if self.take(|f| &mut f.odd_token_after_create) {
            let n = self.odd_answers.fetch_add(1, Ordering::Relaxed);
            return Some(Action::Reply(created.odd_token(n)));
        }
        None
    }
}

/// A create the server performed: the new secret and the normal answer, kept so an
/// after-create fault can answer differently.
pub(crate) struct Created {
    name: String,
    secret: String,
    /// The normal answer, as sent when no fault applies.
    answer: Value,
    /// JSON pointer to the `token` in `answer`.
    token_at: &'static str,
    /// JSON pointer to the UAPI envelope in `answer` (`""`: the answer is one); `None` for WHM
    /// API 1 `api_token_create`, whose failure is `metadata.result: 0`.
    uapi_at: Option<&'static str>,
}

impl Created {
    fn normal(&self) -> Response {
        Response::json(&self.answer)
    }

    /// The API-level failure an `inner_error_after_create` host answers, quoting the secret.
    fn inner_error(&self) -> Response {
        let message = format!(
            "Internal error after saving token {}: the token index for “{}” could not be updated.",
            self.secret, self.name
        );
        match self.uapi_at {
            None => whm_fail("api_token_create", &format!("{CREATE_FAILED}{message}")),
            Some(at) => {
                let mut v = self.answer.clone();
                match v.pointer_mut(at) {
                    Some(slot) => *slot = uapi_err(message),
                    None => v = uapi_err(message),
                }
                Response::json(&v)
            }
        }
    }

    /// The normal answer padded to exactly [`OVERSIZED_CREATE_BYTES`].
    fn oversized(&self) -> Response {
        let mut v = self.answer.clone();
        let len = v.to_string().len() + r#","padding":"""#.len();
        v["padding"] = Value::String("x".repeat(OVERSIZED_CREATE_BYTES.saturating_sub(len)));
        Response::json(&v)
    }

    /// The normal answer with an odd-shaped `token`; `n` picks the shape (see
    /// [`Faults::odd_token_after_create`]).
    fn odd_token(&self, n: u64) -> Response {
        let odd = match n % 4 {
            0 => Value::from(31_415_926_535_897_932u64),
            1 => json!({ "value": self.secret }),
            2 => Value::String(self.secret.to_ascii_lowercase()),
            _ => Value::String(format!("{}{}", self.secret, &self.secret[..8])),
        };
        let mut v = self.answer.clone();
        if let Some(slot) = v.pointer_mut(self.token_at) {
            *slot = odd;
        }
        Response::json(&v)
    }
}

/// Accept connections on one port; the listener is closed and reopened on command (`down`).
pub(crate) async fn accept_loop(
    host: Arc<HostInner>,
    port: Port,
    initial: Option<std::net::TcpListener>,
    mut rx: mpsc::UnboundedReceiver<PortCmd>,
) {
    let mut current = initial.and_then(|l| TcpListener::from_std(l).ok());
    loop {
        let cmd = match &current {
            Some(listener) => tokio::select! {
                accepted = listener.accept() => {
                    match accepted {
                        Ok((tcp, peer)) => {
                            tokio::spawn(serve_connection(host.clone(), port, tcp, peer));
                        }
                        // Out of file descriptors or similar: back off instead of spinning.
                        Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                    continue;
                }
                cmd = rx.recv() => cmd,
            },
            None => rx.recv().await,
        };
        match cmd {
            None => return,
            Some(PortCmd::Down(ack)) => {
                current = None;
                let _ = ack.send(());
            }
            Some(PortCmd::Up(l)) => current = TcpListener::from_std(l).ok(),
        }
    }
}

struct Request {
    path: String,
    query: String,
    authorization: Option<String>,
    keep_alive: bool,
    body: Vec<u8>,
}

enum ReadOutcome {
    Request(Request),
    /// The client closed the connection (or went idle) between requests.
    Closed,
    /// A malformed request: answer this and close.
    Bad(Response),
}

pub(crate) struct Response {
    status: u16,
    content_type: &'static str,
    headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body: body.into(),
        }
    }
    fn json(value: &Value) -> Response {
        Response::new(200, JSON, value.to_string())
    }
    fn text(status: u16, text: &str) -> Response {
        Response::new(status, "text/plain; charset=utf-8", text)
    }
}

/// What to do with one request.
pub(crate) enum Action {
    Reply(Response),
    /// Close without answering (a create was performed first, or the host went down).
    Drop,
    Hang,
    EndlessBody,
    OversizedBody(usize),
    ResetMidBody,
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        411 => "Length Required",
        413 => "Payload Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

fn head(status: u16, content_type: &str, extra: &[(&str, String)], keep_alive: bool) -> String {
    let mut h = format!(
        "HTTP/1.1 {status} {}\r\nServer: cpsrvd/11.126.0.9\r\nContent-Type: {content_type}\r\nConnection: {}\r\n",
        reason_phrase(status),
        if keep_alive { "keep-alive" } else { "close" }
    );
    for (k, v) in extra {
        h.push_str(k);
        h.push_str(": ");
        h.push_str(v);
        h.push_str("\r\n");
    }
    h
}

type Stream = TlsStream<TcpStream>;

async fn serve_connection(host: Arc<HostInner>, port: Port, tcp: TcpStream, peer: SocketAddr) {
    host.stats.connections.fetch_add(1, Ordering::Relaxed);
    let _ = tcp.set_nodelay(true);
    if lock(&host.faults).hang_accept {
        // Hold the socket, reading nothing: the client's ClientHello is never answered.
        tokio::time::sleep(HANG_FOR).await;
        drop(tcp);
        return;
    }
    let mut stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, host.acceptor.accept(tcp)).await
    {
        Ok(Ok(s)) => s,
        _ => return,
    };
    host.stats.tls_handshakes.fetch_add(1, Ordering::Relaxed);
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        let req =
            match tokio::time::timeout(IDLE_TIMEOUT, read_request(&mut stream, &mut buf)).await {
                Ok(ReadOutcome::Request(r)) => r,
                Ok(ReadOutcome::Bad(resp)) => {
                    let _ = send(&host, &mut stream, resp, false).await;
                    return;
                }
                Ok(ReadOutcome::Closed) | Err(_) => return,
            };
        if host.is_down() {
            return;
        }
        let keep_alive = req.keep_alive;
        let action = {
            let _in_flight = InFlight::enter(&host.stats);
            let action = handle(&host, port, peer.ip(), req).await;
            match action {
                Action::Reply(resp) => {
                    if send(&host, &mut stream, resp, keep_alive).await.is_err() {
                        return;
                    }
                    None
                }
                Action::Hang => {
                    tokio::time::sleep(HANG_FOR).await;
                    return;
                }
                other => Some(other),
            }
        };
        match action {
            None if keep_alive => continue,
            None => {
                let _ = stream.shutdown().await;
                return;
            }
            Some(Action::Drop) => return,
            Some(Action::EndlessBody) => {
                endless_body(&mut stream).await;
                return;
            }
            Some(Action::OversizedBody(n)) => {
                oversized_body(&mut stream, n).await;
                return;
            }
            Some(Action::ResetMidBody) => {
                reset_mid_body(stream).await;
                return;
            }
            Some(Action::Reply(_) | Action::Hang) => return,
        }
    }
}

async fn read_request(stream: &mut Stream, buf: &mut Vec<u8>) -> ReadOutcome {
    loop {
        if !buf.is_empty() {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut parsed = httparse::Request::new(&mut headers);
            match parsed.parse(buf) {
                Ok(httparse::Status::Complete(head_len)) => {
                    let target = parsed.path.unwrap_or("/");
                    let (path, query) = match target.split_once('?') {
                        Some((p, q)) => (p.to_string(), q.to_string()),
                        None => (target.to_string(), String::new()),
                    };
                    let version = parsed.version.unwrap_or(1);
                    let mut authorization = None;
                    let mut content_length: Option<usize> = None;
                    let mut connection: Option<String> = None;
                    let mut chunked = false;
                    for h in parsed.headers.iter() {
                        let value = String::from_utf8_lossy(h.value).trim().to_string();
                        if h.name.eq_ignore_ascii_case("authorization") {
                            authorization = Some(value);
                        } else if h.name.eq_ignore_ascii_case("content-length") {
                            match value.parse() {
                                Ok(n) => content_length = Some(n),
                                Err(_) => {
                                    return ReadOutcome::Bad(Response::text(
                                        400,
                                        "Bad Content-Length\n",
                                    ));
                                }
                            }
                        } else if h.name.eq_ignore_ascii_case("connection") {
                            connection = Some(value.to_ascii_lowercase());
                        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                            chunked = true;
                        }
                    }
                    if chunked {
                        return ReadOutcome::Bad(Response::text(
                            411,
                            "Send the form body with a Content-Length.\n",
                        ));
                    }
                    let body_len = content_length.unwrap_or(0);
                    if body_len > MAX_BODY {
                        return ReadOutcome::Bad(Response::text(413, "Request body too large\n"));
                    }
                    let keep_alive = match (version, connection.as_deref()) {
                        (_, Some(c)) if c.contains("close") => false,
                        (0, Some(c)) => c.contains("keep-alive"),
                        (0, None) => false,
                        _ => true,
                    };
                    let total = head_len + body_len;
                    while buf.len() < total {
                        if read_more(stream, buf).await == 0 {
                            return ReadOutcome::Closed;
                        }
                    }
                    let body = buf[head_len..total].to_vec();
                    buf.drain(..total);
                    return ReadOutcome::Request(Request {
                        path,
                        query,
                        authorization,
                        keep_alive,
                        body,
                    });
                }
                Ok(httparse::Status::Partial) => {
                    if buf.len() > MAX_HEAD {
                        return ReadOutcome::Bad(Response::text(400, "Request head too large\n"));
                    }
                }
                Err(_) => return ReadOutcome::Bad(Response::text(400, "Bad request\n")),
            }
        }
        if read_more(stream, buf).await == 0 {
            return ReadOutcome::Closed;
        }
    }
}

async fn read_more(stream: &mut Stream, buf: &mut Vec<u8>) -> usize {
    let mut chunk = [0u8; 8192];
    match stream.read(&mut chunk).await {
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            n
        }
        Err(_) => 0,
    }
}

/// Write a normal answer; with the host's `drip` fault set, the head at once and the body a byte
/// at a time (what defeats a client whose timeout bounds each read, not the whole request).
async fn send(
    host: &HostInner,
    stream: &mut Stream,
    resp: Response,
    keep_alive: bool,
) -> std::io::Result<()> {
    let drip = lock(&host.faults).drip;
    let body_len = resp.body.len();
    let bytes = response_bytes(resp, keep_alive);
    if drip.is_zero() {
        stream.write_all(&bytes).await?;
        return stream.flush().await;
    }
    let (head, body) = bytes.split_at(bytes.len() - body_len);
    stream.write_all(head).await?;
    stream.flush().await?;
    for b in body {
        tokio::time::sleep(drip).await;
        stream.write_all(std::slice::from_ref(b)).await?;
        stream.flush().await?;
    }
    Ok(())
}

fn response_bytes(resp: Response, keep_alive: bool) -> Vec<u8> {
    let mut out = head(resp.status, resp.content_type, &resp.headers, keep_alive);
    out.push_str(&format!("Content-Length: {}\r\n\r\n", resp.body.len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&resp.body);
    bytes
}

async fn endless_body(stream: &mut Stream) {
    let mut h = head(
        200,
        "application/json; charset=utf-8",
        &[("Transfer-Encoding", "chunked".to_string())],
        false,
    );
    h.push_str("\r\n");
    let first = r#"{"data":{"tokens":["#;
    let mut start = h.into_bytes();
    start.extend_from_slice(format!("{:x}\r\n{first}\r\n", first.len()).as_bytes());
    if stream.write_all(&start).await.is_err() {
        return;
    }
    let item = r#"{"name":"padding","create_time":0,"expires_at":null},"#.repeat(256);
    let chunk = format!("{:x}\r\n{item}\r\n", item.len()).into_bytes();
    let deadline = Instant::now() + HANG_FOR;
    while Instant::now() < deadline {
        if stream.write_all(&chunk).await.is_err() || stream.flush().await.is_err() {
            return;
        }
    }
}

async fn oversized_body(stream: &mut Stream, n: usize) {
    let mut h = head(200, "application/json; charset=utf-8", &[], false);
    h.push_str(&format!("Content-Length: {n}\r\n\r\n"));
    if stream.write_all(h.as_bytes()).await.is_err() {
        return;
    }
    let (prefix, suffix) = (r#"{"data":""#.as_bytes(), r#""}"#.as_bytes());
    let mut remaining = n;
    if n >= prefix.len() + suffix.len() {
        if stream.write_all(prefix).await.is_err() {
            return;
        }
        remaining -= prefix.len() + suffix.len();
    }
    let pad = vec![b'x'; 64 * 1024];
    while remaining > 0 {
        let k = remaining.min(pad.len());
        if stream.write_all(&pad[..k]).await.is_err() {
            return;
        }
        remaining -= k;
    }
    if n >= prefix.len() + suffix.len() {
        let _ = stream.write_all(suffix).await;
    }
    let _ = stream.flush().await;
    let _ = stream.shutdown().await;
}

async fn reset_mid_body(mut stream: Stream) {
    let partial = r#"{"data":{"uapi":{"data":{"create_time":1700000000,"tok"#;
    let mut h = head(200, "application/json; charset=utf-8", &[], false);
    h.push_str("Content-Length: 4096\r\n\r\n");
    h.push_str(partial);
    if stream.write_all(h.as_bytes()).await.is_err() || stream.flush().await.is_err() {
        return;
    }
    // Let the partial body reach the client before the reset.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let _ = stream.get_ref().0.set_zero_linger();
    drop(stream);
}

/// The request-count key: `whm/<function>`, `whm/uapi_cpanel/<Module>/<function>`,
/// `whm/cpanel/<Module>/<function>` (legacy), `cpanel/<Module>/<function>`.
fn route_key(port: Port, path: &str, args: &Args) -> String {
    match port {
        Port::Whm => match path.strip_prefix("/json-api/") {
            Some("uapi_cpanel") => format!(
                "whm/uapi_cpanel/{}/{}",
                args.get("cpanel.module").unwrap_or("-"),
                args.get("cpanel.function").unwrap_or("-")
            ),
            Some("cpanel") => format!(
                "whm/cpanel/{}/{}",
                args.get("cpanel_jsonapi_module").unwrap_or("-"),
                args.get("cpanel_jsonapi_func").unwrap_or("-")
            ),
            Some(f) if !f.is_empty() && !f.contains('/') => format!("whm/{f}"),
            _ => "whm/other".to_string(),
        },
        Port::Cpanel => match path.strip_prefix("/execute/") {
            Some(rest) if rest.split('/').count() == 2 => format!("cpanel/{rest}"),
            _ => "cpanel/other".to_string(),
        },
    }
}

enum Principal {
    Whm(String),
    Account(String),
}

async fn handle(host: &HostInner, port: Port, ip: IpAddr, req: Request) -> Action {
    let args = Args::parse(req.query.as_bytes(), &req.body);
    let key = route_key(port, &req.path, &args);
    host.count(&key);
    let faults = lock(&host.faults).clone();
    let mut delay = faults.latency;
    if !faults.jitter.is_zero() {
        delay += faults.jitter.mul_f64(fastrand::f64());
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if faults.hang {
        return Action::Hang;
    }
    if faults.error_503_rate > 0.0 && fastrand::f64() < faults.error_503_rate {
        return Action::Reply(Response::new(
            503,
            "text/html; charset=utf-8",
            "<html><head><title>503 Service Unavailable</title></head><body><h1>503 Service Unavailable</h1><p>The server is temporarily busy. Try again later.</p></body></html>\n",
        ));
    }
    if faults.html_login {
        return Action::Reply(Response::new(200, "text/html; charset=utf-8", LOGIN_PAGE));
    }
    if let Some(location) = &faults.redirect_to {
        let mut r = Response::text(302, "Moved\n");
        r.headers.push(("Location", location.clone()));
        return Action::Reply(r);
    }
    if faults.endless_body {
        return Action::EndlessBody;
    }
    if let Some(n) = faults.oversized_body {
        return Action::OversizedBody(n);
    }
    if faults.reset_mid_body {
        return Action::ResetMidBody;
    }
    let echo = faults.echo_auth.zip(req.authorization.as_deref());
    if let Some(&status) = faults.fail_routes.get(&key) {
        if matches!(status, 401 | 403) {
            host.stats.refused_by_route.fetch_add(1, Ordering::Relaxed);
        }
        return Action::Reply(match (status, echo) {
            (401 | 403, Some((mode, header))) => {
                echo_refusal(status, mode, "Access denied", header)
            }
            (401 | 403, None) => Response::text(status, "Access denied\n"),
            _ => Response::text(status, &format!("{} {}\n", status, reason_phrase(status))),
        });
    }
    let principal = match authenticate(host, port, ip, req.authorization.as_deref(), &faults) {
        Ok(p) => p,
        Err(resp) => return Action::Reply(resp),
    };
    if faults.deny_uapi_cpanel
        && port == Port::Whm
        && let Some(function @ ("uapi_cpanel" | "cpanel")) = req.path.strip_prefix("/json-api/")
    {
        return Action::Reply(acl_denied(function));
    }
    if key == "whm/batch"
        && let Principal::Whm(user) = &principal
    {
        return batch(host, user, &args, &faults).await;
    }
    let is_create = key.ends_with("create_full_access") || key.ends_with("api_token_create");
    if is_create && let Some((EchoAuth::Reason, header)) = echo {
        let resp = echoed_create_refusal(&key, header);
        if host.take_drop_create_answer() {
            return Action::Drop;
        }
        return Action::Reply(resp);
    }
    let server_now = now_epoch().saturating_add(faults.clock_offset);
    let (resp, created) = match (port, principal) {
        (Port::Whm, Principal::Whm(user)) => whm_call(host, &user, &req.path, &args, server_now),
        (Port::Cpanel, Principal::Account(user)) => {
            cpanel_call(host, &user, &req.path, &args, server_now)
        }
        // authenticate() only returns principals that fit the port.
        _ => (Response::text(403, "Access denied\n"), None),
    };
    if let Some(action) = created.as_ref().and_then(|c| host.after_create(c)) {
        return action;
    }
    if is_create && host.take_drop_create_answer() {
        return Action::Drop;
    }
    Action::Reply(resp)
}

/// An `echo_auth` refusal: `message` with the Authorization header quoted, in the mode's shape
/// (see [`EchoAuth`]).
fn echo_refusal(status: u16, mode: EchoAuth, message: &str, header: &str) -> Response {
    let text = format!("{message} (Authorization: {header})");
    match (mode, status) {
        (EchoAuth::Reason, _) => Response::new(
            status,
            JSON,
            json!({"metadata": {"command": "cpsrvd", "reason": text, "result": 0, "version": 1}})
                .to_string(),
        ),
        (_, 401) => {
            let mut r = Response::text(401, &format!("{text}\n"));
            r.headers
                .push(("WWW-Authenticate", "Basic realm=\"cPanel\"".to_string()));
            r
        }
        _ => Response::new(
            status,
            JSON,
            json!({"cpanelresult": {
                "apiversion": "2",
                "error": text,
                "data": {"reason": text, "result": "0"},
                "type": "text",
            }})
            .to_string(),
        ),
    }
}

/// `echo_auth = "reason"`: a create refused, creating nothing, with the header quoted in the
/// failure envelope of the create's route (`key`, see [`route_key`]).
fn echoed_create_refusal(key: &str, header: &str) -> Response {
    let message =
        format!("The request with “Authorization: {header}” was refused by the token store.");
    if key == "whm/api_token_create" {
        whm_fail("api_token_create", &format!("{CREATE_FAILED}{message}"))
    } else if key.starts_with("whm/uapi_cpanel/") {
        whm_fail("uapi_cpanel", &message)
    } else if key.starts_with("whm/cpanel/") {
        Response::json(&json!({
            "apiversion": 3,
            "func": "create_full_access",
            "module": "Tokens",
            "result": uapi_err(message),
        }))
    } else {
        Response::json(&uapi_err(message))
    }
}

const LOGIN_PAGE: &str = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>WHM Login</title></head>\n<body class=\"login\"><div id=\"login-wrapper\"><form id=\"login_form\" action=\"/login/?login_only=1\" method=\"post\">\n<label for=\"user\">Username</label><input name=\"user\" id=\"user\" type=\"text\">\n<label for=\"pass\">Password</label><input name=\"pass\" id=\"pass\" type=\"password\">\n<button type=\"submit\" id=\"login_submit\">Log in</button></form></div></body></html>\n";

/// A refused login (it feeds cPHulk). `echo`: the `echo_auth` mode and the header to quote.
fn auth_failure(host: &HostInner, ip: IpAddr, echo: Option<(EchoAuth, &str)>) -> Response {
    host.stats.failed_auth.fetch_add(1, Ordering::Relaxed);
    let cfg = *lock(&host.cphulk_cfg);
    lock(&host.cphulk).record_failure(ip, Instant::now(), &cfg);
    if let Some((mode, header)) = echo {
        let status = match mode {
            EchoAuth::Unauthorized => 401,
            EchoAuth::Forbidden => 403,
            EchoAuth::Reason => host.auth_failure_status,
        };
        return echo_refusal(status, mode, "Access denied", header);
    }
    if host.auth_failure_status == 403 {
        Response::new(403, JSON, ACCESS_DENIED_JSON)
    } else {
        let mut r = Response::text(401, "Access denied\n");
        r.headers
            .push(("WWW-Authenticate", "Basic realm=\"cPanel\"".to_string()));
        r
    }
}

/// `deny_uapi_cpanel`: the 403 a WHM user whose token lacks the ACL for `function` gets, in the
/// documented cPanel JSON access-denied shape (see [`ACCESS_DENIED_JSON`]).
fn acl_denied(function: &str) -> Response {
    let reason =
        format!("Access denied: the API token's ACLs do not permit the call “{function}”.");
    Response::new(
        403,
        JSON,
        json!({"cpanelresult": {
            "apiversion": "2",
            "error": "Access denied",
            "data": {"reason": reason, "result": "0"},
            "type": "text",
        }})
        .to_string(),
    )
}

/// Who the request's credential is, or the refusal to answer. Reads `echo_auth` and
/// `refuse_cpanel_tokens` from `faults`.
fn authenticate(
    host: &HostInner,
    port: Port,
    ip: IpAddr,
    authorization: Option<&str>,
    faults: &Faults,
) -> Result<Principal, Response> {
    let echo_mode = faults.echo_auth;
    if lock(&host.cphulk).is_blocked(ip, Instant::now()) {
        host.stats.blocked.fetch_add(1, Ordering::Relaxed);
        return Err(Response::text(
            401,
            &format!(
                "Brute Force Protection: your IP address ({ip}) has been blocked by cPHulk because of too many failed login attempts. Wait and try again later.\n"
            ),
        ));
    }
    let Some(header) = authorization else {
        let mut r = Response::text(401, "Access denied: no credentials supplied\n");
        r.headers
            .push(("WWW-Authenticate", "Basic realm=\"cPanel\"".to_string()));
        return Err(r);
    };
    let echo = echo_mode.map(|m| (m, header));
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let rest = rest.trim();
    let scheme = scheme.to_ascii_lowercase();
    let user_token = || rest.split_once(':');
    let state = lock(&host.state);
    match (port, scheme.as_str()) {
        (Port::Whm, "whm") => match user_token() {
            Some((u, t)) if state.whm_auth(u, t) => Ok(Principal::Whm(u.to_string())),
            _ => {
                drop(state);
                Err(auth_failure(host, ip, echo))
            }
        },
        (Port::Whm, "cpanel") => match user_token() {
            Some((u, t)) if state.account_token_auth(u, t) => Err(match echo {
                Some((mode, header)) => echo_refusal(403, mode, TOKEN_ONLY_UAPI, header),
                None => Response::text(403, TOKEN_ONLY_UAPI),
            }),
            _ => {
                drop(state);
                Err(auth_failure(host, ip, echo))
            }
        },
        (Port::Cpanel, "cpanel") => match user_token() {
            Some((u, t)) if !faults.refuse_cpanel_tokens && state.account_token_auth(u, t) => {
                Ok(Principal::Account(u.to_string()))
            }
            _ => {
                drop(state);
                Err(auth_failure(host, ip, echo))
            }
        },
        (Port::Cpanel, "basic") => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest)
                .ok()
                .and_then(|b| String::from_utf8(b).ok());
            match decoded.as_deref().and_then(|s| s.split_once(':')) {
                Some((u, p)) if state.account_password_auth(u, p) => {
                    Ok(Principal::Account(u.to_string()))
                }
                _ => {
                    drop(state);
                    Err(auth_failure(host, ip, echo))
                }
            }
        }
        _ => {
            drop(state);
            Err(auth_failure(host, ip, echo))
        }
    }
}

fn whm_ok(command: &str, data: Value) -> Response {
    Response::json(&whm_ok_value(command, data))
}

fn whm_ok_value(command: &str, data: Value) -> Value {
    json!({
        "data": data,
        "metadata": {"command": command, "reason": "OK", "result": 1, "version": 1}
    })
}

fn whm_fail(command: &str, reason: &str) -> Response {
    Response::json(&json!({
        "metadata": {"command": command, "reason": reason, "result": 0, "version": 1}
    }))
}

const CREATE_FAILED: &str = "The system failed to create the API token: ";

/// A WHM API 1 call as WHM user `user`. Returns the response and, when a create was performed,
/// what an after-create fault needs. `server_now`: the server's clock, for a new `create_time`.
pub(crate) fn whm_call(
    host: &HostInner,
    user: &str,
    path: &str,
    args: &Args,
    server_now: i64,
) -> (Response, Option<Created>) {
    let Some(function) = path.strip_prefix("/json-api/") else {
        return (Response::text(404, "Not Found\n"), None);
    };
    let mut state = lock(&host.state);
    match function {
        "version" => (whm_ok("version", json!({"version": "11.126.0.9"})), None),
        "listaccts" => {
            let acct: Vec<Value> = state
                .accounts
                .iter()
                .filter(|(_, a)| user == "root" || a.owner == user)
                .map(|(name, a)| {
                    json!({
                        "user": name,
                        "domain": format!("{name}.example.test"),
                        "owner": a.owner,
                        "suspended": if a.suspended { 1 } else { 0 },
                        "suspendreason": if a.suspended { "Suspended by cpanel-sim" } else { "not suspended" },
                        "email": format!("{name}@example.test"),
                        "plan": "default",
                        "ip": "127.0.0.1",
                        "partition": "home",
                    })
                })
                .collect();
            (whm_ok("listaccts", json!({"acct": acct})), None)
        }
        "api_token_create" => {
            let Some(name) = args.get("token_name") else {
                return (
                    whm_fail(
                        function,
                        &format!("{CREATE_FAILED}{}", missing_arg("token_name")),
                    ),
                    None,
                );
            };
            let epoch = match parse_expires(args.get("expires_at").unwrap_or(""), true) {
                Ok(e) => e,
                Err(m) => return (whm_fail(function, &format!("{CREATE_FAILED}{m}")), None),
            };
            let acls: Vec<&str> = args.repeated("acl");
            let acls: Vec<&str> = if acls.is_empty() { vec!["all"] } else { acls };
            let ips = args.repeated("whitelist_ip");
            if let Err(m) = crate::state::check_whitelist(&ips) {
                return (whm_fail(function, &format!("{CREATE_FAILED}{m}")), None);
            }
            let expires_value = epoch.map(Value::from).unwrap_or(Value::Null);
            let Some(tokens) = state.whm_users.get_mut(user) else {
                return (whm_fail(function, "Access denied"), None);
            };
            match crate::state::create_in(tokens, name, expires_value.clone(), epoch, server_now) {
                Ok((secret, rec)) => {
                    rec.acls = acls.iter().map(|a| a.to_string()).collect();
                    rec.whitelist_ips = ips.iter().map(|ip| ip.to_string()).collect();
                    let mut data = json!({
                        "name": name,
                        "token": secret,
                        "create_time": rec.create_time,
                        "expires_at": expires_value,
                        "acls": acls,
                    });
                    if !ips.is_empty() {
                        data["whitelist_ips"] = json!(ips);
                    }
                    created(Created {
                        name: name.to_string(),
                        secret,
                        answer: whm_ok_value(function, data),
                        token_at: "/data/token",
                        uapi_at: None,
                    })
                }
                Err(m) => (whm_fail(function, &format!("{CREATE_FAILED}{m}")), None),
            }
        }
        "api_token_list" => {
            let mut tokens = serde_json::Map::new();
            for t in state.whm_users.get(user).into_iter().flatten() {
                tokens.insert(t.name.clone(), whm_token_details(t));
            }
            (whm_ok(function, json!({"tokens": tokens})), None)
        }
        "api_token_get_details" => {
            // Only fixed messages here: the secret asked about is never echoed back.
            let Some(secret) = args.get("token").filter(|t| !t.is_empty()) else {
                return (whm_fail(function, &missing_arg("token")), None);
            };
            let hash = crate::state::hash_token(secret);
            match state
                .whm_users
                .get(user)
                .and_then(|tokens| tokens.iter().find(|t| t.hash == hash))
            {
                Some(t) => (whm_ok(function, whm_token_details(t)), None),
                None => (whm_fail(function, "The API token does not exist."), None),
            }
        }
        "api_token_revoke" => {
            let names: Vec<String> = args
                .repeated("token_name")
                .into_iter()
                .map(str::to_string)
                .collect();
            if names.is_empty() {
                return (whm_fail(function, &missing_arg("token_name")), None);
            }
            let state = &mut *state;
            if let Some(tokens) = state.whm_users.get_mut(user) {
                let owner = TokenOwner::WhmUser(user.to_string());
                for n in &names {
                    let gone = crate::state::revoke_in(tokens, n);
                    state
                        .revoked
                        .extend(gone.into_iter().map(|t| (owner.clone(), t)));
                }
            }
            (whm_ok(function, json!({})), None)
        }
        "api_token_update" => {
            let Some(name) = args.get("token_name").filter(|n| !n.is_empty()) else {
                return (whm_fail(function, &missing_arg("token_name")), None);
            };
            let Some(tokens) = state.whm_users.get_mut(user) else {
                return (whm_fail(function, "Access denied"), None);
            };
            match update_whm_token(tokens, name, args) {
                Ok(t) => (whm_ok(function, whm_token_written(t)), None),
                Err(m) => (whm_fail(function, &m), None),
            }
        }
        "uapi_cpanel" => {
            let Some(account) = args.get("cpanel.user").filter(|u| !u.is_empty()) else {
                return (whm_fail(function, &missing_arg("cpanel.user")), None);
            };
            if account == "root" {
                return (
                    whm_fail(
                        function,
                        "You cannot call “uapi_cpanel” for the “root” user.",
                    ),
                    None,
                );
            }
            if !state.accounts.contains_key(account) {
                return (
                    whm_fail(function, &format!("The user “{account}” does not exist.")),
                    None,
                );
            }
            if !state.may_act_for(user, account) {
                return (
                    whm_fail(
                        function,
                        &format!("You do not have permission to access the account “{account}”."),
                    ),
                    None,
                );
            }
            let module = args.get("cpanel.module").unwrap_or("");
            let func = args.get("cpanel.function").unwrap_or("");
            let (inner, secret) = if module == "Tokens" {
                state.uapi_tokens(account, func, args, server_now)
            } else {
                (uapi_err(format!("Failed to load module “{module}”.")), None)
            };
            let answer = whm_ok_value(function, json!({"uapi": inner}));
            match secret {
                Some(secret) => created(Created {
                    name: args.get("name").unwrap_or_default().to_string(),
                    secret,
                    answer,
                    token_at: "/data/uapi/data/token",
                    uapi_at: Some("/data/uapi"),
                }),
                None => (Response::json(&answer), None),
            }
        }
        "cpanel" => {
            let account = args.get("cpanel_jsonapi_user").unwrap_or("");
            if account.is_empty() || account == "root" || !state.may_act_for(user, account) {
                return (
                    Response::json(&json!({
                        "data": {"reason": LEGACY_BAD_USER, "result": "0"},
                        "type": "text",
                        "error": LEGACY_BAD_USER,
                    })),
                    None,
                );
            }
            let module = args.get("cpanel_jsonapi_module").unwrap_or("");
            let func = args.get("cpanel_jsonapi_func").unwrap_or("");
            if args.get("cpanel_jsonapi_apiversion") != Some("3") {
                return (
                    Response::json(&json!({"cpanelresult": {
                        "apiversion": args.get("cpanel_jsonapi_apiversion").unwrap_or(""),
                        "error": "cpanel-sim serves only cpanel_jsonapi_apiversion=3 (UAPI) on this route.",
                        "data": {"reason": "unsupported API version", "result": "0"},
                        "type": "text",
                    }})),
                    None,
                );
            }
            let (inner, secret) = if module == "Tokens" {
                state.uapi_tokens(account, func, args, server_now)
            } else {
                (uapi_err(format!("Failed to load module “{module}”.")), None)
            };
            let answer = json!({"apiversion": 3, "func": func, "module": module, "result": inner});
            match secret {
                Some(secret) => created(Created {
                    name: args.get("name").unwrap_or_default().to_string(),
                    secret,
                    answer,
                    token_at: "/result/data/token",
                    uapi_at: Some("/result"),
                }),
                None => (Response::json(&answer), None),
            }
        }
        other => (
            whm_fail(
                other,
                &format!("Unknown app (“{other}”) requested for this version (1) of the API."),
            ),
            None,
        ),
    }
}

/// ACL names WHM lists for every token, granted or not (a real server lists all it knows, 0 for
/// those not granted); a granted ACL not named here is listed too.
const KNOWN_ACLS: &[&str] = &[
    "all",
    "list-accts",
    "create-acct",
    "kill-acct",
    "suspend-acct",
    "edit-account",
    "passwd",
    "clustering",
    "create-user-session",
];

/// One WHM token as `api_token_list` shows it per name and `api_token_get_details` as its
/// `data` (never the secret): `acls` an object of ACL name to 0/1, `whitelist_ips` null or a list.
fn whm_token_details(t: &crate::state::TokenRec) -> Value {
    let mut acls = serde_json::Map::new();
    for known in KNOWN_ACLS {
        acls.insert(known.to_string(), json!(0));
    }
    for granted in &t.acls {
        acls.insert(granted.clone(), json!(1));
    }
    json!({
        "name": t.name,
        "create_time": t.create_time,
        "expires_at": t.expires_at,
        "acls": acls,
        "whitelist_ips": whitelist_value(t),
    })
}

/// A WHM token as a write (`api_token_update`) answers it: `acls` a list, as the create answer.
fn whm_token_written(t: &crate::state::TokenRec) -> Value {
    json!({
        "name": t.name,
        "create_time": t.create_time,
        "expires_at": t.expires_at,
        "acls": t.acls,
        "whitelist_ips": whitelist_value(t),
    })
}

fn whitelist_value(t: &crate::state::TokenRec) -> Value {
    if t.whitelist_ips.is_empty() {
        Value::Null
    } else {
        json!(t.whitelist_ips)
    }
}

/// `api_token_update` on the caller's own tokens: everything is checked before anything changes.
/// `new_name` renames (as `rename_in`); `expires_at` as on create (`0` or empty: never; absent:
/// unchanged); `acl`/`acl-N` replace the ACLs; `whitelist_ip`/`whitelist_ip-N` replace the
/// allow-list, `any` clearing it. The secret is unchanged.
fn update_whm_token<'a>(
    tokens: &'a mut [crate::state::TokenRec],
    name: &str,
    args: &Args,
) -> Result<&'a crate::state::TokenRec, String> {
    if !tokens.iter().any(|t| t.name == name) {
        return Err(format!("The API token “{name}” does not exist."));
    }
    let new_name = args.get("new_name").filter(|n| !n.is_empty());
    if let Some(n) = new_name {
        if !crate::state::valid_token_name(n) {
            return Err(crate::state::invalid_name_message(n));
        }
        if n != name && tokens.iter().any(|t| t.name == n) {
            return Err(crate::state::conflict_message(n));
        }
    }
    let expires = match args.get("expires_at") {
        None => None,
        Some(raw) => Some(parse_expires(raw, true)?),
    };
    let acls = args.repeated("acl");
    let ips = args.repeated("whitelist_ip");
    let clear_ips = ips.contains(&"any");
    if !clear_ips {
        crate::state::check_whitelist(&ips)?;
    }
    let t = tokens
        .iter_mut()
        .find(|t| t.name == name)
        .expect("checked above");
    if let Some(n) = new_name {
        t.name = n.to_string();
    }
    if let Some(epoch) = expires {
        t.expires_epoch = epoch;
        t.expires_at = epoch.map(Value::from).unwrap_or(Value::Null);
    }
    if !acls.is_empty() {
        t.acls = acls.iter().map(|a| a.to_string()).collect();
    }
    if clear_ips {
        t.whitelist_ips.clear();
    } else if !ips.is_empty() {
        t.whitelist_ips = ips.iter().map(|ip| ip.to_string()).collect();
    }
    Ok(t)
}

/// A UAPI call on the cPanel port as `account` (returns as [`whm_call`] does).
pub(crate) fn cpanel_call(
    host: &HostInner,
    account: &str,
    path: &str,
    args: &Args,
    server_now: i64,
) -> (Response, Option<Created>) {
    let Some(rest) = path.strip_prefix("/execute/") else {
        return (Response::text(404, "Not Found\n"), None);
    };
    let Some((module, func)) = rest.split_once('/') else {
        return (Response::text(404, "Not Found\n"), None);
    };
    if module != "Tokens" {
        return (
            Response::json(&uapi_err(format!("Failed to load module “{module}”."))),
            None,
        );
    }
    let (inner, secret) = lock(&host.state).uapi_tokens(account, func, args, server_now);
    match secret {
        Some(secret) => created(Created {
            name: args.get("name").unwrap_or_default().to_string(),
            secret,
            answer: inner,
            token_at: "/data/token",
            uapi_at: Some(""),
        }),
        None => (Response::json(&inner), None),
    }
}

/// The normal answer of a performed create, with the create kept for the after-create faults.
fn created(c: Created) -> (Response, Option<Created>) {
    (c.normal(), Some(c))
}

/// WHM API 1 `batch`: every `command` (a URI-encoded `function?arg=value&…`) runs in order, as
/// if sent alone by the batch's (already authenticated) WHM user: the same state, the same
/// per-route faults (`fail_routes` on the command's route key, `deny_uapi_cpanel`, the
/// after-create faults and `drop_create_answers`). `data.result[]` holds one full API 1
/// envelope per command that ran; `metadata.result` is 0 when any command's `metadata.result`
/// was 0 (an inner UAPI `status: 0` through `uapi_cpanel` keeps its `metadata.result: 1`, so it
/// counts as run, as on real servers). `abort_on_error=1` stops after the first such failure:
/// the commands after it do not run and are absent from `data.result`. A batch costs the one
/// request's `latency` (already spent by [`handle`]) plus `batch_command_latency` per command
/// that ran. `drop_batch_answers` (and a create command's `drop_after_create` or
/// `drop_create_answers`) loses the whole answer after every command ran.
async fn batch(host: &HostInner, user: &str, args: &Args, faults: &Faults) -> Action {
    let (answer, cost) = batch_core(host, user, args, faults);
    if !cost.is_zero() {
        tokio::time::sleep(cost).await;
    }
    match answer {
        Some(resp) => Action::Reply(resp),
        None => Action::Drop,
    }
}

/// WHM API 1 `batch` for both fronts (HTTPS and `whmapi1 batch` over SSH): its answer (`None`:
/// the answer is lost, a fault) and the time its commands cost, which the caller waits.
pub(crate) fn batch_core(
    host: &HostInner,
    user: &str,
    args: &Args,
    faults: &Faults,
) -> (Option<Response>, std::time::Duration) {
    let zero = std::time::Duration::ZERO;
    let commands = args.repeated("command");
    if commands.is_empty() {
        return (Some(whm_fail("batch", &missing_arg("command"))), zero);
    }
    if commands.len() > MAX_BATCH_COMMANDS {
        return (
            Some(whm_fail(
                "batch",
                &format!(
                    "A batch may carry at most {MAX_BATCH_COMMANDS} commands; this one has {}. Split it.",
                    commands.len()
                ),
            )),
            zero,
        );
    }
    let abort = matches!(args.get("abort_on_error"), Some("1"));
    // A login is judged per request: a command whose route refuses the credential (401/403 in
    // `fail_routes`: a token revoked meanwhile, cPHulk) refuses the whole batch, nothing run.
    for command in &commands {
        let (function, query) = command.split_once('?').unwrap_or((command, ""));
        let key = route_key(
            Port::Whm,
            &format!("/json-api/{function}"),
            &Args::parse(query.as_bytes(), b""),
        );
        if let Some(&status @ (401 | 403)) = faults.fail_routes.get(&key) {
            host.stats.refused_by_route.fetch_add(1, Ordering::Relaxed);
            return (Some(Response::text(status, "Access denied\n")), zero);
        }
    }
    host.stats.batches.fetch_add(1, Ordering::Relaxed);
    let server_now = now_epoch().saturating_add(faults.clock_offset);
    let mut results = Vec::new();
    let mut all_ok = true;
    let mut lose_answer = false;
    for command in &commands {
        let (function, query) = command.split_once('?').unwrap_or((command, ""));
        let cargs = Args::parse(query.as_bytes(), b"");
        let path = format!("/json-api/{function}");
        let key = route_key(Port::Whm, &path, &cargs);
        host.count_command(&key);
        let (resp, created) = if function == "batch" || function.is_empty() {
            (
                whm_fail("batch", "A batch command cannot be a batch."),
                None,
            )
        } else if let Some(&status) = faults.fail_routes.get(&key) {
            let reason = format!("{status} {} (this command failed)", reason_phrase(status));
            (whm_fail(function, &reason), None)
        } else if faults.deny_uapi_cpanel && matches!(function, "uapi_cpanel" | "cpanel") {
            let reason =
                format!("Access denied: the API token's ACLs do not permit the call “{function}”.");
            (whm_fail(function, &reason), None)
        } else {
            whm_call(host, user, &path, &cargs, server_now)
        };
        let is_create = key.ends_with("create_full_access") || key.ends_with("api_token_create");
        let resp = match created.as_ref().and_then(|c| host.after_create(c)) {
            Some(Action::Reply(r)) => r,
            Some(_) => {
                lose_answer = true;
                resp
            }
            None => resp,
        };
        if is_create && host.take_drop_create_answer() {
            lose_answer = true;
        }
        let envelope: Value = serde_json::from_slice(&resp.body).unwrap_or_else(|_| {
            json!({"metadata": {"command": function, "reason": "not JSON", "result": 0, "version": 1}})
        });
        let ok = envelope.pointer("/metadata/result").and_then(Value::as_i64) == Some(1);
        results.push(envelope);
        if !ok {
            all_ok = false;
            if abort {
                break;
            }
        }
    }
    let cost = faults.batch_command_latency.0 * results.len() as u32;
    if lose_answer || host.take(|f| &mut f.drop_batch_answers) {
        return (None, cost);
    }
    let reason = if all_ok {
        "OK".to_string()
    } else {
        "At least one command in the batch failed.".to_string()
    };
    (
        Some(Response::json(&json!({
            "data": {"result": results},
            "metadata": {"command": "batch", "reason": reason, "result": if all_ok { 1 } else { 0 }, "version": 1}
        }))),
        cost,
    )
}
