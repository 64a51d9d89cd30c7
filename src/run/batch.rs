//! Why this module exists: fewer round trips. With `--batch N` the account calls of one host
//! that are safe to share a request (the listings of `list`, `audit`, `sweep` and of a create,
//! and the creates themselves, on `api = "whm"` hosts, whose one WHM credential acts for every account through
//! `uapi_cpanel`) travel in WHM API 1 `batch` requests of at most N calls, instead of one HTTPS
//! request each. Everything else about a target is unchanged and per target: its listing proves
//! what exists, its create intent is journaled before the batch carrying its create is sent, a
//! batch answer lost after sending is settled target by target exactly like a lost single create
//! (`mint.rs`: list, revoke what this run made, try again), a command that failed inside a batch
//! fails just its target, and a refused credential stops the host as it always did (the rest of
//! the batch is reported as not attempted, as the rest of the lane is). A batch never mixes
//! hosts: it is one task of one host's lane, and counts as one of its `per_host` requests.
//! See docs/DESIGN.md §6 and §8.

/// `--batch` when not given. Batches of 25 measured 4x faster for a create (5x for a list) at
/// 100 accounts per host than one call per request, and no faster at 50 (docs/DESIGN.md §8);
/// a host's targets are spread over its `per_host` connections first, so a small host's
/// batches are smaller. `--batch 1` is one call per request.
pub const DEFAULT_BATCH: u32 = 25;

/// The most `--batch` takes: a batch's form stays near 20 KiB, well inside cpsrvd's request
/// limits (the simulator refuses more than this many commands per batch, too).
pub const MAX_BATCH: u32 = 200;

use super::retry::Tries;
use super::steps::Ctx;
use super::*;
use crate::backend::TokenInfo;

impl Task {
    /// A batch as its targets, one task each (what a skipped lane reports); others unchanged.
    pub(super) fn one_by_one(self) -> Vec<Task> {
        match self {
            Task::Batch(ts) => ts.into_iter().map(Task::Target).collect(),
            other => vec![other],
        }
    }
}

