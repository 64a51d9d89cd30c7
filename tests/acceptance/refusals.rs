//! What a refused credential costs across runs, and the credential tokenfleet logs in with.
//!
//! cPHulk counts failed logins per client IP across every run: a resume must not send again a
//! credential the journal saw refused (unless it changed, or `--retry-refused`), so a run, its
//! resumes and a `check` cost at most two failed logins per host. And a revoke by glob never
//! takes the WHM token tokenfleet itself authenticates with (unless `--revoke-own-credential`):
//! every later call, on every server, would be refused.

use crate::common::*;

#[test]
fn a_run_its_resumes_and_a_check_cost_at_most_two_failed_logins_per_host() {
    let env = Env::start(small_fleet(2, 6));
    let inv = with_bad_credential(&env, "web002");
    let victim = env.fleet.host("web002");
    let bad = [("BAD_TOKEN", BAD)];
    let first = env.run_env(
        &[
            "create",
            "-i",
            &inv,
            "--name",
            "rf-{account}",
            "-r",
            &env.recipient,
            "-o",
            "rf.age",
            "--per-host",
            "8",
            "--progress",
            "never",
        ],
        &bad,
    );
    first.expect(1);
    assert_eq!(
        victim.stats().failed_auth,
        1,
        "one failed login, whatever per_host"
    );
    assert_eq!(
        journal_events(&env.path("rf.age.journal"), "refused").len(),
        1
    );

    // The same credential again: resume does not send it.
    let key = env.identity_file.to_str().unwrap().to_string();
    let resumed = env.run_env(
        &[
            "resume",
            "rf.age.journal",
            "--identity",
            &key,
            "--progress",
            "never",
        ],
        &bad,
    );
    resumed.expect(1);
    assert_eq!(
        victim.stats().failed_auth,
        1,
        "resume sent the refused credential"
    );
    assert!(
        resumed.stderr.contains("--retry-refused"),
        "{}",
        resumed.stderr
    );
    let check = env.run_env(&["check", "-i", &inv], &bad);
    check.expect(1);
    let s = victim.stats();
    assert_eq!(s.failed_auth, 2, "a run, its resume and a check");
    assert_eq!(s.blocked, 0);
    assert!(
        s.mutations() == 0,
        "nothing changed on the host that refused"
    );

    // Fixed (the secret behind the same reference changed): resume contacts the host again.
    let good = [("BAD_TOKEN", env.fleet.root_token())];
    let fixed = env.run_env(
        &[
            "resume",
            "rf.age.journal",
            "--identity",
            &key,
            "--progress",
            "never",
        ],
        &good,
    );
    fixed.expect(0);
    assert_eq!(victim.stats().failed_auth, 2);
    let rows = env.open_handoff(&env.path("rf.age"));
    assert_eq!(rows.len(), 12, "every account of both hosts");
    for row in &rows {
        let host = env.fleet.host(&row["host"]);
        assert!(host.token_valid(&row["account"], &row["token"]), "{row:?}");
    }
    let minted: Vec<String> = rows.iter().map(|r| r["token"].clone()).collect();
    env.assert_no_secret_leaked(&[&first, &resumed, &check, &fixed], &minted);
}

