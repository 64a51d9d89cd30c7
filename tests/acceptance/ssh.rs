//! `api = "ssh"` through the binary: a real Debian sshd per simulated host on loopback (the
//! simulator's `SshFront`), whose `uapi`/`whmapi1` act on that host's simulated state, so what
//! the SSH path does is judged on the same servers' final state as the HTTPS path. Every test
//! ends with the promises (no handed-off token revoked, no live token nobody holds, no secret in
//! any output) and the simulator's own findings (no unsafe quoting, no bare program names, no
//! secret on a command line).

use crate::common::*;
use cpanel_sim::{FleetSpec, SshFront};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A fleet fronted by sshd, its HTTPS inventory (the test's `Env`) and its SSH inventory.
struct Ssh {
    env: Env,
    front: SshFront,
    inv: String,
}

/// `None` (said on stderr) where sshd is missing outside CI; CI must have it.
fn start(spec: FleetSpec, pin: bool) -> Option<Ssh> {
    if let Some(why) = SshFront::unavailable() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install openssh-server and openssh-client: {why}"
        );
        eprintln!("skipping the SSH test: {why}");
        return None;
    }
    let env = Env::start(spec);
    let front = SshFront::start(&env.fleet, &env.path("sshd")).expect("sshd starts");
    let inv = front
        .write_inventory(&env.fleet, env.dir.path(), pin)
        .expect("SSH inventory written");
    let inv = inv.to_str().unwrap().to_string();
    Some(Ssh { env, front, inv })
}

impl Ssh {
    fn run(&self, args: &[&str]) -> Run {
        self.env.run(args)
    }

    fn create(&self, name: &str, out: &str, extra: &[&str]) -> Run {
        let mut args = vec![
            "create",
            "-i",
            &self.inv,
            "--name",
            name,
            "-r",
            &self.env.recipient,
            "-o",
            out,
            "--progress",
            "never",
            "-j",
            "8",
        ];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// The simulator saw nothing it refuses: quoting, bare names, secrets in command lines.
    fn assert_clean_commands(&self) {
        assert_eq!(self.front.violations(), Vec::<String>::new());
        for h in self.env.fleet.hosts() {
            for c in self.front.commands(h.name()) {
                assert!(
                    c.argv[0] == "/usr/local/cpanel/bin/uapi"
                        || c.argv[0] == "/usr/local/cpanel/bin/whmapi1",
                    "{c:?}"
                );
                assert!(c.argv.iter().any(|a| a == "--output=json"), "{c:?}");
                if c.argv[0].ends_with("/uapi") {
                    assert!(c.argv.iter().any(|a| a.starts_with("--user=")), "{c:?}");
                }
            }
        }
    }

    /// Distinct SSH connections that ran commands on `host`.
    fn connections_used(&self, host: &str) -> usize {
        self.front
            .commands(host)
            .iter()
            .map(|c| c.connection.clone())
            .collect::<BTreeSet<_>>()
            .len()
    }
}

fn hosts(env: &Env) -> Vec<String> {
    env.fleet
        .hosts()
        .iter()
        .map(|h| h.name().to_string())
        .collect()
}

#[test]
fn create_rotate_list_revoke_over_ssh_with_one_handshake_per_host() {
    let Some(s) = start(small_fleet(3, 4), false) else {
        return;
    };
    let before = live_tokens(&s.env);
    // One lane per host: its 4 accounts share one `whmapi1 batch` per step.
    let created = s.create("ci-ssh", "h1.age", &["--per-host", "1"]);
    created.expect(0);
    let rows = s.env.open_handoff(&s.env.path("h1.age"));
    assert_eq!(rows.len(), 12, "{}", created.stderr);
    for row in &rows {
        let host = s.env.fleet.host(&row["host"]);
        assert!(host.token_valid(&row["account"], &row["token"]), "{row:?}");
        assert_eq!(
            row["url"],
            format!("https://{}:{}", host.address(), host.cpanel_port()),
            "the handoff URL stays the cPanel port's"
        );
    }
    for h in hosts(&s.env) {
        // The accounts' listings and creates shared `whmapi1 batch` commands: 2 per host.
        let lines: Vec<String> = s.front.commands(&h).into_iter().map(|c| c.line).collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines.iter().all(|l| l.contains(" batch ")), "{lines:?}");
        assert_eq!(
            s.front.logins(&h),
            1,
            "{h}: one SSH login for the whole run"
        );
        assert_eq!(
            s.connections_used(&h),
            1,
            "{h}: every command on one connection"
        );
        assert!(
            s.env.fleet.host(&h).stats().total_requests > 0,
            "commands counted"
        );
    }

