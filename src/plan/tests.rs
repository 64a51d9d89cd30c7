use super::*;
use crate::error::Problem;
use crate::inventory::Inventory;
use crate::inventory::{Format, parse_bytes};
use std::path::Path;

fn inv(text: &str) -> Inventory {
    parse_bytes(text.as_bytes(), Format::Toml, "inv.toml", Path::new("/inv"))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn req(op: Operation) -> PlanRequest {
    PlanRequest {
        op: Some(op),
        per_host: 4,
        run_id: "r7k2".into(),
        date: "20250101".into(),
        ..PlanRequest::default()
    }
}

fn set_env(name: &str, value: &str) {
    // SAFETY: set_var is unsafe because other threads may read the environment concurrently;
    // each test uses variable names of its own.
    unsafe { std::env::set_var(name, value) }
}

fn no_prompt(label: &str) -> Result<Secret, String> {
    panic!("unexpected prompt for {label}")
}

fn build_ok(inventory: &Inventory, r: &PlanRequest) -> Plan {
    build(inventory, r, &mut no_prompt).unwrap_or_else(|e| panic!("{e}"))
}

fn build_err(inventory: &Inventory, r: &PlanRequest) -> Vec<Problem> {
    match build(inventory, r, &mut no_prompt) {
        Ok(p) => panic!(
            "expected problems, got a plan with {} targets",
            p.target_count()
        ),
        Err(e) => e.problems,
    }
}

const WHM_FLEET: &str = r#"
[defaults]
credential = "env:TF_PLAN_WHM_A"
[[hosts]]
name = "web1.example.com"
groups = ["eu"]
per_host = 2
accounts = ["alice", "bob"]
[[hosts]]
name = "web2"
groups = ["us"]
whm_user = "reseller1"
accounts = ["carol"]
[[hosts]]
name = "web3"
tls_insecure = true
accounts = "*"
"#;

#[test]
fn create_expands_a_name_per_account_and_resolves_the_host_credential_once() {
    set_env("TF_PLAN_WHM_A", "WHMTOKEN");
    let inventory = inv(WHM_FLEET);
    let mut r = req(Operation::Create);
    r.name = Some("ci-{date}-{host}-{account}-{run}".into());
    let plan = build_ok(&inventory, &r);
    assert_eq!(plan.hosts.len(), 3);
    let h1 = &plan.hosts[0];
    assert_eq!(h1.per_host, 2, "the host's per_host wins");
    assert_eq!(plan.hosts[1].per_host, 4, "else --per-host");
    assert_eq!(h1.credential.as_ref().unwrap().expose(), "WHMTOKEN");
    let names: Vec<_> = h1
        .targets
        .iter()
        .map(|t| t.token_name.clone().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "ci-20250101-web1-example-com-alice-r7k2",
            "ci-20250101-web1-example-com-bob-r7k2"
        ]
    );
    assert!(
        h1.targets.iter().all(|t| t.credential.is_none()),
        "api whm: no account credentials"
    );
    assert!(plan.hosts[2].discover);
    assert!(plan.hosts[2].targets.is_empty());
    assert_eq!(
        plan.warnings,
        ["web3: tls_insecure = true: certificate NOT verified"]
    );
    assert_eq!(
        plan.name().unwrap().as_str(),
        "ci-{date}-{host}-{account}-{run}"
    );
    assert!(plan.revoke_glob().is_none());
    assert_eq!(plan.target_count(), 3);
}

#[test]
fn discovered_accounts_get_targets_with_the_template() {
    set_env("TF_PLAN_WHM_A", "WHMTOKEN");
    let inventory = inv(WHM_FLEET);
    let mut r = req(Operation::Create);
    r.name = Some("ci-{account}".into());
    r.accounts = Some("a*".into());
    let plan = build_ok(&inventory, &r);
    let web3 = &plan.hosts[2];
    let t = plan.target_for(web3, "zed").unwrap();
    assert_eq!(t.account.as_deref(), Some("zed"));
    assert_eq!(t.token_name.as_deref(), Some("ci-zed"));
    assert!(plan.wants_account(web3, "anna") && !plan.wants_account(web3, "zed"));
    assert!(
        plan.target_for(web3, &"x".repeat(60))
            .unwrap_err()
            .contains("63 characters")
    );
    // --accounts filters listed accounts now.
    assert_eq!(plan.hosts[0].targets.len(), 1);
    assert_eq!(plan.hosts[0].targets[0].account.as_deref(), Some("alice"));
}