#[test]
fn retry_refused_sends_an_unchanged_credential_once_more() {
    // Nothing is minted, but the journal is kept: it remembers the refusal.
    let env = Env::start(small_fleet(1, 3));
    let inv = with_bad_credential(&env, "web001");
    let victim = env.fleet.host("web001");
    let bad = [("BAD_TOKEN", BAD)];
    let first = env.run_env(
        &[
            "create",
            "-i",
            &inv,
            "--name",
            "rr",
            "-r",
            &env.recipient,
            "-o",
            "rr.age",
        ],
        &bad,
    );
    first.expect(1);
    assert!(
        first
            .stderr
            .contains("retry the failed targets with `tokenfleet resume rr.age.journal`")
            && first.stderr.contains("fix the refused credential first"),
        "{}",
        first.stderr
    );
    let key = env.identity_file.to_str().unwrap().to_string();
    let held = env.run_env(&["resume", "rr.age.journal", "--identity", &key], &bad);
    held.expect(1);
    assert_eq!(victim.stats().failed_auth, 1, "resume holds the host");
    assert!(
        env.path("rr.age.journal").exists(),
        "a resume keeps its journal"
    );
    let again = env.run_env(
        &[
            "resume",
            "rr.age.journal",
            "--identity",
            &key,
            "--retry-refused",
        ],
        &bad,
    );
    again.expect(1);
    assert_eq!(victim.stats().failed_auth, 2);
    env.assert_no_secret_leaked(&[&again], &[]);
}

#[test]
fn resume_can_be_narrowed_and_paced_without_changing_what_is_minted() {
    let env = Env::start(small_fleet(2, 4));
    let inv = with_bad_credential(&env, "web002");
    let bad = [("BAD_TOKEN", BAD)];
    env.run_env(
        &[
            "create",
            "-i",
            &inv,
            "--name",
            "nw-{account}",
            "-r",
            &env.recipient,
            "-o",
            "nw.age",
        ],
        &bad,
    )
    .expect(1);
    let key = env.identity_file.to_str().unwrap().to_string();
    let good = [("BAD_TOKEN", env.fleet.root_token())];
    let web2 = env.fleet.host("web002");
    web2.reset_stats();
    // Only web001 now: web002 is left for later, untouched.
    let narrow = env.run_env(
        &[
            "resume",
            "nw.age.journal",
            "--identity",
            &key,
            "--limit",
            "web001",
            "--jobs",
            "2",
            "--per-host",
            "1",
            "--timeout",
            "5",
            "--retries",
            "0",
            "--report",
            "n.json",
        ],
        &good,
    );
    narrow.expect(1);
    assert_eq!(
        web2.stats().total_requests,
        0,
        "outside --limit: not contacted"
    );
    let report = read_report(&env.path("n.json"));
    for t in report["targets"].as_array().unwrap() {
        if t["host"] == "web002" {
            assert_eq!(t["status"], "skipped", "{t}");
            assert!(t["error"].as_str().unwrap().contains("--limit"), "{t}");
        } else {
            assert_eq!(t["status"], "created", "{t}");
        }
    }
    let rest = env.run_env(&["resume", "nw.age.journal", "--identity", &key], &good);
    rest.expect(0);
    let rows = env.open_handoff(&env.path("nw.age"));
    assert_eq!(rows.len(), 8);
    let minted: Vec<String> = rows.iter().map(|r| r["token"].clone()).collect();
    env.assert_no_secret_leaked(&[&narrow, &rest], &minted);
}

