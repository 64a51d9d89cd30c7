use super::*;

fn csv(text: &str) -> Result<Inventory, InputError> {
    parse_bytes(text.as_bytes(), Format::Csv, "inv.csv", Path::new("/inv"))
}
fn tml(text: &str) -> Result<Inventory, InputError> {
    parse_bytes(text.as_bytes(), Format::Toml, "inv.toml", Path::new("/inv"))
}
fn problems(r: Result<Inventory, InputError>) -> Vec<Problem> {
    match r {
        Ok(inv) => panic!("expected problems, got {:#?}", inv.hosts),
        Err(e) => e.problems,
    }
}

#[test]
fn csv_lines_count_comments_and_blank_lines() {
    let p = problems(csv(
        "# fleet\nhost,account,whm_port\n\n# web1\nweb1,alice,99999\n",
    ));
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].location, "inv.csv:5");
}

const FULL: &str = r#"
[defaults]
api = "whm"
credential = "env:WHM_TOKEN"
per_host = 2

[[hosts]]
name = "web1.example.com"
address = "203.0.113.10"
groups = ["eu", "shared"]
accounts = ["alice", "bob"]

[[hosts]]
name = "web2"
api = "cpanel"
cpanel_port = 2084
accounts = [ "dave", { user = "carol", credential = "file:secrets/carol.token" } ]

[[hosts]]
name = "web3"
accounts = "*"
tls_insecure = true
whm_user = "reseller1"
auth = "password"
"#;

#[test]
fn toml_full_form_applies_defaults() {
    let inv = tml(FULL).unwrap();
    assert_eq!(inv.hosts.len(), 3);
    let w1 = &inv.hosts[0];
    assert_eq!(w1.name, "web1.example.com");
    assert_eq!(w1.address, "203.0.113.10");
    assert_eq!(w1.groups, ["eu", "shared"]);
    assert_eq!(w1.api, Api::Whm);
    assert_eq!((w1.whm_port, w1.cpanel_port), (2087, 2083));
    assert_eq!(w1.whm_user, "root");
    assert_eq!(w1.credential, Some(CredentialRef::Env("WHM_TOKEN".into())));
    assert_eq!(w1.auth, AuthKind::Token);
    assert_eq!(w1.per_host, Some(2));
    assert_eq!(w1.tls, Tls::default());
    let users: Vec<&str> = w1
        .accounts
        .listed()
        .iter()
        .map(|a| a.user.as_str())
        .collect();
    assert_eq!(users, ["alice", "bob"]);
    assert!(
        w1.origin
            .starts_with("inv.toml:7 (hosts[0] web1.example.com)"),
        "{}",
        w1.origin
    );
    let w2 = &inv.hosts[1];
    assert_eq!(w2.address, "web2", "address defaults to the name");
    assert_eq!(w2.api, Api::Cpanel);
    assert_eq!(w2.cpanel_port, 2084);
    let carol = &w2.accounts.listed()[1];
    assert_eq!(carol.user, "carol");
    assert_eq!(
        carol.credential,
        Some(CredentialRef::File(PathBuf::from(
            "/inv/secrets/carol.token"
        )))
    );
    assert_eq!(
        w2.accounts.listed()[0].credential,
        None,
        "dave falls back to the host's credential"
    );
    let w3 = &inv.hosts[2];
    assert_eq!(w3.accounts, Accounts::All);
    assert!(w3.tls.insecure);
    assert_eq!(w3.whm_user, "reseller1");
    assert_eq!(w3.auth, AuthKind::Password);
}

#[test]
fn sha256_is_of_the_file_bytes() {
    let inv = tml(FULL).unwrap();
    use sha2::Digest;
    assert_eq!(inv.sha256, hex(&sha2::Sha256::digest(FULL.as_bytes())));
    assert_eq!(inv.sha256.len(), 64);
}

#[test]
fn toml_unknown_key_names_line_host_and_closest_key() {
    let text = "[[hosts]]\nname = \"web1\"\naccounts = [\"a\"]\n[[hosts]]\nname = \"web2\"\naccounts = [\"a\"]\n[[hosts]]\nname = \"web3\"\nwhm_prot = 2087\naccounts = [\"a\"]\n";
    let p = problems(tml(text));
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].location, "inv.toml:9 (hosts[2] web3)");
    assert_eq!(p[0].field.as_deref(), Some("whm_prot"));
    assert!(p[0].message.contains("unknown key"));
    assert_eq!(p[0].hint.as_deref(), Some("did you mean \"whm_port\"?"));
}

