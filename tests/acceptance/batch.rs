//! `--batch N`: listings and creates of `api = "whm"` hosts in WHM API 1 `batch` requests. The
//! same final server state and report as `--batch 1`, in fewer requests; a batch answer lost
//! after the creates ran is settled target by target (no duplicate, nothing nobody holds); a
//! command that fails inside a batch fails just its target.

use crate::common::*;
use cpanel_sim::HostStats;
use std::collections::{BTreeMap, BTreeSet};

/// (host, account, status, token_name) of every target of a report.
fn outcomes(report: &serde_json::Value) -> BTreeSet<(String, String, String, String)> {
    report["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let s = |k: &str| t[k].as_str().unwrap_or("").to_string();
            (s("host"), s("account"), s("status"), s("token_name"))
        })
        .collect()
}

/// Token names per (host, account) on the fleet now.
fn names(env: &Env) -> BTreeMap<(String, String), Vec<String>> {
    let mut out = BTreeMap::new();
    for h in env.fleet.hosts() {
        for a in h.accounts() {
            let mut n: Vec<String> = h.account_tokens(&a).into_iter().map(|t| t.name).collect();
            n.sort();
            out.insert((h.name().to_string(), a), n);
        }
    }
    out
}

fn stats(env: &Env) -> HostStats {
    let mut sum = HostStats::default();
    for h in env.fleet.hosts() {
        let s = h.stats();
        sum.total_requests += s.total_requests;
        sum.batches += s.batches;
        sum.batch_commands += s.batch_commands;
        sum.failed_auth += s.failed_auth;
    }
    sum
}

fn with_batch<'a>(mut args: Vec<&'a str>, batch: &'a str) -> Vec<&'a str> {
    args.extend(["--batch", batch, "--report", "report.json"]);
    args
}

#[test]
fn create_and_list_with_batches_match_one_call_per_request_in_fewer_requests() {
    let mut runs = Vec::new();
    for batch in ["1", "25"] {
        let env = Env::start(small_fleet(3, 12));
        let before = live_tokens(&env);
        let create = env.run(&with_batch(create_cmd(&env, "ci", "out.age"), batch));
        create.expect(0);
        let created = stats(&env);
        let report = read_report(&env.path("report.json"));
        let handed = env.open_handoff(&env.path("out.age"));
        assert_eq!(handed.len(), 36);
        assert!(assert_promises(&env, &before, &handed, &[&create]).is_empty());
        for h in env.fleet.hosts() {
            h.reset_stats();
        }
        let list = env.run(&[
            "list",
            "-i",
            env.toml(),
            "--batch",
            batch,
            "--progress",
            "never",
            "-j",
            "4",
            "--per-host",
            "2",
            "--report",
            "list.json",
        ]);
        list.expect(0);
        let listed = stats(&env);
        let list_report = read_report(&env.path("list.json"));
        runs.push((
            outcomes(&report),
            names(&env),
            outcomes(&list_report),
            created,
            listed,
            list.stdout.lines().count(),
        ));
    }
    let (one, many) = (&runs[0], &runs[1]);
    assert_eq!(one.0, many.0, "the same create report");
    assert_eq!(one.1, many.1, "the same tokens on the servers");
    assert_eq!(one.2, many.2, "the same list report");
    assert_eq!(one.5, many.5, "the same listing");
    assert_eq!(
        (one.3.batches, one.4.batches),
        (0, 0),
        "--batch 1 sends no batch"
    );
    // 12 accounts, 2 per host: two batches of 6 per host, each a listing then a create batch.
    assert_eq!(many.3.batches, 3 * 2 * 2);
    assert_eq!(many.3.batch_commands, 3 * 12 * 2);
    assert_eq!(many.4.batches, 3 * 2);
    assert!(
        many.3.total_requests * 4 < one.3.total_requests,
        "create: {} requests batched vs {}",
        many.3.total_requests,
        one.3.total_requests
    );
    assert!(many.4.total_requests * 4 < one.4.total_requests);
}

#[test]
fn a_lost_batch_answer_after_the_creates_ran_is_settled_target_by_target() {
    let mut spec = small_fleet(1, 8);
    // The first create command loses its batch's whole answer, after every create of it ran.
    spec.hosts[0].faults.drop_create_answers = 1;
    let env = Env::start(spec);
    let before = live_tokens(&env);
    let run = env.run(&with_batch(create_cmd(&env, "ci", "out.age"), "25"));
    run.expect(0);
    let handed = env.open_handoff(&env.path("out.age"));
    assert_eq!(handed.len(), 8, "every target created once, in the handoff");
    let h = &env.fleet.hosts()[0];
    for a in h.accounts() {
        let n = h
            .account_tokens(&a)
            .iter()
            .filter(|t| t.name == "ci")
            .count();
        assert_eq!(n, 1, "{a}: exactly one token of the name");
    }
    // The lost batch's four tokens were made, found by the listings after, revoked as orphans.
    assert_eq!(h.revoked_tokens().len(), 4, "{}", run.stderr);
    assert!(
        run.stderr.contains("revoked orphan token ci"),
        "{}",
        run.stderr
    );
    assert!(assert_promises(&env, &before, &handed, &[&run]).is_empty());
    let report = read_report(&env.path("report.json"));
    assert_eq!(statuses(&report).get("created"), Some(&8));
    assert!(
        h.stats().batches >= 3,
        "listing and create batches were sent"
    );
}

#[test]
fn a_command_failing_inside_a_batch_fails_just_its_target() {
    let env = Env::start(small_fleet(1, 5));
    let text = std::fs::read_to_string(env.toml()).unwrap();
    let text = text.replacen("accounts = [", "accounts = [\"ghost\", ", 1);
    std::fs::write(env.path("ghost.toml"), text).unwrap();
    let mut args = create_cmd(&env, "ci", "out.age");
    args[2] = "ghost.toml";
    let run = env.run(&with_batch(args, "25"));
    assert_ne!(run.code, 0, "a failed target fails the run");
    let report = read_report(&env.path("report.json"));
    assert_eq!(statuses(&report).get("created"), Some(&5));
    assert_eq!(statuses(&report).get("failed"), Some(&1));
    let ghost = targets_of(&report, env.fleet.hosts()[0].name())
        .into_iter()
        .find(|t| t["account"] == "ghost")
        .unwrap();
    assert!(
        ghost["error"].as_str().unwrap().contains("does not exist"),
        "{ghost}"
    );
    assert_eq!(env.open_handoff(&env.path("out.age")).len(), 5);
    assert!(env.fleet.hosts()[0].stats().batches >= 2);
}

#[test]
fn a_refused_credential_costs_one_failed_login_and_stops_the_host() {
    let env = Env::start(small_fleet(2, 6));
    let bad = with_bad_credential(&env, env.fleet.hosts()[0].name());
    let mut args = create_cmd(&env, "ci", "out.age");
    args[2] = &bad;
    let run = env.run_env(&with_batch(args, "25"), &[("BAD_TOKEN", BAD)]);
    assert_ne!(run.code, 0);
    let h0 = &env.fleet.hosts()[0];
    assert_eq!(h0.stats().failed_auth, 1, "one batch, one failed login");
    let report = read_report(&env.path("report.json"));
    let on_bad = targets_of(&report, h0.name());
    assert_eq!(
        on_bad.iter().filter(|t| t["status"] == "failed").count(),
        1,
        "the first target fails, the rest is not attempted"
    );
    assert!(on_bad.iter().filter(|t| t["status"] == "skipped").count() >= 5);
    assert_eq!(
        env.open_handoff(&env.path("out.age")).len(),
        6,
        "the other host is done"
    );
}
