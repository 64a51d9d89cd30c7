//! `resume`: a run killed (SIGKILL) or interrupted (SIGINT) part-way is finished from its journal;
//! a create whose answer was lost is reconciled with no orphan; the inventory may not change in a
//! way that matters; the earlier secrets need `--identity`. Every test checks the server state.

use crate::common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Every account of the fleet: (host, account).
fn all_accounts(env: &Env) -> Vec<(String, String)> {
    env.fleet
        .hosts()
        .iter()
        .flat_map(|h| h.accounts().into_iter().map(|a| (h.name().to_string(), a)))
        .collect()
}

/// The server state a finished run must leave: every account has exactly one token of the run
/// (one name across the fleet), its secret is in the handoff and works, and no other token
/// exists that was not there before (no orphan whose secret nobody holds).
pub(crate) fn assert_finished(
    env: &Env,
    rows: &[BTreeMap<String, String>],
    before: &BTreeMap<(String, String), BTreeSet<String>>,
) -> String {
    let accounts = all_accounts(env);
    assert_eq!(rows.len(), accounts.len(), "one handoff row per account");
    let names: BTreeSet<&str> = rows.iter().map(|r| r["token_name"].as_str()).collect();
    assert_eq!(names.len(), 1, "one run, one name: {names:?}");
    let name = names.into_iter().next().unwrap().to_string();
    let by_target: BTreeMap<(String, String), &BTreeMap<String, String>> = rows
        .iter()
        .map(|r| ((r["host"].clone(), r["account"].clone()), r))
        .collect();
    assert_eq!(
        by_target.len(),
        accounts.len(),
        "no account twice in the handoff"
    );
    for (host, account) in &accounts {
        let sim = env.fleet.host(host);
        let row = by_target[&(host.clone(), account.clone())];
        assert!(
            sim.token_valid(account, &row["token"]),
            "{host} {account}: sealed token works"
        );
        let tokens: Vec<String> = sim
            .account_tokens(account)
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(
            tokens.iter().filter(|t| **t == name).count(),
            1,
            "{host} {account}: exactly one token of the run: {tokens:?}"
        );
        let extra: Vec<&String> = tokens
            .iter()
            .filter(|t| **t != name && !before[&(host.clone(), account.clone())].contains(*t))
            .collect();
        assert!(
            extra.is_empty(),
            "{host} {account}: tokens nobody holds: {extra:?}"
        );
    }
    name
}

pub(crate) fn tokens_before(env: &Env) -> BTreeMap<(String, String), BTreeSet<String>> {
    all_accounts(env)
        .into_iter()
        .map(|(h, a)| {
            let names = env
                .fleet
                .host(&h)
                .account_tokens(&a)
                .into_iter()
                .map(|t| t.name)
                .collect();
            ((h, a), names)
        })
        .collect()
}

/// One create per request (`--batch 1`): the tests that interrupt a run between creates need
/// work still queued when the signal lands, which a host's one batch would not leave.
pub(crate) fn create_args<'a>(env: &'a Env, out: &'a str) -> Vec<&'a str> {
    let mut args = create_cmd(env, "ci-{date}-{run}", out);
    args.extend(["--batch", "1"]);
    args
}

/// Killed twice (the run, then the first resume), each time with creates in flight: the second
/// resume finishes. Orphans of the creates in flight at the kill are reconciled.
#[test]
fn sigkill_at_several_points_then_resume_completes_the_run() {
    let env = Env::start(slow_fleet(3, 8, 120));
    let before = tokens_before(&env);
    let journal = env.path("out.age.journal");
    let mut child = spawn(&env, &create_args(&env, "out.age"), "run");
    let at = signal_after_created(&mut child, &journal, 3, libc::SIGKILL);
    assert_eq!(wait_bounded(&mut child), 128 + libc::SIGKILL);
    assert!(at < 24, "killed part-way");
    assert!(
        !env.path("out.age").exists(),
        "a killed run writes no handoff"
    );
    let key = env.identity_file.to_str().unwrap().to_string();

    // The first resume is killed too.
    let mut child = spawn(
        &env,
        &[
            "resume",
            "out.age.journal",
            "--identity",
            &key,
            "--progress",
            "never",
        ],
        "resume1",
    );
    let at2 = signal_after_created(&mut child, &journal, at + 4, libc::SIGKILL);
    assert_eq!(wait_bounded(&mut child), 128 + libc::SIGKILL);
    assert!(at2 < 24, "the resume was killed part-way");

    let last = env.run(&[
        "resume",
        "out.age.journal",
        "--identity",
        &key,
        "--report",
        "r.json",
        "--progress",
        "never",
    ]);
    last.expect(0);
    let rows = env.open_handoff(&env.path("out.age"));
    let name = assert_finished(&env, &rows, &before);
    assert!(name.starts_with("ci-20"), "{name}");
    // The report covers the whole run: done earlier or now, all created.
    let report = read_report(&env.path("r.json"));
    assert_eq!(statuses(&report).get("created"), Some(&24), "{report}");
    let minted: Vec<String> = rows.iter().map(|r| r["token"].clone()).collect();
    env.assert_no_secret_leaked(
        &[&last, &read(&env, "run"), &read(&env, "resume1")],
        &minted,
    );
}

