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
