//! The SSH front through the system OpenSSH client against real sshds: commands act on the state
//! the HTTPS ports see, unsafe command lines are recorded, faults lose connections, host keys and
//! client keys are checked, and a ControlMaster connection is one login. Skipped (with the
//! reason) where sshd is missing, unless `CI` is set.

use std::path::Path;
use std::process::{Command, Output};

use cpanel_sim::{Faults, FleetSpec, SshFront};

use super::*;

/// Skip outside CI when the SSH tools are missing; fail in CI.
fn unavailable() -> bool {
    match SshFront::unavailable() {
        None => false,
        Some(why) if std::env::var_os("CI").is_some() => panic!("{why}"),
        Some(why) => {
            eprintln!("skipping: {why}");
            true
        }
    }
}

struct SshEnv {
    env: Env,
    front: SshFront,
    dir: tempfile::TempDir,
}

fn start(hosts: usize, accounts: usize) -> SshEnv {
    let env = Env::start(FleetSpec::uniform(hosts, accounts));
    let dir = tempfile::tempdir().unwrap();
    let front = SshFront::start(&env.fleet, &dir.path().join("ssh")).unwrap();
    SshEnv { env, front, dir }
}

impl SshEnv {
    fn command(&self, host: &str, known_hosts: &Path, extra: &[&str], line: &str) -> Command {
        let mut c = Command::new("ssh");
        c.arg("-F")
            .arg("/dev/null")
            .arg("-i")
            .arg(self.front.client_key())
            .arg("-p")
            .arg(self.front.port(host).to_string())
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
            .args([
                "-o",
                "GlobalKnownHostsFile=/dev/null",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "ConnectTimeout=20",
            ])
            .args(extra)
            .arg(format!(
                "{}@{}",
                self.front.login(),
                self.front.address(host)
            ))
            .arg(line)
            .stdin(std::process::Stdio::null());
        c
    }

    fn ssh_with(&self, host: &str, extra: &[&str], line: &str) -> Output {
        self.command(host, self.front.known_hosts(), extra, line)
            .output()
            .unwrap()
    }

    fn ssh(&self, host: &str, line: &str) -> Output {
        self.ssh_with(host, &[], line)
    }

