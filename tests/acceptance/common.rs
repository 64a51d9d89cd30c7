//! Shared fixtures: a simulated fleet in a temp folder, the binary, decryption of the handoff, and
//! the secret scan every test ends with.

#![allow(dead_code)]

use age::secrecy::ExposeSecret;
use cpanel_sim::{Fleet, FleetSpec, InventoryFiles, InventoryOptions, InventoryTls};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A running fleet, a temp folder with its inventory, and an age key for the handoff.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub fleet: Fleet,
    pub files: InventoryFiles,
    pub identity: age::x25519::Identity,
    pub identity_file: PathBuf,
    pub recipient: String,
    /// Every secret the test knows of (WHM root token, seeded tokens, minted tokens): none may
    /// appear in any output.
    pub secrets: Vec<String>,
}

impl Env {
    pub fn start(spec: FleetSpec) -> Env {
        Env::start_with(spec, &InventoryOptions::default())
    }

    pub fn start_with(spec: FleetSpec, opts: &InventoryOptions) -> Env {
        let dir = tempfile::tempdir().expect("temp dir");
        let fleet = Fleet::start(spec).expect("fleet starts");
        let files = fleet
            .write_inventory(dir.path(), opts)
            .expect("inventory written");
        let identity = age::x25519::Identity::generate();
        let recipient = identity.to_public().to_string();
        let identity_file = dir.path().join("key.txt");
        std::fs::write(
            &identity_file,
            format!("{}\n", identity.to_string().expose_secret()),
        )
        .unwrap();
        let secrets = vec![fleet.root_token().to_string()];
        Env {
            dir,
            fleet,
            files,
            identity,
            identity_file,
            recipient,
            secrets,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Run tokenfleet with the fleet's WHM token in the environment, progress off.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_env(args, &[])
    }

    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokenfleet"));
        cmd.current_dir(self.dir.path())
            .env("WHM_TOKEN", self.fleet.root_token())
            .env_remove("TOKENFLEET_PASSPHRASE")
            .stdin(std::process::Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.args(args);
        let out = cmd.output().expect("tokenfleet runs");
        Run::from(out)
    }

    /// Decrypt a handoff with the test's identity, through the age crate's own reader.
    pub fn open_handoff(&self, path: &Path) -> Vec<BTreeMap<String, String>> {
        let bytes = std::fs::read(path).expect("handoff exists");
        let armored = age::armor::ArmoredReader::new(&bytes[..]);
        let decryptor = age::Decryptor::new(armored).expect("an age file");
        let mut reader = decryptor
            .decrypt(std::iter::once(&self.identity as &dyn age::Identity))
            .expect("decrypts with the test identity");
        let mut plain = String::new();
        reader.read_to_string(&mut plain).unwrap();
        let mut rdr = csv::Reader::from_reader(plain.as_bytes());
        let headers = rdr.headers().unwrap().clone();
        assert_eq!(
            headers.iter().collect::<Vec<_>>(),
            [
                "host",
                "account",
                "token_name",
                "token",
                "url",
                "created_at",
                "expires_at"
            ]
        );
        csv_maps(&plain)
    }

    /// Every file under the temp folder except sealed outputs, as bytes.
    pub fn plaintext_files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![self.dir.path().to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_none_or(|x| x != "age") && !is_credential_input(&p) {
                    out.push((p.clone(), std::fs::read(&p).unwrap()));
                }
            }
        }
        out
    }

    /// No known secret in `runs`' stdout/stderr, nor in any plaintext file of the temp folder:
    /// the test's, `extra`, and every one the fleet knows (credentials, live and revoked tokens).
    pub fn assert_no_secret_leaked(&self, runs: &[&Run], extra: &[String]) {
        let fleet = self.fleet.known_secrets();
        let secrets: Vec<&String> = self
            .secrets
            .iter()
            .chain(extra)
            .chain(&fleet)
            .filter(|s| s.len() >= 16)
            .collect();
        assert!(!secrets.is_empty());
        for run in runs {
            for s in &secrets {
                assert!(
                    !run.stdout.contains(s.as_str()),
                    "a secret leaked to stdout"
                );
                assert!(
                    !run.stderr.contains(s.as_str()),
                    "a secret leaked to stderr"
                );
            }
        }
        for (path, bytes) in self.plaintext_files() {
            let text = String::from_utf8_lossy(&bytes);
            for s in &secrets {
                assert!(
                    !text.contains(s.as_str()),
                    "a secret leaked into {}",
                    path.display()
                );
            }
        }
    }

    pub fn toml(&self) -> &str {
        self.files.toml.to_str().unwrap()
    }

    pub fn csv(&self) -> &str {
        self.files.csv.to_str().unwrap()
    }

    /// Write an `api = "cpanel"` inventory where every account authenticates with its own
    /// token (seeded on the simulator as `bootstrap`, kept in a 0600 `file:` credential).
    /// Returns the seeded secrets.
    pub fn cpanel_inventory(&self, file_name: &str) -> Vec<String> {
        let mut inv = String::from("[defaults]\napi = \"cpanel\"\n");
        let mut seeded = Vec::new();
        for (hi, host) in self.fleet.hosts().iter().enumerate() {
            inv.push_str(&format!(
                "\n[[hosts]]\nname = \"{}\"\naddress = \"127.0.0.1\"\nwhm_port = {}\ncpanel_port = {}\ntls_pin = \"{}\"\naccounts = [\n",
                host.name(),
                host.whm_port(),
                host.cpanel_port(),
                host.cert_pin()
            ));
            for (ai, account) in host.accounts().iter().enumerate() {
                let secret = host.add_account_token(account, "bootstrap", None);
                let file = self.path(&format!("cred-{hi}-{ai}"));
                std::fs::write(&file, format!("{secret}\n")).unwrap();
                let mut perm = std::fs::metadata(&file).unwrap().permissions();
                std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o600);
                std::fs::set_permissions(&file, perm).unwrap();
                inv.push_str(&format!(
                    "  {{ user = \"{account}\", credential = \"file:cred-{hi}-{ai}\" }},\n"
                ));
                seeded.push(secret);
            }
            inv.push_str("]\n");
        }
        std::fs::write(self.path(file_name), inv).unwrap();
        seeded
    }

    pub fn total_requests(&self) -> u64 {
        self.fleet
            .hosts()
            .iter()
            .map(|h| h.stats().total_requests)
            .sum()
    }
}

