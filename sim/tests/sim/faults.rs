//! Each fault, set in code and from a fault file.

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use cpanel_sim::{Faults, FaultsFile, FleetSpec};

use super::*;

fn env() -> Env {
    Env::start(FleetSpec::uniform(2, 2))
}

#[test]
fn latency_and_jitter_delay_every_request() {
    let env = env();
    let h = env.host("web001");
    h.set_faults(Faults {
        latency: Duration::from_millis(150),
        jitter: Duration::from_millis(50),
        ..Faults::default()
    });
    let start = Instant::now();
    assert_eq!(
        whm_post(&env.client, &h, Some(&env.root_auth()), "version", &[]).status,
        200
    );
    // A lower bound only: a busy machine can only make it slower.
    assert!(start.elapsed() >= Duration::from_millis(150));
}

#[test]
fn error_503_happens_before_anything_is_done() {
    let env = env();
    let h = env.host("web001");
    h.set_faults(Faults {
        error_503_rate: 1.0,
        ..Faults::default()
    });
    let r = uapi_via_whm(
        &env.client,
        &h,
        &env.root_auth(),
        "u001a0001",
        "create_full_access",
        &[("name", "x")],
    );
    assert_eq!(r.status, 503);
    assert!(h.account_tokens("u001a0001").is_empty());
    // Bad credentials are not even looked at.
    assert_eq!(
        whm_post(&env.client, &h, Some("whm root:BAD"), "version", &[]).status,
        503
    );
    assert_eq!(h.stats().failed_auth, 0);
    // A share: 40 requests at 50 % are (all but certainly) mixed.
    h.set_faults(Faults {
        error_503_rate: 0.5,
        ..Faults::default()
    });
    let statuses: Vec<u16> = (0..40)
        .map(|_| whm_post(&env.client, &h, Some(&env.root_auth()), "version", &[]).status)
        .collect();
    assert!(
        statuses.contains(&503) && statuses.contains(&200),
        "{statuses:?}"
    );
    assert!(statuses.iter().all(|s| *s == 503 || *s == 200));
}

#[test]
fn drop_create_answers_loses_even_a_refused_create() {
    let env = env();
    let h = env.host("web001");
    let auth = env.root_auth();
    h.add_account_token("u001a0001", "taken", None);
    h.set_faults(Faults {
        drop_create_answers: 1,
        ..Faults::default()
    });
    let err = try_uapi_via_whm(
        &env.client,
        &h,
        &auth,
        "u001a0001",
        "create_full_access",
        &[("name", "taken")],
    );
    assert!(err.is_err(), "the duplicate's answer is lost too");
    assert_eq!(
        h.account_tokens("u001a0001").len(),
        1,
        "nothing was created"
    );
    assert_eq!(h.faults().drop_create_answers, 0);
    let again = uapi_via_whm(
        &env.client,
        &h,
        &auth,
        "u001a0001",
        "create_full_access",
        &[("name", "taken")],
    );
    assert_eq!(
        again.json()["data"]["uapi"]["status"],
        0,
        "answered normally once used up"
    );
}

#[test]
fn drop_after_create_performs_the_create_then_closes_unanswered() {
    let env = env();
    let h = env.host("web001");
    let auth = env.root_auth();
    h.set_faults(Faults {
        drop_after_create: 2,
        ..Faults::default()
    });
    // Reads and failed creates are answered normally.
    assert_eq!(
        uapi_via_whm(&env.client, &h, &auth, "u001a0001", "list", &[]).status,
        200
    );
    let bad = uapi_via_whm(
        &env.client,
        &h,
        &auth,
        "u001a0001",
        "create_full_access",
        &[("name", "bad name")],
    );
    assert_eq!(bad.json()["data"]["uapi"]["status"], 0);
    let err = try_uapi_via_whm(
        &env.client,
        &h,
        &auth,
        "u001a0001",
        "create_full_access",
        &[("name", "lost")],
    );
    assert!(err.is_err(), "no answer expected");
    assert_eq!(
        h.account_tokens("u001a0001")[0].name,
        "lost",
        "the create was performed"
    );
    let err = try_whm_post(
        &env.client,
        &h,
        Some(&auth),
        "api_token_create",
        &[("token_name", "lost-whm")],
    );
    assert!(err.is_err());
    assert!(h.whm_tokens("root").iter().any(|t| t.name == "lost-whm"));
    assert_eq!(h.faults().drop_after_create, 0);
    let ok = uapi_via_whm(
        &env.client,
        &h,
        &auth,
        "u001a0001",
        "create_full_access",
        &[("name", "kept")],
    );
    assert_eq!(ok.json()["data"]["uapi"]["status"], 1);
}

