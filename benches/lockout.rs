//! The lockout and hang table of issue 10, measured: each case run through a real `tokenfleet`
//! against the simulated fleet, and what the servers saw counted on their side:
//!
//! - `failed logins`: refused logins the host counted (its cPHulk input), and `blocked`:
//!   requests cPHulk refused because the IP was blocked (threshold 4 where noted);
//! - `credential alive`: 1 when the WHM token tokenfleet logs in with survived a revoke by glob;
//! - `check exit`: what `check` said of a run that would fail (0 = "OK", wrongly);
//! - wall times: the whole command, and the healthy hosts' own share (their last answer), so a
//!   hung or dripping host's cost is the difference.
//!
//! `cargo bench --bench lockout` measures the binary built with it; `-- --bin PATH` measures
//! another build (an older commit's `target/debug/tokenfleet`) for a before/after table.

use age::secrecy::ExposeSecret;
use cpanel_sim::{CphulkConfig, Fleet, FleetSpec, InventoryOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BAD: &str = "BADBADBADBADBADBADBADBADBADBAD12";

struct Env {
    bin: PathBuf,
    dir: tempfile::TempDir,
    fleet: Fleet,
    toml: String,
    recipient: String,
    key: String,
}

struct Out {
    code: i32,
    stderr: String,
    secs: f64,
}

impl Env {
    fn start(bin: &Path, spec: FleetSpec) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let fleet = Fleet::start(spec).expect("fleet starts");
        let files = fleet
            .write_inventory(dir.path(), &InventoryOptions::default())
            .unwrap();
        let identity = age::x25519::Identity::generate();
        let key = dir.path().join("key.txt");
        std::fs::write(&key, format!("{}\n", identity.to_string().expose_secret())).unwrap();
        Env {
            bin: bin.to_path_buf(),
            recipient: identity.to_public().to_string(),
            toml: files.toml.to_str().unwrap().to_string(),
            key: key.to_str().unwrap().to_string(),
            dir,
            fleet,
        }
    }

    fn run(&self, args: &[&str], bad: Option<&str>) -> Out {
        let mut cmd = Command::new(&self.bin);
        cmd.current_dir(self.dir.path())
            .env("WHM_TOKEN", self.fleet.root_token())
            .env("BAD_TOKEN", bad.unwrap_or(BAD))
            .env_remove("TOKENFLEET_PASSPHRASE")
            .stdin(Stdio::null())
            .args(args);
        let started = Instant::now();
        let out = cmd.output().unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            secs: started.elapsed().as_secs_f64(),
        }
    }

    /// The inventory with `host`'s credential read from `BAD_TOKEN`.
    fn bad_inventory(&self, host: &str) -> String {
        let text = std::fs::read_to_string(&self.toml).unwrap();
        let needle = format!("name = \"{host}\"\n");
        let text = text.replace(
            &needle,
            &format!("{needle}credential = \"env:BAD_TOKEN\"\n"),
        );
        let path = self.dir.path().join("bad.toml");
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    }

    fn create(&self, inv: &str, name: &str, out: &str, extra: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = [
            "create",
            "-i",
            inv,
            "--name",
            name,
            "-r",
            &self.recipient,
            "-o",
            out,
            "--progress",
            "never",
        ]
        .map(String::from)
        .to_vec();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    }
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn fleet(hosts: usize, accounts: usize) -> FleetSpec {
    FleetSpec::uniform(hosts, accounts)
}