    // list: the new tokens, over SSH.
    let listed = s.run(&[
        "list",
        "-i",
        &s.inv,
        "--format",
        "json",
        "--progress",
        "never",
    ]);
    listed.expect(0);
    assert_eq!(
        listed.stdout.matches("ci-ssh").count(),
        12,
        "{}",
        listed.stdout
    );

    // rotate: new ones made, verified (listed), the old revoked.
    let rotated = s.run(&[
        "rotate",
        "-i",
        &s.inv,
        "--name",
        "ci-ssh-2",
        "--revoke",
        "ci-ssh",
        "-r",
        &s.env.recipient,
        "-o",
        "h2.age",
        "--progress",
        "never",
    ]);
    rotated.expect(0);
    let rows2 = s.env.open_handoff(&s.env.path("h2.age"));
    assert_eq!(rows2.len(), 12);
    for h in s.env.fleet.hosts() {
        for a in h.accounts() {
            let names: Vec<String> = h.account_tokens(&a).into_iter().map(|t| t.name).collect();
            assert!(names.contains(&"ci-ssh-2".to_string()), "{names:?}");
            assert!(!names.contains(&"ci-ssh".to_string()), "{names:?}");
        }
    }
    assert_promises(&s.env, &before, &rows2, &[&created, &rotated]);

    // revoke: gone everywhere.
    let revoked = s.run(&[
        "revoke",
        "-i",
        &s.inv,
        "--name",
        "ci-ssh-*",
        "--progress",
        "never",
    ]);
    revoked.expect(0);
    assert_eq!(live_tokens(&s.env), before);
    s.assert_clean_commands();
    s.env
        .assert_no_secret_leaked(&[&created, &listed, &rotated, &revoked], &[]);
}

#[test]
fn whm_tokens_and_the_audit_over_ssh() {
    let Some(s) = start(small_fleet(2, 3), true) else {
        return;
    };
    let made = s.create(
        "ops-{host}",
        "whm.age",
        &[
            "--scope",
            "whm",
            "--acl",
            "list-accts",
            "--whitelist-ip",
            "192.0.2.0/24",
        ],
    );
    made.expect(0);
    // In place over SSH (whmapi1 api_token_update): the allow-list cleared, the secret kept.
    let updated = s.run(&[
        "update",
        "-i",
        &s.inv,
        "--scope",
        "whm",
        "--name",
        "ops-*",
        "--whitelist-any",
        "--progress",
        "never",
    ]);
    updated.expect(0);
    for h in s.env.fleet.hosts() {
        let ops: Vec<_> = h
            .whm_token_details("root")
            .into_iter()
            .filter(|t| t.name.starts_with("ops-"))
            .collect();
        assert_eq!(ops.len(), 1);
        assert_eq!(ops[0].acls, ["list-accts"]);
        assert!(ops[0].whitelist_ips.is_empty(), "{ops:?}");
    }
    let rows = s.env.open_handoff(&s.env.path("whm.age"));
    assert_eq!(rows.len(), 2);
    for row in &rows {
        let host = s.env.fleet.host(&row["host"]);
        assert!(host.whm_token_valid("root", &row["token"]), "{row:?}");
        assert_eq!(
            row["url"],
            format!("https://{}:{}", host.address(), host.whm_port())
        );
    }
    // The census: every token, root's and the accounts'. Over SSH no WHM token is the login's
    // own (`self`): the simulator's root token, which the HTTPS path logs in with, is unknown
    // here unless protected or known.
    let audit = s.run(&[
        "audit",
        "-i",
        &s.inv,
        "--ours",
        "ops-*",
        "--format",
        "json",
        "--progress",
        "never",
    ]);
    audit.expect(1);
    let census: Vec<serde_json::Value> = audit
        .stdout
        .lines()
        .filter(|l| l.starts_with("{\"host\""))
        .map(|l| serde_json::from_str(l.trim_end_matches(',')).unwrap())
        .collect();
    assert_eq!(census.len(), 4, "{}", audit.stdout);
    for t in &census {
        let name = t["name"].as_str().unwrap();
        let class = t["class"].as_str().unwrap();
        match name {
            n if n.starts_with("ops-") => assert_eq!(class, "ours"),
            "tokenfleet-sim-root" => assert_eq!(class, "unknown"),
            other => panic!("unexpected token {other}"),
        }
    }
    let protected = s.run(&[
        "audit",
        "-i",
        &s.inv,
        "--ours",
        "ops-*",
        "--ours",
        "tokenfleet-sim-root",
        "--progress",
        "never",
    ]);
    protected.expect(0);
    s.assert_clean_commands();
    s.env
        .assert_no_secret_leaked(&[&made, &updated, &audit, &protected], &[]);
}

