//! `--shard K/N`, `coverage` and `open` of many handoffs, through the binary: every host in
//! exactly one shard, a bad shard refused before any request, an empty shard a clean run, N
//! shards run with GNU parallel (the examples' own script) then coverage says all done, a
//! shard killed midway and resumed, and the servers' final state: every target has exactly
//! one live token of the run, held in a handoff. Also keeps examples/ true.

use crate::common::*;
use crate::resume::{assert_finished, tokens_before};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn hosts_of(env: &Env, inventory: &str, shard: &str) -> Vec<String> {
    let r = env.run(&["check", "-i", inventory, "--list-hosts", "--shard", shard]);
    r.expect(0);
    r.stdout.lines().map(str::to_string).collect()
}

/// The CSV `tokenfleet open --format csv` printed, as rows; the header once, first.
fn csv_rows(text: &str) -> Vec<BTreeMap<String, String>> {
    assert_eq!(
        text.lines().filter(|l| l.starts_with("host,")).count(),
        1,
        "one header: {}",
        text.lines().next().unwrap_or("")
    );
    csv_maps(text)
}

/// Files in `dir` whose names start with `prefix` and end with `suffix`, sorted.
fn files(dir: &Path, prefix: &str, suffix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with(prefix) && n.ends_with(suffix)
        })
        .collect();
    out.sort();
    out
}

fn strs(paths: &[PathBuf]) -> Vec<&str> {
    paths.iter().map(|p| p.to_str().unwrap()).collect()
}

/// GNU parallel is here (CI installs it and must have it).
fn parallel_cli() -> bool {
    let have = Command::new("parallel")
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("GNU parallel"));
    if !have {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install GNU parallel (apt-get install parallel)"
        );
        eprintln!("GNU parallel not installed: skipping the shards-with-parallel test");
    }
    have
}

#[test]
fn every_host_is_in_exactly_one_shard_and_bad_shards_are_refused() {
    let env = Env::start(small_fleet(9, 1));
    let all: BTreeSet<String> = env
        .fleet
        .hosts()
        .iter()
        .map(|h| h.name().to_string())
        .collect();
    let mut seen = BTreeSet::new();
    let mut total = 0;
    let mut split = Vec::new();
    for k in 1..=4 {
        let hs = hosts_of(&env, env.toml(), &format!("{k}/4"));
        total += hs.len();
        seen.extend(hs.iter().cloned());
        split.push(hs);
    }
    assert_eq!(total, all.len(), "no host in two shards: {split:?}");
    assert_eq!(seen, all, "every host in a shard");

    // A Kubernetes Indexed Job's pod: JOB_COMPLETION_INDEX (0-based) and the count.
    let r = env.run_env(
        &[
            "check",
            "-i",
            env.toml(),
            "--list-hosts",
            "--shard-count",
            "4",
        ],
        &[("JOB_COMPLETION_INDEX", "2")],
    );
    r.expect(0);
    let pod: Vec<String> = r.stdout.lines().map(str::to_string).collect();
    assert_eq!(pod, split[2], "index 2 is shard 3/4");

    // A host added to the inventory moves nobody else.
    let text = std::fs::read_to_string(env.toml()).unwrap();
    std::fs::write(
        env.path("more.toml"),
        format!(
            "{text}\n[[hosts]]\nname = \"added-host\"\naddress = \"127.0.0.1\"\ncredential = \"env:WHM_TOKEN\"\naccounts = [\"x\"]\n"
        ),
    )
    .unwrap();
    let more = env.path("more.toml");
    for (k, before) in split.iter().enumerate() {
        let after = hosts_of(&env, more.to_str().unwrap(), &format!("{}/4", k + 1));
        let kept: Vec<&String> = after.iter().filter(|h| *h != "added-host").collect();
        assert_eq!(kept, before.iter().collect::<Vec<_>>(), "shard {}", k + 1);
    }

    for bad in ["0/4", "5/4", "4", "x/4", "1/0", "1/5000"] {
        let r = env.run(&["list", "-i", env.toml(), "--shard", bad]);
        r.expect(2);
        assert!(
            r.stderr.contains("--shard") && r.stderr.contains("hint:"),
            "{bad}: {}",
            r.stderr
        );
    }
    let r = env.run(&["list", "-i", env.toml(), "--shard-count", "4"]);
    r.expect(2);
    assert!(r.stderr.contains("JOB_COMPLETION_INDEX"), "{}", r.stderr);
    let r = env.run_env(
        &["list", "-i", env.toml(), "--shard-count", "4"],
        &[("JOB_COMPLETION_INDEX", "4")],
    );
    r.expect(2);
    let r = env.run(&["list", "-i", env.toml(), "--report", "r.{shard}.json"]);
    r.expect(2);
    assert!(r.stderr.contains("{shard}"), "{}", r.stderr);
    assert_eq!(env.total_requests(), 0, "nothing was contacted");
}

