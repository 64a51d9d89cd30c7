//! Authentication as documented, per-host failure status, expired tokens and the cPHulk model.

use std::time::Duration;

use cpanel_sim::{CphulkConfig, FleetSpec, HostSpec};
use serde_json::json;

use super::*;

fn two_hosts() -> FleetSpec {
    let mut s = FleetSpec::uniform(0, 0);
    let mut h403 = HostSpec::new("strict").with_accounts(1);
    h403.auth_failure_status = 403;
    s.hosts = vec![HostSpec::new("web1").with_accounts(2), h403];
    s
}

#[test]
fn missing_bad_and_wrong_scheme_credentials_are_refused() {
    let env = Env::start(two_hosts());
    let h = env.host("web1");
    let r = whm_post(&env.client, &h, None, "version", &[]);
    assert_eq!(r.status, 401);
    assert_eq!(h.stats().failed_auth, 0, "no header is not a failed login");
    let r = whm_post(
        &env.client,
        &h,
        Some("whm root:NOTAVALIDTOKEN0000000000000000000"),
        "version",
        &[],
    );
    assert_eq!(r.status, 401);
    let r = whm_post(&env.client, &h, Some("whm nobody:x"), "version", &[]);
    assert_eq!(r.status, 401);
    // A WHM token is not a cPanel credential.
    let r = uapi_post(
        &env.client,
        &h,
        &format!("whm root:{}", env.fleet.root_token()),
        "list",
        &[],
    );
    assert_eq!(r.status, 401);
    assert_eq!(h.stats().failed_auth, 3);
    // A good root token with the wrong user name fails too.
    let r = whm_post(
        &env.client,
        &h,
        Some(&format!("whm web1a0001:{}", env.fleet.root_token())),
        "version",
        &[],
    );
    assert_eq!(r.status, 401);
}

#[test]
fn hosts_can_answer_403_with_the_documented_body() {
    let env = Env::start(two_hosts());
    let h = env.host("strict");
    let r = whm_post(&env.client, &h, Some("whm root:WRONG"), "version", &[]);
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json(),
        json!({"cpanelresult":{"apiversion":"2","error":"Access denied","data":{"reason":"Access denied","result":"0"},"type":"text"}})
    );
    let r = uapi_post(&env.client, &h, "cpanel stricta0001:WRONG", "list", &[]);
    assert_eq!(r.status, 403);
}

#[test]
fn account_token_on_a_whm_path_gets_403_with_the_documented_text() {
    let env = Env::start(two_hosts());
    let h = env.host("web1");
    let token = create_token(&env, &h, "web1a0001", "t");
    let r = whm_post(
        &env.client,
        &h,
        Some(&format!("cpanel web1a0001:{token}")),
        "listaccts",
        &[],
    );
    assert_eq!(r.status, 403);
    assert_eq!(
        r.body,
        "Token authentication allows access to UAPI or API 2 calls only."
    );
    assert_eq!(h.stats().failed_auth, 0);
}

#[test]
fn expired_tokens_stay_listed_but_do_not_authenticate() {
    let env = Env::start(two_hosts());
    let h = env.host("web1");
    let past = jiff::Timestamp::now().as_second() - 60;
    let old = h.add_account_token("web1a0002", "old", Some(past));
    let fresh = h.add_account_token("web1a0002", "fresh", None);
    assert!(!h.token_valid("web1a0002", &old));
    assert!(h.token_valid("web1a0002", &fresh));
    let r = uapi_post(
        &env.client,
        &h,
        &format!("cpanel web1a0002:{old}"),
        "list",
        &[],
    );
    assert_eq!(r.status, 401);
    let v = uapi_post(
        &env.client,
        &h,
        &format!("cpanel web1a0002:{fresh}"),
        "list",
        &[],
    )
    .json();
    let names: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"old") && names.contains(&"fresh"),
        "{names:?}"
    );
}