#[test]
fn check_prints_each_host_key_ready_to_paste_and_a_changed_key_runs_nothing() {
    let Some(s) = start(small_fleet(3, 2), true) else {
        return;
    };
    let check = s.run(&["check", "-i", &s.inv, "--progress", "never"]);
    check.expect(0);
    for h in hosts(&s.env) {
        assert!(
            check.stdout.contains(&s.front.fingerprint(&h)),
            "{h}: {}",
            check.stdout
        );
    }
    let victim = "web002";
    s.front.change_host_key(victim).unwrap();
    let seen_before = s.front.commands(victim).len();
    let requests_before = s.env.fleet.host(victim).stats().total_requests;
    let run = s.create("after-key-change", "k.age", &[]);
    run.expect(1);
    assert!(
        run.stderr.contains("SSH host key not trusted"),
        "{}",
        run.stderr
    );
    assert_eq!(
        s.front.commands(victim).len(),
        seen_before,
        "not one command ran on the host whose key changed"
    );
    assert_eq!(
        s.env.fleet.host(victim).stats().total_requests,
        requests_before
    );
    // check shows the new key, ready to paste.
    let recheck = s.run(&["check", "-i", &s.inv, "--progress", "never"]);
    recheck.expect(1);
    assert!(
        recheck.stdout.contains(&s.front.fingerprint(victim)),
        "{}",
        recheck.stdout
    );
    let rows = s.env.open_handoff(&s.env.path("k.age"));
    assert_eq!(rows.len(), 4, "the other hosts were done");
    assert!(rows.iter().all(|r| r["host"] != victim));
    s.assert_clean_commands();
}

#[test]
fn a_known_hosts_file_is_strict_too() {
    let Some(s) = start(small_fleet(2, 1), false) else {
        return;
    };
    // The file where a path has a space (ssh splits option values into words).
    let spaced = s.env.path("known hosts dir").join("known_hosts");
    std::fs::create_dir_all(spaced.parent().unwrap()).unwrap();
    std::fs::copy(s.front.known_hosts(), &spaced).unwrap();
    let text = std::fs::read_to_string(&s.inv).unwrap();
    let moved = text.replace(
        s.front.known_hosts().to_str().unwrap(),
        spaced.to_str().unwrap(),
    );
    assert_ne!(moved, text);
    std::fs::write(&s.inv, moved).unwrap();
    let victim = "web001";
    s.front.change_host_key(victim).unwrap();
    let run = s.create("kh", "kh.age", &[]);
    run.expect(1);
    assert!(
        run.stderr.contains("SSH host key not trusted"),
        "{}",
        run.stderr
    );
    assert!(s.front.commands(victim).is_empty());
    assert_eq!(s.env.open_handoff(&s.env.path("kh.age")).len(), 1);
}

#[test]
fn a_refused_key_stops_the_host_at_once_and_resume_holds_it() {
    let Some(s) = start(small_fleet(3, 3), false) else {
        return;
    };
    let victim = "web003";
    let before = live_tokens(&s.env);
    let key = s.env.identity_file.to_str().unwrap().to_string();
    s.front.refuse_client_key(victim, true);
    let run = s.create("refused", "r.age", &["--journal", "r.journal"]);
    run.expect(1);
    assert!(run.stderr.contains("SSH login refused"), "{}", run.stderr);
    assert_eq!(
        s.front.connections(victim),
        1,
        "one attempt, never a second"
    );
    assert!(s.front.commands(victim).is_empty());
    assert_eq!(s.env.open_handoff(&s.env.path("r.age")).len(), 6);
    let resumed = s.run(&["resume", "r.journal", "-k", &key, "--progress", "never"]);
    assert_ne!(resumed.code, 0);
    assert_eq!(
        s.front.connections(victim),
        1,
        "resume holds a host whose login was refused: {}",
        resumed.stderr
    );
    // Mended, and told to: the host is done.
    s.front.refuse_client_key(victim, false);
    let mended = s.run(&[
        "resume",
        "r.journal",
        "-k",
        &key,
        "--retry-refused",
        "--progress",
        "never",
    ]);
    mended.expect(0);
    for a in s.env.fleet.host(victim).accounts() {
        assert!(
            s.env
                .fleet
                .host(victim)
                .account_tokens(&a)
                .iter()
                .any(|t| t.name == "refused")
        );
    }
    let held = held_rows(&s.env, "r.journal");
    assert_promises(&s.env, &before, &held, &[&run, &resumed, &mended]);
    s.assert_clean_commands();
}

