//! The scheduler through [`execute`], against in-memory servers ([`FakeBackend`]): per-host
//! limits, round-robin, stopping a host, giving up on a silent one, interrupts, and the retry
//! rule. Every run is checked against the invariants in [`run`].

use super::*;
use crate::backend::fake::{FakeBackend, Op};
use crate::inventory::{Accounts, Host};
use crate::transport::TransportError;
use std::collections::HashSet;
use std::sync::Arc;

fn host(name: &str) -> Host {
    Host {
        accounts: Accounts::Listed(Vec::new()),
        ..Host::sample(name)
    }
}

/// An observer that shows nothing.
struct Silent;

impl Observer for Silent {
    fn event(&self, _: &Event<'_>) {}
}

/// Hosts `h0`, `h1`… (one per entry of `per_host`, with that limit), each with accounts
/// `u00`, `u01`…; create and rotate name each account's token `tf-ACCOUNT` (the template
/// `tf-{account}`); rotate and revoke take `tf-*`.
fn plan(op: Operation, per_host: &[usize], accounts: usize) -> Plan {
    let named = matches!(op, Operation::Create | Operation::Rotate);
    let hosts = per_host
        .iter()
        .enumerate()
        .map(|(h, &per_host)| HostPlan {
            host: host(&format!("h{h}")),
            per_host,
            credential: None,
            discover: false,
            targets: (0..accounts)
                .map(|a| Target {
                    account: Some(format!("u{a:02}")),
                    token_name: named.then(|| format!("tf-u{a:02}")),
                    credential: None,
                })
                .collect(),
            limit_accounts: Default::default(),
        })
        .collect();
    let name = || crate::plan::NameTemplate::parse("tf-{account}").unwrap();
    let glob = || glob::Pattern::new("tf-*").unwrap();
    let work = match op {
        Operation::Create => Work::Create { name: name() },
        Operation::Rotate => Work::Rotate {
            name: name(),
            revoke: glob(),
        },
        Operation::Revoke => Work::Revoke { pattern: glob() },
        Operation::List => Work::List,
        Operation::Check => Work::Check,
        Operation::Update => Work::Update {
            pattern: glob(),
            change: crate::plan::TokenChange::default(),
        },
        Operation::Audit => Work::Audit {
            rules: Default::default(),
        },
        Operation::Sweep => Work::Sweep {
            rules: Default::default(),
            filter: Default::default(),
        },
    };
    Plan {
        work,
        scope: Scope::Account,
        run_id: "r1".into(),
        date: "20250101".into(),
        expires_at: None,
        accounts_glob: None,
        hosts,
        limit: None,
        warnings: Vec::new(),
        shard: None,
        inventory_sha256: String::new(),
        policy: Default::default(),
        expiring: None,
        sink: None,
    }
}

/// One fake server per host of `plan`, each call taking `delay_ms`, all logging to one log.
fn fleet(plan: &Plan, delay_ms: u64) -> (Vec<FakeBackend>, Arc<Mutex<Vec<String>>>) {
    let log = Arc::default();
    let delay = Duration::from_millis(delay_ms);
    let fakes = plan
        .hosts
        .iter()
        .map(|hp| FakeBackend::new(&hp.host.name, delay, &log))
        .collect();
    (fakes, log)
}

fn opts(jobs: usize, retries: u32) -> RunOptions {
    RunOptions {
        jobs,
        retries,
        backoff: Duration::from_millis(1),
        ..RunOptions::default()
    }
}

fn run(plan: &Plan, fakes: &[FakeBackend], opts: RunOptions) -> Outcome {
    run_with(plan, fakes, opts, &Silent, &AtomicBool::new(false))
}

fn run_with(
    plan: &Plan,
    fakes: &[FakeBackend],
    opts: RunOptions,
    observer: &dyn Observer,
    stop: &AtomicBool,
) -> Outcome {
    run_checked(
        plan,
        fakes,
        opts,
        observer,
        stop,
        &PriorState::new(),
        &NoLedger,
    )
}

/// Run, then check what must hold after any run: one result per planned target, no host over
/// its limit, no minted token revoked, and no token this run created that nobody holds unless a
/// result names it for a human look.
fn run_checked(
    plan: &Plan,
    fakes: &[FakeBackend],
    opts: RunOptions,
    observer: &dyn Observer,
    stop: &AtomicBool,
    prior: &PriorState,
    ledger: &dyn Ledger,
) -> Outcome {
    let backends: Vec<Box<dyn Backend>> = fakes
        .iter()
        .map(|f| Box::new(f.clone()) as Box<dyn Backend>)
        .collect();
    let out = execute_resumed(plan, &backends, &opts, prior, ledger, observer, stop);
    for hp in &plan.hosts {
        for t in &hp.targets {
            let n = out
                .results
                .iter()
                .filter(|r| {
                    let account = t.account.as_deref().unwrap_or(&hp.host.whm_user);
                    r.host == hp.host.name && r.account.as_deref() == Some(account)
                })
                .count();
            assert_eq!(
                n, 1,
                "{} {:?}: one result per target",
                hp.host.name, t.account
            );
        }
    }
    let minted: HashSet<String> = out
        .minted
        .iter()
        .map(|m| m.token.token.expose().to_string())
        .collect();
    for (fake, hp) in fakes.iter().zip(&plan.hosts) {
        let name = &hp.host.name;
        assert!(fake.max_in_flight() <= hp.per_host, "{name}: over per_host");
        for secret in fake.revoked() {
            assert!(
                !minted.contains(secret.as_str()),
                "{name}: minted token revoked"
            );
        }
        for (owner, token, secret) in fake.created_live() {
            let named = out.results.iter().any(|r| {
                r.host == *name
                    && r.account.as_deref() == Some(owner.as_str())
                    && r.attention.as_deref().is_some_and(|a| a.contains(&token))
            });
            assert!(
                minted.contains(secret.as_str()) || named,
                "{name} {owner}: live token {token} that nobody holds and no result names"
            );
        }
    }
    out
}

fn of(out: &Outcome, host: &str) -> Vec<TargetResult> {
    out.results.iter().filter(|r| r.host == host).collect()
}

fn count(results: &[TargetResult], status: Status) -> usize {
    results.iter().filter(|r| r.status == status).count()
}

fn all(out: &Outcome) -> Vec<TargetResult> {
    out.results.to_vec()
}

fn http(status: u16) -> ApiError {
    ApiError::Http { status }
}

fn refused() -> ApiError {
    ApiError::Auth {
        status: 401,
        message: "cPHulk".into(),
    }
}

#[test]
fn no_host_gets_more_than_per_host_calls_at_once_and_each_reaches_it() {
    let plan = plan(Operation::Create, &[1, 2, 3], 12);
    let (fakes, _) = fleet(&plan, 10);
    let out = run(&plan, &fakes, opts(6, 3));
    assert_eq!(count(&all(&out), Status::Created), 36);
    for (fake, hp) in fakes.iter().zip(&plan.hosts) {
        assert_eq!(fake.max_in_flight(), hp.per_host, "{}", hp.host.name);
    }
}

#[test]
fn one_worker_finishes_a_host_before_taking_up_the_next() {
    let plan = plan(Operation::List, &[2, 2, 2], 3);
    let (fakes, log) = fleet(&plan, 0);
    let out = run(&plan, &fakes, opts(1, 0));
    assert_eq!(count(&all(&out), Status::Listed), 9);
    let calls: Vec<String> = ["h0 List", "h1 List", "h2 List"]
        .iter()
        .flat_map(|c| std::iter::repeat_n(c.to_string(), 3))
        .collect();
    assert_eq!(*log.lock().unwrap(), calls);
}

#[test]
fn a_host_lets_go_of_its_connections_once_done_not_at_the_end_of_the_run() {
    let plan = plan(Operation::List, &[2, 2, 2], 3);
    let (fakes, log) = fleet(&plan, 0);
    run(&plan, &fakes, opts(1, 0));
    let log = log.lock().unwrap();
    for fake in &fakes {
        let released = fake.released();
        assert_eq!(released.len(), 1, "released once: {released:?}");
    }
    // One worker: each host is released right after its third call, before the next host's
    // first.
    let at: Vec<usize> = fakes.iter().map(|f| f.released()[0]).collect();
    assert_eq!(at, [3, 6, 9], "{log:?}");
}

#[test]
fn the_hosts_being_worked_on_at_once_stay_within_jobs_however_many_there_are() {
    let plan = plan(Operation::List, &[2; 60], 5);
    let (fakes, log) = fleet(&plan, 1);
    let jobs = 6;
    let out = run(&plan, &fakes, opts(jobs, 0));
    assert_eq!(count(&all(&out), Status::Listed), 300);
    // Each host's span, from its first call to its last: no more than `jobs` overlap.
    let log = log.lock().unwrap();
    let mut span: HashMap<&str, (usize, usize)> = HashMap::new();
    for (at, call) in log.iter().enumerate() {
        let host = call.split(' ').next().unwrap();
        span.entry(host)
            .and_modify(|s| s.1 = at)
            .or_insert((at, at));
    }
    let widest = (0..log.len())
        .map(|at| span.values().filter(|(a, b)| *a <= at && at <= *b).count())
        .max()
        .unwrap();
    assert!(widest <= jobs, "{widest} hosts at once with --jobs {jobs}");
    assert!(widest >= 2, "hosts are worked on side by side: {widest}");
}

#[test]
fn a_refused_credential_stops_its_host_and_no_other() {
    let plan = plan(Operation::Create, &[2, 2, 2], 10);
    let (fakes, _) = fleet(&plan, 2);
    fakes[1].fail_always(refused());
    let out = run(&plan, &fakes, opts(6, 3));
    // The first call goes alone (the host's probe): refused, and nothing else is sent there.
    assert_eq!(fakes[1].total_calls(), 1, "one refused login");
    let h1 = of(&out, "h1");
    assert_eq!(count(&h1, Status::Failed), 1);
    assert_eq!(count(&h1, Status::Skipped), 9);
    for r in h1.iter().filter(|r| r.status == Status::Skipped) {
        assert_eq!(
            r.cause.as_deref(),
            Some("blocked by cPHulk (brute-force protection)")
        );
        assert!(r.error.as_deref().unwrap().starts_with("not attempted"));
        assert_eq!(r.attempts, 0);
    }
    for h in ["h0", "h2"] {
        assert_eq!(count(&of(&out, h), Status::Created), 10, "{h}");
    }
}

#[test]
fn a_host_that_never_answers_its_probe_is_given_up_before_anything_else_is_sent() {
    let per_host = 4;
    let plan = plan(Operation::Create, &[per_host, per_host], 20);
    let (fakes, _) = fleet(&plan, 2);
    fakes[0].fail_always(ApiError::Transport(TransportError::Timeout { sent: true }));
    let out = run(&plan, &fakes, opts(8, 1));
    let h0 = of(&out, "h0");
    assert_eq!(count(&h0, Status::Failed), 1);
    assert_eq!(count(&h0, Status::Skipped), 19);
    assert!(
        h0.iter()
            .filter(|r| r.status == Status::Skipped)
            .all(|r| r.cause.as_deref() == Some("no answer: timed out")),
        "{h0:?}"
    );
    // The first listing and its one retry, alone; no create was sent at all.
    assert_eq!(fakes[0].total_calls(), 2);
    assert_eq!(fakes[0].max_in_flight(), 1);
    assert_eq!(fakes[0].calls(Op::Create), 0);
    assert_eq!(count(&of(&out, "h1"), Status::Created), 20);
}

#[test]
fn a_host_that_stops_answering_mid_run_is_given_up_after_one_more_try_alone() {
    let per_host = 4;
    let plan = plan(Operation::Create, &[per_host], 40);
    let (fakes, _) = fleet(&plan, 2);
    // Answers the probe and a few targets, then nothing.
    fakes[0].fail_after(
        9,
        ApiError::Transport(TransportError::Timeout { sent: true }),
    );
    let out = run(&plan, &fakes, opts(8, 1));
    let h0 = of(&out, "h0");
    let failed = count(&h0, Status::Failed);
    // The targets in flight when it stopped (some had an answer to their listing first), then
    // one alone: the rest is skipped.
    assert!(
        failed <= 2 * per_host + 1,
        "{failed} targets waited for their timeouts"
    );
    assert_eq!(
        count(&h0, Status::Skipped) + failed + count(&h0, Status::Created),
        40
    );
    assert!(count(&h0, Status::Skipped) >= 25);
}

/// Raises the stop flag at the first finished target.
struct StopAtFirst<'a>(&'a AtomicBool);

