//! Lockout safety (cPHulk): a refused credential is never retried, and the simulator sees one
//! failed login from tokenfleet for that host in a whole run, whatever the operation, `per_host`,
//! the number of accounts and the retry budget.
//!
//! What "the host stops" means with `api = "cpanel"`: cPHulk counts failures per client IP across
//! every account of the server (5 in 15 minutes block the IP for all of them), so one refused
//! account credential stops the whole host, exactly as a refused WHM credential does: the refused
//! account is `failed` ("authentication refused"), and every other account is `skipped` with
//! nothing sent. The host's login gate lets one not-yet-accepted credential out at a time, and
//! none after a refusal, hence the bound of one.

use crate::common::*;
use cpanel_sim::SimHost;

fn reset(h: &SimHost) {
    h.reset_stats();
    h.reset_cphulk();
}

#[track_caller]
fn assert_bounded(victim: &SimHost, per_host: usize, what: &str) {
    let s = victim.stats();
    assert!(s.failed_auth >= 1, "{what}: the bad credential was tried");
    assert_eq!(
        s.failed_auth, 1,
        "{what}: refused logins with per_host {per_host}"
    );
    assert_eq!(s.blocked, 0, "{what}: never locked out by cPHulk");
}

#[test]
fn a_refused_credential_with_discovered_accounts_stops_at_listaccts() {
    let env = Env::start_with(
        small_fleet(2, 30),
        &cpanel_sim::InventoryOptions {
            accounts_star: true,
            ..Default::default()
        },
    );
    let inv = with_bad_credential(&env, "web001");
    let run = env.run_env(
        &[
            "create",
            "-i",
            &inv,
            "--name",
            "d",
            "-r",
            &env.recipient,
            "-o",
            "d.age",
            "--per-host",
            "4",
            "--retries",
            "5",
            "--report",
            "r.json",
        ],
        &[("BAD_TOKEN", BAD)],
    );
    run.expect(1);
    let s = env.fleet.host("web001").stats();
    assert_eq!(s.failed_auth, 1, "one listaccts, never retried");
    assert_eq!(s.total_requests, 1);
    assert_eq!(env.open_handoff(&env.path("d.age")).len(), 30);
}

/// `api = "cpanel"`: each account logs in with its own token. Some of them are wrong.
#[test]
fn refused_account_credentials_stop_the_host_and_are_never_retried() {
    let env = Env::start(small_fleet(2, 20));
    let mut inv = String::from("[defaults]\napi = \"cpanel\"\n");
    let mut wrong = Vec::new();
    for (hi, h) in env.fleet.hosts().iter().enumerate() {
        inv.push_str(&format!(
            "\n[[hosts]]\nname = \"{}\"\naddress = \"127.0.0.1\"\nwhm_port = {}\ncpanel_port = {}\ntls_pin = \"{}\"\naccounts = [\n",
            h.name(),
            h.whm_port(),
            h.cpanel_port(),
            h.cert_pin()
        ));
        for (ai, a) in h.accounts().iter().enumerate() {
            let good = h.add_account_token(a, "tool", None);
            // On web002, every fifth account's file holds a stale token.
            let secret = if hi == 1 && ai % 5 == 2 {
                wrong.push(a.clone());
                format!("STALE{:027}", ai)
            } else {
                good
            };
            let file = format!("cred-{a}");
            cpanel_sim::write_private(&env.path(&file), secret.as_bytes()).unwrap();
            inv.push_str(&format!(
                "  {{ user = \"{a}\", credential = \"file:{file}\" }},\n"
            ));
        }
        inv.push_str("]\n");
    }
    std::fs::write(env.path("cp.toml"), inv).unwrap();
    for per_host in [1usize, 2, 4] {
        for h in env.fleet.hosts() {
            reset(h);
        }
        let ph = per_host.to_string();
        let out = format!("cp{per_host}.age");
        let report = format!("cp{per_host}.json");
        let run = env.run(&[
            "create",
            "-i",
            "cp.toml",
            "--name",
            &format!("n{per_host}"),
            "-r",
            &env.recipient,
            "-o",
            &out,
            "--per-host",
            &ph,
            "--retries",
            "5",
            "--report",
            &report,
            "--progress",
            "never",
        ]);
        run.expect(1);
        let victim = env.fleet.host("web002");
        assert_bounded(victim, per_host, &format!("api cpanel per_host {per_host}"));
        let report = read_report(&env.path(&report));
        let mut refused = 0;
        for t in report["targets"].as_array().unwrap() {
            let account = t["account"].as_str().unwrap().to_string();
            if t["host"] == "web001" {
                assert_eq!(t["status"], "created", "{t}");
                continue;
            }
            match t["status"].as_str().unwrap() {
                "failed" => {
                    assert!(
                        wrong.contains(&account),
                        "only a stale credential fails: {t}"
                    );
                    assert!(
                        t["error"]
                            .as_str()
                            .unwrap()
                            .contains("authentication refused"),
                        "{t}"
                    );
                    assert_eq!(t["attempts"], 1, "a refused credential is not retried: {t}");
                    refused += 1;
                }
                "skipped" => assert_eq!(t["attempts"], 0, "nothing sent: {t}"),
                "created" => assert!(!wrong.contains(&account), "{t}"),
                other => panic!("unexpected status {other}: {t}"),
            }
        }
        assert!(refused >= 1 && refused as u64 == victim.stats().failed_auth);
        // No more requests reached web002 than the accounts it started before the refusal.
        assert!(victim.stats().total_requests <= 20, "{:?}", victim.stats());
    }
}
