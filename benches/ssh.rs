//! The SSH backend against HTTPS on the same simulated fleet: `tokenfleet create` of H hosts × A
//! accounts over HTTPS (`api = "whm"`, with WHM `batch` as by default, and with `--batch 1`: one
//! call per request, as the SSH path makes) and over SSH (`api = "ssh"`: a real sshd per host,
//! one ControlMaster connection per host, one `uapi` command per call), in one run so the ratios
//! compare like with like on a noisy machine. Figures: wall, tokenfleet's CPU (its ssh children
//! included), peak RSS, SSH logins per host, and the latency bound of docs/DESIGN.md §8.
//!
//! With `--batch 1` as well for both (SSH then runs one `uapi` per call).
//!
//! `cargo bench --bench ssh` runs 50 × 50 at 20 ms, jobs 32, per-host 4;
//! `cargo bench --bench ssh -- --hosts H --accounts A --latency-ms L --jobs J --per-host K`.

use cpanel_sim::{Fleet, FleetSpec, InventoryOptions, SshFront};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn num(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("a number"))
        .unwrap_or(default)
}

struct Measured {
    wall: Duration,
    cpu: Duration,
    rss_kib: i64,
    ok: bool,
    tail: String,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(why) = SshFront::unavailable() {
        eprintln!("bench ssh: {why}");
        return;
    }
    let hosts = num(&args, "--hosts", 50);
    let accounts = num(&args, "--accounts", 50);
    let latency_ms = num(&args, "--latency-ms", 20) as u64;
    let jobs = num(&args, "--jobs", 32);
    let per_host = num(&args, "--per-host", 4);
    let mut spec = FleetSpec::uniform(hosts, accounts);
    for h in &mut spec.hosts {
        h.faults.latency = Duration::from_millis(latency_ms);
    }
    let dir = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(spec).expect("fleet");
    fleet
        .write_inventory(dir.path(), &InventoryOptions::default())
        .expect("inventory");
    let started = Instant::now();
    let front = SshFront::start(&fleet, &dir.path().join("sshd")).expect("sshd per host");
    eprintln!(
        "bench ssh: {hosts} sshd started in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let ssh_inv = front
        .write_inventory(&fleet, dir.path(), true)
        .expect("SSH inventory");
    let recipient = age::x25519::Identity::generate().to_public().to_string();
    let common = |inv: &str, name: &str, out: &str| -> Vec<String> {
        [
            "create",
            "-i",
            inv,
            "--name",
            name,
            "-r",
            &recipient,
            "-o",
            out,
            "-j",
            &jobs.to_string(),
            "--per-host",
            &per_host.to_string(),
            "--progress",
            "never",
            "-q",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let https_batched = run(
        &common("inventory.toml", "https-batch", "a.age"),
        dir.path(),
        fleet.root_token(),
    );
    let mut one = common("inventory.toml", "https-one", "b.age");
    one.extend(["--batch".to_string(), "1".to_string()]);
    let https_one = run(&one, dir.path(), fleet.root_token());
    let ssh = run(
        &common(ssh_inv.to_str().unwrap(), "over-ssh", "c.age"),
        dir.path(),
        fleet.root_token(),
    );
    let logins: Vec<u64> = fleet
        .hosts()
        .iter()
        .map(|h| front.logins(h.name()))
        .collect();
    let mut one = common(ssh_inv.to_str().unwrap(), "over-ssh-one", "d.age");
    one.extend(["--batch".to_string(), "1".to_string()]);
    let ssh_one = run(&one, dir.path(), fleet.root_token());
    let targets = hosts * accounts;
    let lanes = jobs.min(hosts * per_host).max(1);
    // A create is 2 calls per target (the listing that proves the name free, the create), one
    // call per request without batches (docs/DESIGN.md §8); batches divide the requests.
    let bound = targets as f64 * 2.0 * latency_ms as f64 / 1000.0 / lanes as f64;
    println!(
        "\n{hosts} hosts × {accounts} accounts, L = {latency_ms} ms, jobs {jobs}, per-host {per_host}: {targets} targets\n"
    );
    println!(
        "| path | wall | bound (2 calls per target, one per request) | ratio | tokenfleet CPU (its ssh included) | peak RSS | ok |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (label, m) in [
        ("HTTPS, WHM batch (default)", &https_batched),
        ("HTTPS, --batch 1", &https_one),
        ("SSH, whmapi1 batch (default)", &ssh),
        ("SSH, --batch 1 (one uapi per call)", &ssh_one),
    ] {
        println!(
            "| {label} | {:.2} s | {:.2} s | {:.2} | {:.2} s | {} MiB | {} |",
            m.wall.as_secs_f64(),
            bound,
            m.wall.as_secs_f64() / bound,
            m.cpu.as_secs_f64(),
            m.rss_kib / 1024,
            if m.ok {
                "yes".to_string()
            } else {
                m.tail.clone()
            }
        );
    }
    let r = |a: &Measured, b: &Measured| {
        (
            a.wall.as_secs_f64() / b.wall.as_secs_f64(),
            a.cpu.as_secs_f64() / b.cpu.as_secs_f64().max(1e-9),
        )
    };
    let (bw, bc) = r(&ssh, &https_batched);
    let (ow, oc) = r(&ssh_one, &https_one);
    println!(
        "\nSSH / HTTPS: batched wall {bw:.2}×, CPU {bc:.2}×; --batch 1 wall {ow:.2}×, CPU {oc:.2}×"
    );
    println!(
        "SSH logins per host in the batched run: min {}, max {} (one handshake per host per run)",
        logins.iter().min().unwrap_or(&0),
        logins.iter().max().unwrap_or(&0)
    );
}

fn run(args: &[String], dir: &std::path::Path, token: &str) -> Measured {
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_tokenfleet"))
        .current_dir(dir)
        .env("WHM_TOKEN", token)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
        .spawn()
        .expect("tokenfleet runs");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: wait4 fills status and usage for our own child (its reaped children included).
    let rc = unsafe { libc::wait4(pid, &mut status, 0, usage.as_mut_ptr()) };
    assert_eq!(rc, pid);
    let wall = started.elapsed();
    std::mem::forget(child);
    // SAFETY: initialised by the wait4 that returned the pid.
    let usage = unsafe { usage.assume_init() };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    let stderr = std::fs::read_to_string(dir.join("stderr")).unwrap_or_default();
    Measured {
        wall,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        rss_kib: usage.ru_maxrss,
        ok: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        tail: stderr.lines().rev().take(2).collect::<Vec<_>>().join(" / "),
    }
}