impl Observer for StopAtFirst<'_> {
    fn event(&self, event: &Event<'_>) {
        if matches!(event, Event::TargetDone { .. }) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
}

#[test]
fn raising_the_stop_flag_skips_everything_not_started() {
    let plan = plan(Operation::Create, &[1, 1], 5);
    let (fakes, _) = fleet(&plan, 0);
    let stop = AtomicBool::new(false);
    let out = run_with(&plan, &fakes, opts(1, 3), &StopAtFirst(&stop), &stop);
    assert!(out.interrupted);
    let results = all(&out);
    assert_eq!(count(&results, Status::Created), 1);
    assert_eq!(count(&results, Status::Skipped), 9);
    let skipped = results.iter().filter(|r| r.status == Status::Skipped);
    assert!(
        skipped
            .clone()
            .all(|r| r.cause.as_deref() == Some("interrupted"))
    );
    // The listing that proves the name absent, then the create.
    assert_eq!(fakes.iter().map(FakeBackend::total_calls).sum::<usize>(), 2);
}

#[test]
fn with_several_workers_a_stop_lets_only_work_in_flight_finish() {
    let plan = plan(Operation::Create, &[2, 2], 10);
    let (fakes, _) = fleet(&plan, 2);
    let stop = AtomicBool::new(false);
    let out = run_with(&plan, &fakes, opts(4, 3), &StopAtFirst(&stop), &stop);
    assert!(out.interrupted);
    let results = all(&out);
    let created = count(&results, Status::Created);
    assert!((1..=4).contains(&created), "{created} created");
    assert_eq!(count(&results, Status::Skipped), 20 - created);
}

