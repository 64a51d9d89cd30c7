//! The written inventory, env file and CA match the running fleet; the big fleet starts.

use std::time::Instant;

use cpanel_sim::{CertMode, Fleet, FleetSpec, InventoryOptions, InventoryTls};

use super::*;

#[test]
fn toml_csv_env_and_ca_match_the_fleet() {
    let env = Env::start(FleetSpec::uniform(2, 3));
    let dir = tempfile::tempdir().unwrap();
    let files = env
        .fleet
        .write_inventory(dir.path(), &InventoryOptions::default())
        .unwrap();

    let inv: toml::Table = toml::from_str(&std::fs::read_to_string(&files.toml).unwrap()).unwrap();
    assert_eq!(
        inv["defaults"]["credential"].as_str(),
        Some("env:WHM_TOKEN")
    );
    let hosts = inv["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 2);
    let web2 = env.host("web002");
    let h = &hosts[1];
    assert_eq!(h["name"].as_str(), Some("web002"));
    assert_eq!(h["address"].as_str(), Some("127.0.0.1"));
    assert_eq!(h["whm_port"].as_integer(), Some(web2.whm_port() as i64));
    assert_eq!(
        h["cpanel_port"].as_integer(),
        Some(web2.cpanel_port() as i64)
    );
    assert_eq!(h["tls_pin"].as_str(), Some(web2.cert_pin().as_str()));
    let accts: Vec<&str> = h["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(accts, vec!["u002a0001", "u002a0002", "u002a0003"]);

    let csv = std::fs::read_to_string(&files.csv).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "host,address,whm_port,cpanel_port,tls_pin,credential,account"
    );
    assert_eq!(lines.len(), 1 + 6);
    assert_eq!(
        lines[4],
        format!(
            "web002,127.0.0.1,{},{},{},env:WHM_TOKEN,u002a0001",
            web2.whm_port(),
            web2.cpanel_port(),
            web2.cert_pin()
        )
    );

    let envfile = std::fs::read_to_string(&files.env).unwrap();
    assert_eq!(envfile, format!("WHM_TOKEN={}\n", env.fleet.root_token()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&files.env).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    assert_eq!(
        std::fs::read_to_string(&files.ca).unwrap(),
        env.fleet.ca_pem()
    );
    // The token in the env file really works.
    let token = envfile.trim().strip_prefix("WHM_TOKEN=").unwrap();
    assert!(web2.whm_token_valid("root", token));
}

#[test]
fn ca_and_star_options() {
    let mut spec = FleetSpec::uniform(2, 2);
    spec.cert_mode = CertMode::CaSigned;
    spec.root_token = Some("FIXEDROOTTOKEN00000000000000000A".to_string());
    let fleet = Fleet::start(spec).unwrap();
    assert_eq!(fleet.root_token(), "FIXEDROOTTOKEN00000000000000000A");
    let dir = tempfile::tempdir().unwrap();
    let opts = InventoryOptions {
        tls: InventoryTls::Ca,
        accounts_star: true,
        credential: "env:SIM_ROOT".to_string(),
    };
    let files = fleet.write_inventory(dir.path(), &opts).unwrap();
    let inv: toml::Table = toml::from_str(&std::fs::read_to_string(&files.toml).unwrap()).unwrap();
    let h = &inv["hosts"].as_array().unwrap()[0];
    assert_eq!(h["tls_ca"].as_str(), Some("ca.pem"));
    assert_eq!(h["accounts"].as_str(), Some("*"));
    assert!(h.get("tls_pin").is_none());
    let csv = std::fs::read_to_string(&files.csv).unwrap();
    assert!(csv.starts_with("host,address,whm_port,cpanel_port,tls_ca,credential,account\n"));
    assert_eq!(csv.lines().count(), 3);
    assert!(
        csv.lines()
            .nth(1)
            .unwrap()
            .ends_with(",ca.pem,env:SIM_ROOT,*")
    );
    assert_eq!(
        std::fs::read_to_string(&files.env).unwrap(),
        "SIM_ROOT=FIXEDROOTTOKEN00000000000000000A\n"
    );
    let insecure = InventoryOptions {
        tls: InventoryTls::Insecure,
        ..InventoryOptions::default()
    };
    let files = fleet.write_inventory(dir.path(), &insecure).unwrap();
    let inv: toml::Table = toml::from_str(&std::fs::read_to_string(&files.toml).unwrap()).unwrap();
    assert_eq!(inv["hosts"][0]["tls_insecure"].as_bool(), Some(true));
}

/// The size the standalone fleet must hold: 200 hosts x 100 accounts. Run with
/// `cargo test -p cpanel-sim --release -- --ignored big_fleet`.
#[test]
#[ignore]
fn big_fleet_starts_and_answers() {
    let t0 = Instant::now();
    let fleet = Fleet::start(FleetSpec::uniform(200, 100)).unwrap();
    let started = t0.elapsed();
    let client = pinned_client(fleet.hosts());
    let auth = format!("whm root:{}", fleet.root_token());
    let t1 = Instant::now();
    for h in fleet.hosts() {
        let v = whm_post(&client, h, Some(&auth), "listaccts", &[]).json();
        assert_eq!(v["data"]["acct"].as_array().unwrap().len(), 100);
    }
    eprintln!(
        "200 hosts x 100 accounts: started in {started:?}, listaccts on every host in {:?}",
        t1.elapsed()
    );
}
