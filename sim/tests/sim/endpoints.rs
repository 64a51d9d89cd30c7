//! Every endpoint with the documented envelopes, messages and quirks.

use cpanel_sim::{AccountSpec, FleetSpec, HostSpec};
use serde_json::json;

use super::*;

fn spec() -> FleetSpec {
    let mut host = HostSpec::new("web1")
        .with_accounts(3)
        .with_reseller("res1", 2);
    let mut suspended = AccountSpec::new("susp1");
    suspended.suspended = true;
    host.accounts.push(suspended);
    let mut with_pw = AccountSpec::new("pwuser");
    with_pw.password = Some("s3cret pass".to_string());
    host.accounts.push(with_pw);
    let mut s = FleetSpec::uniform(0, 0);
    s.hosts = vec![host, HostSpec::new("web2").with_accounts(1)];
    s
}

#[test]
fn version_over_get_and_post_with_and_without_api_version() {
    let env = Env::start(spec());
    let h = env.host("web1");
    let auth = env.root_auth();
    let r = whm_post(&env.client, &h, Some(&auth), "version", &[]);
    assert_eq!(r.status, 200);
    assert!(r.content_type.starts_with("application/json"));
    let v = r.json();
    assert_eq!(
        v["metadata"],
        json!({"command":"version","reason":"OK","result":1,"version":1})
    );
    assert!(v["data"]["version"].as_str().unwrap().starts_with("11."));
    let g = whm_get(&env.client, &h, &auth, "version", &[("api.version", "1")]);
    assert_eq!(g.json(), v);
    let bare = whm_get(&env.client, &h, &auth, "version", &[]);
    assert_eq!(bare.json()["metadata"]["result"], 1);
}

#[test]
fn listaccts_shows_owner_and_suspended_and_resellers_see_their_own() {
    let env = Env::start(spec());
    let h = env.host("web1");
    let v = whm_post(&env.client, &h, Some(&env.root_auth()), "listaccts", &[]).json();
    let accts = v["data"]["acct"].as_array().unwrap();
    assert_eq!(accts.len(), 7);
    let susp = accts.iter().find(|a| a["user"] == "susp1").unwrap();
    assert_eq!(susp["suspended"], 1);
    assert_eq!(susp["owner"], "root");
    let r = accts.iter().find(|a| a["user"] == "res1a0001").unwrap();
    assert_eq!(r["owner"], "res1");
    assert_eq!(r["suspended"], 0);
    assert!(r["domain"].as_str().unwrap().contains('.'));

    let res_token = h.add_whm_token("res1", "res-tok");
    let v = whm_post(
        &env.client,
        &h,
        Some(&format!("whm res1:{res_token}")),
        "listaccts",
        &[],
    )
    .json();
    let users: Vec<&str> = v["data"]["acct"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["user"].as_str().unwrap())
        .collect();
    assert_eq!(users, vec!["res1a0001", "res1a0002"]);
}

