//! The corpus of hand-made broken inventories (`tests/acceptance/corpus/`), each driven through
//! the binary against a live fleet: exit 2, a message naming the file and the line or key (plus
//! the field where there is one) with a hint, nothing contacted (simulator counters stay zero),
//! no output file, no panic, no echo of a literal secret. The files carry `@WHM_PORT@`,
//! `@CPANEL_PORT@` and `@PIN@`, filled with the fleet's first host, so a tokenfleet that
//! contacted anything would be seen by the simulator.

use crate::common::*;
use std::path::Path;

/// File, then strings the message must hold (besides the file name and "hint:").
const CASES: &[(&str, &[&str])] = &[
    ("ragged-short.csv", &["ragged-short.csv:3", "cells"]),
    ("ragged-long.csv", &["ragged-long.csv:2", "cells"]),
    (
        "unknown-column.csv",
        &["unknown-column.csv:1", "whm_prot", "whm_port"],
    ),
    ("duplicate-column.csv", &["duplicate-column.csv:1", "host"]),
    (
        "duplicate-account.csv",
        &["duplicate-account.csv:3", "u001a0001"],
    ),
    (
        "conflicting-host.csv",
        &["conflicting-host.csv:3", "whm_port", "line 2"],
    ),
    (
        "port-too-big.csv",
        &["port-too-big.csv:2", "whm_port", "70000"],
    ),
    ("port-zero.csv", &["port-zero.csv:2", "whm_port"]),
    ("port-word.csv", &["port-word.csv:2", "whm_port", "twenty"]),
    (
        "missing-env.csv",
        &["missing-env.csv:2", "credential", "TOKENFLEET_CORPUS_UNSET"],
    ),
    (
        "empty-credential-file.csv",
        &["empty-credential-file.csv:2", "credential", "empty"],
    ),
    (
        "unreadable-credential-file.csv",
        &["unreadable-credential-file.csv:2", "credential", "a-folder"],
    ),
    (
        "missing-credential-file.csv",
        &[
            "missing-credential-file.csv:2",
            "credential",
            "no-such.token",
        ],
    ),
    (
        "literal-secret.csv",
        &["literal-secret.csv:2", "credential", "env:"],
    ),
    ("non-utf8.csv", &["non-utf8.csv:3", "UTF-8"]),
    ("empty.csv", &["empty.csv", "empty"]),
    ("comments-only.csv", &["comments-only.csv", "header"]),
    ("header-only.csv", &["header-only.csv", "no hosts"]),
    (
        "bad-account.csv",
        &["bad-account.csv:2", "account", "Bad User"],
    ),
    ("bad-host-name.csv", &["bad-host-name.csv:2", "web 001"]),
    ("unterminated-quote.csv", &["unterminated-quote.csv:2"]),
    (
        "no-account-column.csv",
        &["no-account-column.csv:1", "account"],
    ),
    ("bad-api.csv", &["bad-api.csv:2", "api", "graphql"]),
    ("bad-bool.csv", &["bad-bool.csv:2", "tls_insecure", "maybe"]),
    ("bad-pin.csv", &["bad-pin.csv:2", "tls_pin"]),
    (
        "conflicting-pin.csv",
        &[
            "conflicting-pin.csv:3",
            "tls_pin is sha256:00:11:22…DD:EE:FF here but sha256:",
            "on line 2",
        ],
    ),
    (
        "semicolon-bad-port.csv",
        &["semicolon-bad-port.csv:5", "whm_port", "99999"],
    ),
    (
        "padded-extra-value.csv",
        &["padded-extra-value.csv:3", "10 cells but the header has 7"],
    ),
    (
        "cpanel-two-credentials.csv",
        &[
            "cpanel-two-credentials.csv:2",
            "credential and account_credential differ",
        ],
    ),
    (
        "whm-two-credentials.csv",
        &[
            "whm-two-credentials.csv:3",
            "\"env:OTHER_TOKEN\" here but \"env:WHM_TOKEN\" on line 2",
            "account_credential",
        ],
    ),
    ("url-address.csv", &["url-address.csv:2", "address"]),
    (
        "duplicate-host.toml",
        &["duplicate-host.toml:", "hosts[1]", "web001"],
    ),
    (
        "unknown-key.toml",
        &["unknown-key.toml:", "hosts[0]", "whm_prot", "whm_port"],
    ),
    ("per-host-zero.toml", &["per-host-zero.toml:", "per_host"]),
    (
        "port-too-big.toml",
        &["port-too-big.toml:", "whm_port", "99999"],
    ),
    (
        "port-string.toml",
        &["port-string.toml:", "whm_port", "2087x"],
    ),
    (
        "missing-env.toml",
        &["missing-env.toml:", "credential", "TOKENFLEET_CORPUS_UNSET"],
    ),
    (
        "literal-secret.toml",
        &["literal-secret.toml:", "credential", "env:"],
    ),
    ("syntax.toml", &["syntax.toml:"]),
    ("non-utf8.toml", &["non-utf8.toml:5", "UTF-8"]),
    ("empty.toml", &["empty.toml", "empty"]),
    ("no-hosts.toml", &["no-hosts.toml", "no hosts"]),
    ("no-accounts.toml", &["no accounts"]),
    (
        "star-with-cpanel.toml",
        &["star-with-cpanel.toml:", "accounts"],
    ),
    (
        "pin-and-insecure.toml",
        &["pin-and-insecure.toml:", "tls_insecure"],
    ),
    ("missing-ca.toml", &["missing-ca.toml:", "tls_ca"]),
    ("not-a-ca.toml", &["not-a-ca.toml:", "tls_ca", "PEM"]),
    (
        "prompt-without-terminal.toml",
        &["prompt-without-terminal.toml:", "credential", "terminal"],
    ),
    ("account-typo.toml", &["account-typo.toml:", "credentail"]),
    (
        "hosts-not-a-table.toml",
        &["hosts-not-a-table.toml:", "hosts"],
    ),
    ("deeply-nested.toml", &["deeply-nested.toml:1"]),
    ("name-too-long.toml", &["--name", "50"]),
];

