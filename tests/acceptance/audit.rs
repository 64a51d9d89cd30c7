//! `audit` and `sweep` against a seeded "compromised" fleet: attacker tokens hidden among
//! system tokens, our own (made by a tokenfleet run whose journal the census is given), the
//! credential in use and unknown-but-legitimate ones, on WHM and on accounts. Every promise is
//! judged by the servers' final state.

use crate::common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// What was planted, by (host, owner, name), with the class the census must give it. The owner
/// is an account or `whm:root`.
struct Seeded {
    class: BTreeMap<TokenKey, &'static str>,
    /// Secrets of every planted token: none may leak.
    secrets: Vec<String>,
}

/// A fleet of 3 hosts × 3 accounts; a create run made `ours-…` tokens for every account
/// (journal `ours.age.journal`, report `ours.json`); then the planted tokens.
fn compromised() -> (Env, Seeded) {
    let env = Env::start(small_fleet(3, 3));
    // `protect` in the inventory's defaults: an integration's token the operator knows.
    let toml = std::fs::read_to_string(env.toml()).unwrap();
    std::fs::write(
        env.toml(),
        toml.replacen("[defaults]\n", "[defaults]\nprotect = [\"TNC-WP-*\"]\n", 1),
    )
    .unwrap();
    env.run(&[
        "create",
        "-i",
        env.toml(),
        "--name",
        "ours-{account}",
        "-r",
        &env.recipient,
        "-o",
        "ours.age",
        "--report",
        "ours.json",
    ])
    .expect(0);
    assert!(env.path("ours.age.journal").exists() || env.path("ours.json").exists());
    let mut class = BTreeMap::new();
    let mut secrets = Vec::new();
    let hosts: Vec<String> = env
        .fleet
        .hosts()
        .iter()
        .map(|h| h.name().to_string())
        .collect();
    for (i, host) in hosts.iter().enumerate() {
        let h = env.fleet.host(host);
        let whm = |n: &str| (host.clone(), "whm:root".to_string(), n.to_string());
        class.insert(whm("tokenfleet-sim-root"), "self");
        for (name, c) in [
            ("reverse_trust_9f1c2d7e", "system"),
            ("WebPros_Dashboard", "system"),
            ("backup-offsite", "unknown"),
        ] {
            secrets.push(h.add_whm_token("root", name));
            class.insert(whm(name), c);
        }
        if i != 1 {
            secrets.push(h.add_whm_token("root", "WHM_FullRoot"));
            class.insert(whm("WHM_FullRoot"), "unknown");
        }
        for (j, a) in h.accounts().iter().enumerate() {
            let acct = |n: &str| (host.clone(), a.clone(), n.to_string());
            class.insert(acct(&format!("ours-{a}")), "ours");
            secrets.push(h.add_account_token(a, "TNC-WP-TOOLBOX", None));
            class.insert(acct("TNC-WP-TOOLBOX"), "system");
            secrets.push(h.add_old_account_token(
                a,
                "wp-toolkit",
                std::time::Duration::from_secs(86_400 * 400),
            ));
            class.insert(acct("wp-toolkit"), "unknown");
            if j == 0 {
                secrets.push(h.add_account_token(a, "lp3f9a1c2e", None));
                class.insert(acct("lp3f9a1c2e"), "unknown");
            }
        }
    }
    (env, Seeded { class, secrets })
}

fn census(doc: &Value) -> BTreeMap<TokenKey, (String, Vec<String>)> {
    doc["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .map(|t| {
            let owner = match t["owner_kind"].as_str().unwrap() {
                "whm" => format!("whm:{}", t["owner"].as_str().unwrap()),
                _ => t["owner"].as_str().unwrap().to_string(),
            };
            let flags = t["flags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap().to_string())
                .collect();
            (
                (
                    t["host"].as_str().unwrap().to_string(),
                    owner,
                    t["name"].as_str().unwrap().to_string(),
                ),
                (t["class"].as_str().unwrap().to_string(), flags),
            )
        })
        .collect()
}