#[test]
fn scope_whm_is_one_target_per_host_named_for_the_whm_user() {
    set_env("TF_PLAN_WHM_A", "WHMTOKEN");
    let inventory = inv(WHM_FLEET);
    let mut r = req(Operation::Rotate);
    r.scope = Scope::Whm;
    r.name = Some("fleet-{account}-{date}".into());
    r.revoke = Some("fleet-*".into());
    let plan = build_ok(&inventory, &r);
    assert!(
        plan.hosts
            .iter()
            .all(|h| h.targets.len() == 1 && !h.discover && h.credential.is_some())
    );
    assert!(plan.hosts.iter().all(|h| h.targets[0].account.is_none()));
    assert_eq!(
        plan.hosts[1].targets[0].token_name.as_deref(),
        Some("fleet-reseller1-20250101")
    );
    assert_eq!(
        plan.hosts[0].targets[0].token_name.as_deref(),
        Some("fleet-root-20250101")
    );
    assert!(plan.revoke_glob().unwrap().matches("fleet-old"));
}

#[test]
fn revoke_takes_a_name_or_glob_and_list_takes_none() {
    set_env("TF_PLAN_WHM_A", "WHMTOKEN");
    let inventory = inv(WHM_FLEET);
    let mut r = req(Operation::Revoke);
    r.name = Some("ci-2024*".into());
    let plan = build_ok(&inventory, &r);
    assert!(plan.revoke_glob().unwrap().matches("ci-20240101"));
    assert!(
        plan.hosts[0]
            .targets
            .iter()
            .all(|t| t.token_name.as_deref() == Some("ci-2024*"))
    );
    assert_eq!(
        plan.target_for(&plan.hosts[2], "zed")
            .unwrap()
            .token_name
            .as_deref(),
        Some("ci-2024*")
    );
    r.name = Some("ci-{date}".into());
    assert!(
        build_err(&inventory, &r)[0]
            .message
            .contains("neither a token name nor a glob")
    );
    let plan = build_ok(&inventory, &req(Operation::List));
    assert!(
        plan.hosts
            .iter()
            .flat_map(|h| &h.targets)
            .all(|t| t.token_name.is_none())
    );
    assert!(
        plan.target_for(&plan.hosts[2], "zed")
            .unwrap()
            .token_name
            .is_none()
    );
}

#[test]
fn missing_and_bad_flags_are_all_reported() {
    set_env("TF_PLAN_WHM_A", "WHMTOKEN");
    let inventory = inv(WHM_FLEET);
    let p = build_err(&inventory, &req(Operation::Rotate));
    let locations: Vec<&str> = p.iter().map(|p| p.location.as_str()).collect();
    assert_eq!(locations, ["--name", "--revoke"], "{p:#?}");
    let mut r = req(Operation::Create);
    r.name = Some("x-{hots}".into());
    r.accounts = Some("[".into());
    r.limit = Some("nope".into());
    let p = build_err(&inventory, &r);
    let locations: Vec<&str> = p.iter().map(|p| p.location.as_str()).collect();
    assert_eq!(locations, ["--name", "--accounts", "--limit"], "{p:#?}");
    assert!(p[0].message.contains("{date}, {host}, {account}, {run}"));
    assert!(p[2].message.contains("selects no host"));
}