#[test]
fn a_read_that_fails_with_503_twice_succeeds_on_the_third_try() {
    let plan = plan(Operation::List, &[1], 1);
    let (fakes, _) = fleet(&plan, 0);
    fakes[0].fail_next(Op::List, [http(503), http(503)]);
    let out = run(&plan, &fakes, opts(1, 3));
    assert_eq!(out.results.to_vec()[0].status, Status::Listed);
    assert_eq!(out.results.to_vec()[0].attempts, 3);
    assert_eq!(fakes[0].calls(Op::List), 3);
}

#[test]
fn with_no_retries_a_read_that_fails_with_503_fails_after_one_call() {
    let plan = plan(Operation::List, &[1], 1);
    let (fakes, _) = fleet(&plan, 0);
    fakes[0].fail_next(Op::List, [http(503), http(503)]);
    let out = run(&plan, &fakes, opts(1, 0));
    assert_eq!(out.results.to_vec()[0].status, Status::Failed);
    assert_eq!(out.results.to_vec()[0].cause.as_deref(), Some("HTTP 503"));
    assert_eq!(out.results.to_vec()[0].attempts, 1);
    assert_eq!(fakes[0].calls(Op::List), 1);
}

#[test]
fn a_refused_credential_is_never_retried() {
    for op in [Operation::List, Operation::Create] {
        let plan = plan(op, &[1], 1);
        let (fakes, _) = fleet(&plan, 0);
        fakes[0].fail_always(refused());
        let out = run(&plan, &fakes, opts(1, 3));
        assert_eq!(out.results.to_vec()[0].status, Status::Failed, "{op:?}");
        assert_eq!(out.results.to_vec()[0].attempts, 1, "{op:?}");
        assert_eq!(fakes[0].total_calls(), 1, "{op:?}");
    }
}

#[test]
fn a_create_whose_answer_is_lost_is_listed_revoked_and_created_again() {
    let plan = plan(Operation::Create, &[1], 1);
    let (fakes, log) = fleet(&plan, 0);
    fakes[0].lose_creates(1);
    let out = run(&plan, &fakes, opts(1, 3));
    assert_eq!(out.results.to_vec()[0].status, Status::Created);
    let calls = ["h0 List", "h0 Create", "h0 List", "h0 Revoke", "h0 Create"];
    assert_eq!(*log.lock().unwrap(), calls);
    let live = fakes[0].created_live();
    assert_eq!(live.len(), 1, "exactly one token of that name");
    assert_eq!((live[0].0.as_str(), live[0].1.as_str()), ("u00", "tf-u00"));
    assert_eq!(out.minted.len(), 1);
    assert_eq!(out.minted.to_vec()[0].token.token.expose(), live[0].2);
    assert_eq!(fakes[0].revoked().len(), 1, "the orphan");
}

#[test]
fn a_create_that_fails_with_503_is_listed_before_it_is_sent_again() {
    let plan = plan(Operation::Create, &[1], 1);
    let (fakes, log) = fleet(&plan, 0);
    fakes[0].fail_next(Op::Create, [http(503)]);
    let out = run(&plan, &fakes, opts(1, 3));
    assert_eq!(out.results.to_vec()[0].status, Status::Created);
    // Nothing was created: nothing to revoke.
    let calls = ["h0 List", "h0 Create", "h0 List", "h0 Create"];
    assert_eq!(*log.lock().unwrap(), calls);
    assert_eq!(out.minted.len(), 1);
}

