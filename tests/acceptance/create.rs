//! `create`: both inventory formats, both APIs, WHM scope, the handoff, the journal, the report.

use crate::common::*;
use cpanel_sim::{FleetSpec, HostSpec, InventoryOptions};

/// The core path: TOML inventory, api = "whm", every new token in the handoff and accepted.
#[test]
fn create_from_toml_seals_every_token_and_each_works() {
    let env = Env::start(small_fleet(3, 4));
    let run = env.run(&[
        "create",
        "-i",
        env.toml(),
        "--name",
        "ci-{date}",
        "-r",
        &env.recipient,
        "-o",
        "out.age",
        "--report",
        "report.json",
        "--progress",
        "never",
        "--expires-in",
        "30d",
    ]);
    run.expect(0);
    let rows = env.open_handoff(&env.path("out.age"));
    assert_eq!(rows.len(), 12);
    let mut minted = Vec::new();
    for row in &rows {
        let host = env.fleet.host(&row["host"]);
        assert!(
            host.token_valid(&row["account"], &row["token"]),
            "the sealed token works"
        );
        assert!(row["token_name"].starts_with("ci-20"));
        assert_eq!(
            row["url"],
            format!("https://127.0.0.1:{}", host.cpanel_port())
        );
        assert!(!row["expires_at"].is_empty(), "expiry recorded");
        assert!(row["created_at"].ends_with('Z'));
        // Exactly one token of that name on the server.
        let names: Vec<_> = host
            .account_tokens(&row["account"])
            .into_iter()
            .filter(|t| t.name == row["token_name"])
            .collect();
        assert_eq!(names.len(), 1);
        minted.push(row["token"].clone());
    }
    let report = read_report(&env.path("report.json"));
    assert_eq!(statuses(&report).get("created"), Some(&12));
    assert_eq!(report["operation"], "create");
    assert_eq!(mode(&env.path("out.age")), 0o600);
    assert_eq!(mode(&env.path("out.age.journal")), 0o600);
    assert_eq!(mode(&env.path("report.json")), 0o600);
    env.assert_no_secret_leaked(&[&run], &minted);
}

#[test]
fn create_from_csv_and_rerun_reports_exists() {
    let env = Env::start(small_fleet(2, 3));
    let first = env.run(&[
        "create",
        "-i",
        env.csv(),
        "--name",
        "deploy",
        "-r",
        &env.recipient,
        "-o",
        "a.age",
    ]);
    first.expect(0);
    let rows = env.open_handoff(&env.path("a.age"));
    assert_eq!(rows.len(), 6);
    let minted: Vec<String> = rows.iter().map(|r| r["token"].clone()).collect();
    // Idempotent: the same create again mints nothing and reports `exists`.
    let second = env.run(&[
        "create",
        "-i",
        env.csv(),
        "--name",
        "deploy",
        "-r",
        &env.recipient,
        "-o",
        "b.age",
        "--report",
        "r.json",
    ]);
    second.expect(0);
    assert_eq!(
        statuses(&read_report(&env.path("r.json"))).get("exists"),
        Some(&6)
    );
    assert!(!env.path("b.age").exists(), "no token created, no handoff");
    assert!(
        !env.path("b.age.journal").exists(),
        "nothing to resume: no journal left behind"
    );
    // So the same command runs again without --force.
    env.run(&[
        "create",
        "-i",
        env.csv(),
        "--name",
        "deploy",
        "-r",
        &env.recipient,
        "-o",
        "b.age",
    ])
    .expect(0);
    for row in &rows {
        let tokens = env.fleet.host(&row["host"]).account_tokens(&row["account"]);
        assert_eq!(tokens.iter().filter(|t| t.name == "deploy").count(), 1);
    }
    env.assert_no_secret_leaked(&[&first, &second], &minted);
}

#[test]
fn output_is_refused_if_it_exists_and_nothing_is_contacted() {
    let env = Env::start(small_fleet(1, 2));
    std::fs::write(env.path("out.age"), b"keep me").unwrap();
    let run = env.run(&[
        "create",
        "-i",
        env.toml(),
        "--name",
        "x",
        "-r",
        &env.recipient,
        "-o",
        "out.age",
    ]);
    run.expect(2);
    assert!(run.stderr.contains("--force"), "{}", run.stderr);
    assert_eq!(std::fs::read(env.path("out.age")).unwrap(), b"keep me");
    assert_eq!(env.total_requests(), 0);
}

