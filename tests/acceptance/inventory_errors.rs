//! Bad input: exit 2, a message naming file, line or key, field and fix; nothing contacted.

use crate::common::*;
use std::path::Path;

fn refused(env: &Env, name: &str, content: &str, args: &[&str]) -> Run {
    std::fs::write(env.path(name), content).unwrap();
    let mut all = vec![
        "create",
        "-i",
        name,
        "--name",
        "x-{account}",
        "-r",
        env.recipient.as_str(),
        "-o",
        "o.age",
    ];
    all.extend_from_slice(args);
    let before = env.total_requests();
    let run = env.run(&all);
    run.expect(2);
    assert_eq!(env.total_requests(), before, "nothing contacted");
    assert!(!env.path("o.age").exists());
    run
}

#[test]
fn unknown_csv_column_names_line_and_suggests() {
    let env = Env::start(small_fleet(1, 1));
    let h = &env.fleet.hosts()[0];
    let csv = format!(
        "host,address,whm_prot,account\nweb001,127.0.0.1,{},a\n",
        h.whm_port()
    );
    let run = refused(&env, "bad.csv", &csv, &[]);
    assert!(run.stderr.contains("bad.csv"), "{}", run.stderr);
    assert!(
        run.stderr.contains("whm_prot") && run.stderr.contains("whm_port"),
        "{}",
        run.stderr
    );
}

#[test]
fn missing_env_credential_is_reported_before_any_request() {
    let env = Env::start(small_fleet(1, 1));
    let text = std::fs::read_to_string(&env.files.toml)
        .unwrap()
        .replace("env:WHM_TOKEN", "env:NOT_SET_ANYWHERE");
    let run = refused(&env, "noenv.toml", &text, &[]);
    assert!(run.stderr.contains("NOT_SET_ANYWHERE"), "{}", run.stderr);
}

#[test]
fn literal_secret_is_refused_and_not_echoed() {
    let env = Env::start(small_fleet(1, 1));
    let literal = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
    let text = std::fs::read_to_string(&env.files.toml)
        .unwrap()
        .replace("env:WHM_TOKEN", literal);
    let run = refused(&env, "literal.toml", &text, &[]);
    assert!(
        run.stderr.contains("env:"),
        "hint names env: {}",
        run.stderr
    );
    assert!(!run.stderr.contains(literal), "the literal is not echoed");
}

#[test]
fn invalid_expanded_name_is_refused() {
    let env = Env::start(small_fleet(1, 1));
    let text = std::fs::read_to_string(&env.files.toml).unwrap();
    std::fs::write(env.path("ok.toml"), text).unwrap();
    let long = "n".repeat(49) + "-{account}";
    let run = env.run(&[
        "create",
        "-i",
        "ok.toml",
        "--name",
        &long,
        "-r",
        &env.recipient,
        "-o",
        "o.age",
    ]);
    run.expect(2);
    assert!(run.stderr.contains("50"), "{}", run.stderr);
    assert_eq!(env.total_requests(), 0);
}

#[test]
fn bad_recipient_and_past_expiry_are_usage_errors() {
    let env = Env::start(small_fleet(1, 1));
    let run = env.run(&[
        "create",
        "-i",
        env.toml(),
        "--name",
        "x",
        "-r",
        "age1notakey",
        "-o",
        "o.age",
    ]);
    run.expect(2);
    let run = env.run(&[
        "create",
        "-i",
        env.toml(),
        "--name",
        "x",
        "-r",
        &env.recipient,
        "-o",
        "o.age",
        "--expires-at",
        "2001-01-01",
    ]);
    run.expect(2);
    assert!(run.stderr.contains("past"), "{}", run.stderr);
    let run = env.run(&["create", "-i", env.toml(), "--name", "x", "-o", "o.age"]);
    run.expect(2);
    assert_eq!(env.total_requests(), 0);
}

/// The sample inventories, copied beside the test: errors name the line of the value.
#[test]
fn sample_inventories_point_at_the_line_that_holds_the_value() {
    let env = Env::start(small_fleet(1, 1));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("inventories");
    let csv = std::fs::read_to_string(root.join("example.csv")).unwrap();
    let run = refused(&env, "example.csv", &csv, &["--dry-run"]);
    assert!(
        run.stderr
            .contains("example.csv:9: credential: environment variable DAVE_TOKEN is not set"),
        "DAVE_TOKEN is on line 9: {}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("example.csv:8: credential: cannot read credential file"),
        "carol's file is on line 8: {}",
        run.stderr
    );
    let toml = std::fs::read_to_string(root.join("example.toml"))
        .unwrap()
        .replace("env:WHM_TOKEN", "env:TF_ACCEPT_NEVER_SET");
    let run = refused(&env, "example.toml", &toml, &["--dry-run"]);
    assert!(
        run.stderr.contains(
            "example.toml:11 (defaults): credential: environment variable TF_ACCEPT_NEVER_SET is not set"
        ),
        "[defaults] holds it: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains(
            "example.toml:32 (hosts[1] web2): credential: environment variable DAVE_TOKEN"
        ),
        "dave's entry: {}",
        run.stderr
    );
}

