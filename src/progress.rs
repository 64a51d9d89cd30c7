//! Why this module exists: people watch long runs, and want to know at a glance how far it got,
//! how fast it goes, what failed so far and which host it is waiting on. On a terminal (or with
//! `--progress always`, even piped): an overall bar with done/total, live counts by status, rate,
//! ETA and a clock that ticks on its own, a bar per active host (a host that waits without an
//! answer always gets one, with what it waits on), and a "+N more hosts" line for the rest. When
//! stderr is not a terminal: a heartbeat line every few seconds and one line per finished host.
//! With `-q` or `--progress never`: no progress. Warnings are not progress: every mode prints
//! them (an orphan revoked, a journal that could not be synced), and so is the one line that
//! says a Ctrl-C was heard. The end of a run (the recap) is the report module's. It only
//! renders the events the run module sends, and those carry host names, account names and
//! counts, never a secret.
//! See docs/DESIGN.md §6.

use crate::outcome::Status;
use crate::report::{SHOWN_ORDER, paint};
use crate::run::{Event, Observer};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Bars on stderr (a terminal, or forced with `--progress always`).
    Bars,
    /// A heartbeat every few seconds and one line per finished host on stderr.
    Lines,
    /// No progress (warnings still print).
    Quiet,
}

impl Mode {
    /// `--progress auto|always|never` and `-q` to a mode.
    pub fn choose(progress: &str, quiet: bool) -> Mode {
        if quiet {
            return Mode::Quiet;
        }
        match progress {
            "never" => Mode::Quiet,
            "always" => Mode::Bars,
            _ if std::io::stderr().is_terminal() => Mode::Bars,
            _ => Mode::Lines,
        }
    }
}

/// `--color auto|always|never` to yes or no: `auto` colours a terminal unless `NO_COLOR` is set
/// (to anything but the empty string, as no-color.org says). The answer is also given to the
/// console crate, so the bars' own styles follow it.
pub fn colour(choice: &str) -> bool {
    let on = match choice {
        "always" => true,
        "never" => false,
        _ => {
            std::io::stderr().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        }
    };
    console::set_colors_enabled_stderr(on);
    on
}

/// The most host bars shown at once (fewer on a short terminal); the "+N more" line counts the
/// rest.
const MAX_HOST_BARS: usize = 8;

/// Lines mode: how often the heartbeat line is printed.
const HEARTBEAT: Duration = Duration::from_secs(5);

/// Lines mode: a host's wait is printed when it reaches 10 s, 30 s, then every minute.
fn next_wait_line(said: u64) -> u64 {
    match said {
        0..10 => 10,
        10..30 => 30,
        s => (s / 60 + 1) * 60,
    }
}

fn status_index(s: Status) -> usize {
    Status::ALL
        .iter()
        .position(|x| *x == s)
        .expect("every status")
}

/// Targets finished so far by status: read by the overall bar as it draws (so without a lock:
/// the bar draws from inside event handling too).
#[derive(Default)]
struct Counters([AtomicU64; Status::ALL.len()]);

impl Counters {
    fn add(&self, s: Status) {
        self.0[status_index(s)].fetch_add(1, Ordering::Relaxed);
    }

    fn get(&self) -> [u64; Status::ALL.len()] {
        std::array::from_fn(|i| self.0[i].load(Ordering::Relaxed))
    }
}

