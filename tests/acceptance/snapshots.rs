//! Snapshots of the messages users read most when something is wrong (rage's habit): a bad
//! inventory (TOML and CSV), bad recipients, a bad name template and expiry, a refused
//! credential and a wrong pin. Their wording is reviewed whenever it changes: a difference fails
//! the test and shows both texts. `UPDATE_SNAPSHOTS=1 cargo test --test acceptance snapshots`
//! rewrites the files in `tests/acceptance/snapshots/` after a deliberate change.

use crate::common::*;
use std::path::PathBuf;

const WRONG_PIN: &str = "sha256:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF";

/// What varies between runs, replaced by a stable word: the temp folder, ports, pins, run ids
/// and times.
fn normalise(env: &Env, text: &str) -> String {
    let mut t = text.replace(&env.dir.path().display().to_string(), "[TMP]");
    t = t.replace(&env.recipient, "[RECIPIENT]");
    t = t.replace(env!("CARGO_BIN_EXE_tokenfleet"), "tokenfleet");
    for h in env.fleet.hosts() {
        t = t.replace(&h.cert_pin(), "sha256:[PIN]");
    }
    t = t.replace(WRONG_PIN, "sha256:[WRONG-PIN]");
    let mut out = String::with_capacity(t.len());
    let mut rest = t.as_str();
    // 127.0.0.1:PORT → 127.0.0.1:[PORT]; "12 ms" / "0.4s" → [TIME]
    while let Some(i) = rest.find("127.0.0.1:") {
        out.push_str(&rest[..i + "127.0.0.1:".len()]);
        rest = &rest[i + "127.0.0.1:".len()..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 {
            out.push_str("[PORT]");
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out.lines()
        .map(|l| {
            l.split(' ')
                .map(|w| {
                    let core = w.trim_end_matches([',', ')', ';']);
                    let is_time = core
                        .strip_suffix("ms")
                        .or_else(|| core.strip_suffix('s'))
                        .is_some_and(|n| {
                            !n.is_empty() && n.chars().all(|c| c.is_ascii_digit() || c == '.')
                        });
                    if is_time {
                        w.replacen(core, "[TIME]", 1)
                    } else {
                        w.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn snapshot_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/acceptance/snapshots")
        .join(format!("{name}.txt"))
}

/// Compare `run` (command, exit code, stdout, stderr; normalised) with the snapshot `name`.
#[track_caller]
pub(crate) fn assert_snapshot(env: &Env, name: &str, args: &[&str], run: &Run) {
    let shown = format!(
        "$ tokenfleet {}\nexit: {}\n--- stdout\n{}\n--- stderr\n{}\n",
        normalise(env, &args.join(" ")),
        run.code,
        normalise(env, run.stdout.trim_end()),
        normalise(env, run.stderr.trim_end()),
    );
    env.assert_no_secret_leaked(&[run], &[]);
    let path = snapshot_path(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &shown).unwrap();
        return;
    }
    let Ok(expected) = std::fs::read_to_string(&path) else {
        panic!(
            "no snapshot {}: review this output, then create it with \
             UPDATE_SNAPSHOTS=1 cargo test --test acceptance snapshots\n{shown}",
            path.display()
        );
    };
    assert!(
        expected == shown,
        "the message {name} changed; if that is meant, review it and run \
         UPDATE_SNAPSHOTS=1 cargo test --test acceptance snapshots\n--- expected\n{expected}\n--- now\n{shown}"
    );
}

fn snap(env: &Env, name: &str, args: &[&str]) -> Run {
    let run = env.run(args);
    assert_snapshot(env, name, args, &run);
    run
}

#[test]
fn a_toml_inventory_with_several_mistakes() {
    let env = Env::start(small_fleet(1, 1));
    std::fs::write(
        env.path("bad.toml"),
        r#"[defaults]
credential = "JPQNSRU0DH448UJLGXH7KVJECC5QN9N9"
colour = "blue"

[[hosts]]
name = "web1"
tls_pin = "sha256:nothex"
accounts = ["alice"]

[[hosts]]
name = "web1"
api = "soap"
accounts = ["bob"]
"#,
    )
    .unwrap();
    let run = snap(
        &env,
        "inventory-toml",
        &["list", "-i", "bad.toml", "--progress", "never"],
    );
    run.expect(2);
    assert!(!run.stderr.contains("JPQNSRU0DH448UJLGXH7KVJECC5QN9N9"));
}

#[test]
fn a_csv_inventory_with_bad_rows() {
    let env = Env::start(small_fleet(1, 1));
    std::fs::write(
        env.path("bad.csv"),
        "host,address,account,colour\nweb1,203.0.113.10,alice,blue\nweb 2,,bob,\n",
    )
    .unwrap();
    snap(
        &env,
        "inventory-csv",
        &["list", "-i", "bad.csv", "--progress", "never"],
    )
    .expect(2);
}

#[test]
fn bad_recipients() {
    let env = Env::start(small_fleet(1, 1));
    let secret_key = "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ";
    std::fs::write(env.path("recipients.txt"), format!("{secret_key}\n")).unwrap();
    let inv = env.files.toml.display().to_string();
    let args = [
        "create",
        "-i",
        inv.as_str(),
        "--name",
        "ci-{date}",
        "-r",
        "notakey",
        "-R",
        "recipients.txt",
        "-o",
        "out.age",
    ];
    let run = snap(&env, "recipients", &args);
    run.expect(2);
    assert!(
        !run.stderr.contains(secret_key),
        "the secret key is never echoed"
    );
    assert_eq!(env.total_requests(), 0);
}

#[test]
fn a_bad_name_template_and_expiry() {
    let env = Env::start(small_fleet(1, 1));
    let inv = env.files.toml.display().to_string();
    let r = env.recipient.clone();
    let args = [
        "create",
        "-i",
        inv.as_str(),
        "--name",
        "ci-{dat}",
        "--expires-in",
        "soon",
        "-r",
        r.as_str(),
        "-o",
        "out.age",
    ];
    snap(&env, "name-and-expiry", &args).expect(2);
    assert_eq!(env.total_requests(), 0);
}

#[test]
fn a_refused_credential() {
    let env = Env::start(small_fleet(2, 3));
    let inv = env.files.toml.display().to_string();
    let r = env.recipient.clone();
    let args = [
        "create",
        "-i",
        inv.as_str(),
        "--name",
        "ci",
        "-r",
        r.as_str(),
        "-o",
        "out.age",
        "--per-host",
        "1",
        "--jobs",
        "1",
        "--progress",
        "never",
    ];
    let run = env.run_env(&args, &[("WHM_TOKEN", "BADBADBADBADBADBADBADBADBADBAD12")]);
    assert_snapshot(&env, "refused-credential", &args, &run);
    run.expect(1);
}

#[test]
fn a_wrong_pin() {
    let env = Env::start_with(small_fleet(1, 2), &pin_inventory());
    let victim = env.fleet.host("web001");
    let text = std::fs::read_to_string(&env.files.toml)
        .unwrap()
        .replace(&victim.cert_pin(), WRONG_PIN);
    std::fs::write(env.path("wrong.toml"), text).unwrap();
    let r = env.recipient.clone();
    let args = [
        "create",
        "-i",
        "wrong.toml",
        "--name",
        "ci",
        "-r",
        r.as_str(),
        "-o",
        "out.age",
        "--progress",
        "never",
    ];
    snap(&env, "wrong-pin-create", &args).expect(1);
    snap(
        &env,
        "wrong-pin-check",
        &["check", "-i", "wrong.toml", "--progress", "never"],
    )
    .expect(1);
    assert_eq!(victim.stats().total_requests, 0);
}

#[test]
fn csv_rows_that_disagree_and_a_limit_that_matches_nothing() {
    let env = Env::start(small_fleet(2, 1));
    std::fs::write(
        env.path("rows.csv"),
        format!(
            "host,address,account,tls_pin,credential,,\n\
             web1,203.0.113.10,alice,{WRONG_PIN},env:WHM_TOKEN,,\n\
             # a comment line\n\
             web1,,bob,sha256:3F:1A:9C:27:55:0B:E4:D2:8A:61:C0:7E:19:B3:4D:F8:02:6C:A5:93:E7:1D:48:BB:0F:72:C6:39:5E:A1:84:D0,env:OTHER,,\n"
        ),
    )
    .unwrap();
    snap(
        &env,
        "inventory-csv-conflicts",
        &["list", "-i", "rows.csv", "--progress", "never"],
    )
    .expect(2);
    let inv = env.files.toml.display().to_string();
    snap(
        &env,
        "limit-no-match",
        &[
            "list",
            "-i",
            inv.as_str(),
            "-l",
            "WEB*,web9",
            "--progress",
            "never",
        ],
    )
    .expect(2);
    assert_eq!(env.total_requests(), 0);
}

/// The store's mistakes, each caught before anything is contacted: a `[sink]` with a typo, two
/// targets on one path, a plain-HTTP store, and no store token.
#[test]
fn secret_store_mistakes() {
    let env = Env::start(small_fleet(1, 2));
    let mut inv = std::fs::read_to_string(env.toml()).unwrap();
    inv.push_str("\n[sink]\nto = \"bao+https://127.0.0.1:1/secret/cpanel/{host}/{account}\"\ntokne_file = \"t\"\n");
    std::fs::write(env.path("sink.toml"), inv).unwrap();
    let create = |inv: &str, to: &str| -> Vec<String> {
        let mut a: Vec<String> = [
            "create",
            "-i",
            inv,
            "--name",
            "ci-1",
            "-r",
            "[R]",
            "--progress",
            "never",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if !to.is_empty() {
            a.extend(["--to".to_string(), to.to_string()]);
        }
        a
    };
    let cases = [
        ("store-inventory", create("sink.toml", "")),
        (
            "store-same-path",
            create(env.toml(), "bao+https://127.0.0.1:1/secret/cpanel/{host}"),
        ),
        (
            "store-plain-http",
            create(
                env.toml(),
                "bao+http://127.0.0.1:1/secret/cpanel/{host}/{account}",
            ),
        ),
        (
            "store-no-token",
            create(
                env.toml(),
                "bao+https://127.0.0.1:1/secret/cpanel/{host}/{account}",
            ),
        ),
    ];
    for (name, args) in cases {
        let args: Vec<&str> = args
            .iter()
            .map(|a| {
                if a == "[R]" {
                    env.recipient.as_str()
                } else {
                    a.as_str()
                }
            })
            .collect();
        let run = env.run_env(&args, &[("BAO_TOKEN", ""), ("VAULT_TOKEN", "")]);
        assert_snapshot(&env, name, &args, &run);
        run.expect(2);
    }
    assert_eq!(env.total_requests(), 0);
}
