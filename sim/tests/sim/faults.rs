//! Each fault, set in code and from a fault file.

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use cpanel_sim::{EchoAuth, Faults, FaultsFile, FleetSpec};

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

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn with(f: impl FnOnce(&mut Faults)) -> Faults {
    let mut faults = Faults::default();
    f(&mut faults);
    faults
}

/// The legacy `json-api/cpanel` route (wrapped UAPI answer) for one Tokens function.
fn legacy(
    env: &Env,
    h: &cpanel_sim::SimHost,
    auth: &str,
    account: &str,
    function: &str,
    form: &[(&str, &str)],
) -> Reply {
    let mut fields = vec![
        ("cpanel_jsonapi_user", account),
        ("cpanel_jsonapi_module", "Tokens"),
        ("cpanel_jsonapi_func", function),
        ("cpanel_jsonapi_apiversion", "3"),
    ];
    fields.extend_from_slice(form);
    whm_post(&env.client, h, Some(auth), "cpanel", &fields)
}

#[test]
fn echo_auth_401_quotes_the_header_in_a_plain_text_refusal() {
    let mut spec = FleetSpec::uniform(1, 1);
    // "401" decides the status whatever the host's usual one.
    spec.hosts[0].auth_failure_status = 403;
    let env = Env::start(spec);
    let h = env.host("web001");
    h.set_faults(with(|f| f.echo_auth = Some(EchoAuth::Unauthorized)));
    let bad = "whm root:WRONGWRONGWRONGWRONGWRONG1234567";
    let r = whm_post(&env.client, &h, Some(bad), "version", &[]);
    assert_eq!(r.status, 401);
    assert!(
        r.content_type.starts_with("text/plain"),
        "{}",
        r.content_type
    );
    assert!(
        r.body.contains(&format!("Authorization: {bad}")),
        "{}",
        r.body
    );
    assert_eq!(h.stats().failed_auth, 1, "still a refused login for cPHulk");
    // No header: nothing to echo, the usual answer.
    let r = whm_post(&env.client, &h, None, "version", &[]);
    assert_eq!(r.status, 401);
    assert!(!r.body.contains("Authorization:"), "{}", r.body);
    // A valid credential refused by a proxy route: the real root credential comes back.
    h.set_faults(with(|f| {
        f.echo_auth = Some(EchoAuth::Unauthorized);
        f.fail_routes.insert("whm/version".into(), 401);
    }));
    let r = whm_post(&env.client, &h, Some(&env.root_auth()), "version", &[]);
    assert_eq!(r.status, 401);
    assert!(
        r.body
            .contains(&format!("Authorization: {}", env.root_auth())),
        "{}",
        r.body
    );
    // A successful call is not touched.
    assert_eq!(
        whm_post(&env.client, &h, Some(&env.root_auth()), "listaccts", &[]).status,
        200
    );
}

#[test]
fn echo_auth_403_quotes_the_header_in_a_json_error() {
    let mut spec = FleetSpec::uniform(1, 2);
    spec.hosts[0].accounts[1].password = Some("correct horse battery staple".into());
    let env = Env::start(spec);
    let h = env.host("web001");
    let (a, b) = ("u001a0001", "u001a0002");
    let own = create_token(&env, &h, a, "own");
    h.set_faults(with(|f| f.echo_auth = Some(EchoAuth::Forbidden)));
    let check = |r: &Reply, header: &str| {
        assert_eq!(r.status, 403, "{}", r.body);
        let v = r.json();
        let quoted = format!("Authorization: {header}");
        let error = v["cpanelresult"]["error"].as_str().unwrap();
        assert!(error.contains(&quoted), "{}", r.body);
        assert!(
            v["cpanelresult"]["data"]["reason"]
                .as_str()
                .unwrap()
                .contains(&quoted)
        );
        assert_eq!(v["cpanelresult"]["data"]["result"], "0");
    };
    // A wrong token on the cPanel port.
    let bad = format!("cpanel {a}:{}", "Z".repeat(32));
    check(&uapi_post(&env.client, &h, &bad, "list", &[]), &bad);
    // A wrong password (Basic).
    use base64::Engine;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{b}:wrong password"))
    );
    check(&uapi_post(&env.client, &h, &basic, "list", &[]), &basic);
    // A valid account token on the WHM port: cPanel's "UAPI only" refusal, echoed.
    let acct = format!("cpanel {a}:{own}");
    let r = whm_post(&env.client, &h, Some(&acct), "version", &[]);
    check(&r, &acct);
    assert!(r.body.contains("UAPI or API 2 calls only"), "{}", r.body);
    // The right password still works.
    let good = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{b}:correct horse battery staple"))
    );
    assert_eq!(uapi_post(&env.client, &h, &good, "list", &[]).status, 200);
    // fail_routes 403 with the valid root credential.
    h.set_faults(with(|f| {
        f.echo_auth = Some(EchoAuth::Forbidden);
        f.fail_routes
            .insert("whm/uapi_cpanel/Tokens/create_full_access".into(), 403);
    }));
    let r = uapi_via_whm(
        &env.client,
        &h,
        &env.root_auth(),
        a,
        "create_full_access",
        &[("name", "x")],
    );
    check(&r, &env.root_auth());
    assert_eq!(h.account_tokens(a).len(), 1, "nothing created");
}

