//! What an age user expects of tokenfleet (issue 11): `-i` is the inventory and `-k` the key,
//! `-R -` and `open -` read standard input, `-o -` writes the handoff to standard output (the
//! journal stays on disk, `--journal`), `-p` is the passphrase, SSH keys are recipients and
//! identities, and every "how to open" line fits the key the run was sealed with. Interop is
//! checked against the reference `age` CLI (required under CI) and `ssh-keygen`.

use crate::common::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A run with `input` on stdin; stdout kept as bytes (a binary handoff is not text).
struct Piped {
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
}

fn run_piped(env: &Env, args: &[&str], input: &[u8], vars: &[(&str, &str)]) -> Piped {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokenfleet"));
    cmd.current_dir(env.dir.path())
        .env("WHM_TOKEN", env.fleet.root_token())
        .env_remove("TOKENFLEET_PASSPHRASE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .args(args);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("tokenfleet starts");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    Piped {
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The reference `age` CLI is here (CI installs it and must have it).
fn age_cli() -> bool {
    let have = Command::new("age").arg("--version").output().is_ok();
    if !have {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install the age CLI (apt-get install age)"
        );
        eprintln!("age CLI not installed: skipping the check against it");
    }
    have
}

/// An ed25519 SSH key pair from `ssh-keygen` (passphrase `pass`, empty for none): the private
/// key file and the `.pub` line. `None` (said on stderr) where ssh-keygen is missing outside CI.
fn ssh_key(env: &Env, name: &str, pass: &str) -> Option<(PathBuf, String)> {
    let key = env.path(name);
    let made = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-C",
            "alice@example",
            "-N",
            pass,
            "-f",
        ])
        .arg(&key)
        .output();
    match made {
        Ok(o) if o.status.success() => {}
        other => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must have ssh-keygen (openssh-client): {other:?}"
            );
            eprintln!("ssh-keygen not available: skipping the SSH key checks");
            return None;
        }
    }
    let public = std::fs::read_to_string(env.path(&format!("{name}.pub"))).unwrap();
    Some((key, public.trim().to_string()))
}

/// `age -d -i KEY` of the bytes in `file`: the CSV plaintext.
fn age_decrypt(key: &Path, file: &Path) -> String {
    let out = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(key)
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "age -d failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn create<'a>(env: &'a Env, name: &'a str) -> Vec<&'a str> {
    vec![
        "create",
        "-i",
        env.toml(),
        "--name",
        name,
        "--progress",
        "never",
    ]
}

fn tokens_in(csv_text: &str) -> usize {
    csv_text.lines().skip(1).filter(|l| !l.is_empty()).count()
}

/// `-i` is the inventory on fleet commands; keys are `-k/--identity` on `open` and `resume`
/// (the old `-i` still works there, hidden); every help says so.
#[test]
fn inventory_is_i_and_identity_is_k() {
    let env = Env::start(small_fleet(1, 2));
    let key = env.identity_file.to_str().unwrap();
    let mut args = create(&env, "k");
    args.extend(["-r", &env.recipient, "-o", "k.age"]);
    env.run(&args).expect(0);
    for cmd in ["open", "resume"] {
        let help = env.run(&[cmd, "--help"]);
        help.expect(0);
        assert!(
            help.stdout.contains("-k, --identity <KEY>"),
            "{cmd}: {}",
            help.stdout
        );
        assert!(!help.stdout.contains("-i,"), "{cmd}: {}", help.stdout);
    }
    let help = env.run(&["create", "--help"]);
    assert!(
        help.stdout.contains("-i, --inventory <FILE>"),
        "{}",
        help.stdout
    );
    assert!(help.stdout.contains("-p, --passphrase"), "{}", help.stdout);
    let top = env.run(&["--help"]);
    assert!(top.stdout.contains("tokenfleet open deploy.age -k key.txt"));
    assert!(!top.stdout.contains("--identity key.txt"), "{}", top.stdout);
    for flag in ["-k", "--identity", "-i"] {
        let opened = env.run(&["open", "k.age", flag, key, "--format", "csv"]);
        opened.expect(0);
        assert_eq!(tokens_in(&opened.stdout), 2, "{flag}");
    }
    // The success line shows the new spelling's long form, which stays valid.
    let mut again = create(&env, "k2");
    again.extend(["-r", &env.recipient, "-o", "k2.age"]);
    let shown = env.run(&again);
    shown.expect(0);
    assert!(
        shown
            .stderr
            .contains("tokenfleet open k2.age --identity KEY"),
        "{}",
        shown.stderr
    );
}