#[test]
fn toml_unknown_keys_elsewhere() {
    let p = problems(tml("[defualts]\napi = \"whm\"\n[[host]]\nname = \"a\"\n"));
    let hints: Vec<_> = p.iter().filter_map(|p| p.hint.clone()).collect();
    assert!(
        hints.contains(&"did you mean \"defaults\"?".to_string()),
        "{p:?}"
    );
    assert!(
        hints.contains(&"did you mean \"hosts\"?".to_string()),
        "{p:?}"
    );
    let p = problems(tml(
        "[defaults]\ncredentail = \"env:X\"\n[[hosts]]\nname = \"a\"\naccounts = [{ user = \"b\", credentail = \"env:X\" }]\n",
    ));
    assert_eq!(p.len(), 2, "{p:?}");
    assert_eq!(p[0].location, "inv.toml:2 (defaults)");
    assert!(
        p.iter()
            .all(|p| p.hint.as_deref() == Some("did you mean \"credential\"?")),
        "{p:?}"
    );
}

#[test]
fn every_value_rule_is_checked_and_all_problems_are_reported() {
    let text = r#"
[[hosts]]
name = "bad host"
accounts = ["a"]

[[hosts]]
name = "h2"
whm_port = 0
cpanel_port = 70000
api = "whn"
auth = "tokn"
per_host = 0
tls_pin = "sha256:XYZ"
whm_user = "Root!"
address = "https://h2/"
groups = ["ok", "not ok"]
accounts = ["Alice", "bob", "bob", "root"]
"#;
    let p = problems(tml(text));
    let fields: Vec<&str> = p.iter().filter_map(|p| p.field.as_deref()).collect();
    for f in [
        "name",
        "whm_port",
        "cpanel_port",
        "api",
        "auth",
        "per_host",
        "tls_pin",
        "whm_user",
        "address",
        "groups",
    ] {
        assert!(fields.contains(&f), "missing a problem for {f}: {p:#?}");
    }
    let accounts = p
        .iter()
        .filter(|p| p.field.as_deref() == Some("account"))
        .count();
    assert_eq!(accounts, 3, "Alice invalid, bob twice, root: {p:#?}");
    assert!(p.iter().any(|p| p.message.contains("listed twice")));
    assert!(
        p.iter().all(|p| p.location.starts_with("inv.toml:")),
        "{p:#?}"
    );
    let port = p
        .iter()
        .find(|p| p.field.as_deref() == Some("whm_port"))
        .unwrap();
    assert_eq!(port.location, "inv.toml:8 (hosts[1] h2)");
}

#[test]
fn types_are_checked() {
    let p = problems(tml(
        "[[hosts]]\nname = \"h\"\nwhm_port = \"x\"\ntls_insecure = \"maybe\"\nper_host = 1.5\ngroups = [1]\naccounts = [\"a\"]\n",
    ));
    assert_eq!(p.len(), 4, "{p:#?}");
    let p = problems(tml("[[hosts]]\nname = 5\naccounts = \"alice\"\n"));
    assert!(p.iter().any(|p| p.message.contains("no name")), "{p:#?}");
    let p = problems(tml("[[hosts]]\nname = \"h\"\naccounts = \"alice\"\n"));
    assert!(
        p[0].hint
            .as_deref()
            .unwrap()
            .contains("[\"alice\", \"bob\"]"),
        "{p:#?}"
    );
}

#[test]
fn cross_key_rules() {
    let pin = format!("sha256:{}", "AB".repeat(32));
    let p = problems(tml(&format!(
        "[[hosts]]\nname = \"h\"\ntls_insecure = true\ntls_pin = \"{pin}\"\naccounts = [\"a\"]\n"
    )));
    assert_eq!(p.len(), 1);
    assert!(p[0].message.contains("contradict"));
    let p = problems(tml(
        "[[hosts]]\nname = \"h\"\napi = \"cpanel\"\ncredential = \"env:X\"\naccounts = \"*\"\n",
    ));
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(p[0].message.contains("WHM listaccts"));
    let p = problems(tml(
        "[[hosts]]\nname = \"h\"\napi = \"cpanel\"\naccounts = [\"a\", { user = \"b\", credential = \"env:B\" }]\n",
    ));
    assert_eq!(p.len(), 1, "only a lacks a credential: {p:#?}");
    assert!(p[0].message.contains("account a"));
    assert!(tml("[[hosts]]\nname = \"h\"\napi = \"cpanel\"\ncredential = \"prompt\"\naccounts = [\"a\"]\n").is_ok());
    let p = problems(tml(
        "[[hosts]]\nname = \"h\"\naccounts = [\"a\"]\n[[hosts]]\nname = \"h\"\naccounts = [\"b\"]\n",
    ));
    assert_eq!(p.len(), 1);
    assert!(
        p[0].message.contains("defined twice (first at inv.toml:1"),
        "{}",
        p[0].message
    );
}