const LITERAL: &str = "QWERTYUIOPASDFGHJKLZXCVBNM123456";

fn corpus_dir() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/acceptance/corpus"
    ))
}

/// Copy the corpus into the env's folder with the fleet's ports and pin filled in, plus the
/// credential files the cases point at.
fn install(env: &Env) {
    let h = &env.fleet.hosts()[0];
    for e in std::fs::read_dir(corpus_dir()).unwrap() {
        let p = e.unwrap().path();
        let bytes = std::fs::read(&p).unwrap();
        let filled = replace_bytes(&bytes, b"@WHM_PORT@", h.whm_port().to_string().as_bytes());
        let filled = replace_bytes(
            &filled,
            b"@CPANEL_PORT@",
            h.cpanel_port().to_string().as_bytes(),
        );
        let filled = replace_bytes(&filled, b"@PIN@", h.cert_pin().as_bytes());
        std::fs::write(env.path(p.file_name().unwrap().to_str().unwrap()), filled).unwrap();
    }
    std::fs::write(env.path("empty.token"), b"").unwrap();
    std::fs::create_dir_all(env.path("a-folder")).unwrap();
}

fn replace_bytes(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

#[track_caller]
fn refused(env: &Env, file: &str, must: &[&str]) -> Run {
    let run = env.run(&[
        "create",
        "-i",
        file,
        "--name",
        "{host}-{account}-token",
        "-r",
        &env.recipient,
        "-o",
        "o.age",
        "--progress",
        "never",
    ]);
    assert_eq!(run.code, 2, "{file}: exit code\n{}", run.stderr);
    let err = &run.stderr;
    assert!(!err.contains("panicked"), "{file}: {err}");
    if !must.contains(&"--name") {
        assert!(
            err.contains(file),
            "{file}: the message names the file: {err}"
        );
    }
    assert!(
        err.contains("hint:"),
        "{file}: the message gives a fix: {err}"
    );
    for m in must {
        assert!(err.contains(m), "{file}: message lacks {m:?}: {err}");
    }
    assert!(
        !err.contains(LITERAL),
        "{file}: a literal secret was echoed"
    );
    assert!(run.stdout.is_empty(), "{file}: {}", run.stdout);
    assert_eq!(env.total_requests(), 0, "{file}: nothing contacted");
    assert!(!env.path("o.age").exists(), "{file}: no output");
    assert!(!env.path("o.age.journal").exists(), "{file}: no journal");
    run
}

#[test]
fn every_corpus_file_is_refused_with_location_and_hint() {
    let env = Env::start(small_fleet(1, 2));
    install(&env);
    let listed: std::collections::BTreeSet<&str> = CASES.iter().map(|(f, _)| *f).collect();
    for e in std::fs::read_dir(corpus_dir()).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".csv") || name.ends_with(".toml") {
            assert!(listed.contains(name.as_str()), "{name} has no expectation");
        }
    }
    for (file, must) in CASES {
        refused(&env, file, must);
    }
    // The same inventories through the read-only commands: refused the same way.
    for (file, _) in CASES.iter().filter(|(f, _)| !f.starts_with("name-")) {
        let run = env.run(&["list", "-i", file, "--progress", "never"]);
        assert_eq!(run.code, 2, "list {file}: {}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{file}");
    }
    assert_eq!(env.total_requests(), 0);
}

#[test]
fn huge_inventories_are_refused_quickly_and_name_the_line() {
    let env = Env::start(small_fleet(1, 1));
    let h = &env.fleet.hosts()[0];
    // Over the size cap: a sparse 65 MiB file.
    let f = std::fs::File::create(env.path("huge.csv")).unwrap();
    f.set_len(65 << 20).unwrap();
    drop(f);
    refused(&env, "huge.csv", &["huge.csv", "larger"]);
    // Under the cap but long: 150,000 good rows and one bad port on the last line.
    let mut text = String::from("host,address,whm_port,cpanel_port,tls_pin,credential,account\n");
    let row = |acct: String, port: String| {
        format!(
            "web001,127.0.0.1,{port},{},{},env:WHM_TOKEN,{acct}\n",
            h.cpanel_port(),
            h.cert_pin()
        )
    };
    for i in 0..150_000 {
        text.push_str(&row(format!("u{i:07}"), h.whm_port().to_string()));
    }
    text.push_str(&row("ulast".into(), "65536".into()));
    std::fs::write(env.path("long.csv"), text).unwrap();
    refused(&env, "long.csv", &["long.csv:150002", "whm_port"]);
}