#[test]
fn limit_selects_hosts_and_warns_about_unmatched_items() {
    set_env("TF_PLAN_WHM_A", "WHMTOKEN");
    let inventory = inv(WHM_FLEET);
    let mut r = req(Operation::Check);
    r.limit = Some("eu,wbe9".into());
    let plan = build_ok(&inventory, &r);
    assert_eq!(plan.hosts.len(), 1);
    assert_eq!(plan.hosts[0].host.name, "web1.example.com");
    assert_eq!(plan.warnings.len(), 1);
    assert!(plan.warnings[0].contains("wbe9"));
}

#[test]
fn too_long_names_are_one_problem_with_a_count_and_examples() {
    set_env("TF_PLAN_WHM_A", "WHMTOKEN");
    let inventory = inv(WHM_FLEET);
    let mut r = req(Operation::Create);
    r.name = Some("a-rather-long-prefix-for-tokens-{host}-{account}".into());
    let p = build_err(&inventory, &r);
    assert_eq!(
        p.len(),
        1,
        "web2/carol fits (42 chars), web1's two do not, folded: {p:#?}"
    );
    assert_eq!(
        p[0].message,
        "--name \"a-rather-long-prefix-for-tokens-{host}-{account}\" expands to names over 50 \
         characters for 2 targets (the longest, \"a-rather-long-prefix-for-tokens-web1-example-com-alice\", \
         is 54; e.g. web1.example.com/alice, web1.example.com/bob)"
    );
    // One target: the plain message, naming it.
    r.accounts = Some("alice".into());
    let p = build_err(&inventory, &r);
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(
        p[0].message.starts_with("web1.example.com/alice: "),
        "{}",
        p[0].message
    );
    assert!(p[0].message.contains("54 characters"), "{}", p[0].message);
}

#[test]
fn many_invalid_names_and_insecure_hosts_fold_into_one_line_each() {
    set_env("TF_PLAN_WHM_A", "WHMTOKEN");
    let mut text =
        String::from("[defaults]\ncredential = \"env:TF_PLAN_WHM_A\"\ntls_insecure = true\n");
    for h in 0..30 {
        text.push_str(&format!(
            "[[hosts]]\nname = \"host{h:02}\"\naccounts = [\"alice\", \"bob\"]\n"
        ));
    }
    let inventory = inv(&text);
    let mut r = req(Operation::Create);
    r.name = Some(format!("{}-{{account}}", "n".repeat(47)));
    let p = build_err(&inventory, &r);
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(p[0].message.contains("for 60 targets"), "{}", p[0].message);
    assert!(
        p[0].message
            .contains("e.g. host00/alice, host00/bob, host01/alice, …)"),
        "{}",
        p[0].message
    );
    r.name = Some("ci-{account}".into());
    let plan = build_ok(&inventory, &r);
    assert_eq!(
        plan.warnings,
        [
            "tls_insecure = true on 30 hosts (host00, host01, host02, host03, host04 and 25 more): certificates NOT verified"
        ]
    );
}

#[test]
fn missing_env_credential_names_variable_and_place_once() {
    let inventory = inv(&WHM_FLEET.replace("TF_PLAN_WHM_A", "TF_PLAN_NEVER_SET_77"));
    let p = build_err(&inventory, &req(Operation::List));
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(p[0].message.contains("TF_PLAN_NEVER_SET_77 is not set"));
    assert!(
        p[0].message
            .contains("(used by web1.example.com, web2, web3)"),
        "{}",
        p[0].message
    );
    assert_eq!(
        p[0].location, "inv.toml:3 (defaults)",
        "where it is written"
    );
}