impl Runner<'_> {
    /// Whether host `i`'s account calls may share `batch` requests in this run (its backend
    /// says whether it can: WHM over HTTPS, whmapi1 over SSH).
    fn batching(&self, i: usize) -> bool {
        self.opts.batch > 1
            && !self.opts.list_only
            && matches!(self.plan.scope, Scope::Account | Scope::All)
            && matches!(
                self.plan.work,
                Work::List | Work::Create { .. } | Work::Audit { .. } | Work::Sweep { .. }
            )
            && self.backends[i].batches()
    }

    /// Group every lane's queued targets into batches (at the start of a run).
    pub(super) fn batch_lanes(&self) {
        let mut sched = self.sched.lock().unwrap();
        let mut outstanding = 0;
        for i in 0..sched.lanes.len() {
            let queue: Vec<Task> = sched.lanes[i].queue.drain(..).collect();
            let limit = sched.lanes[i].limit;
            let grouped = self.group(i, queue, limit);
            outstanding += grouped.len();
            sched.lanes[i].queue.extend(grouped);
        }
        sched.outstanding = outstanding;
    }

    /// Host `i`'s newly discovered work, grouped into batches.
    pub(super) fn batched(&self, i: usize, tasks: Vec<Task>) -> Vec<Task> {
        let limit = self.sched.lock().unwrap().lanes[i].limit;
        self.group(i, tasks, limit)
    }

    /// Targets without a record in a resumed journal go into batches of at most `--batch`, and
    /// no larger than needed to give each of the host's `per_host` connections one (the
    /// commands of one batch run one after another on the server, so 4 batches of 25 finish
    /// sooner than one of 100). Other work keeps its place: discovery first, resumed targets
    /// (which reconcile) one by one after the batches.
    fn group(&self, i: usize, tasks: Vec<Task>, per_host: usize) -> Vec<Task> {
        if !self.batching(i) {
            return tasks;
        }
        let mut out = Vec::new();
        let mut fresh = Vec::new();
        let mut resumed = Vec::new();
        for task in tasks {
            match task {
                // A WHM user's own tokens (`audit`'s scope all) are not a `uapi_cpanel` call.
                Task::Target(t) if t.account.is_some() && self.prior_of(i, &t).is_none() => {
                    fresh.push(t)
                }
                t @ Task::Target(_) => resumed.push(t),
                other => out.push(other),
            }
        }
        let n = fresh.len();
        if n > 0 {
            let size = self.opts.batch.min(n.div_ceil(per_host.max(1))).max(1);
            let mut it = fresh.into_iter().peekable();
            while it.peek().is_some() {
                let chunk: Vec<Target> = it.by_ref().take(size).collect();
                out.push(if chunk.len() == 1 {
                    Task::Target(chunk.into_iter().next().expect("one"))
                } else {
                    Task::Batch(chunk)
                });
            }
        }
        out.extend(resumed);
        out
    }

    /// Do a batch of host `i`'s targets and record each one's result.
    pub(super) fn perform_batch(&self, i: usize, ts: &[Target], started: Instant) -> FollowUp {
        let hp = &self.plan.hosts[i];
        for t in ts.iter().skip(1) {
            self.observer.event(&Event::Started {
                host: &hp.host.name,
                what: self.account_of(hp, t),
            });
        }
        let cxs: Vec<Ctx<'_>> = ts.iter().map(|t| self.ctx(i, t)).collect();
        let verdicts = match &self.plan.work {
            Work::Create { .. } => self.create_batch(i, &cxs),
            // The listings travel together; each owner's revoke (if any) goes on its own.
            Work::Sweep { rules, filter } => {
                let listed_at = Instant::now();
                self.list_many(i, &cxs, "list")
                    .into_iter()
                    .zip(&cxs)
                    .map(|(listing, cx)| {
                        listing.and_then(|tokens| {
                            self.sweep_listed(cx, rules, filter, tokens, listed_at)
                        })
                    })
                    .collect()
            }
            _ => self
                .list_many(i, &cxs, "list")
                .into_iter()
                .zip(&cxs)
                .map(|(listing, cx)| listing.and_then(|tokens| self.listed(cx, tokens)))
                .collect(),
        };
        let mut follow = FollowUp::Idle;
        for ((t, cx), verdict) in ts.iter().zip(&cxs).zip(verdicts) {
            let next = self.finish_target(i, t, cx, verdict, started);
            follow = merge(follow, next);
        }
        follow
    }

    /// The tokens of every target of the batch, in one `batch` request (retried as a whole
    /// when nothing can have happened: it only reads). Each target's request count includes
    /// every try.
    fn list_many(
        &self,
        i: usize,
        cxs: &[Ctx<'_>],
        step: &str,
    ) -> Vec<Result<Vec<TokenInfo>, Failure>> {
        let owners: Vec<Owner<'_>> = cxs.iter().map(|c| c.owner).collect();
        let shared = Tries::on(i);
        let many = self.with_retries(&shared, || self.backends[i].list_tokens_many(&owners));
        for cx in cxs {
            cx.attempts.absorb(&shared);
        }
        match many {
            Ok(answers) => answers
                .into_iter()
                .map(|a| a.map_err(|e| Failure::api(step, e)))
                .collect(),
            Err(e) => self.whole_failed(cxs, step, e),
        }
    }

    /// The batch request itself failed: each target fails with it, except that a refused
    /// credential is the first target's failure and the others are not attempted (the host
    /// stops, as after a single refused call).
    fn whole_failed<T>(&self, cxs: &[Ctx<'_>], step: &str, e: ApiError) -> Vec<Result<T, Failure>> {
        cxs.iter()
            .enumerate()
            .map(|(k, cx)| {
                if k > 0 && e.stops_host() {
                    cx.attempts.forget();
                    Err(not_attempted(&e))
                } else {
                    Err(Failure::api(step, e.clone()))
                }
            })
            .collect()
    }

    /// A create batch: one listing batch; the targets whose name is absent get their intent
    /// journaled, then one create batch; each answer (or the lost batch's error) is then
    /// judged by `create_listed`, the same code a single create goes through. Targets whose
    /// name is taken (or a dry run) finish after the listing as a single create would.
    fn create_batch(&self, i: usize, cxs: &[Ctx<'_>]) -> Vec<Result<Status, Failure>> {
        let listings = self.list_many(i, cxs, "list");
        let mut verdicts: Vec<Option<Result<Status, Failure>>> = cxs.iter().map(|_| None).collect();
        let mut send = Vec::new();
        for (k, (cx, listing)) in cxs.iter().zip(listings).enumerate() {
            let Some(name) = cx.name else {
                verdicts[k] = Some(Err(Failure::plain("no token name")));
                continue;
            };
            match listing {
                Err(f) => verdicts[k] = Some(Err(f)),
                Ok(tokens) => {
                    let present = tokens.iter().any(|t| t.name == name);
                    *cx.listing.borrow_mut() = tokens;
                    if self.opts.dry_run || present {
                        let v = self.create_listed(cx, name, None, present, None);
                        verdicts[k] = Some(v.map(|(status, _)| status));
                    } else {
                        send.push(k);
                    }
                }
            }
        }
        // Every create of the batch is durable intent before the batch is sent; the first
        // intent the journal refuses stops minting (the run halts), so none after it is sent.
        let mut ready = Vec::new();
        let mut journal_failed = false;
        for k in send {
            let cx = &cxs[k];
            let name = cx.name.unwrap_or_default();
            if journal_failed {
                verdicts[k] = Some(Err(Failure::step(
                    "journal",
                    "not sent: the journal could not be written; nothing more is minted".into(),
                    "journal write failed",
                )));
                continue;
            }
            match self.journal_intent(cx, name, "create") {
                Ok(()) => ready.push(k),
                Err(f) => {
                    journal_failed = true;
                    verdicts[k] = Some(Err(f));
                }
            }
        }
        if !ready.is_empty() {
            let items: Vec<(Owner<'_>, &str)> = ready
                .iter()
                .map(|&k| (cxs[k].owner, cxs[k].name.unwrap_or_default()))
                .collect();
            for &k in &ready {
                cxs[k].attempts.bump();
            }
            let answers: Vec<Result<NewToken, ApiError>> =
                match self.backends[i].create_tokens_many(&items, self.plan.expires_at) {
                    Ok(answers) => answers,
                    Err(e) => ready.iter().map(|_| Err(e.clone())).collect(),
                };
            let mut refused = false;
            for (&k, answer) in ready.iter().zip(answers) {
                let cx = &cxs[k];
                let name = cx.name.unwrap_or_default();
                self.saw(&cx.attempts, &answer);
                if refused && let Err(e) = &answer {
                    // The batch was refused whole: like the rest of a lane after a refusal.
                    let _ =
                        self.ledger
                            .failed(cx.host(), cx.account, name, "create", &e.to_string());
                    cx.attempts.forget();
                    verdicts[k] = Some(Err(not_attempted(e)));
                    continue;
                }
                refused = matches!(&answer, Err(e) if e.stops_host());
                let v = self.create_listed(cx, name, None, false, Some(answer));
                verdicts[k] = Some(v.map(|(status, _)| status));
            }
        }
        verdicts
            .into_iter()
            .map(|v| v.unwrap_or_else(|| Err(Failure::plain("internal: no verdict"))))
            .collect()
    }
}

/// A target of a batch its host refused as a whole, after the first: reported as the rest of
/// a stopped lane is.
fn not_attempted(e: &ApiError) -> Failure {
    let cause = e.cause();
    Failure {
        status: Status::Skipped,
        message: format!("not attempted: {cause} on this host"),
        cause,
        step: None,
        stop_host: false,
        fresh_refusal: false,
        silent: false,
        attention: None,
    }
}

/// What a lane does after a batch, from what each of its targets says: stopping the host
/// wins, then a silence (probation), then an answer.
fn merge(a: FollowUp, b: FollowUp) -> FollowUp {
    match (a, b) {
        (s @ FollowUp::StopHost(_), _) | (_, s @ FollowUp::StopHost(_)) => s,
        (s @ FollowUp::Silent(_), _) | (_, s @ FollowUp::Silent(_)) => s,
        (FollowUp::Queue(mut x), FollowUp::Queue(y)) => {
            x.extend(y);
            FollowUp::Queue(x)
        }
        (q @ FollowUp::Queue(_), _) | (_, q @ FollowUp::Queue(_)) => q,
        (FollowUp::None, _) | (_, FollowUp::None) => FollowUp::None,
        (FollowUp::Idle, FollowUp::Idle) => FollowUp::Idle,
    }
}
