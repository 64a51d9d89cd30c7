use super::*;

const NOW: i64 = 1_790_000_000;

fn rules() -> Rules {
    Rules {
        now: NOW,
        expiring_within: DEFAULT_EXPIRING_WITHIN,
        since: Some(NOW - 86_400 * 10),
        ours: vec![glob::Pattern::new("tf-*").unwrap()],
        known: [(
            "web1".to_string(),
            "alice".to_string(),
            "deploy".to_string(),
        )]
        .into_iter()
        .collect(),
        known_from: "run.journal".into(),
        ioc: vec![glob::Pattern::new("evil*").unwrap()],
        known_files: None,
    }
}

fn whose<'a>(kind: OwnerKind, owner: &'a str, protect: &'a [glob::Pattern]) -> Whose<'a> {
    Whose {
        host: "web1",
        kind,
        owner,
        protect,
        credential: Some("ops"),
    }
}

fn tok(name: &str) -> TokenInfo {
    TokenInfo::new(name, Some(NOW - 86_400 * 100), Some(NOW + 86_400 * 365))
}

#[test]
fn classes_in_order_of_precedence() {
    let r = rules();
    let protect = [glob::Pattern::new("backup-*").unwrap()];
    let w = whose(OwnerKind::Whm, "root", &protect);
    let class = |name: &str| r.judge(&w, &tok(name)).class;
    assert_eq!(class("ops"), Class::SelfCredential);
    assert_eq!(class("reverse_trust_0b1c"), Class::System);
    assert_eq!(class("WebPros_Dashboard"), Class::System);
    assert_eq!(class("WP-Dashboard"), Class::System);
    assert_eq!(class("backup-offsite"), Class::System);
    assert_eq!(class("tf-20260101"), Class::Ours);
    assert_eq!(class("WHM_FullRoot"), Class::Unknown);
    assert_eq!(class("deploy"), Class::Unknown, "known only for alice");
    let a = whose(OwnerKind::Account, "alice", &[]);
    let row = r.judge(&a, &tok("deploy"));
    assert_eq!(row.class, Class::Ours);
    assert!(row.why.contains("run.journal"), "{}", row.why);
    // A protect glob never makes the credential in use anything but self.
    let p = [glob::Pattern::new("*").unwrap()];
    assert_eq!(
        r.judge(&whose(OwnerKind::Whm, "root", &p), &tok("ops"))
            .class,
        Class::SelfCredential
    );
}

#[test]
fn flags_of_whm_and_account_tokens() {
    let r = rules();
    let w = whose(OwnerKind::Whm, "root", &[]);
    let mut t = tok("WHM_FullRoot");
    t.create_time = Some(NOW - 3600);
    t.expires_at = None;
    t.acls = Some(vec!["all".into()]);
    let row = r.judge(&w, &t);
    assert_eq!(
        row.flags,
        vec![
            Flag::Suspicious,
            Flag::CreatedSince,
            Flag::FullAccess,
            Flag::AllowAnyIp,
            Flag::NeverExpires
        ]
    );
    assert!(row.is_finding());
    let mut narrow = tok("dns");
    narrow.acls = Some(vec!["clustering".into()]);
    narrow.whitelist_ips = vec!["10.0.0.0/8".into()];
    narrow.expires_at = Some(NOW - 1);
    assert_eq!(r.judge(&w, &narrow).flags, vec![Flag::Expired]);
    narrow.expires_at = Some(NOW + 86_400);
    assert_eq!(r.judge(&w, &narrow).flags, vec![Flag::ExpiresSoon]);
    // No ACL map listed: a WHM token without acls has all of its owner's privileges.
    assert!(r.judge(&w, &tok("x")).has(Flag::FullAccess));
    let a = whose(OwnerKind::Account, "alice", &[]);
    let row = r.judge(&a, &tok("x"));
    assert_eq!(
        row.flags,
        vec![Flag::FullAccess],
        "no allow-list on cPanel tokens"
    );
    assert_eq!(row.acls, None);
    let mut limited = tok("y");
    limited.full_access = Some(false);
    assert!(r.judge(&a, &limited).flags.is_empty());
}