/// `-R -` reads the recipients from stdin; `open -` reads a handoff (binary or armored) or a
/// journal from stdin.
#[test]
fn stdin_for_recipients_and_open() {
    let env = Env::start(small_fleet(1, 2));
    let key = env.identity_file.to_str().unwrap();
    let recipients = format!("# team\n{}\n", env.recipient);
    for (out, armor) in [("bin.age", false), ("arm.age", true)] {
        let mut args = create(&env, out.trim_end_matches(".age"));
        args.extend(["-R", "-", "-o", out]);
        if armor {
            args.push("--armor");
        }
        let made = run_piped(&env, &args, recipients.as_bytes(), &[]);
        assert_eq!(made.code, 0, "{}", made.stderr);
        assert_eq!(env.open_handoff(&env.path(out)).len(), 2);
        let bytes = std::fs::read(env.path(out)).unwrap();
        let opened = run_piped(
            &env,
            &["open", "-", "-k", key, "--format", "csv"],
            &bytes,
            &[],
        );
        assert_eq!(opened.code, 0, "{}", opened.stderr);
        assert_eq!(tokens_in(&String::from_utf8(opened.stdout).unwrap()), 2);
        let journal = std::fs::read(env.path(&format!("{out}.journal"))).unwrap();
        let opened = run_piped(
            &env,
            &["open", "-", "-k", key, "--format", "csv"],
            &journal,
            &[],
        );
        assert_eq!(opened.code, 0, "{}", opened.stderr);
        assert_eq!(tokens_in(&String::from_utf8(opened.stdout).unwrap()), 2);
    }
    // A mistake on stdin is named as stdin.
    let mut args = create(&env, "bad");
    args.extend(["-R", "-", "-o", "bad.age"]);
    let bad = run_piped(&env, &args, b"not-a-key\n", &[]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("-R - (standard input):1"),
        "{}",
        bad.stderr
    );
    let bad = run_piped(&env, &["open", "-", "-k", key], b"garbage", &[]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("not a readable age file"),
        "{}",
        bad.stderr
    );
}