/// "1180 created, 3 failed, 17 skipped": every status seen so far, in the summary's order
/// ([`SHOWN_ORDER`]).
fn counts_text(counts: &[u64; Status::ALL.len()], colour: bool) -> String {
    SHOWN_ORDER
        .iter()
        .map(|s| (s, counts[status_index(*s)]))
        .filter(|(_, n)| *n > 0)
        .map(|(s, n)| paint(*s, &format!("{n} {}", s.as_str()), colour))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Targets per second, once there is something to measure.
fn rate(done: u64, elapsed: Duration) -> Option<f64> {
    let secs = elapsed.as_secs_f64();
    (done > 0 && secs >= 0.5).then(|| done as f64 / secs)
}

fn rate_text(per_sec: f64) -> String {
    if per_sec >= 10.0 {
        format!("{per_sec:.0}/s")
    } else {
        format!("{per_sec:.1}/s")
    }
}

/// "4s", "2m05s", "1h02m".
fn duration_text(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// "410/s, ETA 3s" (nothing before the first target finished).
fn pace_text(done: u64, total: u64, elapsed: Duration) -> Option<String> {
    let r = rate(done, elapsed)?;
    let left = total.saturating_sub(done) as f64 / r;
    Some(format!(
        "{}, ETA {}",
        rate_text(r),
        duration_text(Duration::from_secs_f64(left.ceil()))
    ))
}

/// One host, as the display knows it.
struct Host {
    name: String,
    total: u64,
    counts: [u64; Status::ALL.len()],
    started: bool,
    finished: bool,
    /// Seconds without an answer (0: not waiting).
    waiting: u64,
    /// The work last handed out for it (an account, `listaccts`).
    what: String,
    bar: Option<ProgressBar>,
    /// Lines mode: the longest wait already printed for the current wait (seconds).
    wait_said: u64,
}

impl Host {
    fn done(&self) -> u64 {
        self.counts.iter().sum()
    }

    fn bad(&self) -> u64 {
        [Status::Failed, Status::Unproven]
            .iter()
            .map(|s| self.counts[status_index(*s)])
            .sum()
    }

    /// "no answer for 12 s (u007a0003)".
    fn wait_text(&self, secs: u64) -> String {
        if self.what.is_empty() {
            format!("no answer for {secs} s")
        } else {
            format!("no answer for {secs} s ({})", self.what)
        }
    }
}

/// "waiting on the store: no answer for 12 s".
fn store_wait_text(secs: u64) -> String {
    format!("waiting on the store: no answer for {secs} s")
}

/// What the display holds between events.
struct Live {
    verb: &'static str,
    t0: Instant,
    total: u64,
    hosts: Vec<Host>,
    index: HashMap<String, usize>,
    /// Host bars on screen.
    bars: usize,
    /// Host bars that fit.
    fit: usize,
    /// The "+N more hosts" line, while there is something to say there.
    more: Option<ProgressBar>,
    /// Ctrl-C was pressed: the hosts skipped because of it are not named one by one.
    interrupted: bool,
    /// Seconds the secret store has kept workers waiting (0: it is not).
    store_waiting: u64,
    /// Lines mode: the store's last "waiting" line, at that many seconds.
    store_wait_said: u64,
}

impl Live {
    fn done(&self) -> u64 {
        self.hosts.iter().map(Host::done).sum()
    }

    fn counts(&self) -> [u64; Status::ALL.len()] {
        let mut c = [0; Status::ALL.len()];
        for h in &self.hosts {
            for (i, n) in h.counts.iter().enumerate() {
                c[i] += n;
            }
        }
        c
    }

    /// Hosts waiting for an answer, longest wait first.
    fn waiting(&self) -> Vec<&Host> {
        let mut w: Vec<&Host> = self
            .hosts
            .iter()
            .filter(|h| h.waiting > 0 && !h.finished)
            .collect();
        w.sort_by(|a, b| b.waiting.cmp(&a.waiting).then(a.name.cmp(&b.name)));
        w
    }

    /// The heartbeat of Lines mode: "create: 1200/2400 targets, 1180 created, 3 failed, 17
    /// skipped, 410/s, ETA 3s; waiting on web007 (no answer for 12 s (u007a0003))".
    fn heartbeat(&self, elapsed: Duration, colour: bool) -> String {
        let done = self.done();
        let mut line = format!("{}: {done}/{} targets", self.verb, self.total);
        let counts = counts_text(&self.counts(), colour);
        if !counts.is_empty() {
            line.push_str(", ");
            line.push_str(&counts);
        }
        if let Some(pace) = pace_text(done, self.total, elapsed) {
            line.push_str(", ");
            line.push_str(&pace);
        }
        let waiting = self.waiting();
        if !waiting.is_empty() {
            let named: Vec<String> = waiting
                .iter()
                .take(3)
                .map(|h| format!("{}: {}", h.name, h.wait_text(h.waiting)))
                .collect();
            let _ = write!(line, "; waiting on {}", named.join(", "));
            if waiting.len() > 3 {
                let _ = write!(line, " and {} more hosts", waiting.len() - 3);
            }
        }
        if self.store_waiting > 0 {
            let _ = write!(line, "; {}", store_wait_text(self.store_waiting));
        }
        line
    }

    /// The "+N more hosts" line: hosts at work without a bar, those not started, those done.
    fn more_text(&self) -> Option<String> {
        let running: Vec<&Host> = self
            .hosts
            .iter()
            .filter(|h| h.started && !h.finished && h.bar.is_none())
            .collect();
        let queued = self
            .hosts
            .iter()
            .filter(|h| !h.started && !h.finished)
            .count();
        if running.is_empty() && queued == 0 && self.store_waiting == 0 {
            return None;
        }
        let mut parts = Vec::new();
        if self.store_waiting > 0 {
            parts.push(store_wait_text(self.store_waiting));
        }
        if !running.is_empty() {
            let waiting = running.iter().filter(|h| h.waiting > 0).count();
            let mut p = format!("+{} more hosts", running.len());
            if waiting > 0 {
                let _ = write!(p, " ({waiting} waiting)");
            }
            parts.push(p);
        }
        if queued > 0 {
            parts.push(format!("{queued} not started"));
        }
        let finished = self.hosts.iter().filter(|h| h.finished).count();
        if finished > 0 {
            parts.push(format!("{finished} done"));
        }
        Some(parts.join(", "))
    }
}

struct Inner {
    mode: Mode,
    colour: bool,
    multi: MultiProgress,
    overall: ProgressBar,
    counters: Arc<Counters>,
    live: Mutex<Live>,
    /// Where lines go when there are no bars to print above: stderr (a buffer in tests).
    lines: Mutex<Box<dyn Write + Send>>,
}

/// The progress of the run under way, for [`notice`] (a Ctrl-C handler has no other way in).
static CURRENT: Mutex<Option<Weak<Inner>>> = Mutex::new(None);

/// Say `line` once, above the bars of the run under way (or plainly on stderr when none is):
/// the Ctrl-C handler's "interrupt: …". From then on the hosts the interruption skips are not
/// named one by one; the summary says it once.
pub fn notice(line: &str) {
    let current = CURRENT
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .and_then(Weak::upgrade);
    match current {
        Some(inner) => inner.notice(line),
        None => {
            let _ = writeln!(std::io::stderr(), "{line}");
        }
    }
}

/// The heartbeat thread of Lines mode, and how to stop it.
struct Ticker {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: std::thread::JoinHandle<()>,
}

/// An [`Observer`] that draws progress.
pub struct Progress {
    inner: Arc<Inner>,
    ticker: Mutex<Option<Ticker>>,
}

impl Progress {
    /// `host_targets`: each host's name and planned target count; `colour`: see [`colour`].
    pub fn new(
        mode: Mode,
        verb: &'static str,
        host_targets: &[(String, usize)],
        colour: bool,
    ) -> Progress {
        Progress::build(
            mode,
            verb,
            host_targets,
            colour,
            Box::new(std::io::stderr()),
        )
    }

    fn build(
        mode: Mode,
        verb: &'static str,
        host_targets: &[(String, usize)],
        colour: bool,
        lines: Box<dyn Write + Send>,
    ) -> Progress {
        let (target, height) = match mode {
            // `--progress always` draws even when stderr is not a terminal (indicatif's own
            // stderr target hides itself there).
            Mode::Bars if std::io::stderr().is_terminal() => (
                ProgressDrawTarget::stderr_with_hz(10),
                console::Term::stderr().size().0,
            ),
            Mode::Bars => (
                ProgressDrawTarget::term_like_with_hz(Box::new(console::Term::stderr()), 10),
                24,
            ),
            _ => (ProgressDrawTarget::hidden(), 24),
        };
        Progress::with_target(mode, verb, host_targets, colour, lines, target, height)
    }

    fn with_target(
        mode: Mode,
        verb: &'static str,
        host_targets: &[(String, usize)],
        colour: bool,
        lines: Box<dyn Write + Send>,
        target: ProgressDrawTarget,
        height: u16,
    ) -> Progress {
        let multi = MultiProgress::with_draw_target(target);
        let total: usize = host_targets.iter().map(|(_, n)| n).sum();
        let counters = Arc::new(Counters::default());
        let overall = multi.add(ProgressBar::new(total as u64));
        overall.set_style(overall_style(counters.clone(), colour));
        overall.set_prefix(verb);
        if mode == Mode::Bars {
            // The clock, the rate and the ETA keep moving while every host is waiting.
            overall.enable_steady_tick(Duration::from_millis(250));
        }
        let hosts: Vec<Host> = host_targets
            .iter()
            .map(|(h, n)| Host {
                name: h.clone(),
                total: *n as u64,
                counts: [0; Status::ALL.len()],
                started: false,
                finished: false,
                waiting: 0,
                what: String::new(),
                bar: None,
                wait_said: 0,
            })
            .collect();
        let index = hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (h.name.clone(), i))
            .collect();
        let live = Live {
            verb,
            t0: Instant::now(),
            total: total as u64,
            hosts,
            index,
            bars: 0,
            // Room for the overall bar, the "+N more" line and the cursor's line.
            fit: MAX_HOST_BARS
                .min(usize::from(height).saturating_sub(3))
                .max(1),
            more: None,
            interrupted: false,
            store_waiting: 0,
            store_wait_said: 0,
        };
        let inner = Arc::new(Inner {
            mode,
            colour,
            multi,
            overall,
            counters,
            live: Mutex::new(live),
            lines: Mutex::new(lines),
        });
        *CURRENT.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::downgrade(&inner));
        let ticker = (mode == Mode::Lines).then(|| start_heartbeat(inner.clone()));
        Progress {
            inner,
            ticker: Mutex::new(ticker),
        }
    }

    /// Stop the heartbeat and remove the bars before the summary (the recap) is printed.
    pub fn finish(&self) {
        if let Some(t) = self.ticker.lock().unwrap().take() {
            *t.stop.0.lock().unwrap() = true;
            t.stop.1.notify_all();
            let _ = t.thread.join();
        }
        let inner = &self.inner;
        if inner.mode == Mode::Bars {
            let mut live = inner.live.lock().unwrap();
            for h in &mut live.hosts {
                if let Some(bar) = h.bar.take() {
                    bar.finish_and_clear();
                    inner.multi.remove(&bar);
                }
            }
            if let Some(more) = live.more.take() {
                more.finish_and_clear();
                inner.multi.remove(&more);
            }
            inner.overall.finish_and_clear();
            let _ = inner.multi.clear();
        }
        let mut current = CURRENT.lock().unwrap_or_else(|p| p.into_inner());
        if current
            .as_ref()
            .is_some_and(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(inner)))
        {
            *current = None;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(t) = self
            .ticker
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            *t.stop.0.lock().unwrap_or_else(|p| p.into_inner()) = true;
            t.stop.1.notify_all();
            let _ = t.thread.join();
        }
    }
}