#[test]
fn literal_secrets_are_refused_and_never_echoed() {
    let secret = "JPQNSRU0DH448UJLGXH7KVJECC5QN9N9";
    for text in [
        format!("[[hosts]]\nname = \"h\"\ncredential = \"{secret}\"\naccounts = [\"a\"]\n"),
        format!("[[hosts]]\nname = \"h\"\ncredential = {secret}\naccounts = [\"a\"]\n"),
        format!("[[hosts]]\nname = \"h\"\nwhm_port = \"{secret}\"\naccounts = [\"a\"]\n"),
    ] {
        let e = tml(&text).unwrap_err();
        let shown = e.to_string();
        assert!(!shown.contains(secret), "{shown}");
        assert!(e.problems[0].location.starts_with("inv.toml:3"), "{shown}");
    }
    let e = csv(&format!("host,account,credential\nh,a,{secret}\n")).unwrap_err();
    assert!(!e.to_string().contains(secret));
    assert!(
        e.problems[0]
            .hint
            .as_deref()
            .unwrap()
            .contains("credential = \"env:NAME\"")
    );
}

#[test]
fn bad_files_give_clean_errors() {
    let p = problems(parse_bytes(
        b"host,account\nweb1,\xff\xfe\n",
        Format::Csv,
        "inv.csv",
        Path::new("."),
    ));
    assert_eq!(p[0].location, "inv.csv:2");
    assert!(p[0].message.contains("UTF-8"));
    for f in [Format::Csv, Format::Toml] {
        let p = problems(parse_bytes(b" \n\n", f, "x", Path::new(".")));
        assert!(p[0].message.contains("empty"));
    }
    let p = problems(tml("[defaults]\napi = \"whm\"\n"));
    assert!(p[0].message.contains("no hosts"), "{p:?}");
    let p = problems(csv("host,account\n# nothing\n"));
    assert!(p[0].message.contains("no hosts"), "{p:?}");
    let p = problems(csv("# only a comment\n"));
    assert!(p[0].message.contains("no header"), "{p:?}");
    let p = problems(tml("[[hosts]]\nname = \"a\"\n\naccounts = [\"a\"\n"));
    assert!(p[0].message.starts_with("not valid TOML"), "{p:?}");
    assert!(p[0].location.starts_with("inv.toml:"), "{p:?}");
}

#[test]
fn oversized_files_are_refused_before_parsing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.csv");
    std::fs::write(&path, vec![b'x'; 4097]).unwrap();
    let Err(p) = read_capped(&path, 4096) else {
        panic!("a file over the cap was read")
    };
    assert!(p.message.contains("larger than 4 KiB"), "{p}");
    assert_eq!(read_capped(&path, 4097).unwrap().len(), 4097);
}

#[test]
fn line_index_matches_counting() {
    let text = "a\nbb\n\nc";
    let lines = Lines::new(text);
    for (offset, line) in [(0, 1), (1, 1), (2, 2), (4, 2), (5, 3), (6, 4), (99, 4)] {
        assert_eq!(lines.line(offset), line, "offset {offset}");
    }
}

#[test]
fn a_large_csv_parses() {
    let mut text = String::from("host,account,credential\n");
    for h in 0..200 {
        for a in 0..100 {
            text.push_str(&format!("h{h},u{a},env:T\n"));
        }
    }
    let inv = csv(&text).unwrap();
    assert_eq!(inv.hosts.len(), 200);
    assert_eq!(inv.hosts[199].accounts.listed().len(), 100);
}

#[test]
fn relative_paths_resolve_against_the_inventory_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("certs")).unwrap();
    std::fs::write(dir.path().join("certs/ca.pem"), "pem").unwrap();
    let path = dir.path().join("fleet.toml");
    std::fs::write(&path, "[defaults]\ntls_ca = \"certs/ca.pem\"\ncredential = \"file:s/t\"\n[[hosts]]\nname = \"h\"\naccounts = [\"a\"]\n").unwrap();
    let inv = load(&path).unwrap();
    assert_eq!(inv.path, path);
    assert_eq!(
        inv.hosts[0].tls.ca.as_deref(),
        Some(dir.path().join("certs/ca.pem").as_path())
    );
    assert_eq!(
        inv.hosts[0].credential,
        Some(CredentialRef::File(dir.path().join("s/t")))
    );
    std::fs::write(
        &path,
        "[[hosts]]\nname = \"h\"\ntls_ca = \"missing.pem\"\naccounts = [\"a\"]\n",
    )
    .unwrap();
    let p = problems(load(&path));
    assert!(p[0].message.contains("does not exist"), "{p:?}");
    let other = dir.path().join("fleet.yaml");
    std::fs::write(&other, "x").unwrap();
    assert!(
        problems(load(&other))[0]
            .message
            .contains(".csv or a .toml")
    );
    assert!(
        problems(load(&dir.path().join("nope.csv")))[0]
            .message
            .contains("cannot open")
    );
}

