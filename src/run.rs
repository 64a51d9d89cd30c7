//! Why this module exists: the fan-out. A rayon pool of `--jobs` threads takes work from per-host
//! lanes so that no server ever has more than `per_host` requests in flight, retries what is safe
//! to retry, stops a host at its first refused credential (cPHulk), never re-sends a mutation whose
//! outcome is unknown without listing first, and turns every outcome, good or bad, into a
//! [`TargetResult`]. Secrets go to the [`Ledger`] (the journal) the moment they exist. It emits
//! progress [`Event`]s and knows nothing of output formats.

use crate::cpanel::{AccountInfo, Api, ApiError, Caller, NewToken, TokenInfo};
use crate::inventory::{Api as ApiKind, AuthKind, Pin};
use crate::plan::{HostPlan, Operation, Plan, Scope, Target};
use crate::report::{Status, TargetResult};
use crate::transport::{HostTransport, TransportError};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

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
    /// Rotate: verify the new token before revoking the old (`--no-verify` turns it off).
    pub verify: bool,
    /// Create: revoke a same-named token and create it again instead of reporting `exists`.
    pub replace_existing: bool,
    /// When the run (or the run a resume continues) started, unix seconds; 0 = now. A token
    /// found while reconciling that the server says was created well before this (more than
    /// [`CLOCK_SKEW`]) is not an orphan of this run but someone's existing token: it is
    /// reported as `exists` and never revoked.
    pub run_started: i64,
}

/// How far a server's clock may be off ours when telling an orphan from an older token.
pub const CLOCK_SKEW: i64 = 600;

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            jobs: 32,
            retries: 3,
            backoff: Duration::from_millis(250),
            dry_run: false,
            verify: true,
            replace_existing: false,
            run_started: 0,
        }
    }
}

/// A new secret and where it works: one handoff row.
#[derive(Debug, Clone)]
pub struct Minted {
    pub host: String,
    /// The account, or the host's `whm_user` for `--scope whm`.
    pub account: String,
    pub token: NewToken,
    /// `https://ADDRESS:PORT` where the token works.
    pub url: String,
}

/// The journal, seen from the run: every step of a mutation is recorded before the next one.
/// An `Err` from `created` means the secret could not be made durable: the run stops that target
/// there (no verify, no revoke) and keeps the secret for the handoff.
pub trait Ledger: Sync {
    fn intent(
        &self,
        host: &str,
        account: &str,
        token_name: &str,
        action: &str,
    ) -> std::io::Result<()>;
    fn created(&self, minted: &Minted) -> std::io::Result<()>;
    fn verified(&self, host: &str, account: &str, token_name: &str) -> std::io::Result<()>;
    fn revoked(
        &self,
        host: &str,
        account: &str,
        token_name: &str,
        names: &[String],
    ) -> std::io::Result<()>;
    fn failed(
        &self,
        host: &str,
        account: &str,
        token_name: &str,
        step: &str,
        error: &str,
    ) -> std::io::Result<()>;
    /// Make every record durable; called once when the run's work is done, before anything
    /// is reported.
    fn flush(&self) -> std::io::Result<()> {
        Ok(())
    }
    /// Journal the create intents of several targets of `host` (account, token name) with one
    /// fsync: they are durable when this returns.
    fn intents(&self, host: &str, items: &[(String, String)], action: &str) -> std::io::Result<()> {
        for (account, name) in items {
            self.intent(host, account, name, action)?;
        }
        Ok(())
    }
}

/// A ledger that records nothing: for operations that mint no secret (revoke, list, check).
pub struct NoLedger;

impl Ledger for NoLedger {
    fn intent(&self, _: &str, _: &str, _: &str, _: &str) -> std::io::Result<()> {
        Ok(())
    }
    fn created(&self, _: &Minted) -> std::io::Result<()> {
        Ok(())
    }
    fn verified(&self, _: &str, _: &str, _: &str) -> std::io::Result<()> {
        Ok(())
    }
    fn revoked(&self, _: &str, _: &str, _: &str, _: &[String]) -> std::io::Result<()> {
        Ok(())
    }
    fn failed(&self, _: &str, _: &str, _: &str, _: &str, _: &str) -> std::io::Result<()> {
        Ok(())
    }
}

/// Progress, as the run sees it. Host names only; never a secret.
#[derive(Debug, Clone)]
pub enum Event<'a> {
    /// The run starts: hosts and targets known so far (discovery may add more).
    Start { hosts: usize, targets: usize },
    /// A host's target count grew (accounts discovered).
    Discovered { host: &'a str, targets: usize },
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
    /// Something the user must see now (suspended account, insecure TLS).
    Warning(String),
}

/// Renders [`Event`]s; implemented by the progress module.
pub trait Observer: Sync {
    fn event(&self, event: &Event<'_>);
}

/// An observer that shows nothing.
pub struct Silent;

impl Observer for Silent {
    fn event(&self, _: &Event<'_>) {}
}

/// A token as `list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ListingRow {
    pub host: String,
    pub account: String,
    pub token_name: String,
    pub create_time: Option<i64>,
    pub expires_at: Option<i64>,
}

/// One host (or one account credential, for `api = "cpanel"`) as `check` saw it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckRow {
    pub host: String,
    /// The account whose credential was checked (`api = "cpanel"`), else the WHM user.
    pub user: String,
    pub url: String,
    pub ok: bool,
    /// The server version on success, the error otherwise.
    pub detail: String,
    /// The certificate's SHA-256, in the form `tls_pin` accepts.
    pub tls_pin: Option<String>,
    pub elapsed_ms: u64,
}

/// Everything a run produced.
#[derive(Debug, Default)]
pub struct Outcome {
    pub results: Vec<TargetResult>,
    pub minted: Vec<Minted>,
    pub listings: Vec<ListingRow>,
    pub checks: Vec<CheckRow>,
    /// The stop flag was raised: some work was never started (reported as `skipped`).
    pub interrupted: bool,
}