fn start_heartbeat(inner: Arc<Inner>) -> Ticker {
    let stop = Arc::new((Mutex::new(false), Condvar::new()));
    let flag = stop.clone();
    let thread = std::thread::spawn(move || {
        let (lock, cv) = &*flag;
        let mut stopped = lock.lock().unwrap();
        let mut next = Instant::now() + HEARTBEAT;
        loop {
            // Checked before each wait: a stop raised before this thread first locked counts.
            while !*stopped && Instant::now() < next {
                let left = next.saturating_duration_since(Instant::now());
                stopped = cv.wait_timeout(stopped, left).unwrap().0;
            }
            if *stopped {
                return;
            }
            next += HEARTBEAT;
            let line = {
                let live = inner.live.lock().unwrap();
                live.heartbeat(live.t0.elapsed(), inner.colour)
            };
            inner.plain(&line);
        }
    });
    Ticker { stop, thread }
}

/// The overall bar: verb, bar, done/total, then the live counts, rate, ETA and clock, drawn
/// from `counters` and the bar's own state each time it is drawn (the steady tick included).
fn overall_style(counters: Arc<Counters>, colour: bool) -> ProgressStyle {
    let bar = if colour {
        "{bar:30.green/dim}"
    } else {
        "{bar:30}"
    };
    ProgressStyle::with_template(&format!(
        "{{prefix:>12.bold}} [{bar}] {{pos}}/{{len}} targets{{live}}"
    ))
    .expect("valid template")
    .progress_chars("=> ")
    .with_key(
        "live",
        move |state: &ProgressState, w: &mut dyn std::fmt::Write| {
            let counts = counts_text(&counters.get(), colour);
            if !counts.is_empty() {
                let _ = write!(w, "  {counts}");
            }
            if let Some(pace) = pace_text(state.pos(), state.len().unwrap_or(0), state.elapsed()) {
                let _ = write!(w, "  {pace}");
            }
            let _ = write!(w, "  {}", duration_text(state.elapsed()));
        },
    )
}

