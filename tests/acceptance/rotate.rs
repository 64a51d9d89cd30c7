//! `rotate`: create → seal → verify with only the new token → revoke the old. A failed verify or
//! revoke leaves the old token valid (and resume finishes a failed revoke); a fleet rotates its
//! own `api = "cpanel"` credentials and its WHM tokens, and the next run works with the new
//! credentials while the old ones are refused.

use crate::common::*;
use cpanel_sim::Faults;
use std::collections::BTreeMap;

/// Seed an `old-ci` token on every account; returns (host, account) → secret.
fn seed_old(env: &Env) -> BTreeMap<(String, String), String> {
    let mut old = BTreeMap::new();
    for h in env.fleet.hosts() {
        for a in h.accounts() {
            let s = h.add_account_token(&a, "old-ci", None);
            old.insert((h.name().to_string(), a), s);
        }
    }
    old
}

fn fail_route(route: &str, status: u16) -> Faults {
    let mut f = Faults::default();
    f.fail_routes.insert(route.to_string(), status);
    f
}

fn rotate<'a>(env: &'a Env, out: &'a str) -> Vec<&'a str> {
    vec![
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
        out,
        "--report",
        "rot.json",
        "--retries",
        "1",
    ]
}

#[test]
fn failed_verify_leaves_the_old_token_valid() {
    let env = Env::start(small_fleet(2, 2));
    let old = seed_old(&env);
    // web001 refuses the new tokens on its cPanel port: verify fails there.
    env.fleet
        .host("web001")
        .set_faults(fail_route("cpanel/Tokens/list", 401));
    let run = env.run(&rotate(&env, "rot.age"));
    run.expect(1);
    let report = read_report(&env.path("rot.json"));
    let mut verify_failed = 0;
    for t in report["targets"].as_array().unwrap() {
        if t["host"] == "web001" {
            // The first refused verify stops the host: each one would be a failed login.
            if t["status"] == "failed" {
                assert_eq!(t["step"], "verify", "{t}");
                verify_failed += 1;
            } else {
                assert_eq!(t["status"], "skipped", "{t}");
                assert_eq!(t["attempts"], 0, "{t}");
            }
        } else {
            assert_eq!(t["status"], "rotated", "{t}");
        }
    }
    assert_eq!(verify_failed, 1, "one verify refused, none after it");
    assert_eq!(
        env.fleet.host("web001").stats().count("cpanel/Tokens/list"),
        1
    );
    for ((host, account), secret) in &old {
        let sim = env.fleet.host(host);
        assert!(
            host == "web002" || sim.token_valid(account, secret),
            "{host} {account}: old token alive where the rotation did not finish"
        );
        if host == "web002" {
            assert!(!sim.token_valid(account, secret), "{host} {account}");
        }
    }
    // The new tokens are sealed anyway (they exist): 3 rows (web001's second account was
    // never rotated), all working.
    let rows = env.open_handoff(&env.path("rot.age"));
    assert_eq!(rows.len(), 3);
    for row in &rows {
        assert!(
            env.fleet
                .host(&row["host"])
                .token_valid(&row["account"], &row["token"])
        );
    }
    let mut secrets: Vec<String> = rows.iter().map(|r| r["token"].clone()).collect();
    secrets.extend(old.values().cloned());
    env.assert_no_secret_leaked(&[&run], &secrets);
}