#[test]
fn uapi_cpanel_create_list_revoke_rename() {
    let env = Env::start(spec());
    let h = env.host("web1");
    let auth = env.root_auth();
    let acct = "web1a0001";

    let r = uapi_via_whm(
        &env.client,
        &h,
        &auth,
        acct,
        "create_full_access",
        &[("name", "ci-1")],
    );
    let v = r.json();
    assert_eq!(v["metadata"]["command"], "uapi_cpanel");
    assert_eq!(v["metadata"]["result"], 1);
    let inner = &v["data"]["uapi"];
    assert_eq!(inner["status"], 1);
    assert_eq!(inner["errors"], json!(null));
    let token = inner["data"]["token"].as_str().unwrap();
    assert_eq!(token.len(), 32);
    assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    );
    assert!(inner["data"]["create_time"].as_i64().unwrap() > 1_600_000_000);
    assert!(h.token_valid(acct, token));
    assert!(!h.token_valid("web1a0002", token));
    assert!(!h.token_valid(acct, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));

    // expires_at comes back exactly as sent: a numeric string stays a string.
    let future = (jiff::Timestamp::now().as_second() + 86_400).to_string();
    let r = uapi_via_whm(
        &env.client,
        &h,
        &auth,
        acct,
        "create_full_access",
        &[("name", "ci-2"), ("expires_at", &future)],
    );
    assert_eq!(r.json()["data"]["uapi"]["status"], 1, "{}", r.body);
    let list = uapi_via_whm(&env.client, &h, &auth, acct, "list", &[]).json();
    let items = list["data"]["uapi"]["data"].as_array().unwrap().clone();
    assert_eq!(items.len(), 2);
    let ci2 = items.iter().find(|t| t["name"] == "ci-2").unwrap();
    assert_eq!(ci2["expires_at"], json!(future));
    assert_eq!(ci2["has_full_access"], 1);
    let ci1 = items.iter().find(|t| t["name"] == "ci-1").unwrap();
    assert_eq!(ci1["expires_at"], json!(null));
    // Seeded tokens keep a numeric expiry as a number.
    let seeded_exp = jiff::Timestamp::now().as_second() + 3600;
    h.add_account_token(acct, "seeded", Some(seeded_exp));
    let list = uapi_via_whm(&env.client, &h, &auth, acct, "list", &[]).json();
    let seeded = list["data"]["uapi"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "seeded")
        .unwrap()
        .clone();
    assert_eq!(seeded["expires_at"], json!(seeded_exp));

    // Failures: metadata.result stays 1, the inner call fails with the real message.
    let cases: [(&[(&str, &str)], String); 4] = [
        (
            &[("name", "ci-1")],
            "A conflicting API token with the name “ci-1” already exists.".to_string(),
        ),
        (
            &[("name", "bad name")],
            "“bad name” is not a valid API token name".to_string(),
        ),
        (
            &[("name", "old"), ("expires_at", "1000")],
            "The “expires_at” value must be a future date.".to_string(),
        ),
        (&[], "Provide the “name” argument.".to_string()),
    ];
    for (form, msg) in cases {
        let v = uapi_via_whm(&env.client, &h, &auth, acct, "create_full_access", form).json();
        assert_eq!(v["metadata"]["result"], 1, "{v}");
        assert_eq!(v["data"]["uapi"]["status"], 0, "{v}");
        let err = v["data"]["uapi"]["errors"][0].as_str().unwrap();
        assert!(err.starts_with(&msg), "{err} vs {msg}");
    }
    let long = "a".repeat(51);
    let v = uapi_via_whm(
        &env.client,
        &h,
        &auth,
        acct,
        "create_full_access",
        &[("name", &long)],
    )
    .json();
    assert_eq!(v["data"]["uapi"]["status"], 0);

    // Rename.
    let v = uapi_via_whm(
        &env.client,
        &h,
        &auth,
        acct,
        "rename",
        &[("name", "ci-1"), ("new_name", "ci-1b")],
    )
    .json();
    assert_eq!(v["data"]["uapi"]["status"], 1, "{v}");
    assert!(h.token_valid(acct, token), "a rename keeps the secret");
    let v = uapi_via_whm(
        &env.client,
        &h,
        &auth,
        acct,
        "rename",
        &[("name", "nope"), ("new_name", "x")],
    )
    .json();
    assert_eq!(
        v["data"]["uapi"]["errors"][0],
        "The API token “nope” does not exist."
    );
    let v = uapi_via_whm(
        &env.client,
        &h,
        &auth,
        acct,
        "rename",
        &[("name", "ci-1b"), ("new_name", "ci-2")],
    )
    .json();
    assert_eq!(
        v["data"]["uapi"]["errors"][0],
        "A conflicting API token with the name “ci-2” already exists."
    );

    // Revoke: known → 1 and the token stops working; unknown → still success, data 0.
    let v = uapi_via_whm(&env.client, &h, &auth, acct, "revoke", &[("name", "ci-1b")]).json();
    assert_eq!(v["data"]["uapi"]["status"], 1);
    assert_eq!(v["data"]["uapi"]["data"], 1);
    assert!(!h.token_valid(acct, token));
    let v = uapi_via_whm(
        &env.client,
        &h,
        &auth,
        acct,
        "revoke",
        &[("name", "never-was")],
    )
    .json();
    assert_eq!(v["data"]["uapi"]["status"], 1);
    assert_eq!(v["data"]["uapi"]["data"], 0);
    let names: Vec<String> = h.account_tokens(acct).into_iter().map(|t| t.name).collect();
    assert_eq!(names.len(), 2);
    assert!(!names.contains(&"ci-1b".to_string()));
}