#[test]
fn the_census_classes_every_token_and_exits_1_on_findings() {
    let (env, seeded) = compromised();
    env.fleet.hosts().iter().for_each(|h| h.reset_stats());
    let run = env.run(&with_known(&env, "audit", &["--format", "json"]));
    run.expect(1);
    let doc: Value = serde_json::from_str(&run.stdout).expect("stdout is the JSON census");
    assert_eq!(doc["schema_version"], 1);
    assert_eq!(doc["kind"], "audit");
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docs/audit.schema.json"
        ))
        .unwrap(),
    )
    .unwrap();
    if let Some(e) = crate::operator::schema_errors(&schema, &schema, &doc, "$") {
        panic!("the census does not match docs/audit.schema.json: {e}\n{doc:#}");
    }
    let got = census(&doc);
    let want: BTreeMap<TokenKey, String> = seeded
        .class
        .iter()
        .map(|(k, c)| (k.clone(), c.to_string()))
        .collect();
    let got_classes: BTreeMap<TokenKey, String> = got
        .iter()
        .map(|(k, (c, _))| (k.clone(), c.clone()))
        .collect();
    assert_eq!(
        got_classes, want,
        "every token on the fleet, each in its class"
    );
    for ((_, _, name), (_, flags)) in &got {
        let suspicious = flags.iter().any(|f| f == "suspicious");
        assert_eq!(
            suspicious,
            name == "WHM_FullRoot" || name == "lp3f9a1c2e",
            "{name}: {flags:?}"
        );
    }
    let root = &got[&(
        env.fleet.hosts()[0].name().to_string(),
        "whm:root".to_string(),
        "WHM_FullRoot".to_string(),
    )]
        .1;
    for f in ["full-access", "allow-any-ip", "never-expires"] {
        assert!(root.iter().any(|x| x == f), "{f} in {root:?}");
    }
    assert_eq!(doc["summary"]["by_class"]["self"], 3);
    assert_eq!(doc["summary"]["unreached"], 0);
    // Read-only: nothing changed on any server.
    let mutations: u64 = env
        .fleet
        .hosts()
        .iter()
        .map(|h| h.stats().mutations())
        .sum();
    assert_eq!(mutations, 0, "an audit changes nothing");
    // The report's own tokens count as ours too; the table says the same.
    let table = env.run(&["audit", "-i", env.toml(), "--known", "ours.json"]);
    table.expect(1);
    assert!(table.stdout.contains("WHM_FullRoot"), "{}", table.stdout);
    assert!(
        table.stdout.contains("audit: ") && table.stdout.contains("ours 9"),
        "{}",
        table.stdout
    );
    let csv_run = env.run(&[
        "audit",
        "-i",
        env.toml(),
        "--ours",
        "ours-*",
        "--format",
        "csv",
    ]);
    csv_run.expect(1);
    let rows = csv_run.stdout.lines().count();
    assert_eq!(
        rows,
        seeded.class.len() + 1,
        "a header and one row per token"
    );
    env.assert_no_secret_leaked(&[&run, &table, &csv_run], &seeded.secrets);
}

#[test]
fn a_clean_fleet_exits_0() {
    let env = Env::start(small_fleet(2, 2));
    let run = env.run(&["audit", "-i", env.toml()]);
    run.expect(0);
    assert!(run.stdout.contains("self 2"), "{}", run.stdout);
}

#[test]
fn sweep_dry_run_changes_nothing_and_names_what_would_go() {
    let (env, seeded) = compromised();
    let before = live_tokens(&env);
    env.fleet.hosts().iter().for_each(|h| h.reset_stats());
    let run = env.run(&with_known(
        &env,
        "sweep",
        &["--dry-run", "--report", "dry.json"],
    ));
    run.expect(0);
    assert_eq!(live_tokens(&env), before, "a dry run revokes nothing");
    let mutations: u64 = env
        .fleet
        .hosts()
        .iter()
        .map(|h| h.stats().mutations())
        .sum();
    assert_eq!(mutations, 0);
    let report = read_report(&env.path("dry.json"));
    let mut would: BTreeSet<TokenKey> = BTreeSet::new();
    for t in report["targets"].as_array().unwrap() {
        for r in t["revoked"].as_array().unwrap() {
            would.insert(target_key(t, r["name"].as_str().unwrap()));
        }
    }
    assert_eq!(would, unknown_of(&seeded));
    assert!(run.stderr.contains("WHM_FullRoot"), "{}", run.stderr);
    assert!(!env.path("tokenfleet-sweep.journal").exists());
    env.assert_no_secret_leaked(&[&run], &seeded.secrets);
}