#[test]
fn csv_flat_form_with_inheritance_groups_and_account_credentials() {
    let text = "host,account,api,credential,account_credential,groups,whm_port\n\
                # eu fleet\n\
                web1,alice,whm,env:WHM_TOKEN,,eu;shared,2088\n\
                web1,bob,,,,,\n\
                web2,carol,cpanel,,file:carol.token,,\n\
                web3,*,,env:WHM3,,,\n\
                web4,,whm,env:WHM4,,,\n";
    let inv = csv(text).unwrap();
    assert_eq!(inv.hosts.len(), 4);
    let w1 = &inv.hosts[0];
    assert_eq!(w1.origin, "inv.csv:3");
    assert_eq!(w1.groups, ["eu", "shared"]);
    assert_eq!(w1.whm_port, 2088);
    assert_eq!(w1.credential, Some(CredentialRef::Env("WHM_TOKEN".into())));
    let users: Vec<&str> = w1
        .accounts
        .listed()
        .iter()
        .map(|a| a.user.as_str())
        .collect();
    assert_eq!(users, ["alice", "bob"]);
    let w2 = &inv.hosts[1];
    assert_eq!(w2.api, Api::Cpanel);
    assert_eq!(w2.whm_port, 2087, "blank with no earlier row: the default");
    assert_eq!(
        w2.accounts.listed()[0].credential,
        Some(CredentialRef::File(PathBuf::from("/inv/carol.token")))
    );
    assert_eq!(inv.hosts[2].accounts, Accounts::All);
    assert_eq!(
        inv.hosts[3].accounts,
        Accounts::Listed(vec![]),
        "a host-only row"
    );
}

#[test]
fn csv_conflicts_name_both_lines_and_both_values() {
    let p = problems(csv(
        "host,account,whm_port,credential\nweb1,a,2087,env:A\n\nweb1,b,2088,env:B\n",
    ));
    assert_eq!(p.len(), 2, "{p:?}");
    assert_eq!(p[0].location, "inv.csv:4");
    assert_eq!(p[0].field.as_deref(), Some("whm_port"));
    assert!(
        p[0].message
            .contains("\"2088\" here but \"2087\" on line 2"),
        "{}",
        p[0].message
    );
    assert!(
        p[1].message
            .contains("credential is \"env:B\" here but \"env:A\" on line 2"),
        "references are not secrets: {}",
        p[1].message
    );
    let hint = p[1].hint.as_deref().unwrap();
    assert!(
        hint.contains("api = cpanel") && hint.contains("account_credential"),
        "{hint}"
    );
    // A literal in a credential cell is never echoed, even in a conflict.
    let p = problems(csv(
        "host,account,credential\nweb1,a,env:A\nweb1,b,QWERTYUIOPASDFGHJKLZXCVBNM123456\n",
    ));
    assert!(
        p.iter().all(|p| !p.to_string().contains("QWERTY")),
        "{p:#?}"
    );
}

#[test]
fn csv_pin_conflicts_show_both_pins_shortened_and_spellings_agree() {
    let a = "sha256:3F:1A:9C:27:55:0B:E4:D2:8A:61:C0:7E:19:B3:4D:F8:02:6C:A5:93:E7:1D:48:BB:0F:72:C6:39:5E:A1:84:D0";
    let b = "00112233445566778899AABBCCDDEEFF00112233445566778899aabbccddeeff";
    let p = problems(csv(&format!(
        "host,account,tls_pin\nweb1,x,{a}\nweb1,y,{b}\n"
    )));
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!(p[0].location, "inv.csv:3");
    assert_eq!(
        p[0].message,
        "host web1: tls_pin is sha256:00:11:22…DD:EE:FF here but sha256:3F:1A:9C…A1:84:D0 on line 2"
    );
    // The same pin in two spellings, and `WHM`/`whm`, agree.
    let lower = a
        .to_ascii_lowercase()
        .replace(':', "")
        .replace("sha256", "");
    let inv = csv(&format!(
        "host,account,tls_pin,api\nweb1,x,{a},WHM\nweb1,y,{lower},whm\n"
    ))
    .unwrap();
    assert!(inv.hosts[0].tls.pin.is_some());
}

#[test]
fn csv_cells_report_their_own_line() {
    // A quoted cell with a line break: the next cells are on the next line.
    let p = problems(csv(
        "host,groups,account,whm_port\nweb1,\"eu;\nus\",a,70000\n",
    ));
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!(p[0].location, "inv.csv:3", "{p:#?}");
}