fn host_style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix:>12} [{bar:20}] {pos}/{len} {msg}")
        .expect("valid template")
        .progress_chars("=> ")
}

impl Inner {
    /// See [`notice`].
    fn notice(&self, line: &str) {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .interrupted = true;
        self.println(line);
    }

    fn println(&self, line: &str) {
        match self.mode {
            Mode::Bars => {
                let _ = self.multi.println(line);
            }
            _ => self.plain(line),
        }
    }

    /// One line, no bars involved; a closed stderr is not an error.
    fn plain(&self, line: &str) {
        let mut out = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(out, "{line}");
    }

    /// Give host `i` a bar if one is free; `force` (it is waiting): take the bar of a host
    /// that is not waiting when none is.
    fn give_bar(&self, live: &mut Live, i: usize, force: bool) {
        if live.hosts[i].bar.is_some() || live.hosts[i].finished {
            return;
        }
        if live.bars >= live.fit {
            if !force {
                return;
            }
            let Some(j) = live
                .hosts
                .iter()
                .position(|h| h.bar.is_some() && h.waiting == 0)
            else {
                return;
            };
            let bar = live.hosts[j].bar.take().expect("has a bar");
            bar.finish_and_clear();
            self.multi.remove(&bar);
            live.bars -= 1;
        }
        let h = &live.hosts[i];
        let pb = ProgressBar::new(h.total);
        let bar = match &live.more {
            Some(more) => self.multi.insert_before(more, pb),
            None => self.multi.add(pb),
        };
        bar.set_style(host_style());
        bar.set_prefix(h.name.clone());
        bar.set_position(h.done());
        self.set_host_message(h, &bar);
        live.hosts[i].bar = Some(bar);
        live.bars += 1;
    }

