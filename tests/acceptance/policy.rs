//! Token policy (issue 13): WHM tokens created with ACLs and an IP allow-list, `rotate
//! --expiring-within` renewing only what is about to expire, and `update` changing WHM tokens in
//! place. Every refusal is exit 2 with nothing sent; every change is checked on the servers'
//! final state.

use crate::common::*;

fn whm_create<'a>(env: &'a Env, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "create",
        "-i",
        env.toml(),
        "--scope",
        "whm",
        "--name",
        "ops-{date}",
        "-r",
        &env.recipient,
        "-o",
        "whm.age",
        "--progress",
        "never",
    ];
    args.extend_from_slice(extra);
    args
}

#[test]
fn bad_acls_allow_lists_and_scopes_are_refused_before_anything_is_sent() {
    let env = Env::start(small_fleet(2, 2));
    let hundred_and_one: String = (0..101)
        .map(|i| format!("10.0.{}.{}", i / 250, i % 250))
        .collect::<Vec<_>>()
        .join(",");
    let account_create = {
        let mut a = create_cmd(&env, "ci-{date}", "acct.age");
        a.extend(["--acl", "list-accts"]);
        a
    };
    let account_rotate: Vec<&str> = vec![
        "rotate",
        "-i",
        env.toml(),
        "--name",
        "ci-{date}",
        "--revoke",
        "old-*",
        "-r",
        &env.recipient,
        "-o",
        "rot.age",
        "--whitelist-ip",
        "203.0.113.7",
    ];
    let cases: Vec<(Vec<&str>, &[&str])> = vec![
        (
            whm_create(&env, &["--whitelist-ip", "10.0.0.1/8"]),
            &["--whitelist-ip", "10.0.0.1/8", "10.0.0.0/8"],
        ),
        (
            whm_create(&env, &["--whitelist-ip", "203.0.113.0/33,198.51.100.7"]),
            &["--whitelist-ip", "203.0.113.0/33", "prefix"],
        ),
        (
            whm_create(&env, &["--whitelist-ip", "web1.example"]),
            &["--whitelist-ip", "web1.example", "CIDR"],
        ),
        (
            whm_create(&env, &["--whitelist-ip", &hundred_and_one]),
            &["--whitelist-ip", "101", "at most 100"],
        ),
        (
            whm_create(&env, &["--acl", "list-accts", "--acl", "Create_Acct"]),
            &["--acl", "Create_Acct", "list-accts"],
        ),
        (
            account_create,
            &[
                "--acl",
                "cPanel account tokens have no ACLs or IP allow-list",
                "--scope whm",
            ],
        ),
        (
            account_rotate,
            &[
                "--whitelist-ip",
                "UAPI create_full_access takes only name and expires_at",
            ],
        ),
        (
            vec![
                "update",
                "-i",
                env.toml(),
                "--name",
                "ci-*",
                "--expires-in",
                "30d",
            ],
            &[
                "cannot be changed in place",
                "tokenfleet rotate --expiring-within DUR",
            ],
        ),
        (
            vec![
                "update",
                "-i",
                env.toml(),
                "--scope",
                "whm",
                "--name",
                "ci-*",
            ],
            &["nothing to change", "--never-expires"],
        ),
        (
            vec![
                "update",
                "-i",
                env.toml(),
                "--scope",
                "whm",
                "--name",
                "ci-*",
                "--never-expires",
                "--expiring-within",
                "soon",
            ],
            &["--expiring-within", "\"soon\" is not a duration"],
        ),
    ];
    for (args, want) in &cases {
        let run = env.run(args);
        run.expect(2);
        for w in *want {
            assert!(
                run.stderr.contains(w),
                "{args:?}: {w:?} not in\n{}",
                run.stderr
            );
        }
        assert!(
            run.stderr.contains("hint:"),
            "{args:?}: a fix\n{}",
            run.stderr
        );
        assert_eq!(env.total_requests(), 0, "{args:?}: nothing is sent");
        assert!(!env.path("whm.age").exists() && !env.path("whm.age.journal").exists());
    }
}

