//! What an incident response reads and changes on WHM tokens, through HTTP: ACLs and IP
//! allow-lists kept by `api_token_create` and shown by `api_token_list`/`get_details`,
//! `api_token_update` in place, tokens seeded as made by others (expired ones listed but refused),
//! each WHM user seeing and touching only its own tokens, accounts with dozens of tokens, and the
//! compromised-fleet seeding.

use std::collections::BTreeSet;

use cpanel_sim::seeds::{ATTACK_TIME, plan_compromised};
use cpanel_sim::{FleetSpec, HostSpec, PlantKind, SeedToken, TokenOwner, seed_compromised};
use serde_json::{Value, json};

use super::*;

fn spec() -> FleetSpec {
    let mut s = FleetSpec::uniform(0, 0);
    s.hosts = vec![
        HostSpec::new("web1")
            .with_accounts(2)
            .with_reseller("res1", 1),
    ];
    s
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn whm_list(env: &Env, h: &SimHost, auth: &str) -> serde_json::Map<String, Value> {
    let v = whm_post(&env.client, h, Some(auth), "api_token_list", &[]).json();
    assert_eq!(v["metadata"]["result"], 1, "{v}");
    v["data"]["tokens"].as_object().unwrap().clone()
}

fn names(tokens: &serde_json::Map<String, Value>) -> BTreeSet<String> {
    tokens.keys().cloned().collect()
}

fn uapi_names(list: &Value) -> BTreeSet<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn create_keeps_acls_and_allow_list_and_list_and_details_show_them() {
    let env = Env::start(spec());
    let h = env.host("web1");
    let auth = env.root_auth();
    let v = whm_post(
        &env.client,
        &h,
        Some(&auth),
        "api_token_create",
        &[
            ("token_name", "ops"),
            ("acl-1", "list-accts"),
            ("acl-2", "clustering"),
            ("whitelist_ip-1", "10.0.0.0/8"),
            ("whitelist_ip-2", "192.0.2.1"),
        ],
    )
    .json();
    assert_eq!(v["metadata"]["result"], 1, "{v}");
    assert_eq!(v["data"]["acls"], json!(["list-accts", "clustering"]));
    assert_eq!(
        v["data"]["whitelist_ips"],
        json!(["10.0.0.0/8", "192.0.2.1"])
    );
    let secret = v["data"]["token"].as_str().unwrap().to_string();
    let plain = whm_post(
        &env.client,
        &h,
        Some(&auth),
        "api_token_create",
        &[("token_name", "plain")],
    )
    .json();
    assert_eq!(plain["data"]["acls"], json!(["all"]));

    let list = whm_list(&env, &h, &auth);
    let ops = &list["ops"];
    for (acl, granted) in [
        ("list-accts", 1),
        ("clustering", 1),
        ("all", 0),
        ("create-acct", 0),
        ("kill-acct", 0),
    ] {
        assert_eq!(ops["acls"][acl], json!(granted), "{acl}: {ops}");
    }
    assert_eq!(ops["whitelist_ips"], json!(["10.0.0.0/8", "192.0.2.1"]));
    assert_eq!(list["plain"]["acls"]["all"], 1);
    assert_eq!(list["plain"]["acls"]["list-accts"], 0);
    assert_eq!(list["plain"]["whitelist_ips"], Value::Null);
    let details = whm_post(
        &env.client,
        &h,
        Some(&auth),
        "api_token_get_details",
        &[("token", &secret)],
    )
    .json();
    assert_eq!(&details["data"], ops);
    let d = h.whm_token_details("root");
    let ops = d.iter().find(|t| t.name == "ops").unwrap();
    assert_eq!(ops.acls, vec!["list-accts", "clustering"]);
    assert_eq!(ops.whitelist_ips, vec!["10.0.0.0/8", "192.0.2.1"]);
}

#[test]
fn create_refuses_an_allow_list_entry_that_is_not_an_ip_or_range() {
    let env = Env::start(spec());
    let h = env.host("web1");
    let auth = env.root_auth();
    for bad in ["10.0.0.999", "10.0.0.0/33", "office", "any"] {
        let v = whm_post(
            &env.client,
            &h,
            Some(&auth),
            "api_token_create",
            &[
                ("token_name", "ops"),
                ("whitelist_ip-1", "192.0.2.1"),
                ("whitelist_ip-2", bad),
            ],
        )
        .json();
        assert_eq!(v["metadata"]["result"], 0, "{bad}: {v}");
        assert_eq!(
            v["metadata"]["reason"],
            format!(
                "The system failed to create the API token: “{bad}” is not a valid IP address or CIDR range."
            )
        );
    }
    assert!(!h.whm_tokens("root").iter().any(|t| t.name == "ops"));
}

#[test]
fn update_changes_a_token_in_place_and_keeps_its_secret() {
    let env = Env::start(spec());
    let h = env.host("web1");
    let auth = env.root_auth();
    let secret = h.seed_whm_token(
        "root",
        SeedToken::named("ci")
            .acls(&["all"])
            .whitelist(&["198.51.100.7"]),
    );
    h.reset_stats();
    let exp = now() + 86_400;
    let v = whm_post(
        &env.client,
        &h,
        Some(&auth),
        "api_token_update",
        &[
            ("token_name", "ci"),
            ("new_name", "ci-limited"),
            ("expires_at", &exp.to_string()),
            ("acl-1", "list-accts"),
            ("acl-2", "create-user-session"),
            ("whitelist_ip-1", "10.0.0.0/8"),
            ("whitelist_ip-2", "2001:db8::/32"),
        ],
    )
    .json();
    assert_eq!(
        v["metadata"],
        json!({"command": "api_token_update", "reason": "OK", "result": 1, "version": 1})
    );
    assert_eq!(v["data"]["name"], "ci-limited");
    assert_eq!(
        v["data"]["acls"],
        json!(["list-accts", "create-user-session"])
    );
    assert!(
        !v.to_string().contains(&secret),
        "the secret is never shown"
    );
    let list = whm_list(&env, &h, &auth);
    assert!(!list.contains_key("ci"));
    let t = &list["ci-limited"];
    assert_eq!(t["expires_at"], json!(exp));
    assert_eq!(t["acls"]["list-accts"], 1);
    assert_eq!(t["acls"]["create-user-session"], 1);
    assert_eq!(t["acls"]["all"], 0);
    assert_eq!(t["whitelist_ips"], json!(["10.0.0.0/8", "2001:db8::/32"]));
    assert!(
        h.whm_token_valid("root", &secret),
        "same secret, still valid"
    );

    // `any` clears the allow-list, `0` makes it never expire; what is not sent is unchanged.
    let v = whm_post(
        &env.client,
        &h,
        Some(&auth),
        "api_token_update",
        &[
            ("token_name", "ci-limited"),
            ("whitelist_ip", "any"),
            ("expires_at", "0"),
        ],
    )
    .json();
    assert_eq!(v["metadata"]["result"], 1, "{v}");
    let d = h.whm_token_details("root");
    let t = d.iter().find(|t| t.name == "ci-limited").unwrap();
    assert!(t.whitelist_ips.is_empty());
    assert_eq!(t.expires_at, Value::Null);
    assert_eq!(t.acls, vec!["list-accts", "create-user-session"]);
    assert_eq!(
        whm_list(&env, &h, &auth)["ci-limited"]["whitelist_ips"],
        Value::Null
    );
    let s = h.stats();
    assert_eq!(s.count("whm/api_token_update"), 2);
    assert_eq!(s.mutations(), 2, "an update is a write");
}

#[test]
fn update_refusals_change_nothing() {
    let env = Env::start(spec());
    let h = env.host("web1");
    let auth = env.root_auth();
    h.seed_whm_token("root", SeedToken::named("ci").acls(&["list-accts"]));
    h.add_whm_token("root", "other");
    let before = h.whm_token_details("root");
    let past = (now() - 60).to_string();
    for (form, reason) in [
        (
            vec![("token_name", "nope"), ("acl", "all")],
            "The API token “nope” does not exist.".to_string(),
        ),
        (vec![("acl", "all")], "Provide the “token_name” argument.".to_string()),
        (
            vec![("token_name", "ci"), ("new_name", "x"), ("expires_at", &past)],
            "The “expires_at” value must be a future date.".to_string(),
        ),
        (
            vec![("token_name", "ci"), ("expires_at", "soon")],
            "The “expires_at” value must be a future date.".to_string(),
        ),
        (
            vec![("token_name", "ci"), ("acl", "all"), ("whitelist_ip", "10.1.1")],
            "“10.1.1” is not a valid IP address or CIDR range.".to_string(),
        ),
        (
            vec![("token_name", "ci"), ("new_name", "other")],
            "A conflicting API token with the name “other” already exists.".to_string(),
        ),
        (
            vec![("token_name", "ci"), ("new_name", "bad name")],
            "“bad name” is not a valid API token name. A token name must contain only letters, numbers, hyphens (-), and underscores (_), and must not exceed 50 characters.".to_string(),
        ),
    ] {
        let v = whm_post(&env.client, &h, Some(&auth), "api_token_update", &form).json();
        assert_eq!(v["metadata"]["result"], 0, "{form:?}: {v}");
        assert_eq!(v["metadata"]["reason"], reason.as_str(), "{form:?}");
    }
    let ips: Vec<String> = (0..101).map(|i| format!("10.0.0.{i}")).collect();
    let mut form = vec![("token_name", "ci")];
    form.extend(ips.iter().map(|ip| ("whitelist_ip", ip.as_str())));
    let v = whm_post(&env.client, &h, Some(&auth), "api_token_update", &form).json();
    assert_eq!(
        v["metadata"]["reason"],
        "You may not specify more than 100 whitelisted IP addresses."
    );
    assert_eq!(h.whm_token_details("root"), before);
}

#[test]
fn update_inside_a_batch_is_counted_as_a_write() {
    let env = Env::start(spec());
    let h = env.host("web1");
    h.add_whm_token("root", "ci");
    h.reset_stats();
    let v = whm_post(
        &env.client,
        &h,
        Some(&env.root_auth()),
        "batch",
        &[(
            "command",
            "api_token_update?token_name=ci&acl-1=list-accts&whitelist_ip-1=10.0.0.1",
        )],
    )
    .json();
    assert_eq!(v["metadata"]["result"], 1, "{v}");
    let d = h.whm_token_details("root");
    let t = d.iter().find(|t| t.name == "ci").unwrap();
    assert_eq!(t.acls, vec!["list-accts"]);
    assert_eq!(t.whitelist_ips, vec!["10.0.0.1"]);
    assert_eq!(h.stats().mutations(), 1);
}

#[test]
fn seeded_tokens_are_listed_as_made_and_expired_ones_do_not_authenticate() {
    let env = Env::start(spec());
    let h = env.host("web1");
    let auth = env.root_auth();
    let t0 = now();
    let old = h.seed_whm_token(
        "root",
        SeedToken::named("reverse_trust_x")
            .created(ATTACK_TIME - 86_400)
            .acls(&["clustering"])
            .whitelist(&["10.0.0.0/8"]),
    );
    let expired = h.seed_whm_token(
        "root",
        SeedToken::named("stale").created(t0 - 900).expires(t0 - 60),
    );
    let list = whm_list(&env, &h, &auth);
    assert_eq!(
        list["reverse_trust_x"]["create_time"],
        json!(ATTACK_TIME - 86_400)
    );
    assert_eq!(list["reverse_trust_x"]["acls"]["clustering"], 1);
    assert_eq!(list["reverse_trust_x"]["acls"]["all"], 0);
    assert_eq!(
        list["reverse_trust_x"]["whitelist_ips"],
        json!(["10.0.0.0/8"])
    );
    assert_eq!(list["stale"]["expires_at"], json!(t0 - 60));
    assert_eq!(list["stale"]["acls"]["all"], 1, "empty acls: all");
    assert!(h.whm_token_valid("root", &old));
    assert!(!h.whm_token_valid("root", &expired));
    let r = whm_post(
        &env.client,
        &h,
        Some(&format!("whm root:{expired}")),
        "version",
        &[],
    );
    assert!(matches!(r.status, 401 | 403), "{}", r.status);

    let account = "web1a0001";
    let live = h.seed_account_token(account, SeedToken::named("tool").created(t0 - 3600));
    let gone = h.seed_account_token(
        account,
        SeedToken::named("wp-toolkit-1")
            .created(t0 - 7200)
            .expires(t0 - 1),
    );
    let old_helper = h.add_old_account_token(account, "older", Duration::from_secs(600));
    let v = uapi_post(
        &env.client,
        &h,
        &format!("cpanel {account}:{live}"),
        "list",
        &[],
    )
    .json();
    assert_eq!(
        uapi_names(&v["data"]),
        ["tool", "wp-toolkit-1", "older"].map(String::from).into()
    );
    let expired_entry = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "wp-toolkit-1")
        .unwrap();
    assert_eq!(expired_entry["expires_at"], json!(t0 - 1));
    assert_eq!(expired_entry["create_time"], json!(t0 - 7200));
    let via_whm = uapi_via_whm(&env.client, &h, &auth, account, "list", &[]).json();
    assert_eq!(uapi_names(&via_whm["data"]["uapi"]["data"]).len(), 3);
    assert!(!h.token_valid(account, &gone));
    assert!(h.token_valid(account, &old_helper));
    let r = uapi_post(
        &env.client,
        &h,
        &format!("cpanel {account}:{gone}"),
        "list",
        &[],
    );
    assert!(matches!(r.status, 401 | 403), "{}", r.status);
}

