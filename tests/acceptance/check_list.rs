//! `check` and `list`: read-only, pins printed in the form tls_pin accepts.

use crate::common::*;

#[test]
fn check_prints_each_hosts_pin_and_changes_nothing() {
    let env = Env::start(small_fleet(3, 1));
    let run = env.run(&["check", "-i", env.toml(), "--format", "json"]);
    run.expect(0);
    let rows: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON on stdout");
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for row in rows {
        let host = env.fleet.host(row["host"].as_str().unwrap());
        assert_eq!(row["ok"], true);
        assert_eq!(
            row["tls_pin"].as_str().unwrap(),
            host.cert_pin(),
            "the printed pin is the host's"
        );
        assert_eq!(host.stats().mutations(), 0);
    }
    let table = env.run(&["check", "-i", env.toml()]);
    table.expect(0);
    assert!(table.stdout.contains(&env.fleet.hosts()[0].cert_pin()));
    env.assert_no_secret_leaked(&[&run, &table], &[]);
}

#[test]
fn check_reports_bad_credentials_without_retrying() {
    let env = Env::start(small_fleet(2, 1));
    let run = env.run_env(
        &["check", "-i", env.toml()],
        &[("WHM_TOKEN", "WRONGWRONGWRONGWRONGWRONGWRONG12")],
    );
    run.expect(1);
    assert!(run.stdout.contains("FAILED"));
    for h in env.fleet.hosts() {
        assert_eq!(
            h.stats().failed_auth,
            1,
            "one refused login per host, no retry"
        );
    }
}

#[test]
fn list_shows_names_and_expiry_in_every_format() {
    let env = Env::start(small_fleet(1, 2));
    let h = &env.fleet.hosts()[0];
    let accounts = h.accounts();
    let s1 = h.add_account_token(&accounts[0], "forever", None);
    let s2 = h.add_account_token(&accounts[1], "dated", Some(4_102_444_800));
    let json = env.run(&["list", "-i", env.toml(), "--format", "json"]);
    json.expect(0);
    let rows: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let dated = rows.iter().find(|r| r["token_name"] == "dated").unwrap();
    assert_eq!(dated["expires_at"], "2100-01-01T00:00:00Z");
    let forever = rows.iter().find(|r| r["token_name"] == "forever").unwrap();
    assert!(forever["expires_at"].is_null());
    let csv = env.run(&["list", "-i", env.toml(), "--format", "csv"]);
    csv.expect(0);
    assert!(
        csv.stdout
            .starts_with("host,account,token_name,created_at,expires_at,expired")
    );
    let table = env.run(&["list", "-i", env.toml()]);
    table.expect(0);
    assert!(table.stdout.contains("never") && table.stdout.contains("dated"));
    env.assert_no_secret_leaked(&[&json, &csv, &table], &[s1, s2]);
}

/// api = "cpanel": each account's own credential is checked on the cPanel port; WHM is not asked.
#[test]
fn check_with_account_credentials() {
    let env = Env::start(small_fleet(2, 2));
    let seeded = env.cpanel_inventory("own.toml");
    let run = env.run(&["check", "-i", "own.toml", "--format", "json"]);
    run.expect(0);
    let rows: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        rows.as_array().unwrap().len(),
        4,
        "one row per account credential"
    );
    for h in env.fleet.hosts() {
        assert_eq!(h.stats().count("whm/version"), 0);
        assert_eq!(h.stats().count("cpanel/Tokens/list"), 2);
    }
    env.assert_no_secret_leaked(&[&run], &seeded);
}