#[test]
fn a_name_taken_before_the_run_is_exists_and_left_alone() {
    let plan = plan(Operation::Create, &[1], 1);
    let (fakes, _) = fleet(&plan, 0);
    fakes[0].seed("u00", "tf-u00", 1_000_000_000);
    let out = run(&plan, &fakes, opts(1, 3));
    assert_eq!(out.results.to_vec()[0].status, Status::Exists);
    assert_eq!(
        fakes[0].calls(Op::Create),
        0,
        "the listing showed the name taken"
    );
    assert!(fakes[0].revoked().is_empty());
    assert!(out.minted.is_empty());
}

#[test]
fn rotate_creates_verifies_and_revokes_only_the_old_tokens() {
    let plan = plan(Operation::Rotate, &[1], 1);
    let (fakes, log) = fleet(&plan, 0);
    fakes[0].seed("u00", "tf-old", 1_000_000_000);
    let out = run(&plan, &fakes, opts(1, 3));
    assert_eq!(out.results.to_vec()[0].status, Status::Rotated);
    let calls = ["h0 List", "h0 Create", "h0 Verify", "h0 List", "h0 Revoke"];
    assert_eq!(*log.lock().unwrap(), calls);
    assert_eq!(fakes[0].revoked(), ["seed-tf-old"]);
    assert_eq!(fakes[0].created_live().len(), 1);
}

#[test]
fn discovery_queues_one_target_per_active_account() {
    let mut plan = plan(Operation::Create, &[2], 0);
    plan.hosts[0].discover = true;
    let (fakes, _) = fleet(&plan, 0);
    let account = |user: &str, suspended| AccountInfo {
        user: user.into(),
        domain: format!("{user}.test"),
        owner: "root".into(),
        suspended,
    };
    fakes[0].set_accounts(vec![account("bob", false), account("amy", true)]);
    let out = run(&plan, &fakes, opts(2, 3));
    let status = |user: &str| {
        let r = out
            .results
            .iter()
            .find(|r| r.account.as_deref() == Some(user));
        r.map(|r| (r.status, r.cause.clone()))
    };
    assert_eq!(status("bob"), Some((Status::Created, None)));
    let suspended = Some("account suspended".to_string());
    assert_eq!(status("amy"), Some((Status::Skipped, suspended)));
    assert_eq!(fakes[0].created_live()[0].1, "tf-bob");
}

#[test]
fn every_token_the_run_minted_reaches_the_sink_and_a_sink_that_is_down_loses_nothing() {
    use crate::sink::{Sink, memory::MemorySink};
    let plan = plan(Operation::Create, &[2, 2], 4);
    let (fakes, _) = fleet(&plan, 0);
    fakes[1].lose_creates(2);
    let out = run(&plan, &fakes, opts(4, 3));
    let sink = MemorySink::default();
    let delivered = sink.deliver(&out.minted).unwrap().unwrap();
    assert_eq!(delivered.count, 8);
    let mut held: Vec<(String, String, String)> = sink
        .held
        .lock()
        .unwrap()
        .iter()
        .map(|(h, a, n, _)| (h.clone(), a.clone(), n.clone()))
        .collect();
    held.sort();
    let mut live: Vec<(String, String, String)> = Vec::new();
    for (fake, hp) in fakes.iter().zip(&plan.hosts) {
        for (owner, name, _) in fake.created_live() {
            live.push((hp.host.name.clone(), owner, name));
        }
    }
    live.sort();
    assert_eq!(
        held, live,
        "the sink holds exactly the live tokens the run created"
    );
    let down = MemorySink {
        down: true,
        ..MemorySink::default()
    };
    assert!(down.deliver(&out.minted).is_err());
    assert_eq!(out.minted.len(), 8, "a refused delivery keeps every secret");
}

#[test]
fn with_no_retries_a_lost_create_is_still_reconciled_and_nothing_is_left_live() {
    let plan = plan(Operation::Create, &[1], 1);
    let (fakes, log) = fleet(&plan, 0);
    fakes[0].lose_creates(1);
    let out = run(&plan, &fakes, opts(1, 0));
    assert_eq!(out.results.to_vec()[0].status, Status::Failed);
    assert_eq!(
        *log.lock().unwrap(),
        ["h0 List", "h0 Create", "h0 List", "h0 Revoke"]
    );
    assert!(fakes[0].created_live().is_empty());
}

#[test]
fn odd_answers_after_a_create_are_reconciled_before_the_target_is_given_up() {
    let odd = [
        ApiError::Protocol("the answer is over the 1 MiB cap".into()),
        ApiError::Protocol("data.token is not a string".into()),
        ApiError::Rejected("internal error after saving the token".into()),
    ];
    for e in odd {
        let plan = plan(Operation::Create, &[1], 1);
        let (fakes, _) = fleet(&plan, 0);
        fakes[0].fail_after_create([e.clone()]);
        let out = run(&plan, &fakes, opts(1, 3));
        assert_eq!(out.results.to_vec()[0].status, Status::Failed, "{e:?}");
        assert!(
            fakes[0].created_live().is_empty(),
            "{e:?}: an orphan left live"
        );
        assert_eq!(fakes[0].revoked().len(), 1, "{e:?}");
        assert_eq!(
            fakes[0].calls(Op::Create),
            1,
            "{e:?}: a refusal is not re-sent"
        );
    }
}

