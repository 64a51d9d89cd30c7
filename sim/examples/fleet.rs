//! Standalone simulated fleet: serves N hosts on loopback until Ctrl-C / SIGTERM and writes a
//! matching inventory, the env file with the WHM token, the test CA and an age key pair, so a person
//! (or the README demo) can point tokenfleet at it.
//!
//! `cargo run -p cpanel-sim --example fleet -- --hosts 20 --accounts 50 --latency 20ms`
//!
//! Each host has its own loopback address and cPanel's ports 2087/2083 (`--addressing shared`:
//! all on 127.0.0.1 with ephemeral ports). More hosts than `--part-size` (2,500) do not fit in one
//! process's open files, so the example then runs itself once per part (`--part K/N`, through
//! `cpanel_sim::parts`), merges the parts' hosts into one inventory and stops them on exit.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use age::secrecy::ExposeSecret;
use anyhow::{Context, bail};
use cpanel_sim::parts::{self, FleetParts};
use cpanel_sim::{
    Addressing, CertMode, FaultsFile, Fleet, FleetSpec, HostReport, InventoryHost,
    InventoryOptions, InventoryTls, Seeded, SshFront, parse_duration, seeds, write_private,
};

const USAGE: &str = "usage: fleet [--hosts N] [--accounts N] [--latency DUR] [--jitter DUR] [--out DIR] [--tls pin|ca] [--faults FILE] [--addressing per-host|shared] [--part-size N] [--stats FILE] [--compromised SEED [--tokens-per-account N]] [--ssh]

  --hosts N       hosts to serve (default 5; above --part-size, served by several processes)
  --accounts N    accounts per host (default 10)
  --latency DUR   added to every request, e.g. 20ms (default 0)
  --jitter DUR    extra random delay 0..DUR (default 0)
  --out DIR       where to write the inventory and keys (default ./demo-fleet)
  --tls pin|ca    self-signed certificates pinned in the inventory (default), or CA-signed + tls_ca
  --faults FILE   TOML fault file: [default] and [hosts.NAME] tables of cpanel_sim::Faults keys,
                  e.g. latency = \"20ms\", down = true, drip = \"1s\", hang_accept = true,
                  refuse_cpanel_tokens = true, deny_uapi_cpanel = true (see cpanel-sim docs)
  --addressing A  per-host: each host on its own 127.x.y.z with ports 2087/2083 (default);
                  shared: all on 127.0.0.1 with two ephemeral ports each (at most --part-size hosts)
  --part-size N   most hosts one simulator process serves (default 2500)
  --stats FILE    on exit, write each host's figures (TLS handshakes, requests, mutations, live
                  tokens, ...) to FILE as JSON
  --compromised SEED
                  plant an incident's tokens before serving (cpanel_sim::seeds): cPanel's own
                  (reverse_trust_*, WebPros_Dashboard), a legit backup-offsite, ordinary account
                  tokens (some expired, some never expiring) and, on some hosts and accounts, the
                  attacker's (WHM_FullRoot, lp<8 hex>, bkl); the same SEED plants the same names.
                  What was planted (no secret) goes to DIR/planted.csv
  --tokens-per-account N
                  ordinary tokens per account with --compromised (default 3)
  --ssh           also serve each host over SSH: one real sshd per host (cpanel_sim::SshFront,
                  files in DIR/ssh), its inventory in DIR/inventory-ssh.toml; one process's
                  fleet only (at most --part-size hosts)
  --part K/N      (internal) serve part K of N for a parent over stdin/stdout";

struct Opts {
    hosts: usize,
    accounts: usize,
    latency: Duration,
    jitter: Duration,
    out: PathBuf,
    tls: InventoryTls,
    faults: Option<PathBuf>,
    addressing: Addressing,
    part_size: usize,
    stats: Option<PathBuf>,
    part: Option<(usize, usize)>,
    compromised: Option<u64>,
    ssh: bool,
    tokens_per_account: Option<usize>,
}

const DEFAULT_TOKENS_PER_ACCOUNT: usize = 3;

