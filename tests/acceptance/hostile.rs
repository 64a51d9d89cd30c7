//! Hostile and broken servers through the binary: one fleet where most hosts misbehave in a
//! different way (slow, endless body, oversized body, non-JSON, HTML login page, redirect, a
//! certificate from another CA, a wrong pin, reset mid-body, a 503 storm, down) next to healthy
//! hosts. Each faulty host must end as a per-target failure with a clear cause, within the
//! timeout, never a hang or a panic, while the healthy hosts finish (exit 1).

use crate::common::*;
use cpanel_sim::{CertMode, InventoryOptions, InventoryTls};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const WRONG_PIN: &str = "sha256:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF";

/// A deadline for a whole tokenfleet run: generous, only there to turn a hang into a failure
/// instead of a stuck CI job.
const WATCHDOG: Duration = Duration::from_secs(240);

/// Run tokenfleet, killing it if it outlives the watchdog (a hang is a test failure).
pub fn run_bounded(env: &Env, args: &[&str]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tokenfleet"))
        .current_dir(env.dir.path())
        .env("WHM_TOKEN", env.fleet.root_token())
        .env_remove("TOKENFLEET_PASSPHRASE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .args(args)
        .spawn()
        .expect("tokenfleet starts");
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > WATCHDOG {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "tokenfleet hung past {WATCHDOG:?}\n--- stderr\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Run::from(child.wait_with_output().unwrap())
}

/// Replace `tls_ca = "ca.pem"` (or the pin) of one host's block in the generated TOML.
fn set_host_line(text: &str, host: &str, old: &str, new: &str) -> String {
    let start = text
        .find(&format!("name = \"{host}\"\n"))
        .unwrap_or_else(|| panic!("{host} in inventory"));
    let rel = text[start..]
        .find(old)
        .unwrap_or_else(|| panic!("{old} in {host}'s block"));
    let at = start + rel;
    format!("{}{}{}", &text[..at], new, &text[at + old.len()..])
}

/// A certificate chain from a CA that is not the fleet's.
fn foreign_ca_pem() -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "someone else's CA");
    params.self_signed(&key).unwrap().pem()
}

/// A TLS server on loopback that answers every request with the same raw HTTP response (a
/// "server" that is not cPanel: a plain-text 200, or JSON of the wrong shape). Serves at most
/// `max_conns` connections, each with a read timeout, so it cannot outlive the test for long.
pub struct RawServer {
    pub port: u16,
    pub pin: String,
}

impl RawServer {
    pub fn start(response: &'static [u8], max_conns: usize) -> RawServer {
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
            .unwrap();
        let der = cert.cert.der().to_vec();
        let pin = {
            use sha2::Digest;
            let d = sha2::Sha256::digest(&der);
            let hex: Vec<String> = d.iter().map(|b| format!("{b:02X}")).collect();
            format!("sha256:{}", hex.join(":"))
        };
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(
            rustls::pki_types::PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()),
        );
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![der.into()], key)
                .unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(max_conns) {
                let Ok(stream) = stream else { continue };
                let config = config.clone();
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                    let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
                    let conn = rustls::ServerConnection::new(config).unwrap();
                    let mut tls = rustls::StreamOwned::new(conn, stream);
                    for _ in 0..16 {
                        // Read the head, then the body by Content-Length.
                        let mut reader = BufReader::new(&mut tls);
                        let mut len = 0usize;
                        let mut line = String::new();
                        loop {
                            line.clear();
                            match reader.read_line(&mut line) {
                                Ok(0) | Err(_) => return,
                                Ok(_) => {}
                            }
                            let l = line.trim_end();
                            if l.is_empty() {
                                break;
                            }
                            if let Some((k, v)) = l.split_once(':')
                                && k.eq_ignore_ascii_case("content-length")
                            {
                                len = v.trim().parse().unwrap_or(0);
                            }
                        }
                        let mut body = vec![0; len.min(1 << 20)];
                        if reader.read_exact(&mut body).is_err() {
                            return;
                        }
                        drop(reader);
                        if tls.write_all(response).is_err() || tls.flush().is_err() {
                            return;
                        }
                    }
                });
            }
        });
        RawServer { port, pin }
    }
}

