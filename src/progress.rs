//! Why this module exists: people watch long runs. On a terminal: an overall bar plus a bar per
//! active host; when stderr is not a terminal: one line per finished host; with `-q` or
//! `--progress never`: no progress. Warnings are not progress: every mode prints them (an orphan
//! revoked, a journal that could not be synced). It only renders the events the run module
//! sends, and those carry host names and counts, never a secret.
//! See docs/DESIGN.md §6.

use crate::outcome::Status;
use crate::run::{Event, Observer};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Bars on stderr (a terminal).
    Bars,
    /// One line per finished host on stderr.
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

/// The most host bars shown at once; the overall bar counts the rest.
const MAX_HOST_BARS: usize = 8;

struct HostState {
    total: u64,
    bar: Option<ProgressBar>,
    /// Lines mode: the longest wait already printed for the current wait (seconds).
    wait_said: u64,
}

/// Lines mode: a host's wait is printed when it reaches 10 s, 30 s, then every minute.
fn next_wait_line(said: u64) -> u64 {
    match said {
        0..10 => 10,
        10..30 => 30,
        s => (s / 60 + 1) * 60,
    }
}

/// An [`Observer`] that draws progress.
pub struct Progress {
    mode: Mode,
    multi: MultiProgress,
    overall: ProgressBar,
    hosts: Mutex<HashMap<String, HostState>>,
    /// Where lines go when there are no bars to print above: stderr (a buffer in tests).
    lines: Mutex<Box<dyn Write + Send>>,
}

