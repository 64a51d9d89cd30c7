//! Chaos: create and rotate runs, and the resumes that finish them, SIGKILLed at random points
//! (during creates, reconciles and the orphan revokes that follow lost answers), on servers that
//! lose create answers, answer a create they performed with an inner error or an odd token, and
//! whose clocks are off by up to 20 minutes. Bounded: a fixed number of rounds, each at most eight
//! attempts, each
//! attempt bounded by `wait_bounded`. After every round the servers' final state must keep the
//! promises: one working secret per account in the final handoff, no handed-off token revoked,
//! no live token that nobody holds, and (rotate) no old token left. The seed of each round is
//! printed, and `CHAOS_SEED=N` replays one.

use crate::common::*;
use std::time::Duration;

const ROUNDS: u64 = 12;
const ATTEMPTS: usize = 8;

fn args(env: &Env, rotate: bool) -> Vec<&str> {
    let mut a = vec![if rotate { "rotate" } else { "create" }, "-i", env.toml()];
    if rotate {
        a.extend(["--name", "new-{run}", "--revoke", "old-*"]);
    } else {
        a.extend(["--name", "chaos"]);
    }
    a.extend([
        "-r",
        &env.recipient,
        "-o",
        "c.age",
        "--progress",
        "never",
        "-j",
        "4",
        "--per-host",
        "2",
        "--timeout",
        "5",
        "--retries",
        "1",
    ]);
    a
}

/// A journal whose plan line is whole: `resume` can take it; otherwise start over.
fn resumable(env: &Env) -> bool {
    std::fs::read(env.path("c.age.journal")).is_ok_and(|b| b.contains(&b'\n'))
}

fn round(seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let rotate = seed % 2 == 1;
    let mut spec = slow_fleet(2, 5, 15);
    for h in &mut spec.hosts {
        let f = &mut h.faults;
        f.drop_after_create = rng.u32(0..3);
        f.drop_create_answers = rng.u32(0..2);
        f.inner_error_after_create = rng.u32(0..2);
        f.odd_token_after_create = rng.u32(0..2);
        f.clock_offset = rng.i64(-1200..1200);
    }
    let env = Env::start(spec);
    if rotate {
        for h in env.fleet.hosts() {
            for a in h.accounts() {
                h.add_account_token(&a, "old-1", None);
            }
        }
    }
    let before = live_tokens(&env);
    let key = env.identity_file.to_str().unwrap().to_string();
    let mut runs = Vec::new();
    let mut finished = false;
    for attempt in 0..ATTEMPTS {
        let mut cmd: Vec<&str> = if resumable(&env) {
            vec![
                "resume",
                "c.age.journal",
                "--identity",
                &key,
                "--progress",
                "never",
            ]
        } else {
            args(&env, rotate)
        };
        if cmd[0] != "resume" && env.path("c.age.journal").exists() {
            cmd.push("--force");
        }
        let tag = format!("a{attempt}");
        let mut child = spawn(&env, &cmd, &tag);
        let kill = attempt + 1 < ATTEMPTS && rng.bool();
        if kill {
            std::thread::sleep(Duration::from_millis(rng.u64(0..250)));
            unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        }
        let code = wait_bounded(&mut child);
        let run = read(&env, &tag);
        eprintln!("seed {seed} attempt {attempt}: {} → {code}", cmd[0]);
        runs.push(run);
        if code == 0 {
            finished = true;
            break;
        }
        assert!(
            code == 137 || code == 1,
            "seed {seed} attempt {attempt}: exit {code}\n{}",
            runs.last().unwrap().stderr
        );
    }
    assert!(finished, "seed {seed}: never finished");
    let rows = env.open_handoff(&env.path("c.age"));
    assert_eq!(rows.len(), 10, "seed {seed}: one row per account");
    let refs: Vec<&Run> = runs.iter().collect();
    let named = assert_promises(&env, &before, &rows, &refs);
    assert!(named.is_empty(), "seed {seed}: {named:?}");
    if rotate {
        for key in live_tokens(&env) {
            assert!(
                key.2 != "old-1",
                "seed {seed}: {key:?} survived the rotation"
            );
        }
    }
    let secrets: Vec<String> = rows.iter().map(|r| r["token"].clone()).collect();
    env.assert_no_secret_leaked(&refs, &secrets);
}

#[test]
fn random_kills_of_create_rotate_and_resume_keep_every_promise() {
    if let Some(seed) = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return round(seed);
    }
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for i in 0..ROUNDS {
        round(base * 16 + i);
    }
}