#[test]
fn uapi_cpanel_refuses_root_unknown_users_and_suspended_accounts() {
    let env = Env::start(spec());
    let h = env.host("web1");
    let auth = env.root_auth();
    let v = uapi_via_whm(&env.client, &h, &auth, "root", "list", &[]).json();
    assert_eq!(v["metadata"]["result"], 0);
    assert!(v["metadata"]["reason"].as_str().unwrap().contains("root"));
    let v = uapi_via_whm(&env.client, &h, &auth, "ghost", "list", &[]).json();
    assert_eq!(v["metadata"]["result"], 0);
    let v = uapi_via_whm(
        &env.client,
        &h,
        &auth,
        "susp1",
        "create_full_access",
        &[("name", "x")],
    )
    .json();
    assert_eq!(v["metadata"]["result"], 1);
    assert_eq!(v["data"]["uapi"]["status"], 0);
    assert_eq!(
        v["data"]["uapi"]["errors"][0],
        "The account “susp1” is suspended."
    );
    assert!(h.account_tokens("susp1").is_empty());
}

#[test]
fn reseller_tokens_act_only_for_their_own_accounts() {
    let env = Env::start(spec());
    let h = env.host("web1");
    let res = format!("whm res1:{}", h.add_whm_token("res1", "mine"));
    let v = uapi_via_whm(
        &env.client,
        &h,
        &res,
        "res1a0002",
        "create_full_access",
        &[("name", "r")],
    )
    .json();
    assert_eq!(v["data"]["uapi"]["status"], 1, "{v}");
    let v = uapi_via_whm(
        &env.client,
        &h,
        &res,
        "web1a0001",
        "create_full_access",
        &[("name", "r")],
    )
    .json();
    assert_eq!(v["metadata"]["result"], 0, "{v}");
    assert!(h.account_tokens("web1a0001").is_empty());
    // The legacy route hides accounts the reseller does not own.
    let v = whm_post(
        &env.client,
        &h,
        Some(&res),
        "cpanel",
        &[
            ("cpanel_jsonapi_user", "web1a0001"),
            ("cpanel_jsonapi_module", "Tokens"),
            ("cpanel_jsonapi_func", "list"),
            ("cpanel_jsonapi_apiversion", "3"),
        ],
    )
    .json();
    assert_eq!(v["error"], "User parameter is invalid or was not supplied");
}

#[test]
fn legacy_cpanel_route_returns_the_wrapped_form() {
    let env = Env::start(spec());
    let h = env.host("web1");
    let auth = env.root_auth();
    h.add_account_token("web1a0003", "old", None);
    let q = [
        ("cpanel_jsonapi_user", "web1a0003"),
        ("cpanel_jsonapi_module", "Tokens"),
        ("cpanel_jsonapi_func", "list"),
        ("cpanel_jsonapi_apiversion", "3"),
    ];
    let v = whm_get(&env.client, &h, &auth, "cpanel", &q).json();
    assert_eq!(v["apiversion"], 3);
    assert_eq!(v["module"], "Tokens");
    assert_eq!(v["func"], "list");
    assert_eq!(v["result"]["status"], 1);
    assert_eq!(v["result"]["data"][0]["name"], "old");
    let v = whm_post(
        &env.client,
        &h,
        Some(&auth),
        "cpanel",
        &[
            ("cpanel_jsonapi_user", "web1a0003"),
            ("cpanel_jsonapi_module", "Tokens"),
            ("cpanel_jsonapi_func", "create_full_access"),
            ("cpanel_jsonapi_apiversion", "3"),
            ("name", "viaold"),
        ],
    )
    .json();
    let token = v["result"]["data"]["token"].as_str().unwrap();
    assert!(h.token_valid("web1a0003", token));
    let unknown = whm_get(
        &env.client,
        &h,
        &auth,
        "cpanel",
        &[
            ("cpanel_jsonapi_user", "ghost"),
            ("cpanel_jsonapi_module", "Tokens"),
            ("cpanel_jsonapi_func", "list"),
            ("cpanel_jsonapi_apiversion", "3"),
        ],
    );
    assert_eq!(unknown.status, 200);
    assert_eq!(
        unknown.json(),
        json!({"data":{"reason":"User parameter is invalid or was not supplied","result":"0"},"type":"text","error":"User parameter is invalid or was not supplied"})
    );
    assert_eq!(h.stats().count("whm/cpanel/Tokens/list"), 2);
    assert_eq!(h.stats().count("whm/cpanel/Tokens/create_full_access"), 1);
}