#[test]
fn rotate_expiring_within_renews_only_the_tokens_about_to_expire() {
    let env = Env::start(small_fleet(2, 2));
    let now = jiff::Timestamp::now().as_second();
    // web001's accounts hold a ci token expiring in 5 days, web002's one expiring in a year;
    // web002/u... also an expired one of another name that --revoke does not match.
    let mut soon = Vec::new();
    let mut later = Vec::new();
    for h in env.fleet.hosts() {
        for a in h.accounts() {
            let far = h.name() == "web002";
            let expires = if far {
                now + 365 * 86_400
            } else {
                now + 5 * 86_400
            };
            let secret = h.add_account_token(&a, "old-ci", Some(expires));
            h.add_account_token(&a, "keep", Some(now - 86_400));
            if far {
                later.push((h.name().to_string(), a.clone(), secret));
            } else {
                soon.push((h.name().to_string(), a.clone(), secret));
            }
        }
    }
    let before = live_tokens(&env);
    let rotate = |extra: &[&str], report: &str| {
        let mut args = vec![
            "rotate",
            "-i",
            env.toml(),
            "--name",
            "ci-{date}",
            "--revoke",
            "old-*",
            "--expiring-within",
            "30d",
            "-r",
            &env.recipient,
            "-o",
            "rot.age",
            "--report",
            report,
            "--progress",
            "never",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        args.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        env.run(&refs)
    };
    // The dry run says the same as the run will, and changes nothing.
    let dry = rotate(&["--dry-run"], "dry.json");
    dry.expect(0);
    let report = read_report(&env.path("dry.json"));
    for t in report["targets"].as_array().unwrap() {
        if t["host"] == "web001" {
            assert_eq!(t["status"], "would-rotate", "{t}");
            assert_eq!(t["revoked"][0]["name"], "old-ci", "{t}");
        } else {
            assert_eq!(t["status"], "unchanged", "{t}");
            assert_eq!(
                t["note"], "no token matching old-* expires within 30d",
                "{t}"
            );
        }
    }
    assert!(
        dry.stdout
            .contains("no token matching old-* expires within 30d")
            || dry
                .stderr
                .contains("no token matching old-* expires within 30d")
    );
    assert_eq!(live_tokens(&env), before, "a dry run changes nothing");

    let run = rotate(&[], "rot.json");
    run.expect(0);
    let report = read_report(&env.path("rot.json"));
    let st = statuses(&report);
    assert_eq!(st.get("rotated"), Some(&2), "{st:?}");
    assert_eq!(st.get("unchanged"), Some(&2), "{st:?}");
    // The expiring ones are gone, replaced by tokens in the handoff; the others untouched.
    let rows = env.open_handoff(&env.path("rot.age"));
    assert_eq!(rows.len(), 2);
    for (host, account, secret) in &soon {
        let h = env.fleet.host(host);
        assert!(
            !h.token_valid(account, secret),
            "{host}/{account}: old-ci revoked"
        );
        let row = rows
            .iter()
            .find(|r| &r["host"] == host && &r["account"] == account)
            .expect("its replacement is handed off");
        assert!(h.token_valid(account, &row["token"]));
    }
    for (host, account, secret) in &later {
        let h = env.fleet.host(host);
        assert!(
            h.token_valid(account, secret),
            "{host}/{account}: still live"
        );
        let names: Vec<String> = h
            .account_tokens(account)
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(names.len(), 2, "{host}/{account}: untouched: {names:?}");
        assert!(
            rows.iter()
                .all(|r| !(&r["host"] == host && &r["account"] == account))
        );
    }
    let held = env.open_handoff(&env.path("rot.age"));
    assert_promises(&env, &before, &held, &[&run]);
    let mut secrets: Vec<String> = rows.iter().map(|r| r["token"].clone()).collect();
    secrets.extend(soon.iter().chain(&later).map(|s| s.2.clone()));
    env.assert_no_secret_leaked(&[&dry, &run], &secrets);
}
/// `whm_user`'s token `name` on `host`, as the simulator holds it.
fn whm_token(env: &Env, host: &str, name: &str) -> cpanel_sim::SimWhmToken {
    env.fleet
        .host(host)
        .whm_token_details("root")
        .into_iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("{host}: no WHM token {name}"))
}

