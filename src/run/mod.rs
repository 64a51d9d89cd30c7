//! Why this module exists: the fan-out. A rayon pool of `--jobs` threads takes work from per-host
//! lanes so that no server ever has more than `per_host` requests in flight, retries what is safe
//! to retry, stops a host at its first refused credential (cPHulk), never re-sends a mutation whose
//! outcome is unknown without listing first, and turns every outcome, good or bad, into a
//! [`TargetResult`]. It reaches servers only through the [`Backend`] trait, one per host.
//! Secrets go to the [`Ledger`] (the journal) the moment they exist. It emits progress
//! [`Event`]s and knows nothing of HTTP, cPanel or output formats.
//!
//! `lanes.rs` is the scheduler (who runs what, when, and what is skipped); `steps.rs` is what
//! discovery, check, list and revoke send; `mint.rs` create, rotate and reconciliation;
//! `retry.rs` the one retry rule. The types every caller sees live here.
//! See docs/DESIGN.md §6 (behaviour) and §8 (performance).

use crate::backend::{AccountInfo, ApiError, Backend, Cred, NewToken, Owner};
use crate::inventory::{Api as ApiKind, AuthKind};
pub use crate::outcome::{CheckRow, Ledger, ListingRow, Minted, NoLedger};
use crate::outcome::{RevokedToken, Status, TargetResult};
use crate::plan::{HostPlan, Operation, Plan, Scope, Target, Work};
use crate::spool::Spool;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

mod batch;
pub use batch::{DEFAULT_BATCH, MAX_BATCH};
mod lanes;
mod mint;
mod retry;
mod steps;
#[cfg(test)]
mod tests;
mod update;

/// How the run behaves, from the command line.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Requests in flight over the whole fleet (`--jobs`).
    pub jobs: usize,
    /// Extra tries after a retryable failure (connect error, 429, 5xx).
    pub retries: u32,
    /// First backoff; doubled per try, with jitter.
    pub backoff: Duration,
    /// Read-only calls only; no mutation is sent.
    pub dry_run: bool,
    /// `--list-targets`: discover the accounts of `"*"` hosts, send nothing for any target.
    pub list_only: bool,
    /// Rotate: verify the new token before revoking the old (`--no-verify` turns it off).
    pub verify: bool,
    /// Create: revoke a same-named token and create it again instead of reporting `exists`.
    pub replace_existing: bool,
    /// Revoke: the token tokenfleet logs in with may be revoked too (`--revoke-own-credential`).
    pub revoke_own: bool,
    /// Update: the token tokenfleet logs in with may be narrowed too (`--include-own-credential`).
    pub include_own: bool,
    /// `--batch`: at most this many account calls of one host share one WHM API 1 `batch`
    /// request (listings and creates, `api = "whm"` only); 1 = one call per request.
    pub batch: usize,
    /// Hosts not contacted at all, by name: an earlier run of this journal saw a credential
    /// refused there, or a resume's `--limit` leaves them out.
    pub hold: HashMap<String, Hold>,
    /// A store that takes each new secret during the run (`--to`): a create's once journaled,
    /// a rotation's once verified and before the old tokens are revoked.
    pub keep: Option<Keeper>,
}

/// The run's [`crate::outcome::Keep`], shared by the workers.
#[derive(Clone)]
pub struct Keeper(pub std::sync::Arc<dyn crate::outcome::Keep>);

impl std::fmt::Debug for Keeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keeper")
    }
}

/// Why a host is not contacted in this run.
#[derive(Debug, Clone)]
pub struct Hold {
    /// Short, for folding in the summary ("credential refused before").
    pub cause: String,
    /// The whole story, with the fix ("not attempted: …").
    pub why: String,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            jobs: 32,
            retries: 3,
            backoff: Duration::from_millis(250),
            dry_run: false,
            list_only: false,
            verify: true,
            replace_existing: false,
            revoke_own: false,
            include_own: false,
            batch: 1,
            hold: HashMap::new(),
            keep: None,
        }
    }
}

