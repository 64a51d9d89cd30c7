//! Secret hygiene over every mode at once: create, rotate (with the old tokens seeded), revoke, dry
//! runs, a failing host, `-v`, `--report -`, list, check, `open`, and `api = "cpanel"` with account
//! credentials. Every token and credential string the test knows of (the WHM token, seeded and
//! minted tokens, account credentials, a passphrase) is searched for in stdout, stderr, reports,
//! journals, every file left in the working folder and the process's private TMPDIR, and in the
//! argv of a running tokenfleet (read from /proc during a slow run; it spawns no children, which
//! is checked too). None may appear. Outputs, journals and reports are 0600, and no temporary or
//! partial plaintext file is left behind.

use crate::common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PASSPHRASE: &str = "hunter2-but-much-longer-passphrase";

fn all_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn no_secret_anywhere_in_any_mode() {
    let mut spec = small_fleet(3, 3);
    spec.hosts[2].faults.html_login = true; // a failing host in every run
    let mut env = Env::start(spec);
    let tmp = env.path("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let tmp_s = tmp.to_str().unwrap().to_string();
    let mut secrets = vec![PASSPHRASE.to_string()];
    // Old tokens for rotate to revoke.
    for h in env.fleet.hosts() {
        for a in h.accounts() {
            secrets.push(h.add_account_token(&a, &format!("old-{a}"), None));
        }
    }
    // web001 again as api = "cpanel" with each account's own credential (a file and an env var).
    let w1 = env.fleet.host("web001").clone();
    let mut cp = format!(
        "[defaults]\napi = \"cpanel\"\n\n[[hosts]]\nname = \"web001\"\naddress = \"127.0.0.1\"\nwhm_port = {}\ncpanel_port = {}\ntls_pin = \"{}\"\naccounts = [\n",
        w1.whm_port(),
        w1.cpanel_port(),
        w1.cert_pin()
    );
    let mut acct_env = Vec::new();
    for (i, a) in w1.accounts().iter().enumerate() {
        let secret = w1.add_account_token(a, "tool", None);
        secrets.push(secret.clone());
        if i == 0 {
            acct_env.push(("ACCT_TOKEN".to_string(), secret));
            cp.push_str(&format!(
                "  {{ user = \"{a}\", credential = \"env:ACCT_TOKEN\" }},\n"
            ));
        } else {
            let f = format!("cred-{a}");
            cpanel_sim::write_private(&env.path(&f), secret.as_bytes()).unwrap();
            cp.push_str(&format!(
                "  {{ user = \"{a}\", credential = \"file:{f}\" }},\n"
            ));
        }
    }
    cp.push_str("]\n");
    std::fs::write(env.path("cp.toml"), cp).unwrap();
    env.secrets.extend(secrets);

    let envs: Vec<(&str, &str)> = vec![
        ("TMPDIR", tmp_s.as_str()),
        ("TOKENFLEET_PASSPHRASE", PASSPHRASE),
        ("ACCT_TOKEN", acct_env[0].1.as_str()),
    ];
    let inv = env.toml().to_string();
    let r = env.recipient.clone();
    let id = env.identity_file.to_str().unwrap().to_string();
    let pn = ["--progress", "never"];
    let runs_args: Vec<(Vec<&str>, i32)> = vec![
        (vec!["check", "-i", &inv, "-v"], 1),
        (
            vec!["list", "-i", &inv, "--format", "json", "--report", "-"],
            1,
        ),
        (vec!["list", "-i", &inv, "--format", "csv", "-v"], 1),
        (
            vec![
                "create",
                "-i",
                &inv,
                "--name",
                "new-{account}",
                "-r",
                &r,
                "-o",
                "c.age",
                "--dry-run",
                "-v",
            ],
            1,
        ),
        (
            vec![
                "create",
                "-i",
                &inv,
                "--name",
                "new-{account}",
                "-r",
                &r,
                "-o",
                "c.age",
                "-v",
                "--report",
                "c.json",
            ],
            1,
        ),
        (
            vec![
                "create",
                "-i",
                &inv,
                "--name",
                "new-{account}",
                "-r",
                &r,
                "-o",
                "again.age",
                "--report",
                "-",
            ],
            1,
        ),
        (
            vec![
                "create",
                "-i",
                &inv,
                "--name",
                "pp-{account}",
                "--passphrase",
                "-o",
                "pp.age",
                "--armor",
                "--format",
                "json",
            ],
            1,
        ),
        (
            vec![
                "rotate",
                "-i",
                &inv,
                "--name",
                "rot-{account}",
                "--revoke",
                "old-*",
                "-r",
                &r,
                "-o",
                "rot.age",
                "-v",
                "--report",
                "rot.json",
            ],
            1,
        ),
        (
            vec![
                "rotate",
                "-i",
                "cp.toml",
                "--name",
                "cprot-{account}",
                "--revoke",
                "tool",
                "-r",
                &r,
                "-o",
                "cprot.age",
                "-v",
                "--report",
                "cprot.json",
            ],
            0,
        ),
        (
            vec!["revoke", "-i", &inv, "--name", "new-*", "--dry-run", "-v"],
            1,
        ),
        (
            vec![
                "revoke", "-i", &inv, "--name", "new-*", "-v", "--report", "-",
            ],
            1,
        ),
        (
            vec!["open", "c.age", "--identity", &id, "--format", "table"],
            0,
        ),
        (
            vec![
                "open",
                "c.age.journal",
                "--identity",
                &id,
                "--format",
                "json",
            ],
            0,
        ),
    ];
    let mut runs = Vec::new();
    for (args, code) in &runs_args {
        let mut a = args.clone();
        if a[0] != "open" {
            a.extend(pn);
        }
        let run = env.run_env(&a, &envs);
        assert_eq!(run.code, *code, "{a:?}\n{}\n{}", run.stdout, run.stderr);
        assert!(!run.stderr.contains("panicked"));
        runs.push(run);
    }
    // `open` shows the secrets on purpose (it is the decryption tool): its stdout is the one
    // place they may appear, so it is checked for having them and left out of the scan.
    let opened = runs.pop().unwrap();
    let opened_table = runs.pop().unwrap();

    // Every minted secret, from the handoffs.
    let mut minted = Vec::new();
    for f in ["c.age", "again.age", "rot.age", "cprot.age"] {
        if env.path(f).exists() {
            minted.extend(
                env.open_handoff(&env.path(f))
                    .into_iter()
                    .map(|r| r["token"].clone()),
            );
        }
    }
    assert!(minted.len() >= 6 + 6 + 3, "{}", minted.len());
    for m in &minted[..6] {
        assert!(opened_table.stdout.contains(m.as_str()));
        assert!(opened.stdout.contains(m.as_str()));
    }

    // A slow run: read its argv and children from /proc while it works.
    for h in env.fleet.hosts() {
        let mut f = h.faults();
        f.latency = Duration::from_millis(150);
        h.set_faults(f);
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_tokenfleet"))
        .current_dir(env.dir.path())
        .env("WHM_TOKEN", env.fleet.root_token())
        .env("TMPDIR", &tmp_s)
        .env_remove("TOKENFLEET_PASSPHRASE")
        .args([
            "create",
            "-i",
            &inv,
            "--name",
            "slow-{account}",
            "-r",
            &r,
            "-o",
            "slow.age",
        ])
        .args([
            "--per-host",
            "1",
            "--progress",
            "never",
            "-v",
            "--report",
            "slow.json",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut samples = 0;
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() && started.elapsed() < Duration::from_secs(120) {
        if let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            let text = String::from_utf8_lossy(&cmdline);
            for s in env.secrets.iter().chain(&minted) {
                assert!(!text.contains(s.as_str()), "a secret in tokenfleet's argv");
            }
            samples += 1;
        }
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
            for t in tasks.flatten() {
                let children =
                    std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
                assert!(
                    children.trim().is_empty(),
                    "tokenfleet spawned a child: {children}"
                );
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(samples >= 1, "the slow run was observed");
    let slow = Run::from(out);
    assert_eq!(slow.code, 1, "{}", slow.stderr);
    minted.extend(
        env.open_handoff(&env.path("slow.age"))
            .into_iter()
            .map(|r| r["token"].clone()),
    );
    runs.push(slow);

    // The scan: stdout, stderr, and every plaintext file in the folder and the private TMPDIR.
    let refs: Vec<&Run> = runs.iter().collect();
    env.assert_no_secret_leaked(&refs, &minted);

    // Modes, and nothing half-written left behind.
    for f in all_files(env.dir.path()) {
        let name = f.file_name().unwrap().to_str().unwrap().to_string();
        let expected = name.ends_with(".age")
            || name.ends_with(".journal")
            || name.ends_with(".json")
            || name.ends_with(".toml")
            || name.ends_with(".csv")
            || name.ends_with(".pem")
            || name.starts_with("cred-")
            || name.ends_with(".retry")
            || name == "fleet.env"
            || name == "key.txt";
        assert!(expected, "unexpected file left behind: {}", f.display());
        if name.ends_with(".age")
            || name.ends_with(".journal")
            || name.ends_with(".json")
            || name.ends_with(".retry")
        {
            assert_eq!(mode(&f), 0o600, "{}", f.display());
        }
    }
    assert!(
        std::fs::read_dir(&tmp).unwrap().next().is_none(),
        "nothing left in TMPDIR"
    );
}

/// A run where every host fails writes no handoff at all (no empty or partial file).
#[test]
fn a_failed_run_leaves_no_partial_plaintext() {
    let mut spec = small_fleet(2, 2);
    for h in &mut spec.hosts {
        h.faults.reset_mid_body = true;
    }
    let env = Env::start(spec);
    let run = env.run(&[
        "create",
        "-i",
        env.toml(),
        "--name",
        "z",
        "-r",
        &env.recipient,
        "-o",
        "z.age",
        "--retries",
        "0",
        "--progress",
        "never",
    ]);
    run.expect(1);
    assert!(!env.path("z.age").exists());
    for f in all_files(env.dir.path()) {
        let name = f.file_name().unwrap().to_str().unwrap().to_string();
        assert!(
            !name.contains("tmp") && !name.starts_with('.'),
            "leftover {}",
            f.display()
        );
    }
    env.assert_no_secret_leaked(&[&run], &[]);
}
