//! Lockout and hang safety of the lanes: each host's lane runs one task alone until the host has
//! answered once, so a wrong credential costs one failed login per host per run whatever
//! `--per-host` is, a refused verify stops its host, a host that never answers its first call is
//! given up before any mutation, and `--timeout` bounds a whole request (a dripping server
//! included). Every assertion is on the simulator's counters or the report, never on wall time;
//! every run is bounded by a watchdog so a regression fails instead of hanging.

use crate::common::*;
use cpanel_sim::{CphulkConfig, Faults, SimHost};
use std::collections::BTreeMap;
use std::process::Child;
use std::time::{Duration, Instant};

/// Generous: only there to turn a hang into a failure.
const WATCHDOG: Duration = Duration::from_secs(180);

fn reset(h: &SimHost) {
    h.reset_stats();
    h.reset_cphulk();
}

/// Wait for a started run, killing it (and failing the test) past `limit`.
fn finish(env: &Env, mut child: Child, tag: &str, limit: Duration) -> Run {
    let Some(code) = wait_within(&mut child, limit) else {
        let run = read(env, tag);
        panic!(
            "tokenfleet {tag} did not end within {limit:?}\n--- stdout\n{}\n--- stderr\n{}",
            run.stdout, run.stderr
        );
    };
    let mut run = read(env, tag);
    run.code = code;
    run
}

/// Run tokenfleet to its end, bounded by the watchdog.
fn run_bounded(env: &Env, args: &[&str], vars: &[(&str, &str)], tag: &str) -> Run {
    let child = spawn_env(env, args, vars, tag);
    finish(env, child, tag, WATCHDOG)
}

/// `create_cmd` (4 jobs) with `--per-host` set to `per_host` instead of its 2.
fn create_per_host<'a>(
    env: &'a Env,
    name: &'a str,
    out: &'a str,
    per_host: &'a str,
) -> Vec<&'a str> {
    let mut args = create_cmd(env, name, out);
    let at = args.iter().position(|a| *a == "--per-host").unwrap();
    args[at + 1] = per_host;
    args
}

fn status_counts(targets: &[&serde_json::Value]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for t in targets {
        *m.entry(t["status"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    m
}

/// The host's targets: exactly one failed (returned), every other one skipped with nothing sent.
#[track_caller]
fn one_failed_rest_skipped<'a>(
    report: &'a serde_json::Value,
    host: &str,
    what: &str,
) -> &'a serde_json::Value {
    first_call_failed_rest_skipped(report, host, what, 1)
}

/// As [`one_failed_rest_skipped`], where the host's first call carried `in_first_call` targets
/// (a `batch` of listings): they fail together, the rest is skipped, nothing sent for them.
fn first_call_failed_rest_skipped<'a>(
    report: &'a serde_json::Value,
    host: &str,
    what: &str,
    in_first_call: usize,
) -> &'a serde_json::Value {
    let ts = targets_of(report, host);
    assert!(!ts.is_empty(), "{what}: {host} is reported");
    let failed: Vec<_> = ts.iter().filter(|t| t["status"] == "failed").collect();
    assert_eq!(
        failed.len(),
        in_first_call,
        "{what}: the first call's targets failed on {host}: {ts:#?}"
    );
    assert!(
        failed.iter().all(|t| t["error"] == failed[0]["error"]),
        "{what}: one call, one cause: {failed:#?}"
    );
    for t in &ts {
        if t["status"] != "failed" {
            assert_eq!(t["status"], "skipped", "{what}: {t}");
            assert_eq!(t["attempts"], 0, "{what}: nothing sent for {t}");
        }
    }
    failed[0]
}

