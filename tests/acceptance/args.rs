//! Bad arguments, rage-style: each gets exit 2, the flag it is about, a hint, nothing contacted,
//! and no echo of a secret key passed by mistake. Also: a reader that goes away (`| head`) never
//! turns a run into a panic.

use crate::common::*;
use age::secrecy::ExposeSecret;
use std::process::{Command, Stdio};

#[track_caller]
fn usage_error(env: &Env, args: &[&str], envs: &[(&str, &str)], must: &[&str]) -> Run {
    let mut all = vec!["create", "-i", env.toml(), "--name", "a-{account}"];
    all.extend_from_slice(args);
    let run = env.run_env(&all, envs);
    assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    for m in must {
        assert!(
            run.stderr.contains(m),
            "{args:?}: lacks {m:?}: {}",
            run.stderr
        );
    }
    assert_eq!(env.total_requests(), 0, "{args:?}: nothing contacted");
    run
}

#[test]
fn bad_arguments_get_a_clear_error_with_a_hint() {
    let env = Env::start(small_fleet(1, 2));
    let secret_key = env.identity.to_string().expose_secret().to_string();
    let r = env.recipient.as_str();

    usage_error(
        &env,
        &["-o", "o.age"],
        &[],
        &["no recipients", "hint:", "-r age1"],
    );
    usage_error(
        &env,
        &["-o", "o.age", "-r", "bob"],
        &[],
        &["-r", "not an age public key", "hint:"],
    );
    usage_error(
        &env,
        &[
            "-o",
            "o.age",
            "-r",
            // ssh-ed25519 and ssh-rsa are accepted, as age does (tests/acceptance/age_habits.rs).
            "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTY=",
        ],
        &[],
        &["-r", "not supported", "hint:", "ssh-ed25519"],
    );
    // An identity where a recipient belongs: named as such, and never echoed.
    let run = usage_error(
        &env,
        &["-o", "o.age", "-r", &secret_key],
        &[],
        &["secret key", "age-keygen -y"],
    );
    assert!(
        !run.stderr.contains(&secret_key[15..]),
        "the secret key is not echoed"
    );
    let run = usage_error(
        &env,
        &["-o", "o.age", "-R", "key.txt"],
        &[],
        &["key.txt", "secret key", "hint:"],
    );
    assert!(
        !run.stderr.contains(&secret_key[15..]),
        "the secret key is not echoed"
    );
    usage_error(
        &env,
        &["-o", "o.age", "-R", "missing.txt"],
        &[],
        &["missing.txt", "hint:"],
    );

    std::fs::write(env.path("exists.age"), b"keep me").unwrap();
    usage_error(
        &env,
        &["-o", "exists.age", "-r", r],
        &[],
        &["already exists", "--force"],
    );
    assert_eq!(std::fs::read(env.path("exists.age")).unwrap(), b"keep me");
    usage_error(&env, &["-o", ".", "-r", r], &[], &["-o", "hint:"]);
    usage_error(
        &env,
        &["-o", "no/such/dir/o.age", "-r", r],
        &[],
        &["-o", "mkdir", "hint:"],
    );

    usage_error(
        &env,
        &["-o", "o.age", "-r", r, "--expires-at", "2001-01-01"],
        &[],
        &["--expires-at", "past", "hint:"],
    );
    usage_error(
        &env,
        &["-o", "o.age", "-r", r, "--expires-at", "someday"],
        &[],
        &["--expires-at", "hint:"],
    );
    usage_error(
        &env,
        &["-o", "o.age", "-r", r, "--expires-in", "0s"],
        &[],
        &["--expires-in", "hint:"],
    );
    usage_error(
        &env,
        &["-o", "o.age", "-r", r, "--expires-in", "-5d"],
        &[],
        &["--expires-in", "future", "hint:"],
    );
    usage_error(
        &env,
        &[
            "-o",
            "o.age",
            "-r",
            r,
            "--expires-in",
            "5d",
            "--expires-at",
            "2099-01-01",
        ],
        &[],
        &["--expires-in", "--expires-at", "cannot be used with"],
    );
    usage_error(&env, &["-o", "o.age", "-r", r, "-j", "0"], &[], &["--jobs"]);
    usage_error(
        &env,
        &["-o", "o.age", "-r", r, "-l", "nohost"],
        &[],
        &["--limit", "hint:"],
    );
    usage_error(&env, &["-r", r], &[], &["--output"]);

    // --passphrase with no terminal and no TOKENFLEET_PASSPHRASE: that one problem, not also
    // "no recipients".
    let run = usage_error(
        &env,
        &["-o", "o.age", "--passphrase"],
        &[],
        &["--passphrase", "TOKENFLEET_PASSPHRASE"],
    );
    assert!(!run.stderr.contains("no recipients"), "{}", run.stderr);
    // --passphrase with -r: refused before asking.
    let run = usage_error(
        &env,
        &["-o", "o.age", "--passphrase", "-r", r],
        &[("TOKENFLEET_PASSPHRASE", "correct horse battery staple")],
        &["cannot be combined", "hint:"],
    );
    assert!(!run.stderr.contains("correct horse"));
    usage_error(
        &env,
        &["-o", "o.age", "--passphrase"],
        &[("TOKENFLEET_PASSPHRASE", "")],
        &["TOKENFLEET_PASSPHRASE", "empty", "hint:"],
    );

    for f in ["o.age", "o.age.journal"] {
        assert!(!env.path(f).exists(), "{f} not written");
    }
    // With --force the existing output is replaced, and the run works.
    env.run(&[
        "create",
        "-i",
        env.toml(),
        "--name",
        "a-{account}",
        "-o",
        "exists.age",
        "-r",
        r,
        "--force",
    ])
    .expect(0);
    assert_eq!(env.open_handoff(&env.path("exists.age")).len(), 2);
}

/// `tokenfleet … 2>&1 | head -1`: stdout and stderr close early. Output is lost, the work is not,
/// and the process does not panic (exit 101).
#[test]
fn a_closed_stdout_and_stderr_do_not_crash_a_run() {
    let env = Env::start(small_fleet(2, 3));
    let cases: [&[&str]; 3] = [
        &[
            "create",
            "-i",
            env.toml(),
            "--name",
            "x",
            "-r",
            &env.recipient,
            "-o",
            "x.age",
            "--dry-run",
        ],
        &[
            "create",
            "-i",
            env.toml(),
            "--name",
            "x",
            "-r",
            &env.recipient,
            "-o",
            "x.age",
            "-v",
        ],
        &["list", "-i", env.toml(), "--format", "json"],
    ];
    for args in cases {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tokenfleet"))
            .current_dir(env.dir.path())
            .env("WHM_TOKEN", env.fleet.root_token())
            .args(args)
            .args(["--progress", "never"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        drop(child.stderr.take());
        let status = child.wait().unwrap();
        assert_ne!(status.code(), Some(101), "{args:?} panicked");
        assert!(
            status.code().is_some_and(|c| c <= 2),
            "{args:?}: {status:?}"
        );
    }
    // The create still sealed its tokens.
    assert_eq!(env.open_handoff(&env.path("x.age")).len(), 6);
    // `tokenfleet completions bash | head`, `tokenfleet man | head`: exit 0, no panic.
    for args in [&["completions", "bash"][..], &["man"][..]] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tokenfleet"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("panicked"),
            "{args:?}"
        );
    }
}