/// A create whose answer never came back (the server made the token, then dropped the
/// connection) and was not retried: the run still lists, finds the orphan its listing proved
/// absent before, revokes it (journaled) and fails that target; resume creates it again.
#[test]
fn lost_create_is_reconciled_by_resume_with_no_orphan() {
    let mut spec = small_fleet(1, 3);
    spec.hosts[0].faults.drop_after_create = 1;
    let env = Env::start(spec);
    let before = tokens_before(&env);
    let first = env.run(&[
        "create",
        "-i",
        env.toml(),
        "--name",
        "lost",
        "-r",
        &env.recipient,
        "-o",
        "lost.age",
        "--retries",
        "0",
        "-j",
        "1",
    ]);
    first.expect(1);
    let host = env.fleet.host("web001");
    let orphans: usize = host
        .accounts()
        .iter()
        .map(|a| {
            host.account_tokens(a)
                .iter()
                .filter(|t| t.name == "lost")
                .count()
        })
        .sum();
    assert_eq!(
        orphans, 2,
        "the orphan of the lost create was revoked at once"
    );
    assert!(first.stderr.contains("orphan"), "{}", first.stderr);
    assert_eq!(env.open_handoff(&env.path("lost.age")).len(), 2);

    let key = env.identity_file.to_str().unwrap().to_string();
    let resumed = env.run(&["resume", "lost.age.journal", "--identity", &key]);
    resumed.expect(0);
    let rows = env.open_handoff(&env.path("lost.age"));
    assert_finished(&env, &rows, &before);
    let revoked = journal_events(&env.path("lost.age.journal"), "revoked");
    assert_eq!(revoked.len(), 1, "the orphan's revoke is journaled");
    assert_eq!(host.stats().count("whm/uapi_cpanel/Tokens/revoke"), 1);
    let minted: Vec<String> = rows.iter().map(|r| r["token"].clone()).collect();
    env.assert_no_secret_leaked(&[&first, &resumed], &minted);
}

/// SIGINT: in-flight creates finish and are journaled, the handoff holds what finished, exit
/// 130 with the resume command; then resume finishes the rest.
#[test]
fn sigint_exits_130_with_a_consistent_journal_then_resume_finishes() {
    let env = Env::start(slow_fleet(2, 10, 120));
    let before = tokens_before(&env);
    let journal = env.path("int.age.journal");
    // One create per request, so the interrupt lands with work still queued.
    let args = create_args(&env, "int.age");
    let mut child = spawn(&env, &args, "int");
    signal_after_created(&mut child, &journal, 3, libc::SIGINT);
    assert_eq!(wait_bounded(&mut child), 130);
    let int = read(&env, "int");
    assert!(
        int.stderr.contains("tokenfleet resume") && int.stderr.contains("int.age.journal"),
        "{}",
        int.stderr
    );
    // Consistent: every create sent has its outcome journaled; the handoff holds exactly them.
    // (An intent may be durable for a create the interrupt kept from being sent: more
    // intents than creates is fine; a create that reached a server without its outcome is not.)
    let intents = journal_events(&journal, "intent").len();
    let created = journal_events(&journal, "created");
    let creates_sent: u64 = env
        .fleet
        .hosts()
        .iter()
        .map(|h| h.stats().count("whm/uapi_cpanel/Tokens/create_full_access"))
        .sum();
    assert_eq!(
        creates_sent as usize,
        created.len(),
        "no create left without its outcome"
    );
    assert!(
        intents >= created.len(),
        "every create had its intent first"
    );
    assert!(created.len() < 20, "interrupted part-way");
    let partial = env.open_handoff(&env.path("int.age"));
    assert_eq!(partial.len(), created.len());
    let name = partial[0]["token_name"].clone();
    for row in &partial {
        assert!(
            env.fleet
                .host(&row["host"])
                .token_valid(&row["account"], &row["token"])
        );
    }
    let on_servers: usize = all_accounts(&env)
        .iter()
        .map(|(h, a)| {
            env.fleet
                .host(h)
                .account_tokens(a)
                .iter()
                .filter(|t| t.name == name)
                .count()
        })
        .sum();
    assert_eq!(
        on_servers,
        partial.len(),
        "no token on a server that the handoff does not hold"
    );

    // Without the key, resume refuses and says what to run; nothing is contacted.
    let requests = env.total_requests();
    let refused = env.run(&["resume", "int.age.journal"]);
    refused.expect(2);
    assert!(refused.stderr.contains("--identity"), "{}", refused.stderr);
    assert_eq!(env.total_requests(), requests);

    let key = env.identity_file.to_str().unwrap().to_string();
    let resumed = env.run(&["resume", "int.age.journal", "--identity", &key]);
    resumed.expect(0);
    let rows = env.open_handoff(&env.path("int.age"));
    assert_eq!(assert_finished(&env, &rows, &before), name);
    let minted: Vec<String> = rows.iter().map(|r| r["token"].clone()).collect();
    env.assert_no_secret_leaked(&[&int, &refused, &resumed], &minted);
}