fn parse_args() -> anyhow::Result<Opts> {
    let mut o = Opts {
        hosts: 5,
        accounts: 10,
        latency: Duration::ZERO,
        jitter: Duration::ZERO,
        out: PathBuf::from("demo-fleet"),
        tls: InventoryTls::Pin,
        faults: None,
        addressing: Addressing::PerHost,
        part_size: parts::HOSTS_PER_PART,
        stats: None,
        part: None,
        compromised: None,
        ssh: false,
        tokens_per_account: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (flag.clone(), None),
        };
        let mut value = || -> anyhow::Result<String> {
            match inline.clone().or_else(|| args.next()) {
                Some(v) => Ok(v),
                None => bail!("{name} needs a value\n\n{USAGE}"),
            }
        };
        match name.as_str() {
            "--hosts" => {
                o.hosts = value()?
                    .parse()
                    .context("--hosts takes a number, e.g. --hosts 20")?
            }
            "--accounts" => {
                o.accounts = value()?
                    .parse()
                    .context("--accounts takes a number, e.g. --accounts 50")?
            }
            "--latency" => o.latency = parse_duration(&value()?).map_err(anyhow::Error::msg)?,
            "--jitter" => o.jitter = parse_duration(&value()?).map_err(anyhow::Error::msg)?,
            "--out" => o.out = PathBuf::from(value()?),
            "--tls" => {
                o.tls = match value()?.as_str() {
                    "pin" => InventoryTls::Pin,
                    "ca" => InventoryTls::Ca,
                    other => bail!("--tls {other}: use --tls pin or --tls ca"),
                }
            }
            "--faults" => o.faults = Some(PathBuf::from(value()?)),
            "--addressing" => {
                o.addressing = match value()?.as_str() {
                    "per-host" => Addressing::PerHost,
                    "shared" => Addressing::Shared,
                    other => bail!("--addressing {other}: use per-host or shared"),
                }
            }
            "--part-size" => {
                o.part_size = value()?
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .context("--part-size takes a number above 0, e.g. --part-size 2500")?
            }
            "--stats" => o.stats = Some(PathBuf::from(value()?)),
            "--part" => o.part = Some(parts::parse_part(&value()?)?),
            "--ssh" => o.ssh = true,
            "--compromised" => {
                o.compromised = Some(
                    value()?
                        .parse()
                        .context("--compromised takes a seed number, e.g. --compromised 7")?,
                )
            }
            "--tokens-per-account" => {
                o.tokens_per_account = Some(value()?.parse().ok().filter(|n| *n <= 1000).context(
                    "--tokens-per-account takes a number 0 to 1000, e.g. --tokens-per-account 3",
                )?)
            }
            other => bail!("unknown option {other}\n\n{USAGE}"),
        }
    }
    if o.hosts == 0 || o.hosts > 1_000_000 {
        bail!("--hosts {}: use 1 to 1000000", o.hosts);
    }
    if o.addressing == Addressing::Shared && o.hosts > o.part_size {
        bail!(
            "--addressing shared serves one process's hosts: use at most --part-size ({}) hosts, or per-host addressing",
            o.part_size
        );
    }
    if o.tokens_per_account.is_some() && o.compromised.is_none() {
        bail!(
            "--tokens-per-account sets the ordinary tokens of --compromised: add --compromised SEED"
        );
    }
    if o.ssh && o.hosts > o.part_size {
        bail!(
            "--ssh serves one process's fleet: use at most --part-size ({}) hosts",
            o.part_size
        );
    }
    if o.accounts > 9999 {
        bail!("--accounts {}: use 0 to 9999", o.accounts);
    }
    Ok(o)
}

/// The fleet as this process serves it: in-process, or through part processes.
enum Served {
    One(Fleet),
    Parts(FleetParts),
}

impl Served {
    fn first(&self) -> InventoryHost {
        match self {
            Served::One(f) => InventoryHost::of(&f.hosts()[0]),
            Served::Parts(p) => p.hosts()[0].clone(),
        }
    }

    fn stop(self) -> anyhow::Result<Vec<HostReport>> {
        match self {
            Served::One(f) => {
                let r = f.hosts().iter().map(|h| h.report()).collect();
                f.shutdown();
                Ok(r)
            }
            Served::Parts(p) => p.stop(),
        }
    }
}

fn faults_of(o: &Opts) -> anyhow::Result<FaultsFile> {
    let mut faults = match &o.faults {
        Some(p) => FaultsFile::load(p)?,
        None => FaultsFile::empty("command line"),
    };
    faults.base_latency(o.latency, o.jitter);
    Ok(faults)
}

