//! A fleet on per-host loopback addresses with cPanel's ports, as an inventory of real servers
//! looks (addresses, no port keys): `check` and `create` work against it, each host is reached
//! at its own address, and the tokens end up on the right servers.

use crate::common::*;
use cpanel_sim::Addressing;

fn per_host_fleet(hosts: usize, accounts: usize) -> cpanel_sim::FleetSpec {
    let mut spec = small_fleet(hosts, accounts);
    spec.addressing = Addressing::PerHost;
    spec
}

#[test]
fn check_accepts_an_inventory_of_per_host_addresses_on_default_ports() {
    let env = Env::start(per_host_fleet(3, 2));
    let text = std::fs::read_to_string(&env.files.toml).unwrap();
    assert!(!text.contains("whm_port"), "default ports left out");
    for h in env.fleet.hosts() {
        assert_ne!(h.address(), "127.0.0.1");
        assert_eq!((h.whm_port(), h.cpanel_port()), (2087, 2083));
    }
    for inventory in [env.toml(), env.csv()] {
        let run = env.run(&["check", "-i", inventory, "--format", "json"]);
        run.expect(0);
        let rows: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON on stdout");
        assert_eq!(rows.as_array().unwrap().len(), 3);
        for row in rows.as_array().unwrap() {
            assert_eq!(row["ok"], true, "{row}");
        }
        env.assert_no_secret_leaked(&[&run], &[]);
    }
    for h in env.fleet.hosts() {
        assert_eq!(
            h.stats().count("whm/version"),
            2,
            "{} checked at its own address",
            h.name()
        );
        assert_eq!(h.stats().mutations(), 0);
    }
}

#[test]
fn create_puts_each_token_on_its_own_host() {
    let mut env = Env::start(per_host_fleet(3, 2));
    let run = env.run(&create_cmd(&env, "ci-{host}", "out.age"));
    run.expect(0);
    for h in env.fleet.hosts() {
        for a in h.accounts() {
            let names: Vec<String> = h.account_tokens(&a).into_iter().map(|t| t.name).collect();
            assert_eq!(names, vec![format!("ci-{}", h.name())], "{}/{a}", h.name());
        }
    }
    let rows = env.open_handoff(&env.path("out.age"));
    assert_eq!(rows.len(), 6);
    for r in &rows {
        let h = env.fleet.host(&r["host"]);
        assert!(h.token_valid(&r["account"], &r["token"]));
        assert_eq!(r["url"], format!("https://{}:2083", h.address()), "{r:?}");
    }
    env.secrets.extend(env.fleet.known_secrets());
    env.assert_no_secret_leaked(&[&run], &[]);
}