#[test]
fn each_whm_user_lists_and_touches_only_its_own_tokens() {
    let env = Env::start(spec());
    let h = env.host("web1");
    let root = env.root_auth();
    let res_secret = h.add_whm_token("res1", "res-own");
    let res = format!("whm res1:{res_secret}");
    h.add_whm_token("res1", "shared");
    h.add_whm_token("res1", "res-only");
    h.add_whm_token("root", "shared");
    assert_eq!(
        names(&whm_list(&env, &h, &root)),
        ["tokenfleet-sim-root", "shared"].map(String::from).into()
    );
    assert_eq!(
        names(&whm_list(&env, &h, &res)),
        ["res-own", "shared", "res-only"].map(String::from).into()
    );
    // Root cannot update, revoke or see a reseller's token.
    let v = whm_post(
        &env.client,
        &h,
        Some(&root),
        "api_token_update",
        &[("token_name", "res-only"), ("acl", "list-accts")],
    )
    .json();
    assert_eq!(
        v["metadata"]["reason"],
        "The API token “res-only” does not exist."
    );
    let v = whm_post(
        &env.client,
        &h,
        Some(&root),
        "api_token_get_details",
        &[("token", &res_secret)],
    )
    .json();
    assert_eq!(v["metadata"]["result"], 0);
    whm_post(
        &env.client,
        &h,
        Some(&root),
        "api_token_revoke",
        &[("token_name", "shared"), ("token_name-1", "res-only")],
    );
    assert_eq!(
        names(&whm_list(&env, &h, &res)),
        ["res-own", "shared", "res-only"].map(String::from).into(),
        "root's revoke took root's own `shared` only"
    );
    assert!(!h.whm_tokens("root").iter().any(|t| t.name == "shared"));
    // The reseller's update acts on its own token of that name.
    let v = whm_post(
        &env.client,
        &h,
        Some(&res),
        "api_token_update",
        &[("token_name", "res-only"), ("acl", "list-accts")],
    )
    .json();
    assert_eq!(v["metadata"]["result"], 1, "{v}");
    let d = h.whm_token_details("res1");
    assert_eq!(
        d.iter().find(|t| t.name == "res-only").unwrap().acls,
        vec!["list-accts"]
    );
    assert!(
        h.whm_token_details("root")
            .iter()
            .all(|t| t.name != "res-only")
    );
}

