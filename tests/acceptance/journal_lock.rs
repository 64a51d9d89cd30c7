//! One writer per journal: while a run holds `OUT.journal` (create, rotate or resume), a second
//! run for the same journal refuses at once with exit 2, names the holder, and sends nothing; the
//! holder's final handoff holds every secret of the run. A lock file left behind by a killed run
//! blocks nobody.

use crate::common::*;
use crate::resume::{assert_finished, create_args, tokens_before};
use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::process::Child;
use std::time::Duration;

/// Wait (bounded) until `child` holds the lock: its lock file names its pid.
fn wait_for_holder(lock: &Path, child: &mut Child) {
    let pid = format!("\"pid\":{}", child.id());
    for _ in 0..2000 {
        if std::fs::read_to_string(lock).is_ok_and(|t| t.contains(&pid)) {
            return;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it was seen holding the lock"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("{} never named pid {}", lock.display(), child.id());
}

/// Two `resume`s of one journal at once: the second is refused (exit 2, naming the first's pid),
/// and the first's final handoff holds every secret of the run, the ones sealed before the kill
/// included. The kill left a lock file behind, which blocked neither.
#[test]
fn a_second_resume_is_refused_and_the_first_delivers_every_secret() {
    let env = Env::start(slow_fleet(2, 8, 150));
    let before = tokens_before(&env);
    let journal = env.path("two.age.journal");
    let lock = env.path("two.age.journal.lock");
    let mut run = spawn(&env, &create_args(&env, "two.age"), "run");
    signal_after_created(&mut run, &journal, 3, libc::SIGKILL);
    assert_eq!(wait_bounded(&mut run), 128 + libc::SIGKILL);
    assert!(
        lock.exists(),
        "a killed run leaves its lock file (unlocked)"
    );

    let key = env.identity_file.to_str().unwrap().to_string();
    let resume = [
        "resume",
        "two.age.journal",
        "--identity",
        &key,
        "--progress",
        "never",
    ];
    let mut first = spawn(&env, &resume, "resume1");
    wait_for_holder(&lock, &mut first);
    let second = env.run(&resume);
    second.expect(2);
    assert!(
        second.stderr.contains(&format!(
            "two.age.journal: in use by tokenfleet resume (pid {}, started 20",
            first.id()
        )) && second
            .stderr
            .contains("wait for it to finish, or stop it; this run changed nothing"),
        "{}",
        second.stderr
    );
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first resume was still running when the second was refused"
    );
    assert_eq!(
        wait_bounded(&mut first),
        0,
        "{}",
        read(&env, "resume1").stderr
    );
    let rows = env.open_handoff(&env.path("two.age"));
    assert_finished(&env, &rows, &before);
    assert!(
        !lock.exists(),
        "the holder removes its lock file at the end"
    );
    let minted: Vec<String> = rows.iter().map(|r| r["token"].clone()).collect();
    env.assert_no_secret_leaked(
        &[&second, &read(&env, "run"), &read(&env, "resume1")],
        &minted,
    );
}

/// A `resume` while the original create is still running is refused (exit 2, naming the
/// create); the create finishes and its handoff holds every secret.
#[test]
fn resume_is_refused_while_the_original_run_is_alive() {
    let env = Env::start(slow_fleet(2, 6, 150));
    let before = tokens_before(&env);
    let journal = env.path("alive.age.journal");
    let mut run = spawn(&env, &create_args(&env, "alive.age"), "run");
    // Signal 0 delivers nothing: this only waits for the first sealed secret.
    signal_after_created(&mut run, &journal, 1, 0);
    let key = env.identity_file.to_str().unwrap().to_string();
    let resumed = env.run(&["resume", "alive.age.journal", "--identity", &key]);
    resumed.expect(2);
    assert!(
        resumed.stderr.contains(&format!(
            "in use by tokenfleet create (pid {}, started 20",
            run.id()
        )),
        "{}",
        resumed.stderr
    );
    assert!(
        run.try_wait().unwrap().is_none(),
        "the create was still running when the resume was refused"
    );
    assert_eq!(wait_bounded(&mut run), 0, "{}", read(&env, "run").stderr);
    let rows = env.open_handoff(&env.path("alive.age"));
    assert_finished(&env, &rows, &before);
    assert!(!env.path("alive.age.journal.lock").exists());
    let minted: Vec<String> = rows.iter().map(|r| r["token"].clone()).collect();
    env.assert_no_secret_leaked(&[&resumed, &read(&env, "run")], &minted);
}

/// A create into an OUT whose journal lock is held (here by the test itself, as another run
/// would) is refused with exit 2 and the holder's details, with or without `--force`, before
/// anything is sent and before an old journal is moved aside. Once the holder is gone, its lock
/// file (left behind, as by a SIGKILL) blocks nobody.
#[test]
fn create_into_a_locked_output_sends_nothing() {
    let env = Env::start(small_fleet(1, 2));
    let lock_path = env.path("held.age.journal.lock");
    let mut held = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&lock_path)
        .unwrap();
    // SAFETY: the descriptor is valid for as long as `held` lives.
    let r = unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
    writeln!(
        held,
        r#"{{"pid":4242,"command":"resume","started":"2026-12-01T23:10:02Z"}}"#
    )
    .unwrap();
    let old_journal = b"an earlier run's journal, kept as it is\n";
    std::fs::write(env.path("held.age.journal"), old_journal).unwrap();
    let args = |force: bool| {
        let mut a = vec![
            "create",
            "-i",
            env.toml(),
            "--name",
            "held",
            "-r",
            &env.recipient,
            "-o",
            "held.age",
        ];
        if force {
            a.push("--force");
        }
        a
    };
    let requests = env.total_requests();
    for force in [false, true] {
        let refused = env.run(&args(force));
        refused.expect(2);
        assert!(
            refused.stderr.contains(
                "error: held.age.journal: in use by tokenfleet resume (pid 4242, started \
                 2026-12-01T23:10:02Z)\n  hint: wait for it to finish, or stop it; this run \
                 changed nothing\nnothing was contacted"
            ),
            "--force {force}: {}",
            refused.stderr
        );
        assert_eq!(env.total_requests(), requests, "no request sent");
        assert_eq!(
            std::fs::read(env.path("held.age.journal")).unwrap(),
            old_journal,
            "the journal in use is neither replaced nor moved aside"
        );
        assert!(!env.path("held.age").exists());
    }
    let kept_aside = std::fs::read_dir(env.dir.path())
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().contains(".old-")
        })
        .count();
    assert_eq!(kept_aside, 0);

    // The holder dies: the kernel drops its flock; the file stays, naming pid 4242.
    drop(held);
    std::fs::remove_file(env.path("held.age.journal")).unwrap();
    assert!(lock_path.exists());
    let ok = env.run(&args(false));
    ok.expect(0);
    assert_eq!(env.open_handoff(&env.path("held.age")).len(), 2);
    assert!(
        !lock_path.exists(),
        "the run removed the lock file it took over"
    );
}