#[test]
fn hang_never_answers() {
    let env = env();
    let h = env.host("web001");
    h.set_faults(Faults {
        hang: true,
        ..Faults::default()
    });
    let c = pinned_builder(env.fleet.hosts())
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let e = try_whm_post(&c, &h, Some(&env.root_auth()), "version", &[])
        .err()
        .expect("a timeout");
    assert!(e.is_timeout(), "{e:?}");
}

#[test]
fn html_login_page_with_200() {
    let env = env();
    let h = env.host("web001");
    h.set_faults(Faults {
        html_login: true,
        ..Faults::default()
    });
    let r = whm_post(&env.client, &h, Some(&env.root_auth()), "version", &[]);
    assert_eq!(r.status, 200);
    assert!(r.content_type.starts_with("text/html"));
    assert!(r.body.contains("<form") && r.body.contains("password"));
    assert!(serde_json::from_str::<serde_json::Value>(&r.body).is_err());
}

#[test]
fn redirect_to_another_host() {
    let env = env();
    let h = env.host("web001");
    let target = format!("{}/json-api/version", env.host("web002").whm_url());
    h.set_faults(Faults {
        redirect_to: Some(target.clone()),
        ..Faults::default()
    });
    let r = whm_post(&env.client, &h, Some(&env.root_auth()), "version", &[]);
    assert_eq!(r.status, 302);
    assert_eq!(r.headers["location"], target.as_str());
    assert_eq!(
        env.host("web002").stats().total_requests,
        0,
        "the client did not follow"
    );
}

#[test]
fn endless_body_never_ends() {
    let env = env();
    let h = env.host("web001");
    h.set_faults(Faults {
        endless_body: true,
        ..Faults::default()
    });
    let r = env
        .client
        .post(format!("{}/json-api/version", h.whm_url()))
        .header("Authorization", env.root_auth())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.content_length().is_none());
    let mut buf = Vec::new();
    let n = r.take(3 * 1024 * 1024).read_to_end(&mut buf).unwrap();
    assert_eq!(n, 3 * 1024 * 1024, "still going after 3 MiB");
    assert!(buf.starts_with(b"{\"data\""));
}

#[test]
fn oversized_body_is_json_looking_and_exactly_that_long() {
    let env = env();
    let h = env.host("web001");
    let size = 5 * 1024 * 1024 + 7;
    h.set_faults(Faults {
        oversized_body: Some(size),
        ..Faults::default()
    });
    let r = whm_post(&env.client, &h, Some(&env.root_auth()), "version", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), size);
    assert!(r.body.starts_with("{\"data\":\"") && r.body.ends_with("\"}"));
}

#[test]
fn reset_mid_body_breaks_the_read() {
    let env = env();
    let h = env.host("web001");
    h.set_faults(Faults {
        reset_mid_body: true,
        ..Faults::default()
    });
    let r = env
        .client
        .post(format!("{}/json-api/version", h.whm_url()))
        .header("Authorization", env.root_auth())
        .send();
    match r {
        Err(_) => {}
        Ok(resp) => {
            assert_eq!(resp.content_length(), Some(4096));
            assert!(resp.text().is_err(), "the body must not complete");
        }
    }
}