/// What the journal of an interrupted run says about one target, for `resume`. The run module
/// knows nothing of the journal's format: the resume module reads it and hands over this.
#[derive(Debug, Clone)]
pub enum Prior {
    /// Finished before the interruption: report this status again and send nothing.
    Done(Status),
    /// A create was sent and its outcome never seen (last event `intent`): list first. A token of
    /// the run's name exists only because of that create, and nobody holds its secret: an
    /// orphan. Revoke it, then create again.
    Reconcile,
    /// Rotate: the new token exists and its secret is sealed; continue with verify (unless
    /// `verified`) and the revoke of the old tokens, using this token.
    Created { minted: Minted, verified: bool },
}

/// [`Prior`] per target, keyed by (host name, account or the host's `whm_user`).
pub type PriorState = HashMap<(String, String), Prior>;

/// What a lane does next.
enum Work {
    /// `listaccts`, then queue one target per account.
    Discover,
    /// One target of the plan (or a discovered one).
    Target(Target),
    /// `check`: the host-level credential.
    CheckHost,
}

struct Lane {
    queue: VecDeque<Work>,
    in_flight: usize,
    limit: usize,
    /// Set at the first refused credential: the rest of the lane is skipped with this cause.
    stopped: Option<String>,
    /// Targets in a row that got no answer at all (connect error or timeout, retries spent).
    /// At `SILENT_WAVES * limit` the host is taken for dead and the rest is skipped, so a hung
    /// server costs a couple of timeouts, not one per account.
    silent_streak: usize,
    done: usize,
    failed: usize,
    skipped: usize,
    finished: bool,
}

struct Sched {
    lanes: Vec<Lane>,
    /// Round-robin start, so hosts interleave.
    cursor: usize,
    /// Work queued or in flight over all lanes.
    outstanding: usize,
}

/// Shared state of one run.
struct Runner<'a> {
    plan: &'a Plan,
    transports: &'a [HostTransport],
    opts: &'a RunOptions,
    ledger: &'a dyn Ledger,
    observer: &'a dyn Observer,
    stop: &'a AtomicBool,
    prior: &'a PriorState,
    sched: Mutex<Sched>,
    wake: Condvar,
    out: Mutex<Outcome>,
    /// Intents journaled ahead of their target, by (host, account): `true` once durable. A
    /// worker that takes a target journals the intents of the next few targets of that host in
    /// one fsync, so most creates find their intent already durable and do not wait for a disk.
    ahead: Mutex<HashMap<(String, String), bool>>,
}

/// How many targets of one host get their intents journaled in one fsync.
const INTENT_BATCH: usize = 16;