/// Every ssh process's argv while a run works: never a token or credential.
#[test]
fn no_token_or_credential_is_on_any_ssh_command_line() {
    let Some(s) = start(slow_fleet(2, 6, 150), false) else {
        return;
    };
    let mut child = spawn(
        &s.env,
        &[
            "create",
            "-i",
            &s.inv,
            "--name",
            "argv",
            "-r",
            &s.env.recipient,
            "-o",
            "argv.age",
            "--progress",
            "never",
        ],
        "argv",
    );
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() && started.elapsed() < Duration::from_secs(60) {
        for cmdline in ssh_cmdlines() {
            seen.insert(cmdline);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let code = wait_bounded(&mut child);
    assert_eq!(code, 0, "{}", read(&s.env, "argv").stderr);
    assert!(
        seen.iter().any(|c| c.contains("Tokens create_full_access")),
        "the scan saw the ssh processes: {seen:?}"
    );
    let secrets = s.env.fleet.known_secrets();
    assert!(secrets.len() > 12);
    for c in &seen {
        for secret in &secrets {
            assert!(!c.contains(secret.as_str()), "a secret in argv: {c}");
        }
    }
    s.assert_clean_commands();
    s.env.assert_no_secret_leaked(&[&read(&s.env, "argv")], &[]);
}

/// The command lines of every `ssh` process now running, NUL separators as spaces.
fn ssh_cmdlines() -> Vec<String> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let p: PathBuf = e.path().join("cmdline");
        if let Ok(bytes) = std::fs::read(&p) {
            let words: Vec<String> = bytes
                .split(|b| *b == 0)
                .map(|w| String::from_utf8_lossy(w).into_owned())
                .collect();
            if words
                .first()
                .is_some_and(|w| w == "ssh" || w.ends_with("/ssh"))
            {
                out.push(words.join(" "));
            }
        }
    }
    out
}

#[test]
fn an_interrupted_ssh_run_resumes_and_loses_nothing() {
    let Some(s) = start(slow_fleet(2, 8, 60), false) else {
        return;
    };
    let before = live_tokens(&s.env);
    let mut child = spawn(
        &s.env,
        &[
            "create",
            "-i",
            &s.inv,
            "--name",
            "resumed",
            "-r",
            &s.env.recipient,
            "-o",
            "res.age",
            "--journal",
            "res.journal",
            "--progress",
            "never",
            "-j",
            "2",
            "--per-host",
            "1",
            // One uapi per call, so the run can stop between creates.
            "--batch",
            "1",
        ],
        "res",
    );
    signal_after_created(&mut child, &s.env.path("res.journal"), 3, libc::SIGINT);
    let first = wait_bounded(&mut child);
    assert_ne!(first, 0);
    let key = s.env.identity_file.to_str().unwrap().to_string();
    let resumed = s.run(&["resume", "res.journal", "-k", &key, "--progress", "never"]);
    resumed.expect(0);
    let rows = s.env.open_handoff(&s.env.path("res.age"));
    assert_eq!(rows.len(), 16, "{}", resumed.stderr);
    assert_promises(
        &s.env,
        &before,
        &held_rows(&s.env, "res.journal"),
        &[&read(&s.env, "res"), &resumed],
    );
    for h in hosts(&s.env) {
        assert!(s.front.logins(&h) <= 2, "{h}: one login per run");
    }
    s.assert_clean_commands();
}