/// `-o -` writes the encrypted handoff, and nothing else, to stdout; the journal stays on disk
/// (`--journal`, or `tokenfleet-RUN.journal` here); a terminal gets no binary; `--report -`
/// cannot share stdout with it.
#[test]
fn handoff_to_stdout() {
    let env = Env::start(small_fleet(1, 3));
    let key = env.identity_file.to_str().unwrap();
    let mut args = create(&env, "so");
    args.extend(["-r", &env.recipient, "-o", "-", "--journal", "so.journal"]);
    let made = run_piped(&env, &args, b"", &[]);
    assert_eq!(made.code, 0, "{}", made.stderr);
    assert!(made.stdout.starts_with(b"age-encryption.org/v1\n"));
    assert!(!env.path("-").exists(), "no file named -");
    assert!(env.path("so.journal").exists());
    assert!(
        made.stderr.contains("sealed 3 token(s) to standard output"),
        "{}",
        made.stderr
    );
    // The whole of stdout is the age file.
    std::fs::write(env.path("so.age"), &made.stdout).unwrap();
    assert_eq!(env.open_handoff(&env.path("so.age")).len(), 3);
    let opened = env.run(&["open", "so.journal", "-k", key, "--format", "csv"]);
    assert_eq!(tokens_in(&opened.expect(0).stdout), 3);
    if age_cli() {
        assert_eq!(
            tokens_in(&age_decrypt(&env.identity_file, &env.path("so.age"))),
            3
        );
    }

    // Without --journal: tokenfleet-RUN.journal in the current folder, named on stderr.
    let mut args = create(&env, "def");
    args.extend(["-r", &env.recipient, "-o", "-", "--armor"]);
    let made = run_piped(&env, &args, b"", &[]);
    assert_eq!(made.code, 0, "{}", made.stderr);
    assert!(
        made.stdout
            .starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----")
    );
    let journals: Vec<String> = std::fs::read_dir(env.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("tokenfleet-") && n.ends_with(".journal"))
        .collect();
    assert_eq!(journals.len(), 1, "{journals:?}");
    assert!(
        made.stderr.contains(&format!("journal: {}", journals[0])),
        "{}",
        made.stderr
    );

    // --report - and -o - cannot both have stdout.
    let mut args = create(&env, "rep");
    args.extend(["-r", &env.recipient, "-o", "-", "--report", "-"]);
    let r = run_piped(&env, &args, b"", &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stdout.is_empty());
    assert!(r.stderr.contains("--report -"), "{}", r.stderr);

    // A terminal on stdout: binary refused (as age does), armored written.
    if Command::new("script").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have script(1) (util-linux)"
        );
        eprintln!("script(1) not available: skipping the terminal check");
        return;
    }
    let bin = env!("CARGO_BIN_EXE_tokenfleet");
    let line = format!(
        "{bin} create -i {} --name tty --progress never -r {} -o - --journal tty.journal",
        env.toml(),
        env.recipient
    );
    let tty = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .current_dir(env.dir.path())
        .env("WHM_TOKEN", env.fleet.root_token())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&tty.stdout);
    assert!(
        text.contains("refusing to write binary age output to a terminal"),
        "{text}"
    );
    assert!(!env.path("tty.journal").exists(), "refused before anything");
}

/// `-p` is `--passphrase`; after a passphrase run no line says `-i KEY` or `--identity`.
#[test]
fn passphrase_short_and_its_hints() {
    let env = Env::start(small_fleet(1, 2));
    let pass = [("TOKENFLEET_PASSPHRASE", "correct horse battery")];
    let mut args = create(&env, "pp");
    args.extend(["-p", "-o", "pp.age"]);
    let made = env.run_env(&args, &pass);
    made.expect(0);
    assert!(
        made.stderr
            .contains("open with: age -d pp.age or tokenfleet open pp.age"),
        "{}",
        made.stderr
    );
    assert!(!made.stderr.contains("-i KEY") && !made.stderr.contains("--identity"));
    let opened = env.run_env(&["open", "pp.age", "--format", "csv"], &pass);
    assert_eq!(tokens_in(&opened.expect(0).stdout), 2);

    // Interrupted: the resume line has no --identity either.
    let env = Env::start(slow_fleet(2, 12, 40));
    let mut args = create(&env, "ppi");
    // One create per request, so the interrupt lands with work still queued.
    args.extend([
        "-p",
        "-o",
        "ppi.age",
        "-j",
        "2",
        "--per-host",
        "1",
        "--batch",
        "1",
    ]);
    let mut child = spawn_env(&env, &args, &pass, "ppi");
    signal_after_created(&mut child, &env.path("ppi.age.journal"), 2, libc::SIGINT);
    assert_eq!(wait_bounded(&mut child), 130);
    let int = read(&env, "ppi");
    assert!(
        int.stderr
            .contains("continue with `tokenfleet resume ppi.age.journal`"),
        "{}",
        int.stderr
    );
    assert!(!int.stderr.contains("--identity"), "{}", int.stderr);
}