/// A host row of the fleet's CSV, for the spreadsheet tests.
fn fleet_csv_rows(env: &Env) -> Vec<String> {
    std::fs::read_to_string(&env.files.csv)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn spreadsheet_exports_are_read_as_meant() {
    let env = Env::start(small_fleet(2, 2));
    let rows = fleet_csv_rows(&env);
    // LibreOffice/Excel: empty columns after the header's last name, rows padded to match.
    let padded: String = rows.iter().map(|r| format!("{r},,,\r\n")).collect();
    std::fs::write(env.path("padded.csv"), &padded).unwrap();
    let run = env.run(&["list", "-i", "padded.csv", "--progress", "never"]);
    run.expect(0);
    // A European Excel: `;` between cells, with its `sep=;` first line.
    let semi: String = std::iter::once("sep=;".to_string())
        .chain(rows.iter().map(|r| format!("{};;", r.replace(',', ";"))))
        .map(|r| r + "\n")
        .collect();
    std::fs::write(env.path("semi.csv"), &semi).unwrap();
    env.run(&["list", "-i", "semi.csv", "--progress", "never"])
        .expect(0);
    // And without the sep= line: the header says it.
    std::fs::write(env.path("semi2.csv"), semi.split_once('\n').unwrap().1).unwrap();
    env.run(&["list", "-i", "semi2.csv", "--progress", "never"])
        .expect(0);
    // A value past the header's end is still refused, at its line.
    let mut bad = padded.clone();
    bad.push_str(&format!("{},,x\n", rows[1]));
    let run = refused(&env, "bad-pad.csv", &bad, &[]);
    assert!(
        run.stderr
            .contains(&format!("bad-pad.csv:{}", rows.len() + 1)),
        "{}",
        run.stderr
    );
}

#[test]
fn a_cpanel_csv_gives_each_account_its_credential_in_the_credential_column() {
    let env = Env::start(small_fleet(1, 2));
    let h = &env.fleet.hosts()[0];
    let mut csv =
        String::from("host,address,whm_port,cpanel_port,tls_pin,api,account,credential\n");
    for (i, account) in h.accounts().iter().enumerate() {
        let secret = h.add_account_token(account, "bootstrap", None);
        let file = format!("cred-{i}");
        std::fs::write(env.path(&file), format!("{secret}\n")).unwrap();
        let mut perm = std::fs::metadata(env.path(&file)).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o600);
        std::fs::set_permissions(env.path(&file), perm).unwrap();
        csv.push_str(&format!(
            "{},127.0.0.1,{},{},{},cpanel,{account},file:{file}\n",
            h.name(),
            h.whm_port(),
            h.cpanel_port(),
            h.cert_pin()
        ));
    }
    std::fs::write(env.path("cp.csv"), csv).unwrap();
    let run = env.run(&[
        "create",
        "-i",
        "cp.csv",
        "--name",
        "ci-{account}",
        "-r",
        &env.recipient,
        "-o",
        "o.age",
        "--progress",
        "never",
    ]);
    run.expect(0);
    assert_eq!(env.open_handoff(&env.path("o.age")).len(), 2);
    std::fs::remove_file(env.path("o.age")).unwrap();
    // On a WHM host the same cells are a conflict whose hint names the way out.
    let text = std::fs::read_to_string(env.path("cp.csv"))
        .unwrap()
        .replace(",cpanel,", ",whm,");
    let run = refused(&env, "whm.csv", &text, &[]);
    assert!(run.stderr.contains("whm.csv:3: credential: host web001: credential is \"file:cred-1\" here but \"file:cred-0\" on line 2"), "{}", run.stderr);
    assert!(
        run.stderr.contains("account_credential") && run.stderr.contains("api = cpanel"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_pin_conflict_shows_both_pins_shortened() {
    let env = Env::start(small_fleet(1, 2));
    let rows = fleet_csv_rows(&env);
    let pin = env.fleet.hosts()[0].cert_pin();
    let other = "sha256:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF";
    let text = format!(
        "{}\n{}\n{}\n",
        rows[0],
        rows[1],
        rows[2].replace(&pin, other)
    );
    let run = refused(&env, "pins.csv", &text, &[]);
    let short = |p: &str| {
        let g: Vec<&str> = p.trim_start_matches("sha256:").split(':').collect();
        format!("sha256:{}…{}", g[..3].join(":"), g[29..].join(":"))
    };
    let want = format!(
        "pins.csv:3: tls_pin: host web001: tls_pin is sha256:00:11:22…DD:EE:FF here but {} on line 2",
        short(&pin)
    );
    assert!(run.stderr.contains(&want), "{want}\n{}", run.stderr);
    assert!(!run.stderr.contains("102-character"), "{}", run.stderr);
}

#[test]
fn one_too_long_name_is_one_error_and_insecure_hosts_one_warning() {
    let env = Env::start_with(
        small_fleet(3, 4),
        &cpanel_sim::InventoryOptions {
            tls: cpanel_sim::InventoryTls::Insecure,
            ..Default::default()
        },
    );
    let long = "n".repeat(45) + "-{account}";
    let run = env.run(&[
        "create",
        "-i",
        env.toml(),
        "--name",
        &long,
        "-r",
        &env.recipient,
        "-o",
        "o.age",
    ]);
    run.expect(2);
    assert_eq!(env.total_requests(), 0);
    let errors: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{}", run.stderr);
    assert!(
        errors[0].contains("for 12 targets") && errors[0].contains("e.g. web001/"),
        "{}",
        errors[0]
    );
    let run = env.run(&["list", "-i", env.toml(), "--progress", "never"]);
    let insecure: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("tls_insecure"))
        .collect();
    assert_eq!(insecure.len(), 1, "{}", run.stderr);
    assert!(
        insecure[0].contains("on 3 hosts (web001, web002, web003)"),
        "{}",
        insecure[0]
    );
}

#[test]
fn a_limit_that_matches_nothing_lists_names_and_case() {
    let env = Env::start(small_fleet(2, 1));
    let run = env.run(&[
        "list",
        "-i",
        env.toml(),
        "-l",
        "WEB001",
        "--progress",
        "never",
    ]);
    run.expect(2);
    assert!(
        run.stderr
            .contains("did you mean `web001`? patterns are case-sensitive"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("hosts: web001, web002"),
        "{}",
        run.stderr
    );
    assert_eq!(env.total_requests(), 0);
}

/// Ansible's retry habit: `--limit @FILE`, one host or HOST/ACCOUNT a line; the run records
/// the expanded pattern, so resume works after the file is gone.
#[test]
fn limit_at_file_selects_its_targets_and_resume_needs_no_file() {
    let env = Env::start(slow_fleet(2, 3, 150));
    std::fs::write(
        env.path("retry.txt"),
        "# failed targets; retry with --limit @retry.txt\n\nweb001/u001a0002\nweb002   # the whole host\n",
    )
    .unwrap();
    let args = [
        "create",
        "-i",
        env.toml(),
        "--name",
        "ci-{account}",
        "-r",
        &env.recipient,
        "-o",
        "out.age",
        "--progress",
        "never",
        "-j",
        "1",
        "--per-host",
        "1",
        "-l",
        "@retry.txt",
    ];
    let mut child = spawn(&env, &args, "run");
    let journal = env.path("out.age.journal");
    let at = signal_after_created(&mut child, &journal, 1, libc::SIGKILL);
    assert_eq!(wait_bounded(&mut child), 128 + libc::SIGKILL);
    assert!(at < 4, "killed part-way");
    let first = std::fs::read_to_string(&journal).unwrap();
    let plan: serde_json::Value = serde_json::from_str(first.lines().next().unwrap()).unwrap();
    assert_eq!(
        plan["options"]["limit"], "web001/u001a0002,web002",
        "{plan}"
    );
    std::fs::remove_file(env.path("retry.txt")).unwrap();
    let key = env.identity_file.to_str().unwrap().to_string();
    let run = env.run(&[
        "resume",
        "out.age.journal",
        "--identity",
        &key,
        "--progress",
        "never",
    ]);
    run.expect(0);
    let rows = env.open_handoff(&env.path("out.age"));
    let mut got: Vec<String> = rows
        .iter()
        .map(|r| format!("{}/{}", r["host"], r["account"]))
        .collect();
    got.sort();
    let web002: Vec<String> = env
        .fleet
        .host("web002")
        .accounts()
        .iter()
        .map(|a| format!("web002/{a}"))
        .collect();
    let mut want = vec!["web001/u001a0002".to_string()];
    want.extend(web002);
    assert_eq!(got, want);
}

#[test]
fn a_bad_limit_file_is_refused_at_its_line() {
    let env = Env::start(small_fleet(2, 2));
    let list =
        |limit: &str| env.run(&["list", "-i", env.toml(), "-l", limit, "--progress", "never"]);
    let run = list("@missing.txt");
    run.expect(2);
    assert!(
        run.stderr
            .contains("--limit @missing.txt: cannot read the limit file"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint:"), "{}", run.stderr);
    std::fs::write(
        env.path("retry.txt"),
        "web001/u001a0001\n# ok\nweb001/nobody\n",
    )
    .unwrap();
    let run = list("@retry.txt");
    run.expect(2);
    assert!(
        run.stderr
            .contains("retry.txt:3: \"web001/nobody\": web001 lists no account nobody"),
        "{}",
        run.stderr
    );
    // The same entries inline: HOST/ACCOUNT is an ordinary pattern item too.
    let run = env.run(&[
        "list",
        "-i",
        env.toml(),
        "-l",
        "web001/u001a0001,web002",
        "--report",
        "r.json",
        "--progress",
        "never",
    ]);
    run.expect(0);
    let report = read_report(&env.path("r.json"));
    let mut got: Vec<String> = report["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            format!(
                "{}/{}",
                t["host"].as_str().unwrap(),
                t["account"].as_str().unwrap_or("-")
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        ["web001/u001a0001", "web002/u002a0001", "web002/u002a0002"]
    );
}