    /// Run `line` and parse its stdout as JSON, requiring exit 0.
    fn json(&self, host: &str, line: &str) -> Value {
        let out = self.ssh(host, line);
        assert_eq!(out.status.code(), Some(0), "{line}: {}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
    }
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}, stdout {:?}, stderr {:?}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

const UAPI: &str = "/usr/local/cpanel/bin/uapi --output=json";
const WHMAPI1: &str = "/usr/local/cpanel/bin/whmapi1 --output=json";

#[test]
fn ssh_and_https_share_one_state() {
    if unavailable() {
        return;
    }
    let s = start(2, 2);
    let web1 = s.env.host("web001");
    // Created over SSH, seen over HTTPS.
    let v = s.json(
        "web001",
        &format!("{UAPI} --user=u001a0001 Tokens create_full_access name=ci-ssh-1"),
    );
    assert_eq!(v["apiversion"], 3);
    assert_eq!(v["func"], "create_full_access");
    assert_eq!(v["module"], "Tokens");
    assert_eq!(v["result"]["status"], 1, "{v}");
    let secret = v["result"]["data"]["token"].as_str().unwrap().to_string();
    assert!(web1.token_valid("u001a0001", &secret));
    let listed = uapi_via_whm(
        &s.env.client,
        &web1,
        &s.env.root_auth(),
        "u001a0001",
        "list",
        &[],
    )
    .json();
    assert_eq!(listed["data"]["uapi"]["data"][0]["name"], "ci-ssh-1");
    // Created over HTTPS, listed and revoked over SSH, gone over HTTPS.
    create_token(&s.env, &web1, "u001a0002", "ci-https-1");
    let v = s.json("web001", &format!("{UAPI} --user=u001a0002 Tokens list"));
    assert_eq!(v["result"]["data"][0]["name"], "ci-https-1", "{v}");
    let v = s.json(
        "web001",
        &format!("{UAPI} --user='u001a0002' Tokens revoke 'name=ci-https-1'"),
    );
    assert_eq!(v["result"]["data"], 1, "{v}");
    assert!(web1.account_tokens("u001a0002").is_empty());
    // The same validation and messages as over HTTPS.
    let v = s.json(
        "web001",
        &format!("{UAPI} --user=u001a0001 Tokens create_full_access name=ci-ssh-1"),
    );
    assert_eq!(v["result"]["status"], 0);
    assert_eq!(
        v["result"]["errors"][0],
        "A conflicting API token with the name “ci-ssh-1” already exists."
    );
    let v = s.json("web001", &format!("{UAPI} --user=nobody Tokens list"));
    assert_eq!(v["result"]["status"], 0);
    assert_eq!(
        v["result"]["errors"][0],
        "The user “nobody” does not exist."
    );

    // whmapi1 as root: WHM tokens with repeated, URI-encoded arguments ('+' is a plus).
    let v = s.json(
        "web001",
        &format!("{WHMAPI1} api_token_create token_name=ci-whm acl-1=list-accts acl-2=create-acct whitelist_ip=10.0.0.0%2F8"),
    );
    assert_eq!(v["metadata"]["result"], 1, "{v}");
    assert_eq!(v["metadata"]["command"], "api_token_create");
    let whm_secret = v["data"]["token"].as_str().unwrap().to_string();
    assert!(web1.whm_token_valid("root", &whm_secret));
    let d = &web1.whm_token_details("root")[1];
    assert_eq!(d.acls, vec!["list-accts", "create-acct"]);
    assert_eq!(d.whitelist_ips, vec!["10.0.0.0/8"]);
    let v = s.json("web001", &format!("{WHMAPI1} api_token_list"));
    assert!(v["data"]["tokens"]["ci-whm"].is_object(), "{v}");
    let v = s.json("web001", &format!("{WHMAPI1} listaccts"));
    assert_eq!(v["data"]["acct"].as_array().unwrap().len(), 2);
    let v = s.json("web001", &format!("{WHMAPI1} version"));
    assert_eq!(v["metadata"]["result"], 1);
    let v = s.json(
        "web001",
        &format!("{WHMAPI1} api_token_revoke token_name-1=ci-whm"),
    );
    assert_eq!(v["metadata"]["result"], 1, "{v}");
    assert!(!web1.whm_token_valid("root", &whm_secret));

    // Counted like HTTP requests; recorded with the login and the connection.
    let st = web1.stats();
    assert_eq!(st.count("ssh/uapi/Tokens/create_full_access"), 2);
    assert_eq!(st.count("ssh/whmapi1/api_token_create"), 1);
    assert!(st.mutations() >= 4);
    assert!(st.total_requests >= 10);
    assert_eq!(s.env.host("web002").stats().total_requests, 0);
    let cmds = s.front.commands("web001");
    assert_eq!(cmds.len() as u64, st.total_requests - 2); // two HTTPS calls
    assert_eq!(cmds[0].login, s.front.login());
    assert_eq!(cmds[0].argv[0], "/usr/local/cpanel/bin/uapi");
    assert_eq!(cmds[0].argv.last().unwrap(), "name=ci-ssh-1");
    assert!(cmds[0].connection.starts_with("127.0.0.1 "));
    // One ssh process per command here: as many logins and connections as commands.
    assert_eq!(s.front.logins("web001"), cmds.len() as u64);
    assert_eq!(s.front.command_connections("web001"), cmds.len() as u64);
    assert!(s.front.commands("web002").is_empty());
    assert_eq!(s.front.violations(), Vec::<String>::new());
}

#[test]
fn unsafe_lines_and_bare_names_are_violations() {
    if unavailable() {
        return;
    }
    let s = start(1, 1);
    let out = s.ssh("web001", "uapi --output=json --user=u001a0001 Tokens list");
    assert_eq!(out.status.code(), Some(127), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "sh: 1: uapi: not found\n"
    );
    assert_eq!(s.front.violations().len(), 1);

    for line in [
        format!("{UAPI} --user=u001a0001 Tokens list; id"),
        format!("{UAPI} --user=u001a0001 Tokens create_full_access name=$(id -un)"),
        format!("{UAPI} --user=u001a0001 Tokens list | cat"),
        format!("{UAPI} --user=\"$USER\" Tokens list"),
    ] {
        let out = s.ssh("web001", &line);
        assert_eq!(out.status.code(), Some(2), "{line}: {}", text(&out));
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "cpanel-sim: unsafe command line\n"
        );
    }
    assert_eq!(s.front.violations().len(), 5);
    assert!(s.env.host("web001").account_tokens("u001a0001").is_empty());