/// A `[[hosts]]` block for a raw server (one account), appended to a TOML inventory.
fn raw_host_block(name: &str, server: &RawServer) -> String {
    format!(
        "\n[[hosts]]\nname = \"{name}\"\naddress = \"127.0.0.1\"\nwhm_port = {p}\ncpanel_port = {p}\ntls_pin = \"{pin}\"\naccounts = [\"{name}acct\"]\n",
        p = server.port,
        pin = server.pin
    )
}

#[test]
fn every_hostile_server_fails_alone_with_its_cause() {
    let mut spec = small_fleet(12, 2);
    spec.cert_mode = CertMode::CaSigned;
    spec.hosts[0].faults.latency = Duration::from_secs(30); // slow: beyond --timeout
    spec.hosts[1].faults.endless_body = true;
    spec.hosts[2].faults.oversized_body = Some(32 << 20);
    spec.hosts[3].faults.html_login = true;
    spec.hosts[4].faults.redirect_to = Some("https://127.0.0.1:1/login".into());
    // 5: certificate signed by another CA; 6: wrong pin (set in the inventory below)
    spec.hosts[7].faults.reset_mid_body = true;
    spec.hosts[8].faults.error_503_rate = 1.0;
    spec.hosts[9].faults.down = true;
    // 10, 11: healthy
    let env = Env::start_with(
        spec,
        &InventoryOptions {
            tls: InventoryTls::Ca,
            ..Default::default()
        },
    );
    std::fs::write(env.path("other-ca.pem"), foreign_ca_pem()).unwrap();
    let mut text = std::fs::read_to_string(&env.files.toml).unwrap();
    text = set_host_line(
        &text,
        "web006",
        "tls_ca = \"ca.pem\"",
        "tls_ca = \"other-ca.pem\"",
    );
    text = set_host_line(
        &text,
        "web007",
        "tls_ca = \"ca.pem\"",
        &format!("tls_pin = \"{WRONG_PIN}\""),
    );
    let text_plain = RawServer::start(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nOK",
        64,
    );
    let wrong_json = RawServer::start(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"hello\":\"x\"}",
        64,
    );
    let truncated = RawServer::start(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{\"data\":{\"ua",
        64,
    );
    text.push_str(&raw_host_block("plain", &text_plain));
    text.push_str(&raw_host_block("wrongjson", &wrong_json));
    text.push_str(&raw_host_block("truncjson", &truncated));
    std::fs::write(env.path("hostile.toml"), text).unwrap();

    let run = run_bounded(
        &env,
        &[
            "create",
            "-i",
            "hostile.toml",
            "--name",
            "h-{account}",
            "-r",
            &env.recipient,
            "-o",
            "h.age",
            "--report",
            "r.json",
            "--timeout",
            "2",
            "--retries",
            "2",
            "--progress",
            "never",
        ],
    );
    run.expect(1);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    let report = read_report(&env.path("r.json"));
    // The first target of a host goes alone (its probe): when it fails for a reason that is the
    // host's, the rest of the host is skipped with that cause, nothing sent.
    let expect_cause = |host: &str, causes: &[&str]| {
        let ts = targets_of(&report, host);
        assert!(!ts.is_empty(), "{host} reported");
        assert!(ts.iter().any(|t| t["status"] == "failed"), "{host}: {ts:?}");
        for t in ts {
            assert!(
                t["status"] == "failed" || t["status"] == "skipped",
                "{host}: {t}"
            );
            let err = t["error"].as_str().unwrap_or("").to_lowercase();
            assert!(
                causes.iter().any(|c| err.contains(c)),
                "{host}: cause {err:?} names none of {causes:?}"
            );
        }
    };
    expect_cause("web001", &["timed out"]);
    expect_cause("web002", &["too large", "timed out", "body"]);
    expect_cause("web003", &["too large", "body"]);
    expect_cause("web004", &["html"]);
    expect_cause("web005", &["redirect"]);
    expect_cause("web006", &["certificate", "tls"]);
    expect_cause("web007", &["pin"]);
    expect_cause("web008", &["reset", "connection", "body"]);
    expect_cause("web009", &["503"]);
    expect_cause("web010", &["cannot connect"]);
    expect_cause("plain", &["json", "protocol error"]);
    expect_cause("wrongjson", &["protocol error"]);
    expect_cause("truncjson", &["json", "protocol error", "body"]);
    for h in ["web011", "web012"] {
        for t in targets_of(&report, h) {
            assert_eq!(t["status"], "created", "{h}: {t}");
        }
    }
    let rows = env.open_handoff(&env.path("h.age"));
    assert_eq!(rows.len(), 4, "the healthy hosts' tokens are sealed");
    for row in &rows {
        assert!(
            env.fleet
                .host(&row["host"])
                .token_valid(&row["account"], &row["token"])
        );
    }
    // A faulty server got no more creates than one per account per attempt (never a blind resend
    // storm), and the healthy ones exactly one per account.
    for h in ["web011", "web012"] {
        assert_eq!(
            env.fleet
                .host(h)
                .stats()
                .count("whm/uapi_cpanel/Tokens/create_full_access"),
            2
        );
    }
    let minted: Vec<String> = rows.iter().map(|r| r["token"].clone()).collect();
    env.assert_no_secret_leaked(&[&run], &minted);

    // Read-only commands against the same fleet: the same causes, exit 1, no hang.
    for cmd in ["list", "check"] {
        let run = run_bounded(
            &env,
            &[
                cmd,
                "-i",
                "hostile.toml",
                "--timeout",
                "2",
                "--retries",
                "1",
                "--progress",
                "never",
            ],
        );
        run.expect(1);
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
        assert!(run.stderr.contains("pin"), "{cmd}: {}", run.stderr);
    }
}

/// A hung server with many accounts costs a couple of waves of timeouts, not one per account:
/// after `2 x per_host` targets in a row without any answer the rest of the host is skipped with
/// the cause, and the healthy host is unaffected. Counted in requests, not in seconds.
#[test]
fn a_hung_host_with_many_accounts_is_given_up_after_two_waves() {
    let mut spec = small_fleet(2, 40);
    spec.hosts[0].faults.hang = true;
    let env = Env::start(spec);
    let run = run_bounded(
        &env,
        &[
            "create",
            "-i",
            env.toml(),
            "--name",
            "w",
            "-r",
            &env.recipient,
            "-o",
            "w.age",
            "--report",
            "r.json",
            "--timeout",
            "1",
            "--retries",
            "1",
            "--per-host",
            "2",
            // Waves of single calls: a batch would carry a wave's targets in one request.
            "--batch",
            "1",
            "--progress",
            "never",
        ],
    );
    run.expect(1);
    let report = read_report(&env.path("r.json"));
    let hung = targets_of(&report, "web001");
    let failed = hung.iter().filter(|t| t["status"] == "failed").count();
    let skipped: Vec<_> = hung.iter().filter(|t| t["status"] == "skipped").collect();
    assert_eq!(failed + skipped.len(), 40);
    assert!(failed <= 4 + 1, "{failed} targets waited for the timeout");
    for t in &skipped {
        assert!(t["error"].as_str().unwrap().contains("timed out"), "{t}");
    }
    let creates = env
        .fleet
        .host("web001")
        .stats()
        .count("whm/uapi_cpanel/Tokens/create_full_access");
    assert!(creates <= 2 * 5, "{creates} creates sent to a hung host");
    for t in targets_of(&report, "web002") {
        assert_eq!(t["status"], "created");
    }
    assert!(run.stderr.contains("timed out"), "{}", run.stderr);
}

/// A host answering 503 to everything (overloaded, or a proxy in front of a dead cpsrvd) is
/// given up after two waves of targets whose retries were all spent: its other targets are
/// skipped with the cause instead of each paying the whole backoff.
#[test]
fn a_503_storm_host_is_given_up_after_two_waves() {
    let mut spec = small_fleet(2, 40);
    spec.hosts[0].faults.error_503_rate = 1.0;
    let env = Env::start(spec);
    let run = run_bounded(
        &env,
        &[
            "create",
            "-i",
            env.toml(),
            "--name",
            "s",
            "-r",
            &env.recipient,
            "-o",
            "s.age",
            "--report",
            "r.json",
            "--retries",
            "1",
            "--per-host",
            "2",
            "--batch",
            "1",
            "--progress",
            "never",
        ],
    );
    run.expect(1);
    let report = read_report(&env.path("r.json"));
    let storm = targets_of(&report, "web001");
    let failed = storm.iter().filter(|t| t["status"] == "failed").count();
    let skipped: Vec<_> = storm.iter().filter(|t| t["status"] == "skipped").collect();
    assert_eq!(failed + skipped.len(), 40);
    assert!(failed <= 4 + 1, "{failed} targets spent their retries");
    for t in &skipped {
        assert!(t["error"].as_str().unwrap().contains("503"), "{t}");
    }
    for t in targets_of(&report, "web002") {
        assert_eq!(t["status"], "created");
    }
}
