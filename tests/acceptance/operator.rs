//! What an operator reads and scripts against: dry runs that name every token, a report on
//! stdout that parses, `--list-hosts`/`--list-targets`, and the retry of what failed, all
//! judged by the servers' final state.

use crate::common::*;
use cpanel_sim::{Faults, InventoryOptions};
use std::collections::BTreeSet;

fn star() -> InventoryOptions {
    InventoryOptions {
        accounts_star: true,
        ..InventoryOptions::default()
    }
}

/// Every token name live on `host`'s `account`.
fn names(env: &Env, host: &str, account: &str) -> BTreeSet<String> {
    env.fleet
        .host(host)
        .account_tokens(account)
        .into_iter()
        .map(|t| t.name)
        .collect()
}

/// A command line tokenfleet printed, run as the user would paste it into a shell.
fn run_printed(env: &Env, command: &str) -> Run {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(env.dir.path())
        .env("WHM_TOKEN", env.fleet.root_token())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    Run::from(out)
}

fn revoked_names(t: &serde_json::Value) -> Vec<String> {
    t["revoked"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| r["name"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_revoke_dry_run_names_every_token_on_every_discovered_account_and_changes_nothing() {
    let mut env = Env::start_with(small_fleet(2, 3), &star());
    for h in env.fleet.hosts().to_vec() {
        for a in h.accounts() {
            for n in ["rep-1", "rep-2", "keep"] {
                let s = h.add_account_token(&a, n, None);
                env.secrets.push(s);
            }
        }
    }
    let before = live_tokens(&env);
    let dry = env.run(&[
        "revoke",
        "-i",
        env.toml(),
        "--name",
        "rep-*",
        "--dry-run",
        "--report",
        "-",
        "--progress",
        "never",
    ]);
    dry.expect(0);
    // stdout is the report and nothing else.
    let report: serde_json::Value = serde_json::from_str(&dry.stdout).expect("stdout is JSON");
    assert_eq!(report["schema_version"], 1);
    assert_eq!(report["dry_run"], true);
    let targets = report["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 6, "every discovered account");
    for t in targets {
        assert_eq!(t["status"], "would-revoke", "{t}");
        assert_eq!(revoked_names(t), ["rep-1", "rep-2"], "{t}");
        assert!(t["token_name"].is_null(), "never the glob: {t}");
        assert_eq!(t["pattern"], "rep-*");
        assert!(t["revoked"][0]["created_at"].is_string(), "{t}");
    }
    // What the operator reads names each token of each account, not the glob.
    for h in env.fleet.hosts() {
        for a in h.accounts() {
            let line = dry
                .stderr
                .lines()
                .find(|l| l.starts_with("would-revoke") && l.contains(&format!(" {a} ")))
                .unwrap_or_else(|| panic!("no line for {a}:\n{}", dry.stderr));
            assert!(line.contains("rep-1 (created ") && line.contains("rep-2 (created "));
            assert!(line.contains("expires never"), "{line}");
        }
    }
    assert!(dry.stderr.contains("6 would-revoke"), "{}", dry.stderr);
    assert!(!dry.stderr.contains(" 6 revoked"), "{}", dry.stderr);
    assert_eq!(live_tokens(&env), before, "a dry run revokes nothing");

    // Without --report -, the same text is on stdout.
    let plain = env.run(&[
        "revoke",
        "-i",
        env.toml(),
        "--name",
        "rep-*",
        "--dry-run",
        "--progress",
        "never",
    ]);
    plain.expect(0);
    assert!(plain.stdout.contains("would-revoke"), "{}", plain.stdout);

    let real = env.run(&[
        "revoke",
        "-i",
        env.toml(),
        "--name",
        "rep-*",
        "--report",
        "r.json",
        "--progress",
        "never",
    ]);
    real.expect(0);
    let report = read_report(&env.path("r.json"));
    assert_eq!(report["dry_run"], false);
    for t in report["targets"].as_array().unwrap() {
        assert_eq!(t["status"], "revoked", "{t}");
        assert_eq!(revoked_names(t), ["rep-1", "rep-2"], "{t}");
    }
    for h in env.fleet.hosts() {
        for a in h.accounts() {
            assert_eq!(names(&env, h.name(), &a), BTreeSet::from(["keep".into()]));
        }
    }
    env.assert_no_secret_leaked(&[&dry, &plain, &real], &[]);
}

#[test]
fn a_rotate_dry_run_shows_the_old_tokens_it_would_revoke_and_the_report_records_them() {
    let mut env = Env::start(small_fleet(1, 2));
    let h = env.fleet.host("web001").clone();
    for a in h.accounts() {
        let s = h.add_account_token(&a, "old-1", None);
        env.secrets.push(s);
    }
    let args = |dry: bool, report: &'static str| {
        let mut v = vec![
            "rotate".to_string(),
            "-i".into(),
            env.toml().into(),
            "--name".into(),
            "new-1".into(),
            "--revoke".into(),
            "old-*".into(),
            "-r".into(),
            env.recipient.clone(),
            "-o".into(),
            "rot.age".into(),
            "--report".into(),
            report.into(),
            "--progress".into(),
            "never".into(),
        ];
        if dry {
            v.push("--dry-run".into());
        }
        v
    };
    let dry_args = args(true, "-");
    let dry = env.run(&dry_args.iter().map(String::as_str).collect::<Vec<_>>());
    dry.expect(0);
    let report: serde_json::Value = serde_json::from_str(&dry.stdout).expect("stdout is JSON");
    for t in report["targets"].as_array().unwrap() {
        assert_eq!(t["status"], "would-rotate", "{t}");
        assert_eq!(revoked_names(t), ["old-1"], "{t}");
        assert_eq!(t["token_name"], "new-1");
    }
    assert!(dry.stderr.contains("old-1 (created "), "{}", dry.stderr);
    assert!(!env.path("rot.age").exists() && !env.path("rot.age.journal").exists());

    let real_args = args(false, "rot.json");
    let real = env.run(&real_args.iter().map(String::as_str).collect::<Vec<_>>());
    real.expect(0);
    let report = read_report(&env.path("rot.json"));
    for t in report["targets"].as_array().unwrap() {
        assert_eq!(t["status"], "rotated", "{t}");
        assert_eq!(revoked_names(t), ["old-1"], "{t}");
        assert!(t["revoked"][0]["created_at"].is_string(), "{t}");
    }
    for a in h.accounts() {
        assert_eq!(names(&env, "web001", &a), BTreeSet::from(["new-1".into()]));
    }
    let minted: Vec<String> = env
        .open_handoff(&env.path("rot.age"))
        .iter()
        .map(|r| r["token"].clone())
        .collect();
    env.assert_no_secret_leaked(&[&dry, &real], &minted);
}

#[test]
fn list_and_check_with_the_report_on_stdout_print_only_json_there_and_count_what_they_did() {
    let env = Env::start(small_fleet(2, 2));
    for (op, status) in [("list", "listed"), ("check", "checked")] {
        let run = env.run(&[op, "-i", env.toml(), "--report", "-", "--progress", "never"]);
        run.expect(0);
        let report: serde_json::Value = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("{op}: {e}\n{}", run.stdout));
        assert_eq!(report["operation"], op);
        assert!(
            report["targets"]
                .as_array()
                .unwrap()
                .iter()
                .all(|t| t["status"] == status),
            "{report}"
        );
        assert!(
            run.stderr.contains(&format!(" {status}")) && !run.stderr.contains("unchanged"),
            "{op}: {}",
            run.stderr
        );
        // The table went to stderr instead.
        assert!(run.stderr.contains("HOST"), "{}", run.stderr);
    }
}

#[test]
fn list_hosts_sends_nothing_and_list_targets_only_asks_star_hosts_for_their_accounts() {
    let env = Env::start_with(small_fleet(3, 2), &star());
    let base = [
        "create",
        "-i",
        env.toml(),
        "--name",
        "lt",
        "-r",
        &env.recipient,
        "-o",
        "lt.age",
        "-l",
        "web001,web002",
    ];
    let mut hosts = base.to_vec();
    hosts.push("--list-hosts");
    let run = env.run(&hosts);
    run.expect(0);
    assert_eq!(run.stdout, "web001\nweb002\n");
    assert_eq!(env.total_requests(), 0, "--list-hosts contacts nothing");

    let mut targets = base.to_vec();
    targets.push("--list-targets");
    let run = env.run(&targets);
    run.expect(0);
    let mut want = Vec::new();
    for h in ["web001", "web002"] {
        for a in env.fleet.host(h).accounts() {
            want.push(format!("{h}/{a}"));
        }
    }
    let mut got: Vec<String> = run.stdout.lines().map(str::to_string).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    for h in ["web001", "web002"] {
        let s = env.fleet.host(h).stats();
        assert_eq!(s.total_requests, 1, "{h}: listaccts only");
        assert_eq!(s.mutations(), 0);
    }
    assert_eq!(env.fleet.host("web003").stats().total_requests, 0);
    assert!(!env.path("lt.age").exists() && !env.path("lt.age.journal").exists());
}

#[test]
fn a_failed_run_that_minted_nothing_leaves_no_journal_and_its_printed_retry_finishes_the_job() {
    let env = Env::start(small_fleet(3, 2));
    // web002 and web003 are down: web001 fails too, at its listing (503 for good).
    for h in ["web002", "web003"] {
        env.fleet.host(h).set_faults(Faults {
            down: true,
            ..Faults::default()
        });
    }
    env.fleet.host("web001").set_faults(Faults {
        error_503_rate: 1.0,
        ..Faults::default()
    });
    let args = create_cmd(&env, "rt-{account}", "rt.age");
    let first = env.run(&args);
    first.expect(1);
    assert!(
        !env.path("rt.age.journal").exists(),
        "nothing minted, nothing open"
    );
    assert!(!env.path("rt.age").exists());
    let retry = std::fs::read_to_string(env.path("rt.age.retry")).expect("retry file");
    let lines: Vec<&str> = retry.lines().filter(|l| !l.starts_with('#')).collect();
    for h in ["web001", "web002", "web003"] {
        assert!(
            lines
                .iter()
                .any(|l| *l == h || l.starts_with(&format!("{h}/"))),
            "{h} is retried:\n{retry}"
        );
    }
    let command = first
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("retry only the failed targets: `"))
        .and_then(|l| l.strip_suffix('`'))
        .unwrap_or_else(|| panic!("no retry command:\n{}", first.stderr));
    assert!(command.ends_with("--limit @rt.age.retry"), "{command}");

    // The hosts are back: the command, as printed, finishes the job.
    for h in env.fleet.hosts() {
        h.set_faults(Faults::default());
    }
    let again = run_printed(&env, command);
    again.expect(0);
    let rows = env.open_handoff(&env.path("rt.age"));
    assert_eq!(rows.len(), 6, "every account of every host");
    for row in &rows {
        assert!(
            env.fleet
                .host(&row["host"])
                .token_valid(&row["account"], &row["token"]),
            "{row:?}"
        );
    }
    let minted: Vec<String> = rows.iter().map(|r| r["token"].clone()).collect();
    env.assert_no_secret_leaked(&[&first, &again], &minted);
}

#[test]
fn every_command_has_a_man_page_whose_examples_render_as_typed() {
    let env = Env::start(small_fleet(1, 1));
    let run = env.run(&["man", "--dir", "man1"]);
    run.expect(0);
    let mut pages: Vec<String> = std::fs::read_dir(env.path("man1"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    for cmd in [
        "create", "rotate", "revoke", "update", "list", "check", "audit", "sweep", "resume",
        "open", "man",
    ] {
        assert!(pages.contains(&format!("tokenfleet-{cmd}.1")), "{pages:?}");
    }
    assert!(pages.contains(&"tokenfleet.1".to_string()));
    let one = env.run(&["man", "revoke"]);
    one.expect(0);
    assert_eq!(
        one.stdout.as_bytes(),
        std::fs::read(env.path("man1/tokenfleet-revoke.1")).unwrap()
    );
    env.run(&["man", "nope"]).expect(2);

    let groff = std::process::Command::new("groff")
        .arg("--version")
        .output();
    if groff.is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "groff is required in CI (.ci/run installs groff-base)"
        );
        eprintln!("note: groff is not installed; the man pages' rendering is not checked");
        return;
    }
    for page in &pages {
        let out = std::process::Command::new("groff")
            .args(["-man", "-k", "-Tutf8", "-ww", "-P", "-cbou"])
            .arg(env.path(&format!("man1/{page}")))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let warnings = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && warnings.is_empty(),
            "{page}: {warnings}"
        );
        assert!(
            text.contains("EXAMPLES") || page == "tokenfleet-completions.1",
            "{page}:\n{text}"
        );
        if page == "tokenfleet-revoke.1" {
            // As typed: plain hyphens and quotes, so a pasted line runs.
            assert!(
                text.contains("tokenfleet revoke -i fleet.toml --name 'ci-2025*' --dry-run"),
                "{text}"
            );
        }
    }
}

