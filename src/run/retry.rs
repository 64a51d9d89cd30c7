//! The one retry rule of a run: a call is tried again, after a doubling backoff with jitter, only
//! when nothing can have happened on the server (connect errors, 429, 5xx on reads), at most
//! `--retries` times, and never once the run is stopping. Mutations whose outcome is unknown are
//! not retried here: `mint.rs` lists first.

use super::*;
use std::cell::Cell;

/// The requests one piece of work sent, and whether any of them got an answer from the host
/// (an API answer, even a refusal: not a timeout, a lost connection or a 5xx).
#[derive(Debug, Default)]
pub(super) struct Tries {
    sent: Cell<u32>,
    answered: Cell<bool>,
    /// The lane (host) the requests go to.
    lane: usize,
}

impl Tries {
    /// No request yet, to the host of lane `lane`.
    pub(super) fn on(lane: usize) -> Tries {
        Tries {
            lane,
            ..Tries::default()
        }
    }

    /// The lane (host) these requests go to.
    pub(super) fn lane(&self) -> usize {
        self.lane
    }

    /// Requests sent so far, retries included.
    pub(super) fn get(&self) -> u32 {
        self.sent.get()
    }

    /// One more request is being sent.
    pub(super) fn bump(&self) {
        self.sent.set(self.sent.get() + 1);
    }

    /// What came back for the last request; true when it was the host's answer.
    fn saw<T>(&self, r: &Result<T, ApiError>) -> bool {
        if matches!(r, Err(ApiError::Withheld(_))) {
            // The login gate held it back: it was never sent.
            self.sent.set(self.sent.get().saturating_sub(1));
        }
        let answered =
            !matches!(r, Err(e) if e.host_broken() || matches!(e, ApiError::Withheld(_)));
        if answered {
            self.answered.set(true);
        }
        answered
    }

    /// Count the requests of `shared` (a batch that carried this target's call) as this
    /// target's too.
    pub(super) fn absorb(&self, shared: &Tries) {
        self.sent.set(self.sent.get() + shared.sent.get());
        if shared.answered.get() {
            self.answered.set(true);
        }
    }

    /// None of the requests counted so far was this target's to send: its batch was refused
    /// as a whole and it is reported as not attempted.
    pub(super) fn forget(&self) {
        self.sent.set(0);
    }

    /// Did the host answer any of them?
    pub(super) fn answered(&self) -> bool {
        self.answered.get()
    }
}

impl Runner<'_> {
    /// Call `f` until it succeeds, fails for good, or the retries run out; every try counts in
    /// `attempts`.
    pub(super) fn with_retries<T>(
        &self,
        attempts: &Tries,
        mut f: impl FnMut() -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let mut tries = 0;
        loop {
            attempts.bump();
            let r = f();
            self.saw(attempts, &r);
            match r {
                Ok(v) => return Ok(v),
                Err(e) if self.may_retry(attempts, &e, tries) => {
                    self.backoff(tries);
                    tries += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether a failure after `tries` retries is worth another (the run is not stopping).
    pub(super) fn may_retry(&self, attempts: &Tries, e: &ApiError, tries: u32) -> bool {
        e.is_retryable() && self.tries_left(attempts, tries)
    }

    /// `tries` retries made so far leave room for one more, the run is not stopping, and the
    /// host has not been given up meanwhile (a hung host's other targets stop retrying).
    pub(super) fn tries_left(&self, attempts: &Tries, tries: u32) -> bool {
        tries < self.opts.retries
            && !self.stop.load(Ordering::SeqCst)
            && self.sched.lock().unwrap().lanes[attempts.lane]
                .stopped
                .is_none()
    }

    /// Count what came back for a request; an answer from the host resets its wait (the
    /// "waiting: no answer" display).
    pub(super) fn saw<T>(&self, attempts: &Tries, r: &Result<T, ApiError>) {
        if attempts.saw(r) {
            self.heard_now(attempts.lane);
        }
    }

    /// Host `lane` just answered.
    pub(super) fn heard_now(&self, lane: usize) {
        let ms = self.t0.elapsed().as_millis() as u64;
        self.heard[lane].store(ms, Ordering::Relaxed);
    }

    /// Keep `m` in the secret store. The worker's wait there is the store's, not its host's:
    /// the host is not shown waiting meanwhile, and its clock starts again afterwards.
    pub(super) fn keep_in_store(
        &self,
        keeper: &Keeper,
        lane: usize,
        m: &Minted,
    ) -> Result<(), crate::outcome::KeepError> {
        let now = || self.t0.elapsed().as_millis() as u64;
        self.store.at[lane].fetch_add(1, Ordering::SeqCst);
        if self.store.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            self.store.heard.store(now(), Ordering::SeqCst);
        }
        let kept = keeper.0.keep(m);
        self.store.heard.store(now(), Ordering::SeqCst);
        self.store.calls.fetch_sub(1, Ordering::SeqCst);
        self.store.at[lane].fetch_sub(1, Ordering::SeqCst);
        self.heard_now(lane);
        kept
    }

    /// Workers of lane `lane` now waiting on the store, not on the host.
    pub(super) fn at_store(&self, lane: usize) -> usize {
        self.store.at[lane].load(Ordering::SeqCst) as usize
    }

    /// For the watchdog: `Some(secs)` while workers have waited on the store for 5 s or more,
    /// `Some(0)` once after such a wait ended, else `None`.
    pub(super) fn store_waiting(&self) -> Option<u64> {
        let now = self.t0.elapsed().as_millis() as u64;
        let silent = now.saturating_sub(self.store.heard.load(Ordering::SeqCst)) / 1000;
        let busy = self.store.calls.load(Ordering::SeqCst) > 0;
        if busy && silent >= 5 {
            self.store.shown.store(true, Ordering::SeqCst);
            Some(silent)
        } else if self.store.shown.swap(false, Ordering::SeqCst) {
            Some(0)
        } else {
            None
        }
    }

    /// Seconds since host `lane` last answered (or started being waited for).
    pub(super) fn silent_for(&self, lane: usize) -> u64 {
        let now = self.t0.elapsed().as_millis() as u64;
        now.saturating_sub(self.heard[lane].load(Ordering::Relaxed)) / 1000
    }

    pub(super) fn backoff(&self, tries: u32) {
        let base = self.opts.backoff.saturating_mul(1 << tries.min(6));
        let jitter = base.mul_f64(fastrand::f64() * 0.5);
        std::thread::sleep(base + jitter);
    }
}

/// Who waits on the secret store, and since when it last answered (ms since the run's start).
pub(super) struct StoreClock {
    /// Per lane: its workers inside a store call.
    at: Vec<std::sync::atomic::AtomicU32>,
    /// Store calls under way, over all lanes.
    calls: std::sync::atomic::AtomicU32,
    /// When the store last answered, or the first call of a busy spell began.
    heard: std::sync::atomic::AtomicU64,
    /// A `StoreWaiting` was sent for the current wait.
    shown: AtomicBool,
}

impl StoreClock {
    pub(super) fn new(lanes: usize) -> StoreClock {
        StoreClock {
            at: (0..lanes)
                .map(|_| std::sync::atomic::AtomicU32::new(0))
                .collect(),
            calls: Default::default(),
            heard: Default::default(),
            shown: AtomicBool::new(false),
        }
    }
}