#[test]
fn a_wrong_whm_credential_costs_one_failed_login_per_host_whatever_per_host() {
    let env = Env::start(small_fleet(3, 10));
    let inv = with_bad_credential(&env, "web002");
    let victim = env.fleet.host("web002");
    let bad = [("BAD_TOKEN", BAD)];
    let mut all_runs = Vec::new();
    for per_host in [1usize, 4, 8] {
        let ph = per_host.to_string();
        let out = format!("c{per_host}.age");
        let rot = format!("rot{per_host}.age");
        let name = format!("lk{per_host}-{{account}}");
        let name2 = format!("rt{per_host}-{{account}}");
        let old = format!("lk{per_host}-*");
        let gone = format!("rt{per_host}-*");
        let runs: Vec<(&str, Vec<&str>)> = vec![
            (
                "create",
                vec![
                    "create",
                    "-i",
                    &inv,
                    "--name",
                    &name,
                    "-r",
                    &env.recipient,
                    "-o",
                    &out,
                ],
            ),
            (
                "rotate",
                vec![
                    "rotate",
                    "-i",
                    &inv,
                    "--name",
                    &name2,
                    "--revoke",
                    &old,
                    "-r",
                    &env.recipient,
                    "-o",
                    &rot,
                ],
            ),
            ("revoke", vec!["revoke", "-i", &inv, "--name", &gone]),
            ("list", vec!["list", "-i", &inv]),
            ("check", vec!["check", "-i", &inv]),
        ];
        for (what, mut args) in runs {
            for h in env.fleet.hosts() {
                reset(h);
            }
            let report = format!("{what}{per_host}.json");
            args.extend(["--per-host", &ph, "--retries", "5", "-j", "32"]);
            args.extend(["--progress", "never", "--report", &report]);
            let tag = format!("{what}{per_host}");
            let run = run_bounded(&env, &args, &bad, &tag);
            let what = format!("{what} --per-host {per_host}");
            run.expect(1);
            assert!(
                run.stderr.contains("authentication refused"),
                "{what}: {}",
                run.stderr
            );
            let s = victim.stats();
            assert_eq!(
                s.failed_auth, 1,
                "{what}: one failed login on the victim: {s:?}\n{}",
                run.stderr
            );
            assert_eq!(s.blocked, 0, "{what}");
            assert_eq!(s.mutations(), 0, "{what}: nothing changed on the victim");
            for other in ["web001", "web003"] {
                let o = env.fleet.host(other).stats();
                assert_eq!(o.failed_auth, 0, "{what}: {other} unaffected");
                assert!(o.total_requests > 0, "{what}: {other} was served");
            }
            let report = read_report(&env.path(&report));
            if !what.starts_with("check") {
                let failed = one_failed_rest_skipped(&report, "web002", &what);
                assert!(
                    failed["error"]
                        .as_str()
                        .unwrap()
                        .contains("authentication refused"),
                    "{what}: {failed}"
                );
                for other in ["web001", "web003"] {
                    for t in targets_of(&report, other) {
                        assert!(
                            t["status"] != "failed" && t["status"] != "skipped",
                            "{what}: {t}"
                        );
                    }
                }
            }
            all_runs.push(run);
        }
    }
    let refs: Vec<&Run> = all_runs.iter().collect();
    env.assert_no_secret_leaked(&refs, &[]);
}