#[test]
fn an_account_with_sixty_tokens_lists_them_all_alone_and_in_a_batch() {
    let env = Env::start(spec());
    let h = env.host("web1");
    let account = "web1a0001";
    let mut expected = BTreeSet::new();
    let mut first = None;
    for i in 0..60 {
        let name = format!("tool-{i:02}");
        let secret = h.seed_account_token(account, SeedToken::named(&name).created(now() - i));
        first.get_or_insert(secret);
        expected.insert(name);
    }
    let auth = format!("cpanel {account}:{}", first.unwrap());
    let v = uapi_post(&env.client, &h, &auth, "list", &[]).json();
    assert_eq!(uapi_names(&v["data"]), expected);
    let via = uapi_via_whm(&env.client, &h, &env.root_auth(), account, "list", &[]).json();
    assert_eq!(uapi_names(&via["data"]["uapi"]["data"]), expected);
    let list =
        format!("uapi_cpanel?cpanel.user={account}&cpanel.module=Tokens&cpanel.function=list");
    let other = "uapi_cpanel?cpanel.user=web1a0002&cpanel.module=Tokens&cpanel.function=list";
    let v = whm_post(
        &env.client,
        &h,
        Some(&env.root_auth()),
        "batch",
        &[("command", list.as_str()), ("command", other)],
    )
    .json();
    let r = v["data"]["result"].as_array().unwrap();
    assert_eq!(uapi_names(&r[0]["data"]["uapi"]["data"]), expected);
    assert!(uapi_names(&r[1]["data"]["uapi"]["data"]).is_empty());
}