/// `value` against the subset of JSON Schema docs/report.schema.json uses (const, enum, type,
/// required, properties, additionalProperties, propertyNames, items, local $ref); the first
/// mismatch, with its JSON path.
pub(crate) fn schema_errors(
    schema: &serde_json::Value,
    root: &serde_json::Value,
    value: &serde_json::Value,
    at: &str,
) -> Option<String> {
    use serde_json::Value;
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.strip_prefix("#/$defs/").expect("local ref");
        return schema_errors(&root["$defs"][name], root, value, at);
    }
    if let Some(c) = schema.get("const")
        && c != value
    {
        return Some(format!("{at}: {value} is not {c}"));
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array)
        && !e.contains(value)
    {
        return Some(format!("{at}: {value} is not one of {e:?}"));
    }
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let ok = types.iter().any(|t| match *t {
            "string" => value.is_string(),
            "integer" => value.is_u64() || value.is_i64(),
            "boolean" => value.is_boolean(),
            "null" => value.is_null(),
            "object" => value.is_object(),
            "array" => value.is_array(),
            _ => false,
        });
        if !ok {
            return Some(format!("{at}: {value} is not {types:?}"));
        }
    }
    if let Some(obj) = value.as_object() {
        for req in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !obj.contains_key(req.as_str().unwrap()) {
                return Some(format!("{at}: {req} is missing"));
            }
        }
        let props = schema.get("properties").and_then(Value::as_object);
        for (k, v) in obj {
            let path = format!("{at}.{k}");
            if let Some(names) = schema.get("propertyNames")
                && let Some(e) = schema_errors(names, root, &Value::String(k.clone()), &path)
            {
                return Some(e);
            }
            let sub = match (
                props.and_then(|p| p.get(k)),
                schema.get("additionalProperties"),
            ) {
                (Some(s), _) => s,
                (None, Some(Value::Bool(false))) => {
                    return Some(format!("{path}: not in the schema"));
                }
                (None, Some(s)) => s,
                (None, None) => continue,
            };
            if let Some(e) = schema_errors(sub, root, v, &path) {
                return Some(e);
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), value.as_array()) {
        for (i, v) in arr.iter().enumerate() {
            if let Some(e) = schema_errors(items, root, v, &format!("{at}[{i}]")) {
                return Some(e);
            }
        }
    }
    None
}