/// Hosts `range` of the fleet with their faults and certificates.
fn spec_of(o: &Opts, range: std::ops::RangeInclusive<usize>) -> anyhow::Result<FleetSpec> {
    let faults = faults_of(o)?;
    let mut spec = FleetSpec::uniform_slice(o.hosts, range, o.accounts);
    spec.cert_mode = match o.tls {
        InventoryTls::Ca => CertMode::CaSigned,
        _ => CertMode::SelfSigned,
    };
    spec.addressing = o.addressing;
    if spec.hosts.len() == o.hosts {
        spec.apply_faults(&faults)?;
    } else {
        // A part: host names are checked against the whole fleet by the parent.
        for h in &mut spec.hosts {
            h.faults = faults.for_host(&h.name)?;
        }
    }
    Ok(spec)
}

fn run() -> anyhow::Result<()> {
    let o = parse_args()?;
    if let Some((k, n)) = o.part {
        let spec = spec_of(&o, parts::part_range(o.hosts, k, n))?;
        // Each part plants on its own hosts; the plan depends on host names only, so the
        // parent's planted.csv (from plan_compromised) is what the parts planted.
        return parts::serve_part_with(spec, |fleet| {
            if let Some(seed) = o.compromised {
                cpanel_sim::seed_compromised(fleet, seed, tokens_per_account(&o));
            }
        });
    }
    let _ = cpanel_sim::raise_fd_limit();
    // Every fault file's host names are checked against the whole fleet before anything starts.
    FleetSpec::uniform(o.hosts, 0).apply_faults(&faults_of(&o)?)?;

    std::fs::create_dir_all(&o.out).with_context(|| format!("creating {}", o.out.display()))?;
    let ready = o.out.join("ready");
    let _ = std::fs::remove_file(&ready);

    let started = std::time::Instant::now();
    let opts = InventoryOptions {
        tls: o.tls,
        ..InventoryOptions::default()
    };
    let n_parts = parts::part_count(o.hosts, o.part_size);
    let mut ssh: Option<(SshFront, PathBuf)> = None;
    let (served, files) = if n_parts == 1 {
        let fleet = Fleet::start(spec_of(&o, 1..=o.hosts)?)?;
        if let Some(seed) = o.compromised {
            let seeded = cpanel_sim::seed_compromised(&fleet, seed, tokens_per_account(&o));
            write_planted(&o, &seeded)?;
        }
        let files = fleet.write_inventory(&o.out, &opts);
        if o.ssh {
            if let Some(why) = SshFront::unavailable() {
                bail!("--ssh: {why}");
            }
            let front = SshFront::start(&fleet, &o.out.join("ssh"))?;
            let path = front
                .write_inventory(&fleet, &o.out, true)
                .with_context(|| format!("writing the SSH inventory into {}", o.out.display()))?;
            ssh = Some((front, path));
        }
        (Served::One(fleet), files)
    } else {
        let exe = std::env::current_exe().context("finding this program to run its parts")?;
        let args: Vec<String> = std::env::args().skip(1).collect();
        let commands = (1..=n_parts)
            .map(|k| {
                let mut c = std::process::Command::new(&exe);
                c.args(&args).arg("--part").arg(format!("{k}/{n_parts}"));
                c
            })
            .collect();
        if let Some(seed) = o.compromised {
            let spec = FleetSpec::uniform(o.hosts, o.accounts);
            let seeded = seeds::plan_compromised(&spec, seed, tokens_per_account(&o));
            write_planted(&o, &seeded)?;
        }
        let fleet = FleetParts::start(commands, None)?;
        let files = fleet.write_inventory(&o.out, &opts);
        (Served::Parts(fleet), files)
    };
    let files = files.with_context(|| format!("writing the inventory into {}", o.out.display()))?;

    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let created = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ");
    let key_text = format!(
        "# created: {created}\n# public key: {recipient}\n{}\n",
        identity.to_string().expose_secret()
    );
    let identity_path = o.out.join("identity.txt");
    let recipient_path = o.out.join("recipient.txt");
    write_private(&identity_path, key_text.as_bytes())?;
    std::fs::write(&recipient_path, format!("{recipient}\n"))?;
    std::fs::write(&ready, format!("{}\n", std::process::id()))?;
    let dir = o.out.display();
    let first = served.first();
    println!(
        "cpanel-sim: {} hosts x {} accounts on {} ({} certificates), started in {:.1?}",
        o.hosts,
        o.accounts,
        match (o.addressing, n_parts) {
            (Addressing::Shared, _) => "127.0.0.1".to_string(),
            (Addressing::PerHost, 1) => "their own loopback addresses, ports 2087/2083".to_string(),
            (Addressing::PerHost, n) =>
                format!("their own loopback addresses, ports 2087/2083, in {n} processes"),
        },
        match o.tls {
            InventoryTls::Ca => "CA-signed",
            _ => "self-signed, pinned",
        },
        started.elapsed()
    );
    println!(
        "  first host  {}: WHM https://{a}:{}, cPanel https://{a}:{}",
        first.name,
        first.whm_port,
        first.cpanel_port,
        a = first.address
    );
    println!(
        "  inventory   {} (and {})",
        files.toml.display(),
        files.csv.display()
    );
    println!(
        "  WHM token   {} (root, valid on every host)",
        files.env.display()
    );
    println!("  test CA     {}", files.ca.display());
    if let Some((front, path)) = &ssh {
        println!(
            "  over SSH    {} (one sshd per host, login {}, key {})",
            path.display(),
            front.login(),
            front.client_key().display()
        );
    }
    println!(
        "  age keys    {} / {}",
        identity_path.display(),
        recipient_path.display()
    );
    if o.latency > Duration::ZERO || o.jitter > Duration::ZERO || o.faults.is_some() {
        println!(
            "  faults      latency {:?} + jitter {:?}{}",
            o.latency,
            o.jitter,
            o.faults
                .as_ref()
                .map(|p| format!(", file {}", p.display()))
                .unwrap_or_default()
        );
    }
    if let Some(seed) = o.compromised {
        println!(
            "  compromised seed {seed}, {} ordinary tokens per account: planted tokens in {}",
            tokens_per_account(&o),
            o.out.join("planted.csv").display()
        );
    }
    println!();
    println!("Try:");
    let tf = tokenfleet_command();
    println!("  set -a; . {dir}/fleet.env; set +a");
    println!("  {tf} check  -i {dir}/inventory.toml");
    println!(
        "  {tf} create -i {dir}/inventory.toml --name 'ci-{{date}}' -R {dir}/recipient.txt -o handoff.age"
    );
    println!("  {tf} open handoff.age --identity {dir}/identity.txt");
    if o.compromised.is_some() {
        println!("  {tf} audit  -i {dir}/inventory.toml");
    }
    println!();
    println!("Serving until Ctrl-C (or SIGTERM).");

    wait_for_signal()?;
    let _ = std::fs::remove_file(&ready);
    drop(ssh);
    let reports = served.stop()?;
    if let Some(path) = &o.stats {
        std::fs::write(path, serde_json::to_string_pretty(&reports)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let (mut requests, mut failed, mut blocked) = (0, 0, 0);
    for r in &reports {
        requests += r.requests;
        failed += r.failed_auth;
        blocked += r.blocked;
    }
    eprintln!(
        "cpanel-sim: stopped after {requests} requests ({failed} failed logins, {blocked} refused by cPHulk)"
    );
    Ok(())
}

fn tokens_per_account(o: &Opts) -> usize {
    o.tokens_per_account.unwrap_or(DEFAULT_TOKENS_PER_ACCOUNT)
}

/// What `--compromised` planted, for a person to check an audit against (no secret in it).
fn write_planted(o: &Opts, seeded: &Seeded) -> anyhow::Result<()> {
    let path = o.out.join("planted.csv");
    std::fs::write(&path, seeded.to_csv()).with_context(|| format!("writing {}", path.display()))
}

fn wait_for_signal() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut term = signal(SignalKind::terminate())?;
            tokio::select! {
                r = tokio::signal::ctrl_c() => r,
                _ = term.recv() => Ok(()),
            }
        }
        #[cfg(not(unix))]
        {
            tokio::signal::ctrl_c().await
        }
    })?;
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fleet: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// How to run tokenfleet from here, so the printed commands work as printed: `tokenfleet` when
/// it is installed (on PATH), else the binary built beside this example
/// (`target/release/tokenfleet`), else through cargo.
fn tokenfleet_command() -> String {
    let on_path = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("tokenfleet").is_file()));
    if on_path {
        return "tokenfleet".into();
    }
    // This example is target/<profile>/examples/fleet; the binary is target/<profile>/tokenfleet.
    let built = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("tokenfleet")))
        .filter(|p| p.is_file());
    match built {
        Some(p) => {
            let cwd = std::env::current_dir().unwrap_or_default();
            p.strip_prefix(&cwd).unwrap_or(&p).display().to_string()
        }
        None => "cargo run --release --".into(),
    }
}