#[test]
fn echo_auth_reason_quotes_the_header_in_metadata_reason_and_refuses_every_create() {
    let env = Env::start(FleetSpec::uniform(1, 1));
    let h = env.host("web001");
    let a = "u001a0001";
    let root = env.root_auth();
    let own = create_token(&env, &h, a, "own");
    let acct = format!("cpanel {a}:{own}");
    h.set_faults(with(|f| f.echo_auth = Some(EchoAuth::Reason)));
    // A refused login: the host's usual status, a WHM failure envelope quoting the header.
    let bad = "whm root:WRONGWRONGWRONGWRONGWRONG1234567";
    let r = whm_post(&env.client, &h, Some(bad), "version", &[]);
    assert_eq!(r.status, 401);
    let v = r.json();
    assert_eq!(v["metadata"]["result"], 0);
    assert!(
        v["metadata"]["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("Authorization: {bad}")),
        "{}",
        r.body
    );
    // Every create route refuses, quoting the (valid) credential, and creates nothing.
    let quoted = |header: &str| format!("Authorization: {header}");
    let r = uapi_via_whm(
        &env.client,
        &h,
        &root,
        a,
        "create_full_access",
        &[("name", "n1")],
    );
    let v = r.json();
    assert_eq!((r.status, v["metadata"]["result"].clone()), (200, 0.into()));
    assert!(
        v["metadata"]["reason"]
            .as_str()
            .unwrap()
            .contains(&quoted(&root))
    );
    let r = whm_post(
        &env.client,
        &h,
        Some(&root),
        "api_token_create",
        &[("token_name", "w1")],
    );
    let v = r.json();
    assert_eq!(v["metadata"]["result"], 0);
    let reason = v["metadata"]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("The system failed to create the API token: "),
        "{reason}"
    );
    assert!(reason.contains(&quoted(&root)), "{reason}");
    let r = uapi_post(
        &env.client,
        &h,
        &acct,
        "create_full_access",
        &[("name", "n2")],
    );
    let v = r.json();
    assert_eq!(v["status"], 0);
    assert!(
        v["errors"][0].as_str().unwrap().contains(&quoted(&acct)),
        "{}",
        r.body
    );
    let r = legacy(&env, &h, &root, a, "create_full_access", &[("name", "n3")]);
    let v = r.json();
    assert_eq!(v["result"]["status"], 0);
    assert!(
        v["result"]["errors"][0]
            .as_str()
            .unwrap()
            .contains(&quoted(&root))
    );
    assert_eq!(h.account_tokens(a).len(), 1, "no create was performed");
    assert_eq!(h.whm_tokens("root").len(), 1);
    // Reads work.
    let r = uapi_via_whm(&env.client, &h, &root, a, "list", &[]);
    assert_eq!(r.json()["data"]["uapi"]["status"], 1);
}