    // A secret anywhere in the line is a violation, the command still answered; the
    // violation names the token, never its secret.
    let secret = s.env.fleet.root_token().to_string();
    let v = s.json(
        "web001",
        &format!("{WHMAPI1} api_token_get_details token={secret}"),
    );
    assert_eq!(v["metadata"]["result"], 1, "{v}");
    let violations = s.front.violations();
    assert_eq!(violations.len(), 6);
    assert!(
        violations[5].contains("secret on a command line"),
        "{violations:?}"
    );
    assert!(!violations.iter().any(|v| v.contains(&secret)));
    // Quoted metacharacters are data, not violations.
    let v = s.json(
        "web001",
        &format!("{UAPI} --user=u001a0001 Tokens create_full_access 'name=a;b' \"expires_at=\""),
    );
    assert_eq!(v["result"]["status"], 0, "{v}");
    assert_eq!(s.front.violations().len(), 6);
}

#[test]
fn options_sudo_and_cli_faults() {
    if unavailable() {
        return;
    }
    let s = start(1, 1);
    let web1 = s.env.host("web001");
    let out = s.ssh(
        "web001",
        "/usr/local/cpanel/bin/uapi --output=json Tokens list",
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "This program must be passed the --user flag when run by root!\n"
    );
    // Without --output=json: YAML, exit 0.
    let out = s.ssh(
        "web001",
        "/usr/local/cpanel/bin/uapi --user=u001a0001 Tokens list",
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("---\napiversion: 3\n"));
    // sudo -n -- runs as root; refused by the fault.
    let v = s.json("web001", &format!("sudo -n -- {WHMAPI1} version"));
    assert_eq!(v["metadata"]["result"], 1);
    web1.set_faults(Faults {
        sudo_refused: true,
        ..Faults::default()
    });
    let out = s.ssh("web001", &format!("sudo -n -- {WHMAPI1} version"));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "sudo: a password is required\n"
    );
    web1.set_faults(Faults {
        cli_missing: true,
        ..Faults::default()
    });
    let out = s.ssh("web001", &format!("{UAPI} --user=u001a0001 Tokens list"));
    assert_eq!(out.status.code(), Some(127));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "sh: 1: /usr/local/cpanel/bin/uapi: not found\n"
    );
    web1.set_faults(Faults {
        cli_non_json: true,
        ..Faults::default()
    });
    let out = s.ssh(
        "web001",
        &format!("{UAPI} --user=u001a0001 Tokens create_full_access name=x"),
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("Use of uninitialized value"));
    assert!(web1.account_tokens("u001a0001").is_empty());
    // drip: the same answer, a byte at a time.
    web1.set_faults(Faults {
        drip: std::time::Duration::from_millis(1),
        ..Faults::default()
    });
    let v = s.json("web001", &format!("{UAPI} --user=u001a0001 Tokens list"));
    assert_eq!(v["result"]["status"], 1);
    assert_eq!(s.front.violations(), Vec::<String>::new());
}