/// api = "cpanel": each account's own token, straight to UAPI on the cPanel port.
#[test]
fn create_with_each_accounts_own_credential() {
    let env = Env::start(small_fleet(2, 2));
    let seeded = env.cpanel_inventory("own.toml");
    let run = env.run(&[
        "create",
        "-i",
        "own.toml",
        "--name",
        "app-{account}",
        "-r",
        &env.recipient,
        "-o",
        "own.age",
    ]);
    run.expect(0);
    let rows = env.open_handoff(&env.path("own.age"));
    assert_eq!(rows.len(), 4);
    for row in &rows {
        let host = env.fleet.host(&row["host"]);
        assert!(host.token_valid(&row["account"], &row["token"]));
        assert_eq!(row["token_name"], format!("app-{}", row["account"]));
        assert!(host.stats().count("cpanel/Tokens/create_full_access") >= 1);
        assert_eq!(
            host.stats()
                .count("whm/uapi_cpanel/Tokens/create_full_access"),
            0
        );
    }
    let minted: Vec<String> = rows
        .iter()
        .map(|r| r["token"].clone())
        .chain(seeded)
        .collect();
    env.assert_no_secret_leaked(&[&run], &minted);
}

/// `--scope whm`: the WHM token of each host's whm_user, usable on the WHM port.
#[test]
fn create_whm_tokens() {
    let env = Env::start(small_fleet(2, 1));
    let run = env.run(&[
        "create",
        "-i",
        env.toml(),
        "--scope",
        "whm",
        "--name",
        "ops-{host}",
        "-r",
        &env.recipient,
        "-o",
        "whm.age",
    ]);
    run.expect(0);
    let rows = env.open_handoff(&env.path("whm.age"));
    assert_eq!(rows.len(), 2);
    for row in &rows {
        let host = env.fleet.host(&row["host"]);
        assert_eq!(row["account"], "root");
        assert!(host.whm_token_valid("root", &row["token"]));
        assert_eq!(row["url"], format!("https://127.0.0.1:{}", host.whm_port()));
    }
    let minted: Vec<String> = rows.iter().map(|r| r["token"].clone()).collect();
    env.assert_no_secret_leaked(&[&run], &minted);
}

/// accounts = "*": discovered with listaccts; suspended accounts are reported and skipped.
#[test]
fn all_accounts_are_discovered_and_suspended_ones_skipped() {
    let mut spec = FleetSpec::uniform(1, 0);
    let mut host = HostSpec::new("web001").with_accounts(3);
    host.accounts[1].suspended = true;
    spec.hosts = vec![host];
    let env = Env::start_with(
        spec,
        &InventoryOptions {
            accounts_star: true,
            ..InventoryOptions::default()
        },
    );
    let run = env.run(&[
        "create",
        "-i",
        env.toml(),
        "--name",
        "all",
        "-r",
        &env.recipient,
        "-o",
        "all.age",
        "--report",
        "r.json",
    ]);
    run.expect(0);
    let report = read_report(&env.path("r.json"));
    let s = statuses(&report);
    assert_eq!(s.get("created"), Some(&2));
    assert_eq!(s.get("skipped"), Some(&1));
    assert_eq!(env.open_handoff(&env.path("all.age")).len(), 2);
}

#[test]
fn dry_run_sends_no_mutation() {
    let env = Env::start(small_fleet(2, 3));
    let run = env.run(&[
        "create",
        "-i",
        env.toml(),
        "--name",
        "dry-{account}",
        "-r",
        &env.recipient,
        "-o",
        "dry.age",
        "--dry-run",
    ]);
    run.expect(0);
    assert!(
        run.stdout.contains("dry-"),
        "the plan lists names: {}",
        run.stdout
    );
    for h in env.fleet.hosts() {
        assert_eq!(h.stats().mutations(), 0);
    }
    assert!(!env.path("dry.age").exists());
}

#[test]
fn per_host_limit_is_never_exceeded() {
    let mut spec = small_fleet(3, 12);
    for h in &mut spec.hosts {
        h.faults.latency = std::time::Duration::from_millis(30);
    }
    let env = Env::start(spec);
    let run = env.run(&[
        "create",
        "-i",
        env.toml(),
        "--name",
        "lim",
        "-r",
        &env.recipient,
        "-o",
        "lim.age",
        "-j",
        "32",
        "--per-host",
        "3",
    ]);
    run.expect(0);
    for h in env.fleet.hosts() {
        let stats = h.stats();
        assert!(
            stats.max_in_flight <= 3,
            "{}: {} in flight",
            h.name(),
            stats.max_in_flight
        );
        assert!(stats.max_in_flight >= 2, "the lanes did run in parallel");
        assert!(
            stats.tls_handshakes <= 3 * 2,
            "keep-alive: {} handshakes",
            stats.tls_handshakes
        );
    }
}

