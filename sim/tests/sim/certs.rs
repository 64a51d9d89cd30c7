//! Certificates: self-signed per host (pin them), or signed by the fleet's test CA; TLS only.

use std::io::{Read, Write};
use std::net::SocketAddr;

use cpanel_sim::{CertMode, Fleet, FleetSpec};
use sha2::Digest;

use super::*;

#[test]
fn self_signed_hosts_have_distinct_pins_and_fail_ca_verification() {
    let env = Env::start(FleetSpec::uniform(2, 1));
    let (a, b) = (env.host("web001"), env.host("web002"));
    let pin = a.cert_pin();
    assert!(pin.starts_with("sha256:"));
    let hex = &pin["sha256:".len()..];
    assert_eq!(hex.len(), 32 * 3 - 1);
    assert!(hex.split(':').all(|p| {
        p.len() == 2
            && p.chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
    }));
    let digest = sha2::Sha256::digest(a.cert_der());
    let expected: Vec<String> = digest.iter().map(|x| format!("{x:02X}")).collect();
    assert_eq!(hex, expected.join(":"));
    assert_ne!(a.cert_pin(), b.cert_pin());
    // The pinned client works on both ports (same certificate on both).
    assert_eq!(
        whm_post(&env.client, &a, Some(&env.root_auth()), "version", &[]).status,
        200
    );
    assert_eq!(
        uapi_post(&env.client, &a, "cpanel x:y", "list", &[]).status,
        401
    );
    // A client pinned to another host refuses this one.
    let only_b = pinned_client(std::slice::from_ref(&b));
    assert!(try_whm_post(&only_b, &a, Some(&env.root_auth()), "version", &[]).is_err());
    // The CA does not vouch for self-signed hosts.
    let ca = ca_builder(env.fleet.ca_pem()).build().unwrap();
    assert!(try_whm_post(&ca, &a, Some(&env.root_auth()), "version", &[]).is_err());
    assert!(
        env.fleet
            .ca_pem()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
}

#[test]
fn ca_signed_hosts_verify_by_ip_and_by_name() {
    let mut spec = FleetSpec::uniform(2, 1);
    spec.cert_mode = CertMode::CaSigned;
    let fleet = Fleet::start(spec).unwrap();
    let h = fleet.host("web002");
    let auth = format!("whm root:{}", fleet.root_token());
    let c = ca_builder(fleet.ca_pem()).build().unwrap();
    assert_eq!(whm_post(&c, h, Some(&auth), "version", &[]).status, 200);
    // By host name, resolved to loopback.
    let addr: SocketAddr = format!("127.0.0.1:{}", h.cpanel_port()).parse().unwrap();
    let by_name = ca_builder(fleet.ca_pem())
        .resolve("web002", addr)
        .build()
        .unwrap();
    let r = by_name
        .get(format!(
            "https://web002:{}/execute/Tokens/list",
            h.cpanel_port()
        ))
        .send()
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        401,
        "TLS verified; no credentials sent"
    );
    // web001's certificate does not carry web002's name.
    let wrong: SocketAddr = format!("127.0.0.1:{}", fleet.host("web001").cpanel_port())
        .parse()
        .unwrap();
    let mismatched = ca_builder(fleet.ca_pem())
        .resolve("web002", wrong)
        .build()
        .unwrap();
    assert!(
        mismatched
            .get(format!(
                "https://web002:{}/execute/Tokens/list",
                wrong.port()
            ))
            .send()
            .is_err()
    );
}

#[test]
fn plain_http_is_not_served() {
    let env = Env::start(FleetSpec::uniform(1, 1));
    let h = env.host("web001");
    let mut s = std::net::TcpStream::connect(("127.0.0.1", h.whm_port())).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    s.write_all(b"GET /json-api/version HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(!buf.starts_with(b"HTTP/"), "no HTTP answer over plain TCP");
    assert_eq!(h.stats().total_requests, 0);
    assert_eq!(h.stats().tls_handshakes, 0);
}