#[test]
fn inner_error_after_create_performs_the_create_and_quotes_the_secret() {
    let env = Env::start(FleetSpec::uniform(1, 1));
    let h = env.host("web001");
    let a = "u001a0001";
    let root = env.root_auth();
    let own = create_token(&env, &h, a, "own");
    h.set_faults(with(|f| f.inner_error_after_create = 3));
    // A refused create (duplicate) uses nothing up.
    let dup = uapi_via_whm(
        &env.client,
        &h,
        &root,
        a,
        "create_full_access",
        &[("name", "own")],
    );
    assert!(
        dup.json()["data"]["uapi"]["errors"][0]
            .as_str()
            .unwrap()
            .contains("conflicting")
    );
    assert_eq!(h.faults().inner_error_after_create, 3);
    let secret_of = |owner: cpanel_sim::TokenOwner, name: &str| {
        h.live_tokens()
            .into_iter()
            .find(|t| t.owner == owner && t.name == name)
            .unwrap_or_else(|| panic!("{name} was created"))
            .secret
    };
    // uapi_cpanel: outer result 1, inner status 0.
    let r = uapi_via_whm(
        &env.client,
        &h,
        &root,
        a,
        "create_full_access",
        &[("name", "e1")],
    );
    let v = r.json();
    assert_eq!(v["metadata"]["result"], 1);
    assert_eq!(v["data"]["uapi"]["status"], 0);
    assert!(v["data"]["uapi"]["data"].is_null());
    let secret = secret_of(cpanel_sim::TokenOwner::Account(a.into()), "e1");
    let error = v["data"]["uapi"]["errors"][0].as_str().unwrap();
    assert!(
        error.contains(&format!("Internal error after saving token {secret}")),
        "{error}"
    );
    assert!(h.token_valid(a, &secret), "the token exists and works");
    // WHM api_token_create: metadata.result 0.
    let r = whm_post(
        &env.client,
        &h,
        Some(&root),
        "api_token_create",
        &[("token_name", "w1")],
    );
    let v = r.json();
    assert_eq!(v["metadata"]["result"], 0);
    let secret = secret_of(cpanel_sim::TokenOwner::WhmUser("root".into()), "w1");
    assert!(v["metadata"]["reason"].as_str().unwrap().contains(&secret));
    assert!(h.whm_token_valid("root", &secret));
    // The cPanel port: flat UAPI status 0.
    let r = uapi_post(
        &env.client,
        &h,
        &format!("cpanel {a}:{own}"),
        "create_full_access",
        &[("name", "e2")],
    );
    let v = r.json();
    assert_eq!(v["status"], 0);
    let secret = secret_of(cpanel_sim::TokenOwner::Account(a.into()), "e2");
    assert!(v["errors"][0].as_str().unwrap().contains(&secret));
    assert_eq!(h.faults().inner_error_after_create, 0);
    // Used up: a normal answer.
    let r = legacy(&env, &h, &root, a, "create_full_access", &[("name", "ok")]);
    assert_eq!(r.json()["result"]["status"], 1);
}

#[test]
fn oversized_after_create_makes_the_token_and_answers_past_the_cap() {
    let env = Env::start(FleetSpec::uniform(1, 1));
    let h = env.host("web001");
    let a = "u001a0001";
    h.set_faults(with(|f| f.oversized_after_create = 2));
    let r = uapi_via_whm(
        &env.client,
        &h,
        &env.root_auth(),
        a,
        "create_full_access",
        &[("name", "big")],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), cpanel_sim::OVERSIZED_CREATE_BYTES);
    assert!(r.body.len() > 4 << 20, "past tokenfleet's body cap");
    let v = r.json();
    let token = v["data"]["uapi"]["data"]["token"].as_str().unwrap();
    assert!(
        h.token_valid(a, token),
        "a complete answer, with a real token"
    );
    let r = whm_post(
        &env.client,
        &h,
        Some(&env.root_auth()),
        "api_token_create",
        &[("token_name", "bigw")],
    );
    assert_eq!(r.body.len(), cpanel_sim::OVERSIZED_CREATE_BYTES);
    assert!(h.whm_tokens("root").iter().any(|t| t.name == "bigw"));
    // Used up.
    let r = uapi_via_whm(
        &env.client,
        &h,
        &env.root_auth(),
        a,
        "create_full_access",
        &[("name", "small")],
    );
    assert!(r.body.len() < 4096);
    assert_eq!(h.faults().oversized_after_create, 0);
}