#[test]
fn built_in_indicators() {
    for bad in ["WHM_FullRoot", "bkl", "lp3f9a1c2e", "lpDEADBEEF01"] {
        assert!(builtin_suspicious(bad), "{bad}");
    }
    for fine in ["lp", "lphelper", "lp12", "whm_fullroot", "bkl2", "deploy"] {
        assert!(!builtin_suspicious(fine), "{fine}");
    }
    let r = rules();
    let row = r.judge(&whose(OwnerKind::Account, "bob", &[]), &tok("evil-1"));
    assert!(row.has(Flag::Suspicious), "--ioc globs flag too");
}

#[test]
fn known_names_from_a_journal_and_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("run.journal");
    std::fs::write(
        &journal,
        concat!(
            r#"{"v":1,"kind":"plan","run_id":"r","operation":"create","inventory":"i","inventory_sha256":"","name_template":"t","scope":"account","recipients":[],"passphrase":false,"options":{},"started":"x"}"#,
            "\n",
            r#"{"host":"web1","account":"alice","token_name":"ci","kind":"intent","action":"create","absent":true,"at":"x"}"#,
            "\n",
            r#"{"host":"web1","account":"bob","token_name":"ci","kind":"created","sealed":"AA","create_time":1,"expires_at":null,"url":"u","at":"x"}"#,
            "\n",
            r#"{"host":"web1","account":"carol","token_name":"old","kind":"revoked","names":["old"],"at":"x"}"#,
            "\n",
        ),
    )
    .unwrap();
    let mut names = inputs::read_known(&journal).unwrap();
    names.sort();
    let k = |a: &str| ("web1".to_string(), a.to_string(), "ci".to_string());
    assert_eq!(names, vec![k("alice"), k("bob")]);
    let report = dir.path().join("r.json");
    std::fs::write(
        &report,
        r#"{"schema_version":1,"operation":"create","targets":[
            {"host":"web1","account":"dave","token_name":"ci","status":"created"},
            {"host":"web1","account":"erin","token_name":"ci","status":"failed"}]}"#,
    )
    .unwrap();
    assert_eq!(inputs::read_known(&report).unwrap(), vec![k("dave")]);
    let junk = dir.path().join("junk");
    std::fs::write(&junk, "age-encryption.org/v1\n").unwrap();
    let p = inputs::read_known(&junk).unwrap_err();
    assert!(p.hint.unwrap().contains("journal"), "{}", p.message);
}

#[test]
fn ioc_file_errors_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("ioc.txt");
    std::fs::write(&f, "# names\nWHM_FullRoot\n\nbad[\n").unwrap();
    let flags = inputs::RuleFlags {
        ioc: vec![f.clone()],
        since: Some("yesterday-ish".into()),
        ..Default::default()
    };
    let problems = inputs::rules(&flags, NOW).unwrap_err();
    let at: Vec<&str> = problems.iter().map(|p| p.location.as_str()).collect();
    assert!(
        at.contains(&format!("{}:4", f.display()).as_str()),
        "{at:?}"
    );
    assert!(at.contains(&"--since"), "{at:?}");
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever a server names a token, the census gives it one class, never sweeps what
        /// the credential is, and an `ours` glob never outranks `self` or `system`.
        #[test]
        fn every_name_gets_one_class_and_self_wins(name in "[A-Za-z0-9_-]{1,50}") {
            let r = Rules { ours: vec![glob::Pattern::new("*").unwrap()], ..rules() };
            let own = Whose { credential: Some(name.as_str()), ..whose(OwnerKind::Whm, "root", &[]) };
            prop_assert_eq!(r.judge(&own, &tok(&name)).class, Class::SelfCredential);
            let other = whose(OwnerKind::Account, "bob", &[]);
            let row = r.judge(&other, &tok(&name));
            let system = name.starts_with("reverse_trust_")
                || name == "WebPros_Dashboard"
                || name == "WP-Dashboard";
            prop_assert_eq!(row.class, if system { Class::System } else { Class::Ours });
            prop_assert!(!SweepFilter::default().takes(&row));
        }

        /// `lp` followed by 6 to 32 hex digits is an indicator; a non-hex character or another
        /// length is not.
        #[test]
        fn lp_hex_names(hex in "[0-9a-fA-F]{6,32}", other in "[g-zG-Z_-][0-9a-f]{5,20}") {
            let lp_hex = format!("lp{hex}");
            let lp_other = format!("lp{other}");
            prop_assert!(builtin_suspicious(&lp_hex));
            prop_assert!(!builtin_suspicious(&lp_other));
        }
    }
}