#[test]
fn an_empty_shard_is_a_clean_run_with_a_stamped_report() {
    let env = Env::start(small_fleet(2, 1));
    let empty = (1..=16)
        .find(|k| hosts_of(&env, env.toml(), &format!("{k}/16")).is_empty())
        .expect("2 hosts leave most of 16 shards empty");
    let shard = format!("{empty}/16");
    let mut args = create_cmd(&env, "ci-{date}", "z.{shard}.age");
    args.extend(["--shard", &shard, "--report", "z.{shard}.json"]);
    let r = env.run(&args);
    r.expect(0);
    let label = format!("{empty}-of-16");
    let report = read_report(&env.path(&format!("z.{label}.json")));
    assert_eq!(report["targets"].as_array().unwrap().len(), 0);
    assert_eq!(report["shard"]["k"], empty);
    assert_eq!(report["shard"]["n"], 16);
    let sha = {
        use sha2::Digest;
        let bytes = std::fs::read(env.toml()).unwrap();
        sha2::Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    assert_eq!(report["inventory_sha256"], sha.as_str());
    crate::operator::assert_report_schema(&report);
    assert!(
        !env.path(&format!("z.{label}.age")).exists(),
        "nothing to hand off"
    );
    assert_eq!(env.fleet.hosts()[0].stats().mutations(), 0);
}

/// The examples' GNU parallel script runs 3 shards of a create, then coverage says all done;
/// `open` of the three handoffs is one CSV; the servers hold exactly what the handoffs hold.
#[test]
fn shards_run_with_gnu_parallel_then_coverage_says_all_done() {
    if !parallel_cli() {
        return;
    }
    let env = Env::start(small_fleet(6, 2));
    let before = tokens_before(&env);
    std::fs::write(env.path("team.txt"), format!("{}\n", env.recipient)).unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/parallel/run-shards.sh"
    );
    let out = Command::new("bash")
        .args([script, env.toml(), "3", "team.txt", "out"])
        .current_dir(env.dir.path())
        .env("TOKENFLEET", env!("CARGO_BIN_EXE_tokenfleet"))
        .env("NAME", "ci-{date}")
        .env("WHM_TOKEN", env.fleet.root_token())
        .env("HOME", env.dir.path()) // parallel keeps its state in ~/.parallel
        .stdin(std::process::Stdio::null())
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("12 targets: 12 done, 0 failed, 0 missing: complete"),
        "{stdout}"
    );
    let dir = env.path("out");
    let reports = files(&dir, "report.", "-of-3.json");
    assert_eq!(reports.len(), 3);
    for r in &reports {
        crate::operator::assert_report_schema(&read_report(r));
    }
    let handoffs = files(&dir, "deploy.", "-of-3.age");
    assert!(!handoffs.is_empty());

    let key = env.identity_file.to_str().unwrap();
    let mut args = vec!["open", "-k", key, "--format", "csv"];
    args.extend(strs(&handoffs));
    let opened = env.run(&args);
    opened.expect(0);
    let rows = csv_rows(&opened.stdout);
    assert_finished(&env, &rows, &before);

    // The same file twice is refused; a handoff with its journal prints each secret once.
    let mut twice = vec!["open", "-k", key];
    twice.extend([strs(&handoffs)[0], strs(&handoffs)[0]]);
    let r = env.run(&twice);
    r.expect(2);
    assert!(r.stderr.contains("given twice"), "{}", r.stderr);
    let journal = format!("{}.journal", strs(&handoffs)[0]);
    if Path::new(&journal).exists() {
        let r = env.run(&[
            "open",
            "-k",
            key,
            "--format",
            "csv",
            strs(&handoffs)[0],
            &journal,
        ]);
        r.expect(0);
        assert_eq!(
            csv_rows(&r.stdout).len(),
            env.open_handoff(&handoffs[0]).len()
        );
    }

    // One report left out: its shard and its targets are missing, exit 1; JSON says the same.
    let r = env.run(&[
        "coverage",
        "-i",
        env.toml(),
        strs(&reports)[0],
        strs(&reports)[1],
    ]);
    r.expect(1);
    assert!(
        r.stdout.contains("shards without a report: 3/3") && r.stdout.contains("INCOMPLETE"),
        "{}",
        r.stdout
    );
    let mut json = vec!["coverage", "-i", env.toml(), "--format", "json"];
    json.extend(strs(&reports));
    let r = env.run(&json);
    r.expect(0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["complete"], true);
    assert_eq!(v["totals"]["done"], 12);
    // A report from another inventory is not counted.
    let mut changed = std::fs::read_to_string(env.toml()).unwrap();
    changed.push_str("\n# edited\n");
    std::fs::write(env.path("changed.toml"), changed).unwrap();
    let mut other = vec!["coverage", "-i", "changed.toml"];
    other.extend(strs(&reports));
    let r = env.run(&other);
    r.expect(1);
    assert!(r.stdout.contains("not counted (3)"), "{}", r.stdout);
    let minted: Vec<String> = rows.iter().map(|r| r["token"].clone()).collect();
    let script_run = Run {
        code: 0,
        stdout,
        stderr,
    };
    // (`open` prints the secrets: that is its job.)
    env.assert_no_secret_leaked(&[&script_run], &minted);
}