    fn set_host_message(&self, h: &Host, bar: &ProgressBar) {
        let mut msg = String::new();
        let bad = h.bad();
        if bad > 0 {
            msg = paint(Status::Failed, &format!("{bad} failed"), self.colour);
        }
        if h.waiting > 0 {
            if !msg.is_empty() {
                msg.push_str(", ");
            }
            msg.push_str(&paint(
                Status::Skipped,
                &h.wait_text(h.waiting),
                self.colour,
            ));
        }
        bar.set_message(msg);
    }

    /// A bar freed: the next host at work without one takes it.
    fn refill(&self, live: &mut Live) {
        while live.bars < live.fit {
            let Some(i) = live
                .hosts
                .iter()
                .position(|h| h.started && !h.finished && h.bar.is_none())
            else {
                break;
            };
            self.give_bar(live, i, false);
        }
    }

    /// Keep the "+N more hosts" line true (added at the bottom, removed when empty).
    fn update_more(&self, live: &mut Live) {
        match (live.more_text(), &live.more) {
            (Some(text), Some(more)) => more.set_message(text),
            (Some(text), None) => {
                let more = self.multi.add(ProgressBar::new(0));
                more.set_style(ProgressStyle::with_template("{msg}").expect("valid template"));
                more.set_message(text);
                live.more = Some(more);
            }
            (None, Some(more)) => {
                more.finish_and_clear();
                self.multi.remove(more);
                live.more = None;
            }
            (None, None) => {}
        }
    }

    /// Lines mode: "web001: 28 created, 2 failed (cause)".
    fn host_line(&self, h: &Host, nothing: bool, cause: Option<&str>) -> String {
        let mut line = format!("{}: ", h.name);
        let counts = counts_text(&h.counts, self.colour);
        if nothing || counts.is_empty() {
            line.push_str("nothing to do");
        } else {
            line.push_str(&counts);
        }
        if let Some(cause) = cause {
            let _ = write!(line, " ({cause})");
        }
        line
    }
}