#[test]
fn a_run_plus_a_check_never_reaches_a_cphulk_threshold_of_four() {
    let env = Env::start(small_fleet(3, 8));
    let inv = with_bad_credential(&env, "web002");
    let victim = env.fleet.host("web002");
    victim.set_cphulk(CphulkConfig {
        max_failures: 4,
        window: Duration::from_secs(15 * 60),
        block: Duration::from_secs(15 * 60),
    });
    let bad = [("BAD_TOKEN", BAD)];
    let common = ["--per-host", "4", "--retries", "5", "--progress", "never"];
    let mut args = vec!["check", "-i", &inv];
    args.extend(common);
    let check = run_bounded(&env, &args, &bad, "check");
    check.expect(1);
    let mut args = vec![
        "create",
        "-i",
        &inv,
        "--name",
        "hk-{account}",
        "-r",
        &env.recipient,
        "-o",
        "c.age",
    ];
    args.extend(common);
    let create = run_bounded(&env, &args, &bad, "create");
    create.expect(1);
    let mut args = vec![
        "rotate",
        "-i",
        &inv,
        "--name",
        "hk2-{account}",
        "--revoke",
        "hk-*",
        "-r",
        &env.recipient,
        "-o",
        "r.age",
    ];
    args.extend(common);
    let rotate = run_bounded(&env, &args, &bad, "rotate");
    rotate.expect(1);
    let s = victim.stats();
    assert!(
        s.failed_auth <= 3,
        "three runs, at most one failed login each: {s:?}"
    );
    assert_eq!(s.blocked, 0, "cPHulk never blocked: {s:?}");

    // The credential fixed: the host is not locked out.
    let mut args = create_cmd(&env, "ok-{account}", "ok.age");
    args.extend(["--report", "ok.json"]);
    let fixed = run_bounded(&env, &args, &[], "fixed");
    fixed.expect(0);
    let report = read_report(&env.path("ok.json"));
    let ts = targets_of(&report, "web002");
    assert_eq!(ts.len(), 8);
    assert!(ts.iter().all(|t| t["status"] == "created"), "{ts:#?}");
    assert_eq!(victim.stats().blocked, 0);
    assert_eq!(env.open_handoff(&env.path("ok.age")).len(), 24);
    env.assert_no_secret_leaked(&[&check, &create, &rotate, &fixed], &[]);
}

#[test]
fn a_cpanel_port_that_refuses_token_logins_costs_one_failed_verify() {
    let env = Env::start(small_fleet(3, 6));
    let mut old = Vec::new();
    for h in env.fleet.hosts() {
        for a in h.accounts() {
            old.push((
                h.name().to_string(),
                a.clone(),
                h.add_account_token(&a, "old-1", None),
            ));
        }
    }
    let victim = env.fleet.host("web002");
    victim.set_faults(Faults {
        refuse_cpanel_tokens: true,
        ..Faults::default()
    });
    let run = run_bounded(
        &env,
        &[
            "rotate",
            "-i",
            env.toml(),
            "--name",
            "new-{account}",
            "--revoke",
            "old-*",
            "-r",
            &env.recipient,
            "-o",
            "rot.age",
            "--per-host",
            "4",
            "--progress",
            "never",
            "--report",
            "rot.json",
        ],
        &[],
        "rotate",
    );
    run.expect(1);
    let s = victim.stats();
    assert_eq!(s.failed_auth, 1, "one refused verify on web002: {s:?}");
    assert_eq!(s.blocked, 0);
    let report = read_report(&env.path("rot.json"));
    let failed = one_failed_rest_skipped(&report, "web002", "rotate");
    assert_eq!(failed["step"], "verify", "{failed}");
    for (host, account, secret) in &old {
        let h = env.fleet.host(host);
        if host == "web002" {
            assert!(
                h.token_valid(account, secret),
                "{host}/{account}: the old token is left alive"
            );
        } else {
            assert!(!h.token_valid(account, secret), "{host}/{account} rotated");
        }
    }
    for other in ["web001", "web003"] {
        let ts = targets_of(&report, other);
        assert!(ts.iter().all(|t| t["status"] == "rotated"), "{ts:#?}");
    }
    let rows = env.open_handoff(&env.path("rot.age"));
    assert!(rows.len() >= 12, "the healthy hosts' tokens are handed off");
    for row in &rows {
        let h = env.fleet.host(&row["host"]);
        assert!(
            h.token_valid(&row["account"], &row["token"]),
            "a handed-off token works: {} {}",
            row["host"],
            row["account"]
        );
    }
    env.assert_no_secret_leaked(&[&run], &[]);
}