#[test]
fn failed_revoke_leaves_the_old_token_valid_and_resume_finishes_it() {
    let env = Env::start(small_fleet(2, 2));
    let old = seed_old(&env);
    env.fleet
        .host("web002")
        .set_faults(fail_route("whm/uapi_cpanel/Tokens/revoke", 500));
    let run = env.run(&rotate(&env, "rev.age"));
    run.expect(1);
    let report = read_report(&env.path("rot.json"));
    for t in report["targets"].as_array().unwrap() {
        let want = if t["host"] == "web002" {
            "failed"
        } else {
            "rotated"
        };
        assert_eq!(t["status"], want, "{t}");
        if t["host"] == "web002" {
            assert_eq!(t["step"], "revoke", "{t}");
        }
    }
    for ((host, account), secret) in &old {
        assert_eq!(
            env.fleet.host(host).token_valid(account, secret),
            host == "web002"
        );
    }
    let first_rows = env.open_handoff(&env.path("rev.age"));
    assert_eq!(first_rows.len(), 4);

    // The server heals; resume continues the sealed rotations (no new token) and revokes.
    env.fleet.host("web002").set_faults(Faults::default());
    let key = env.identity_file.to_str().unwrap().to_string();
    let resumed = env.run(&[
        "resume",
        "rev.age.journal",
        "--identity",
        &key,
        "--report",
        "res.json",
    ]);
    resumed.expect(0);
    assert_eq!(
        statuses(&read_report(&env.path("res.json"))).get("rotated"),
        Some(&4)
    );
    for ((host, account), secret) in &old {
        assert!(
            !env.fleet.host(host).token_valid(account, secret),
            "{host} {account}"
        );
    }
    let rows = env.open_handoff(&env.path("rev.age"));
    assert_eq!(rows.len(), 4);
    let first: BTreeMap<(String, String), String> = first_rows
        .iter()
        .map(|r| {
            (
                (r["host"].clone(), r["account"].clone()),
                r["token"].clone(),
            )
        })
        .collect();
    for b in &rows {
        assert_eq!(
            first[&(b["host"].clone(), b["account"].clone())],
            b["token"],
            "resume reused the sealed tokens"
        );
        let sim = env.fleet.host(&b["host"]);
        assert!(sim.token_valid(&b["account"], &b["token"]));
        assert_eq!(
            sim.account_tokens(&b["account"]).len(),
            1,
            "only the new token is left"
        );
    }
    let mut secrets: Vec<String> = rows.iter().map(|r| r["token"].clone()).collect();
    secrets.extend(old.values().cloned());
    env.assert_no_secret_leaked(&[&run, &resumed], &secrets);
}

/// Write `secret` to a 0600 credential file named `name` in the temp folder.
fn write_cred(env: &Env, name: &str, secret: &str) {
    let file = env.path(name);
    std::fs::write(&file, format!("{secret}\n")).unwrap();
    let mut perm = std::fs::metadata(&file).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o600);
    std::fs::set_permissions(&file, perm).unwrap();
}

/// api = "cpanel": each account's own token is the credential, and it is what gets rotated.
#[test]
fn a_fleet_rotates_its_own_cpanel_credentials() {
    let env = Env::start(small_fleet(2, 2));
    let mut inv = String::from("[defaults]\napi = \"cpanel\"\n");
    let mut creds = BTreeMap::new();
    for (hi, host) in env.fleet.hosts().iter().enumerate() {
        inv.push_str(&format!(
            "\n[[hosts]]\nname = \"{}\"\naddress = \"127.0.0.1\"\nwhm_port = {}\ncpanel_port = {}\ntls_pin = \"{}\"\naccounts = [\n",
            host.name(), host.whm_port(), host.cpanel_port(), host.cert_pin()
        ));
        for (ai, account) in host.accounts().iter().enumerate() {
            let secret = host.add_account_token(account, "self-0", None);
            let file = format!("cred-{hi}-{ai}");
            write_cred(&env, &file, &secret);
            inv.push_str(&format!(
                "  {{ user = \"{account}\", credential = \"file:{file}\" }},\n"
            ));
            creds.insert((host.name().to_string(), account.clone()), (file, secret));
        }
        inv.push_str("]\n");
    }
    std::fs::write(env.path("own.toml"), inv).unwrap();
    let run = env.run(&[
        "rotate",
        "-i",
        "own.toml",
        "--name",
        "self-{run}",
        "--revoke",
        "self-*",
        "-r",
        &env.recipient,
        "-o",
        "own.age",
    ]);
    run.expect(0);
    let rows = env.open_handoff(&env.path("own.age"));
    assert_eq!(rows.len(), 4);
    for host in env.fleet.hosts() {
        assert_eq!(
            host.stats()
                .count("whm/uapi_cpanel/Tokens/create_full_access"),
            0,
            "api = cpanel never goes through WHM"
        );
    }
    let mut secrets: Vec<String> = creds.values().map(|(_, s)| s.clone()).collect();
    for row in &rows {
        let (file, old) = &creds[&(row["host"].clone(), row["account"].clone())];
        let sim = env.fleet.host(&row["host"]);
        assert!(
            !sim.token_valid(&row["account"], old),
            "the old credential is revoked"
        );
        assert!(sim.token_valid(&row["account"], &row["token"]));
        assert_eq!(sim.account_tokens(&row["account"]).len(), 1);
        // The operator puts the new credential in place.
        write_cred(&env, file, &row["token"]);
        secrets.push(row["token"].clone());
    }
    let next = env.run(&["list", "-i", "own.toml", "--format", "csv"]);
    next.expect(0);
    assert_eq!(next.stdout.matches("self-").count(), 4, "{}", next.stdout);
    // The old credentials are refused.
    for (file, old) in creds.values() {
        write_cred(&env, file, old);
    }
    let stale = env.run(&["check", "-i", "own.toml"]);
    stale.expect(1);
    env.assert_no_secret_leaked(&[&run, &next, &stale], &secrets);
}