#[test]
fn cpanel_port_execute_with_token_and_basic_over_get_and_post() {
    let env = Env::start(spec());
    let h = env.host("web1");
    let acct = "web1a0002";
    let token = create_token(&env, &h, acct, "first");
    let auth = format!("cpanel {acct}:{token}");
    let r = uapi_post(
        &env.client,
        &h,
        &auth,
        "create_full_access",
        &[("name", "second")],
    );
    let v = r.json();
    assert_eq!(v["status"], 1, "{v}");
    assert_eq!(v["metadata"], json!({}));
    assert_eq!(v["warnings"], json!(null));
    assert_eq!(v["messages"], json!(null));
    let second = v["data"]["token"].as_str().unwrap().to_string();
    // GET with a query string works too.
    let g = env
        .client
        .get(format!("{}/execute/Tokens/list", h.cpanel_url()))
        .header("Authorization", &auth)
        .send()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&g.text().unwrap()).unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    // The new token works on its own; rename and revoke through UAPI.
    let auth2 = format!("cpanel {acct}:{second}");
    let v = uapi_post(
        &env.client,
        &h,
        &auth2,
        "rename",
        &[("name", "first"), ("new_name", "first-old")],
    )
    .json();
    assert_eq!(v["status"], 1, "{v}");
    let v = uapi_post(&env.client, &h, &auth2, "revoke", &[("name", "first-old")]).json();
    assert_eq!(v["data"], 1);
    assert!(!h.token_valid(acct, &token));
    let v = uapi_post(&env.client, &h, &auth2, "revoke", &[("name", "first-old")]).json();
    assert_eq!(
        (v["status"].clone(), v["data"].clone()),
        (json!(1), json!(0))
    );
    let v = uapi_post(
        &env.client,
        &h,
        &auth2,
        "create_full_access",
        &[("name", "second")],
    )
    .json();
    assert_eq!(v["status"], 0);
    assert_eq!(
        v["errors"][0],
        "A conflicting API token with the name “second” already exists."
    );
    // Basic auth with the account password.
    let r = env
        .client
        .post(format!("{}/execute/Tokens/list", h.cpanel_url()))
        .basic_auth("pwuser", Some("s3cret pass"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = env
        .client
        .post(format!("{}/execute/Tokens/list", h.cpanel_url()))
        .basic_auth("pwuser", Some("wrong"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let s = h.stats();
    assert_eq!(s.count("cpanel/Tokens/list"), 3);
    assert_eq!(s.count("cpanel/Tokens/create_full_access"), 2);
}

#[test]
fn whm_api_tokens_create_list_revoke_and_authenticate() {
    let env = Env::start(spec());
    let h = env.host("web1");
    let auth = env.root_auth();
    let v = whm_post(
        &env.client,
        &h,
        Some(&auth),
        "api_token_create",
        &[("token_name", "rot-1")],
    )
    .json();
    assert_eq!(v["metadata"]["result"], 1, "{v}");
    assert_eq!(v["metadata"]["command"], "api_token_create");
    assert_eq!(v["data"]["name"], "rot-1");
    assert_eq!(v["data"]["expires_at"], json!(null));
    let new = v["data"]["token"].as_str().unwrap().to_string();
    assert_eq!(new.len(), 32);
    assert!(h.whm_token_valid("root", &new));
    // The new token authenticates on the WHM port.
    let new_auth = format!("whm root:{new}");
    let v = whm_post(&env.client, &h, Some(&new_auth), "api_token_list", &[]).json();
    let tokens = v["data"]["tokens"].as_object().unwrap();
    assert!(tokens.contains_key("rot-1"));
    assert_eq!(tokens["rot-1"]["name"], "rot-1");
    assert_eq!(tokens["rot-1"]["expires_at"], json!(null));
    // Duplicates, bad names and past expiry fail with metadata.result 0.
    let v = whm_post(
        &env.client,
        &h,
        Some(&auth),
        "api_token_create",
        &[("token_name", "rot-1")],
    )
    .json();
    assert_eq!(v["metadata"]["result"], 0);
    assert_eq!(
        v["metadata"]["reason"],
        "The system failed to create the API token: A conflicting API token with the name “rot-1” already exists."
    );
    let v = whm_post(
        &env.client,
        &h,
        Some(&auth),
        "api_token_create",
        &[("token_name", "bad name")],
    )
    .json();
    assert_eq!(v["metadata"]["result"], 0);
    let v = whm_post(
        &env.client,
        &h,
        Some(&auth),
        "api_token_create",
        &[("token_name", "x"), ("expires_at", "5")],
    )
    .json();
    assert_eq!(v["metadata"]["result"], 0);
    // A future expiry is echoed as a number.
    let exp = jiff::Timestamp::now().as_second() + 7200;
    let v = whm_post(
        &env.client,
        &h,
        Some(&auth),
        "api_token_create",
        &[("token_name", "rot-2"), ("expires_at", &exp.to_string())],
    )
    .json();
    assert_eq!(v["data"]["expires_at"], json!(exp));
    // Revoke several with token_name-N; unknown names are fine.
    let v = whm_post(
        &env.client,
        &h,
        Some(&auth),
        "api_token_revoke",
        &[
            ("token_name", "rot-1"),
            ("token_name-1", "rot-2"),
            ("token_name-2", "never"),
        ],
    )
    .json();
    assert_eq!(v["metadata"]["result"], 1, "{v}");
    assert!(!h.whm_token_valid("root", &new));
    let r = whm_post(&env.client, &h, Some(&new_auth), "version", &[]);
    assert_eq!(r.status, 401, "a revoked WHM token stops authenticating");
    let names: Vec<String> = h.whm_tokens("root").into_iter().map(|t| t.name).collect();
    assert_eq!(names, vec!["tokenfleet-sim-root".to_string()]);
    // Unknown function.
    let v = whm_post(&env.client, &h, Some(&auth), "frobnicate", &[]).json();
    assert_eq!(v["metadata"]["result"], 0);
    assert!(
        v["metadata"]["reason"]
            .as_str()
            .unwrap()
            .contains("frobnicate")
    );
}

#[test]
fn reseller_whm_token_create_is_its_own() {
    let env = Env::start(spec());
    let h = env.host("web1");
    let res = format!("whm res1:{}", h.add_whm_token("res1", "mine"));
    let v = whm_post(
        &env.client,
        &h,
        Some(&res),
        "api_token_create",
        &[("token_name", "res-2")],
    )
    .json();
    let t = v["data"]["token"].as_str().unwrap();
    assert!(h.whm_token_valid("res1", t));
    assert!(!h.whm_token_valid("root", t));
    assert_eq!(h.whm_tokens("res1").len(), 2);
}

#[test]
fn keep_alive_reuses_one_connection_and_connection_close_is_honoured() {
    let env = Env::start(spec());
    let h = env.host("web2");
    let auth = env.root_auth();
    for _ in 0..5 {
        assert_eq!(
            whm_post(&env.client, &h, Some(&auth), "version", &[]).status,
            200
        );
    }
    let s = h.stats();
    assert_eq!(s.connections, 1);
    assert_eq!(s.tls_handshakes, 1);
    assert_eq!(s.total_requests, 5);
    let r = env
        .client
        .post(format!("{}/json-api/version", h.whm_url()))
        .header("Authorization", &auth)
        .header("Connection", "close")
        .send()
        .unwrap();
    assert_eq!(r.headers()["connection"], "close");
    drop(r.text());
    assert_eq!(
        whm_post(&env.client, &h, Some(&auth), "version", &[]).status,
        200
    );
    assert_eq!(
        h.stats().connections,
        2,
        "the server closed after Connection: close"
    );
}

#[test]
fn bad_specs_are_refused_with_the_reason() {
    let mut dup = FleetSpec::uniform(2, 1);
    dup.hosts[1].name = "web001".to_string();
    let e = cpanel_sim::Fleet::start(dup).err().unwrap().to_string();
    assert!(e.contains("web001") && e.contains("twice"), "{e}");
    let mut owner = FleetSpec::uniform(1, 1);
    owner.hosts[0].accounts[0].owner = "nobody".to_string();
    let e = cpanel_sim::Fleet::start(owner).err().unwrap().to_string();
    assert!(e.contains("nobody"), "{e}");
    let mut status = FleetSpec::uniform(1, 1);
    status.hosts[0].auth_failure_status = 500;
    let e = cpanel_sim::Fleet::start(status).err().unwrap().to_string();
    assert!(e.contains("401 or 403"), "{e}");
}

#[test]
fn whm_api_token_get_details_shows_the_callers_own_token_by_secret() {
    let env = Env::start(spec());
    let h = env.host("web1");
    let auth = env.root_auth();
    let exp = jiff::Timestamp::now().as_second() + 7200;
    let v = whm_post(
        &env.client,
        &h,
        Some(&auth),
        "api_token_create",
        &[("token_name", "ci-new"), ("expires_at", &exp.to_string())],
    )
    .json();
    let secret = v["data"]["token"].as_str().unwrap().to_string();
    let r = whm_post(
        &env.client,
        &h,
        Some(&auth),
        "api_token_get_details",
        &[("token", &secret)],
    );
    assert_eq!(r.status, 200);
    assert!(!r.body.contains(&secret), "the secret is never echoed");
    let v = r.json();
    assert_eq!(
        v["metadata"],
        json!({"command": "api_token_get_details", "reason": "OK", "result": 1, "version": 1})
    );
    assert_eq!(v["data"]["name"], "ci-new");
    assert_eq!(v["data"]["expires_at"], json!(exp));
    // The same object api_token_list shows under the token's name.
    let list = whm_post(&env.client, &h, Some(&auth), "api_token_list", &[]).json();
    assert_eq!(v["data"], list["data"]["tokens"]["ci-new"]);
    // The fleet's root token, asked about with itself: never expires.
    let v = whm_post(
        &env.client,
        &h,
        Some(&auth),
        "api_token_get_details",
        &[("token", env.fleet.root_token())],
    )
    .json();
    assert_eq!(v["data"]["name"], "tokenfleet-sim-root");
    assert_eq!(v["data"]["expires_at"], json!(null));
    // A reseller sees its own tokens, and another user's token does not exist for it.
    let res_secret = h.add_whm_token("res1", "res-own");
    let res = format!("whm res1:{res_secret}");
    let v = whm_post(
        &env.client,
        &h,
        Some(&res),
        "api_token_get_details",
        &[("token", &res_secret)],
    )
    .json();
    assert_eq!(v["data"]["name"], "res-own");
    let account_secret = h.add_account_token("web1a0001", "acct", None);
    for (who, other) in [
        (&res, secret.as_str()),
        (&auth, res_secret.as_str()),
        (&auth, account_secret.as_str()),
        (&auth, "NOTAVALIDTOKEN0000000000000000000"),
    ] {
        let r = whm_post(
            &env.client,
            &h,
            Some(who),
            "api_token_get_details",
            &[("token", other)],
        );
        assert_eq!(r.status, 200);
        assert!(!r.body.contains(other), "{}", r.body);
        let v = r.json();
        assert_eq!(v["metadata"]["result"], 0, "{v}");
        assert_eq!(v["metadata"]["reason"], "The API token does not exist.");
        assert!(v.get("data").is_none());
    }
    // Revoked: does not exist any more.
    whm_post(
        &env.client,
        &h,
        Some(&auth),
        "api_token_revoke",
        &[("token_name", "ci-new")],
    );
    let v = whm_post(
        &env.client,
        &h,
        Some(&auth),
        "api_token_get_details",
        &[("token", &secret)],
    )
    .json();
    assert_eq!(v["metadata"]["reason"], "The API token does not exist.");
    // Missing or empty argument.
    for form in [&[][..], &[("token", "")][..]] {
        let v = whm_post(&env.client, &h, Some(&auth), "api_token_get_details", form).json();
        assert_eq!(v["metadata"]["result"], 0);
        assert_eq!(v["metadata"]["reason"], "Provide the “token” argument.");
    }
    let s = h.stats();
    assert_eq!(s.count("whm/api_token_get_details"), 10);
    assert_eq!(s.failed_auth, 0);
}