/// `check` over a fleet whose web002 answers `uapi_cpanel` 403 (the WHM token's ACLs): exit 1,
/// web002 failed, the others OK, no failed login. `named`: also require that the failure says
/// what was refused (uapi_cpanel) rather than blaming cPHulk.
fn check_denied_uapi_cpanel(env: &Env, named: bool) -> Run {
    let victim = env.fleet.host("web002");
    reset(victim);
    victim.set_faults(Faults {
        deny_uapi_cpanel: true,
        ..Faults::default()
    });
    let denied = run_bounded(
        env,
        &["check", "-i", env.toml(), "--format", "json"],
        &[],
        "denied",
    );
    victim.set_faults(Faults::default());
    denied.expect(1);
    let rows: serde_json::Value = serde_json::from_str(&denied.stdout).expect("JSON on stdout");
    let rows = rows.as_array().unwrap();
    for row in rows.iter().filter(|r| r["host"] != "web002") {
        assert_eq!(row["ok"], true, "{row}");
    }
    let failed: Vec<_> = rows
        .iter()
        .filter(|r| r["host"] == "web002" && r["ok"] == false)
        .collect();
    assert_eq!(failed.len(), 1, "web002 is named as failed: {rows:#?}");
    let s = victim.stats();
    assert_eq!(s.failed_auth, 0, "an ACL refusal is not a failed login");
    assert_eq!(s.blocked, 0);
    assert_eq!(s.count("whm/uapi_cpanel/Tokens/list"), 1, "{s:?}");
    assert_eq!(s.mutations(), 0);
    if named {
        let detail = failed[0]["detail"].as_str().unwrap();
        assert!(
            detail.contains("uapi_cpanel") && !detail.contains("cPHulk"),
            "the failure names uapi_cpanel, not cPHulk: {detail}"
        );
    }
    denied
}

/// `check` of an inventory naming `nosuchuser` on web001, which the server does not have: exit
/// 1, that account named as failed in JSON and in the table, every other row OK.
fn check_missing_account(env: &Env) -> (Run, Run) {
    let text = std::fs::read_to_string(&env.files.toml).unwrap();
    let needle = "accounts = [\"u001a0001\"";
    assert!(text.contains(needle), "{text}");
    let text = text.replace(needle, "accounts = [\"nosuchuser\", \"u001a0001\"");
    std::fs::write(env.path("extra.toml"), text).unwrap();
    let missing = run_bounded(
        env,
        &["check", "-i", "extra.toml", "--format", "json"],
        &[],
        "missing",
    );
    missing.expect(1);
    let rows: serde_json::Value = serde_json::from_str(&missing.stdout).expect("JSON on stdout");
    let rows = rows.as_array().unwrap();
    let row = rows
        .iter()
        .find(|r| r["user"] == "nosuchuser")
        .unwrap_or_else(|| panic!("nosuchuser named: {rows:#?}"));
    assert_eq!(row["ok"], false);
    assert_eq!(row["host"], "web001");
    for r in rows.iter().filter(|r| r["user"] != "nosuchuser") {
        assert_eq!(r["ok"], true, "{r}");
    }
    let table = run_bounded(env, &["check", "-i", "extra.toml"], &[], "table");
    table.expect(1);
    assert!(table.stdout.contains("nosuchuser"), "{}", table.stdout);
    for h in env.fleet.hosts() {
        assert_eq!(h.stats().mutations(), 0);
        assert_eq!(h.stats().failed_auth, 0);
    }
    (missing, table)
}

#[test]
fn check_exercises_uapi_cpanel_and_the_account_list() {
    let env = Env::start(small_fleet(3, 2));
    let (missing, table) = check_missing_account(&env);
    let denied = check_denied_uapi_cpanel(&env, true);
    env.assert_no_secret_leaked(&[&denied, &missing, &table], &[]);
}

/// The part of `check_exercises_uapi_cpanel_and_the_account_list` the product meets today: the
/// denied host fails alone, without a failed login, and a missing account is named.
#[test]
fn check_fails_a_denied_uapi_cpanel_and_a_missing_account() {
    let env = Env::start(small_fleet(3, 2));
    let (missing, table) = check_missing_account(&env);
    let denied = check_denied_uapi_cpanel(&env, false);
    env.assert_no_secret_leaked(&[&denied, &missing, &table], &[]);
}