#[test]
fn whm_tokens_are_created_and_rotated_with_their_acls_and_allow_list() {
    let env = Env::start(small_fleet(2, 1));
    let before = live_tokens(&env);
    let created = env.run(&whm_create(
        &env,
        &[
            "--acl",
            "list-accts,clustering",
            "--acl",
            "clustering",
            "--whitelist-ip",
            "127.0.0.1",
            "--whitelist-ip",
            "198.51.100.0/24,2001:DB8::/32",
        ],
    ));
    created.expect(0);
    let rows = env.open_handoff(&env.path("whm.age"));
    assert_eq!(rows.len(), 2);
    for row in &rows {
        let t = whm_token(&env, &row["host"], &row["token_name"]);
        assert_eq!(t.acls, ["list-accts", "clustering"], "{}", row["host"]);
        assert_eq!(
            t.whitelist_ips,
            ["127.0.0.1", "198.51.100.0/24", "2001:db8::/32"],
            "canonical, in order, duplicates folded"
        );
        assert!(
            env.fleet
                .host(&row["host"])
                .whm_token_valid("root", &row["token"])
        );
    }
    // A rotation's new token gets the new policy; the old one goes.
    let rotated = env.run(&[
        "rotate",
        "-i",
        env.toml(),
        "--scope",
        "whm",
        "--name",
        "ops2-{date}",
        "--revoke",
        "ops-*",
        "--acl",
        "list-accts",
        "--whitelist-ip",
        "127.0.0.1",
        "-r",
        &env.recipient,
        "-o",
        "rot.age",
        "--report",
        "rot.json",
        "--progress",
        "never",
    ]);
    rotated.expect(0);
    let report = read_report(&env.path("rot.json"));
    assert_eq!(statuses(&report).get("rotated"), Some(&2), "{report:#}");
    let new_rows = env.open_handoff(&env.path("rot.age"));
    for row in &new_rows {
        let t = whm_token(&env, &row["host"], &row["token_name"]);
        assert_eq!(t.acls, ["list-accts"]);
        assert_eq!(t.whitelist_ips, ["127.0.0.1"]);
    }
    for row in &rows {
        let h = env.fleet.host(&row["host"]);
        assert!(
            !h.whm_token_valid("root", &row["token"]),
            "the old one is revoked"
        );
        assert!(
            h.whm_token_valid("root", env.fleet.root_token()),
            "the credential stays"
        );
    }
    assert_promises(&env, &before, &new_rows, &[&created, &rotated]);
    let mut secrets: Vec<String> = rows
        .iter()
        .chain(&new_rows)
        .map(|r| r["token"].clone())
        .collect();
    secrets.push(env.fleet.root_token().to_string());
    env.assert_no_secret_leaked(&[&created, &rotated], &secrets);
}

/// `update --scope whm --name GLOB` with `extra`, its report in `report`.
fn update(env: &Env, glob: &str, extra: &[&str], report: &str) -> Run {
    let mut args = vec![
        "update",
        "-i",
        env.toml(),
        "--scope",
        "whm",
        "--name",
        glob,
        "--report",
        report,
        "--progress",
        "never",
    ];
    args.extend_from_slice(extra);
    env.run(&args)
}

