//! The performance model of docs/DESIGN.md §8, measured: a simulated fleet on per-host loopback
//! addresses (ports 2087/2083, served by simulator processes of their own so the tokenfleet
//! process's figures are its alone), a real `tokenfleet create` or `list` against it, and the
//! figures: wall time, the lower bound no schedule can beat (at the measured L), their ratio, the
//! tokenfleet process's peak threads, CPU (user + sys) and peak RSS, TLS handshakes per host, and
//! one markdown row per scenario to paste into the README's table.
//!
//! `cargo bench --bench fleet` runs the issue's scenarios: 100×100 20 ms jobs 32; 1,000×100 20 ms
//! jobs 64; 10,000×10 20 ms jobs 64; 200×500 L = 0, create then list (all per_host 4).
//! `cargo bench --bench fleet -- --quick` runs one small scenario (20×24, 20 ms, jobs 32).
//! `cargo bench --bench fleet -- --hosts 50 --accounts 40 --latency-ms 20 --jobs 32 --per-host 4
//! --op create|list|both|audit|sweep [--batch B] [--part-size N] [--tokens T]` runs one of your
//! choosing; `--batch B` is passed to tokenfleet only when given. `sweep` is an audit, then a
//! `sweep --flag suspicious --yes` of the same fleet. `audit` runs `tokenfleet audit`
//! over the simulator's compromised fleet (`cpanel_sim::seed_compromised`, T ordinary tokens per
//! account, default 3, besides the system and attacker ones), as the default scenarios do at
//! 1,000 × 50.

use cpanel_sim::parts::{self, FleetParts};
use cpanel_sim::{FleetSpec, HostReport, InventoryOptions};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// tokenfleet's `--batch` when not given (src/run/batch.rs `DEFAULT_BATCH`).
const DEFAULT_BATCH: usize = 25;
/// The simulator's default `batch_command_latency`: each command inside a batch costs this.
const BATCH_COMMAND_SECS: f64 = 0.001;

#[derive(Clone)]
struct Scenario {
    hosts: usize,
    accounts: usize,
    latency_ms: u64,
    jobs: usize,
    per_host: usize,
    ops: Vec<Op>,
    batch: Option<usize>,
    part_size: usize,
    /// Ordinary tokens per account of the compromised fleet an `audit` lists.
    tokens: usize,
}

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Create,
    List,
    Audit,
    /// `sweep --flag suspicious --yes`: the census, then the attacker's tokens revoked (its
    /// bound counts the listings only, so it is a lower bound still).
    Sweep,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::List => "list",
            Op::Audit => "audit",
            Op::Sweep => "sweep",
        }
    }

    /// Requests per host besides the accounts' (an audit's WHM user: `api_token_list` and
    /// `api_token_get_details` on the credential, one after the other).
    fn host_requests(self) -> f64 {
        match self {
            Op::Audit | Op::Sweep => 2.0,
            _ => 0.0,
        }
    }

    /// Requests per target (docs/DESIGN.md §8): a create with api = "whm" is 2 (the listing that
    /// proves the name absent, then the uapi_cpanel create); a list is the one listing.
    fn calls(self) -> f64 {
        match self {
            Op::Create => 2.0,
            Op::List | Op::Audit | Op::Sweep => 1.0,
        }
    }
}

fn value<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn num(args: &[String], name: &str) -> Option<usize> {
    value(args, name).map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name} takes a number, not {v:?}"))
    })
}