impl Progress {
    /// `host_targets`: each host's name and planned target count.
    pub fn new(mode: Mode, verb: &'static str, host_targets: &[(String, usize)]) -> Progress {
        let target = match mode {
            Mode::Bars => ProgressDrawTarget::stderr_with_hz(10),
            _ => ProgressDrawTarget::hidden(),
        };
        let multi = MultiProgress::with_draw_target(target);
        let total: usize = host_targets.iter().map(|(_, n)| n).sum();
        let overall = multi.add(ProgressBar::new(total as u64));
        overall.set_style(
            ProgressStyle::with_template(
                "{prefix:>12.bold} [{bar:30}] {pos}/{len} targets, {msg} {elapsed}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        overall.set_prefix(verb);
        if mode == Mode::Bars {
            // The clock keeps moving while every host is waiting.
            overall.enable_steady_tick(std::time::Duration::from_secs(1));
        }
        let hosts = host_targets
            .iter()
            .map(|(h, n)| {
                (
                    h.clone(),
                    HostState {
                        total: *n as u64,
                        bar: None,
                        wait_said: 0,
                    },
                )
            })
            .collect();
        Progress {
            mode,
            multi,
            overall,
            hosts: Mutex::new(hosts),
            lines: Mutex::new(Box::new(std::io::stderr())),
        }
    }

    /// Plain lines (not bars) go to `out` instead of stderr.
    #[cfg(test)]
    fn with_lines(mut self, out: Box<dyn Write + Send>) -> Progress {
        self.lines = Mutex::new(out);
        self
    }

    /// Print a line above the bars (or plainly), e.g. a warning.
    pub fn println(&self, line: &str) {
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

    /// Remove the bars before the summary is printed.
    pub fn finish(&self) {
        if self.mode == Mode::Bars {
            for state in self.hosts.lock().unwrap().values_mut() {
                if let Some(bar) = state.bar.take() {
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                }
            }
            self.overall.finish_and_clear();
            let _ = self.multi.clear();
        }
    }

    fn host_bar(&self, hosts: &mut HashMap<String, HostState>, host: &str) -> Option<ProgressBar> {
        self.host_bar_or_forced(hosts, host, false)
    }

    /// The host's bar; `force`: even past [`MAX_HOST_BARS`] (a host that is waiting must show).
    fn host_bar_or_forced(
        &self,
        hosts: &mut HashMap<String, HostState>,
        host: &str,
        force: bool,
    ) -> Option<ProgressBar> {
        let active = hosts.values().filter(|s| s.bar.is_some()).count();
        let state = hosts.get_mut(host)?;
        if state.bar.is_none() && (active < MAX_HOST_BARS || force) {
            let bar = self.multi.add(ProgressBar::new(state.total));
            bar.set_style(
                ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} {msg}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(host.to_string());
            state.bar = Some(bar);
        }
        state.bar.clone()
    }
}

impl Observer for Progress {
    fn event(&self, event: &Event<'_>) {
        // Before the quiet check: `--progress never` and `-q` hide progress, not warnings.
        if let Event::Warning(msg) = event {
            self.println(&format!("warning: {msg}"));
            return;
        }
        if self.mode == Mode::Quiet {
            return;
        }
        match event {
            Event::Start { targets } => {
                self.overall.set_length(*targets as u64);
                self.overall.set_message("");
            }
            Event::Discovered { host, targets } => {
                self.overall.inc_length(*targets as u64);
                let mut hosts = self.hosts.lock().unwrap();
                if let Some(state) = hosts.get_mut(*host) {
                    state.total += *targets as u64;
                    if let Some(bar) = &state.bar {
                        bar.set_length(state.total);
                    }
                }
            }
            Event::TargetDone { host, status } => {
                if self.mode == Mode::Bars {
                    self.overall.inc(1);
                    let mut hosts = self.hosts.lock().unwrap();
                    if let Some(bar) = self.host_bar(&mut hosts, host) {
                        bar.inc(1);
                        if matches!(status, Status::Failed | Status::Unproven) {
                            bar.set_message("(failures)");
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
                let mut line = format!("{host}: {done} done");
                if *failed > 0 {
                    line.push_str(&format!(", {failed} failed"));
                }
                if *skipped > 0 {
                    line.push_str(&format!(", {skipped} skipped"));
                }
                if let Some(cause) = cause {
                    line.push_str(&format!(" ({cause})"));
                }
                match self.mode {
                    Mode::Bars => {
                        let mut hosts = self.hosts.lock().unwrap();
                        if let Some(state) = hosts.get_mut(*host)
                            && let Some(bar) = state.bar.take()
                        {
                            bar.finish_and_clear();
                            self.multi.remove(&bar);
                        }
                        if *failed > 0 || *skipped > 0 {
                            let _ = self.multi.println(line);
                        }
                    }
                    Mode::Lines => self.plain(&line),
                    Mode::Quiet => {}
                }
            }
            Event::Waiting { host, secs } => {
                let mut hosts = self.hosts.lock().unwrap();
                match self.mode {
                    Mode::Bars => {
                        if let Some(bar) = self.host_bar_or_forced(&mut hosts, host, *secs > 0) {
                            if *secs > 0 {
                                bar.set_message(format!("waiting: no answer for {secs} s"));
                            } else {
                                bar.set_message("");
                            }
                        }
                    }
                    Mode::Lines => {
                        let Some(state) = hosts.get_mut(*host) else {
                            return;
                        };
                        if *secs == 0 {
                            state.wait_said = 0;
                        } else if *secs >= next_wait_line(state.wait_said) {
                            state.wait_said = *secs;
                            drop(hosts);
                            self.plain(&format!("{host}: waiting: no answer for {secs} s"));
                        }
                    }
                    Mode::Quiet => {}
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
    use std::sync::Arc;

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

    /// A run's events, as the run module sends them: progress, then a warning.
    fn drive(mode: Mode) -> String {
        let out = Captured::default();
        let p =
            Progress::new(mode, "create", &[("web1".into(), 2)]).with_lines(Box::new(out.clone()));
        p.event(&Event::Start { targets: 2 });
        for _ in 0..2 {
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
        let out = Captured::default();
        let p = Progress::new(Mode::Lines, "create", &[("web7".into(), 1)])
            .with_lines(Box::new(out.clone()));
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
        assert_eq!(
            out.text(),
            "web7: waiting: no answer for 10 s\n\
             web7: waiting: no answer for 30 s\n\
             web7: waiting: no answer for 60 s\n\
             web7: waiting: no answer for 120 s\n\
             web7: waiting: no answer for 11 s\n"
        );
    }

    #[test]
    fn lines_mode_prints_host_lines_and_warnings() {
        let text = drive(Mode::Lines);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("warning: web1 alice: revoked orphan token"));
        assert_eq!(lines[1], "web1: 2 done");
        assert!(lines[2].starts_with("warning: the journal could not be synced"));
    }
}
