//! One fleet served by several simulator processes. A host costs two listening sockets plus its
//! connections, and the open-file limit here is 20,000, so 10,000 hosts do not fit in one process;
//! split over processes of a few thousand hosts each they do, and the client under test is left
//! alone in its own process, its figures clean.
//!
//! The protocol is lines of JSON over the part's stdin and stdout, so no secret touches argv or a
//! file: the parent writes a setup line (the fleet's root WHM token and test CA); the part starts
//! its share of the hosts on per-host loopback addresses and answers with its hosts (names,
//! addresses, ports, pins, accounts). Each `stats` line the parent writes is answered with the
//! part's per-host figures; when its stdin closes (the parent stopped, or died) the part writes
//! the final figures and exits, so no part outlives its parent.

use std::io::{BufRead, BufReader, Write};
use std::ops::RangeInclusive;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::inventory::{InventoryFiles, InventoryHost, InventoryOptions, write_entries};
use crate::spec::{Addressing, FleetSpec, TestCaPem};
use crate::{Fleet, HostReport};

/// The most hosts one part serves by default: 5,000 listeners, room for 3 connections per host.
pub const HOSTS_PER_PART: usize = 2500;

#[derive(Serialize, Deserialize)]
struct Setup {
    root_token: String,
    ca_cert_pem: String,
    ca_key_pem: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Message {
    Hosts(Vec<InventoryHost>),
    Stats(Vec<HostReport>),
}

/// How many parts `total` hosts need at `per_part` hosts at most each.
pub fn part_count(total: usize, per_part: usize) -> usize {
    total.div_ceil(per_part.max(1)).max(1)
}

/// The hosts (1-based numbers of `FleetSpec::uniform(total, …)`) of part `k` of `n` (1-based):
/// consecutive, the sizes differing by one at most.
pub fn part_range(total: usize, k: usize, n: usize) -> RangeInclusive<usize> {
    let start = total * (k - 1) / n + 1;
    let end = total * k / n;
    start..=end
}

/// Parse `K/N` (`--part 2/4`), 1 <= K <= N.
pub fn parse_part(text: &str) -> anyhow::Result<(usize, usize)> {
    let parsed = text
        .split_once('/')
        .and_then(|(k, n)| Some((k.trim().parse().ok()?, n.trim().parse().ok()?)));
    match parsed {
        Some((k, n)) if k >= 1 && k <= n => Ok((k, n)),
        _ => bail!("--part {text}: write K/N with 1 <= K <= N, e.g. --part 2/4"),
    }
}

/// In a part process: read the setup from stdin, start `spec` with the fleet's root token and CA
/// on per-host addresses, announce the hosts on stdout, answer `stats` requests, and return
/// after writing the final figures once stdin closes. Nothing else may write to stdout.
pub fn serve_part(spec: FleetSpec) -> anyhow::Result<()> {
    serve_part_with(spec, |_| {})
}

/// [`serve_part`], with `prepare` run on the started fleet before its hosts are announced (so the
/// parent sees them ready): e.g. [`crate::seed_compromised`], which plants the same tokens
/// whichever part serves a host.
pub fn serve_part_with(mut spec: FleetSpec, prepare: impl FnOnce(&Fleet)) -> anyhow::Result<()> {
    let _ = crate::raise_fd_limit();
    // Ctrl-C in a terminal reaches the whole process group: the parent decides when parts stop
    // (it closes their stdin), so it can still collect their figures.
    // SAFETY: setting a signal to be ignored has no handler to race with.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let setup: Setup = match lines.next() {
        Some(line) => serde_json::from_str(&line.context("reading the setup line")?)
            .context("the setup line is not the parent's JSON")?,
        None => bail!("stdin closed before the setup line: run parts through FleetParts"),
    };
    spec.root_token = Some(setup.root_token);
    spec.ca = Some(TestCaPem {
        cert_pem: setup.ca_cert_pem,
        key_pem: setup.ca_key_pem,
    });
    spec.addressing = Addressing::PerHost;
    let fleet = Fleet::start(spec)?;
    prepare(&fleet);
    let mut out = std::io::stdout().lock();
    let hosts = fleet.hosts().iter().map(InventoryHost::of).collect();
    say(&mut out, &Message::Hosts(hosts))?;
    let reports = |f: &Fleet| Message::Stats(f.hosts().iter().map(|h| h.report()).collect());
    for line in lines {
        match line {
            Ok(l) if l.trim() == "stats" => say(&mut out, &reports(&fleet))?,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    // The parent may be gone: the final figures are best effort.
    let _ = say(&mut out, &reports(&fleet));
    fleet.shutdown();
    Ok(())
}

fn say(out: &mut impl Write, m: &Message) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *out, m)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

/// How long a part may take to answer: starting thousands of hosts (a key pair and certificate
/// each) on a loaded machine is the slow case.
const ANSWER_WITHIN: Duration = Duration::from_secs(300);

struct Part {
    child: Child,
    stdin: Option<ChildStdin>,
    /// The part's stdout lines, read on a thread of their own so a wait can have a deadline.
    lines: std::sync::mpsc::Receiver<String>,
}

fn forward_lines(stdout: ChildStdout) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(l) = line else { return };
            if tx.send(l).is_err() {
                return;
            }
        }
    });
    rx
}