#[test]
fn a_compromised_fleet_shows_what_was_planted() {
    let spec = FleetSpec::uniform(3, 4);
    let planned = plan_compromised(&spec, 11, 3);
    let env = Env::start(spec);
    let seeded = seed_compromised(&env.fleet, 11, 3);
    assert_eq!(seeded, planned, "a parent's plan is what its parts plant");
    assert_eq!(seeded.count(PlantKind::System), 6);
    assert!(seeded.hosts_with_full_root().contains(&"web001"));
    let auth = env.root_auth();
    for h in env.fleet.hosts() {
        let root = TokenOwner::WhmUser("root".into());
        let list = whm_list(&env, h, &auth);
        let mut want: BTreeSet<String> = seeded
            .planted
            .iter()
            .filter(|p| p.host == h.name() && p.owner == root)
            .map(|p| p.name.clone())
            .collect();
        want.insert("tokenfleet-sim-root".into());
        assert_eq!(names(&list), want, "{}", h.name());
        let trust = list
            .keys()
            .find(|n| n.starts_with("reverse_trust_"))
            .unwrap();
        assert_eq!(list[trust]["acls"]["clustering"], 1);
        assert_eq!(list[trust]["acls"]["all"], 0);
        assert_ne!(list["backup-offsite"]["whitelist_ips"], Value::Null);
        assert_eq!(
            seeded.kind_of(h.name(), &root, "backup-offsite"),
            Some(PlantKind::Legit)
        );
        if let Some(full) = list.get("WHM_FullRoot") {
            assert_eq!(full["acls"]["all"], 1);
            assert_eq!(full["whitelist_ips"], Value::Null);
            assert_eq!(full["expires_at"], Value::Null);
            let created = full["create_time"].as_i64().unwrap();
            assert!((ATTACK_TIME..ATTACK_TIME + 86_400).contains(&created));
        }
        for account in h.accounts() {
            let owner = TokenOwner::Account(account.clone());
            let v = uapi_via_whm(&env.client, h, &auth, &account, "list", &[]).json();
            let want: BTreeSet<String> = seeded
                .planted
                .iter()
                .filter(|p| p.host == h.name() && p.owner == owner)
                .map(|p| p.name.clone())
                .collect();
            assert_eq!(uapi_names(&v["data"]["uapi"]["data"]), want);
            assert!(want.len() >= 3);
        }
    }
    let attackers: Vec<_> = seeded.of_kind(PlantKind::Attacker).collect();
    assert!(attackers.iter().any(|p| p.name == "WHM_FullRoot"));
    assert!(attackers.iter().any(|p| p.name.starts_with("lp")));
    // Another fleet, the same seed: the same names.
    let again = Env::start(FleetSpec::uniform(3, 4));
    assert_eq!(seed_compromised(&again.fleet, 11, 3), seeded);
}