fn scenario(hosts: usize, accounts: usize, latency_ms: u64, jobs: usize, ops: &[Op]) -> Scenario {
    Scenario {
        hosts,
        accounts,
        latency_ms,
        jobs,
        per_host: 4,
        ops: ops.to_vec(),
        batch: None,
        part_size: parts::HOSTS_PER_PART,
        tokens: 3,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(part) = value(&args, "--sim-part") {
        serve_part(&args, part);
        return;
    }
    let _ = cpanel_sim::raise_fd_limit();
    let scenarios = if let Some(hosts) = num(&args, "--hosts") {
        let ops = match value(&args, "--op").unwrap_or("create") {
            "create" => vec![Op::Create],
            "list" => vec![Op::List],
            "both" => vec![Op::Create, Op::List],
            "audit" => vec![Op::Audit],
            "sweep" => vec![Op::Audit, Op::Sweep],
            other => panic!("--op {other}: use create, list, both, audit or sweep"),
        };
        vec![Scenario {
            hosts,
            accounts: num(&args, "--accounts").unwrap_or(100),
            latency_ms: num(&args, "--latency-ms").unwrap_or(20) as u64,
            jobs: num(&args, "--jobs").unwrap_or(32),
            per_host: num(&args, "--per-host").unwrap_or(4),
            ops,
            batch: num(&args, "--batch"),
            part_size: num(&args, "--part-size").unwrap_or(parts::HOSTS_PER_PART),
            tokens: num(&args, "--tokens").unwrap_or(3),
        }]
    } else if args.iter().any(|a| a == "--quick") {
        vec![scenario(20, 24, 20, 32, &[Op::Create])]
    } else {
        vec![
            scenario(100, 100, 20, 32, &[Op::Create]),
            scenario(1000, 100, 20, 64, &[Op::Create]),
            scenario(10_000, 10, 20, 64, &[Op::Create]),
            scenario(200, 500, 0, 32, &[Op::Create, Op::List]),
            scenario(1000, 50, 20, 64, &[Op::Audit]),
        ]
    };
    let mut rows = Vec::new();
    for s in &scenarios {
        rows.extend(run(s));
    }
    println!();
    println!(
        "| scenario | op | wall | bound (measured L) | ratio | peak threads | TLS handshakes/host | client CPU/target | peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
}

/// A simulator part: this bench binary run again with `--sim-part K/N` by [`start_fleet`].
fn serve_part(args: &[String], part: &str) {
    let (k, n) = parts::parse_part(part).expect("--sim-part K/N");
    let hosts = num(args, "--hosts").expect("--hosts");
    let accounts = num(args, "--accounts").expect("--accounts");
    let latency = Duration::from_millis(num(args, "--latency-ms").expect("--latency-ms") as u64);
    let mut spec = FleetSpec::uniform_slice(hosts, parts::part_range(hosts, k, n), accounts);
    for h in &mut spec.hosts {
        h.faults.latency = latency;
    }
    let audit = value(args, "--compromised").is_some();
    let tokens = num(args, "--tokens").unwrap_or(3);
    let served = parts::serve_part_with(spec, |fleet| {
        if audit {
            cpanel_sim::seed_compromised(fleet, 7, tokens);
        }
    });
    if let Err(e) = served {
        eprintln!("fleet bench, simulator part {part}: {e:#}");
        std::process::exit(2);
    }
}

fn start_fleet(s: &Scenario) -> FleetParts {
    let exe = std::env::current_exe().expect("the bench binary");
    let n = parts::part_count(s.hosts, s.part_size);
    let commands = (1..=n)
        .map(|k| {
            let mut c = Command::new(&exe);
            c.arg("--sim-part")
                .arg(format!("{k}/{n}"))
                .args(["--hosts", &s.hosts.to_string()])
                .args(["--accounts", &s.accounts.to_string()])
                .args(["--latency-ms", &s.latency_ms.to_string()])
                .args(["--tokens", &s.tokens.to_string()]);
            if s.ops.contains(&Op::Audit) {
                c.args(["--compromised", "7"]);
            }
            c
        })
        .collect();
    FleetParts::start(commands, None).expect("the simulated fleet starts")
}

/// What one tokenfleet run cost, from wait4 on its pid and /proc sampling.
struct Measured {
    wall: Duration,
    ok: bool,
    exit: String,
    stderr_tail: String,
    peak_threads: u64,
    cpu: Duration,
    peak_rss_kib: i64,
}

fn run(s: &Scenario) -> Vec<String> {
    let n = s.hosts * s.accounts;
    let started = Instant::now();
    let mut fleet = start_fleet(s);
    let dir = tempfile::tempdir().unwrap();
    let files = fleet
        .write_inventory(dir.path(), &InventoryOptions::default())
        .unwrap();
    println!(
        "scenario: {} hosts x {} accounts = {} targets, latency {} ms, jobs {}, per_host {}{} ({} simulator processes, started in {:.1} s)",
        s.hosts,
        s.accounts,
        n,
        s.latency_ms,
        s.jobs,
        s.per_host,
        s.batch.map(|b| format!(", batch {b}")).unwrap_or_default(),
        fleet.pids().len(),
        started.elapsed().as_secs_f64()
    );
    let l_measured = measured_latency(fleet.root_token(), &files.toml);
    println!(
        "  server latency     {:>9.3} ms (measured: one request at a time, warm connection)",
        l_measured * 1000.0
    );
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let mut rows = Vec::new();
    for (i, &op) in s.ops.iter().enumerate() {
        let before = fleet.stats().expect("fleet stats");
        let mut args: Vec<String> = vec![op.name().into(), "-i".into()];
        args.push(files.toml.display().to_string());
        if op == Op::Audit {
            args.extend(["--format".into(), "json".into()]);
        }
        if op == Op::Sweep {
            for a in [
                "--flag",
                "suspicious",
                "--yes",
                "--journal",
                "sweep.journal",
            ] {
                args.push(a.into());
            }
        }
        if op == Op::Create {
            for a in [
                "--name",
                "bench-{run}",
                "-r",
                &recipient,
                "-o",
                &format!("bench{i}.age"),
            ] {
                args.push(a.to_string());
            }
        }
        for a in [
            "--progress",
            "never",
            "-q",
            "-j",
            &s.jobs.to_string(),
            "--per-host",
            &s.per_host.to_string(),
            "--report",
            &format!("report{i}.json"),
        ] {
            args.push(a.to_string());
        }
        if let Some(b) = s.batch {
            args.push("--batch".into());
            args.push(b.to_string());
        }
        let mut m = run_tokenfleet(&args, dir.path(), fleet.root_token());
        if op == Op::Audit {
            // Findings are the point (exit 1); a census with an owner not listed is a failure.
            // Only the census's first line (all but its tokens) is read: parsing 100,000s of
            // tokens here would grow this process, and the next child's RSS starts as a copy.
            let mut head = String::new();
            if let Ok(f) = std::fs::File::open(dir.path().join("tokenfleet.stdout")) {
                let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(f), &mut head);
            }
            let census: serde_json::Value =
                serde_json::from_str(&format!("{}}}", head.trim_end().trim_end_matches(',')))
                    .unwrap_or_default();
            let summary = &census["summary"];
            m.ok = (m.ok || m.exit == "exit 1") && summary["unreached"] == 0;
            println!(
                "  census             {} tokens, {} findings, by class {}",
                summary["tokens"], summary["findings"], summary["by_class"]
            );
        }
        let after = fleet.stats().expect("fleet stats");
        rows.push(print_figures(s, op, &m, l_measured, &before, &after));
    }
    let _ = fleet.stop();
    rows
}

fn print_figures(
    s: &Scenario,
    op: Op,
    m: &Measured,
    l_measured: f64,
    before: &[HostReport],
    after: &[HostReport],
) -> String {
    let n = s.hosts * s.accounts;
    let calls = op.calls();
    // docs/DESIGN.md §8 with batches: a host's accounts go in batches of
    // b = min(B, ceil(n_h / k)) (tokenfleet's default B when --batch is not given), each batch
    // costs `calls` requests, and each request L plus the simulator's per-command cost inside it.
    let b = s
        .batch
        .unwrap_or(DEFAULT_BATCH)
        .min(s.accounts.div_ceil(s.per_host))
        .max(1);
    let extra = op.host_requests();
    let requests_per_host = s.accounts.div_ceil(b) as f64 * calls + extra;
    let bound_for = |l: f64| {
        let lb = if b > 1 {
            l + b as f64 * BATCH_COMMAND_SECS
        } else {
            l
        };
        let batches = s.accounts.div_ceil(b) as f64 * calls;
        // The host's slots carry its batches and its own calls; the longest slot is at least
        // the busiest share of that work, and never less than the batches' own turns.
        let per_host = (s.accounts.div_ceil(s.per_host * b) as f64 * calls * lb)
            .max((batches * lb + extra * l) / s.per_host as f64)
            .max(extra * l);
        let global = s.hosts as f64 * (batches * lb + extra * l) / s.jobs as f64;
        (per_host.max(global), per_host, global)
    };
    let (bound, per_host_bound, global_bound) = bound_for(l_measured);
    let wall = m.wall.as_secs_f64();
    let handshakes: Vec<u64> = after
        .iter()
        .zip(before)
        .map(|(a, b)| a.tls_handshakes - b.tls_handshakes)
        .collect();
    let max_hs = handshakes.iter().max().copied().unwrap_or(0);
    let mean_hs = handshakes.iter().sum::<u64>() as f64 / handshakes.len().max(1) as f64;
    let requests: u64 = after
        .iter()
        .zip(before)
        .map(|(a, b)| a.requests - b.requests)
        .sum();
    let minted: i64 = after
        .iter()
        .zip(before)
        .map(|(a, b)| a.live_tokens as i64 - b.live_tokens as i64)
        .sum();
    let max_in_flight = after.iter().map(|h| h.max_in_flight).max().unwrap_or(0);
    let cpu_ms_per_target = m.cpu.as_secs_f64() * 1000.0 / n as f64;
    let latency_bound = s.latency_ms > 0;

    println!(
        "  {}: {}",
        op.name(),
        if m.ok {
            "ok".to_string()
        } else {
            format!("FAILED ({}): {}", m.exit, m.stderr_tail)
        }
    );
    println!("  wall time          {:>9.3} s", wall);
    if latency_bound {
        println!(
            "  lower bound        {:>9.3} s  (measured L, batches of {b}, {requests_per_host} requests/host; max(per-host {:.3} s, global {:.3} s))",
            bound, per_host_bound, global_bound
        );
        println!("  ratio              {:>9.3}", wall / bound);
    } else {
        println!("  throughput         {:>9.0} targets/s", n as f64 / wall);
    }
    println!(
        "  peak threads       {:>9}    (tokenfleet process, sampled every 20 ms)",
        m.peak_threads
    );
    println!(
        "  TLS handshakes/host  max {max_hs}, mean {mean_hs:.2}  (per_host = {})",
        s.per_host
    );
    println!(
        "  client CPU         {:>9.3} s  user+sys, {:.3} ms/target",
        m.cpu.as_secs_f64(),
        cpu_ms_per_target
    );
    println!(
        "  peak RSS           {:>9.1} MiB (tokenfleet process)",
        m.peak_rss_kib as f64 / 1024.0
    );
    println!(
        "  server side        {requests} requests, {minted} tokens minted, max in flight/host {max_in_flight}"
    );
    if op == Op::Create && m.ok && minted != n as i64 {
        println!("  WARNING: {minted} tokens minted for {n} targets");
    }

    let scenario = format!(
        "{} × {}, {}, jobs {}, per_host {}{}",
        thousands(s.hosts),
        thousands(s.accounts),
        if latency_bound {
            format!("{} ms", s.latency_ms)
        } else {
            "L = 0".to_string()
        },
        s.jobs,
        s.per_host,
        s.batch.map(|b| format!(", batch {b}")).unwrap_or_default()
    );
    let (bound_cell, ratio_cell) = if latency_bound {
        (secs(bound), format!("{:.2}", wall / bound))
    } else {
        (String::new(), String::new())
    };
    format!(
        "| {scenario} | {}{} | {} | {bound_cell} | {ratio_cell} | {} threads | {max_hs} hs/host | {cpu_ms_per_target:.2} ms/target | {:.0} MiB |",
        op.name(),
        if m.ok { "" } else { " (failed)" },
        secs(wall),
        m.peak_threads,
        m.peak_rss_kib as f64 / 1024.0
    )
}

fn secs(s: f64) -> String {
    if s < 10.0 {
        format!("{s:.2} s")
    } else {
        format!("{s:.1} s")
    }
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Run tokenfleet, sampling its thread count every ~20 ms from another thread, and reap it with wait4 so its own
/// rusage (CPU, peak RSS) is measured, not that of every child this bench ever had.
fn run_tokenfleet(args: &[String], dir: &std::path::Path, token: &str) -> Measured {
    let stderr_path = dir.join("tokenfleet.stderr");
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_tokenfleet"))
        .current_dir(dir)
        .env("WHM_TOKEN", token)
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join("tokenfleet.stdout")).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .expect("tokenfleet runs");
    let pid = child.id() as libc::pid_t;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let status_path = format!("/proc/{pid}/status");
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                if let Ok(text) = std::fs::read_to_string(&status_path)
                    && let Some(t) = text
                        .lines()
                        .find_map(|l| l.strip_prefix("Threads:"))
                        .and_then(|v| v.trim().parse::<u64>().ok())
                {
                    peak = peak.max(t);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            peak
        })
    };
    let mut status = 0;
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: wait4 fills status and usage for our own child.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, usage.as_mut_ptr()) };
    assert_eq!(rc, pid, "wait4: {}", std::io::Error::last_os_error());
    let wall = started.elapsed();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let peak_threads = sampler.join().expect("sampler");
    // The child was reaped by wait4 above; std's handle must not wait for it again.
    std::mem::forget(child);
    // SAFETY: initialised by the wait4 that returned the pid.
    let usage = unsafe { usage.assume_init() };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    let exit = if libc::WIFEXITED(status) {
        format!("exit {}", libc::WEXITSTATUS(status))
    } else {
        format!("signal {}", libc::WTERMSIG(status))
    };
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
    Measured {
        wall,
        ok,
        exit,
        stderr_tail: tail.into_iter().rev().collect::<Vec<_>>().join(" / "),
        peak_threads,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        peak_rss_kib: usage.ru_maxrss,
    }
}

/// The server's real per-request latency L: the simulator's configured delay plus its timer
/// granularity, TLS and processing, as a client sees it with one request at a time on a warm
/// keep-alive connection (tokenfleet's own transport). The bound of docs/DESIGN.md §8 is about this L.
fn measured_latency(root_token: &str, inventory: &std::path::Path) -> f64 {
    use tokenfleet::backend::{self, HostAccess};
    use tokenfleet::secret::Secret;
    use tokenfleet::transport::TransportConfig;
    let inv = tokenfleet::inventory::load(inventory).expect("inventory loads");
    let token = Secret::new(root_token);
    let backend = backend::open(&HostAccess {
        host: &inv.hosts[0],
        credential: Some(&token),
        transport: TransportConfig::default(),
    })
    .expect("backend");
    backend.whoami().expect("warm-up call");
    let rounds = 40;
    let started = Instant::now();
    for _ in 0..rounds {
        backend.whoami().expect("version");
    }
    started.elapsed().as_secs_f64() / rounds as f64
}