/// The connection dies right after the server made the token: the run must not lose it.
#[test]
fn a_connection_lost_after_the_create_leaves_no_token_nobody_holds() {
    let Some(s) = start(small_fleet(2, 3), false) else {
        return;
    };
    let victim = s.env.fleet.host("web001");
    let mut f = victim.faults();
    f.drop_create_answers = 1;
    victim.set_faults(f);
    let before = live_tokens(&s.env);
    let run = s.create("lost", "lost.age", &["--journal", "lost.journal"]);
    // The connection died with the answer: the run logged in again, found what it had made
    // (listed), and settled it; every account ends with one token its handoff holds.
    run.expect(0);
    let rows = s.env.open_handoff(&s.env.path("lost.age"));
    assert_eq!(rows.len(), 6, "{}", run.stderr);
    let held = held_rows(&s.env, "lost.journal");
    let named = assert_promises(&s.env, &before, &held, &[&run]);
    assert!(named.is_empty(), "{named:?}");
    assert_eq!(
        s.front.logins("web001"),
        2,
        "one login, and one more after the connection died"
    );
    assert_eq!(s.front.logins("web002"), 1);
    s.assert_clean_commands();
    s.env.assert_no_secret_leaked(&[&run], &[]);
}

#[test]
fn a_missing_cli_or_an_answer_that_is_not_json_fails_that_host_clearly() {
    let Some(s) = start(small_fleet(3, 2), false) else {
        return;
    };
    let h2 = s.env.fleet.host("web002");
    let mut f = h2.faults();
    f.cli_missing = true;
    h2.set_faults(f);
    let h3 = s.env.fleet.host("web003");
    let mut f = h3.faults();
    f.cli_non_json = true;
    h3.set_faults(f);
    // A login shell that greets on standard output is not a failure.
    let h1 = s.env.fleet.host("web001");
    let mut f = h1.faults();
    f.cli_banner = true;
    h1.set_faults(f);
    let run = s.create("odd", "odd.age", &[]);
    run.expect(1);
    assert!(run.stderr.contains("not on the server"), "{}", run.stderr);
    assert!(run.stderr.contains("not JSON"), "{}", run.stderr);
    let rows = s.env.open_handoff(&s.env.path("odd.age"));
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r["host"] == "web001"));
    s.assert_clean_commands();
}

#[test]
fn a_command_that_never_answers_times_out() {
    let Some(s) = start(small_fleet(2, 1), false) else {
        return;
    };
    let before = live_tokens(&s.env);
    let h = s.env.fleet.host("web002");
    let mut f = h.faults();
    f.hang = true;
    h.set_faults(f);
    let started = Instant::now();
    let run = s.create(
        "hang",
        "hang.age",
        &[
            "--timeout",
            "2",
            "--retries",
            "0",
            "--journal",
            "hang.journal",
        ],
    );
    assert_ne!(run.code, 0);
    assert!(started.elapsed() < Duration::from_secs(60), "bounded");
    assert!(run.stderr.contains("web002"), "{}", run.stderr);
    let held = held_rows(&s.env, "hang.journal");
    assert_promises(&s.env, &before, &held, &[&run]);
}