/// A create whose answer is lost: listed, the orphan revoked, created again; no orphan remains.
#[test]
fn lost_create_response_is_reconciled() {
    let mut spec = small_fleet(1, 2);
    spec.hosts[0].faults.drop_after_create = 1;
    let env = Env::start(spec);
    let run = env.run(&[
        "create",
        "-i",
        env.toml(),
        "--name",
        "rec",
        "-r",
        &env.recipient,
        "-o",
        "rec.age",
        "--timeout",
        "5",
    ]);
    run.expect(0);
    let rows = env.open_handoff(&env.path("rec.age"));
    assert_eq!(rows.len(), 2);
    let host = env.fleet.host("web001");
    for row in &rows {
        assert!(host.token_valid(&row["account"], &row["token"]));
        assert_eq!(
            host.account_tokens(&row["account"])
                .iter()
                .filter(|t| t.name == "rec")
                .count(),
            1
        );
    }
}

/// The handoff opens with the reference `age` CLI, no tokenfleet needed. CI installs it; on a
/// machine without it the test says so and checks nothing else (CI=true makes it mandatory).
#[test]
fn handoff_opens_with_the_age_cli() {
    let have_age = std::process::Command::new("age")
        .arg("--version")
        .output()
        .is_ok();
    if !have_age {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install the age CLI (.ci/run does)"
        );
        eprintln!("age CLI not installed: skipping the interop check");
        return;
    }
    let env = Env::start(small_fleet(1, 2));
    for (armor, out) in [(false, "bin.age"), (true, "armored.age")] {
        let mut args = vec![
            "create",
            "-i",
            env.toml(),
            "--name",
            out.trim_end_matches(".age"),
            "-r",
            &env.recipient,
            "-o",
            out,
        ];
        if armor {
            args.push("--armor");
        }
        env.run(&args).expect(0);
        let plain = std::process::Command::new("age")
            .args(["-d", "-i"])
            .arg(&env.identity_file)
            .arg(env.path(out))
            .output()
            .unwrap();
        assert!(
            plain.status.success(),
            "age -d failed: {}",
            String::from_utf8_lossy(&plain.stderr)
        );
        let text = String::from_utf8(plain.stdout).unwrap();
        assert!(text.starts_with("host,account,token_name,token,url,created_at,expires_at\n"));
        let rows = env.open_handoff(&env.path(out));
        for row in rows {
            assert!(text.contains(&row["token"]), "age sees the same tokens");
        }
    }
}

/// A name that someone's older token already holds, on a server that loses create answers
/// (a conflict answer included): the listing made before any create shows the name taken, so
/// no create is sent, nothing is revoked, and the target is `exists`.
#[test]
fn lost_answer_never_revokes_an_older_token_of_that_name() {
    let mut spec = small_fleet(1, 1);
    spec.hosts[0].faults.drop_create_answers = 1;
    let env = Env::start(spec);
    let host = env.fleet.host("web001");
    let account = host.accounts()[0].clone();
    let older =
        host.add_old_account_token(&account, "shared", std::time::Duration::from_secs(86_400));
    let run = env.run(&[
        "create",
        "-i",
        env.toml(),
        "--name",
        "shared",
        "-r",
        &env.recipient,
        "-o",
        "s.age",
        "--report",
        "r.json",
        "--timeout",
        "5",
    ]);
    run.expect(0);
    assert_eq!(
        statuses(&read_report(&env.path("r.json"))).get("exists"),
        Some(&1)
    );
    assert!(
        host.token_valid(&account, &older),
        "the older token was not revoked"
    );
    assert_eq!(
        host.stats().mutations(),
        0,
        "no create sent, nothing revoked"
    );
    env.assert_no_secret_leaked(&[&run], &[older]);
}

/// A create's intent is journaled after the listing that shows its name absent and before the
/// create is sent: it carries that proof (`absent`), and every `created` follows its intent.
#[test]
fn intents_carry_their_proof_and_precede_their_creates() {
    let env = Env::start(small_fleet(1, 40));
    env.run(&[
        "create",
        "-i",
        env.toml(),
        "--name",
        "b",
        "-r",
        &env.recipient,
        "-o",
        "b.age",
        "-j",
        "1",
        "--per-host",
        "1",
    ])
    .expect(0);
    let text = std::fs::read_to_string(env.path("b.age.journal")).unwrap();
    let events: Vec<serde_json::Value> = text
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    let mut intended = std::collections::BTreeSet::new();
    for e in &events {
        let account = e["account"].as_str().unwrap().to_string();
        match e["kind"].as_str().unwrap() {
            "intent" => {
                assert_eq!(e["absent"], true, "the intent carries its listing: {e}");
                intended.insert(account);
            }
            "created" => assert!(
                intended.contains(&account),
                "created without an earlier intent"
            ),
            // The last record: the handoff written whole, with its digest.
            "delivered" => assert_eq!(e, events.last().unwrap()),
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(kinds.iter().filter(|k| **k == "created").count(), 40);
    assert_eq!(
        kinds.iter().filter(|k| **k == "intent").count(),
        40,
        "one intent per target"
    );
}