#[test]
fn an_orphan_that_cannot_be_revoked_is_named_for_a_human() {
    let plan = plan(Operation::Create, &[1], 1);
    let (fakes, _) = fleet(&plan, 0);
    fakes[0].lose_creates(1);
    fakes[0].fail_next(Op::Revoke, (0..4).map(|_| http(500)));
    let out = run(&plan, &fakes, opts(1, 3));
    let r = &out.results.to_vec()[0];
    assert_eq!(r.status, Status::Failed);
    let look = r.attention.as_deref().expect("named");
    assert!(look.contains("tf-u00") && look.contains("resume"), "{look}");
}

#[test]
fn ownership_needs_the_listing_never_a_clock() {
    // A token of the name from before the run is left alone however the server's clock reads
    // (far ahead here: a time window would have called it this run's).
    let plan = plan(Operation::Create, &[1], 1);
    let (fakes, _) = fleet(&plan, 0);
    let ahead = jiff::Timestamp::now().as_second() + 86_400;
    fakes[0].seed("u00", "tf-u00", ahead);
    for prior in [None, Some(true)] {
        let mut state = PriorState::new();
        if let Some(proven) = prior {
            state.insert(("h0".into(), "u00".into()), Prior::Reconcile { proven });
        }
        let stop = AtomicBool::new(false);
        let out = run_checked(&plan, &fakes, opts(1, 3), &Silent, &stop, &state, &NoLedger);
        match prior {
            // Resumed with proof: the intent says the name was absent, so the token is ours.
            Some(_) => assert_eq!(out.results.to_vec()[0].status, Status::Created),
            None => {
                assert_eq!(out.results.to_vec()[0].status, Status::Exists);
                assert!(fakes[0].revoked().is_empty());
            }
        }
    }
}

#[test]
fn a_resumed_create_without_proof_keeps_the_token_and_says_unproven() {
    let plan = plan(Operation::Create, &[1], 1);
    let (fakes, _) = fleet(&plan, 0);
    fakes[0].seed("u00", "tf-u00", 0);
    let mut prior = PriorState::new();
    prior.insert(
        ("h0".into(), "u00".into()),
        Prior::Reconcile { proven: false },
    );
    let stop = AtomicBool::new(false);
    let out = run_checked(&plan, &fakes, opts(1, 3), &Silent, &stop, &prior, &NoLedger);
    let r = &out.results.to_vec()[0];
    assert_eq!(r.status, Status::Unproven);
    assert!(r.attention.as_deref().is_some_and(|a| a.contains("tf-u00")));
    assert!(fakes[0].revoked().is_empty(), "kept");
    assert_eq!(fakes[0].calls(Op::Create), 0);
}

/// A journal whose writes start failing after `ok` records.
struct FailingLedger {
    ok: usize,
    writes: Mutex<usize>,
}

impl FailingLedger {
    fn write(&self) -> std::io::Result<()> {
        let mut n = self.writes.lock().unwrap();
        *n += 1;
        if *n > self.ok {
            return Err(std::io::Error::other("No space left on device"));
        }
        Ok(())
    }
}

impl Ledger for FailingLedger {
    fn intent(&self, _: &str, _: &str, _: &str, _: &str) -> std::io::Result<()> {
        self.write()
    }
    fn created(&self, _: &Minted) -> std::io::Result<()> {
        self.write()
    }
    fn verified(&self, _: &str, _: &str, _: &str) -> std::io::Result<()> {
        self.write()
    }
    fn revoked(&self, _: &str, _: &str, _: &str, _: &[String]) -> std::io::Result<()> {
        self.write()
    }
    fn failed(&self, _: &str, _: &str, _: &str, _: &str, _: &str) -> std::io::Result<()> {
        self.write()
    }
}

#[test]
fn a_journal_that_fails_stops_minting_and_no_unjournaled_token_stays_live() {
    // Records: intent, created (×2 targets) fit; the third target's `created` fails.
    for ok in [0, 1, 4, 5] {
        let plan = plan(Operation::Create, &[1], 6);
        let (fakes, _) = fleet(&plan, 0);
        let ledger = FailingLedger {
            ok,
            writes: Mutex::new(0),
        };
        let stop = AtomicBool::new(false);
        let out = run_checked(
            &plan,
            &fakes,
            opts(1, 3),
            &Silent,
            &stop,
            &PriorState::new(),
            &ledger,
        );
        let results = all(&out);
        let created = count(&results, Status::Created);
        assert_eq!(created, ok / 2, "ok={ok}");
        assert_eq!(
            out.minted.len(),
            ok / 2,
            "ok={ok}: only journaled secrets are handed off"
        );
        assert_eq!(fakes[0].created_live().len(), ok / 2, "ok={ok}");
        assert_eq!(count(&results, Status::Failed), 1, "ok={ok}");
        let skipped = results.iter().filter(|r| r.status == Status::Skipped);
        assert!(
            skipped.clone().count() == 5 - ok / 2
                && skipped
                    .clone()
                    .all(|r| r.cause.as_deref() == Some("journal write failed")),
            "ok={ok}: {results:?}"
        );
    }
}

#[test]
fn a_late_landing_create_is_this_runs_orphan_never_someone_elses_exists() {
    // The first create times out and has not landed when the listing looks; it lands before the
    // second create, which is told the name is taken. That token is this run's: revoked, made
    // again; never reported `exists` with nobody holding it.
    let plan = plan(Operation::Create, &[1], 1);
    let (fakes, log) = fleet(&plan, 0);
    let late = ApiError::Conflict("the token tf-u00 already exists".into());
    fakes[0].fail_next(
        Op::Create,
        [
            ApiError::Transport(TransportError::Timeout { sent: true }),
            late,
        ],
    );
    let out = run(&plan, &fakes, opts(1, 3));
    assert_eq!(out.results.to_vec()[0].status, Status::Created);
    let calls = [
        "h0 List",
        "h0 Create",
        "h0 List",
        "h0 Create",
        "h0 Revoke",
        "h0 Create",
    ];
    assert_eq!(*log.lock().unwrap(), calls);
}