/// The incident sweep over SSH: ours (the create's journal) stay, the attacker's go, the
/// journal names each one, and nothing else is touched.
#[test]
fn a_sweep_over_ssh_revokes_only_the_unknown_tokens() {
    use cpanel_sim::SeedToken;
    let Some(s) = start(small_fleet(2, 3), true) else {
        return;
    };
    let made = s.create("ours-{date}", "ours.age", &["--journal", "ours.journal"]);
    made.expect(0);
    let web1 = s.env.fleet.host("web001");
    let account = web1.accounts()[1].clone();
    web1.seed_account_token(&account, SeedToken::named("lpdeadbeef42"));
    s.env
        .fleet
        .host("web002")
        .seed_whm_token("root", SeedToken::named("WHM_FullRoot"));
    let before = live_tokens(&s.env);
    let swept = s.run(&[
        "sweep",
        "-i",
        &s.inv,
        "--known",
        "ours.journal",
        "--flag",
        "suspicious",
        "--yes",
        "--journal",
        "sweep.journal",
        "--progress",
        "never",
    ]);
    swept.expect(0);
    let gone: BTreeSet<(String, String, String)> =
        before.difference(&live_tokens(&s.env)).cloned().collect();
    let want: BTreeSet<(String, String, String)> = [
        (
            "web001".to_string(),
            account.clone(),
            "lpdeadbeef42".to_string(),
        ),
        (
            "web002".to_string(),
            "whm:root".to_string(),
            "WHM_FullRoot".to_string(),
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(gone, want, "{}", swept.stderr);
    let journal = std::fs::read_to_string(s.env.path("sweep.journal")).unwrap();
    assert!(journal.contains("lpdeadbeef42") && journal.contains("WHM_FullRoot"));
    let rows = s.env.open_handoff(&s.env.path("ours.age"));
    assert_promises(&s.env, &before, &rows, &[&made, &swept]);
    s.assert_clean_commands();
    s.env.assert_no_secret_leaked(&[&made, &swept], &[]);
}

/// `ssh_insecure = true`: any host key is accepted, and every run says so.
#[test]
fn ssh_insecure_accepts_any_key_and_warns_every_run() {
    let Some(s) = start(small_fleet(2, 1), false) else {
        return;
    };
    let text = std::fs::read_to_string(&s.inv).unwrap();
    let insecure: String = text
        .lines()
        .map(|l| {
            if l.starts_with("ssh_known_hosts") {
                "ssh_insecure = true".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(s.env.path("insecure.toml"), insecure).unwrap();
    s.front.change_host_key("web001").unwrap();
    let run = s.run(&[
        "create",
        "-i",
        "insecure.toml",
        "--name",
        "insecure",
        "-r",
        &s.env.recipient,
        "-o",
        "i.age",
        "--progress",
        "never",
        "-q",
    ]);
    run.expect(0);
    assert!(
        run.stderr
            .contains("ssh_insecure = true: host key NOT verified"),
        "{}",
        run.stderr
    );
    assert_eq!(s.env.open_handoff(&s.env.path("i.age")).len(), 2);
    s.assert_clean_commands();
}

/// `--per-host` above sshd's MaxSessions (10) is lowered, with a warning: sshd refuses no
/// session. An inventory `per_host = 16` is taken as written: sshd refuses sessions, and each
/// refusal is retried as "nothing was sent", on the same connection, losing nothing.
#[test]
fn per_host_is_held_to_max_sessions_over_ssh() {
    let Some(s) = start(slow_fleet(1, 30, 300), false) else {
        return;
    };
    let refused = || -> usize {
        let dir = s.env.path("sshd").join("web001");
        std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
            .map(|e| {
                std::fs::read_to_string(e.path())
                    .unwrap_or_default()
                    .matches("no more sessions")
                    .count()
            })
            .sum()
    };
    let run = s.create("wide", "w.age", &["--per-host", "16", "--batch", "1"]);
    run.expect(0);
    assert!(run.stderr.contains("lowered to 10"), "{}", run.stderr);
    assert_eq!(s.env.open_handoff(&s.env.path("w.age")).len(), 30);
    assert_eq!(s.front.logins("web001"), 1);
    assert_eq!(refused(), 0, "sshd refused no session");

    let text = std::fs::read_to_string(&s.inv).unwrap();
    std::fs::write(
        s.env.path("wide.toml"),
        text.replace("api = \"ssh\"\n", "api = \"ssh\"\nper_host = 16\n"),
    )
    .unwrap();
    let wide = s.run(&[
        "create",
        "-i",
        "wide.toml",
        "--name",
        "wider",
        "-r",
        &s.env.recipient,
        "-o",
        "w2.age",
        "--batch",
        "1",
        "--journal",
        "w2.journal",
        "--progress",
        "never",
    ]);
    wide.expect(0);
    assert!(refused() > 0, "16 at once is more than this sshd allows");
    assert_eq!(s.front.logins("web001"), 2, "one login per run still");
    assert_eq!(s.env.open_handoff(&s.env.path("w2.age")).len(), 30);
    let before: BTreeSet<_> = live_tokens(&s.env)
        .into_iter()
        .filter(|(_, _, n)| n != "wider")
        .collect();
    let mut held = held_rows(&s.env, "w2.journal");
    held.extend(s.env.open_handoff(&s.env.path("w.age")));
    assert_promises(&s.env, &before, &held, &[&run, &wide]);
    // The master connections are closed at the end: no ssh process of this test is left.
    let key = s.front.client_key().display().to_string();
    let left: Vec<String> = ssh_cmdlines()
        .into_iter()
        .filter(|c| c.contains(&key))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