fn report_schema() -> serde_json::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/report.schema.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("the schema is JSON")
}

#[track_caller]
pub(crate) fn assert_report_schema(report: &serde_json::Value) {
    let schema = report_schema();
    if let Some(e) = schema_errors(&schema, &schema, report, "$") {
        panic!("the report does not match docs/report.schema.json: {e}\n{report:#}");
    }
}

#[test]
fn every_kind_of_report_matches_its_documented_schema() {
    let mut env = Env::start(small_fleet(2, 2));
    let h = env.fleet.host("web001").clone();
    for a in h.accounts() {
        let s = h.add_account_token(&a, "old-1", Some(4_000_000_000));
        env.secrets.push(s);
    }
    // web002 refuses everything: failed and skipped targets, with causes and steps.
    env.fleet.host("web002").set_faults(Faults {
        error_503_rate: 1.0,
        ..Faults::default()
    });
    let mut reports = Vec::new();
    for (i, args) in [
        vec!["list"],
        vec!["check"],
        vec!["revoke", "--name", "old-*", "--dry-run"],
        vec![
            "rotate",
            "--name",
            "n1",
            "--revoke",
            "old-*",
            "-r",
            &env.recipient,
            "-o",
            "s.age",
        ],
        vec!["revoke", "--name", "n*"],
    ]
    .into_iter()
    .enumerate()
    {
        let file = format!("r{i}.json");
        let mut argv = args.clone();
        argv.extend([
            "-i",
            env.toml(),
            "--report",
            &file,
            "--progress",
            "never",
            "--retries",
            "0",
        ]);
        let run = env.run(&argv);
        assert!(run.code == 0 || run.code == 1, "{args:?}: {}", run.stderr);
        let report = read_report(&env.path(&file));
        assert_report_schema(&report);
        reports.push(report);
    }
    let statuses: BTreeSet<String> = reports
        .iter()
        .flat_map(|r| r["targets"].as_array().unwrap().iter())
        .map(|t| t["status"].as_str().unwrap().to_string())
        .collect();
    for s in [
        "listed",
        "checked",
        "would-revoke",
        "rotated",
        "revoked",
        "failed",
    ] {
        assert!(statuses.contains(s), "{s}: {statuses:?}");
    }
    // The check can fail: a field the schema does not know, or a status it does not list.
    let mut bad = reports[0].clone();
    bad["targets"][0]["secret"] = "x".into();
    let schema = report_schema();
    assert!(schema_errors(&schema, &schema, &bad, "$").is_some());
    let mut bad = reports[0].clone();
    bad["targets"][0]["status"] = "done".into();
    assert!(schema_errors(&schema, &schema, &bad, "$").is_some());
}