#[test]
fn odd_token_after_create_rotates_through_four_shapes() {
    let env = Env::start(FleetSpec::uniform(1, 1));
    let h = env.host("web001");
    let a = "u001a0001";
    h.set_faults(with(|f| f.odd_token_after_create = 4));
    let mut shapes = Vec::new();
    for i in 0..5 {
        let name = format!("odd{i}");
        let r = uapi_via_whm(
            &env.client,
            &h,
            &env.root_auth(),
            a,
            "create_full_access",
            &[("name", &name)],
        );
        let v = r.json();
        assert_eq!(
            v["data"]["uapi"]["status"], 1,
            "a well-formed success envelope"
        );
        let secret = h
            .live_tokens()
            .into_iter()
            .find(|t| t.name == name)
            .expect("created")
            .secret;
        let token = v["data"]["uapi"]["data"]["token"].clone();
        if let Some(t) = token.as_str() {
            assert_eq!(t == secret, i == 4, "{i}: {t}");
            assert_eq!(h.token_valid(a, t), i == 4);
        }
        shapes.push(token);
    }
    assert!(shapes[0].is_u64(), "{}", shapes[0]);
    assert!(shapes[1].is_object(), "{}", shapes[1]);
    let lower = shapes[2].as_str().unwrap();
    assert!(lower.len() == 32 && lower.bytes().any(|b| b.is_ascii_lowercase()));
    assert_eq!(shapes[3].as_str().unwrap().len(), 40);
    assert_eq!(
        shapes[4].as_str().unwrap().len(),
        32,
        "used up: normal again"
    );
    assert_eq!(h.account_tokens(a).len(), 5, "every create was performed");
}