#[test]
fn a_rotation_never_revokes_the_old_tokens_when_the_new_one_is_missing() {
    let plan = plan(Operation::Rotate, &[1], 1);
    let (fakes, _) = fleet(&plan, 0);
    fakes[0].seed("u00", "tf-old", 0);
    let gone = Minted {
        host: "h0".into(),
        account: "u00".into(),
        url: String::new(),
        token: NewToken {
            name: "tf-u00".into(),
            token: crate::secret::Secret::new("revoked-already"),
            create_time: 0,
            expires_at: None,
        },
    };
    let mut prior = PriorState::new();
    prior.insert(
        ("h0".into(), "u00".into()),
        Prior::Created {
            minted: gone,
            verified: true,
        },
    );
    let stop = AtomicBool::new(false);
    let out = run_checked(&plan, &fakes, opts(1, 3), &Silent, &stop, &prior, &NoLedger);
    assert_eq!(out.results.to_vec()[0].status, Status::Failed);
    assert!(fakes[0].revoked().is_empty(), "the old token is left alive");
}

#[test]
fn a_resumed_target_done_before_keeps_its_status_when_the_run_stops_before_it() {
    let plan = plan(Operation::Create, &[1], 2);
    let (fakes, _) = fleet(&plan, 0);
    let mut prior = PriorState::new();
    prior.insert(("h0".into(), "u00".into()), Prior::Done(Status::Created));
    let stop = AtomicBool::new(true);
    let out = run_checked(&plan, &fakes, opts(1, 3), &Silent, &stop, &prior, &NoLedger);
    let status = |a: &str| {
        out.results
            .iter()
            .find(|r| r.account.as_deref() == Some(a))
            .map(|r| r.status)
    };
    assert_eq!(status("u00"), Some(Status::Created));
    assert_eq!(status("u01"), Some(Status::Skipped));
    assert_eq!(fakes[0].total_calls(), 0);
}

#[test]
fn a_resumed_create_that_lands_late_is_this_runs_only_with_proof() {
    for proven in [true, false] {
        let plan = plan(Operation::Create, &[1], 1);
        let (fakes, _) = fleet(&plan, 0);
        // The create sent before the interruption lands after resume's listing.
        fakes[0].fail_next(
            Op::Create,
            [ApiError::Conflict("the token tf-u00 already exists".into())],
        );
        let mut prior = PriorState::new();
        prior.insert(("h0".into(), "u00".into()), Prior::Reconcile { proven });
        let stop = AtomicBool::new(false);
        let out = run_checked(&plan, &fakes, opts(1, 3), &Silent, &stop, &prior, &NoLedger);
        let r = &out.results.to_vec()[0];
        if proven {
            assert_eq!(r.status, Status::Created);
            assert_eq!(fakes[0].calls(Op::Revoke), 1, "the late token revoked");
        } else {
            assert_eq!(r.status, Status::Unproven);
            assert!(r.attention.is_some());
            assert_eq!(fakes[0].calls(Op::Revoke), 0);
        }
    }
}

#[test]
fn a_host_wildcard_prior_makes_targets_without_a_record_prove_themselves() {
    // Resume set `*` for the host: a damaged line may have been any target's only record.
    let plan = plan(Operation::Create, &[1], 2);
    let (fakes, _) = fleet(&plan, 0);
    fakes[0].seed("u00", "tf-u00", 0);
    let mut prior = PriorState::new();
    prior.insert(
        ("h0".into(), "*".into()),
        Prior::Reconcile { proven: false },
    );
    let stop = AtomicBool::new(false);
    let out = run_checked(&plan, &fakes, opts(1, 3), &Silent, &stop, &prior, &NoLedger);
    let status = |a: &str| {
        out.results
            .iter()
            .find(|r| r.account.as_deref() == Some(a))
            .map(|r| r.status)
    };
    assert_eq!(status("u00"), Some(Status::Unproven), "kept and named");
    assert_eq!(status("u01"), Some(Status::Created), "nothing there: made");
    assert!(fakes[0].revoked().is_empty());
}

#[test]
fn a_resumed_target_whose_host_cannot_be_discovered_is_still_reported_and_named() {
    let mut plan = plan(Operation::Create, &[1], 0);
    plan.hosts[0].discover = true;
    let (fakes, _) = fleet(&plan, 0);
    fakes[0].fail_next(Op::ListAccounts, (0..4).map(|_| http(500)));
    let mut prior = PriorState::new();
    prior.insert(
        ("h0".into(), "bob".into()),
        Prior::Reconcile { proven: true },
    );
    let stop = AtomicBool::new(false);
    let out = run_checked(&plan, &fakes, opts(1, 3), &Silent, &stop, &prior, &NoLedger);
    let bob = out
        .results
        .iter()
        .find(|r| r.account.as_deref() == Some("bob"))
        .expect("reported");
    assert_eq!(bob.status, Status::Skipped);
    assert!(
        bob.attention
            .as_deref()
            .is_some_and(|a| a.contains("resume"))
    );
}