#[test]
fn cpanel_hosts_resolve_account_credentials_and_prompt_once_per_account_last() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("carol.token");
    std::fs::write(&file, "CAROLTOKEN\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    }
    set_env("TF_PLAN_DAVE", "DAVETOKEN");
    let text = r#"
[[hosts]]
name = "c1"
api = "cpanel"
credential = "prompt"
accounts = [ { user = "carol", credential = "file:carol.token" }, { user = "dave", credential = "env:TF_PLAN_DAVE" }, "erin", "fred" ]
[[hosts]]
name = "c2"
api = "cpanel"
accounts = [ { user = "carol", credential = "file:carol.token" } ]
"#;
    let inventory = parse_bytes(text.as_bytes(), Format::Toml, "inv.toml", dir.path()).unwrap();
    let mut asked = Vec::new();
    let mut ask = |label: &str| {
        asked.push(label.to_string());
        Ok(Secret::new(format!("typed-{}", asked.len())))
    };
    let plan = build(&inventory, &req(Operation::List), &mut ask).unwrap();
    assert_eq!(asked, ["c1: erin (cPanel)", "c1: fred (cPanel)"]);
    let creds: Vec<&str> = plan.hosts[0]
        .targets
        .iter()
        .map(|t| t.credential.as_ref().unwrap().expose())
        .collect();
    assert_eq!(creds, ["CAROLTOKEN", "DAVETOKEN", "typed-1", "typed-2"]);
    assert_eq!(
        plan.hosts[1].targets[0]
            .credential
            .as_ref()
            .unwrap()
            .expose(),
        "CAROLTOKEN"
    );
    assert!(
        plan.hosts.iter().all(|h| h.credential.is_none()),
        "api cpanel, scope account: no WHM credential"
    );
    #[cfg(unix)]
    {
        assert_eq!(
            plan.warnings.len(),
            1,
            "the file is read and warned about once: {:?}",
            plan.warnings
        );
        assert!(plan.warnings[0].contains("chmod 600"));
    }
    // A problem elsewhere means nobody is asked.
    let mut r = req(Operation::Create);
    r.name = Some("{bad}".into());
    let mut asked_anyway = false;
    let mut ask = |_: &str| {
        asked_anyway = true;
        Ok(Secret::new("x"))
    };
    assert!(build(&inventory, &r, &mut ask).is_err());
    assert!(!asked_anyway);
}

#[test]
fn nothing_to_do_is_an_error() {
    set_env("TF_PLAN_WHM_A", "WHMTOKEN");
    let inventory =
        inv("[defaults]\ncredential = \"env:TF_PLAN_WHM_A\"\n[[hosts]]\nname = \"h\"\n");
    let p = build_err(&inventory, &req(Operation::List));
    assert!(p[0].message.contains("no accounts"), "{p:#?}");
    let mut r = req(Operation::List);
    r.scope = Scope::Whm;
    assert_eq!(build_ok(&inventory, &r).target_count(), 1);
    let inventory = inv(WHM_FLEET
        .replace("accounts = \"*\"", "accounts = [\"zed\"]")
        .as_str());
    let mut r = req(Operation::List);
    r.accounts = Some("nobody*".into());
    assert!(
        build_err(&inventory, &r)[0]
            .hint
            .as_deref()
            .unwrap()
            .contains("--accounts")
    );
}

#[test]
fn a_host_without_a_needed_credential_is_a_problem() {
    let inventory = inv("[[hosts]]\nname = \"h\"\naccounts = [\"a\"]\n");
    let p = build_err(&inventory, &req(Operation::List));
    assert_eq!(p.len(), 1);
    assert!(
        p[0].message
            .contains("no credential for root (WHM) on host h"),
        "{}",
        p[0].message
    );
}

#[test]
fn secrets_never_appear_in_debug_output() {
    set_env("TF_PLAN_WHM_A", "WHMTOKEN");
    let plan = build_ok(&inv(WHM_FLEET), &req(Operation::List));
    assert!(!format!("{plan:?}").contains("WHMTOKEN"));
}

/// The whole input path of the binary, inventory bytes → parse → plan, as a property: no
/// inventory and no combination of --name, --limit, --accounts, --revoke, operation and scope
/// makes it panic; a refusal always carries located problems; an accepted create/rotate plan only
/// holds valid token names.
mod whole_path_properties {
    use super::*;
    use proptest::prelude::*;