#[test]
fn spreadsheet_padding_separators_and_sep_lines() {
    // Excel and LibreOffice: empty columns at the end of the header, rows padded with empty cells.
    let inv = csv("host,account,,,\nweb1,alice,,,\nweb1,bob,,\nweb2,carol\n").unwrap();
    assert_eq!(inv.hosts.len(), 2);
    assert_eq!(inv.hosts[0].accounts.listed().len(), 2);
    // An unnamed column in the middle is fine while it is empty, named when it is not.
    assert!(csv("host,,account\nweb1,,alice\n").is_ok());
    let p = problems(csv("host,,account\nweb1,x,alice\n"));
    assert_eq!(p[0].location, "inv.csv:2");
    assert!(p[0].message.contains("no name"), "{p:#?}");
    // Padding is empty cells only: a value past the header's end is still refused.
    let p = problems(csv("host,account,,\nweb1,alice,,x\n"));
    assert!(
        p[0].message.contains("4 cells but the header has 2"),
        "{p:#?}"
    );
    // `;`-separated (a European Excel), with groups quoted.
    let inv = csv(
        "# exported\nhost;account;groups;whm_port\nweb1;alice;\"eu;shared\";2087\nweb1;bob;;\n",
    )
    .unwrap();
    assert_eq!(inv.hosts[0].groups, ["eu", "shared"]);
    assert_eq!(inv.hosts[0].accounts.listed().len(), 2);
    // Excel's `sep=` first line is honoured and line numbers stay the file's.
    let inv = csv("sep=;\nhost;account\nweb1;alice\n").unwrap();
    assert_eq!(inv.hosts[0].origin, "inv.csv:3");
    let p = problems(csv("\"sep=,\"\nhost,account,whm_port\nweb1,alice,0\n"));
    assert_eq!(p[0].location, "inv.csv:3", "{p:#?}");
    let p = problems(csv("sep=ab\nhost,account\nweb1,alice\n"));
    assert_eq!(p[0].location, "inv.csv:1");
    assert!(p[0].hint.as_deref().unwrap().contains("sep=;"));
    // A header that mixes the two gets told so.
    let p = problems(csv("host;account,credential\nweb1;a,env:X\n"));
    assert!(
        p.iter()
            .any(|p| p.hint.as_deref().is_some_and(|h| h.contains("mixes"))),
        "{p:#?}"
    );
}

#[test]
fn csv_cpanel_credential_cells_belong_to_their_account() {
    let text = "host,api,account,credential\n\
                web2,cpanel,carol,file:carol.token\n\
                web2,,dave,env:DAVE_TOKEN\n\
                web2,,,env:WEB2_DEFAULT\n\
                web2,,erin,\n";
    let inv = csv(text).unwrap();
    let h = &inv.hosts[0];
    let acc = h.accounts.listed();
    assert_eq!(
        acc[0].credential,
        Some(CredentialRef::File("/inv/carol.token".into()))
    );
    assert_eq!(acc[0].origin, "inv.csv:2");
    assert_eq!(
        acc[1].credential,
        Some(CredentialRef::Env("DAVE_TOKEN".into()))
    );
    assert_eq!(acc[1].origin, "inv.csv:3");
    assert_eq!(acc[2].credential, None, "erin uses the host's");
    assert_eq!(
        h.credential,
        Some(CredentialRef::Env("WEB2_DEFAULT".into()))
    );
    assert_eq!(h.at("credential"), "inv.csv:4");
    // Agreeing cells are the host's, as on any host.
    let inv = csv("host,api,account,credential\nw,cpanel,a,env:X\nw,,b,env:X\n").unwrap();
    assert_eq!(
        inv.hosts[0].credential,
        Some(CredentialRef::Env("X".into()))
    );
    // Both columns on one row and different: refused.
    let p = problems(csv(
        "host,api,account,credential,account_credential\nw,cpanel,a,env:X,env:Y\nw,,b,env:Z,\n",
    ));
    assert!(
        p.iter().any(|p| p
            .message
            .contains("account a: credential and account_credential differ")
            && p.location == "inv.csv:2"),
        "{p:#?}"
    );
    // Without a host credential an account with an empty cell has none.
    let p = problems(csv(
        "host,api,account,credential\nw,cpanel,a,env:X\nw,,b,env:Y\nw,,c,\n",
    ));
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(
        p[0].message.contains("needs a credential for account c"),
        "{p:#?}"
    );
    assert_eq!(p[0].location, "inv.csv:4");
}

#[test]
fn problems_point_at_the_value_not_the_host() {
    let inv = tml("[defaults]\ncredential = \"env:A\"\n\n[[hosts]]\nname = \"w\"\naccounts = [\"a\", { user = \"b\", credential = \"env:B\" }]\n\n[[hosts]]\nname = \"v\"\n\ncredential = \"env:C\"\n").unwrap();
    let w = &inv.hosts[0];
    assert_eq!(w.at("credential"), "inv.toml:2 (defaults)");
    assert_eq!(w.at("whm_port"), w.origin);
    assert_eq!(w.accounts.listed()[1].origin, "inv.toml:6 (hosts[0] w)");
    assert_eq!(inv.hosts[1].at("credential"), "inv.toml:11 (hosts[1] v)");
    let inv = csv("host,account,credential\nweb1,a,\nweb1,b,env:X\n").unwrap();
    assert_eq!(inv.hosts[0].at("credential"), "inv.csv:3");
}