/// `COMMAND -i INV --known ours.age.journal EXTRA...`: the census knows our tokens.
fn with_known<'a>(env: &'a Env, command: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![command, "-i", env.toml(), "--known", "ours.age.journal"];
    args.extend_from_slice(extra);
    args
}

/// The key of a report target's token: a WHM target's account is its WHM user.
fn target_key(t: &Value, name: &str) -> TokenKey {
    let account = t["account"].as_str().unwrap();
    let owner = if account == "root" {
        "whm:root".to_string()
    } else {
        account.to_string()
    };
    (
        t["host"].as_str().unwrap().to_string(),
        owner,
        name.to_string(),
    )
}

fn unknown_of(seeded: &Seeded) -> BTreeSet<TokenKey> {
    seeded
        .class
        .iter()
        .filter(|(_, c)| **c == "unknown")
        .map(|(k, _)| k.clone())
        .collect()
}

#[test]
fn sweep_revokes_exactly_the_unknown_and_journals_each_with_its_metadata() {
    let (env, seeded) = compromised();
    let before = live_tokens(&env);
    let run = env.run(&with_known(
        &env,
        "sweep",
        &[
            "--yes",
            "--journal",
            "sweep.journal",
            "--report",
            "sweep.json",
        ],
    ));
    run.expect(0);
    let gone: BTreeSet<TokenKey> = before.difference(&live_tokens(&env)).cloned().collect();
    assert_eq!(gone, unknown_of(&seeded), "exactly the unknown tokens went");
    // Ours still work (no handed-off token revoked), and so does the credential in use.
    assert_promises(
        &env,
        &before,
        &env.open_handoff(&env.path("ours.age")),
        &[&run],
    );
    for h in env.fleet.hosts() {
        assert!(h.whm_token_valid("root", env.fleet.root_token()));
    }
    // The journal is the audit trail: every revoked token with its metadata.
    let journal = std::fs::read_to_string(env.path("sweep.journal")).unwrap();
    let mut journaled = BTreeSet::new();
    for line in journal.lines().skip(1) {
        let v: Value = serde_json::from_str(line).unwrap();
        if v["kind"] == "sweep" && v["step"] == "revoked" {
            for t in v["tokens"].as_array().unwrap() {
                assert_eq!(t["class"], "unknown");
                assert!(t.get("flags").is_some() && t.get("created_at").is_some());
                let owner = match t["owner_kind"].as_str().unwrap() {
                    "whm" => format!("whm:{}", t["owner"].as_str().unwrap()),
                    _ => t["owner"].as_str().unwrap().to_string(),
                };
                journaled.insert((
                    t["host"].as_str().unwrap().to_string(),
                    owner,
                    t["name"].as_str().unwrap().to_string(),
                ));
            }
        }
    }
    assert_eq!(journaled, unknown_of(&seeded));
    assert_eq!(mode(&env.path("sweep.journal")), 0o600);
    // A second sweep finds nothing more to take.
    let again = env.run(&with_known(
        &env,
        "sweep",
        &[
            "--yes",
            "--journal",
            "sweep2.journal",
            "--report",
            "again.json",
        ],
    ));
    again.expect(0);
    let totals = statuses(&read_report(&env.path("again.json")));
    assert_eq!(totals.get("revoked"), None, "{totals:?}");
    env.assert_no_secret_leaked(&[&run, &again], &seeded.secrets);
}

#[test]
fn sweep_narrowed_by_name_and_flag_takes_only_those() {
    let (env, seeded) = compromised();
    let before = live_tokens(&env);
    let run = env.run(&with_known(
        &env,
        "sweep",
        &["--flag", "suspicious", "--yes"],
    ));
    run.expect(0);
    let gone: BTreeSet<TokenKey> = before.difference(&live_tokens(&env)).cloned().collect();
    let want: BTreeSet<TokenKey> = unknown_of(&seeded)
        .into_iter()
        .filter(|(_, _, n)| n == "WHM_FullRoot" || n == "lp3f9a1c2e")
        .collect();
    assert_eq!(gone, want);
    let before = live_tokens(&env);
    env.run(&[
        "sweep",
        "-i",
        env.toml(),
        "--ours",
        "ours-*",
        "--name",
        "backup-*",
        "--yes",
        "--force",
    ])
    .expect(0);
    let gone: BTreeSet<TokenKey> = before.difference(&live_tokens(&env)).cloned().collect();
    assert!(
        gone.iter().all(|(_, _, n)| n == "backup-offsite") && gone.len() == 3,
        "{gone:?}"
    );
}