/// Progress, as the run sees it. Host names only; never a secret.
#[derive(Debug, Clone)]
pub enum Event<'a> {
    /// The run starts: the targets known so far (discovery may add more).
    Start { targets: usize },
    /// A host's target count grew (accounts discovered).
    Discovered { host: &'a str, targets: usize },
    /// A host's next piece of work is handed to a worker: `what` names it (an account, or
    /// `listaccts` for discovery, `credential check` for `check`). The first one of a host is
    /// when the host starts.
    Started { host: &'a str, what: &'a str },
    /// One target of a host finished.
    TargetDone { host: &'a str, status: Status },
    /// Every target of a host finished.
    HostDone {
        host: &'a str,
        done: usize,
        failed: usize,
        skipped: usize,
        cause: Option<&'a str>,
    },
    /// A host has had requests out with no answer for `secs` seconds (sent once a second while
    /// it lasts, from 5 s on); `secs: 0` when an answer came after such a wait.
    Waiting { host: &'a str, secs: u64 },
    /// The same for the secret store (`--to`): workers have waited `secs` seconds on it; their
    /// hosts are not counted as waiting meanwhile.
    StoreWaiting { secs: u64 },
    /// Something the user must see now (suspended account, insecure TLS).
    Warning(String),
}

/// Renders [`Event`]s; implemented by the progress module.
pub trait Observer: Sync {
    fn event(&self, event: &Event<'_>);
}

/// Everything a run produced.
#[derive(Debug, Default)]
pub struct Outcome {
    /// One per target, spooled as they finish (memory stays flat in the number of targets).
    pub results: Spool<TargetResult>,
    /// Encrypted under a key of this process and spooled as they are minted.
    pub minted: crate::seal::MintedSpool,
    pub listings: Spool<ListingRow>,
    /// `audit`: every token listed, classed and flagged.
    pub audit: Spool<crate::audit::AuditRow>,
    pub checks: Vec<CheckRow>,
    /// The stop flag was raised: some work was never started (reported as `skipped`).
    pub interrupted: bool,
    /// The journal stopped taking records (a write or its final sync failed): it does not
    /// hold every secret of this run.
    pub journal_failed: bool,
    /// A credential was refused and the journal told: a later `resume` holds that host while
    /// the credential is unchanged, which a fresh run cannot (cPHulk counts each refusal).
    pub refusal_journaled: bool,
}

/// What the journal of an interrupted run says about one target, for `resume`. The run module
/// knows nothing of the journal's format: the resume module reads it and hands over this.
#[derive(Debug, Clone)]
pub enum Prior {
    /// Finished before the interruption: report this status again and send nothing.
    Done(Status),
    /// A create may have been sent and its outcome never seen (last event `intent`, or a
    /// `created` whose secret cannot be read back): list first. With `proven` (the intent
    /// carries the listing that showed the name absent, or the secret was sealed by this run), a
    /// token of the run's name exists only because of this run, and nobody holds its secret: an
    /// orphan, revoked, then created again. Without proof a token found is kept and the target
    /// is [`Status::Unproven`].
    Reconcile { proven: bool },
    /// Rotate: the new token exists and its secret is sealed; continue with verify (unless
    /// `verified`) and the revoke of the old tokens, using this token.
    Created { minted: Minted, verified: bool },
}

/// [`Prior`] per target, keyed by (host name, account or the host's `whm_user`).
pub type PriorState = HashMap<(String, String), Prior>;

/// What a lane does next.
enum Task {
    /// `listaccts`, then queue one target per account.
    Discover,
    /// One target of the plan (or a discovered one).
    Target(Target),
    /// `check`: the host-level credential.
    CheckHost,
    /// Targets of one host whose calls share WHM API 1 `batch` requests (`batch.rs`).
    Batch(Vec<Target>),
}

struct Lane {
    queue: VecDeque<Task>,
    in_flight: usize,
    limit: usize,
    /// One task at a time until the host answers: at the start, so the lane's first call (a
    /// read-only one: discovery, a check, or the first target's listing) is the host's probe,
    /// and again after a target got no answer at all (a second silence gives the host up). A
    /// wrong credential so costs one failed login whatever `per_host` is, and a host that does
    /// not answer is given up before any mutation is sent.
    probation: bool,
    /// The host has answered at least once in this run.
    answered_once: bool,
    /// Set when the host is given up (a refused credential, no answer): the rest of the lane is
    /// skipped with this cause.
    stopped: Option<String>,
    /// A `Waiting` event was sent for the current wait.
    waiting_shown: bool,
    done: usize,
    failed: usize,
    skipped: usize,
    finished: bool,
}

impl Lane {
    /// A host's lane at the start of a run: the work its part of the plan asks for.
    /// `list_only` (`--list-targets`): only what discovers targets, even for `check`.
    fn of(plan: &Plan, hp: &HostPlan, list_only: bool) -> Lane {
        let mut queue = VecDeque::new();
        let check = plan.op() == Operation::Check && !list_only;
        if check && needs_host_check(plan, hp) {
            queue.push_back(Task::CheckHost);
        }
        if hp.discover && !check {
            queue.push_back(Task::Discover);
        }
        if !check || (hp.host.api == ApiKind::Cpanel && plan.scope == Scope::Account) {
            for t in &hp.targets {
                queue.push_back(Task::Target(t.clone()));
            }
        }
        Lane {
            queue,
            in_flight: 0,
            limit: hp.per_host.max(1),
            probation: true,
            answered_once: false,
            stopped: None,
            waiting_shown: false,
            done: 0,
            failed: 0,
            skipped: 0,
            finished: false,
        }
    }
}

struct Sched {
    lanes: Vec<Lane>,
    /// Round-robin start in `open`, so the hosts being worked on interleave.
    cursor: usize,
    /// Work queued or in flight over all lanes.
    outstanding: usize,
    /// Lanes taken up and not finished, in the order they were taken up.
    open: Vec<usize>,
    /// Lanes not taken up yet, in the order they will be (see `Sched::new`).
    unopened: VecDeque<usize>,
}

/// Shared state of one run.
struct Runner<'a> {
    plan: &'a Plan,
    backends: &'a [Box<dyn Backend>],
    opts: &'a RunOptions,
    ledger: &'a dyn Ledger,
    observer: &'a dyn Observer,
    stop: &'a AtomicBool,
    prior: &'a PriorState,
    sched: Mutex<Sched>,
    wake: Condvar,
    out: Mutex<Outcome>,
    /// Set at the first journal write that failed: the run mints nothing more (a secret the
    /// journal cannot hold must not be created), and everything still queued is skipped.
    halted: Mutex<Option<String>>,
    /// The run's start, for `heard`.
    t0: Instant,
    /// Per lane: when its host last answered, or started being waited for (ms since `t0`).
    heard: Vec<std::sync::atomic::AtomicU64>,
    /// The secret store's clock, kept apart from the hosts': a worker waiting on the store is
    /// not its host's silence.
    store: retry::StoreClock,
}

/// Run `plan` over the fleet. `backends[i]` serves `plan.hosts[i]`. Raising `stop` stops new
/// work; work in flight finishes and is recorded.
pub fn execute(
    plan: &Plan,
    backends: &[Box<dyn Backend>],
    opts: &RunOptions,
    ledger: &dyn Ledger,
    observer: &dyn Observer,
    stop: &AtomicBool,
) -> Outcome {
    execute_resumed(
        plan,
        backends,
        opts,
        &PriorState::new(),
        ledger,
        observer,
        stop,
    )
}

/// [`execute`] for `resume`: targets with a [`Prior`] entry pick up where the interrupted run
/// left them (skip, reconcile, or continue a rotation); the others run as usual.
pub fn execute_resumed(
    plan: &Plan,
    backends: &[Box<dyn Backend>],
    opts: &RunOptions,
    prior: &PriorState,
    ledger: &dyn Ledger,
    observer: &dyn Observer,
    stop: &AtomicBool,
) -> Outcome {
    assert_eq!(plan.hosts.len(), backends.len(), "one backend per host");
    let lanes: Vec<Lane> = plan
        .hosts
        .iter()
        .map(|hp| Lane::of(plan, hp, opts.list_only))
        .collect();
    let targets = plan.target_count();
    observer.event(&Event::Start { targets });
    let runner = Runner {
        plan,
        backends,
        opts,
        ledger,
        observer,
        stop,
        prior,
        sched: Mutex::new(Sched::new(lanes)),
        wake: Condvar::new(),
        out: Mutex::new(Outcome::default()),
        halted: Mutex::new(None),
        t0: Instant::now(),
        heard: (0..plan.hosts.len())
            .map(|_| std::sync::atomic::AtomicU64::new(0))
            .collect(),
        store: retry::StoreClock::new(plan.hosts.len()),
    };
    runner.batch_lanes();
    // Hosts an earlier run of this journal saw refuse its credential are not contacted at all
    // (cPHulk counts across runs); hosts with nothing to do are finished at once.
    for (i, hp) in plan.hosts.iter().enumerate() {
        let mut sched = runner.sched.lock().unwrap();
        if let Some(hold) = opts.hold.get(&hp.host.name) {
            runner.give_up(&mut sched, i, hold.cause.clone(), &hold.why);
        }
        runner.finish_lane_if_done(&mut sched, i);
    }
    let workers = opts.jobs.max(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .thread_name(|i| format!("tokenfleet-{i}"))
        .build()
        .expect("cannot start worker threads");
    let finished = (Mutex::new(false), Condvar::new());
    std::thread::scope(|scope| {
        // The watchdog: a host that holds requests without answering is shown as waiting.
        scope.spawn(|| {
            let (lock, cv) = &finished;
            let mut done = lock.lock().unwrap();
            while !*done {
                done = cv.wait_timeout(done, Duration::from_secs(1)).unwrap().0;
                if *done {
                    break;
                }
                for (i, secs) in runner.waiting() {
                    let host = &plan.hosts[i].host.name;
                    observer.event(&Event::Waiting { host, secs });
                }
                if let Some(secs) = runner.store_waiting() {
                    observer.event(&Event::StoreWaiting { secs });
                }
            }
        });
        // Set when the workers are done, or unwinding: the watchdog must never outlive them.
        struct Done<'f>(&'f (Mutex<bool>, Condvar));
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                *self.0.0.lock().unwrap_or_else(|p| p.into_inner()) = true;
                self.0.1.notify_all();
            }
        }
        let _done = Done(&finished);
        pool.scope(|s| {
            for _ in 0..workers {
                s.spawn(|_| runner.worker());
            }
        });
    });
    runner.report_unreached();
    let flushed = ledger.flush();
    if let Err(e) = &flushed {
        observer.event(&Event::Warning(format!(
            "the journal could not be synced at the end of the run: {e}"
        )));
    }
    let halted = runner.halted.lock().unwrap().is_some();
    let mut out = runner.out.into_inner().unwrap();
    out.interrupted = stop.load(Ordering::SeqCst);
    out.journal_failed = halted || flushed.is_err();
    out
}