#[test]
fn cphulk_blocks_the_client_after_five_failures_even_with_a_good_token() {
    let env = Env::start(two_hosts());
    let h = env.host("web1");
    let good = env.root_auth();
    let other = env.host("strict");
    for i in 0..5 {
        let r = whm_post(&env.client, &h, Some("whm root:BAD"), "version", &[]);
        assert_eq!(r.status, 401, "failure {i}");
        assert!(
            !r.body.contains("Brute Force"),
            "not blocked before the 5th failure"
        );
    }
    let r = whm_post(&env.client, &h, Some(&good), "version", &[]);
    assert_eq!(r.status, 401);
    assert!(r.body.contains("Brute Force"), "{}", r.body);
    let r = uapi_post(&env.client, &h, "cpanel web1a0001:whatever", "list", &[]);
    assert_eq!(r.status, 401, "the cPanel port is blocked too");
    let s = h.stats();
    assert_eq!(s.failed_auth, 5);
    assert_eq!(s.blocked, 2);
    // cPHulk is per host.
    assert_eq!(
        whm_post(&env.client, &other, Some(&good), "version", &[]).status,
        200
    );
    h.reset_cphulk();
    assert_eq!(
        whm_post(&env.client, &h, Some(&good), "version", &[]).status,
        200
    );
}

#[test]
fn cphulk_block_ends_after_the_block_time() {
    let mut spec = two_hosts();
    spec.cphulk = CphulkConfig {
        max_failures: 2,
        window: Duration::from_secs(3600),
        block: Duration::from_millis(300),
    };
    let env = Env::start(spec);
    let h = env.host("web1");
    let good = env.root_auth();
    whm_post(&env.client, &h, Some("whm root:BAD"), "version", &[]);
    assert_eq!(
        whm_post(&env.client, &h, Some(&good), "version", &[]).status,
        200,
        "one failure does not block"
    );
    whm_post(&env.client, &h, Some("whm root:BAD"), "version", &[]);
    assert_eq!(
        whm_post(&env.client, &h, Some(&good), "version", &[]).status,
        401
    );
    // Sleeping longer than the block can only make the block more over.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        whm_post(&env.client, &h, Some(&good), "version", &[]).status,
        200
    );
}

#[test]
fn cphulk_threshold_set_on_a_running_fleet_blocks_the_request_after_the_fourth_failure() {
    let env = Env::start(two_hosts());
    let h = env.host("web1");
    let good = env.root_auth();
    assert_eq!(h.cphulk(), CphulkConfig::default());
    let four = CphulkConfig {
        max_failures: 4,
        ..CphulkConfig::default()
    };
    env.fleet.set_cphulk(four);
    assert_eq!(h.cphulk(), four);
    assert_eq!(env.host("strict").cphulk(), four);
    // Four failures, each a plain refusal (the fourth trips the block but is not told so).
    for i in 0..4 {
        let r = whm_post(&env.client, &h, Some("whm root:BAD"), "version", &[]);
        assert_eq!(r.status, 401, "failure {i}");
        assert!(!r.body.contains("Brute Force"), "failure {i}: {}", r.body);
    }
    let s = h.stats();
    assert_eq!((s.failed_auth, s.blocked), (4, 0));
    // The fifth request is blocked, even with a good credential, and counted as blocked only.
    let r = whm_post(&env.client, &h, Some(&good), "version", &[]);
    assert_eq!(r.status, 401);
    assert!(r.body.contains("Brute Force"), "{}", r.body);
    let s = h.stats();
    assert_eq!((s.failed_auth, s.blocked), (4, 1));
    // Raising the threshold keeps the block already started; a reset ends it.
    h.set_cphulk(CphulkConfig::default());
    assert!(
        whm_post(&env.client, &h, Some(&good), "version", &[])
            .body
            .contains("Brute Force")
    );
    assert_eq!(h.stats().blocked, 2);
    h.reset_cphulk();
    assert_eq!(
        whm_post(&env.client, &h, Some(&good), "version", &[]).status,
        200
    );
    // The per-host setter: a threshold of 1 blocks right after one failure, on this host only.
    let other = env.host("strict");
    other.set_cphulk(CphulkConfig {
        max_failures: 1,
        ..CphulkConfig::default()
    });
    assert_eq!(
        whm_post(&env.client, &other, Some("whm root:BAD"), "version", &[]).status,
        403
    );
    let r = whm_post(&env.client, &other, Some(&good), "version", &[]);
    assert!(r.body.contains("Brute Force"), "{}", r.body);
    assert_eq!(other.stats().blocked, 1);
    assert_eq!(h.cphulk(), CphulkConfig::default());
}