#[test]
fn a_whm_revoke_by_glob_keeps_the_token_the_run_logs_in_with_unless_told() {
    let mut p = plan(Operation::Revoke, &[2], 0);
    p.scope = Scope::Whm;
    p.work = Work::Revoke {
        pattern: glob::Pattern::new("*").unwrap(),
    };
    p.hosts[0].targets = vec![Target {
        account: None,
        token_name: Some("*".into()),
        credential: None,
    }];
    for revoke_own in [false, true] {
        let (fakes, _) = fleet(&p, 0);
        fakes[0].set_credential_token("ops-root");
        for name in ["ops-root", "intruder", "old-ci"] {
            fakes[0].seed("@whm", name, 1);
        }
        let out = run(
            &p,
            &fakes,
            RunOptions {
                revoke_own,
                ..opts(2, 0)
            },
        );
        let r = &out.results.to_vec()[0];
        assert_eq!(r.status, Status::Revoked, "{r:?}");
        let left: Vec<String> = fakes[0].listed("@whm");
        let named: Vec<&str> = r.revoked.iter().map(|t| t.name.as_str()).collect();
        if revoke_own {
            assert!(left.is_empty(), "{left:?}");
            assert_eq!(named, ["intruder", "old-ci", "ops-root"]);
        } else {
            assert_eq!(left, ["ops-root"], "the credential in use is kept");
            assert_eq!(named, ["intruder", "old-ci"], "named, never the glob");
            assert!(
                r.note.as_deref().unwrap().contains("kept ops-root"),
                "{r:?}"
            );
        }
    }
}

#[test]
fn replace_existing_never_revokes_the_credential_in_use_and_a_failed_revoke_names_nothing() {
    // --scope whm create --replace-existing, where the name is the credential's own.
    let mut p = plan(Operation::Create, &[2], 0);
    p.scope = Scope::Whm;
    p.hosts[0].targets = vec![Target {
        account: None,
        token_name: Some("ops-root".into()),
        credential: None,
    }];
    let (fakes, _) = fleet(&p, 0);
    fakes[0].set_credential_token("ops-root");
    fakes[0].seed("@whm", "ops-root", 1);
    let out = run(
        &p,
        &fakes,
        RunOptions {
            replace_existing: true,
            ..opts(2, 0)
        },
    );
    let r = &out.results.to_vec()[0];
    assert_eq!(r.status, Status::Failed, "{r:?}");
    assert!(
        r.error.as_deref().unwrap().contains("never revokes it"),
        "{r:?}"
    );
    assert_eq!(fakes[0].listed("@whm"), ["ops-root"]);
    assert_eq!(fakes[0].calls(Op::Revoke), 0);

    // A revoke that fails leaves `revoked` empty: nothing reads as gone that is not.
    let p = plan(Operation::Revoke, &[2], 1);
    let (fakes, _) = fleet(&p, 0);
    fakes[0].seed("u00", "tf-old", 1);
    fakes[0].fail_next(Op::Revoke, [ApiError::Rejected("no".into())]);
    let out = run(&p, &fakes, opts(2, 0));
    let r = &out.results.to_vec()[0];
    assert_eq!(r.status, Status::Failed, "{r:?}");
    assert!(r.revoked.is_empty(), "{r:?}");
}

/// A `--scope whm` plan of one host (per_host 2) whose one target is its WHM user.
fn whm_plan(op: Operation, work: Work) -> Plan {
    let mut p = plan(op, &[2], 0);
    p.scope = Scope::Whm;
    let token_name = match &work {
        Work::Create { .. } | Work::Rotate { .. } => Some("tf-new".to_string()),
        Work::Revoke { pattern } | Work::Update { pattern, .. } => {
            Some(pattern.as_str().to_string())
        }
        _ => None,
    };
    p.work = work;
    p.hosts[0].targets = vec![Target {
        account: None,
        token_name,
        credential: None,
    }];
    p
}

fn update_work(glob: &str, change: crate::plan::TokenChange) -> Work {
    Work::Update {
        pattern: glob::Pattern::new(glob).unwrap(),
        change,
    }
}

#[test]
fn update_changes_matching_whm_tokens_in_place_and_never_narrows_the_own_credential_unasked() {
    use crate::plan::{NewExpiry, TokenChange};
    let narrow = TokenChange {
        acls: Some(vec!["clustering".into()]),
        ..TokenChange::default()
    };
    for include_own in [false, true] {
        let p = whm_plan(Operation::Update, update_work("*", narrow.clone()));
        let (fakes, _) = fleet(&p, 0);
        fakes[0].set_credential_token("ops-root");
        for name in ["ops-root", "cluster-a", "cluster-b"] {
            fakes[0].seed("@whm", name, 1);
        }
        let out = run(
            &p,
            &fakes,
            RunOptions {
                include_own,
                ..opts(2, 0)
            },
        );
        let r = &out.results.to_vec()[0];
        assert_eq!(r.status, Status::Updated, "{r:?}");
        let named: Vec<&str> = r.updated.iter().map(|t| t.name.as_str()).collect();
        let acls = |n: &str| fakes[0].token("@whm", n).unwrap().acls;
        assert_eq!(acls("cluster-a"), Some(vec!["clustering".to_string()]));
        assert_eq!(r.pattern.as_deref(), Some("*"));
        assert_eq!(r.token_name, None, "a glob is never a token name");
        if include_own {
            assert_eq!(named, ["cluster-a", "cluster-b", "ops-root"]);
            assert!(acls("ops-root").is_some());
        } else {
            assert_eq!(named, ["cluster-a", "cluster-b"]);
            assert_eq!(
                acls("ops-root"),
                None,
                "the credential in use is left as it is"
            );
            assert!(
                r.note.as_deref().unwrap().contains("kept ops-root"),
                "{r:?}"
            );
        }
        // No token was minted or revoked: the secrets are the same.
        assert!(fakes[0].revoked().is_empty());
        assert_eq!(fakes[0].calls(Op::Create), 0);
    }
    // Extending the expiry takes nothing away: the own credential is extended too, and
    // nobody asks which token it is.
    let later = jiff::Timestamp::now().as_second() + 90 * 86_400;
    let extend = TokenChange {
        expires: Some(NewExpiry::At(later)),
        ..TokenChange::default()
    };
    let p = whm_plan(Operation::Update, update_work("*", extend));
    let (fakes, _) = fleet(&p, 0);
    fakes[0].set_credential_token("ops-root");
    fakes[0].seed_expiring("@whm", "ops-root", 1, 1_000);
    let out = run(&p, &fakes, opts(2, 0));
    let r = &out.results.to_vec()[0];
    assert_eq!(r.status, Status::Updated, "{r:?}");
    assert_eq!(r.note, None);
    assert_eq!(
        fakes[0].token("@whm", "ops-root").unwrap().expires_at,
        Some(later)
    );
    assert_eq!(r.updated[0].expires_at, Some(crate::time::rfc3339(later)));
    assert_eq!(fakes[0].calls(Op::Whoami), 0);
}