#[test]
fn a_whm_revoke_by_glob_never_takes_the_credential_in_use_unasked() {
    let env = Env::start(small_fleet(2, 1));
    let root = env.fleet.root_token().to_string();
    for h in env.fleet.hosts() {
        h.add_whm_token("root", "intruder");
        h.add_whm_token("root", "old-ci");
    }
    let dry = env.run(&[
        "revoke",
        "-i",
        env.toml(),
        "--scope",
        "whm",
        "--name",
        "*",
        "--dry-run",
        "--report",
        "dry.json",
    ]);
    dry.expect(0);
    assert!(
        dry.stderr.contains("would revoke, by name:") && dry.stderr.contains("intruder (created "),
        "{}",
        dry.stderr
    );
    assert!(
        dry.stderr.contains("kept tokenfleet-sim-root"),
        "{}",
        dry.stderr
    );
    let report = read_report(&env.path("dry.json"));
    assert_eq!(report["dry_run"], true);
    for t in report["targets"].as_array().unwrap() {
        let names: Vec<&str> = t["revoked"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["intruder", "old-ci"], "{t}");
        assert_eq!(t["status"], "would-revoke", "{t}");
        assert_eq!(t["pattern"], "*", "{t}");
        assert!(t["token_name"].is_null(), "never the glob: {t}");
        assert!(t["revoked"][0]["created_at"].is_string(), "{t}");
    }
    for h in env.fleet.hosts() {
        assert_eq!(h.whm_tokens("root").len(), 3, "a dry run revokes nothing");
    }
    let run = env.run(&["revoke", "-i", env.toml(), "--scope", "whm", "--name", "*"]);
    run.expect(0);
    for h in env.fleet.hosts() {
        let names: Vec<String> = h.whm_tokens("root").into_iter().map(|t| t.name).collect();
        assert_eq!(names, ["tokenfleet-sim-root"], "{}", h.name());
        assert!(
            h.whm_token_valid("root", &root),
            "the credential in use survives"
        );
        assert_eq!(h.stats().failed_auth, 0);
    }
    // Asked for explicitly: it goes too (and the plan said so).
    let own = env.run(&[
        "revoke",
        "-i",
        env.toml(),
        "--scope",
        "whm",
        "--name",
        "tokenfleet-sim-*",
        "-l",
        "web001",
        "--revoke-own-credential",
    ]);
    own.expect(0);
    assert!(own.stderr.contains("tokenfleet-sim-root"), "{}", own.stderr);
    assert!(!env.fleet.host("web001").whm_token_valid("root", &root));
    assert!(env.fleet.host("web002").whm_token_valid("root", &root));
    env.assert_no_secret_leaked(&[&dry, &run, &own], &[]);
}

/// `api = "cpanel"`: an account whose create was interrupted (its answer lost), then whose own
/// credential is refused on resume. The journal's `refused` record names no token: a later
/// resume must still read the account's name from its records, and finish once the credential
/// is fixed, with nothing left live that nobody holds.
#[test]
fn a_refused_account_credential_does_not_block_later_resumes() {
    let mut spec = small_fleet(1, 3);
    spec.hosts[0].faults.drop_after_create = 1;
    let env = Env::start(spec);
    env.cpanel_inventory("cp.toml");
    let first = env.run(&[
        "create",
        "-i",
        "cp.toml",
        "--name",
        "acc",
        "-r",
        &env.recipient,
        "-o",
        "acc.age",
        "--retries",
        "0",
        "-j",
        "1",
        "--per-host",
        "1",
    ]);
    first.expect(1);
    // The first account's credential goes stale.
    let good = std::fs::read_to_string(env.path("cred-0-0")).unwrap();
    std::fs::write(env.path("cred-0-0"), format!("{BAD}\n")).unwrap();
    let key = env.identity_file.to_str().unwrap().to_string();
    let stale = env.run(&["resume", "acc.age.journal", "--identity", &key]);
    assert_ne!(stale.code, 2, "{}", stale.stderr);
    let again = env.run(&["resume", "acc.age.journal", "--identity", &key]);
    assert_ne!(
        again.code, 2,
        "a refused record must not stop resume: {}",
        again.stderr
    );
    assert!(env.fleet.host("web001").stats().failed_auth <= 1);
    std::fs::write(env.path("cred-0-0"), good).unwrap();
    let fixed = env.run(&["resume", "acc.age.journal", "--identity", &key]);
    fixed.expect(0);
    let rows = env.open_handoff(&env.path("acc.age"));
    assert_eq!(rows.len(), 3);
    let host = env.fleet.host("web001");
    for a in host.accounts() {
        let named: Vec<_> = host
            .account_tokens(&a)
            .into_iter()
            .filter(|t| t.name == "acc")
            .collect();
        assert_eq!(named.len(), 1, "{a}: one token of the run, held");
    }
    let minted: Vec<String> = rows.iter().map(|r| r["token"].clone()).collect();
    env.assert_no_secret_leaked(&[&first, &stale, &again, &fixed], &minted);
}