/// Two shards run at once; the bigger is killed midway (SIGKILL), then resumed from its
/// journal: coverage first says its targets are missing, then that all are done, and every
/// account holds exactly one token of the run, sealed in one of the two handoffs.
#[test]
fn a_shard_killed_midway_is_resumed_and_coverage_then_says_all_done() {
    // 8 hosts split 6 and 2 over two shards (rendezvous of web001..web008).
    let env = Env::start(slow_fleet(8, 3, 60));
    let before = tokens_before(&env);
    let sizes: Vec<usize> = (1..=2)
        .map(|k| hosts_of(&env, env.toml(), &format!("{k}/2")).len())
        .collect();
    assert!(
        sizes.iter().all(|&n| n > 0),
        "both shards have hosts: {sizes:?}"
    );
    let victim = if sizes[0] >= sizes[1] { 1 } else { 2 };
    let other = 3 - victim;
    let run_shard = |k: u32| {
        let shard = format!("{k}/2");
        let mut args = create_cmd(&env, "ci-{date}", "ci.{shard}.age");
        args.extend(["--shard", &shard, "--report", "r.{shard}.json"]);
        spawn(&env, &args, &format!("shard{k}"))
    };
    let mut killed = run_shard(victim);
    let mut survivor = run_shard(other);
    let journal = env.path(&format!("ci.{victim}-of-2.age.journal"));
    let at = signal_after_created(&mut killed, &journal, 2, libc::SIGKILL);
    assert_eq!(wait_bounded(&mut killed), 128 + libc::SIGKILL);
    assert!(at < sizes[victim as usize - 1] * 3, "killed part-way");
    assert_eq!(
        wait_bounded(&mut survivor),
        0,
        "{}",
        read(&env, &format!("shard{other}")).stderr
    );
    let report = |k: u32| format!("r.{k}-of-2.json");
    assert!(
        !env.path(&report(victim)).exists(),
        "a killed run writes no report"
    );

    let r = env.run(&["coverage", "-i", env.toml(), &report(other)]);
    r.expect(1);
    assert!(
        r.stdout
            .contains(&format!("shard {victim}/2 has no report")),
        "{}",
        r.stdout
    );

    let key = env.identity_file.to_str().unwrap().to_string();
    let resumed = env.run(&[
        "resume",
        journal.to_str().unwrap(),
        "-k",
        &key,
        "--report",
        &report(victim),
        "--progress",
        "never",
    ]);
    resumed.expect(0);
    let stamped = read_report(&env.path(&report(victim)));
    assert_eq!(stamped["shard"]["k"], victim, "the resume keeps the shard");
    assert_eq!(stamped["shard"]["n"], 2);
    crate::operator::assert_report_schema(&stamped);

    let r = env.run(&["coverage", "-i", env.toml(), &report(1), &report(2)]);
    r.expect(0);
    assert!(r.stdout.contains("24 targets: 24 done"), "{}", r.stdout);

    let opened = env.run(&[
        "open",
        "-k",
        &key,
        "--format",
        "csv",
        "ci.1-of-2.age",
        "ci.2-of-2.age",
    ]);
    opened.expect(0);
    let rows = csv_rows(&opened.stdout);
    assert_finished(&env, &rows, &before);
    let minted: Vec<String> = rows.iter().map(|r| r["token"].clone()).collect();
    env.assert_no_secret_leaked(
        &[&resumed, &read(&env, "shard1"), &read(&env, "shard2")],
        &minted,
    );
}