impl Part {
    /// The part's next message. Lines that are not JSON objects are someone else's (a test
    /// harness announcing its test) and skipped; the count of lines read is bounded by what the
    /// part writes before it exits.
    fn read(&mut self, k: usize) -> anyhow::Result<Message> {
        let deadline = Instant::now() + ANSWER_WITHIN;
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            let line = match self.lines.recv_timeout(wait) {
                Ok(l) => l,
                Err(e) => {
                    let status = self.child.try_wait().ok().flatten();
                    bail!(
                        "simulator part {k} {} ({}); its stderr says why",
                        match e {
                            std::sync::mpsc::RecvTimeoutError::Timeout => "did not answer in time",
                            _ => "stopped answering",
                        },
                        status.map_or("still running".to_string(), |s| s.to_string())
                    );
                }
            };
            if line.starts_with('{') {
                return serde_json::from_str(&line)
                    .with_context(|| format!("simulator part {k} sent {line:?}"));
            }
        }
    }
}

/// A fleet served by child processes, each running [`serve_part`] for its share of the hosts.
/// Dropping it stops them.
pub struct FleetParts {
    parts: Vec<Part>,
    hosts: Vec<InventoryHost>,
    root_token: String,
    ca: TestCaPem,
}

impl FleetParts {
    /// Start one part per command (each runs a program that calls [`serve_part`] with its share;
    /// stdin and stdout are taken over, stderr is left as set), all with one root token (`None`:
    /// a random one) and one CA, and wait until every part serves.
    pub fn start(commands: Vec<Command>, root_token: Option<String>) -> anyhow::Result<FleetParts> {
        let root_token = root_token.unwrap_or_else(crate::state::new_secret);
        let ca = TestCaPem::generate()?;
        let setup = serde_json::to_string(&Setup {
            root_token: root_token.clone(),
            ca_cert_pem: ca.cert_pem.clone(),
            ca_key_pem: ca.key_pem.clone(),
        })?;
        let mut fleet = FleetParts {
            parts: Vec::new(),
            hosts: Vec::new(),
            root_token,
            ca,
        };
        for (i, mut cmd) in commands.into_iter().enumerate() {
            let mut child = cmd
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .with_context(|| format!("starting simulator part {}", i + 1))?;
            let mut stdin = child.stdin.take().expect("piped");
            let lines = forward_lines(child.stdout.take().expect("piped"));
            stdin.write_all(format!("{setup}\n").as_bytes())?;
            stdin.flush()?;
            fleet.parts.push(Part {
                child,
                stdin: Some(stdin),
                lines,
            });
        }
        for k in 0..fleet.parts.len() {
            match fleet.parts[k].read(k + 1)? {
                Message::Hosts(h) => fleet.hosts.extend(h),
                Message::Stats(_) => bail!("simulator part {} answered out of turn", k + 1),
            }
        }
        Ok(fleet)
    }

    /// Every host of every part, in part order.
    pub fn hosts(&self) -> &[InventoryHost] {
        &self.hosts
    }

    pub fn root_token(&self) -> &str {
        &self.root_token
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca.cert_pem
    }

    /// The process ids of the parts.
    pub fn pids(&self) -> Vec<u32> {
        self.parts.iter().map(|p| p.child.id()).collect()
    }

    /// Write the inventory of the whole fleet (see [`Fleet::write_inventory`]).
    pub fn write_inventory(
        &self,
        dir: &std::path::Path,
        opts: &InventoryOptions,
    ) -> std::io::Result<InventoryFiles> {
        write_entries(&self.hosts, &self.root_token, &self.ca.cert_pem, dir, opts)
    }

    /// Every host's figures now (counters since the part started).
    pub fn stats(&mut self) -> anyhow::Result<Vec<HostReport>> {
        for p in &mut self.parts {
            let stdin = p.stdin.as_mut().context("the parts were stopped")?;
            stdin.write_all(b"stats\n")?;
            stdin.flush()?;
        }
        self.collect()
    }

    fn collect(&mut self) -> anyhow::Result<Vec<HostReport>> {
        let mut all = Vec::with_capacity(self.hosts.len());
        for k in 0..self.parts.len() {
            match self.parts[k].read(k + 1)? {
                Message::Stats(s) => all.extend(s),
                Message::Hosts(_) => bail!("simulator part {} answered out of turn", k + 1),
            }
        }
        Ok(all)
    }

    /// Stop every part and return the final figures.
    pub fn stop(mut self) -> anyhow::Result<Vec<HostReport>> {
        for p in &mut self.parts {
            p.stdin = None;
        }
        let reports = self.collect();
        self.reap();
        reports
    }

    /// Close the parts' stdin, give them a few seconds to exit, then kill what is left.
    fn reap(&mut self) {
        for p in &mut self.parts {
            p.stdin = None;
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for p in &mut self.parts {
            loop {
                match p.child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() >= deadline => {
                        let _ = p.child.kill();
                        let _ = p.child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
        self.parts.clear();
    }
}

impl Drop for FleetParts {
    fn drop(&mut self) {
        self.reap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_the_fleet_once() {
        for (total, per) in [
            (1, 2500),
            (2500, 2500),
            (2501, 2500),
            (10_000, 2500),
            (7, 3),
        ] {
            let n = part_count(total, per);
            let mut next = 1;
            for k in 1..=n {
                let r = part_range(total, k, n);
                assert_eq!(*r.start(), next);
                assert!(r.clone().count() <= per);
                next = r.end() + 1;
            }
            assert_eq!(next, total + 1);
        }
        assert_eq!(parse_part("2/4").unwrap(), (2, 4));
        assert!(parse_part("0/4").is_err());
        assert!(parse_part("5/4").is_err());
    }
}