/// The inventory changed in a way that matters (an address): refused with the diff, exit 2,
/// nothing contacted. A change that does not matter (a comment) is accepted.
#[test]
fn resume_refuses_an_inventory_that_changed_what_matters() {
    let mut spec = small_fleet(2, 2);
    spec.hosts[1].faults.down = true;
    let env = Env::start(spec);
    let first = env.run(&[
        "create",
        "-i",
        env.toml(),
        "--name",
        "inv",
        "-r",
        &env.recipient,
        "-o",
        "inv.age",
    ]);
    first.expect(1);
    let original = std::fs::read_to_string(env.toml()).unwrap();
    let whm = env.fleet.host("web002").whm_port().to_string();
    let moved = original.replacen(&format!("whm_port = {whm}"), "whm_port = 1", 1);
    assert_ne!(moved, original);
    std::fs::write(env.toml(), &moved).unwrap();
    env.fleet.host("web002").set_faults(Default::default());
    let requests = env.total_requests();
    let key = env.identity_file.to_str().unwrap().to_string();
    let refused = env.run(&["resume", "inv.age.journal", "--identity", &key]);
    refused.expect(2);
    assert!(
        refused.stderr.contains("host web002: whm_port"),
        "{}",
        refused.stderr
    );
    assert_eq!(env.total_requests(), requests, "nothing contacted");

    std::fs::write(env.toml(), format!("# a comment\n{original}")).unwrap();
    let resumed = env.run(&["resume", "inv.age.journal", "--identity", &key]);
    resumed.expect(0);
    assert!(
        resumed.stderr.contains("not its targets"),
        "{}",
        resumed.stderr
    );
    let rows = env.open_handoff(&env.path("inv.age"));
    assert_eq!(rows.len(), 4);
    for row in &rows {
        assert!(
            env.fleet
                .host(&row["host"])
                .token_valid(&row["account"], &row["token"])
        );
    }
}