#[test]
fn update_with_expiring_within_takes_only_tokens_about_to_expire_and_a_dry_run_changes_nothing() {
    use crate::plan::{Expiring, NewExpiry, TokenChange};
    let now = jiff::Timestamp::now().as_second();
    let change = TokenChange {
        expires: Some(NewExpiry::Never),
        ..TokenChange::default()
    };
    for dry_run in [true, false] {
        let mut p = whm_plan(Operation::Update, update_work("ci-*", change.clone()));
        p.expiring = Some(Expiring {
            before: now + 30 * 86_400,
            within: "30d".into(),
        });
        let (fakes, _) = fleet(&p, 0);
        fakes[0].seed_expiring("@whm", "ci-soon", 1, now + 86_400);
        fakes[0].seed_expiring("@whm", "ci-gone", 1, now - 86_400);
        fakes[0].seed_expiring("@whm", "ci-later", 1, now + 300 * 86_400);
        fakes[0].seed("@whm", "ci-never", 1);
        fakes[0].seed_expiring("@whm", "other", 1, now + 86_400);
        let out = run(
            &p,
            &fakes,
            RunOptions {
                dry_run,
                ..opts(2, 0)
            },
        );
        let r = &out.results.to_vec()[0];
        let named: Vec<&str> = r.updated.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(named, ["ci-gone", "ci-soon"], "{r:?}");
        let expiry = |n: &str| fakes[0].token("@whm", n).unwrap().expires_at;
        if dry_run {
            assert_eq!(r.status, Status::WouldUpdate);
            assert_eq!(fakes[0].calls(Op::Update), 0);
            assert_eq!(expiry("ci-soon"), Some(now + 86_400));
        } else {
            assert_eq!(r.status, Status::Updated);
            assert_eq!(expiry("ci-soon"), None);
            assert_eq!(expiry("ci-gone"), None);
            assert_eq!(expiry("ci-later"), Some(now + 300 * 86_400));
            assert_eq!(expiry("other"), Some(now + 86_400));
        }
    }
    // Nothing due: unchanged, with a note saying why.
    let mut p = whm_plan(Operation::Update, update_work("ci-*", change));
    p.expiring = Some(Expiring {
        before: now + 86_400,
        within: "1d".into(),
    });
    let (fakes, _) = fleet(&p, 0);
    fakes[0].seed_expiring("@whm", "ci-later", 1, now + 300 * 86_400);
    let r = &run(&p, &fakes, opts(2, 0)).results.to_vec()[0];
    assert_eq!(r.status, Status::Unchanged);
    assert_eq!(
        r.note.as_deref(),
        Some("no token matching ci-* expires within 1d")
    );
}

#[test]
fn rotate_expiring_within_rotates_only_the_targets_whose_old_token_is_about_to_expire() {
    use crate::plan::Expiring;
    let now = jiff::Timestamp::now().as_second();
    for dry_run in [true, false] {
        let mut p = plan(Operation::Rotate, &[2], 2);
        p.expiring = Some(Expiring {
            before: now + 30 * 86_400,
            within: "30d".into(),
        });
        let (fakes, _) = fleet(&p, 0);
        fakes[0].seed_expiring("u00", "tf-old", 1, now + 86_400);
        fakes[0].seed_expiring("u01", "tf-old", 1, now + 300 * 86_400);
        let out = run(
            &p,
            &fakes,
            RunOptions {
                dry_run,
                ..opts(2, 0)
            },
        );
        let results = out.results.to_vec();
        let of = |a: &str| {
            results
                .iter()
                .find(|r| r.account.as_deref() == Some(a))
                .unwrap()
        };
        let (due, later) = (of("u00"), of("u01"));
        assert_eq!(later.status, Status::Unchanged, "{later:?}");
        assert_eq!(
            later.note.as_deref(),
            Some("no token matching tf-* expires within 30d")
        );
        assert!(later.revoked.is_empty());
        assert_eq!(fakes[0].listed("u01"), ["tf-old"]);
        if dry_run {
            assert_eq!(due.status, Status::WouldRotate, "{due:?}");
            assert_eq!(due.revoked[0].name, "tf-old");
            assert_eq!(fakes[0].calls(Op::Create), 0);
        } else {
            assert_eq!(due.status, Status::Rotated, "{due:?}");
            assert_eq!(fakes[0].listed("u00"), ["tf-u00"]);
            assert_eq!(fakes[0].calls(Op::Create), 1);
        }
    }
}

#[test]
fn a_whm_create_gives_the_new_token_its_acls_and_allow_list() {
    let mut p = whm_plan(
        Operation::Create,
        Work::Create {
            name: crate::plan::NameTemplate::parse("tf-new").unwrap(),
        },
    );
    p.policy = crate::plan::TokenPolicy {
        acls: vec!["list-accts".into(), "clustering".into()],
        whitelist: vec!["198.51.100.0/24".into()],
    };
    let (fakes, _) = fleet(&p, 0);
    let r = &run(&p, &fakes, opts(2, 0)).results.to_vec()[0];
    assert_eq!(r.status, Status::Created, "{r:?}");
    let t = fakes[0].token("@whm", "tf-new").unwrap();
    assert_eq!(
        t.acls,
        Some(vec!["list-accts".to_string(), "clustering".to_string()])
    );
    assert_eq!(t.whitelist_ips, ["198.51.100.0/24"]);
}