#[test]
fn update_extends_expiry_in_place_narrows_acls_and_never_narrows_the_own_credential() {
    let env = Env::start(small_fleet(2, 1));
    let now = jiff::Timestamp::now().as_second();
    let mut soon = Vec::new();
    let mut later = Vec::new();
    for h in env.fleet.hosts() {
        soon.push((
            h.name().to_string(),
            h.seed_whm_token(
                "root",
                cpanel_sim::SeedToken::named("ci-soon").expires(now + 5 * 86_400),
            ),
        ));
        later.push((
            h.name().to_string(),
            h.seed_whm_token(
                "root",
                cpanel_sim::SeedToken::named("ci-later").expires(now + 365 * 86_400),
            ),
        ));
    }
    let before = live_tokens(&env);
    // The dry run names what would change, and changes nothing.
    let details = |env: &Env| -> Vec<_> {
        env.fleet
            .hosts()
            .iter()
            .map(|h| format!("{:?}", h.whm_token_details("root")))
            .collect()
    };
    let was = details(&env);
    let dry = update(
        &env,
        "ci-*",
        &[
            "--expiring-within",
            "30d",
            "--expires-in",
            "90d",
            "--dry-run",
        ],
        "dry.json",
    );
    dry.expect(0);
    let report = read_report(&env.path("dry.json"));
    crate::operator::assert_report_schema(&report);
    assert_eq!(
        statuses(&report).get("would-update"),
        Some(&2),
        "{report:#}"
    );
    for t in report["targets"].as_array().unwrap() {
        assert_eq!(t["updated"][0]["name"], "ci-soon", "{t}");
        assert_eq!(t["updated"].as_array().unwrap().len(), 1, "{t}");
    }
    assert_eq!(details(&env), was, "a dry run changes nothing");
    for h in env.fleet.hosts() {
        assert_eq!(h.stats().mutations(), 0);
    }

    // Extend the tokens about to expire: same secret, later expiry; the others untouched.
    let extend = update(
        &env,
        "ci-*",
        &["--expiring-within", "30d", "--expires-in", "90d"],
        "extend.json",
    );
    extend.expect(0);
    let report = read_report(&env.path("extend.json"));
    crate::operator::assert_report_schema(&report);
    assert_eq!(statuses(&report).get("updated"), Some(&2), "{report:#}");
    assert!(
        extend.stderr.contains("updated, by name:"),
        "{}",
        extend.stderr
    );
    for (host, secret) in &soon {
        let t = whm_token(&env, host, "ci-soon");
        let at = t.expires_at.as_i64().expect("an expiry");
        assert!(at > now + 80 * 86_400, "{host}: extended to {at}");
        assert!(
            env.fleet.host(host).whm_token_valid("root", secret),
            "same secret"
        );
    }
    for (host, secret) in &later {
        let t = whm_token(&env, host, "ci-later");
        assert_eq!(
            t.expires_at.as_i64(),
            Some(now + 365 * 86_400),
            "{host}: untouched"
        );
        assert!(env.fleet.host(host).whm_token_valid("root", secret));
    }
    assert_eq!(live_tokens(&env), before, "nothing minted, nothing revoked");

    // Narrow every token's ACLs and allow-list: all but the credential the run logs in with.
    let narrow = update(
        &env,
        "*",
        &["--acl", "clustering", "--whitelist-ip", "198.51.100.0/24"],
        "narrow.json",
    );
    narrow.expect(0);
    let report = read_report(&env.path("narrow.json"));
    crate::operator::assert_report_schema(&report);
    for t in report["targets"].as_array().unwrap() {
        let names: Vec<&str> = t["updated"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["ci-later", "ci-soon"], "{t}");
        assert!(
            t["note"]
                .as_str()
                .unwrap()
                .contains("kept tokenfleet-sim-root"),
            "{t}"
        );
    }
    assert!(
        narrow.stderr.contains("kept tokenfleet-sim-root"),
        "{}",
        narrow.stderr
    );
    for h in env.fleet.hosts() {
        let own = whm_token(&env, h.name(), "tokenfleet-sim-root");
        assert_eq!(own.acls, ["all"], "the credential in use is not narrowed");
        assert!(own.whitelist_ips.is_empty());
        for name in ["ci-soon", "ci-later"] {
            let t = whm_token(&env, h.name(), name);
            assert_eq!(t.acls, ["clustering"]);
            assert_eq!(t.whitelist_ips, ["198.51.100.0/24"]);
        }
    }
    // And clear the allow-lists again.
    let any = update(&env, "ci-*", &["--whitelist-any"], "any.json");
    any.expect(0);
    for h in env.fleet.hosts() {
        assert!(
            whm_token(&env, h.name(), "ci-soon")
                .whitelist_ips
                .is_empty()
        );
        assert_eq!(whm_token(&env, h.name(), "ci-soon").acls, ["clustering"]);
    }
    // An expiry for the credential that never expired is sooner: kept unless asked; with
    // --include-own-credential it is set; extending it after that takes nothing away, so it is
    // done unasked.
    let own_at = |env: &Env, h: &str| whm_token(env, h, "tokenfleet-sim-root").expires_at.as_i64();
    let kept = update(
        &env,
        "tokenfleet-sim-root",
        &["--expires-in", "100d"],
        "kept.json",
    );
    kept.expect(0);
    assert_eq!(
        statuses(&read_report(&env.path("kept.json"))).get("unchanged"),
        Some(&2)
    );
    assert!(
        kept.stderr.contains("kept tokenfleet-sim-root"),
        "{}",
        kept.stderr
    );
    let asked = update(
        &env,
        "tokenfleet-sim-root",
        &["--expires-in", "100d", "--include-own-credential"],
        "asked.json",
    );
    asked.expect(0);
    let own = update(
        &env,
        "tokenfleet-sim-root",
        &["--expires-in", "400d"],
        "own.json",
    );
    own.expect(0);
    assert_eq!(
        statuses(&read_report(&env.path("own.json"))).get("updated"),
        Some(&2)
    );
    for h in env.fleet.hosts() {
        assert!(own_at(&env, h.name()).is_some_and(|at| at > now + 390 * 86_400));
        assert!(h.whm_token_valid("root", env.fleet.root_token()));
    }
    let mut secrets: Vec<String> = soon.iter().chain(&later).map(|s| s.1.clone()).collect();
    secrets.push(env.fleet.root_token().to_string());
    env.assert_no_secret_leaked(
        &[&dry, &extend, &narrow, &any, &kept, &asked, &own],
        &secrets,
    );
}

