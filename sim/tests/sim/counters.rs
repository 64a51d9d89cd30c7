//! The counters tests rely on: per-endpoint requests, in-flight peak, failed auth, cPHulk blocks,
//! handshakes and connections, mutations, reset.

use std::time::Duration;

use cpanel_sim::{Faults, FleetSpec};

use super::*;

#[test]
fn per_endpoint_counts_and_mutations() {
    let env = Env::start(FleetSpec::uniform(1, 2));
    let h = env.host("web001");
    let auth = env.root_auth();
    whm_post(&env.client, &h, Some(&auth), "version", &[]);
    whm_post(&env.client, &h, Some(&auth), "listaccts", &[]);
    whm_post(
        &env.client,
        &h,
        Some(&auth),
        "api_token_create",
        &[("token_name", "a")],
    );
    whm_post(&env.client, &h, Some(&auth), "api_token_list", &[]);
    whm_post(
        &env.client,
        &h,
        Some(&auth),
        "api_token_revoke",
        &[("token_name", "a")],
    );
    let token = create_token(&env, &h, "u001a0001", "t1");
    uapi_via_whm(&env.client, &h, &auth, "u001a0001", "list", &[]);
    uapi_via_whm(
        &env.client,
        &h,
        &auth,
        "u001a0001",
        "rename",
        &[("name", "t1"), ("new_name", "t2")],
    );
    let cp = format!("cpanel u001a0001:{token}");
    uapi_post(&env.client, &h, &cp, "list", &[]);
    uapi_post(&env.client, &h, &cp, "revoke", &[("name", "nothing")]);
    let s = h.stats();
    for key in [
        "whm/version",
        "whm/listaccts",
        "whm/api_token_create",
        "whm/api_token_list",
        "whm/api_token_revoke",
        "whm/uapi_cpanel/Tokens/create_full_access",
        "whm/uapi_cpanel/Tokens/list",
        "whm/uapi_cpanel/Tokens/rename",
        "cpanel/Tokens/list",
        "cpanel/Tokens/revoke",
    ] {
        assert_eq!(s.count(key), 1, "{key}: {:?}", s.requests);
    }
    assert_eq!(s.total_requests, 10);
    assert_eq!(s.mutations(), 5);
    assert_eq!(s.count("whm/nothing"), 0);
    h.reset_stats();
    let s = h.stats();
    assert_eq!(
        (
            s.total_requests,
            s.mutations(),
            s.connections,
            s.tls_handshakes
        ),
        (0, 0, 0, 0)
    );
}

#[test]
fn handshakes_and_connections_count_per_client() {
    let env = Env::start(FleetSpec::uniform(1, 1));
    let h = env.host("web001");
    for _ in 0..3 {
        let c = pinned_client(env.fleet.hosts());
        whm_post(&c, &h, Some(&env.root_auth()), "version", &[]);
        whm_post(&c, &h, Some(&env.root_auth()), "version", &[]);
    }
    let s = h.stats();
    assert_eq!(s.connections, 3);
    assert_eq!(s.tls_handshakes, 3);
    assert_eq!(s.total_requests, 6);
    // A plain TCP connection that never speaks TLS counts as a connection, not a handshake.
    drop(std::net::TcpStream::connect(("127.0.0.1", h.cpanel_port())).unwrap());
    assert!(wait_until(250, || h.stats().connections == 4));
    assert_eq!(h.stats().tls_handshakes, 3);
}

#[test]
fn max_in_flight_counts_both_ports() {
    let env = Env::start(FleetSpec::uniform(1, 1));
    let h = env.host("web001");
    h.set_faults(Faults {
        hang: true,
        ..Faults::default()
    });
    let auth = env.root_auth();
    let mut threads = Vec::new();
    for i in 0..3 {
        let c = pinned_builder(env.fleet.hosts())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let h = h.clone();
        let auth = auth.clone();
        threads.push(std::thread::spawn(move || {
            if i == 0 {
                let _ = c
                    .post(format!("{}/execute/Tokens/list", h.cpanel_url()))
                    .send();
            } else {
                let _ = try_whm_post(&c, &h, Some(&auth), "version", &[]);
            }
        }));
    }
    // Hanging requests stay in flight, so the peak is exactly 3 once all three arrived.
    assert!(wait_until(1000, || h.stats().total_requests == 3));
    assert_eq!(h.stats().max_in_flight, 3);
    // Shutting the fleet down releases the hung clients.
    env.fleet.shutdown();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn failed_auth_and_blocked_are_counted() {
    let env = Env::start(FleetSpec::uniform(1, 1));
    let h = env.host("web001");
    for _ in 0..7 {
        whm_post(&env.client, &h, Some("whm root:BAD"), "version", &[]);
    }
    let s = h.stats();
    assert_eq!(s.failed_auth, 5);
    assert_eq!(s.blocked, 2);
}