#[test]
fn clock_offset_shifts_every_recorded_create_time() {
    let env = Env::start(FleetSpec::uniform(1, 1));
    let h = env.host("web001");
    let a = "u001a0001";
    let root = env.root_auth();
    create_token(&env, &h, a, "before");
    h.set_faults(with(|f| f.clock_offset = -900));
    let r = uapi_via_whm(
        &env.client,
        &h,
        &root,
        a,
        "create_full_access",
        &[("name", "behind")],
    );
    let answered = r.json()["data"]["uapi"]["data"]["create_time"]
        .as_i64()
        .unwrap();
    let expect = now() - 900;
    assert!((answered - expect).abs() <= 5, "{answered} vs {expect}");
    let r = whm_post(
        &env.client,
        &h,
        Some(&root),
        "api_token_create",
        &[("token_name", "wbehind")],
    );
    let whm_time = r.json()["data"]["create_time"].as_i64().unwrap();
    assert!((whm_time - expect).abs() <= 5);
    // Listings report what was recorded; the earlier token keeps its (real) time.
    let list = uapi_via_whm(&env.client, &h, &root, a, "list", &[]).json();
    let times: std::collections::BTreeMap<String, i64> = list["data"]["uapi"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["create_time"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(times["behind"], answered);
    assert!((times["before"] - now()).abs() <= 5);
    let whm = whm_post(&env.client, &h, Some(&root), "api_token_list", &[]).json();
    assert_eq!(whm["data"]["tokens"]["wbehind"]["create_time"], whm_time);
    // Ahead works too.
    h.set_faults(with(|f| f.clock_offset = 3600));
    let t = create_token(&env, &h, a, "ahead");
    let rec = h.live_tokens().into_iter().find(|x| x.secret == t).unwrap();
    assert!((rec.create_time - (now() + 3600)).abs() <= 5);
}

#[test]
fn drop_create_answers_covers_every_create_route_and_a_lost_duplicate_changes_nothing() {
    let env = Env::start(FleetSpec::uniform(1, 1));
    let h = env.host("web001");
    let a = "u001a0001";
    let root = env.root_auth();
    let own = create_token(&env, &h, a, "taken");
    h.add_whm_token("root", "taken-whm");
    let acct = format!("cpanel {a}:{own}");
    let snapshot = || (h.live_tokens(), h.revoked_tokens());
    let before = snapshot();
    h.set_faults(with(|f| f.drop_create_answers = 3));
    // WHM scope: a duplicate whose answer is lost.
    assert!(
        try_whm_post(
            &env.client,
            &h,
            Some(&root),
            "api_token_create",
            &[("token_name", "taken-whm")],
        )
        .is_err()
    );
    // The account's own create on the cPanel port: a duplicate, lost.
    let lost = env
        .client
        .post(format!(
            "{}/execute/Tokens/create_full_access",
            h.cpanel_url()
        ))
        .form(&[("name", "taken")])
        .header("Authorization", &acct)
        .send()
        .and_then(|r| r.text());
    assert!(lost.is_err(), "no answer expected");
    assert_eq!(
        snapshot(),
        before,
        "lost duplicates leave the state unchanged"
    );
    // A performed WHM-scope create whose answer is lost: the token exists.
    assert!(
        try_whm_post(
            &env.client,
            &h,
            Some(&root),
            "api_token_create",
            &[("token_name", "made-whm")],
        )
        .is_err()
    );
    assert!(h.whm_tokens("root").iter().any(|t| t.name == "made-whm"));
    assert_eq!(h.faults().drop_create_answers, 0);
    // Non-create calls never use the counter.
    h.set_faults(with(|f| f.drop_create_answers = 1));
    assert_eq!(uapi_post(&env.client, &h, &acct, "list", &[]).status, 200);
    assert_eq!(h.faults().drop_create_answers, 1);
}

#[test]
fn live_and_revoked_tokens_carry_their_secrets() {
    let env = Env::start(FleetSpec::uniform(2, 1));
    let h = env.host("web001");
    let a = "u001a0001";
    let root = env.root_auth();
    let keep = create_token(&env, &h, a, "keep");
    let gone = create_token(&env, &h, a, "gone");
    let r = whm_post(
        &env.client,
        &h,
        Some(&root),
        "api_token_create",
        &[("token_name", "w")],
    );
    let w = r.json()["data"]["token"].as_str().unwrap().to_string();
    uapi_via_whm(&env.client, &h, &root, a, "revoke", &[("name", "gone")]);
    whm_post(
        &env.client,
        &h,
        Some(&root),
        "api_token_revoke",
        &[("token_name", "w")],
    );
    let live = h.live_tokens();
    let find = |s: &str| live.iter().find(|t| t.secret == s);
    let k = find(&keep).expect("live");
    assert_eq!(
        (k.host.as_str(), &k.owner, k.name.as_str()),
        ("web001", &cpanel_sim::TokenOwner::Account(a.into()), "keep")
    );
    assert!(
        find(env.fleet.root_token()).is_some(),
        "the root token is a live token"
    );
    assert!(find(&gone).is_none() && find(&w).is_none());
    let revoked = h.revoked_tokens();
    assert_eq!(revoked.len(), 2);
    assert_eq!(
        (revoked[0].name.as_str(), revoked[0].secret.as_str()),
        ("gone", gone.as_str())
    );
    assert_eq!(
        revoked[1].owner,
        cpanel_sim::TokenOwner::WhmUser("root".into())
    );
    assert_eq!(revoked[1].secret, w);
    // Fleet-wide views.
    assert_eq!(env.fleet.revoked_tokens().len(), 2);
    assert_eq!(
        env.fleet.live_tokens().len(),
        live.len() + 1,
        "web002's root token"
    );
    let all = env.fleet.known_secrets();
    for s in [&keep, &gone, &w, &env.fleet.root_token().to_string()] {
        assert!(all.contains(s));
    }
}

#[test]
fn the_new_fault_keys_come_from_a_fault_file_and_typos_are_refused() {
    let text = "[default]\nclock_offset = -900\n[hosts.web001]\necho_auth = \"reason\"\ninner_error_after_create = 2\noversized_after_create = 1\nodd_token_after_create = 3\n[hosts.web002]\necho_auth = 403\n";
    let file = FaultsFile::parse(text, "f.toml").unwrap();
    let a = file.for_host("web001").unwrap();
    assert_eq!(a.echo_auth, Some(EchoAuth::Reason));
    assert_eq!(
        (
            a.inner_error_after_create,
            a.oversized_after_create,
            a.odd_token_after_create,
            a.clock_offset
        ),
        (2, 1, 3, -900)
    );
    assert_eq!(
        file.for_host("web002").unwrap().echo_auth,
        Some(EchoAuth::Forbidden)
    );
    assert_eq!(file.for_host("web003").unwrap().echo_auth, None);
    for (bad, needle) in [
        ("echo_auth = \"loud\"", "loud"),
        ("echo_auth = 500", "500"),
        ("clock_offset = 999999999999", "ten years"),
        ("clock_offset = \"-15m\"", "clock_offset"),
        ("odd_token_after_create = -1", "odd_token_after_create"),
    ] {
        let e = FaultsFile::parse(&format!("[hosts.web001]\n{bad}\n"), "f.toml")
            .err()
            .unwrap_or_else(|| panic!("{bad} accepted"));
        assert!(e.to_string().contains(needle), "{bad}: {e}");
    }
}

#[test]
fn hang_accept_holds_the_tcp_connection_without_starting_tls() {
    let env = env();
    let h = env.host("web001");
    h.set_faults(Faults {
        hang_accept: true,
        ..Faults::default()
    });
    // The connection is accepted, but a ClientHello is never answered and the socket stays open.
    let mut raw = TcpStream::connect(("127.0.0.1", h.whm_port())).unwrap();
    raw.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    std::io::Write::write_all(&mut raw, b"\x16\x03\x01\x00\x05hello").unwrap();
    let mut byte = [0u8; 1];
    let e = raw.read(&mut byte).expect_err("no answer and no close");
    assert!(
        matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{e:?}"
    );
    // A real client times out in the handshake, on either port.
    let c = pinned_builder(env.fleet.hosts())
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let e = try_whm_post(&c, &h, Some(&env.root_auth()), "version", &[])
        .err()
        .expect("a timeout");
    assert!(e.is_timeout(), "{e:?}");
    let e = c
        .post(format!("{}/execute/Tokens/list", h.cpanel_url()))
        .send()
        .expect_err("a timeout");
    assert!(e.is_timeout(), "{e:?}");
    assert!(wait_until(100, || h.stats().connections >= 3));
    let s = h.stats();
    assert_eq!(s.tls_handshakes, 0);
    assert_eq!(s.total_requests, 0);
    // Cleared: new connections are served (the held ones stay held).
    h.set_faults(Faults::default());
    let fresh = pinned_client(env.fleet.hosts());
    assert_eq!(
        whm_post(&fresh, &h, Some(&env.root_auth()), "version", &[]).status,
        200
    );
    assert_eq!(h.stats().tls_handshakes, 1);
}

#[test]
fn drip_answers_normally_one_byte_at_a_time() {
    let env = env();
    let h = env.host("web001");
    let auth = env.root_auth();
    let normal = whm_post(&env.client, &h, Some(&auth), "version", &[]);
    let drip = Duration::from_millis(3);
    h.set_faults(Faults {
        drip,
        ..Faults::default()
    });
    let fresh = pinned_client(env.fleet.hosts());
    let start = Instant::now();
    let slow = whm_post(&fresh, &h, Some(&auth), "version", &[]);
    let took = start.elapsed();
    assert_eq!(
        (slow.status, &slow.content_type, &slow.body),
        (normal.status, &normal.content_type, &normal.body)
    );
    // A lower bound only: the head goes at once, each body byte waits `drip`.
    assert!(
        took >= drip * slow.body.len() as u32,
        "{took:?} for {} bytes",
        slow.body.len()
    );
    // Refusals drip too, and mutations are performed as usual.
    assert_eq!(
        whm_post(&fresh, &h, Some("whm root:BAD"), "version", &[]).status,
        401
    );
    let r = uapi_via_whm(
        &fresh,
        &h,
        &auth,
        "u001a0001",
        "create_full_access",
        &[("name", "slow")],
    );
    let secret = r.json()["data"]["uapi"]["data"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(h.token_valid("u001a0001", &secret));
}

#[test]
fn drip_stops_when_the_client_goes_away() {
    let env = env();
    let h = env.host("web001");
    h.set_faults(Faults {
        drip: Duration::from_millis(50),
        ..Faults::default()
    });
    let c = pinned_builder(env.fleet.hosts())
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    // The head comes at once; the body, a byte per 50 ms, outlasts the client's timeout.
    let e = c
        .post(format!("{}/json-api/version", h.whm_url()))
        .form(&[("api.version", "1")])
        .header("Authorization", env.root_auth())
        .send()
        .and_then(|r| r.text())
        .expect_err("a timeout: the body alone takes seconds");
    assert!(e.is_timeout(), "{e:?}");
    drop(c);
    // The answer being dripped leaves the in-flight count once a write fails.
    assert!(
        wait_until(100, || {
            h.reset_stats();
            h.stats().max_in_flight == 0
        }),
        "still dripping to a closed connection"
    );
}

#[test]
fn network_fault_keys_come_from_a_fault_file() {
    let text = "[default]\ndrip = \"1s\"\n[hosts.web001]\nhang_accept = true\ndrip = 0\n[hosts.web002]\ndrip = 25\n";
    let file = FaultsFile::parse(text, "f.toml").unwrap();
    let a = file.for_host("web001").unwrap();
    assert!(a.hang_accept);
    assert_eq!(a.drip, Duration::ZERO);
    assert_eq!(
        file.for_host("web002").unwrap().drip,
        Duration::from_millis(25)
    );
    let c = file.for_host("web003").unwrap();
    assert_eq!((c.hang_accept, c.drip), (false, Duration::from_secs(1)));
    for (bad, needle) in [
        ("drip = \"slowly\"", "slowly"),
        ("hang_accept = \"yes\"", "hang_accept"),
    ] {
        let e = FaultsFile::parse(&format!("[hosts.web001]\n{bad}\n"), "f.toml")
            .err()
            .unwrap_or_else(|| panic!("{bad} accepted"));
        assert!(e.to_string().contains(needle), "{bad}: {e}");
    }
    // Applied to a running fleet.
    let env = env();
    env.fleet.apply_faults(&file).unwrap();
    assert!(env.host("web001").faults().hang_accept);
    assert_eq!(env.host("web002").faults().drip, Duration::from_millis(25));
}

#[test]
fn refuse_cpanel_tokens_refuses_every_token_login_on_the_cpanel_port_like_a_bad_one() {
    let mut spec = FleetSpec::uniform(2, 2);
    for h in &mut spec.hosts {
        h.accounts[0].password = Some("hunter2-pw".into());
    }
    let env = Env::start(spec);
    let h = env.host("web001");
    let auth = env.root_auth();
    let secret = create_token(&env, &h, "u001a0001", "verify-me");
    let own = format!("cpanel u001a0001:{secret}");
    assert_eq!(uapi_post(&env.client, &h, &own, "list", &[]).status, 200);
    h.set_faults(Faults {
        refuse_cpanel_tokens: true,
        ..Faults::default()
    });
    // A valid token is refused as a bad one would be, and counted as a failed login.
    let r = uapi_post(&env.client, &h, &own, "list", &[]);
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(!r.body.contains(&secret));
    assert_eq!(
        uapi_post(&env.client, &h, "cpanel u001a0001:WRONG", "list", &[]).status,
        401
    );
    assert_eq!(h.stats().failed_auth, 2);
    assert!(
        h.token_valid("u001a0001", &secret),
        "the token itself is fine"
    );
    // Passwords on the cPanel port, and the WHM port, are unaffected.
    use base64::Engine;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("u001a0001:hunter2-pw")
    );
    assert_eq!(uapi_post(&env.client, &h, &basic, "list", &[]).status, 200);
    assert_eq!(
        uapi_via_whm(&env.client, &h, &auth, "u001a0001", "list", &[]).status,
        200
    );
    // An account token on a WHM path keeps its own 403, which is no failed login.
    let r = whm_post(&env.client, &h, Some(&own), "listaccts", &[]);
    assert_eq!(r.status, 403);
    assert_eq!(h.stats().failed_auth, 2);
    // The refusals feed cPHulk: three more make five, and then even the password is blocked.
    for _ in 0..3 {
        assert_eq!(uapi_post(&env.client, &h, &own, "list", &[]).status, 401);
    }
    let r = uapi_post(&env.client, &h, &basic, "list", &[]);
    assert!(r.body.contains("Brute Force"), "{}", r.body);
    let s = h.stats();
    assert_eq!((s.failed_auth, s.blocked), (5, 1));
    // echo_auth quotes the refused header, as for any refused login.
    let w2 = env.host("web002");
    let secret2 = create_token(&env, &w2, "u002a0001", "t");
    w2.set_faults(Faults {
        refuse_cpanel_tokens: true,
        echo_auth: Some(EchoAuth::Unauthorized),
        ..Faults::default()
    });
    let header = format!("cpanel u002a0001:{secret2}");
    let r = uapi_post(&env.client, &w2, &header, "list", &[]);
    assert_eq!(r.status, 401);
    assert!(r.body.contains(&header), "{}", r.body);
    assert_eq!(w2.stats().failed_auth, 1);
}

#[test]
fn deny_uapi_cpanel_refuses_acting_for_accounts_but_is_no_failed_login() {
    let env = env();
    let h = env.host("web001");
    let auth = env.root_auth();
    let account_secret = h.add_account_token("u001a0001", "own", None);
    h.set_faults(Faults {
        deny_uapi_cpanel: true,
        ..Faults::default()
    });
    let r = uapi_via_whm(
        &env.client,
        &h,
        &auth,
        "u001a0001",
        "create_full_access",
        &[("name", "denied")],
    );
    assert_eq!(r.status, 403, "{}", r.body);
    let v = r.json();
    assert_eq!(v["cpanelresult"]["error"], "Access denied");
    assert_eq!(v["cpanelresult"]["data"]["result"], "0");
    assert!(
        v["cpanelresult"]["data"]["reason"]
            .as_str()
            .unwrap()
            .contains("ACLs"),
        "{}",
        r.body
    );
    assert_eq!(
        h.account_tokens("u001a0001").len(),
        1,
        "nothing was created"
    );
    let r = legacy(&env, &h, &auth, "u001a0001", "list", &[]);
    assert_eq!(r.status, 403);
    // Six refusals (more than cPHulk's five) feed no failure count and block nothing.
    for _ in 0..4 {
        assert_eq!(
            uapi_via_whm(&env.client, &h, &auth, "u001a0001", "list", &[]).status,
            403
        );
    }
    let s = h.stats();
    assert_eq!((s.failed_auth, s.blocked), (0, 0));
    assert_eq!(s.count("whm/uapi_cpanel/Tokens/create_full_access"), 1);
    assert_eq!(s.count("whm/cpanel/Tokens/list"), 1);
    // The rest of WHM works.
    assert_eq!(
        whm_post(&env.client, &h, Some(&auth), "version", &[]).status,
        200
    );
    let v = whm_post(&env.client, &h, Some(&auth), "listaccts", &[]).json();
    assert_eq!(v["metadata"]["result"], 1);
    let v = whm_post(
        &env.client,
        &h,
        Some(&auth),
        "api_token_create",
        &[("token_name", "still-fine")],
    )
    .json();
    assert_eq!(v["metadata"]["result"], 1);
    let v = whm_post(&env.client, &h, Some(&auth), "api_token_list", &[]).json();
    assert!(v["data"]["tokens"]["still-fine"].is_object());
    // A bad credential is still a failed login first; the cPanel port is unaffected.
    let r = uapi_via_whm(&env.client, &h, "whm root:BAD", "u001a0001", "list", &[]);
    assert_eq!(r.status, 401);
    assert_eq!(h.stats().failed_auth, 1);
    let own = format!("cpanel u001a0001:{account_secret}");
    assert_eq!(uapi_post(&env.client, &h, &own, "list", &[]).status, 200);
}

#[test]
fn auth_fault_keys_come_from_a_fault_file() {
    let text =
        "[hosts.web001]\nrefuse_cpanel_tokens = true\n[hosts.web002]\ndeny_uapi_cpanel = true\n";
    let file = FaultsFile::parse(text, "f.toml").unwrap();
    let a = file.for_host("web001").unwrap();
    assert!(a.refuse_cpanel_tokens && !a.deny_uapi_cpanel);
    let b = file.for_host("web002").unwrap();
    assert!(!b.refuse_cpanel_tokens && b.deny_uapi_cpanel);
    let env = env();
    env.fleet.apply_faults(&file).unwrap();
    let w2 = env.host("web002");
    let r = uapi_via_whm(&env.client, &w2, &env.root_auth(), "u002a0001", "list", &[]);
    assert_eq!(r.status, 403);
    let w1 = env.host("web001");
    let secret = w1.add_account_token("u001a0001", "t", None);
    let r = uapi_post(
        &env.client,
        &w1,
        &format!("cpanel u001a0001:{secret}"),
        "list",
        &[],
    );
    assert_eq!(r.status, 401);
}