#[test]
fn down_refuses_connections_until_cleared() {
    let env = env();
    let h = env.host("web001");
    let auth = env.root_auth();
    assert_eq!(
        whm_post(&env.client, &h, Some(&auth), "version", &[]).status,
        200
    );
    h.set_faults(Faults {
        down: true,
        ..Faults::default()
    });
    for port in [h.whm_port(), h.cpanel_port()] {
        let e = TcpStream::connect(("127.0.0.1", port)).expect_err("refused");
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
    }
    // The pooled keep-alive connection is dropped at its next request too.
    assert!(try_whm_post(&env.client, &h, Some(&auth), "version", &[]).is_err());
    h.set_faults(Faults::default());
    let fresh = pinned_client(env.fleet.hosts());
    assert_eq!(
        whm_post(&fresh, &h, Some(&auth), "version", &[]).status,
        200
    );
    assert_eq!(
        uapi_post(&fresh, &h, "cpanel x:y", "list", &[]).status,
        401,
        "the cPanel port is back"
    );
}

#[test]
fn down_at_start_and_faults_from_a_file() {
    let text = "[default]\nlatency = \"1ms\"\n[hosts.web002]\ndown = true\n[hosts.web001]\nerror_503_rate = 1.0\n";
    let file = FaultsFile::parse(text, "faults.toml").unwrap();
    let mut spec = FleetSpec::uniform(2, 1);
    spec.apply_faults(&file).unwrap();
    let env = Env::start(spec);
    let down = env.host("web002");
    assert!(down.faults().down);
    assert!(TcpStream::connect(("127.0.0.1", down.whm_port())).is_err());
    let h = env.host("web001");
    assert_eq!(
        whm_post(&env.client, &h, Some(&env.root_auth()), "version", &[]).status,
        503
    );
    // Applied to a running fleet: web002 comes up, web001 heals.
    let healed = FaultsFile::parse("[default]\nlatency = \"1ms\"\n", "f2.toml").unwrap();
    env.fleet.apply_faults(&healed).unwrap();
    assert_eq!(
        whm_post(&env.client, &down, Some(&env.root_auth()), "version", &[]).status,
        200
    );
    assert_eq!(
        whm_post(&env.client, &h, Some(&env.root_auth()), "version", &[]).status,
        200
    );
    assert_eq!(h.faults().latency, Duration::from_millis(1));
    let bad = FaultsFile::parse("[hosts.web404]\nhang = true\n", "f3.toml").unwrap();
    assert!(env.fleet.apply_faults(&bad).is_err());
}

#[test]
fn fail_routes_answers_one_route_with_a_status_and_does_nothing() {
    let env = env();
    let h = env.host("web001");
    let auth = env.root_auth();
    let account = h.accounts()[0].clone();
    let secret = h.add_account_token(&account, "keep", None);
    let mut fail = std::collections::BTreeMap::new();
    fail.insert("cpanel/Tokens/list".to_string(), 401u16);
    fail.insert("whm/uapi_cpanel/Tokens/revoke".to_string(), 500u16);
    h.set_faults(Faults {
        fail_routes: fail,
        ..Faults::default()
    });
    // The named route on the cPanel port is refused even with a valid token, and feeds no cPHulk.
    let own = format!("cpanel {account}:{secret}");
    assert_eq!(uapi_post(&env.client, &h, &own, "list", &[]).status, 401);
    assert_eq!(h.stats().failed_auth, 0);
    // The same function through WHM is another route: answered.
    assert_eq!(
        uapi_via_whm(&env.client, &h, &auth, &account, "list", &[]).status,
        200
    );
    // A failed revoke revokes nothing.
    let r = uapi_via_whm(
        &env.client,
        &h,
        &auth,
        &account,
        "revoke",
        &[("name", "keep")],
    );
    assert_eq!(r.status, 500);
    assert!(h.token_valid(&account, &secret));
    assert_eq!(h.stats().count("whm/uapi_cpanel/Tokens/revoke"), 1);
    // From a fault file.
    let file = FaultsFile::parse(
        "[hosts.web001]\nfail_routes = { \"whm/version\" = 503 }\n",
        "f.toml",
    )
    .unwrap();
    env.fleet.apply_faults(&file).unwrap();
    assert_eq!(
        whm_post(&env.client, &h, Some(&auth), "version", &[]).status,
        503
    );
    assert_eq!(
        whm_post(
            &env.client,
            &env.host("web002"),
            Some(&auth),
            "version",
            &[]
        )
        .status,
        200
    );
}