fn needs_host_check(plan: &Plan, hp: &HostPlan) -> bool {
    plan.scope == Scope::Whm || hp.host.api != ApiKind::Cpanel
}

enum FollowUp {
    /// The host answered.
    None,
    /// The host answered, with more work (discovered accounts).
    Queue(Vec<Task>),
    /// Nothing was sent (a target done before a resume, one held back).
    Idle,
    /// The credential was refused: skip the rest of the host (cPHulk).
    StopHost(String),
    /// The target got no answer at all: puts the host on probation, or gives it up.
    Silent(String),
}

/// Why a target failed, ready for its result.
struct Failure {
    status: Status,
    message: String,
    cause: String,
    step: Option<String>,
    /// The failure is the host's (a refused credential: cPHulk; a TLS failure): stop the host.
    stop_host: bool,
    /// The refusal was the server's answer (not a request the login gate held back): the
    /// journal records it, so a resume does not send that credential again.
    fresh_refusal: bool,
    /// The server gave no answer at all (see `silent`).
    silent: bool,
    /// A live token a human must look at (see [`TargetResult::attention`]).
    attention: Option<String>,
}

impl Failure {
    fn plain(message: &str) -> Failure {
        Failure {
            status: Status::Failed,
            message: message.to_string(),
            cause: message.to_string(),
            step: None,
            stop_host: false,
            fresh_refusal: false,
            silent: false,
            attention: None,
        }
    }

