//! Why this module exists: people watch long runs. On a terminal: an overall bar plus a bar per
//! active host; when stderr is not a terminal: one line per finished host; with `-q` or
//! `--progress never`: nothing. It only renders the events the run module sends, and those carry
//! host names and counts, never a secret.
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
    /// Nothing.
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
}

/// An [`Observer`] that draws progress.
pub struct Progress {
    mode: Mode,
    multi: MultiProgress,
    overall: ProgressBar,
    hosts: Mutex<HashMap<String, HostState>>,
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
        let hosts = host_targets
            .iter()
            .map(|(h, n)| {
                (
                    h.clone(),
                    HostState {
                        total: *n as u64,
                        bar: None,
                    },
                )
            })
            .collect();
        Progress {
            mode,
            multi,
            overall,
            hosts: Mutex::new(hosts),
        }
    }

    /// Print a line above the bars (or plainly), e.g. a warning.
    pub fn println(&self, line: &str) {
        match self.mode {
            Mode::Bars => {
                let _ = self.multi.println(line);
            }
            _ => {
                let _ = writeln!(std::io::stderr(), "{line}");
            }
        }
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
        let active = hosts.values().filter(|s| s.bar.is_some()).count();
        let state = hosts.get_mut(host)?;
        if state.bar.is_none() && active < MAX_HOST_BARS {
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
                        if *status == Status::Failed {
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
                    Mode::Lines => {
                        let _ = writeln!(std::io::stderr(), "{line}");
                    }
                    Mode::Quiet => {}
                }
            }
            Event::Warning(msg) => self.println(&format!("warning: {msg}")),
        }
    }
}