/// age's SSH recipients (`-r "ssh-ed25519 …"`, a `.pub` file with `-R`) and identities (`-k
/// ~/.ssh/id_ed25519`, an encrypted one with its passphrase) for create, open and resume; the
/// reference `age -d -i KEY` opens the result. A killed `-o -` run resumes to stdout.
#[test]
fn ssh_keys_as_age_takes_them() {
    let env = Env::start(slow_fleet(2, 8, 30));
    let Some((id, public)) = ssh_key(&env, "id_ed25519", "") else {
        return;
    };
    let id_s = id.to_str().unwrap();
    let mut args = create(&env, "ssh");
    args.extend(["-r", &public, "-o", "ssh.age"]);
    env.run(&args).expect(0);
    let opened = env.run(&["open", "ssh.age", "-k", id_s, "--format", "csv"]);
    assert_eq!(tokens_in(&opened.expect(0).stdout), 16);
    if age_cli() {
        assert_eq!(tokens_in(&age_decrypt(&id, &env.path("ssh.age"))), 16);
    }
    // An encrypted SSH key: its passphrase is asked (here: TOKENFLEET_PASSPHRASE).
    let (enc, enc_pub) = ssh_key(&env, "id_enc", "sesame").unwrap();
    std::fs::write(env.path("team.txt"), format!("# ssh\n{enc_pub}\n")).unwrap();
    let mut args = create(&env, "enc");
    args.extend(["-R", "team.txt", "-o", "enc.age"]);
    env.run(&args).expect(0);
    let enc_s = enc.to_str().unwrap();
    let opened = env.run_env(
        &["open", "enc.age", "-k", enc_s, "--format", "csv"],
        &[("TOKENFLEET_PASSPHRASE", "sesame")],
    );
    assert_eq!(tokens_in(&opened.expect(0).stdout), 16);
    let wrong = env.run_env(
        &["open", "enc.age", "-k", enc_s],
        &[("TOKENFLEET_PASSPHRASE", "nope")],
    );
    assert_eq!(wrong.code, 2);
    assert!(
        wrong.stderr.contains("does not open this SSH key"),
        "{}",
        wrong.stderr
    );

    // Killed part-way with -o -, resumed with the SSH key: the final handoff on stdout again.
    let mut args = create(&env, "kill");
    args.extend([
        "-R",
        "id_ed25519.pub",
        "-o",
        "-",
        "--journal",
        "k.journal",
        "-j",
        "2",
    ]);
    let mut child = spawn(&env, &args, "kill");
    signal_after_created(&mut child, &env.path("k.journal"), 3, libc::SIGKILL);
    assert_eq!(wait_bounded(&mut child), 128 + libc::SIGKILL);
    let resumed = run_piped(
        &env,
        &["resume", "k.journal", "-k", id_s, "--progress", "never"],
        b"",
        &[],
    );
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert!(resumed.stdout.starts_with(b"age-encryption.org/v1\n"));
    assert!(!env.path("-").exists() && !env.path("k").exists());
    std::fs::write(env.path("k.age"), &resumed.stdout).unwrap();
    let opened = env.run(&["open", "k.age", "-k", id_s, "--format", "csv"]);
    assert_eq!(tokens_in(&opened.expect(0).stdout), 16);
    if age_cli() {
        assert_eq!(tokens_in(&age_decrypt(&id, &env.path("k.age"))), 16);
    }
}

/// `open`'s errors do not say "nothing was contacted": open contacts nothing anyway.
#[test]
fn open_errors_do_not_mention_contacting() {
    let env = Env::start(small_fleet(1, 1));
    let key = env.identity_file.to_str().unwrap();
    let missing = env.run(&["open", "missing.age", "-k", key]);
    missing.expect(2);
    assert!(missing.stderr.contains("missing.age"), "{}", missing.stderr);
    assert!(!missing.stderr.contains("contacted"), "{}", missing.stderr);
    std::fs::write(env.path("pub.txt"), format!("{}\n", env.recipient)).unwrap();
    let wrong_key = env.run(&["open", "missing.age", "-k", "pub.txt"]);
    wrong_key.expect(2);
    assert!(
        !wrong_key.stderr.contains("contacted"),
        "{}",
        wrong_key.stderr
    );
}