#[test]
fn a_dropped_create_answer_kills_the_connection_after_the_create() {
    if unavailable() {
        return;
    }
    let s = start(1, 1);
    let web1 = s.env.host("web001");
    web1.set_faults(Faults {
        drop_after_create: 1,
        ..Faults::default()
    });
    let out = s.ssh(
        "web001",
        &format!("{UAPI} --user=u001a0001 Tokens create_full_access name=lost"),
    );
    assert_eq!(out.status.code(), Some(255), "{}", text(&out));
    eprintln!("plain client on a dropped answer: {}", text(&out));
    assert!(out.stdout.is_empty());
    assert_eq!(web1.account_tokens("u001a0001")[0].name, "lost");

    // Through a ControlMaster: the master dies with the connection; the mux client exits 255.
    let cm = s.dir.path().join("cm");
    let cm_opt = format!("ControlPath={}", cm.display());
    let master = s.ssh_with(
        "web001",
        &[
            "-o",
            "ControlMaster=yes",
            "-o",
            &cm_opt,
            "-o",
            "ControlPersist=yes",
            "-f",
            "-N",
        ],
        "",
    );
    assert_eq!(master.status.code(), Some(0), "{}", text(&master));
    let v = s.json_mux(&cm_opt, &format!("{UAPI} --user=u001a0001 Tokens list"));
    assert_eq!(v["result"]["data"][0]["name"], "lost");
    web1.set_faults(Faults {
        drop_create_answers: 1,
        ..Faults::default()
    });
    let out = s.ssh_with(
        "web001",
        &["-o", "ControlMaster=no", "-o", &cm_opt],
        &format!("{UAPI} --user=u001a0001 Tokens create_full_access name=lost2"),
    );
    assert_eq!(out.status.code(), Some(255), "{}", text(&out));
    eprintln!("mux client after the master died: {}", text(&out));
    assert_eq!(web1.account_tokens("u001a0001").len(), 2);
    // The master is gone: a mux-only client cannot connect.
    let out = s.ssh_with(
        "web001",
        &["-o", "ControlMaster=no", "-o", &cm_opt, "-O", "check"],
        "",
    );
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    eprintln!("-O check after the master died: {}", text(&out));
    assert_eq!(s.front.violations(), Vec::<String>::new());
}