#[test]
fn a_hung_host_is_given_up_before_any_mutation() {
    let mut spec = small_fleet(4, 5);
    spec.hosts[0].faults.hang_accept = true; // web001: TCP accepted, TLS never started
    spec.hosts[1].faults.hang = true; // web002: the request is read, never answered
    let env = Env::start(spec);
    let mut args = create_per_host(&env, "hg-{account}", "hg.age", "4");
    args.extend(["--timeout", "2", "--retries", "1", "--report", "hg.json"]);
    args.extend(["--batch", "25"]);
    let run = run_bounded(&env, &args, &[], "hung");
    run.expect(1);
    let report = read_report(&env.path("hg.json"));
    for healthy in ["web003", "web004"] {
        let ts = targets_of(&report, healthy);
        assert_eq!(ts.len(), 5);
        assert!(ts.iter().all(|t| t["status"] == "created"), "{ts:#?}");
    }
    for hung in ["web001", "web002"] {
        let s = env.fleet.host(hung).stats();
        assert_eq!(s.mutations(), 0, "{hung}: no mutation sent: {s:?}");
        // The first call is a batch of listings: 5 accounts over per_host 4 go 2 to a batch.
        let in_first_call = 2;
        let failed = first_call_failed_rest_skipped(&report, hung, hung, in_first_call);
        assert!(failed["attempts"].as_u64().unwrap() <= 2, "{failed}");
        for t in targets_of(&report, hung) {
            if t["status"] == "skipped" {
                let cause = t["cause"].as_str().unwrap_or("");
                assert!(cause.starts_with("no answer"), "{hung}: {t}");
            }
        }
    }
    // hang: the request is read and counted; 1 + retries of them at most.
    let s = env.fleet.host("web002").stats();
    assert!(s.total_requests <= 2, "web002: {s:?}");
    // hang_accept: no request ever arrives; one connection per attempt (2), plus one of slack
    // for a client that opens a spare connection.
    let s = env.fleet.host("web001").stats();
    assert_eq!(s.total_requests, 0);
    assert!(s.connections <= 3, "web001: {s:?}");
    assert_eq!(env.open_handoff(&env.path("hg.age")).len(), 10);
    env.assert_no_secret_leaked(&[&run], &[]);
}

/// Piped (stderr not a terminal), a host that holds a request without answering is said while
/// it lasts: at 10 s, not only when it is given up.
#[test]
fn a_waiting_host_is_shown_while_it_waits() {
    let mut spec = small_fleet(2, 2);
    spec.hosts[1].faults.hang = true;
    let env = Env::start(spec);
    let mut args = create_cmd(&env, "w", "w.age");
    let at = args.iter().position(|a| *a == "--progress").unwrap();
    args[at + 1] = "auto";
    args.extend(["--timeout", "12", "--retries", "0"]);
    let run = run_bounded(&env, &args, &[], "wait");
    run.expect(1);
    assert!(
        run.stderr.contains("web002: waiting: no answer for 10 s"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("web001: waiting"), "{}", run.stderr);
    assert_eq!(env.fleet.host("web002").stats().mutations(), 0);
    env.assert_no_secret_leaked(&[&run], &[]);
}

#[test]
fn a_drip_fed_answer_is_cut_at_the_timeout() {
    let mut spec = small_fleet(3, 3);
    spec.hosts[1].faults.drip = Duration::from_millis(200);
    let env = Env::start(spec);
    for h in env.fleet.hosts() {
        for a in h.accounts() {
            h.add_account_token(&a, "seen", None);
        }
    }
    let child = spawn_env(
        &env,
        &[
            "list",
            "-i",
            env.toml(),
            "--timeout",
            "2",
            "--retries",
            "0",
            "--progress",
            "never",
            "--report",
            "drip.json",
            "--format",
            "json",
        ],
        &[],
        "drip",
    );
    // A hang guard, not a performance assertion: a dripped answer of a few hundred bytes would
    // take a minute or more.
    let run = finish(&env, child, "drip", Duration::from_secs(30));
    run.expect(1);
    let report = read_report(&env.path("drip.json"));
    let failed = one_failed_rest_skipped(&report, "web002", "list");
    let error = failed["error"].as_str().unwrap_or("");
    let cause = failed["cause"].as_str().unwrap_or("");
    assert!(
        error.contains("timed out") || cause.contains("timed out"),
        "{failed}"
    );
    for other in ["web001", "web003"] {
        let ts = targets_of(&report, other);
        assert_eq!(ts.len(), 3);
        for t in ts {
            assert!(
                t["status"] != "failed" && t["status"] != "skipped",
                "{other}: {t}"
            );
        }
    }
    let rows: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON on stdout");
    let listed: Vec<_> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["token_name"] == "seen")
        .collect();
    assert_eq!(listed.len(), 6, "the healthy hosts' tokens are listed");
    env.assert_no_secret_leaked(&[&run], &[]);
}