#[test]
fn csv_structure_errors() {
    let p = problems(csv("host,acount,whm_prot\nweb1,a,1\n"));
    assert!(
        p.iter().any(|p| p.field.as_deref() == Some("acount")
            && p.hint.as_deref() == Some("did you mean \"account\"?")),
        "{p:#?}"
    );
    assert!(
        p.iter().any(|p| p.field.as_deref() == Some("whm_prot")
            && p.hint.as_deref() == Some("did you mean \"whm_port\"?")),
        "{p:#?}"
    );
    assert!(
        p.iter().any(|p| p.message.contains("no account column")),
        "{p:#?}"
    );
    let p = problems(csv("host,account\nweb1,a\nweb1,b,extra\nweb2\n"));
    assert_eq!(p.len(), 2, "{p:#?}");
    assert_eq!(p[0].location, "inv.csv:3");
    assert!(p[0].message.contains("3 cells but the header has 2"));
    assert_eq!(p[1].location, "inv.csv:4");
    let p = problems(csv(
        "host,account\nweb1,*\nweb1,bob\n,carol\nweb2,a\nweb2,a\n",
    ));
    assert_eq!(p.len(), 3, "{p:#?}");
    assert!(
        p.iter()
            .any(|p| p.message.contains("host cell is empty") && p.location == "inv.csv:4")
    );
    assert!(p.iter().any(|p| p.message.contains("* (every account) and named") && p.location == "inv.csv:2"));
    assert!(
        p.iter()
            .any(|p| p.message.contains("listed twice") && p.location == "inv.csv:6")
    );
    let p = problems(csv("host,account,account_credential\nweb1,*,env:X\n"));
    assert!(p[0].message.contains("every account"));
    let p = problems(csv("host,account\n\"web1,a\n"));
    assert!(!p.is_empty());
}

#[test]
fn pin_parses_every_spelling() {
    let hex64 = "ab".repeat(32);
    let pin: Pin = hex64.parse().unwrap();
    assert_eq!(pin.0, [0xab; 32]);
    assert_eq!(
        format!("sha256:{}", hex64.to_uppercase())
            .parse::<Pin>()
            .unwrap(),
        pin
    );
    assert_eq!(pin.to_string().to_lowercase().parse::<Pin>().unwrap(), pin);
    assert!("sha256:abc".parse::<Pin>().is_err());
}

#[test]
fn did_you_mean_is_only_for_near_misses() {
    assert_eq!(did_you_mean("whm_prot", HOST_KEYS), Some("whm_port"));
    assert_eq!(did_you_mean("TLS_PIN", HOST_KEYS), Some("tls_pin"));
    assert_eq!(did_you_mean("colour", HOST_KEYS), None);
}