/// `--scope whm`: each host's WHM token (used as that host's credential) is rotated, verified on
/// the WHM port with the new token, then the old one revoked.
#[test]
fn a_fleet_rotates_its_whm_tokens() {
    let env = Env::start(small_fleet(2, 1));
    let mut inv = String::new();
    let mut old = BTreeMap::new();
    for host in env.fleet.hosts() {
        let secret = host.add_whm_token("root", "ops-old");
        let file = format!("cred-whm-{}", host.name());
        write_cred(&env, &file, &secret);
        inv.push_str(&format!(
            "[[hosts]]\nname = \"{}\"\naddress = \"127.0.0.1\"\nwhm_port = {}\ncpanel_port = {}\ntls_pin = \"{}\"\ncredential = \"file:{file}\"\naccounts = [\"{}\"]\n\n",
            host.name(), host.whm_port(), host.cpanel_port(), host.cert_pin(), host.accounts()[0]
        ));
        old.insert(host.name().to_string(), (file, secret));
    }
    std::fs::write(env.path("whm.toml"), inv).unwrap();
    let run = env.run(&[
        "rotate",
        "-i",
        "whm.toml",
        "--scope",
        "whm",
        "--name",
        "ops-{date}-{run}",
        "--revoke",
        "ops-*",
        "-r",
        &env.recipient,
        "-o",
        "whm.age",
        "--report",
        "w.json",
    ]);
    run.expect(0);
    assert_eq!(
        statuses(&read_report(&env.path("w.json"))).get("rotated"),
        Some(&2)
    );
    let rows = env.open_handoff(&env.path("whm.age"));
    assert_eq!(rows.len(), 2);
    let mut secrets: Vec<String> = old.values().map(|(_, s)| s.clone()).collect();
    for row in &rows {
        let sim = env.fleet.host(&row["host"]);
        let (file, old_secret) = &old[&row["host"]];
        assert_eq!(row["account"], "root");
        assert!(sim.whm_token_valid("root", &row["token"]));
        assert!(
            !sim.whm_token_valid("root", old_secret),
            "old WHM token revoked"
        );
        assert!(
            sim.whm_token_valid("root", env.fleet.root_token()),
            "--revoke matched only ops-*"
        );
        assert!(
            sim.stats().count("whm/version") >= 1,
            "verified on the WHM port"
        );
        write_cred(&env, file, &row["token"]);
        secrets.push(row["token"].clone());
    }
    let next = env.run(&["check", "-i", "whm.toml"]);
    next.expect(0);
    for (file, old_secret) in old.values() {
        write_cred(&env, file, old_secret);
    }
    let stale = env.run(&["check", "-i", "whm.toml"]);
    stale.expect(1);
    env.assert_no_secret_leaked(&[&run, &next, &stale], &secrets);
}