#[test]
fn a_credential_refused_after_it_was_accepted_is_named_as_such() {
    let mut spec = small_fleet(2, 30);
    let latency = Duration::from_millis(50);
    spec.hosts[1].faults.latency = latency;
    let env = Env::start(spec);
    let victim = env.fleet.host("web002");
    let create = "whm/uapi_cpanel/Tokens/create_full_access";
    let mut args = create_per_host(&env, "mid-{account}", "mid.age", "1");
    args.extend(["--report", "mid.json"]);
    let mut child = spawn_env(&env, &args, &[], "mid");
    // The sim has no way to revoke the root WHM token from a test: refuse its creates instead
    // (401 before authentication, not counted by cPHulk), once a few were accepted.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if victim.stats().count(create) >= 5 {
            break;
        }
        if child.try_wait().unwrap().is_some() {
            panic!("the run ended before web002 had 5 creates: make the host slower");
        }
        assert!(Instant::now() < deadline, "web002 never reached 5 creates");
        std::thread::sleep(Duration::from_millis(5));
    }
    victim.set_faults(Faults {
        latency,
        fail_routes: [(create.to_string(), 401)].into_iter().collect(),
        ..Faults::default()
    });
    let run = finish(&env, child, "mid", WATCHDOG);
    run.expect(1);
    let report = read_report(&env.path("mid.json"));
    let ts = targets_of(&report, "web002");
    assert_eq!(ts.len(), 30);
    let counts = status_counts(&ts);
    assert!(
        counts.get("created").copied().unwrap_or(0) >= 4,
        "{counts:?}"
    );
    assert_eq!(counts.get("failed"), Some(&1), "{counts:?}");
    assert!(
        counts.get("skipped").copied().unwrap_or(0) >= 1
            && counts
                .keys()
                .all(|k| ["created", "failed", "skipped"].contains(&k.as_str())),
        "the rest of web002 is skipped: {counts:?}"
    );
    let failed = ts.iter().find(|t| t["status"] == "failed").unwrap();
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.contains("after") && error.contains("accepted calls"),
        "named as a refusal after acceptance: {failed}"
    );
    for t in &ts {
        if t["status"] == "skipped" {
            assert_eq!(t["attempts"], 0, "{t}");
        }
    }
    assert!(
        ts.iter()
            .all(|t| t["status"] != "skipped" || !t["error"].as_str().unwrap_or("").is_empty()),
        "{ts:#?}"
    );
    // One refused request, and nothing sent after it: a create sent later would be refused
    // too. (A refused batch's commands never ran: its creates are not counted.)
    assert_eq!(
        victim.stats().refused_by_route,
        1,
        "no create sent after the refusal"
    );
    assert!(
        victim.stats().count(create) <= counts.get("created").copied().unwrap_or(0) as u64 + 1,
        "{:?}",
        victim.stats()
    );
    assert_eq!(victim.stats().failed_auth, 0);
    let web001 = targets_of(&report, "web001");
    assert!(web001.iter().all(|t| t["status"] == "created"));
    let rows = env.open_handoff(&env.path("mid.age"));
    for row in &rows {
        assert!(
            env.fleet
                .host(&row["host"])
                .token_valid(&row["account"], &row["token"])
        );
    }
    env.assert_no_secret_leaked(&[&run], &[]);
}