/// Every inventory in examples/ parses and selects hosts (`check --list-hosts`, nothing
/// contacted), the shard script is valid shell, and the Kubernetes Job says what its README
/// promises.
#[test]
fn the_examples_stay_true() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut inventories = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "toml" || x == "csv") {
                inventories.push(p);
            }
        }
    }
    assert!(inventories.len() >= 4, "{inventories:?}");
    for inv in &inventories {
        let out = Command::new(env!("CARGO_BIN_EXE_tokenfleet"))
            .args(["check", "-i", inv.to_str().unwrap(), "--list-hosts"])
            .env("WHM_TOKEN", "example-token-not-used")
            .env("WHM_TOKEN_NEW", "example-token-not-used")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}",
            inv.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!stdout.trim().is_empty(), "{}: no host", inv.display());
    }
    let script = root.join("parallel/run-shards.sh");
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .status()
        .unwrap();
    assert!(syntax.success(), "bash -n {}", script.display());
    let job = std::fs::read_to_string(root.join("kubernetes/indexed-job.yaml")).unwrap();
    for needed in [
        "completionMode: Indexed",
        "JOB_COMPLETION_INDEX",
        "--shard-count 8",
        "completions: 8",
        "action: FailIndex",
        "values: [2]",
        "persistentVolumeClaim",
    ] {
        assert!(job.contains(needed), "indexed-job.yaml lacks {needed}");
    }
    let index = std::fs::read_to_string(root.join("README.md")).unwrap();
    for folder in [
        "provisioning",
        "migration",
        "incident",
        "parallel",
        "kubernetes",
        "awx",
        "ssh",
    ] {
        assert!(
            root.join(folder).join("README.md").exists(),
            "{folder}/README.md"
        );
        assert!(
            index.contains(&format!("({folder})")),
            "examples/README.md links {folder}"
        );
    }
}