#[test]
fn sweep_without_a_terminal_or_yes_refuses_before_any_request() {
    let (env, _) = compromised();
    env.fleet.hosts().iter().for_each(|h| h.reset_stats());
    let run = env.run(&["sweep", "-i", env.toml()]);
    run.expect(2);
    assert!(run.stderr.contains("--yes"), "{}", run.stderr);
    assert_eq!(env.total_requests(), 0, "nothing was contacted");
}

#[test]
fn the_credential_in_use_is_never_swept_even_unnamed() {
    // No --known, no --ours: everything but self and system is unknown, ours included.
    let (env, _) = compromised();
    env.run(&["sweep", "-i", env.toml(), "--scope", "whm", "--yes"])
        .expect(0);
    for h in env.fleet.hosts() {
        let names: BTreeSet<String> = h.whm_tokens("root").into_iter().map(|t| t.name).collect();
        let want: BTreeSet<String> = [
            "tokenfleet-sim-root",
            "reverse_trust_9f1c2d7e",
            "WebPros_Dashboard",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        assert_eq!(names, want, "{}", h.name());
        assert!(h.whm_token_valid("root", env.fleet.root_token()));
    }
}

#[test]
fn bad_census_input_is_exit_2_with_the_line() {
    let env = Env::start(small_fleet(1, 1));
    std::fs::write(env.path("ioc.txt"), "WHM_FullRoot\nbad[\n").unwrap();
    std::fs::write(env.path("junk.json"), "{\"a\":1}").unwrap();
    let run = env.run(&[
        "audit",
        "-i",
        env.toml(),
        "--ioc",
        "ioc.txt",
        "--known",
        "junk.json",
        "--since",
        "last tuesday",
    ]);
    run.expect(2);
    assert!(run.stderr.contains("ioc.txt:2"), "{}", run.stderr);
    assert!(run.stderr.contains("junk.json"), "{}", run.stderr);
    assert!(run.stderr.contains("--since"), "{}", run.stderr);
    assert_eq!(env.total_requests(), 0);
    let scope = env.run(&["list", "-i", env.toml(), "--scope", "all"]);
    scope.expect(2);
}

/// Lines of a sweep journal recording revoked tokens.
fn swept(journal: &std::path::Path) -> usize {
    std::fs::read_to_string(journal)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["kind"] == "sweep" && v["step"] == "revoked")
        .count()
}

