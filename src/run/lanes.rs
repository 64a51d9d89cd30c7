//! The scheduler half of a run: workers take work from per-host lanes (round-robin, at most
//! `per_host` in flight per lane), skip a lane's rest when its host is stopped (or everything
//! queued when the run is interrupted or its journal fails), and keep each lane's counts for the
//! progress events.

use super::*;

/// Seconds without an answer after which a host is shown as waiting.
const WAITING_AFTER_SECS: u64 = 5;

impl Lane {
    /// A task of this lane got the host's answer: the host is off probation.
    fn answered(&mut self) {
        self.probation = false;
        self.answered_once = true;
    }
}

impl Sched {
    /// The order in which hosts are taken up: the biggest first (a host whose accounts are
    /// discovered counts as the biggest), so the longest lane does not start last.
    pub(super) fn new(lanes: Vec<Lane>) -> Sched {
        let outstanding = lanes.iter().map(|l| l.queue.len()).sum();
        let mut unopened: Vec<usize> = (0..lanes.len()).collect();
        unopened.sort_by_key(|&i| {
            let lane = &lanes[i];
            let size = if matches!(lane.queue.front(), Some(Task::Discover)) {
                usize::MAX
            } else {
                lane.queue.len()
            };
            std::cmp::Reverse(size)
        });
        Sched {
            lanes,
            cursor: 0,
            outstanding,
            open: Vec::new(),
            unopened: unopened.into(),
        }
    }

    /// The lane whose next task a worker takes now, if any may go. Hosts already being worked
    /// on come first (round-robin among them, up to each one's limit); a new host is taken up
    /// only when none of them can take more. So the hosts open at once stay about `--jobs /
    /// per_host` (plus the ones waiting on an answer), each pays its handshakes once and is
    /// finished (its connections closed) before the fleet's tail is begun, whatever the
    /// fleet's size.
    fn pick(&mut self) -> Option<usize> {
        let m = self.open.len();
        for k in 0..m {
            let at = (self.cursor + k) % m;
            let i = self.open[at];
            if self.lanes[i].can_take() {
                self.cursor = (at + 1) % m;
                return Some(i);
            }
        }
        while let Some(i) = self.unopened.pop_front() {
            let lane = &self.lanes[i];
            if lane.finished || lane.queue.is_empty() {
                continue;
            }
            self.open.push(i);
            if self.lanes[i].can_take() {
                return Some(i);
            }
        }
        None
    }
}

impl Lane {
    fn can_take(&self) -> bool {
        let limit = if self.probation { 1 } else { self.limit };
        self.in_flight < limit && !self.queue.is_empty()
    }
}