#[test]
fn sample_inventories_parse() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("inventories");
    let toml = load(&root.join("example.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert!(toml.hosts.len() >= 3);
    let csv = load(&root.join("example.csv")).unwrap_or_else(|e| panic!("{e}"));
    assert!(csv.hosts.len() >= 3);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn check_problems(r: Result<Inventory, InputError>, file: &str) -> Result<(), TestCaseError> {
        if let Err(e) = r {
            prop_assert!(!e.problems.is_empty());
            for p in &e.problems {
                prop_assert!(p.location.starts_with(file), "{p}");
            }
        }
        Ok(())
    }

    fn toml_ish() -> impl Strategy<Value = String> {
        let line = prop_oneof![
            Just("[defaults]".to_string()),
            Just("[[hosts]]".to_string()),
            "name = \"[a-z0-9.]{0,6}\"",
            "accounts = \\[(\"[a-z*]{0,4}\", ?){0,3}\\]",
            Just("accounts = \"*\"".to_string()),
            "(api|auth|whm_user|credential|tls_pin|address|tls_ca) = \"[a-z:*]{0,8}\"",
            "(whm_port|cpanel_port|per_host|wat) = -?[0-9]{1,6}",
            "tls_insecure = (true|false|1)",
            "groups = \\[\"[a-z ]{0,4}\"\\]",
            ".{0,12}",
        ];
        proptest::collection::vec(line, 0..14).prop_map(|l| l.join("\n"))
    }

    fn csv_ish() -> impl Strategy<Value = String> {
        let header = "host,account(,(api|whm_port|credential|groups|tls_insecure|account_credential|hots))?{0,3}";
        let row = "[a-z0-9*;:,\"# .-]{0,20}";
        (header, proptest::collection::vec(row, 0..10))
            .prop_map(|(h, rows)| format!("{h}\n{}", rows.join("\n")))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            check_problems(parse_bytes(&bytes, Format::Csv, "f.csv", Path::new(".")), "f.csv")?;
            check_problems(parse_bytes(&bytes, Format::Toml, "f.toml", Path::new(".")), "f.toml")?;
        }

        #[test]
        fn toml_ish_text_parses_or_gives_located_problems(text in toml_ish()) {
            check_problems(parse_bytes(text.as_bytes(), Format::Toml, "f.toml", Path::new(".")), "f.toml")?;
        }

        #[test]
        fn csv_ish_text_parses_or_gives_located_problems(text in csv_ish()) {
            check_problems(parse_bytes(text.as_bytes(), Format::Csv, "f.csv", Path::new(".")), "f.csv")?;
        }

        #[test]
        fn generated_csv_round_trips(
            fleet in proptest::collection::btree_map(
                "[a-z][a-z0-9.-]{0,10}",
                (proptest::collection::btree_set("u[a-z0-9_]{0,8}", 1..5), 1u16..=65535, any::<bool>()),
                1..6,
            ),
            // What spreadsheets write: `;` separators, a `sep=` line, padding empty cells.
            (semicolon, sep_line, pad) in (any::<bool>(), any::<bool>(), 0usize..3),
        ) {
            let sep = if semicolon { ";" } else { "," };
            let padding = sep.repeat(pad);
            let mut text = String::new();
            if sep_line {
                text.push_str(&format!("sep={sep}\r\n"));
            }
            text.push_str(&format!("# generated\nhost{sep}account{sep}whm_port{sep}groups{padding}\n"));
            for (host, (accounts, port, grouped)) in &fleet {
                for (i, a) in accounts.iter().enumerate() {
                    // Host settings on the first row only: later rows inherit.
                    if i == 0 {
                        let groups = if *grouped { "\"g1;g2\"" } else { "" };
                        text.push_str(&format!("{host}{sep}{a}{sep}{port}{sep}{groups}{padding}\n"));
                    } else {
                        text.push_str(&format!("{host}{sep}{a}{sep}{sep}{padding}\n"));
                    }
                }
            }
            let inv = parse_bytes(text.as_bytes(), Format::Csv, "f.csv", Path::new(".")).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(inv.hosts.len(), fleet.len());
            for (h, (name, (accounts, port, grouped))) in inv.hosts.iter().zip(&fleet) {
                prop_assert_eq!(&h.name, name);
                prop_assert_eq!(h.whm_port, *port);
                prop_assert_eq!(h.groups.len(), if *grouped { 2 } else { 0 });
                let got: Vec<&str> = h.accounts.listed().iter().map(|a| a.user.as_str()).collect();
                let want: Vec<&str> = accounts.iter().map(String::as_str).collect();
                prop_assert_eq!(got, want);
            }
        }

        #[test]
        fn pin_display_parse_round_trip(bytes in any::<[u8; 32]>()) {
            let pin = Pin(bytes);
            prop_assert_eq!(pin.to_string().parse::<Pin>().unwrap(), pin);
            let bare: String = pin.to_string().trim_start_matches("sha256:").replace(':', "").to_lowercase();
            prop_assert_eq!(bare.parse::<Pin>().unwrap(), pin);
        }
    }
}

#[test]
fn protect_globs_of_defaults_and_host_add_up_and_bad_ones_name_their_line() {
    let inv = tml(
        "[defaults]\ncredential = \"env:T\"\nprotect = [\"backup-*\"]\n\n[[hosts]]\nname = \"a\"\naccounts = [\"x\"]\nprotect = [\"TNC-WP-*\"]\n\n[[hosts]]\nname = \"b\"\naccounts = [\"y\"]\n",
    )
    .unwrap();
    let globs = |h: &Host| {
        h.protect
            .iter()
            .map(|g| g.as_str().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(globs(&inv.hosts[0]), vec!["TNC-WP-*", "backup-*"]);
    assert_eq!(globs(&inv.hosts[1]), vec!["backup-*"]);
    let inv = csv("host,account,protect\nweb1,alice,backup-*;dns-*\n").unwrap();
    assert_eq!(globs(&inv.hosts[0]), vec!["backup-*", "dns-*"]);
    let p = problems(tml(
        "[defaults]\ncredential = \"env:T\"\n\n[[hosts]]\nname = \"a\"\naccounts = [\"x\"]\nprotect = [\"bad[\"]\n",
    ));
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].field.as_deref(), Some("protect"));
    assert!(p[0].location.starts_with("inv.toml:7"), "{}", p[0].location);
}