#[test]
fn an_interrupted_sweep_resumes_and_finishes() {
    let (env, seeded) = compromised();
    for h in env.fleet.hosts() {
        let mut f = h.faults();
        f.latency = std::time::Duration::from_millis(120);
        h.set_faults(f);
    }
    let before = live_tokens(&env);
    let journal = env.path("sweep.journal");
    let mut child = spawn(
        &env,
        &with_known(
            &env,
            "sweep",
            &[
                "--yes",
                "--journal",
                "sweep.journal",
                "-j",
                "1",
                "--per-host",
                "1",
            ],
        ),
        "first",
    );
    let mut signalled = false;
    for _ in 0..2000 {
        if swept(&journal) >= 2 {
            unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
            signalled = true;
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(signalled, "the sweep ended before it could be interrupted");
    assert_eq!(wait_bounded(&mut child), 130);
    let first_err = std::fs::read_to_string(env.path("first.stderr")).unwrap();
    assert!(
        first_err.contains("tokenfleet resume sweep.journal"),
        "{first_err}"
    );
    let part: BTreeSet<TokenKey> = before.difference(&live_tokens(&env)).cloned().collect();
    assert!(
        part.len() < unknown_of(&seeded).len(),
        "interrupted part-way"
    );
    assert!(part.is_subset(&unknown_of(&seeded)));
    for h in env.fleet.hosts() {
        h.set_faults(Default::default());
        h.reset_stats();
    }
    let resumed = env.run(&["resume", "sweep.journal", "--report", "resumed.json"]);
    resumed.expect(0);
    let gone: BTreeSet<TokenKey> = before.difference(&live_tokens(&env)).cloned().collect();
    assert_eq!(gone, unknown_of(&seeded), "the resume finished the sweep");
    assert_promises(
        &env,
        &before,
        &env.open_handoff(&env.path("ours.age")),
        &[&resumed],
    );
    let totals = statuses(&read_report(&env.path("resumed.json")));
    assert!(
        totals.get("revoked").copied().unwrap_or(0) > 0,
        "{totals:?}"
    );
    env.assert_no_secret_leaked(&[&resumed], &seeded.secrets);
}

/// Run tokenfleet with stdin and stderr on a pseudo-terminal; when `prompt` appears on it, call
/// `at_prompt` and type `answer`. Bounded (90 s). Returns the exit code and everything shown.
fn answer_in_pty(
    env: &Env,
    args: &[&str],
    prompt: &str,
    answer: &str,
    mut at_prompt: impl FnMut(),
) -> (i32, String) {
    use std::io::{Read, Write};
    use std::os::fd::{FromRawFd, OwnedFd};
    let (mut master, mut slave) = (0, 0);
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty");
    let master = unsafe { OwnedFd::from_raw_fd(master) };
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tokenfleet"));
    cmd.current_dir(env.dir.path())
        .env("WHM_TOKEN", env.fleet.root_token())
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::from(slave.try_clone().unwrap()))
        .stdout(std::fs::File::create(env.path("pty.stdout")).unwrap())
        .stderr(std::process::Stdio::from(slave))
        .args(args);
    let mut child = cmd.spawn().expect("tokenfleet starts");
    drop(cmd);
    let mut writer = std::fs::File::from(master.try_clone().unwrap());
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let mut reader = std::fs::File::from(master);
    let pump = std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut shown = String::new();
    let mut answered = false;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    loop {
        match rx.recv_timeout(std::time::Duration::from_millis(200)) {
            Ok(bytes) => {
                shown.push_str(&String::from_utf8_lossy(&bytes));
                if !answered && shown.contains(prompt) {
                    answered = true;
                    at_prompt();
                    writer.write_all(format!("{answer}\n").as_bytes()).unwrap();
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(_) if std::time::Instant::now() > deadline => {
                let _ = child.kill();
                break;
            }
            Err(_) => {
                if child.try_wait().unwrap().is_some() && answered {
                    // The child is gone; drain what is left.
                    while let Ok(b) = rx.recv_timeout(std::time::Duration::from_millis(100)) {
                        shown.push_str(&String::from_utf8_lossy(&b));
                    }
                    break;
                }
            }
        }
    }
    drop(writer);
    let code = wait_within(&mut child, std::time::Duration::from_secs(10)).expect("it ended");
    drop(pump);
    (code, shown)
}

#[test]
fn on_a_terminal_the_sweep_shows_what_would_go_and_takes_only_that_after_a_yes() {
    let (env, seeded) = compromised();
    let before = live_tokens(&env);
    let args = [
        "sweep",
        "-i",
        env.toml(),
        "--known",
        "ours.age.journal",
        "--journal",
        "tty.journal",
    ];
    // "no": nothing is revoked, and no journal is left.
    let (code, shown) = answer_in_pty(&env, &args, "Type yes to go on", "no", || {});
    assert_eq!(code, 0, "{shown}");
    assert!(
        shown.contains("WHM_FullRoot") && shown.contains("would-revoke"),
        "{shown}"
    );
    assert!(shown.contains("not confirmed"), "{shown}");
    assert_eq!(live_tokens(&env), before);
    assert!(!env.path("tty.journal").exists());
    // "yes": what was shown goes; a token planted while the question waited was not shown, so
    // it stays for the next census.
    let host = env.fleet.hosts()[1].name().to_string();
    let mut late = String::new();
    let (code, shown) = answer_in_pty(&env, &args, "Type yes to go on", "yes", || {
        late = env.fleet.host(&host).add_whm_token("root", "late-arrival");
    });
    assert_eq!(code, 0, "{shown}");
    let gone: BTreeSet<TokenKey> = before.difference(&live_tokens(&env)).cloned().collect();
    assert_eq!(gone, unknown_of(&seeded));
    assert!(
        env.fleet
            .host(&host)
            .whm_tokens("root")
            .iter()
            .any(|t| t.name == "late-arrival"),
        "only the tokens shown are revoked"
    );
    let mut secrets = seeded.secrets.clone();
    secrets.push(late);
    assert!(
        !secrets.iter().any(|s| shown.contains(s.as_str())),
        "no secret on the terminal"
    );
}

/// The simulator's compromised fleet (dozens of tokens per account, ACL maps, allow-lists,
/// expired tokens, attacker tokens among them): the census agrees with what was planted, and a
/// sweep with the legitimate integrations protected takes exactly the attacker's tokens.
#[test]
fn a_seeded_compromised_fleet_classes_as_planted_and_the_sweep_takes_only_the_attackers() {
    use cpanel_sim::{PlantKind, TokenOwner};
    let env = Env::start(small_fleet(4, 5));
    let seeded = cpanel_sim::seed_compromised(&env.fleet, 7, 24);
    let key = |p: &cpanel_sim::Planted| {
        let owner = match &p.owner {
            TokenOwner::WhmUser(u) => format!("whm:{u}"),
            TokenOwner::Account(a) => a.clone(),
        };
        (p.host.clone(), owner, p.name.clone())
    };
    let run = env.run(&["audit", "-i", env.toml(), "--format", "json"]);
    run.expect(1);
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    let got = census(&doc);
    assert!(
        got.len() > 4 * 5 * 24,
        "dozens of tokens per account: {}",
        got.len()
    );
    for p in &seeded.planted {
        let (class, flags) = &got[&key(p)];
        let suspicious = flags.iter().any(|f| f == "suspicious");
        match p.kind {
            PlantKind::System => assert_eq!(class, "system", "{p:?}"),
            PlantKind::Attacker => {
                assert_eq!(class, "unknown", "{p:?}");
                assert!(suspicious, "{p:?}: {flags:?}");
            }
            PlantKind::Legit => {
                assert_eq!(class, "unknown", "{p:?}");
                assert!(!suspicious, "{p:?}: {flags:?}");
            }
        }
    }
    // ACL maps and allow-lists as WHM lists them: the DNS cluster's token is not full access;
    // the backup service's is bound to its addresses.
    for ((_, owner, name), (_, flags)) in &got {
        if owner.starts_with("whm:") && name.starts_with("reverse_trust_") {
            assert!(
                !flags.iter().any(|f| f == "full-access"),
                "{name}: {flags:?}"
            );
        }
        if name == "backup-offsite" {
            assert!(!flags.iter().any(|f| f == "allow-any-ip"), "{flags:?}");
        }
        if name == "WHM_FullRoot" {
            for f in ["full-access", "allow-any-ip", "never-expires", "suspicious"] {
                assert!(flags.iter().any(|x| x == f), "{f}: {flags:?}");
            }
        }
    }
    assert!(doc["summary"]["by_flag"]["expired"].as_u64().unwrap() > 0);
    // Protect the integrations the operator knows, then sweep: only the attacker's go.
    let toml = std::fs::read_to_string(env.toml()).unwrap();
    std::fs::write(
        env.toml(),
        toml.replacen(
            "[defaults]\n",
            "[defaults]\nprotect = [\"backup-offsite\", \"TNC-WP-TOOLBOX\", \"wp-toolkit-*\", \"softaculous-*\", \"jetbackup-*\", \"deploy-*\"]\n",
            1,
        ),
    )
    .unwrap();
    let before = live_tokens_all(&env);
    let sweep = env.run(&["sweep", "-i", env.toml(), "--yes", "--report", "s.json"]);
    sweep.expect(0);
    let gone: BTreeSet<TokenKey> = before.difference(&live_tokens_all(&env)).cloned().collect();
    let attackers: BTreeSet<TokenKey> = seeded.of_kind(PlantKind::Attacker).map(key).collect();
    assert_eq!(gone, attackers, "exactly the attacker's tokens");
    let clean = env.run(&["audit", "-i", env.toml()]);
    clean.expect(0);
    env.assert_no_secret_leaked(&[&run, &sweep, &clean], &env.fleet.known_secrets());
}

/// Every token on the fleet, expired ones included (they still list).
fn live_tokens_all(env: &Env) -> BTreeSet<TokenKey> {
    let mut out = BTreeSet::new();
    for h in env.fleet.hosts() {
        for a in h.accounts() {
            for t in h.account_tokens(&a) {
                out.insert((h.name().to_string(), a.clone(), t.name));
            }
        }
        for t in h.whm_tokens("root") {
            out.insert((h.name().to_string(), "whm:root".into(), t.name));
        }
    }
    out
}

/// `api = "cpanel"` accounts that log in with one of their own tokens: cPanel cannot say which,
/// so without `credential_name` the sweep takes nothing there (and says why); with it, the
/// credential is `self` and every other unknown token goes.
#[test]
fn own_token_logins_are_swept_only_when_the_inventory_names_the_credential() {
    let env = Env::start(small_fleet(1, 2));
    let mut secrets = env.cpanel_inventory("cp.toml");
    let h = env.fleet.hosts()[0].clone();
    for a in h.accounts() {
        secrets.push(h.add_account_token(&a, "lp0badc0de1", None));
    }
    let unsure = env.run(&["sweep", "-i", "cp.toml", "--yes"]);
    unsure.expect(1);
    assert!(
        unsure.stderr.contains("credential_name"),
        "{}",
        unsure.stderr
    );
    for a in h.accounts() {
        assert_eq!(h.account_tokens(&a).len(), 2, "nothing revoked on {a}");
    }
    let inv = std::fs::read_to_string(env.path("cp.toml")).unwrap();
    std::fs::write(
        env.path("cp.toml"),
        inv.replacen(
            "[defaults]\n",
            "[defaults]\ncredential_name = \"bootstrap\"\n",
            1,
        ),
    )
    .unwrap();
    let audit = env.run(&["audit", "-i", "cp.toml", "--format", "json"]);
    audit.expect(1);
    let doc: Value = serde_json::from_str(&audit.stdout).unwrap();
    assert_eq!(doc["summary"]["by_class"]["self"], 2, "{doc:#}");
    let sweep = env.run(&["sweep", "-i", "cp.toml", "--yes"]);
    sweep.expect(0);
    for (a, secret) in h.accounts().iter().zip(&secrets) {
        let names: Vec<String> = h.account_tokens(a).into_iter().map(|t| t.name).collect();
        assert_eq!(names, vec!["bootstrap".to_string()], "{a}");
        assert!(
            h.token_valid(a, secret),
            "the credential in use still works"
        );
    }
    env.assert_no_secret_leaked(&[&unsure, &audit, &sweep], &secrets);
}

/// A host that refuses the credential costs one failed login, is stopped, and is not contacted
/// again by the resume (cPHulk counts across runs); the other hosts are swept.
#[test]
fn a_refusing_host_costs_one_failed_login_in_a_sweep_and_its_resume() {
    let (env, seeded) = compromised();
    let bad = env.fleet.hosts()[2].name().to_string();
    let toml = std::fs::read_to_string(env.toml()).unwrap();
    let marker = format!("name = \"{bad}\"\n");
    assert!(toml.contains(&marker), "{toml}");
    std::fs::write(
        env.toml(),
        toml.replacen(&marker, &format!("{marker}credential = \"env:WRONG\"\n"), 1),
    )
    .unwrap();
    let before = live_tokens(&env);
    let wrong = [("WRONG", "NOTTHETOKEN0000000000000000000000")];
    let run = env.run_env(
        &with_known(
            &env,
            "sweep",
            &["--yes", "--journal", "s.journal", "--per-host", "8"],
        ),
        &wrong,
    );
    run.expect(1);
    let h = env.fleet.host(&bad);
    assert_eq!(
        h.stats().failed_auth,
        1,
        "one failed login on the refusing host"
    );
    let gone: BTreeSet<TokenKey> = before.difference(&live_tokens(&env)).cloned().collect();
    let want: BTreeSet<TokenKey> = unknown_of(&seeded)
        .into_iter()
        .filter(|(host, _, _)| *host != bad)
        .collect();
    assert_eq!(
        gone, want,
        "the other hosts swept, the refusing one untouched"
    );
    let resumed = env.run_env(&["resume", "s.journal"], &wrong);
    resumed.expect(1);
    assert_eq!(h.stats().failed_auth, 1, "the resume did not send it again");
    assert!(resumed.stderr.contains("refused"), "{}", resumed.stderr);
}

/// A sweep whose listings share WHM `batch` requests takes the same tokens as one call per
/// request, in fewer requests.
#[test]
fn a_batched_sweep_takes_what_one_call_per_request_takes_in_fewer_requests() {
    let mut seen = Vec::new();
    for batch in ["1", "25"] {
        let env = Env::start(small_fleet(3, 40));
        cpanel_sim::seed_compromised(&env.fleet, 11, 4);
        let before = live_tokens(&env);
        env.fleet.hosts().iter().for_each(|h| h.reset_stats());
        env.run(&[
            "sweep",
            "-i",
            env.toml(),
            "--flag",
            "suspicious",
            "--yes",
            "--batch",
            batch,
        ])
        .expect(0);
        let gone: BTreeSet<TokenKey> = before.difference(&live_tokens(&env)).cloned().collect();
        assert!(!gone.is_empty());
        assert!(
            gone.iter()
                .all(|(_, _, n)| n == "WHM_FullRoot" || n == "bkl" || n.starts_with("lp")),
            "{gone:?}"
        );
        seen.push((gone, env.total_requests()));
    }
    assert_eq!(seen[0].0, seen[1].0, "the same tokens either way");
    assert!(
        seen[1].1 * 2 < seen[0].1,
        "batched listings: {} requests, one by one: {}",
        seen[1].1,
        seen[0].1
    );
}

/// A sweep beside a create: the create journals each intent before it sends the create, and
/// the sweep reads its `--known` journal again before revoking what that journal did not name
/// when first read, so no token the create hands off is revoked (the promise, on the servers).
#[test]
fn a_sweep_beside_a_running_create_never_revokes_its_new_tokens() {
    let env = Env::start(slow_fleet(1, 12, 150));
    let before = live_tokens(&env);
    let journal = env.path("beside.age.journal");
    let mut create = spawn(
        &env,
        &[
            "create",
            "-i",
            env.toml(),
            "--name",
            "beside-{account}",
            "-r",
            &env.recipient,
            "-o",
            "beside.age",
            "--batch",
            "1",
            "-j",
            "1",
            "--per-host",
            "1",
        ],
        "create",
    );
    signal_after_created(&mut create, &journal, 1, 0);
    let sweep = env.run(&[
        "sweep",
        "-i",
        env.toml(),
        "--scope",
        "account",
        "--known",
        "beside.age.journal",
        "--yes",
        "--batch",
        "1",
        "-j",
        "1",
        "--per-host",
        "1",
    ]);
    sweep.expect(0);
    assert_eq!(wait_bounded(&mut create), 0);
    let held = env.open_handoff(&env.path("beside.age"));
    assert_eq!(held.len(), 12);
    assert_promises(&env, &before, &held, &[&sweep]);
}

/// `--since` narrows a sweep to what was created in the incident window: the year-old
/// unknown tokens stay.
#[test]
fn a_sweep_since_the_incident_began_leaves_older_tokens() {
    let (env, seeded) = compromised();
    let before = live_tokens(&env);
    let since = jiff::Timestamp::now()
        .checked_sub(jiff::SignedDuration::from_hours(24 * 10))
        .unwrap()
        .strftime("%Y-%m-%d")
        .to_string();
    let run = env.run(&with_known(&env, "sweep", &["--since", &since, "--yes"]));
    run.expect(0);
    let gone: BTreeSet<TokenKey> = before.difference(&live_tokens(&env)).cloned().collect();
    let want: BTreeSet<TokenKey> = unknown_of(&seeded)
        .into_iter()
        .filter(|(_, _, n)| n != "wp-toolkit")
        .collect();
    assert_eq!(gone, want, "only what was created since {since}");
    assert!(
        live_tokens(&env).iter().any(|(_, _, n)| n == "wp-toolkit"),
        "the old unknown tokens stay"
    );
}
