//! Per-host addressing: each host on its own loopback address with cPanel's ports, fleets side by
//! side without collisions, a down host back on its own address, inventories without port keys,
//! and the host names of fleets above 999 hosts.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpStream};

use cpanel_sim::{Addressing, Faults, FleetSpec, InventoryOptions};

use super::*;

fn per_host(hosts: usize, accounts: usize) -> FleetSpec {
    let mut spec = FleetSpec::uniform(hosts, accounts);
    spec.addressing = Addressing::PerHost;
    spec
}

fn ip(h: &SimHost) -> Ipv4Addr {
    h.address().parse().expect("an IPv4 address")
}

/// Each host answers `version` on its own address, and the request is counted there only.
fn each_host_answers_itself(env: &Env) {
    let auth = env.root_auth();
    for (i, h) in env.fleet.hosts().iter().enumerate() {
        let before: Vec<u64> = env
            .fleet
            .hosts()
            .iter()
            .map(|o| o.stats().count("whm/version"))
            .collect();
        let r = whm_post(&env.client, h, Some(&auth), "version", &[]);
        assert_eq!(r.status, 200, "{}", r.body);
        for (j, o) in env.fleet.hosts().iter().enumerate() {
            let want = before[j] + u64::from(i == j);
            assert_eq!(o.stats().count("whm/version"), want, "{} counted", o.name());
        }
    }
}

#[test]
fn hosts_listen_on_2087_and_2083_at_their_own_loopback_addresses() {
    let env = Env::start(per_host(3, 1));
    let mut seen = BTreeSet::new();
    for h in env.fleet.hosts() {
        let a = ip(h);
        let [o1, o2, _, _] = a.octets();
        assert!(a.is_loopback(), "{a}");
        assert_eq!(o1, 127);
        assert!(
            (16..=250).contains(&o2),
            "{a} is outside 127.16.0.0–127.250.255.255"
        );
        assert_eq!(h.whm_port(), 2087);
        assert_eq!(h.cpanel_port(), 2083);
        assert_eq!(h.whm_url(), format!("https://{a}:2087"));
        assert!(seen.insert(a), "{a} given twice");
    }
    each_host_answers_itself(&env);
    let h = env.host("web002");
    let secret = create_token(&env, &h, "u002a0001", "t1");
    let r = uapi_post(
        &env.client,
        &h,
        &format!("cpanel u002a0001:{secret}"),
        "list",
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        h.stats().count("cpanel/Tokens/list"),
        1,
        "port 2083 is web002's"
    );
    assert_eq!(env.host("web001").stats().count("cpanel/Tokens/list"), 0);
}

#[test]
fn two_fleets_at_once_do_not_collide() {
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| Env::start(per_host(5, 1)));
        let b = s.spawn(|| Env::start(per_host(5, 1)));
        (a.join().unwrap(), b.join().unwrap())
    });
    let addrs = |e: &Env| -> BTreeSet<Ipv4Addr> { e.fleet.hosts().iter().map(ip).collect() };
    assert_eq!(addrs(&a).len(), 5);
    assert!(
        addrs(&a).is_disjoint(&addrs(&b)),
        "two fleets share an address"
    );
    each_host_answers_itself(&a);
    each_host_answers_itself(&b);
    // A token minted on one fleet's web001 is not on the other's.
    let auth = a.root_auth();
    let r = whm_post(
        &a.client,
        &a.host("web001"),
        Some(&auth),
        "api_token_create",
        &[("token_name", "only-in-a")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(a.host("web001").whm_tokens("root").len(), 2);
    assert_eq!(b.host("web001").whm_tokens("root").len(), 1);
}

#[test]
fn a_down_host_refuses_then_comes_back_on_its_address() {
    let env = Env::start(per_host(2, 1));
    let h = env.host("web001");
    let addr = (ip(&h), 2087);
    h.set_faults(Faults {
        down: true,
        ..Faults::default()
    });
    assert!(TcpStream::connect(addr).is_err(), "a down host refuses");
    h.set_faults(Faults::default());
    assert!(TcpStream::connect(addr).is_ok());
    each_host_answers_itself(&env);
}

#[test]
fn a_host_down_from_the_start_keeps_its_address() {
    let mut spec = per_host(2, 1);
    spec.hosts[0].faults.down = true;
    let env = Env::start(spec);
    let h = env.host("web001");
    assert!(TcpStream::connect((ip(&h), 2087)).is_err());
    h.set_faults(Faults::default());
    each_host_answers_itself(&env);
}

#[test]
fn the_inventory_leaves_default_ports_out() {
    let env = Env::start(per_host(2, 2));
    let dir = tempfile::tempdir().unwrap();
    let files = env
        .fleet
        .write_inventory(dir.path(), &InventoryOptions::default())
        .unwrap();
    let inv: toml::Table = toml::from_str(&std::fs::read_to_string(&files.toml).unwrap()).unwrap();
    let hosts = inv["hosts"].as_array().unwrap();
    for (t, h) in hosts.iter().zip(env.fleet.hosts()) {
        assert_eq!(t["address"].as_str(), Some(h.address()));
        assert!(t.get("whm_port").is_none() && t.get("cpanel_port").is_none());
    }
    let csv = std::fs::read_to_string(&files.csv).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "host,address,tls_pin,credential,account");
    let web2 = env.host("web002");
    assert_eq!(
        lines[3],
        format!(
            "web002,{},{},env:WHM_TOKEN,u002a0001",
            web2.address(),
            web2.cert_pin()
        )
    );
}

#[test]
fn names_of_fleets_above_999_hosts_have_five_digits_and_sort() {
    let spec = FleetSpec::uniform(1200, 1);
    assert_eq!(spec.hosts[0].name, "web00001");
    assert_eq!(spec.hosts[1199].name, "web01200");
    assert_eq!(spec.hosts[1199].accounts[0].user, "u01200a0001");
    let names: Vec<&str> = spec.hosts.iter().map(|h| h.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    let part = FleetSpec::uniform_slice(1200, 601..=1200, 1);
    assert_eq!(part.hosts[0].name, "web00601");
    assert_eq!(FleetSpec::uniform(999, 0).hosts[998].name, "web999");
}