/// A second Ctrl-C exits at once (130) without waiting for requests in flight, and still says
/// how to continue (`tokenfleet resume …`, no secret); the journal is still readable, and resume
/// reconciles what was in flight and finishes.
#[test]
fn second_sigint_exits_at_once_and_resume_still_finishes() {
    // Requests slow enough (1 s) that the second press lands while they are in flight, even on
    // a loaded CI machine (at 300 ms a clean-clone run once saw them finish first).
    let env = Env::start(slow_fleet(2, 10, 1000));
    let before = tokens_before(&env);
    let journal = env.path("twice.age.journal");
    let mut child = spawn(&env, &create_args(&env, "twice.age"), "twice");
    signal_after_created(&mut child, &journal, 2, libc::SIGINT);
    // Press again once the first press is acknowledged (two signals sent back to back may be
    // delivered as one), while its requests are still in flight.
    for _ in 0..2000 {
        if read(&env, "twice")
            .stderr
            .contains("Ctrl-C again to quit now")
        {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "ended after one press");
        std::thread::sleep(Duration::from_millis(2));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert_eq!(wait_bounded(&mut child), 130);
    let twice = read(&env, "twice");
    assert!(
        twice.stderr.contains("interrupted again: quitting now")
            && twice
                .stderr
                .contains("continue with `tokenfleet resume twice.age.journal --identity KEY`"),
        "{}",
        twice.stderr
    );
    assert!(
        !twice
            .stderr
            .contains("interrupted: the journal is consistent"),
        "the second press quit before the run's own ending: {}",
        twice.stderr
    );
    let key = env.identity_file.to_str().unwrap().to_string();
    let opened = env.run(&[
        "open",
        "twice.age.journal",
        "--identity",
        &key,
        "--format",
        "csv",
    ]);
    opened.expect(0);
    let resumed = env.run(&["resume", "twice.age.journal", "--identity", &key]);
    resumed.expect(0);
    let rows = env.open_handoff(&env.path("twice.age"));
    assert_finished(&env, &rows, &before);
    let minted: Vec<String> = rows.iter().map(|r| r["token"].clone()).collect();
    env.assert_no_secret_leaked(&[&read(&env, "twice"), &resumed], &minted);
}

/// A `--passphrase` run resumes with the same passphrase (TOKENFLEET_PASSPHRASE): the journal's
/// earlier secrets are unsealed with it and the final handoff is sealed with it.
#[test]
fn passphrase_run_resumes_with_the_passphrase() {
    let mut spec = small_fleet(2, 2);
    spec.hosts[1].faults.down = true;
    let env = Env::start(spec);
    let pass = [("TOKENFLEET_PASSPHRASE", "correct horse battery staple")];
    let first = env.run_env(
        &[
            "create",
            "-i",
            env.toml(),
            "--name",
            "pp",
            "--passphrase",
            "-o",
            "pp.age",
            "--retries",
            "0",
        ],
        &pass,
    );
    first.expect(1);
    env.fleet.host("web002").set_faults(Default::default());
    let resumed = env.run_env(&["resume", "pp.age.journal"], &pass);
    resumed.expect(0);
    let opened = env.run_env(&["open", "pp.age", "--format", "csv"], &pass);
    opened.expect(0);
    let mut rdr = csv::Reader::from_reader(opened.stdout.as_bytes());
    let rows: Vec<csv::StringRecord> = rdr.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 4, "{}", opened.stdout);
    for r in &rows {
        let host = env.fleet.host(&r[0]);
        assert!(host.token_valid(&r[1], &r[3]), "{} {}", &r[0], &r[1]);
        assert_eq!(host.account_tokens(&r[1]).len(), 1);
    }
    let minted: Vec<String> = rows.iter().map(|r| r[3].to_string()).collect();
    env.assert_no_secret_leaked(&[&first, &resumed], &minted);
}

/// The handoff cannot be written at the end (a file appeared at `-o` during the run): exit 3,
/// the file is left as it was, the message names the journal, and every token the servers now
/// hold for the run is recovered from the journal with `tokenfleet open`, each one working, with
/// no token of the run that nobody holds.
#[test]
fn a_handoff_that_cannot_be_written_loses_no_secret() {
    let env = Env::start(slow_fleet(2, 4, 100));
    let before = tokens_before(&env);
    let journal = env.path("h.age.journal");
    let mut child = spawn(&env, &create_args(&env, "h.age"), "h");
    let mut planted = false;
    for _ in 0..2000 {
        if !journal_events(&journal, "created").is_empty() {
            std::fs::write(env.path("h.age"), "someone else's file\n").unwrap();
            planted = true;
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before a token was journaled: make the fleet slower"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(planted, "the journal never held a created record");
    assert_eq!(wait_bounded(&mut child), 3, "{}", read(&env, "h").stderr);
    let run = read(&env, "h");
    assert!(
        run.stderr.contains("could not be written")
            && run
                .stderr
                .contains("tokenfleet open h.age.journal --identity KEY"),
        "{}",
        run.stderr
    );
    // Each cause once: not "h.age: h.age already exists: h.age already exists".
    assert!(
        run.stderr
            .contains("error: the handoff file could not be written: h.age: already exists\n"),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read_to_string(env.path("h.age")).unwrap(),
        "someone else's file\n",
        "the file at -o is not overwritten"
    );
    let (opened, rows) = open_journal(&env, "h.age.journal");
    opened.expect(0);
    assert_finished(&env, &rows, &before);
    let minted: Vec<String> = rows.iter().map(|r| r["token"].clone()).collect();
    env.assert_no_secret_leaked(&[&run], &minted);
}