/// Files the tests write on purpose with a secret in them: tokenfleet's credential inputs.
fn is_credential_input(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name == "fleet.env" || name.starts_with("cred-")
}

/// A finished tokenfleet process.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    #[track_caller]
    pub fn expect(&self, code: i32) -> &Run {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// The JSON report written by `--report`.
pub fn read_report(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("report written")).expect("report is JSON")
}

pub fn statuses(report: &serde_json::Value) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for t in report["targets"].as_array().unwrap() {
        *m.entry(t["status"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    m
}

pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

pub fn small_fleet(hosts: usize, accounts: usize) -> FleetSpec {
    FleetSpec::uniform(hosts, accounts)
}

pub fn pin_inventory() -> InventoryOptions {
    InventoryOptions {
        tls: InventoryTls::Pin,
        ..InventoryOptions::default()
    }
}

/// A token on the fleet, as the invariants see it: (host, owner, token name), where the owner
/// is an account or `whm:USER` for a WHM user's API token.
pub type TokenKey = (String, String, String);

/// Every token live on the fleet's accounts and its root WHM user right now.
pub fn live_tokens(env: &Env) -> BTreeSet<TokenKey> {
    let mut out = BTreeSet::new();
    for h in env.fleet.hosts() {
        for a in h.accounts() {
            for t in h.account_tokens(&a) {
                out.insert((h.name().to_string(), a.clone(), t.name));
            }
        }
        for t in h.whm_tokens("root") {
            out.insert((h.name().to_string(), "whm:root".into(), t.name));
        }
    }
    out
}

/// The rows of a handoff file or of a journal (through `tokenfleet open`, which recovers every
/// intact record of a damaged one), as `host, account, token_name, token…` maps. A file that is
/// not there holds nothing.
pub fn held_rows(env: &Env, file: &str) -> Vec<BTreeMap<String, String>> {
    if !env.path(file).exists() {
        return Vec::new();
    }
    if !file.ends_with(".journal") {
        return env.open_handoff(&env.path(file));
    }
    open_journal(env, file).1
}

/// `tokenfleet open JOURNAL --identity KEY --format csv`: the run, and the rows it printed.
pub fn open_journal(env: &Env, file: &str) -> (Run, Vec<BTreeMap<String, String>>) {
    let key = env.identity_file.to_str().unwrap().to_string();
    let opened = env.run(&["open", file, "--identity", &key, "--format", "csv"]);
    let mut rdr = csv::Reader::from_reader(opened.stdout.as_bytes());
    let rows = match rdr.headers().cloned() {
        Ok(headers) => rdr
            .records()
            .filter_map(Result::ok)
            .map(|r| {
                headers
                    .iter()
                    .zip(r.iter())
                    .map(|(h, v)| (h.to_string(), v.to_string()))
                    .collect()
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    (opened, rows)
}

/// The promises, checked on the servers' final state after a test's runs:
/// 1. every secret handed off (`held`: rows of the handoffs and journals) still works: no later
///    run revoked a token someone holds;
/// 2. every token live now that was not there `before` is held by a row whose secret works, or
///    is named (host, owner and token name) in the stderr of one of `runs` (the summary's
///    "needs a look"): no live token that nobody holds and nobody was told about.
///
/// Returns the live tokens that are named but not held (for the test to assert on).
pub fn assert_promises(
    env: &Env,
    before: &BTreeSet<TokenKey>,
    held: &[BTreeMap<String, String>],
    runs: &[&Run],
) -> Vec<TokenKey> {
    let works = |row: &BTreeMap<String, String>| {
        let host = env.fleet.host(&row["host"]);
        let account = &row["account"];
        host.token_valid(account, &row["token"]) || host.whm_token_valid(account, &row["token"])
    };
    let mut held_keys = BTreeSet::new();
    for row in held {
        let key = (
            row["host"].clone(),
            row["account"].clone(),
            row["token_name"].clone(),
        );
        // A row superseded by a later one of the same target (a resume that revoked an
        // unreadable secret and made it again) need not work; the last one must.
        let last = held
            .iter()
            .rev()
            .find(|r| r["host"] == key.0 && r["account"] == key.1 && r["token_name"] == key.2)
            .unwrap();
        if std::ptr::eq(last, row) {
            assert!(works(row), "{key:?}: a handed-off secret no longer works");
        }
        held_keys.insert(key.clone());
        held_keys.insert((key.0, format!("whm:{}", key.1), key.2));
    }
    let mut named = Vec::new();
    for key in live_tokens(env).difference(before) {
        if held_keys.contains(key) {
            continue;
        }
        let (host, owner, name) = key;
        let owner = owner.trim_start_matches("whm:");
        let told = runs.iter().any(|r| {
            r.stderr.lines().any(|l| {
                l.contains(host.as_str()) && l.contains(owner) && l.contains(name.as_str())
            })
        });
        assert!(
            told,
            "{key:?}: a live token that no handoff or journal holds and no run named"
        );
        named.push(key.clone());
    }
    named
}

// Background runs: start, signal, wait (bounded), read back.

/// A fleet slow enough (latency per request) that a run can be stopped part-way.
pub fn slow_fleet(hosts: usize, accounts: usize, latency_ms: u64) -> FleetSpec {
    let mut spec = small_fleet(hosts, accounts);
    for h in &mut spec.hosts {
        h.faults.latency = Duration::from_millis(latency_ms);
    }
    spec
}

/// Start tokenfleet in the background (stdout/stderr to files in the temp folder).
pub fn spawn(env: &Env, args: &[&str], tag: &str) -> Child {
    spawn_env(env, args, &[], tag)
}

/// [`spawn`] with extra environment variables.
pub fn spawn_env(env: &Env, args: &[&str], vars: &[(&str, &str)], tag: &str) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokenfleet"));
    cmd.current_dir(env.dir.path())
        .env("WHM_TOKEN", env.fleet.root_token())
        .env_remove("TOKENFLEET_PASSPHRASE")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(env.path(&format!("{tag}.stdout"))).unwrap())
        .stderr(std::fs::File::create(env.path(&format!("{tag}.stderr"))).unwrap());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.args(args).spawn().expect("tokenfleet starts")
}

/// Lines of a journal of kind `kind`.
pub fn journal_events(path: &Path, kind: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["kind"] == kind)
        .collect()
}

/// Wait (bounded: 200 polls of 25 ms at most, and never past the process's own end) until the
/// journal holds at least `n` created records; then deliver `signal`. Returns how many it held.
pub fn signal_after_created(child: &mut Child, journal: &Path, n: usize, signal: i32) -> usize {
    for _ in 0..2000 {
        let created = journal_events(journal, "created").len();
        if created >= n {
            unsafe { libc::kill(child.id() as i32, signal) };
            return created;
        }
        if child.try_wait().unwrap().is_some() {
            panic!("the run ended before {n} tokens were journaled: make the fleet slower");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("the journal never reached {n} created records");
}

/// Wait for the child, bounded; kill it if it overstays.
pub fn wait_bounded(child: &mut Child) -> i32 {
    wait_within(child, Duration::from_secs(120)).expect("tokenfleet did not end")
}

/// The exit code (128 + signal for a killed run), or `None` (the run killed) past `limit`.
pub fn wait_within(child: &mut Child, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status.code().unwrap_or_else(|| {
                128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
            }));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The report's targets of `host`.
pub fn targets_of<'a>(report: &'a serde_json::Value, host: &str) -> Vec<&'a serde_json::Value> {
    report["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["host"] == host)
        .collect()
}

pub fn read(env: &Env, tag: &str) -> Run {
    Run {
        code: 0,
        stdout: std::fs::read_to_string(env.path(&format!("{tag}.stdout"))).unwrap_or_default(),
        stderr: std::fs::read_to_string(env.path(&format!("{tag}.stderr"))).unwrap_or_default(),
    }
}

/// A real, small filesystem (tmpfs of `kib` KiB) mounted at `DIR/disk`, for a disk that fills
/// up under a run: every write fails with ENOSPC once it is full, the handoff's as much as the
/// journal's. Needs root (CAP_SYS_ADMIN); `None` where mounting is not allowed, and the caller
/// falls back to a per-file size cap. Unmounted on drop.
pub struct SmallDisk {
    pub dir: PathBuf,
}

impl SmallDisk {
    pub fn mount(env: &Env, kib: u64) -> Option<SmallDisk> {
        let dir = env.path("disk");
        std::fs::create_dir_all(&dir).ok()?;
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={kib}k,mode=0700"),
                "tmpfs",
            ])
            .arg(&dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("note: cannot mount a small tmpfs here (needs root); using a file-size cap");
            let _ = std::fs::remove_dir(&dir);
            return None;
        }
        Some(SmallDisk { dir })
    }

    /// Give the full disk room again (the operator freed space).
    pub fn grow(&self, kib: u64) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={kib}k")])
            .arg(&self.dir)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}

/// `create` of `name` into `out`, progress off, 4 jobs, 2 per host: the run most tests drive.
pub fn create_cmd<'a>(env: &'a Env, name: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "create",
        "-i",
        env.toml(),
        "--name",
        name,
        "-r",
        &env.recipient,
        "-o",
        out,
        "--progress",
        "never",
        "-j",
        "4",
        "--per-host",
        "2",
    ]
}

/// A credential no simulated host accepts (for `BAD_TOKEN` in [`with_bad_credential`]).
pub const BAD: &str = "BADBADBADBADBADBADBADBADBADBAD12";

/// The TOML inventory with `host`'s credential read from `env:BAD_TOKEN` instead, written as
/// `bad.toml`; returns that name.
pub fn with_bad_credential(env: &Env, host: &str) -> String {
    let text = std::fs::read_to_string(&env.files.toml).unwrap();
    let needle = format!("name = \"{host}\"\n");
    assert!(text.contains(&needle));
    let text = text.replace(
        &needle,
        &format!("{needle}credential = \"env:BAD_TOKEN\"\n"),
    );
    std::fs::write(env.path("bad.toml"), text).unwrap();
    "bad.toml".into()
}

/// CSV text (with its header) as one map of header to value per row.
pub fn csv_maps(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    let headers = rdr.headers().unwrap().clone();
    rdr.records()
        .map(|r| {
            let r = r.unwrap();
            headers
                .iter()
                .zip(r.iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}
