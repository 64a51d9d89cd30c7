//! TLS modes: pin, CA, insecure, wrong pin, and an unverifiable self-signed certificate.

use crate::common::*;
use cpanel_sim::{CertMode, InventoryOptions, InventoryTls};

const WRONG_PIN: &str = "sha256:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF";

#[test]
fn pinned_fleet_works() {
    let env = Env::start_with(
        small_fleet(2, 2),
        &InventoryOptions {
            tls: InventoryTls::Pin,
            ..Default::default()
        },
    );
    env.run(&[
        "create",
        "-i",
        env.toml(),
        "--name",
        "p",
        "-r",
        &env.recipient,
        "-o",
        "p.age",
    ])
    .expect(0);
    assert_eq!(env.open_handoff(&env.path("p.age")).len(), 4);
}

#[test]
fn ca_signed_fleet_works_with_tls_ca() {
    let mut spec = small_fleet(2, 2);
    spec.cert_mode = CertMode::CaSigned;
    let env = Env::start_with(
        spec,
        &InventoryOptions {
            tls: InventoryTls::Ca,
            ..Default::default()
        },
    );
    let text = std::fs::read_to_string(&env.files.toml).unwrap();
    assert!(text.contains("tls_ca") && !text.contains("tls_pin"));
    env.run(&[
        "create",
        "-i",
        env.toml(),
        "--name",
        "c",
        "-r",
        &env.recipient,
        "-o",
        "c.age",
    ])
    .expect(0);
    assert_eq!(env.open_handoff(&env.path("c.age")).len(), 4);
}

#[test]
fn insecure_works_but_warns_every_run() {
    let env = Env::start_with(
        small_fleet(1, 1),
        &InventoryOptions {
            tls: InventoryTls::Insecure,
            ..Default::default()
        },
    );
    let run = env.run(&["check", "-i", env.toml()]);
    run.expect(0);
    assert!(run.stderr.contains("tls_insecure"), "{}", run.stderr);
}

#[test]
fn self_signed_without_pin_or_ca_is_refused_with_a_hint() {
    let env = Env::start(small_fleet(1, 1));
    let text = std::fs::read_to_string(&env.files.toml).unwrap();
    let stripped: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("tls_"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(env.path("nopin.toml"), stripped).unwrap();
    let run = env.run(&["check", "-i", "nopin.toml"]);
    run.expect(1);
    assert!(
        run.stdout.contains("tls_pin") || run.stderr.contains("tls_pin"),
        "hint to pin: {}{}",
        run.stdout,
        run.stderr
    );
    assert_eq!(
        env.total_requests(),
        0,
        "no HTTP request over an unverified connection"
    );
}

#[test]
fn wrong_pin_stops_that_host_only_and_no_request_reaches_it() {
    let env = Env::start(small_fleet(3, 2));
    let victim = env.fleet.host("web002");
    let text = std::fs::read_to_string(&env.files.toml)
        .unwrap()
        .replace(&victim.cert_pin(), WRONG_PIN);
    std::fs::write(env.path("wrong.toml"), text).unwrap();
    let run = env.run(&[
        "create",
        "-i",
        "wrong.toml",
        "--name",
        "w",
        "-r",
        &env.recipient,
        "-o",
        "w.age",
        "--report",
        "r.json",
    ]);
    run.expect(1);
    assert!(run.stderr.contains("TLS pin mismatch"), "{}", run.stderr);
    assert_eq!(
        victim.stats().total_requests,
        0,
        "not one HTTP request reached the mispinned host"
    );
    let rows = env.open_handoff(&env.path("w.age"));
    assert_eq!(rows.len(), 4);
    assert!(rows.iter().all(|r| r["host"] != "web002"));
    let report = read_report(&env.path("r.json"));
    let failed: Vec<_> = report["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"] == "failed")
        .collect();
    assert!(!failed.is_empty() && failed.iter().all(|t| t["host"] == "web002"));
}