#[test]
fn resume_creates_the_same_acls_and_allow_list_the_run_asked_for() {
    let env = Env::start(small_fleet(2, 1));
    // web002 fails its create (no retries): web001's token is minted, so the journal is kept.
    let mut faults = cpanel_sim::Faults::default();
    faults
        .fail_routes
        .insert("whm/api_token_create".to_string(), 503);
    env.fleet.host("web002").set_faults(faults);
    let first = env.run(&whm_create(
        &env,
        &[
            "--acl",
            "clustering",
            "--whitelist-ip",
            "198.51.100.0/24",
            "--retries",
            "0",
        ],
    ));
    first.expect(1);
    assert!(env.path("whm.age.journal").exists());
    env.fleet
        .host("web002")
        .set_faults(cpanel_sim::Faults::default());
    let key = env.identity_file.to_str().unwrap().to_string();
    let resumed = env.run(&[
        "resume",
        "whm.age.journal",
        "--identity",
        &key,
        "--progress",
        "never",
    ]);
    resumed.expect(0);
    let rows = env.open_handoff(&env.path("whm.age"));
    assert_eq!(rows.len(), 2, "{rows:?}");
    for row in &rows {
        let t = whm_token(&env, &row["host"], &row["token_name"]);
        assert_eq!(t.acls, ["clustering"], "{}", row["host"]);
        assert_eq!(t.whitelist_ips, ["198.51.100.0/24"], "{}", row["host"]);
    }
    let secrets: Vec<String> = rows.iter().map(|r| r["token"].clone()).collect();
    env.assert_no_secret_leaked(&[&first, &resumed], &secrets);
}

#[test]
fn a_whm_rotation_with_expiring_within_renews_only_the_hosts_whose_token_expires() {
    let env = Env::start(small_fleet(2, 1));
    let now = jiff::Timestamp::now().as_second();
    let soon = env.fleet.host("web001").seed_whm_token(
        "root",
        cpanel_sim::SeedToken::named("ops-old").expires(now + 5 * 86_400),
    );
    let later = env.fleet.host("web002").seed_whm_token(
        "root",
        cpanel_sim::SeedToken::named("ops-old").expires(now + 365 * 86_400),
    );
    let before = live_tokens(&env);
    let run = env.run(&[
        "rotate",
        "-i",
        env.toml(),
        "--scope",
        "whm",
        "--name",
        "ops-{date}",
        "--revoke",
        "ops-old",
        "--expiring-within",
        "30d",
        "-r",
        &env.recipient,
        "-o",
        "rot.age",
        "--report",
        "rot.json",
        "--progress",
        "never",
    ]);
    run.expect(0);
    let report = read_report(&env.path("rot.json"));
    let web002 = targets_of(&report, "web002");
    assert_eq!(web002[0]["status"], "unchanged", "{report:#}");
    assert_eq!(
        web002[0]["note"],
        "no token matching ops-old expires within 30d"
    );
    assert_eq!(targets_of(&report, "web001")[0]["status"], "rotated");
    let rows = env.open_handoff(&env.path("rot.age"));
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["host"], "web001");
    assert!(!env.fleet.host("web001").whm_token_valid("root", &soon));
    assert!(
        env.fleet
            .host("web001")
            .whm_token_valid("root", &rows[0]["token"])
    );
    assert!(env.fleet.host("web002").whm_token_valid("root", &later));
    assert_promises(&env, &before, &rows, &[&run]);
    env.assert_no_secret_leaked(&[&run], &[soon, later, rows[0]["token"].clone()]);
}