impl Observer for Progress {
    fn event(&self, event: &Event<'_>) {
        let inner = &*self.inner;
        // Before the quiet check: `--progress never` and `-q` hide progress, not warnings.
        if let Event::Warning(msg) = event {
            inner.println(&format!("warning: {msg}"));
            return;
        }
        if inner.mode == Mode::Quiet {
            return;
        }
        let mut live = inner.live.lock().unwrap();
        let bars = inner.mode == Mode::Bars;
        match event {
            Event::Start { targets } => {
                live.total = *targets as u64;
                inner.overall.set_length(*targets as u64);
            }
            Event::Discovered { host, targets } => {
                live.total += *targets as u64;
                inner.overall.inc_length(*targets as u64);
                if let Some(&i) = live.index.get(*host) {
                    let h = &mut live.hosts[i];
                    h.total += *targets as u64;
                    if let Some(bar) = &h.bar {
                        bar.set_length(h.total);
                    }
                }
            }
            Event::Started { host, what } => {
                let Some(&i) = live.index.get(*host) else {
                    return;
                };
                let h = &mut live.hosts[i];
                h.what = what.to_string();
                if !h.started {
                    h.started = true;
                    if bars {
                        inner.give_bar(&mut live, i, false);
                        inner.update_more(&mut live);
                    }
                }
            }
            Event::TargetDone { host, status } => {
                inner.counters.add(*status);
                let Some(&i) = live.index.get(*host) else {
                    return;
                };
                let h = &mut live.hosts[i];
                h.counts[status_index(*status)] += 1;
                if bars {
                    inner.overall.inc(1);
                    if let Some(bar) = &h.bar {
                        bar.inc(1);
                        if matches!(status, Status::Failed | Status::Unproven) {
                            inner.set_host_message(h, bar);
                        }
                    }
                }
            }
            Event::HostDone {
                host,
                done,
                failed,
                skipped,
                cause,
            } => {
                let Some(&i) = live.index.get(*host) else {
                    return;
                };
                let h = &mut live.hosts[i];
                h.finished = true;
                h.waiting = 0;
                if bars {
                    if let Some(bar) = h.bar.take() {
                        bar.finish_and_clear();
                        inner.multi.remove(&bar);
                        live.bars -= 1;
                    }
                    // Said once, in the recap at the end.
                    inner.refill(&mut live);
                    inner.update_more(&mut live);
                } else {
                    // After a Ctrl-C, a host whose only trouble is the interruption is not
                    // named: the notice said it once, and the summary counts it.
                    if !(live.interrupted && *failed == 0) {
                        let nothing = done + failed + skipped == 0;
                        let line = inner.host_line(&live.hosts[i], nothing, *cause);
                        drop(live);
                        inner.plain(&line);
                    }
                }
            }
            Event::Waiting { host, secs } => {
                let Some(&i) = live.index.get(*host) else {
                    return;
                };
                live.hosts[i].waiting = *secs;
                if bars {
                    if *secs > 0 {
                        inner.give_bar(&mut live, i, true);
                    }
                    let h = &live.hosts[i];
                    if let Some(bar) = &h.bar {
                        inner.set_host_message(h, bar);
                    }
                    inner.update_more(&mut live);
                } else {
                    let h = &mut live.hosts[i];
                    if *secs == 0 {
                        h.wait_said = 0;
                    } else if *secs >= next_wait_line(h.wait_said) {
                        h.wait_said = *secs;
                        let line = format!("{}: waiting: {}", h.name, h.wait_text(*secs));
                        drop(live);
                        inner.plain(&line);
                    }
                }
            }
            Event::StoreWaiting { secs } => {
                live.store_waiting = *secs;
                if bars {
                    inner.update_more(&mut live);
                } else if *secs == 0 {
                    live.store_wait_said = 0;
                } else if *secs >= next_wait_line(live.store_wait_said) {
                    live.store_wait_said = *secs;
                    let line = format!("store: waiting: no answer for {secs} s");
                    drop(live);
                    inner.plain(&line);
                }
            }
            // Printed above, in every mode.
            Event::Warning(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Write` the test keeps a handle on.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn lines_progress(hosts: &[(&str, usize)]) -> (Progress, Captured) {
        let out = Captured::default();
        let hosts: Vec<(String, usize)> = hosts.iter().map(|(h, n)| (h.to_string(), *n)).collect();
        let p = Progress::with_target(
            Mode::Lines,
            "create",
            &hosts,
            false,
            Box::new(out.clone()),
            ProgressDrawTarget::hidden(),
            24,
        );
        (p, out)
    }

    /// A run's events, as the run module sends them: progress, then a warning.
    fn drive(mode: Mode) -> String {
        let out = Captured::default();
        let p = Progress::with_target(
            mode,
            "create",
            &[("web1".into(), 2)],
            false,
            Box::new(out.clone()),
            ProgressDrawTarget::hidden(),
            24,
        );
        p.event(&Event::Start { targets: 2 });
        for a in ["alice", "bob"] {
            p.event(&Event::Started {
                host: "web1",
                what: a,
            });
            p.event(&Event::TargetDone {
                host: "web1",
                status: Status::Created,
            });
        }
        p.event(&Event::Warning(
            "web1 alice: revoked orphan token ci-1 (created, but its secret was never received)"
                .into(),
        ));
        p.event(&Event::HostDone {
            host: "web1",
            done: 2,
            failed: 0,
            skipped: 0,
            cause: None,
        });
        p.event(&Event::Warning(
            "the journal could not be synced at the end of the run: EIO".into(),
        ));
        p.finish();
        out.text()
    }

    #[test]
    fn progress_never_and_quiet_hide_progress_but_never_warnings() {
        for (progress, quiet) in [("never", false), ("auto", true), ("never", true)] {
            let mode = Mode::choose(progress, quiet);
            assert_eq!(mode, Mode::Quiet);
            let text = drive(mode);
            assert_eq!(
                text,
                "warning: web1 alice: revoked orphan token ci-1 (created, but its secret was never received)\n\
                 warning: the journal could not be synced at the end of the run: EIO\n",
                "--progress {progress} -q {quiet}"
            );
        }
    }

    #[test]
    fn a_waiting_host_is_said_at_10_s_30_s_then_each_minute_when_piped() {
        let (p, out) = lines_progress(&[("web7", 1)]);
        p.event(&Event::Started {
            host: "web7",
            what: "u007a0001",
        });
        for secs in 5..=125 {
            p.event(&Event::Waiting { host: "web7", secs });
        }
        p.event(&Event::Waiting {
            host: "web7",
            secs: 0,
        });
        p.event(&Event::Waiting {
            host: "web7",
            secs: 11,
        });
        p.finish();
        assert_eq!(
            out.text(),
            "web7: waiting: no answer for 10 s (u007a0001)\n\
             web7: waiting: no answer for 30 s (u007a0001)\n\
             web7: waiting: no answer for 60 s (u007a0001)\n\
             web7: waiting: no answer for 120 s (u007a0001)\n\
             web7: waiting: no answer for 11 s (u007a0001)\n"
        );
    }

    #[test]
    fn a_store_that_keeps_workers_waiting_is_named_not_their_hosts() {
        let (p, out) = lines_progress(&[("web1", 2)]);
        p.event(&Event::Start { targets: 2 });
        p.event(&Event::Started {
            host: "web1",
            what: "u001a0001",
        });
        for secs in 5..=31 {
            p.event(&Event::StoreWaiting { secs });
        }
        {
            let live = p.inner.live.lock().unwrap();
            assert_eq!(
                live.heartbeat(Duration::from_secs(40), false),
                "create: 0/2 targets; waiting on the store: no answer for 31 s"
            );
        }
        p.event(&Event::StoreWaiting { secs: 0 });
        {
            let live = p.inner.live.lock().unwrap();
            assert_eq!(
                live.heartbeat(Duration::from_secs(41), false),
                "create: 0/2 targets"
            );
        }
        p.event(&Event::StoreWaiting { secs: 10 });
        p.finish();
        assert_eq!(
            out.text(),
            "store: waiting: no answer for 10 s\n\
             store: waiting: no answer for 30 s\n\
             store: waiting: no answer for 10 s\n"
        );
    }

    #[test]
    fn lines_mode_prints_host_lines_and_warnings() {
        let text = drive(Mode::Lines);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("warning: web1 alice: revoked orphan token"));
        assert_eq!(lines[1], "web1: 2 created");
        assert!(lines[2].starts_with("warning: the journal could not be synced"));
    }

    #[test]
    fn the_heartbeat_says_done_total_counts_rate_eta_and_who_is_waited_on() {
        let (p, _out) = lines_progress(&[("web1", 3), ("web2", 1), ("web3", 0)]);
        p.event(&Event::Start { targets: 4 });
        {
            let live = p.inner.live.lock().unwrap();
            assert_eq!(
                live.heartbeat(Duration::from_secs(1), false),
                "create: 0/4 targets"
            );
        }
        for s in [Status::Created, Status::Failed] {
            p.event(&Event::TargetDone {
                host: "web1",
                status: s,
            });
        }
        p.event(&Event::Started {
            host: "web2",
            what: "u002a0001",
        });
        p.event(&Event::Waiting {
            host: "web2",
            secs: 12,
        });
        let live = p.inner.live.lock().unwrap();
        assert_eq!(
            live.heartbeat(Duration::from_secs(4), false),
            "create: 2/4 targets, 1 created, 1 failed, 0.5/s, ETA 4s; \
             waiting on web2: no answer for 12 s (u002a0001)"
        );
        drop(live);
        p.finish();
    }

    #[test]
    fn pace_and_durations_read_like_a_clock() {
        assert_eq!(pace_text(0, 10, Duration::from_secs(3)), None);
        assert_eq!(pace_text(5, 10, Duration::from_millis(100)), None);
        assert_eq!(
            pace_text(1200, 2400, Duration::from_secs(3)).unwrap(),
            "400/s, ETA 3s"
        );
        assert_eq!(duration_text(Duration::from_secs(125)), "2m05s");
        assert_eq!(duration_text(Duration::from_secs(3720)), "1h02m");
    }

    #[test]
    fn more_hosts_than_bars_fit_are_counted_and_a_waiting_host_takes_a_bar() {
        let hosts: Vec<(String, usize)> = (1..=6).map(|i| (format!("web{i}"), 2)).collect();
        let p = Progress::with_target(
            Mode::Bars,
            "create",
            &hosts,
            false,
            Box::new(Captured::default()),
            ProgressDrawTarget::hidden(),
            // Two host bars fit.
            5,
        );
        for (h, _) in &hosts[..4] {
            p.event(&Event::Started { host: h, what: "a" });
        }
        let shown = |p: &Progress| -> Vec<String> {
            let live = p.inner.live.lock().unwrap();
            live.hosts
                .iter()
                .filter(|h| h.bar.is_some())
                .map(|h| h.name.clone())
                .collect()
        };
        assert_eq!(shown(&p), ["web1", "web2"]);
        let more = || p.inner.live.lock().unwrap().more_text();
        assert_eq!(more().unwrap(), "+2 more hosts, 2 not started");
        p.event(&Event::Waiting {
            host: "web4",
            secs: 7,
        });
        assert_eq!(shown(&p), ["web2", "web4"]);
        assert_eq!(more().unwrap(), "+2 more hosts, 2 not started");
        p.event(&Event::HostDone {
            host: "web2",
            done: 2,
            failed: 0,
            skipped: 0,
            cause: None,
        });
        assert_eq!(shown(&p), ["web1", "web4"]);
        assert_eq!(more().unwrap(), "+1 more hosts, 2 not started, 1 done");
        p.finish();
    }

    #[test]
    fn after_a_ctrl_c_hosts_skipped_by_it_are_not_named_one_by_one() {
        let (p, out) = lines_progress(&[("web1", 2), ("web2", 2)]);
        p.inner
            .notice("interrupt: finishing requests in flight, then stopping");
        for (host, status) in [("web1", Status::Skipped), ("web2", Status::Failed)] {
            p.event(&Event::TargetDone { host, status });
            p.event(&Event::HostDone {
                host,
                done: 0,
                failed: usize::from(status == Status::Failed),
                skipped: usize::from(status == Status::Skipped),
                cause: None,
            });
        }
        p.finish();
        assert_eq!(
            out.text(),
            "interrupt: finishing requests in flight, then stopping\nweb2: 1 failed\n"
        );
    }
}