    fn inventory_text() -> impl Strategy<Value = String> {
        let host = (
            "(web[0-9]|db|x[a-z]{0,3}|web1\\.example\\.com)",
            proptest::collection::vec("[a-z][a-z0-9]{0,5}|\\*|[A-Z ]{1,3}", 0..4),
            proptest::option::of("(eu|us|web1|all)"),
            proptest::option::of("(whm|cpanel|soap)"),
            proptest::option::of(0u32..70),
        )
            .prop_map(|(name, accounts, group, api, per_host)| {
                let mut s = format!("\n[[hosts]]\nname = \"{name}\"\n");
                if accounts.iter().any(|a| a == "*") {
                    s.push_str("accounts = \"*\"\n");
                } else {
                    let list: Vec<String> = accounts.iter().map(|a| format!("\"{a}\"")).collect();
                    s.push_str(&format!("accounts = [{}]\n", list.join(", ")));
                }
                if let Some(g) = group {
                    s.push_str(&format!("groups = [\"{g}\"]\n"));
                }
                if let Some(a) = api {
                    s.push_str(&format!("api = \"{a}\"\n"));
                }
                if let Some(p) = per_host {
                    s.push_str(&format!("per_host = {p}\n"));
                }
                s
            });
        (
            prop_oneof![
                Just("credential = \"env:TF_PROP_WHOLE\"\n"),
                Just("credential = \"env:TF_PROP_UNSET_VAR\"\n"),
                Just(""),
            ],
            proptest::collection::vec(host, 0..5),
        )
            .prop_map(|(cred, hosts)| format!("[defaults]\n{cred}{}", hosts.concat()))
    }

    fn template() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            "x|-|_|\\{date\\}|\\{host\\}|\\{account\\}|\\{run\\}|\\{nope\\}|\\{|\\}| |\\*|[a-z]{1,25}",
            0..6,
        )
        .prop_map(|p| p.concat())
    }

    fn pattern() -> impl Strategy<Value = Option<String>> {
        proptest::option::of("(!|&)?[a-z0-9*\\[\\]]{0,4}(,(!|&)?[a-z0-9*]{0,4}){0,2}")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn no_inventory_and_no_arguments_make_planning_panic(
            text in inventory_text(),
            name in proptest::option::of(template()),
            revoke in proptest::option::of(template()),
            limit in pattern(),
            accounts in pattern(),
            op in prop_oneof![
                Just(Operation::Create), Just(Operation::Rotate), Just(Operation::Revoke),
                Just(Operation::List), Just(Operation::Check)
            ],
            whm_scope in any::<bool>(),
        ) {
            set_env("TF_PROP_WHOLE", "PROPPROPPROPPROPPROPPROPPROPPROP");
            let inv = match parse_bytes(text.as_bytes(), Format::Toml, "p.toml", Path::new(".")) {
                Ok(inv) => inv,
                Err(e) => {
                    prop_assert!(!e.problems.is_empty());
                    for p in &e.problems {
                        prop_assert!(p.location.starts_with("p.toml"), "{p}");
                    }
                    return Ok(());
                }
            };
            let r = PlanRequest {
                scope: if whm_scope { Scope::Whm } else { Scope::Account },
                name,
                revoke,
                limit,
                accounts,
                ..req(op)
            };
            let mut refuse_prompt = |_: &str| -> Result<Secret, String> { Err("no terminal".into()) };
            match build(&inv, &r, &mut refuse_prompt) {
                Ok(plan) => {
                    if matches!(op, Operation::Create | Operation::Rotate) {
                        for hp in &plan.hosts {
                            for t in &hp.targets {
                                let n = t.token_name.as_deref().unwrap_or("");
                                prop_assert!(
                                    !n.is_empty() && n.len() <= 50
                                        && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
                                    "invalid token name {n:?} in an accepted plan"
                                );
                            }
                        }
                    }
                }
                Err(e) => {
                    prop_assert!(!e.problems.is_empty());
                    for p in &e.problems {
                        prop_assert!(!p.location.is_empty() && !p.message.is_empty(), "{p:?}");
                        prop_assert!(!p.message.contains("PROPPROPPROPPROP"), "a secret in a problem");
                    }
                }
            }
        }
    }
}
