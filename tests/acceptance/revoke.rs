//! `revoke`: by name and glob, idempotent, both APIs.

use crate::common::*;

#[test]
fn revoke_by_glob_then_again_is_unchanged() {
    let env = Env::start(small_fleet(2, 2));
    let mut seeded = Vec::new();
    for h in env.fleet.hosts() {
        for a in h.accounts() {
            seeded.push((
                h.name().to_string(),
                a.clone(),
                h.add_account_token(&a, "old-1", None),
                h.add_account_token(&a, "keep", None),
            ));
        }
    }
    let run = env.run(&[
        "revoke",
        "-i",
        env.toml(),
        "--name",
        "old-*",
        "--report",
        "r.json",
    ]);
    run.expect(0);
    assert_eq!(
        statuses(&read_report(&env.path("r.json"))).get("revoked"),
        Some(&4)
    );
    for (host, account, old, keep) in &seeded {
        let h = env.fleet.host(host);
        assert!(!h.token_valid(account, old), "revoked token refused");
        assert!(h.token_valid(account, keep), "other tokens untouched");
    }
    let again = env.run(&[
        "revoke",
        "-i",
        env.toml(),
        "--name",
        "old-*",
        "--report",
        "r2.json",
    ]);
    again.expect(0);
    assert_eq!(
        statuses(&read_report(&env.path("r2.json"))).get("unchanged"),
        Some(&4)
    );
    let secrets: Vec<String> = seeded
        .iter()
        .flat_map(|s| [s.2.clone(), s.3.clone()])
        .collect();
    env.assert_no_secret_leaked(&[&run, &again], &secrets);
}

#[test]
fn revoke_dry_run_changes_nothing() {
    let env = Env::start(small_fleet(1, 2));
    let h = &env.fleet.hosts()[0];
    let tokens: Vec<(String, String)> = h
        .accounts()
        .into_iter()
        .map(|a| {
            let t = h.add_account_token(&a, "gone", None);
            (a, t)
        })
        .collect();
    let run = env.run(&["revoke", "-i", env.toml(), "--name", "gone", "--dry-run"]);
    run.expect(0);
    assert_eq!(h.stats().mutations(), 0);
    for (a, t) in &tokens {
        assert!(h.token_valid(a, t));
    }
}

#[test]
fn revoke_respects_limit_and_accounts() {
    let env = Env::start(small_fleet(3, 2));
    let mut all = Vec::new();
    for h in env.fleet.hosts() {
        for a in h.accounts() {
            all.push((
                h.name().to_string(),
                a.clone(),
                h.add_account_token(&a, "t", None),
            ));
        }
    }
    let first_account = env.fleet.hosts()[0].accounts()[0].clone();
    let run = env.run(&[
        "revoke",
        "-i",
        env.toml(),
        "--name",
        "t",
        "-l",
        "web00[12],!web002",
        "--accounts",
        &first_account,
    ]);
    run.expect(0);
    for (host, account, token) in &all {
        let revoked = host == "web001" && *account == first_account;
        assert_eq!(
            !env.fleet.host(host).token_valid(account, token),
            revoked,
            "{host}/{account}"
        );
    }
    assert_eq!(
        env.fleet.host("web003").stats().total_requests,
        0,
        "hosts outside --limit are not contacted"
    );
}