impl Runner<'_> {
    pub(super) fn worker(&self) {
        let mut sched = self.sched.lock().unwrap();
        loop {
            if sched.outstanding == 0 {
                self.wake.notify_all();
                return;
            }
            if self.stop.load(Ordering::SeqCst) {
                self.skip_all_queued(
                    &mut sched,
                    "interrupted before this target started",
                    "interrupted",
                );
            }
            if let Some(why) = self.halted.lock().unwrap().clone() {
                self.skip_all_queued(
                    &mut sched,
                    &format!("not attempted: {why}; nothing more is minted"),
                    "journal write failed",
                );
            }
            let Some(i) = sched.pick() else {
                if sched.outstanding == 0 {
                    continue;
                }
                sched = self.wake.wait(sched).unwrap();
                continue;
            };
            let work = sched.lanes[i].queue.pop_front().expect("non-empty");
            if sched.lanes[i].in_flight == 0 {
                // Nothing was out: the wait for this host starts now.
                self.heard_now(i);
            }
            sched.lanes[i].in_flight += 1;
            drop(sched);
            let hp = &self.plan.hosts[i];
            let what = match &work {
                Task::Discover => "listaccts",
                Task::CheckHost => "credential check",
                Task::Target(t) => self.account_of(hp, t),
                // The first of its targets; `batch.rs` announces the others.
                Task::Batch(ts) => self.account_of(hp, &ts[0]),
            };
            self.observer.event(&Event::Started {
                host: &hp.host.name,
                what,
            });

            let follow_up = self.perform(i, work);

            sched = self.sched.lock().unwrap();
            sched.lanes[i].in_flight -= 1;
            sched.outstanding -= 1;
            match follow_up {
                FollowUp::None => sched.lanes[i].answered(),
                FollowUp::Queue(works) => {
                    sched.outstanding += works.len();
                    let lane = &mut sched.lanes[i];
                    lane.answered();
                    lane.queue.extend(works);
                }
                FollowUp::Idle => {}
                FollowUp::Silent(cause) => {
                    let lane = &mut sched.lanes[i];
                    if !lane.probation {
                        // Once: the next task goes alone, and its silence gives the host up.
                        lane.probation = true;
                    } else if lane.stopped.is_none() {
                        let why = if lane.answered_once {
                            format!(
                                "not attempted: the host stopped answering ({cause}, retries spent); given up before anything more was sent"
                            )
                        } else {
                            format!(
                                "not attempted: the host did not answer its first call, a read-only one ({cause}, retries spent); given up before anything that changes state was sent"
                            )
                        };
                        self.give_up(&mut sched, i, format!("no answer: {cause}"), &why);
                    }
                }
                FollowUp::StopHost(cause) => {
                    let why = format!("not attempted: {cause} on this host");
                    self.give_up(&mut sched, i, cause, &why);
                }
            }
            self.finish_lane_if_done(&mut sched, i);
            self.wake.notify_all();
        }
    }

    /// Stop sending to host `i`: everything still queued is skipped with `why`.
    pub(super) fn give_up(&self, sched: &mut Sched, i: usize, cause: String, why: &str) {
        if sched.lanes[i].stopped.is_none() {
            sched.lanes[i].stopped = Some(cause.clone());
        }
        self.skip_lane(sched, i, why, Some(cause));
    }

    /// Hosts that have had requests out with no answer for a while, as `Waiting` events; and
    /// those that answered after such a wait (`secs: 0`).
    pub(super) fn waiting(&self) -> Vec<(usize, u64)> {
        let mut sched = self.sched.lock().unwrap();
        let mut out = Vec::new();
        for (i, lane) in sched.lanes.iter_mut().enumerate() {
            let secs = self.silent_for(i);
            // Workers waiting on the store are not waiting on this host.
            let on_host = lane.in_flight > self.at_store(i);
            if on_host && !lane.finished && secs >= WAITING_AFTER_SECS {
                lane.waiting_shown = true;
                out.push((i, secs));
            } else if lane.waiting_shown {
                lane.waiting_shown = false;
                out.push((i, 0));
            }
        }
        out
    }

    /// Mark everything still queued as skipped (interrupt, or a journal that cannot be written).
    pub(super) fn skip_all_queued(&self, sched: &mut Sched, why: &str, cause: &str) {
        for i in 0..sched.lanes.len() {
            if !sched.lanes[i].queue.is_empty() {
                self.skip_lane(sched, i, why, Some(cause.to_string()));
                self.finish_lane_if_done(sched, i);
            }
        }
    }

    pub(super) fn skip_lane(&self, sched: &mut Sched, i: usize, why: &str, cause: Option<String>) {
        let hp = &self.plan.hosts[i];
        let drained: Vec<Task> = sched.lanes[i].queue.drain(..).collect();
        sched.outstanding -= drained.len();
        let mut out = self.out.lock().unwrap();
        for work in drained.into_iter().flat_map(Task::one_by_one) {
            let (account, token_name) = match &work {
                Task::Target(t) => (
                    Some(self.account_of(hp, t).to_string()),
                    t.token_name.clone(),
                ),
                Task::Discover | Task::CheckHost | Task::Batch(_) => (None, None),
            };
            // Done before a resume: that is what it is, not skipped.
            if let Some(Prior::Done(status)) = account
                .as_ref()
                .and_then(|a| self.prior.get(&(hp.host.name.clone(), a.clone())))
            {
                sched.lanes[i].done += 1;
                let mut r =
                    TargetResult::new(&hp.host.name, account.as_deref(), token_name.as_deref());
                r.status = *status;
                self.observer.event(&Event::TargetDone {
                    host: &hp.host.name,
                    status: *status,
                });
                out.results.push(r);
                continue;
            }
            sched.lanes[i].skipped += 1;
            self.observer.event(&Event::TargetDone {
                host: &hp.host.name,
                status: Status::Skipped,
            });
            let attention = account
                .as_deref()
                .and_then(|a| self.unconfirmed(&hp.host.name, a, token_name.as_deref()));
            let (token_name, pattern) = self.name_and_pattern(token_name);
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
                attention,
                pattern,
                revoked: Vec::new(),
                note: None,
                updated: Vec::new(),
            });
        }
    }

    /// A target's `token_name` as a result reports it, and its glob: a revoke's target carries
    /// its `--name` glob, which is a pattern, never a token name; a rotation's is `--revoke`.
    pub(super) fn name_and_pattern(
        &self,
        token_name: Option<String>,
    ) -> (Option<String>, Option<String>) {
        match &self.plan.work {
            Work::Revoke { pattern } | Work::Update { pattern, .. } => {
                (None, Some(pattern.as_str().to_string()))
            }
            Work::Rotate { revoke, .. } => (token_name, Some(revoke.as_str().to_string())),
            _ => (token_name, None),
        }
    }

    /// For a resumed target whose create was never confirmed and that this run does not get to
    /// check: what the summary must say of the token it may have left.
    pub(super) fn unconfirmed(
        &self,
        host: &str,
        account: &str,
        name: Option<&str>,
    ) -> Option<String> {
        let prior = self.prior.get(&(host.to_string(), account.to_string()));
        matches!(prior, Some(Prior::Reconcile { .. }))
            .then(|| super::mint::unconfirmed_token(name.unwrap_or("of this run")))
    }

    /// Resumed targets that never got a result (their host's discovery failed, say): each is
    /// reported, with what it may have left on its server.
    pub(super) fn report_unreached(&self) {
        let open = |account: &str, prior: &Prior| {
            account != "*" && matches!(prior, Prior::Reconcile { .. })
        };
        if !self.prior.iter().any(|((_, a), p)| open(a, p)) {
            return;
        }
        let mut out = self.out.lock().unwrap();
        // One pass over the results, not one per resumed target.
        let reached: std::collections::HashSet<(String, String)> = out
            .results
            .iter()
            .filter_map(|r| Some((r.host, r.account?)))
            .collect();
        for ((host, account), prior) in self.prior {
            if !open(account, prior) {
                continue;
            }
            if reached.contains(&(host.clone(), account.clone())) {
                continue;
            }
            let mut r = TargetResult::new(host, Some(account), None);
            r.status = Status::Skipped;
            match self.opts.hold.get(host) {
                Some(hold) => {
                    r.error = Some(hold.why.clone());
                    r.cause = Some(hold.cause.clone());
                }
                None => {
                    r.error = Some("not reached: its host's accounts could not be listed".into());
                    r.cause = Some("not reached".into());
                }
            }
            r.attention = self.unconfirmed(host, account, None);
            out.results.push(r);
        }
    }

    pub(super) fn finish_lane_if_done(&self, sched: &mut Sched, i: usize) {
        let lane = &mut sched.lanes[i];
        if lane.finished || lane.in_flight > 0 || !lane.queue.is_empty() {
            return;
        }
        lane.finished = true;
        sched.open.retain(|&j| j != i);
        // Its idle connections close now, not when the whole fleet is done.
        self.backends[i].release();
        self.observer.event(&Event::HostDone {
            host: &self.plan.hosts[i].host.name,
            done: lane.done,
            failed: lane.failed,
            skipped: lane.skipped,
            cause: lane.stopped.as_deref(),
        });
    }

    pub(super) fn record(&self, i: usize, result: TargetResult) {
        let status = result.status;
        {
            let mut sched = self.sched.lock().unwrap();
            let lane = &mut sched.lanes[i];
            match status {
                Status::Failed | Status::Unproven => lane.failed += 1,
                Status::Skipped => lane.skipped += 1,
                _ => lane.done += 1,
            }
        }
        self.observer.event(&Event::TargetDone {
            host: &self.plan.hosts[i].host.name,
            status,
        });
        self.out.lock().unwrap().results.push(result);
    }
}