#[test]
fn ssh_hosts_need_no_credential_and_check_their_trust() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("id"), "key").unwrap();
    std::fs::write(dir.path().join("kh"), "[a]:22 ssh-ed25519 AAAA").unwrap();
    let pin = "SHA256:ktUIQRVc1H8NZC4UPYF7HasdqyU3kYq+Eku80Xyaw4g";
    let text = format!(
        r#"
[defaults]
api = "ssh"
ssh_identity = "id"
credential = "env:UNUSED"

[[hosts]]
name = "web1"
ssh_port = 2222
ssh_host_key = "{pin}"
accounts = "*"

[[hosts]]
name = "web2"
ssh_user = "admin"
ssh_known_hosts = "kh"
accounts = ["bob"]
"#
    );
    let inv = parse_bytes(text.as_bytes(), Format::Toml, "inv.toml", dir.path()).unwrap();
    let (w1, w2) = (&inv.hosts[0], &inv.hosts[1]);
    assert_eq!(w1.api, Api::Ssh);
    assert_eq!(w1.ssh.port, Some(2222));
    assert_eq!(w1.ssh.login(), "root");
    assert_eq!(w1.ssh.host_key.as_deref(), Some(pin));
    assert_eq!(
        w1.ssh.identity.as_deref(),
        Some(dir.path().join("id").as_path())
    );
    assert_eq!(w2.ssh.login(), "admin");
    assert_eq!(
        w2.ssh.known_hosts.as_deref(),
        Some(dir.path().join("kh").as_path())
    );
    assert_eq!(
        w1.accounts,
        Accounts::All,
        "whmapi1 listaccts discovers them"
    );

    let bad = format!(
        r#"
[[hosts]]
name = "a"
api = "ssh"
whm_user = "reseller1"
ssh_host_key = "SHA256:short"
ssh_identity = "missing-key"

[[hosts]]
name = "b"
api = "ssh"
ssh_insecure = true
ssh_host_key = "{pin}"

[[hosts]]
name = "c"
api = "ssh"
ssh_known_hosts = "kh"
ssh_host_key = "{pin}"
ssh_port = 0
"#
    );
    let p = problems(parse_bytes(
        bad.as_bytes(),
        Format::Toml,
        "inv.toml",
        dir.path(),
    ));
    let fields: Vec<&str> = p.iter().map(|p| p.field.as_deref().unwrap_or("")).collect();
    for want in [
        "whm_user",
        "ssh_host_key",
        "ssh_identity",
        "ssh_insecure",
        "ssh_port",
    ] {
        assert!(fields.contains(&want), "{want} in {fields:?}: {p:#?}");
    }
    assert_eq!(p.len(), 6, "{p:#?}");
}

#[test]
fn ssh_fingerprints_are_checked_strictly() {
    assert!(valid_ssh_fingerprint(
        "SHA256:ktUIQRVc1H8NZC4UPYF7HasdqyU3kYq+Eku80Xyaw4g"
    ));
    for bad in [
        "ktUIQRVc1H8NZC4UPYF7HasdqyU3kYq+Eku80Xyaw4g",
        "SHA256:ktUIQRVc1H8NZC4UPYF7HasdqyU3kYq+Eku80Xyaw4g=",
        "MD5:ktUIQRVc1H8NZC4UPYF7HasdqyU3kYq+Eku80Xyaw4g",
        "SHA256:ktUIQRVc1H8NZC4UPYF7HasdqyU3kYq-Eku80Xyaw4g",
    ] {
        assert!(!valid_ssh_fingerprint(bad), "{bad}");
    }
}

#[test]
fn a_sink_table_is_read_with_its_paths_beside_the_inventory() {
    let base = "[[hosts]]\nname = \"web1\"\naccounts = [\"alice\"]\ncredential = \"env:T\"\n";
    let inv = tml(&format!(
        "{base}\n[sink]\nto = \"bao+https://v:8200/secret/{{host}}/{{account}}\"\nca_file = \"ca.pem\"\ntoken_file = \"/run/t\"\n"
    ))
    .unwrap();
    let s = inv.sink.unwrap();
    assert_eq!(s.to, "bao+https://v:8200/secret/{host}/{account}");
    assert_eq!(s.ca_file.as_deref(), Some(Path::new("/inv/ca.pem")));
    assert_eq!(s.token_file.as_deref(), Some(Path::new("/run/t")));
    assert!(s.loc.starts_with("inv.toml:6"), "{}", s.loc);
    assert!(tml(base).unwrap().sink.is_none());
    let p = problems(tml(&format!("{base}\n[sink]\nca_file = \"ca.pem\"\n")));
    assert!(p[0].message.contains("has no `to`"), "{p:?}");
    let p = problems(tml(&format!("{base}\n[sink]\nto = 3\n")));
    assert!(p[0].message.contains("non-empty string"), "{p:?}");
    let p = problems(tml(&format!("sink = \"x\"\n{base}")));
    assert!(p[0].message.contains("sink must be a table"), "{p:?}");
}
