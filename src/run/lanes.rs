//! The scheduler half of a run: workers take work from per-host lanes (round-robin, at most
//! `per_host` in flight per lane), journal create intents ahead in batches, skip a lane's rest
//! when its host is stopped, and keep each lane's counts for the progress events.

use super::*;

impl Runner<'_> {
    pub(super) fn worker(&self) {
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
    pub(super) fn claim_intents(
        &self,
        lane: &Lane,
        i: usize,
        taken: &Task,
    ) -> Vec<(String, String)> {
        if !matches!(self.plan.op(), Operation::Create | Operation::Rotate) || self.opts.dry_run {
            return Vec::new();
        }
        let hp = &self.plan.hosts[i];
        let mut ahead = self.ahead.lock().unwrap();
        // A target claimed by an earlier batch goes without waiting; only a target nobody
        // claimed yet starts a new batch (and waits for its one fsync).
        if let Task::Target(t) = taken
            && ahead.contains_key(&(hp.host.name.clone(), self.account_of(hp, t).to_string()))
        {
            return Vec::new();
        }
        let mut batch = Vec::new();
        for work in std::iter::once(taken).chain(lane.queue.iter()) {
            if batch.len() == INTENT_BATCH {
                break;
            }
            let Task::Target(t) = work else { continue };
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
    pub(super) fn journal_intents(&self, i: usize, batch: Vec<(String, String)>) {
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
    pub(super) fn intent_journaled_ahead(&self, host: &str, account: &str) -> bool {
        let mut ahead = self.ahead.lock().unwrap();
        ahead
            .remove(&(host.to_string(), account.to_string()))
            .unwrap_or(false)
    }

    /// Mark everything still queued as skipped (interrupt).
    pub(super) fn skip_all_queued(&self, sched: &mut Sched, why: &str) {
        for i in 0..sched.lanes.len() {
            if !sched.lanes[i].queue.is_empty() {
                self.skip_lane(sched, i, why, Some("interrupted".to_string()));
                self.finish_lane_if_done(sched, i);
            }
        }
    }

    pub(super) fn skip_lane(&self, sched: &mut Sched, i: usize, why: &str, cause: Option<String>) {
        let hp = &self.plan.hosts[i];
        let drained: Vec<Task> = sched.lanes[i].queue.drain(..).collect();
        sched.outstanding -= drained.len();
        let mut out = self.out.lock().unwrap();
        for work in drained {
            let (account, token_name) = match &work {
                Task::Target(t) => (
                    Some(self.account_of(hp, t).to_string()),
                    t.token_name.clone(),
                ),
                Task::Discover | Task::CheckHost => (None, None),
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

    pub(super) fn finish_lane_if_done(&self, sched: &mut Sched, i: usize) {
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

    pub(super) fn record(&self, i: usize, result: TargetResult) {
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
}