impl SshEnv {
    fn json_mux(&self, cm_opt: &str, line: &str) -> Value {
        let out = self.ssh_with("web001", &["-o", "ControlMaster=no", "-o", cm_opt], line);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

#[test]
fn a_control_master_is_one_login() {
    if unavailable() {
        return;
    }
    let s = start(2, 1);
    let cm = s.dir.path().join("cm2");
    let cm_opt = format!("ControlPath={}", cm.display());
    let master = s.ssh_with(
        "web001",
        &[
            "-o",
            "ControlMaster=yes",
            "-o",
            &cm_opt,
            "-o",
            "ControlPersist=yes",
            "-f",
            "-N",
        ],
        "",
    );
    assert_eq!(master.status.code(), Some(0), "{}", text(&master));
    for i in 0..4 {
        let v = s.json_mux(
            &cm_opt,
            &format!("{UAPI} --user=u001a0001 Tokens create_full_access name=m{i}"),
        );
        assert_eq!(v["result"]["status"], 1, "{v}");
    }
    // Sessions side by side on the one connection (MaxSessions 10).
    std::thread::scope(|scope| {
        for i in 0..6 {
            let (s, cm_opt) = (&s, &cm_opt);
            scope.spawn(move || {
                let v = s.json_mux(
                    cm_opt,
                    &format!("{UAPI} --user=u001a0001 Tokens create_full_access name=p{i}"),
                );
                assert_eq!(v["result"]["status"], 1, "{v}");
            });
        }
    });
    assert_eq!(s.front.logins("web001"), 1);
    assert_eq!(s.front.connections("web001"), 1);
    assert_eq!(s.front.command_connections("web001"), 1);
    assert_eq!(s.front.commands("web001").len(), 10);
    assert_eq!(s.env.host("web001").account_tokens("u001a0001").len(), 10);
    let out = s.ssh_with("web001", &["-o", &cm_opt, "-O", "exit"], "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(s.front.logins("web002"), 0);
}

#[test]
fn host_keys_and_client_keys_are_checked() {
    if unavailable() {
        return;
    }
    let s = start(2, 1);
    // The fingerprint is what ssh-keygen prints for the key sshd presents.
    let scan = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(s.front.known_hosts())
        .output()
        .unwrap();
    let scanned = String::from_utf8_lossy(&scan.stdout);
    assert!(
        scanned.contains(&s.front.fingerprint("web001")),
        "{scanned}"
    );
    assert!(s.front.fingerprint("web001").starts_with("SHA256:"));
    assert_ne!(s.front.fingerprint("web001"), s.front.fingerprint("web002"));
    let known = std::fs::read_to_string(s.front.known_hosts()).unwrap();
    assert!(known.starts_with(&format!(
        "[127.0.0.1]:{} ssh-ed25519 AAAA",
        s.front.port("web001")
    )));

    let before = s.front.fingerprint("web001");
    let port = s.front.port("web001");
    s.front.change_host_key("web001").unwrap();
    assert_eq!(s.front.port("web001"), port);
    assert_ne!(s.front.fingerprint("web001"), before);
    let out = s.ssh("web001", &format!("{WHMAPI1} version"));
    assert_eq!(out.status.code(), Some(255), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("REMOTE HOST IDENTIFICATION HAS CHANGED"),
        "{}",
        text(&out)
    );
    assert!(s.front.commands("web001").is_empty());
    // Trusting the new key, it answers.
    let fresh = s.dir.path().join("fresh_known_hosts");
    std::fs::write(&fresh, format!("{}\n", s.front.known_hosts_line("web001"))).unwrap();
    let out = s
        .command("web001", &fresh, &[], &format!("{WHMAPI1} version"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    s.front.refuse_client_key("web002", true);
    let out = s.ssh("web002", &format!("{WHMAPI1} version"));
    assert_eq!(out.status.code(), Some(255));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{}",
        text(&out)
    );
    assert_eq!(s.front.logins("web002"), 0);
    assert_eq!(s.front.connections("web002"), 1);
    s.front.refuse_client_key("web002", false);
    assert_eq!(
        s.ssh("web002", &format!("{WHMAPI1} version")).status.code(),
        Some(0)
    );
    assert_eq!(s.front.logins("web002"), 1);

    // Down: connection refused; back up on the same port.
    s.front.set_down("web002", true).unwrap();
    let out = s.ssh("web002", &format!("{WHMAPI1} version"));
    assert_eq!(out.status.code(), Some(255));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Connection refused"),
        "{}",
        text(&out)
    );
    s.front.set_down("web002", false).unwrap();
    assert_eq!(
        s.ssh("web002", &format!("{WHMAPI1} version")).status.code(),
        Some(0)
    );
    assert_eq!(s.front.violations(), Vec::<String>::new());
}

#[test]
fn the_ssh_inventory_matches_the_front() {
    if unavailable() {
        return;
    }
    let s = start(2, 2);
    for pin in [true, false] {
        let path = s
            .front
            .write_inventory(&s.env.fleet, s.dir.path(), pin)
            .unwrap();
        assert_eq!(path, s.dir.path().join("inventory-ssh.toml"));
        let inv: toml::Table = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let h = &inv["hosts"].as_array().unwrap()[1];
        let web2 = s.env.host("web002");
        assert_eq!(h["name"].as_str(), Some("web002"));
        assert_eq!(h["api"].as_str(), Some("ssh"));
        assert_eq!(h["address"].as_str(), Some("127.0.0.1"));
        assert_eq!(
            h["ssh_port"].as_integer(),
            Some(s.front.port("web002") as i64)
        );
        assert_eq!(h["ssh_user"].as_str(), Some(s.front.login().as_str()));
        assert_eq!(
            h["ssh_identity"].as_str(),
            Some(s.front.client_key().to_str().unwrap())
        );
        assert_eq!(
            h["cpanel_port"].as_integer(),
            Some(web2.cpanel_port() as i64)
        );
        assert_eq!(h["whm_port"].as_integer(), Some(web2.whm_port() as i64));
        assert_eq!(h["tls_pin"].as_str(), Some(web2.cert_pin().as_str()));
        assert_eq!(h["accounts"].as_array().unwrap().len(), 2);
        if pin {
            assert_eq!(
                h["ssh_host_key"].as_str(),
                Some(s.front.fingerprint("web002").as_str())
            );
            assert!(h.get("ssh_known_hosts").is_none());
        } else {
            assert_eq!(
                h["ssh_known_hosts"].as_str(),
                Some(s.front.known_hosts().to_str().unwrap())
            );
            assert!(h.get("ssh_host_key").is_none());
        }
    }
}
