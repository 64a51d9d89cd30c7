//! Why this module exists: the transport's promises (trust modes, pin errors, no redirects, body
//! cap, timeouts, keep-alive, a sensitive Authorization header) are only worth something if they
//! hold against a real TLS server, so these tests start one on 127.0.0.1 and check the wire.

use super::test_server::{Identity, Reply, TestCa, TestServer, self_signed};
use super::*;
use std::io::Write as _;

const SECRET: &str = "JPQNSRU0DH448UJLGXH7KVJECC5QN9N9";

fn host(tls: Tls) -> Endpoint {
    Endpoint {
        address: "127.0.0.1".into(),
        tls,
        origin: "inventory.toml: hosts[0]".into(),
    }
}

fn pinned(id: &Identity) -> Tls {
    Tls {
        pin: Some(Pin::of_der(id.leaf())),
        ..Tls::default()
    }
}

fn config() -> TransportConfig {
    TransportConfig {
        timeout: Duration::from_secs(20),
        connect_timeout: Duration::from_secs(10),
        body_cap: 1 << 16,
        pool_size: 2,
    }
}

fn ok_server(id: &Identity) -> TestServer {
    TestServer::start(id.server_config(), |_| Reply::json(200, r#"{"status":1}"#))
}

fn send(t: &HostTransport, port: u16) -> Result<Response, TransportError> {
    let token = Secret::new(SECRET);
    t.post(
        port,
        "/json-api/version?api.version=1",
        &Authorization::Token {
            scheme: "whm",
            user: "root",
            token: &token,
        },
        &[("name", "ci token"), ("x", "a&b=c")],
    )
}

/// Nothing about a failure may carry the credential.
fn assert_no_secret(e: &TransportError) {
    assert!(!format!("{e}").contains(SECRET), "{e}");
    assert!(!format!("{e:?}").contains(SECRET), "{e:?}");
}

#[test]
fn pinned_certificate_is_accepted_and_the_request_arrives_intact() {
    let id = self_signed(&["web1.example.net"]);
    let server = ok_server(&id);
    let t = HostTransport::new(&host(pinned(&id)), &config()).unwrap();
    assert_eq!(t.peer_pin(), None);
    let r = send(&t, server.port).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, br#"{"status":1}"#);
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    assert_eq!(t.peer_pin(), Some(Pin::of_der(id.leaf())));
    let seen = server.requests();
    assert_eq!(seen.len(), 1);
    let req = &seen[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/json-api/version?api.version=1");
    assert_eq!(
        req.header("authorization"),
        Some(format!("whm root:{SECRET}").as_str())
    );
    assert_eq!(
        req.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        req.form(),
        vec![
            ("name".into(), "ci token".into()),
            ("x".into(), "a&b=c".into())
        ]
    );
}

#[test]
fn pin_mismatch_is_reported_as_such_and_nothing_is_sent() {
    let id = self_signed(&["web1.example.net"]);
    let other = self_signed(&["web1.example.net"]);
    let server = ok_server(&id);
    let expected = Pin::of_der(other.leaf());
    let t = HostTransport::new(&host(pinned(&other)), &config()).unwrap();
    let e = send(&t, server.port).unwrap_err();
    assert_eq!(
        e,
        TransportError::PinMismatch {
            expected,
            got: Pin::of_der(id.leaf())
        }
    );
    assert!(!e.maybe_sent());
    assert_no_secret(&e);
    assert_eq!(
        t.peer_pin(),
        Some(Pin::of_der(id.leaf())),
        "check prints the presented pin"
    );
    drop(t);
    // A pin still holds when the inventory also says tls_insecure.
    let both = Tls {
        insecure: true,
        ..pinned(&other)
    };
    let t = HostTransport::new(&host(both), &config()).unwrap();
    assert!(matches!(
        send(&t, server.port),
        Err(TransportError::PinMismatch { .. })
    ));
    let seen = server.requests();
    drop(server);
    assert!(seen.is_empty(), "the server saw an HTTP request: {seen:?}");
}

#[test]
fn a_certificate_from_the_configured_ca_is_trusted() {
    let ca = TestCa::new();
    let id = ca.issue(&["127.0.0.1"]);
    let server = ok_server(&id);
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(ca.pem().as_bytes()).unwrap();
    let tls = Tls {
        ca: Some(file.path().to_path_buf()),
        ..Tls::default()
    };
    let t = HostTransport::new(&host(tls), &config()).unwrap();
    assert_eq!(send(&t, server.port).unwrap().status, 200);
    assert_eq!(t.peer_pin(), Some(Pin::of_der(id.leaf())));
}

#[test]
fn an_unknown_ca_is_a_tls_error_that_suggests_the_pin() {
    let id = self_signed(&["127.0.0.1"]);
    let server = ok_server(&id);
    let t = HostTransport::new(&host(Tls::default()), &config()).unwrap();
    let e = send(&t, server.port).unwrap_err();
    let pin = Pin::of_der(id.leaf()).to_string();
    match &e {
        TransportError::Tls(m) => {
            assert!(m.contains("unknown issuer"), "{m}");
            assert!(m.contains("tls_pin"), "{m}");
            assert!(m.contains(&pin), "{m}");
            assert!(m.contains("tls_ca"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    assert_no_secret(&e);
    assert!(server.requests().is_empty());
}

#[test]
fn a_name_mismatch_is_a_tls_error() {
    let ca = TestCa::new();
    let id = ca.issue(&["other.example.net"]);
    let server = ok_server(&id);
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(ca.pem().as_bytes()).unwrap();
    let tls = Tls {
        ca: Some(file.path().to_path_buf()),
        ..Tls::default()
    };
    let t = HostTransport::new(&host(tls), &config()).unwrap();
    match send(&t, server.port).unwrap_err() {
        TransportError::Tls(m) => {
            assert!(m.contains("name mismatch") && m.contains("tls_pin"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    assert!(server.requests().is_empty());
}

#[test]
fn insecure_accepts_a_self_signed_certificate() {
    let id = self_signed(&["somewhere.invalid"]);
    let server = ok_server(&id);
    let tls = Tls {
        insecure: true,
        ..Tls::default()
    };
    let t = HostTransport::new(&host(tls), &config()).unwrap();
    assert_eq!(send(&t, server.port).unwrap().status, 200);
    assert_eq!(t.peer_pin(), Some(Pin::of_der(id.leaf())));
}

#[test]
fn redirects_are_returned_not_followed() {
    let id = self_signed(&["127.0.0.1"]);
    let server = TestServer::start(id.server_config(), |_| Reply::Respond {
        status: 302,
        headers: vec![("Location".into(), "/login/?goto=x".into())],
        body: vec![],
    });
    let t = HostTransport::new(&host(pinned(&id)), &config()).unwrap();
    let r = send(&t, server.port).unwrap();
    assert_eq!(r.status, 302);
    assert_eq!(r.location.as_deref(), Some("/login/?goto=x"));
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn bodies_over_the_cap_are_refused_with_or_without_a_length() {
    let id = self_signed(&["127.0.0.1"]);
    let server = TestServer::start(id.server_config(), |r| {
        let n: usize = r.path.trim_start_matches("/n/").parse().unwrap_or(0);
        if r.path.starts_with("/n/") {
            Reply::Respond {
                status: 200,
                headers: vec![],
                body: vec![b'a'; n],
            }
        } else {
            Reply::Chunked {
                status: 200,
                body: vec![b'b'; 3000],
            }
        }
    });
    let cfg = TransportConfig {
        body_cap: 1000,
        ..config()
    };
    let t = HostTransport::new(&host(pinned(&id)), &cfg).unwrap();
    let token = Secret::new(SECRET);
    let auth = Authorization::Token {
        scheme: "cpanel",
        user: "bob",
        token: &token,
    };
    assert_eq!(
        t.post(server.port, "/n/1000", &auth, &[])
            .unwrap()
            .body
            .len(),
        1000
    );
    assert_eq!(
        t.post(server.port, "/n/1001", &auth, &[]).unwrap_err(),
        TransportError::BodyTooLarge { cap: 1000 }
    );
    assert_eq!(
        t.post(server.port, "/chunked", &auth, &[]).unwrap_err(),
        TransportError::BodyTooLarge { cap: 1000 }
    );
}

#[test]
fn a_slow_answer_is_a_timeout_after_sending() {
    let id = self_signed(&["127.0.0.1"]);
    let server = TestServer::start(id.server_config(), |_| {
        Reply::Delay(Duration::from_secs(4), Box::new(Reply::json(200, "{}")))
    });
    let cfg = TransportConfig {
        timeout: Duration::from_millis(500),
        ..config()
    };
    let t = HostTransport::new(&host(pinned(&id)), &cfg).unwrap();
    let e = send(&t, server.port).unwrap_err();
    assert_eq!(e, TransportError::Timeout { sent: true });
    assert!(e.maybe_sent());
}

#[test]
fn a_connection_closed_after_the_request_is_io_with_sent() {
    let id = self_signed(&["127.0.0.1"]);
    let server = TestServer::start(id.server_config(), |_| Reply::Close);
    let t = HostTransport::new(&host(pinned(&id)), &config()).unwrap();
    let e = send(&t, server.port).unwrap_err();
    assert!(matches!(e, TransportError::Io { sent: true, .. }), "{e:?}");
    assert_no_secret(&e);
    assert!(!server.requests().is_empty());
}

#[test]
fn a_refused_connection_is_connect() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let id = self_signed(&["127.0.0.1"]);
    let t = HostTransport::new(&host(pinned(&id)), &config()).unwrap();
    let e = send(&t, port).unwrap_err();
    assert!(matches!(e, TransportError::Connect(_)), "{e:?}");
    assert!(!e.maybe_sent());
    // Where it tried, so the operator can tell a firewalled port from a wrong address.
    assert!(
        e.to_string()
            .starts_with(&format!("cannot connect to 127.0.0.1:{port}: ")),
        "{e}"
    );
}

#[test]
fn sequential_requests_reuse_one_connection() {
    let id = self_signed(&["127.0.0.1"]);
    let server = ok_server(&id);
    let t = HostTransport::new(&host(pinned(&id)), &config()).unwrap();
    for _ in 0..3 {
        assert_eq!(send(&t, server.port).unwrap().status, 200);
    }
    assert_eq!(server.requests().len(), 3);
    assert_eq!(server.accepts(), 1, "each request paid its own handshake");
}

#[test]
fn the_authorization_header_is_sensitive_and_well_formed() {
    let token = Secret::new(SECRET);
    let whm = authorization_value(&Authorization::Token {
        scheme: "whm",
        user: "root",
        token: &token,
    })
    .unwrap();
    assert!(whm.is_sensitive());
    assert_eq!(whm.to_str().unwrap(), format!("whm root:{SECRET}"));
    assert!(!format!("{whm:?}").contains(SECRET), "{whm:?}");
    let cp = authorization_value(&Authorization::Token {
        scheme: "cpanel",
        user: "bob",
        token: &token,
    })
    .unwrap();
    assert!(cp.is_sensitive());
    assert_eq!(cp.to_str().unwrap(), format!("cpanel bob:{SECRET}"));
    let pw = Secret::new("pa:ss wörd");
    let basic = authorization_value(&Authorization::Basic {
        user: "root",
        password: &pw,
    })
    .unwrap();
    assert!(basic.is_sensitive());
    use base64::Engine;
    let expected = base64::engine::general_purpose::STANDARD.encode("root:pa:ss wörd");
    assert_eq!(basic.to_str().unwrap(), format!("Basic {expected}"));
    let bad = Secret::new("TOKEN\nX-Evil: 1");
    let e = authorization_value(&Authorization::Token {
        scheme: "whm",
        user: "root",
        token: &bad,
    })
    .unwrap_err();
    assert!(matches!(e, TransportError::Request(_)));
    assert!(
        !format!("{e}").contains("TOKEN") && !format!("{e}").contains("Evil"),
        "{e}"
    );
}

#[test]
fn basic_auth_reaches_the_server() {
    let id = self_signed(&["127.0.0.1"]);
    let server = ok_server(&id);
    let t = HostTransport::new(&host(pinned(&id)), &config()).unwrap();
    let pw = Secret::new("hunter2");
    t.post(
        server.port,
        "/execute/Tokens/list",
        &Authorization::Basic {
            user: "bob",
            password: &pw,
        },
        &[],
    )
    .unwrap();
    assert_eq!(
        server.requests()[0].header("authorization"),
        Some("Basic Ym9iOmh1bnRlcjI=")
    );
}

#[test]
fn a_bad_ca_file_is_an_input_problem_naming_file_and_fix() {
    let missing = std::path::PathBuf::from("/nonexistent/fleet-ca.pem");
    let tls = Tls {
        ca: Some(missing),
        ..Tls::default()
    };
    let p = HostTransport::new(&host(tls), &config()).unwrap_err();
    assert_eq!(p.location, "inventory.toml: hosts[0]");
    assert_eq!(p.field.as_deref(), Some("tls_ca"));
    assert!(
        p.message.contains("/nonexistent/fleet-ca.pem"),
        "{}",
        p.message
    );
    assert!(p.hint.as_deref().unwrap_or("").contains("PEM"));

    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(b"this is not a certificate\n").unwrap();
    let tls = Tls {
        ca: Some(file.path().to_path_buf()),
        ..Tls::default()
    };
    let p = HostTransport::new(&host(tls), &config()).unwrap_err();
    assert!(p.message.contains("no PEM certificate"), "{}", p.message);
}

#[test]
fn ipv6_literals_are_bracketed() {
    assert_eq!(url_host("::1"), "[::1]");
    assert_eq!(url_host("[::1]"), "[::1]");
    assert_eq!(url_host("2001:db8::10"), "[2001:db8::10]");
    assert_eq!(url_host("web1.example.net"), "web1.example.net");
    assert_eq!(url_host("203.0.113.10"), "203.0.113.10");
}

#[test]
fn a_server_that_never_finishes_the_handshake_is_a_timeout_before_sending() {
    // The kernel completes the TCP handshake into the backlog; nobody ever answers the ClientHello.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let id = self_signed(&["127.0.0.1"]);
    let cfg = TransportConfig {
        connect_timeout: Duration::from_millis(500),
        ..config()
    };
    let t = HostTransport::new(&host(pinned(&id)), &cfg).unwrap();
    let e = send(&t, port).unwrap_err();
    assert_eq!(e, TransportError::Timeout { sent: false });
    assert!(!e.maybe_sent());
    drop(silent);
}
