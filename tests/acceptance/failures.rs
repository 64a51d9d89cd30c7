//! Per-target failures are data: a refused credential, a dead host, a broken server never stop
//! the run for the others, and never lock the tool out (cPHulk).

use crate::common::*;
use std::time::Duration;

/// Give one host of the TOML inventory its own credential reference.
fn with_host_credential(env: &Env, host: &str, credential: &str) -> String {
    let text = std::fs::read_to_string(&env.files.toml).unwrap();
    let needle = format!("name = \"{host}\"\n");
    assert!(text.contains(&needle), "inventory lists {host}");
    let text = text.replace(&needle, &format!("{needle}credential = \"{credential}\"\n"));
    std::fs::write(env.path("custom.toml"), text).unwrap();
    "custom.toml".to_string()
}

#[test]
fn auth_failure_stops_one_host_while_others_finish() {
    let env = Env::start(small_fleet(3, 8));
    let inv = with_host_credential(&env, "web002", "env:BAD_TOKEN");
    let run = env.run_env(
        &[
            "create",
            "-i",
            &inv,
            "--name",
            "a",
            "-r",
            &env.recipient,
            "-o",
            "a.age",
            "--report",
            "r.json",
            "--per-host",
            "2",
        ],
        &[("BAD_TOKEN", "BADBADBADBADBADBADBADBADBADBAD12")],
    );
    run.expect(1);
    let victim = env.fleet.host("web002");
    assert!(
        victim.stats().failed_auth <= 2,
        "at most per_host refused logins: {}",
        victim.stats().failed_auth
    );
    assert_eq!(victim.stats().blocked, 0, "never locked out by cPHulk");
    let report = read_report(&env.path("r.json"));
    let s = statuses(&report);
    assert_eq!(s.get("created"), Some(&16));
    assert_eq!(
        s.get("failed").copied().unwrap_or(0) + s.get("skipped").copied().unwrap_or(0),
        8
    );
    assert!(
        run.stderr.contains("authentication refused"),
        "{}",
        run.stderr
    );
    assert_eq!(env.open_handoff(&env.path("a.age")).len(), 16);
}

#[test]
fn a_down_host_fails_alone() {
    let mut spec = small_fleet(2, 2);
    spec.hosts[1].faults.down = true;
    let env = Env::start(spec);
    let run = env.run(&[
        "create",
        "-i",
        env.toml(),
        "--name",
        "d",
        "-r",
        &env.recipient,
        "-o",
        "d.age",
        "--retries",
        "1",
    ]);
    run.expect(1);
    assert!(run.stderr.contains("cannot connect"), "{}", run.stderr);
    let verbose = env.run(&[
        "create",
        "-i",
        env.toml(),
        "--name",
        "d",
        "-r",
        &env.recipient,
        "-o",
        "d2.age",
        "--retries",
        "0",
        "-v",
    ]);
    verbose.expect(1);
    let lines: Vec<&str> = verbose
        .stderr
        .lines()
        .filter(|l| l.trim_start().starts_with("failed web002/"))
        .collect();
    // The host's first call goes alone and gets no answer: the host is given up, its other
    // target skipped without a request.
    assert_eq!(
        lines.len(),
        1,
        "-v lists each failed target: {}",
        verbose.stderr
    );
    assert!(
        verbose.stderr.contains("did not answer its first call"),
        "{}",
        verbose.stderr
    );
    assert_eq!(env.open_handoff(&env.path("d.age")).len(), 2);
}

#[test]
fn html_login_page_and_redirects_are_protocol_errors() {
    let mut spec = small_fleet(3, 1);
    spec.hosts[0].faults.html_login = true;
    spec.hosts[1].faults.redirect_to = Some("https://127.0.0.1:1/".into());
    let env = Env::start(spec);
    let run = env.run(&[
        "create",
        "-i",
        env.toml(),
        "--name",
        "h",
        "-r",
        &env.recipient,
        "-o",
        "h.age",
        "--report",
        "r.json",
    ]);
    run.expect(1);
    let report = read_report(&env.path("r.json"));
    let by_host = |h: &str| {
        report["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["host"] == h)
            .unwrap()
            .clone()
    };
    assert_eq!(by_host("web001")["status"], "failed");
    assert!(
        by_host("web001")["error"]
            .as_str()
            .unwrap()
            .contains("HTML")
    );
    assert_eq!(by_host("web002")["status"], "failed");
    assert!(
        by_host("web002")["error"]
            .as_str()
            .unwrap()
            .contains("redirect")
    );
    assert_eq!(by_host("web003")["status"], "created");
}

#[test]
fn a_hanging_server_times_out() {
    let mut spec = small_fleet(2, 1);
    spec.hosts[0].faults.hang = true;
    let env = Env::start(spec);
    let started = std::time::Instant::now();
    let run = env.run(&[
        "create",
        "-i",
        env.toml(),
        "--name",
        "t",
        "-r",
        &env.recipient,
        "-o",
        "t.age",
        "--timeout",
        "1",
        "--retries",
        "1",
    ]);
    run.expect(1);
    assert!(run.stderr.contains("timed out"), "{}", run.stderr);
    assert!(started.elapsed() < Duration::from_secs(120), "bounded");
    assert_eq!(env.open_handoff(&env.path("t.age")).len(), 1);
}

#[test]
fn service_unavailable_is_retried() {
    let mut spec = small_fleet(1, 6);
    spec.hosts[0].faults.error_503_rate = 0.3;
    let env = Env::start(spec);
    let run = env.run(&[
        "create",
        "-i",
        env.toml(),
        "--name",
        "r",
        "-r",
        &env.recipient,
        "-o",
        "r.age",
        "--report",
        "r.json",
        // At a 30% 503 rate, 6 retries left a request failing 7 times in a row about once in
        // 500 runs (a batch fails as one; the likely cause of one CI failure); 10 make it about
        // once in 70,000. The assertion now says what the run and the server saw.
        "--retries",
        "10",
    ]);
    assert!(run.code == 0 || run.code == 1, "{}", run.stderr);
    let host = env.fleet.host("web001");
    assert!(
        host.stats()
            .count("whm/uapi_cpanel/Tokens/create_full_access")
            >= 6,
        "{}\n{:?}",
        run.stderr,
        host.stats().requests
    );
    let report = read_report(&env.path("r.json"));
    for t in report["targets"].as_array().unwrap() {
        assert!(
            t["status"] == "created" || t["error"].as_str().unwrap_or("").contains("503"),
            "{t}"
        );
    }
    if env.path("r.age").exists() {
        for row in env.open_handoff(&env.path("r.age")) {
            assert!(host.token_valid(&row["account"], &row["token"]));
            assert_eq!(
                host.account_tokens(&row["account"])
                    .iter()
                    .filter(|t| t.name == "r")
                    .count(),
                1,
                "no duplicate after retries"
            );
        }
    }
}