fn row(case: &str, figure: &str, value: String, exit: i32) {
    println!("| {case} | {figure} | {value} | {exit} |");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bin = args
        .iter()
        .position(|a| a == "--bin")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_tokenfleet")));
    println!("binary: {}", bin.display());
    println!("| case | figure | value | exit |");
    println!("|---|---|---|---|");

    // A wrong WHM credential on one host, at --per-host 8.
    let env = Env::start(&bin, fleet(2, 20));
    let inv = env.bad_inventory("web002");
    let r = env.run(
        &strs(&env.create(&inv, "a", "a.age", &["--per-host", "8"])),
        None,
    );
    let s = env.fleet.host("web002").stats();
    row(
        "wrong WHM credential, create --per-host 8",
        "failed logins",
        s.failed_auth.to_string(),
        r.code,
    );

    // The same host and credential: check, create, resume, at a cPHulk threshold of 4.
    let env = Env::start(&bin, fleet(2, 10));
    env.fleet.set_cphulk(CphulkConfig {
        max_failures: 4,
        ..CphulkConfig::default()
    });
    let inv = env.bad_inventory("web002");
    let c = env.run(&["check", "-i", &inv], None);
    let r = env.run(&strs(&env.create(&inv, "b", "b.age", &[])), None);
    let resumed = env.run(&["resume", "b.age.journal", "--identity", &env.key], None);
    let resumed2 = env.run(&["resume", "b.age.journal", "--identity", &env.key], None);
    let s = env.fleet.host("web002").stats();
    row(
        "check + create + 2 resumes, wrong credential, threshold 4",
        "failed logins / blocked",
        format!("{} / {}", s.failed_auth, s.blocked),
        c.code.max(r.code).max(resumed.code).max(resumed2.code),
    );

    // A cPanel port that refuses token logins: rotate verifies there.
    let env = Env::start(&bin, fleet(1, 12));
    let host = env.fleet.host("web001");
    for a in host.accounts() {
        host.add_account_token(&a, "old-1", None);
    }
    let mut f = host.faults();
    f.refuse_cpanel_tokens = true;
    host.set_faults(f);
    let r = env.run(
        &[
            "rotate",
            "-i",
            &env.toml,
            "--name",
            "new-{account}",
            "--revoke",
            "old-*",
            "-r",
            &env.recipient,
            "-o",
            "r.age",
            "--progress",
            "never",
        ],
        None,
    );
    let s = host.stats();
    row(
        "rotate, cPanel port refuses token logins (12 accounts)",
        "failed logins / blocked",
        format!("{} / {}", s.failed_auth, s.blocked),
        r.code,
    );

    // revoke --scope whm --name '*': the credential tokenfleet logs in with.
    let env = Env::start(&bin, fleet(2, 1));
    for h in env.fleet.hosts() {
        h.add_whm_token("root", "intruder");
    }
    let r = env.run(
        &["revoke", "-i", &env.toml, "--scope", "whm", "--name", "*"],
        None,
    );
    let alive = env
        .fleet
        .hosts()
        .iter()
        .filter(|h| h.whm_token_valid("root", env.fleet.root_token()))
        .count();
    row(
        "revoke --scope whm --name '*' (2 hosts)",
        "credential alive on",
        format!("{alive} of 2 hosts"),
        r.code,
    );

    // check when the real run would fail.
    let env = Env::start(&bin, fleet(1, 3));
    let host = env.fleet.host("web001");
    let mut f = host.faults();
    f.deny_uapi_cpanel = true;
    host.set_faults(f);
    let r = env.run(&["check", "-i", &env.toml], None);
    row(
        "check, WHM token refused by uapi_cpanel only",
        "check exit",
        r.code.to_string(),
        r.code,
    );
    let env = Env::start(&bin, fleet(1, 2));
    let text = std::fs::read_to_string(&env.toml).unwrap();
    let text = text.replacen("accounts = [", "accounts = [\"nosuchuser\", ", 1);
    let inv = env.dir.path().join("nosuch.toml");
    std::fs::write(&inv, text).unwrap();
    let r = env.run(&["check", "-i", inv.to_str().unwrap()], None);
    row(
        "check, an account the server does not have",
        "check exit",
        r.code.to_string(),
        r.code,
    );

    // One hung host among healthy ones (timeout 3 s, 3 retries: the defaults but the timeout).
    for (case, hang_accept) in [
        ("create, one host hangs after the request", false),
        ("create, one host accepts and never handshakes", true),
    ] {
        let mut spec = fleet(4, 20);
        spec.hosts[3].faults.latency = Duration::ZERO;
        if hang_accept {
            spec.hosts[3].faults.hang_accept = true;
        } else {
            spec.hosts[3].faults.hang = true;
        }
        let env = Env::start(&bin, spec);
        let r = env.run(
            &strs(&env.create(&env.toml, "h", "h.age", &["--timeout", "3"])),
            None,
        );
        let healthy = Env::start(&bin, fleet(3, 20));
        let h = healthy.run(
            &strs(&healthy.create(&healthy.toml, "h", "h.age", &["--timeout", "3"])),
            None,
        );
        row(
            case,
            "wall s (healthy alone)",
            format!("{:.1} ({:.1})", r.secs, h.secs),
            r.code,
        );
    }

    // A server that drips its answer a byte every 200 ms, --timeout 3.
    let mut spec = fleet(2, 2);
    spec.hosts[1].faults.drip = Duration::from_millis(200);
    let env = Env::start(&bin, spec);
    let r = env.run(
        &strs(&env.create(
            &env.toml,
            "d",
            "d.age",
            &["--timeout", "3", "--retries", "0"],
        )),
        None,
    );
    row(
        "create, one host drips its answer, --timeout 3 --retries 0",
        "wall s",
        format!("{:.1}", r.secs),
        r.code,
    );

    // resume steered: narrower, faster.
    let env = Env::start(&bin, fleet(2, 2));
    let inv = env.bad_inventory("web002");
    env.run(&strs(&env.create(&inv, "s", "s.age", &[])), None);
    let r = env.run(
        &[
            "resume",
            "s.age.journal",
            "--identity",
            &env.key,
            "--limit",
            "web001",
            "--timeout",
            "5",
            "--retries",
            "1",
        ],
        None,
    );
    let refused = r.stderr.contains("unexpected argument");
    row(
        "resume --limit --timeout --retries",
        "accepted",
        (!refused).to_string(),
        r.code,
    );
}