#[test]
fn resuming_a_finished_run_says_it_minted_nothing_new() {
    let env = Env::start(small_fleet(2, 2));
    let first = env.run(&create_cmd(&env, "fin-{account}", "fin.age"));
    first.expect(0);
    assert!(
        first.stderr.contains("sealed 4 token(s) into fin.age"),
        "{}",
        first.stderr
    );
    let before = live_tokens(&env);
    let key = env.identity_file.to_str().unwrap();
    let again = env.run(&[
        "resume",
        "fin.age.journal",
        "--identity",
        key,
        "--progress",
        "never",
    ]);
    again.expect(0);
    assert!(
        again.stderr.contains("sealed 4 token(s) into fin.age")
            && again.stderr.contains("0 minted by this resume, 4 before"),
        "{}",
        again.stderr
    );
    assert_eq!(live_tokens(&env), before, "nothing new on the servers");
    assert_eq!(env.open_handoff(&env.path("fin.age")).len(), 4);
}

#[test]
fn a_failed_check_retries_by_host_a_dry_run_writes_no_retry_list_and_a_good_retry_removes_it() {
    let env = Env::start(small_fleet(2, 2));
    let web2 = env.fleet.host("web002");
    web2.set_faults(Faults {
        down: true,
        ..Faults::default()
    });
    let dry = env.run(&[
        "revoke",
        "-i",
        env.toml(),
        "--name",
        "x*",
        "--dry-run",
        "--progress",
        "never",
    ]);
    dry.expect(1);
    assert!(
        !env.path("tokenfleet-revoke.retry").exists(),
        "a dry run writes no retry list"
    );
    assert!(!dry.stderr.contains("retry only"), "{}", dry.stderr);

    let check = env.run(&["check", "-i", env.toml(), "--progress", "never"]);
    check.expect(1);
    let list = std::fs::read_to_string(env.path("tokenfleet-check.retry")).unwrap();
    let lines: Vec<&str> = list.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(lines, ["web002"], "a host-level failure is retried by host");
    let command = check
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("retry only the failed targets: `"))
        .and_then(|l| l.strip_suffix('`'))
        .unwrap_or_else(|| panic!("{}", check.stderr))
        .to_string();
    web2.set_faults(Faults::default());
    let web1 = env.fleet.host("web001");
    web1.reset_stats();
    let again = run_printed(&env, &command);
    again.expect(0);
    assert_eq!(
        web1.stats().total_requests,
        0,
        "only the failed host is checked again"
    );
    assert!(
        !env.path("tokenfleet-check.retry").exists(),
        "the retry list is done with"
    );
}

#[test]
fn check_list_targets_sends_nothing_and_its_lines_feed_limit() {
    let env = Env::start(small_fleet(2, 2));
    let run = env.run(&["check", "-i", env.toml(), "--list-targets"]);
    run.expect(0);
    assert_eq!(env.total_requests(), 0, "{}", run.stderr);
    std::fs::write(
        env.path("t.txt"),
        run.stdout.lines().take(1).collect::<Vec<_>>().join("\n"),
    )
    .unwrap();
    let one = env.run(&[
        "list",
        "-i",
        env.toml(),
        "--limit",
        "@t.txt",
        "--report",
        "-",
        "--progress",
        "never",
    ]);
    one.expect(0);
    let report: serde_json::Value = serde_json::from_str(&one.stdout).unwrap();
    assert_eq!(report["targets"].as_array().unwrap().len(), 1, "{report}");
}