    fn step(step: &str, message: String, cause: &str) -> Failure {
        Failure {
            status: Status::Failed,
            message,
            cause: cause.to_string(),
            step: Some(step.to_string()),
            stop_host: false,
            fresh_refusal: false,
            silent: false,
            attention: None,
        }
    }

    fn api(step: &str, e: ApiError) -> Failure {
        if let ApiError::NoCredential(m) = &e {
            return Failure::plain(m);
        }
        Failure {
            // Held back by the login gate: nothing was sent.
            status: if matches!(e, ApiError::Withheld(_)) {
                Status::Skipped
            } else {
                Status::Failed
            },
            message: format!("{step}: {e}"),
            cause: e.cause(),
            step: Some(step.split(' ').next().unwrap_or(step).to_string()),
            stop_host: e.stops_host(),
            fresh_refusal: e.refused_by_server(),
            silent: e.host_broken(),
            attention: None,
        }
    }

    fn step_api(step: &str, doing: &str, e: ApiError) -> Failure {
        Failure {
            status: Status::Failed,
            message: format!("{doing}: {e}; the new token is sealed in the handoff"),
            cause: e.cause(),
            step: Some(step.to_string()),
            stop_host: e.stops_host(),
            fresh_refusal: e.refused_by_server(),
            silent: e.host_broken(),
            attention: None,
        }
    }
}