/// Run `plan` over the fleet. `transports[i]` serves `plan.hosts[i]`. Raising `stop` stops new
/// work; work in flight finishes and is recorded.
pub fn execute(
    plan: &Plan,
    transports: &[HostTransport],
    opts: &RunOptions,
    ledger: &dyn Ledger,
    observer: &dyn Observer,
    stop: &AtomicBool,
) -> Outcome {
    execute_resumed(
        plan,
        transports,
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
    transports: &[HostTransport],
    opts: &RunOptions,
    prior: &PriorState,
    ledger: &dyn Ledger,
    observer: &dyn Observer,
    stop: &AtomicBool,
) -> Outcome {
    assert_eq!(plan.hosts.len(), transports.len(), "one transport per host");
    let mut lanes = Vec::with_capacity(plan.hosts.len());
    let mut outstanding = 0;
    let mut targets = 0;
    for hp in &plan.hosts {
        let mut queue = VecDeque::new();
        if plan.op == Operation::Check && needs_host_check(plan, hp) {
            queue.push_back(Work::CheckHost);
        }
        if hp.discover && plan.op != Operation::Check {
            queue.push_back(Work::Discover);
        }
        if plan.op != Operation::Check
            || (hp.host.api == ApiKind::Cpanel && plan.scope == Scope::Account)
        {
            for t in &hp.targets {
                queue.push_back(Work::Target(t.clone()));
            }
        }
        targets += hp.targets.len();
        outstanding += queue.len();
        lanes.push(Lane {
            queue,
            in_flight: 0,
            limit: hp.per_host.max(1),
            stopped: None,
            silent_streak: 0,
            done: 0,
            failed: 0,
            skipped: 0,
            finished: false,
        });
    }
    observer.event(&Event::Start {
        hosts: plan.hosts.len(),
        targets,
    });
    let mut opts = opts.clone();
    if opts.run_started == 0 {
        opts.run_started = jiff::Timestamp::now().as_second();
    }
    let opts = &opts;
    let runner = Runner {
        plan,
        transports,
        opts,
        ledger,
        observer,
        stop,
        prior,
        sched: Mutex::new(Sched {
            lanes,
            cursor: 0,
            outstanding,
        }),
        wake: Condvar::new(),
        out: Mutex::new(Outcome::default()),
        ahead: Mutex::new(HashMap::new()),
    };
    // Hosts with nothing to do are finished at once.
    for i in 0..plan.hosts.len() {
        runner.finish_lane_if_done(&mut runner.sched.lock().unwrap(), i);
    }
    let workers = opts.jobs.max(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .thread_name(|i| format!("tokenfleet-{i}"))
        .build()
        .expect("cannot start worker threads");
    pool.scope(|s| {
        for _ in 0..workers {
            s.spawn(|_| runner.worker());
        }
    });
    if let Err(e) = ledger.flush() {
        observer.event(&Event::Warning(format!(
            "the journal could not be synced at the end of the run: {e}"
        )));
    }
    let mut out = runner.out.into_inner().unwrap();
    out.interrupted = stop.load(Ordering::SeqCst);
    out
}

fn needs_host_check(plan: &Plan, hp: &HostPlan) -> bool {
    plan.scope == Scope::Whm || hp.host.api == ApiKind::Whm
}

impl Runner<'_> {
    fn worker(&self) {
        let mut sched = self.sched.lock().unwrap();
        loop {
            if sched.outstanding == 0 {
                self.wake.notify_all();
                return;
            }
            if self.stop.load(Ordering::SeqCst) {
                self.skip_all_queued(&mut sched, "interrupted before this target started");
            }
            let n = sched.lanes.len();
            let mut picked = None;
            for k in 0..n {
                let i = (sched.cursor + k) % n;
                let lane = &sched.lanes[i];
                if lane.in_flight < lane.limit && !lane.queue.is_empty() {
                    picked = Some(i);
                    break;
                }
            }
            let Some(i) = picked else {
                if sched.outstanding == 0 {
                    continue;
                }
                sched = self.wake.wait(sched).unwrap();
                continue;
            };
            sched.cursor = (i + 1) % n;
            let work = sched.lanes[i].queue.pop_front().expect("non-empty");
            sched.lanes[i].in_flight += 1;
            let batch = self.claim_intents(&sched.lanes[i], i, &work);
            drop(sched);
            self.journal_intents(i, batch);

            let follow_up = self.perform(i, work);

            sched = self.sched.lock().unwrap();
            sched.lanes[i].in_flight -= 1;
            sched.outstanding -= 1;
            match follow_up {
                FollowUp::None => {}
                FollowUp::Queue(works) => {
                    sched.outstanding += works.len();
                    let lane = &mut sched.lanes[i];
                    lane.queue.extend(works);
                }
                FollowUp::Silent(cause) => {
                    let lane = &mut sched.lanes[i];
                    lane.silent_streak += 1;
                    if lane.silent_streak >= SILENT_WAVES * lane.limit && lane.stopped.is_none() {
                        lane.stopped = Some(cause.clone());
                        self.skip_lane(
                            &mut sched,
                            i,
                            &format!("not attempted: {cause} on this host (its last targets all failed that way, retries spent)"),
                            Some(cause),
                        );
                    }
                }
                FollowUp::StopHost(cause) => {
                    if sched.lanes[i].stopped.is_none() {
                        sched.lanes[i].stopped = Some(cause.clone());
                    }
                    self.skip_lane(
                        &mut sched,
                        i,
                        &format!("not attempted: {cause} on this host"),
                        Some(cause),
                    );
                }
            }
            self.finish_lane_if_done(&mut sched, i);
            self.wake.notify_all();
        }
    }

    /// The targets whose create intents this worker journals now: the one it took and the next
    /// few of the same host that will create from scratch (no journal history: a resumed target
    /// keeps its own sequence). Claimed targets are marked pending so no one claims them twice.
    fn claim_intents(&self, lane: &Lane, i: usize, taken: &Work) -> Vec<(String, String)> {
        if !matches!(self.plan.op, Operation::Create | Operation::Rotate) || self.opts.dry_run {
            return Vec::new();
        }
        let hp = &self.plan.hosts[i];
        let mut ahead = self.ahead.lock().unwrap();
        // A target claimed by an earlier batch goes without waiting; only a target nobody
        // claimed yet starts a new batch (and waits for its one fsync).
        if let Work::Target(t) = taken
            && ahead.contains_key(&(hp.host.name.clone(), self.account_of(hp, t).to_string()))
        {
            return Vec::new();
        }
        let mut batch = Vec::new();
        for work in std::iter::once(taken).chain(lane.queue.iter()) {
            if batch.len() == INTENT_BATCH {
                break;
            }
            let Work::Target(t) = work else { continue };
            let Some(name) = t.token_name.as_ref() else {
                continue;
            };
            let key = (hp.host.name.clone(), self.account_of(hp, t).to_string());
            if ahead.contains_key(&key) || self.prior.contains_key(&key) {
                continue;
            }
            ahead.insert(key.clone(), false);
            batch.push((key.1, name.clone()));
        }
        batch
    }

    /// Journal the claimed intents with one fsync, then mark them durable. On a journal error
    /// they are unclaimed: each target then writes its own intent (and fails on the error).
    fn journal_intents(&self, i: usize, batch: Vec<(String, String)>) {
        if batch.is_empty() {
            return;
        }
        let host = &self.plan.hosts[i].host.name;
        let ok = self.ledger.intents(host, &batch, "create").is_ok();
        let mut ahead = self.ahead.lock().unwrap();
        for (account, _) in batch {
            let key = (host.clone(), account);
            if ok {
                if let Some(durable) = ahead.get_mut(&key) {
                    *durable = true;
                }
            } else {
                ahead.remove(&key);
            }
        }
    }

    /// Whether this target's create intent is already durable (journaled ahead). Either way
    /// the mark is used up: a retry journals its own intent.
    fn intent_journaled_ahead(&self, host: &str, account: &str) -> bool {
        let mut ahead = self.ahead.lock().unwrap();
        ahead
            .remove(&(host.to_string(), account.to_string()))
            .unwrap_or(false)
    }

    /// Mark everything still queued as skipped (interrupt).
    fn skip_all_queued(&self, sched: &mut Sched, why: &str) {
        for i in 0..sched.lanes.len() {
            if !sched.lanes[i].queue.is_empty() {
                self.skip_lane(sched, i, why, Some("interrupted".to_string()));
                self.finish_lane_if_done(sched, i);
            }
        }
    }

    fn skip_lane(&self, sched: &mut Sched, i: usize, why: &str, cause: Option<String>) {
        let hp = &self.plan.hosts[i];
        let drained: Vec<Work> = sched.lanes[i].queue.drain(..).collect();
        sched.outstanding -= drained.len();
        let mut out = self.out.lock().unwrap();
        for work in drained {
            let (account, token_name) = match &work {
                Work::Target(t) => (
                    Some(self.account_of(hp, t).to_string()),
                    t.token_name.clone(),
                ),
                Work::Discover | Work::CheckHost => (None, None),
            };
            sched.lanes[i].skipped += 1;
            self.observer.event(&Event::TargetDone {
                host: &hp.host.name,
                status: Status::Skipped,
            });
            out.results.push(TargetResult {
                host: hp.host.name.clone(),
                account,
                token_name,
                status: Status::Skipped,
                error: Some(why.to_string()),
                cause: cause.clone(),
                step: None,
                attempts: 0,
                elapsed_ms: 0,
            });
        }
    }

    fn finish_lane_if_done(&self, sched: &mut Sched, i: usize) {
        let lane = &mut sched.lanes[i];
        if lane.finished || lane.in_flight > 0 || !lane.queue.is_empty() {
            return;
        }
        lane.finished = true;
        self.observer.event(&Event::HostDone {
            host: &self.plan.hosts[i].host.name,
            done: lane.done,
            failed: lane.failed,
            skipped: lane.skipped,
            cause: lane.stopped.as_deref(),
        });
    }

    fn account_of<'t>(&self, hp: &'t HostPlan, t: &'t Target) -> &'t str {
        t.account.as_deref().unwrap_or(&hp.host.whm_user)
    }

    /// Do one piece of work and record its result.
    fn perform(&self, i: usize, work: Work) -> FollowUp {
        let hp = &self.plan.hosts[i];
        let api = Api::new(&self.transports[i]);
        let started = Instant::now();
        match work {
            Work::Discover => self.discover(hp, &api, started),
            Work::CheckHost => {
                self.check_host(hp, &api, &self.transports[i], started);
                FollowUp::None
            }
            Work::Target(t) => {
                let account = self.account_of(hp, &t).to_string();
                let mut attempts = 0u32;
                let prior = if self.prior.is_empty() {
                    None
                } else {
                    self.prior.get(&(hp.host.name.clone(), account.clone()))
                };
                let verdict = match prior {
                    // Done before the interruption: nothing to send.
                    Some(Prior::Done(status)) => Ok(*status),
                    _ => self.target(
                        hp,
                        &api,
                        &self.transports[i],
                        &t,
                        &account,
                        prior,
                        &mut attempts,
                    ),
                };
                let (status, error, cause, step, follow) = match verdict {
                    Ok(status) => (status, None, None, None, FollowUp::None),
                    Err(f) => {
                        let follow = if f.auth_refused {
                            FollowUp::StopHost(f.cause.clone())
                        } else if f.silent {
                            FollowUp::Silent(f.cause.clone())
                        } else {
                            FollowUp::None
                        };
                        (f.status, Some(f.message), Some(f.cause), f.step, follow)
                    }
                };
                self.record(
                    i,
                    TargetResult {
                        host: hp.host.name.clone(),
                        account: Some(account),
                        token_name: t.token_name.clone(),
                        status,
                        error,
                        cause,
                        step,
                        attempts,
                        elapsed_ms: started.elapsed().as_millis() as u64,
                    },
                );
                follow
            }
        }
    }

    fn record(&self, i: usize, result: TargetResult) {
        let status = result.status;
        {
            let mut sched = self.sched.lock().unwrap();
            let lane = &mut sched.lanes[i];
            match status {
                Status::Failed => lane.failed += 1,
                Status::Skipped => lane.skipped += 1,
                _ => {
                    lane.done += 1;
                    lane.silent_streak = 0;
                }
            }
        }
        self.observer.event(&Event::TargetDone {
            host: &self.plan.hosts[i].host.name,
            status,
        });
        self.out.lock().unwrap().results.push(result);
    }

    /// `listaccts`, then one target per eligible account.
    fn discover(&self, hp: &HostPlan, api: &Api<'_>, started: Instant) -> FollowUp {
        let Some(cred) = hp.credential.as_ref() else {
            return self.host_failure(
                hp,
                "discovery needs the host's WHM credential",
                "no WHM credential",
                None,
                started,
            );
        };
        let mut attempts = 0;
        let accounts: Result<Vec<AccountInfo>, ApiError> = self.with_retries(&mut attempts, || {
            api.list_accounts(&hp.host.whm_user, cred, hp.host.auth)
        });
        let accounts = match accounts {
            Ok(a) => a,
            Err(e) => {
                let stop = matches!(e, ApiError::Auth { .. });
                let follow = self.host_failure(
                    hp,
                    &format!("listaccts: {e}"),
                    &e.cause(),
                    Some(&e),
                    started,
                );
                return if stop {
                    FollowUp::StopHost(e.cause())
                } else {
                    follow
                };
            }
        };
        let mut works = Vec::new();
        let mut sorted = accounts;
        sorted.sort_by(|a, b| a.user.cmp(&b.user));
        for acct in sorted {
            if let Some(glob) = &self.plan.accounts_glob
                && !glob.matches(&acct.user)
            {
                continue;
            }
            if acct.suspended {
                let i = self.index_of(hp);
                self.record(
                    i,
                    TargetResult {
                        host: hp.host.name.clone(),
                        account: Some(acct.user.clone()),
                        token_name: None,
                        status: Status::Skipped,
                        // Skipped by policy, not by failure: no error, so the exit code stays 0.
                        error: None,
                        cause: Some("account suspended".into()),
                        step: None,
                        attempts: 0,
                        elapsed_ms: 0,
                    },
                );
                continue;
            }
            match self.plan.target_for(hp, &acct.user) {
                Ok(t) => works.push(Work::Target(t)),
                Err(msg) => {
                    let i = self.index_of(hp);
                    self.record(
                        i,
                        TargetResult {
                            host: hp.host.name.clone(),
                            account: Some(acct.user.clone()),
                            token_name: None,
                            status: Status::Failed,
                            error: Some(msg),
                            cause: Some("invalid token name".into()),
                            step: Some("plan".into()),
                            attempts: 0,
                            elapsed_ms: 0,
                        },
                    );
                }
            }
        }
        self.observer.event(&Event::Discovered {
            host: &hp.host.name,
            targets: works.len(),
        });
        FollowUp::Queue(works)
    }

    fn index_of(&self, hp: &HostPlan) -> usize {
        self.plan
            .hosts
            .iter()
            .position(|h| std::ptr::eq(h, hp))
            .expect("host of this plan")
    }

    /// A failure that concerns the whole host, before any target (discovery).
    fn host_failure(
        &self,
        hp: &HostPlan,
        message: &str,
        cause: &str,
        _e: Option<&ApiError>,
        started: Instant,
    ) -> FollowUp {
        let i = self.index_of(hp);
        self.record(
            i,
            TargetResult {
                host: hp.host.name.clone(),
                account: None,
                token_name: None,
                status: Status::Failed,
                error: Some(message.to_string()),
                cause: Some(cause.to_string()),
                step: Some("discover".into()),
                attempts: 1,
                elapsed_ms: started.elapsed().as_millis() as u64,
            },
        );
        FollowUp::None
    }

    fn check_host(
        &self,
        hp: &HostPlan,
        api: &Api<'_>,
        transport: &HostTransport,
        started: Instant,
    ) {
        let url = format!(
            "https://{}:{}",
            url_host(&hp.host.address),
            hp.host.whm_port
        );
        let result = match hp.credential.as_ref() {
            Some(cred) => {
                let mut attempts = 0;
                self.with_retries(&mut attempts, || {
                    api.version(&hp.host.whm_user, cred, hp.host.auth)
                })
            }
            None => Err(ApiError::Protocol("no WHM credential to check".into())),
        };
        self.push_check(
            hp,
            &hp.host.whm_user,
            url,
            result,
            transport.peer_pin(),
            started,
        );
    }

    fn push_check(
        &self,
        hp: &HostPlan,
        user: &str,
        url: String,
        result: Result<String, ApiError>,
        pin: Option<Pin>,
        started: Instant,
    ) {
        let i = self.index_of(hp);
        let (ok, detail) = match &result {
            Ok(v) => (true, v.clone()),
            Err(e) => (false, e.to_string()),
        };
        let pin = match &result {
            Err(ApiError::Transport(TransportError::PinMismatch { got, .. })) => Some(*got),
            _ => pin,
        };
        self.out.lock().unwrap().checks.push(CheckRow {
            host: hp.host.name.clone(),
            user: user.to_string(),
            url,
            ok,
            detail: detail.clone(),
            tls_pin: pin.map(|p| p.to_string()),
            elapsed_ms: started.elapsed().as_millis() as u64,
        });
        let (status, error, cause) = match result {
            Ok(_) => (Status::Unchanged, None, None),
            Err(e) => (Status::Failed, Some(detail), Some(e.cause())),
        };
        self.record(
            i,
            TargetResult {
                host: hp.host.name.clone(),
                account: Some(user.to_string()),
                token_name: None,
                status,
                error,
                cause,
                step: Some("check".into()),
                attempts: 1,
                elapsed_ms: started.elapsed().as_millis() as u64,
            },
        );
    }

    /// Call `f` until it succeeds, fails for good, or the retries run out. Only failures where
    /// nothing can have happened on the server are retried here (connect errors, 429, 5xx on
    /// reads); callers handle outcome-unknown mutations themselves.
    fn with_retries<T>(
        &self,
        attempts: &mut u32,
        mut f: impl FnMut() -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let mut tries = 0;
        loop {
            *attempts += 1;
            match f() {
                Ok(v) => return Ok(v),
                Err(e)
                    if e.is_retryable()
                        && tries < self.opts.retries
                        && !self.stop.load(Ordering::SeqCst) =>
                {
                    self.backoff(tries);
                    tries += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn backoff(&self, tries: u32) {
        let base = self.opts.backoff.saturating_mul(1 << tries.min(6));
        let jitter = base.mul_f64(fastrand::f64() * 0.5);
        std::thread::sleep(base + jitter);
    }

    /// One target of a create, rotate, revoke or list.
    #[allow(clippy::too_many_arguments)]
    fn target(
        &self,
        hp: &HostPlan,
        api: &Api<'_>,
        transport: &HostTransport,
        t: &Target,
        account: &str,
        prior: Option<&Prior>,
        attempts: &mut u32,
    ) -> Result<Status, Failure> {
        let caller = self.caller(hp, t)?;
        let reconcile = matches!(prior, Some(Prior::Reconcile));
        match self.plan.op {
            Operation::List => {
                let tokens = self
                    .with_retries(attempts, || api.list_tokens(&caller))
                    .map_err(|e| Failure::api("list", e))?;
                let mut out = self.out.lock().unwrap();
                for tok in tokens {
                    out.listings.push(ListingRow {
                        host: hp.host.name.clone(),
                        account: account.to_string(),
                        token_name: tok.name,
                        create_time: tok.create_time,
                        expires_at: tok.expires_at,
                    });
                }
                Ok(Status::Unchanged)
            }
            Operation::Check => {
                // api = "cpanel": check each account's own credential.
                let started = Instant::now();
                let result = self
                    .with_retries(attempts, || api.list_tokens(&caller))
                    .map(|tokens| format!("{} tokens", tokens.len()));
                let url = format!(
                    "https://{}:{}",
                    url_host(&hp.host.address),
                    hp.host.cpanel_port
                );
                let failure = result.as_ref().err().cloned();
                let ok = result.is_ok();
                let (detail, pin) = (
                    match &result {
                        Ok(v) => v.clone(),
                        Err(e) => e.to_string(),
                    },
                    transport.peer_pin(),
                );
                self.out.lock().unwrap().checks.push(CheckRow {
                    host: hp.host.name.clone(),
                    user: account.to_string(),
                    url,
                    ok,
                    detail,
                    tls_pin: pin.map(|p| p.to_string()),
                    elapsed_ms: started.elapsed().as_millis() as u64,
                });
                match failure {
                    None => Ok(Status::Unchanged),
                    Some(e) => Err(Failure::api("check", e)),
                }
            }
            Operation::Revoke => self.revoke(hp, api, &caller, account, attempts),
            Operation::Create => self
                .create(hp, api, &caller, t, account, reconcile, attempts)
                .map(|(status, _)| status),
            Operation::Rotate => match prior {
                Some(Prior::Created { minted, verified }) => {
                    let name = t.token_name.clone().unwrap_or_default();
                    self.finish_rotate(
                        hp,
                        api,
                        &caller,
                        account,
                        &name,
                        &minted.token,
                        *verified,
                        attempts,
                    )
                }
                _ => self.rotate(hp, api, &caller, t, account, reconcile, attempts),
            },
        }
    }

    fn caller<'c>(&self, hp: &'c HostPlan, t: &'c Target) -> Result<Caller<'c>, Failure> {
        let host = &hp.host;
        if self.plan.scope == Scope::Whm {
            let cred = hp
                .credential
                .as_ref()
                .ok_or_else(|| Failure::plain("no WHM credential for this host"))?;
            return Ok(Caller::Whm {
                whm_user: &host.whm_user,
                credential: cred,
                auth: host.auth,
            });
        }
        let account = t.account.as_deref().unwrap_or(&host.whm_user);
        match host.api {
            ApiKind::Whm => {
                let cred = hp
                    .credential
                    .as_ref()
                    .ok_or_else(|| Failure::plain("no WHM credential for this host"))?;
                Ok(Caller::WhmFor {
                    whm_user: &host.whm_user,
                    credential: cred,
                    auth: host.auth,
                    account,
                })
            }
            ApiKind::Cpanel => {
                let cred = t
                    .credential
                    .as_ref()
                    .or(hp.credential.as_ref())
                    .ok_or_else(|| Failure::plain("no credential for this account"))?;
                Ok(Caller::Account {
                    user: account,
                    credential: cred,
                    auth: host.auth,
                })
            }
        }
    }

    fn revoke(
        &self,
        hp: &HostPlan,
        api: &Api<'_>,
        caller: &Caller<'_>,
        account: &str,
        attempts: &mut u32,
    ) -> Result<Status, Failure> {
        let pattern = self
            .plan
            .revoke
            .as_ref()
            .ok_or_else(|| Failure::plain("no token name to revoke"))?;
        let tokens = self
            .with_retries(attempts, || api.list_tokens(caller))
            .map_err(|e| Failure::api("list", e))?;
        let names: Vec<String> = tokens
            .into_iter()
            .map(|t| t.name)
            .filter(|n| pattern.matches(n))
            .collect();
        if names.is_empty() {
            return Ok(Status::Unchanged);
        }
        if self.opts.dry_run {
            return Ok(Status::Revoked);
        }
        // Revoke is idempotent: re-sending after an unknown outcome is safe.
        self.with_retries(attempts, || api.revoke_tokens(caller, &names))
            .map_err(|e| Failure::api("revoke", e))?;
        let _ = self
            .ledger
            .revoked(&hp.host.name, account, pattern.as_str(), &names);
        Ok(Status::Revoked)
    }

    /// Create the target's token. Returns the status and, when a secret was minted and made
    /// durable, the new token. With `reconcile` (resume of a create whose outcome was never
    /// seen), list first and revoke an orphan of this name before creating.
    #[allow(clippy::too_many_arguments)]
    fn create(
        &self,
        hp: &HostPlan,
        api: &Api<'_>,
        caller: &Caller<'_>,
        t: &Target,
        account: &str,
        reconcile: bool,
        attempts: &mut u32,
    ) -> Result<(Status, Option<NewToken>), Failure> {
        let name = t
            .token_name
            .as_deref()
            .ok_or_else(|| Failure::plain("no token name"))?;
        let host = &hp.host.name;
        if self.opts.dry_run {
            let tokens = self
                .with_retries(attempts, || api.list_tokens(caller))
                .map_err(|e| Failure::api("list", e))?;
            let exists = tokens.iter().any(|t| t.name == name);
            return Ok((
                if exists && !self.opts.replace_existing {
                    Status::Exists
                } else {
                    Status::Created
                },
                None,
            ));
        }
        if reconcile && !self.revoke_orphan(hp, api, caller, account, name, attempts)? {
            let _ = self.ledger.failed(host, account, name, "create", "exists");
            return Ok((Status::Exists, None));
        }
        let mut tries = 0u32;
        let mut replaced = false;
        let mut ahead = self.intent_journaled_ahead(host, account);
        loop {
            if std::mem::take(&mut ahead) {
                // Already durable: journaled with the batch this target was claimed in.
            } else {
                self.ledger
                    .intent(host, account, name, "create")
                    .map_err(|e| {
                        Failure::step(
                            "journal",
                            format!("cannot write the journal: {e}"),
                            "journal write failed",
                        )
                    })?;
            }
            *attempts += 1;
            match api.create_token(caller, name, self.plan.expires_at) {
                Ok(token) => {
                    let minted = Minted {
                        host: host.clone(),
                        account: account.to_string(),
                        url: self.token_url(hp),
                        token,
                    };
                    let durable = self.ledger.created(&minted);
                    let token = minted.token.clone();
                    self.out.lock().unwrap().minted.push(minted);
                    if let Err(e) = durable {
                        return Err(Failure::step(
                            "seal",
                            format!(
                                "created, but the journal could not record it: {e}; the secret is kept for the handoff"
                            ),
                            "journal write failed",
                        ));
                    }
                    return Ok((Status::Created, Some(token)));
                }
                Err(ApiError::Conflict(msg)) => {
                    if self.opts.replace_existing && !replaced {
                        replaced = true;
                        self.with_retries(attempts, || {
                            api.revoke_tokens(caller, &[name.to_string()])
                        })
                        .map_err(|e| Failure::api("revoke", e))?;
                        let _ = self
                            .ledger
                            .revoked(host, account, name, &[name.to_string()]);
                        continue;
                    }
                    if self.plan.op == Operation::Rotate {
                        // Journaled, so that resume knows the name was taken before this run
                        // (never an orphan of ours to revoke).
                        let _ = self.ledger.failed(host, account, name, "create", "exists");
                        return Err(Failure::step(
                            "create",
                            format!(
                                "{msg}; rotate needs a new name (use {{date}} or {{run}} in --name, or --replace-existing)"
                            ),
                            "token name already exists",
                        ));
                    }
                    let _ = self.ledger.failed(host, account, name, "create", "exists");
                    return Ok((Status::Exists, None));
                }
                Err(e)
                    if e.outcome_unknown()
                        && tries < self.opts.retries
                        && !self.stop.load(Ordering::SeqCst) =>
                {
                    // The server may have created the token and we never saw its secret. List
                    // first: an orphan of this name is revoked, then created again; a token
                    // older than the run is someone's, and the target is `exists`.
                    tries += 1;
                    self.backoff(tries - 1);
                    if !self.revoke_orphan(hp, api, caller, account, name, attempts)? {
                        let _ = self.ledger.failed(host, account, name, "create", "exists");
                        return Ok((Status::Exists, None));
                    }
                }
                Err(e)
                    if e.is_retryable()
                        && tries < self.opts.retries
                        && !self.stop.load(Ordering::SeqCst) =>
                {
                    tries += 1;
                    self.backoff(tries - 1);
                }
                Err(e) => {
                    let _ = self
                        .ledger
                        .failed(host, account, name, "create", &e.to_string());
                    return Err(Failure::api("create", e));
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn rotate(
        &self,
        hp: &HostPlan,
        api: &Api<'_>,
        caller: &Caller<'_>,
        t: &Target,
        account: &str,
        reconcile: bool,
        attempts: &mut u32,
    ) -> Result<Status, Failure> {
        let name = t.token_name.clone().unwrap_or_default();
        if self.plan.revoke.is_none() {
            return Err(Failure::plain("rotate needs --revoke"));
        }
        if self.opts.dry_run {
            let tokens = self
                .with_retries(attempts, || api.list_tokens(caller))
                .map_err(|e| Failure::api("list", e))?;
            return Ok(if tokens.iter().any(|t| t.name == name) {
                Status::Exists
            } else {
                Status::Rotated
            });
        }
        let (status, token) = self.create(hp, api, caller, t, account, reconcile, attempts)?;
        let Some(token) = token else {
            return Ok(status);
        };
        self.finish_rotate(hp, api, caller, account, &name, &token, false, attempts)
    }

    /// The rotation after the new token is sealed: verify it (unless done already), then revoke
    /// the old tokens matching `--revoke`, never the new one.
    #[allow(clippy::too_many_arguments)]
    fn finish_rotate(
        &self,
        hp: &HostPlan,
        api: &Api<'_>,
        caller: &Caller<'_>,
        account: &str,
        name: &str,
        token: &NewToken,
        verified: bool,
        attempts: &mut u32,
    ) -> Result<Status, Failure> {
        let pattern = self
            .plan
            .revoke
            .as_ref()
            .ok_or_else(|| Failure::plain("rotate needs --revoke"))?;
        let host = &hp.host;
        // Verify with a real call that uses only the new token.
        if self.opts.verify && !verified {
            *attempts += 1;
            let verified = match self.plan.scope {
                Scope::Whm => api
                    .version(&host.whm_user, &token.token, AuthKind::Token)
                    .map(|_| ()),
                Scope::Account => api
                    .list_tokens(&Caller::Account {
                        user: account,
                        credential: &token.token,
                        auth: AuthKind::Token,
                    })
                    .map(|_| ()),
            };
            if let Err(e) = verified {
                let _ = self
                    .ledger
                    .failed(&host.name, account, name, "verify", &e.to_string());
                // A refused new token says nothing about the host's credential: do not stop the host.
                return Err(Failure {
                    status: Status::Failed,
                    message: format!(
                        "verify: the new token did not work ({e}); old tokens left alive"
                    ),
                    cause: format!("new token failed verification: {}", e.cause()),
                    step: Some("verify".into()),
                    auth_refused: false,
                    silent: false,
                });
            }
            let _ = self.ledger.verified(&host.name, account, name);
        }
        // With the account's own token credential, continue with the new token: rotating the
        // credential tokenfleet itself uses must not depend on the old one surviving.
        let after = match *caller {
            Caller::Account {
                user,
                auth: AuthKind::Token,
                ..
            } => Caller::Account {
                user,
                credential: &token.token,
                auth: AuthKind::Token,
            },
            Caller::Whm {
                whm_user,
                auth: AuthKind::Token,
                ..
            } if self.opts.verify || verified => Caller::Whm {
                whm_user,
                credential: &token.token,
                auth: AuthKind::Token,
            },
            other => other,
        };
        let tokens = self
            .with_retries(attempts, || api.list_tokens(&after))
            .map_err(|e| Failure::step_api("revoke", "listing the old tokens", e))?;
        let old: Vec<String> = tokens
            .into_iter()
            .map(|t| t.name)
            .filter(|n| n != name && pattern.matches(n))
            .collect();
        if !old.is_empty()
            && let Err(e) = self.with_retries(attempts, || api.revoke_tokens(&after, &old))
        {
            let _ = self
                .ledger
                .failed(&host.name, account, name, "revoke", &e.to_string());
            return Err(Failure::step_api("revoke", "revoking the old tokens", e));
        }
        // Recorded even when nothing matched: the journal's proof that this rotation finished.
        let _ = self.ledger.revoked(&host.name, account, name, &old);
        Ok(Status::Rotated)
    }

    /// Whether the server says `token` was created well before this run started.
    fn older_than_run(&self, token: &TokenInfo) -> bool {
        token
            .create_time
            .is_some_and(|t| t < self.opts.run_started - CLOCK_SKEW)
    }

    /// A create whose outcome was never seen (its answer lost mid-run, or a resume after a
    /// crash): a token of this name created since the run started was made by that create, and
    /// its secret was never received. Revoke it (recorded). Returns false when the name belongs
    /// to a token older than the run: nothing is revoked and the target is `exists`.
    fn revoke_orphan(
        &self,
        hp: &HostPlan,
        api: &Api<'_>,
        caller: &Caller<'_>,
        account: &str,
        name: &str,
        attempts: &mut u32,
    ) -> Result<bool, Failure> {
        let host = &hp.host.name;
        let tokens = match self.with_retries(attempts, || api.list_tokens(caller)) {
            Ok(t) => t,
            Err(e) => {
                let _ = self
                    .ledger
                    .failed(host, account, name, "reconcile", &e.to_string());
                return Err(Failure::api("reconcile (list)", e));
            }
        };
        let Some(found) = tokens.iter().find(|t| t.name == name) else {
            return Ok(true);
        };
        if self.older_than_run(found) {
            return Ok(false);
        }
        let orphan = [name.to_string()];
        self.ledger
            .intent(host, account, name, "revoke")
            .map_err(|e| {
                Failure::step(
                    "journal",
                    format!("cannot write the journal: {e}"),
                    "journal write failed",
                )
            })?;
        if let Err(e) = self.with_retries(attempts, || api.revoke_tokens(caller, &orphan)) {
            let _ = self
                .ledger
                .failed(host, account, name, "reconcile", &e.to_string());
            return Err(Failure::api("reconcile (revoke orphan)", e));
        }
        let _ = self.ledger.revoked(host, account, name, &orphan);
        self.observer.event(&Event::Warning(format!(
            "{host} {account}: revoked orphan token {name} (created, but its secret was never received); creating it again"
        )));
        Ok(true)
    }

    fn token_url(&self, hp: &HostPlan) -> String {
        let port = match self.plan.scope {
            Scope::Whm => hp.host.whm_port,
            Scope::Account => hp.host.cpanel_port,
        };
        format!("https://{}:{}", url_host(&hp.host.address), port)
    }
}

/// Brackets for IPv6 literals in URLs.
pub fn url_host(address: &str) -> String {
    if address.contains(':') && !address.starts_with('[') {
        format!("[{address}]")
    } else {
        address.to_string()
    }
}

enum FollowUp {
    None,
    Queue(Vec<Work>),
    StopHost(String),
    /// The target got no answer at all: counts toward taking the host for dead.
    Silent(String),
}

/// Waves of `per_host` unanswered targets in a row after which a host is skipped.
const SILENT_WAVES: usize = 2;

/// The failure says the host is broken, not the target: nothing came back (refused, timed
/// out, reset, oversized), 429/5xx after every retry, or an answer that is not the API (an
/// HTML login page, a redirect, non-JSON). Two waves of targets like that in a row take the
/// host for down, so a broken server costs a few targets' retries, not every account's. A
/// refusal by the API itself (a bad name, a duplicate) says nothing about the host.
fn silent(e: &ApiError) -> bool {
    match e {
        ApiError::Transport(_) | ApiError::Http { .. } | ApiError::Protocol(_) => true,
        ApiError::Auth { .. } | ApiError::Rejected(_) | ApiError::Conflict(_) => false,
    }
}

/// Why a target failed, ready for its result.
struct Failure {
    status: Status,
    message: String,
    cause: String,
    step: Option<String>,
    /// The host's credential was refused: stop the host (cPHulk).
    auth_refused: bool,
    /// The server gave no answer at all (see `silent`).
    silent: bool,
}

impl Failure {
    fn plain(message: &str) -> Failure {
        Failure {
            status: Status::Failed,
            message: message.to_string(),
            cause: message.to_string(),
            step: None,
            auth_refused: false,
            silent: false,
        }
    }

    fn step(step: &str, message: String, cause: &str) -> Failure {
        Failure {
            status: Status::Failed,
            message,
            cause: cause.to_string(),
            step: Some(step.to_string()),
            auth_refused: false,
            silent: false,
        }
    }

    fn api(step: &str, e: ApiError) -> Failure {
        Failure {
            status: Status::Failed,
            message: format!("{step}: {e}"),
            cause: e.cause(),
            step: Some(step.split(' ').next().unwrap_or(step).to_string()),
            auth_refused: matches!(e, ApiError::Auth { .. }),
            silent: silent(&e),
        }
    }

    fn step_api(step: &str, doing: &str, e: ApiError) -> Failure {
        Failure {
            status: Status::Failed,
            message: format!("{doing}: {e}; the new token is sealed in the handoff"),
            cause: e.cause(),
            step: Some(step.to_string()),
            auth_refused: matches!(e, ApiError::Auth { .. }),
            silent: silent(&e),
        }
    }
}
