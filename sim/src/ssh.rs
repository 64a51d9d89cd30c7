//! The simulated fleet's SSH side: one real OpenSSH `sshd` per host, on the host's own loopback
//! address, whose only command is a small bash shim that hands the SSH command line to this
//! process over loopback TCP and prints the answer. tokenfleet's `api = "ssh"` runs the system
//! `ssh` client against these, so its tests exercise real handshakes, host-key checks,
//! ControlMaster multiplexing and lost connections, while every command acts on the same state
//! as the HTTPS ports ([`crate::cli`] runs it). No extra binary: tokenfleet's tests cannot build
//! the simulator's binaries, and bash's `/dev/tcp` is all the shim needs.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::cli::{run_cli, split_line};
use crate::server::lock;
use crate::{Fleet, SimHost};

const SSHD: &str = "/usr/sbin/sshd";
const SSH_KEYGEN: &str = "ssh-keygen";
const BASH: &str = "/bin/bash";
/// How long an sshd may take to say it listens.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// The most a shim's request (four NUL-terminated fields) may be.
const MAX_REQUEST: usize = 1 << 20;

/// One command line an SSH front ran, as sshd handed it over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CliRecord {
    /// `$SSH_ORIGINAL_COMMAND`, verbatim.
    pub line: String,
    /// Its words, split as `sh` would (empty when it could not be split safely).
    pub argv: Vec<String>,
    /// Who logged in (`id -un` on the server side).
    pub login: String,
    /// `$SSH_CONNECTION` (`CLIENT_IP CLIENT_PORT SERVER_IP SERVER_PORT`): the same for every
    /// command of one SSH connection, so distinct values count the connections that ran commands.
    pub connection: String,
}

/// One host's sshd and its files.
struct SshHost {
    name: String,
    address: String,
    port: Mutex<u16>,
    config: PathBuf,
    log: PathBuf,
    host_key: PathBuf,
    authorized_keys: PathBuf,
    fingerprint: Mutex<String>,
    child: Mutex<Option<Child>>,
}

/// What the shim listener's threads share with the front.
struct Shared {
    hosts: BTreeMap<String, SimHost>,
    /// The fleet's root WHM token (any form a spec gives it).
    root_token: String,
    records: Mutex<BTreeMap<String, Vec<CliRecord>>>,
    violations: Mutex<Vec<String>>,
    stop: AtomicBool,
}

/// A real sshd per host of a [`Fleet`] (see the module doc). Dropping it kills every sshd and
/// the sessions they serve; the files stay in the test's directory.
pub struct SshFront {
    login: String,
    client_key: PathBuf,
    known_hosts: PathBuf,
    authorized: String,
    shim: PathBuf,
    hosts: Vec<SshHost>,
    shared: Arc<Shared>,
    front_port: u16,
    accept: Option<std::thread::JoinHandle<()>>,
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
}

fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A new ed25519 key without passphrase at `path` (and `path.pub`); returns its fingerprint.
fn keygen(path: &Path, comment: &str) -> anyhow::Result<String> {
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(pub_path(path));
    run(Command::new(SSH_KEYGEN)
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path))?;
    fingerprint_of(&pub_path(path))
}

fn pub_path(key: &Path) -> PathBuf {
    let mut p = key.as_os_str().to_owned();
    p.push(".pub");
    PathBuf::from(p)
}

/// `SHA256:…` exactly as `ssh-keygen -lf` prints it.
fn fingerprint_of(pub_key: &Path) -> anyhow::Result<String> {
    let out = run(Command::new(SSH_KEYGEN).arg("-lf").arg(pub_key))?;
    out.split_whitespace()
        .nth(1)
        .map(str::to_string)
        .with_context(|| format!("ssh-keygen -lf {}: odd output {out:?}", pub_key.display()))
}

/// `ssh-ed25519 AAAA…` of a public key file.
fn key_type_and_blob(pub_key: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(pub_key)?;
    let mut it = text.split_whitespace();
    match (it.next(), it.next()) {
        (Some(t), Some(b)) => Ok(format!("{t} {b}")),
        _ => bail!("{}: not an OpenSSH public key", pub_key.display()),
    }
}

/// Single-quoted for `sh -c` (sshd runs `ForceCommand` through the login's shell).
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn free_port(address: &str) -> anyhow::Result<u16> {
    let l = TcpListener::bind((address, 0)).with_context(|| format!("binding {address}:0"))?;
    Ok(l.local_addr()?.port())
}

fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

fn count_lines(log: &Path, needle: &str) -> u64 {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .count() as u64
}

/// Every process below `root` (children, their children, …), deepest last.
fn descendants(root: u32) -> Vec<u32> {
    let mut parent_of: Vec<(u32, u32)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // pid (comm) state ppid …: comm may hold spaces, so read after its last ')'.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for &(pid, ppid) in &parent_of {
            if ppid == p && !out.contains(&pid) {
                out.push(pid);
                frontier.push(pid);
            }
        }
    }
    out
}

fn kill(pid: u32, signal: i32) {
    // SAFETY: kill(2) on a process id this front started (or one of its descendants).
    unsafe {
        libc::kill(pid as libc::pid_t, signal);
    }
}

impl SshHost {
    fn write_config(&self, port: u16, shim: &Path) -> anyhow::Result<()> {
        let force = format!(
            "{BASH} {} {}",
            sh_quote(&shim.display().to_string()),
            self.name
        );
        let config = format!(
            "# Written by cpanel-sim for host {name}: its only command is the simulator's shim.\n\
             ListenAddress {addr}:{port}\n\
             HostKey {key}\n\
             PidFile none\n\
             AuthorizedKeysFile {auth}\n\
             StrictModes no\n\
             PubkeyAuthentication yes\n\
             AuthenticationMethods publickey\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             UsePAM no\n\
             PermitRootLogin prohibit-password\n\
             PermitUserEnvironment no\n\
             MaxSessions 10\n\
             MaxStartups 100:30:200\n\
             LogLevel VERBOSE\n\
             ForceCommand {force}\n\
             AllowAgentForwarding no\n\
             AllowTcpForwarding no\n\
             AllowStreamLocalForwarding no\n\
             X11Forwarding no\n\
             PermitTunnel no\n\
             PrintMotd no\n\
             PrintLastLog no\n\
             UseDNS no\n\
             # bash run by sshd reads the login's ~/.bashrc when SHLVL says it is a top shell;\n\
             # a busy one (pyenv init: ~100 processes) would be 100 ms of CPU per command.\n\
             SetEnv SHLVL=1\n",
            name = self.name,
            addr = self.address,
            key = self.host_key.display(),
            auth = self.authorized_keys.display(),
        );
        std::fs::write(&self.config, config)
            .with_context(|| format!("writing {}", self.config.display()))
    }

    /// Start sshd on `port` and wait until it listens. `Ok(false)`: the port was taken.
    fn spawn(&self, port: u16, shim: &Path) -> anyhow::Result<bool> {
        self.write_config(port, shim)?;
        let start_len = std::fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let mut child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {SSHD} for {}", self.name))?;
        let deadline = Instant::now() + START_TIMEOUT;
        let listening = format!("Server listening on {} port {port}", self.address);
        loop {
            let text = std::fs::read(&self.log).unwrap_or_default();
            let new =
                String::from_utf8_lossy(&text[(start_len as usize).min(text.len())..]).into_owned();
            if new.contains(&listening) {
                *lock(&self.port) = port;
                *lock(&self.child) = Some(child);
                return Ok(true);
            }
            let exited = child.try_wait()?.is_some();
            if new.contains("Address already in use") || new.contains("Cannot bind any address") {
                let _ = child.kill();
                let _ = child.wait();
                return Ok(false);
            }
            if exited || Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "sshd for {} on {}:{port} did not start listening within {START_TIMEOUT:?}; the end of {}:\n{}",
                    self.name,
                    self.address,
                    self.log.display(),
                    log_tail(&self.log)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop the listening sshd; `sessions`: also every connection it serves.
    fn stop(&self, sessions: bool) {
        if let Some(mut child) = lock(&self.child).take() {
            if sessions {
                for pid in descendants(child.id()) {
                    kill(pid, libc::SIGKILL);
                }
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Restart on the same port (sshd sets SO_REUSEADDR; a moment's retry covers a slow exit).
    fn restart(&self, shim: &Path) -> anyhow::Result<()> {
        let port = *lock(&self.port);
        for _ in 0..50 {
            if self.spawn(port, shim)? {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!(
            "sshd for {} cannot listen on {}:{port} again: the port was taken",
            self.name,
            self.address
        )
    }
}

impl SshFront {
    /// Why not, when sshd, ssh, ssh-keygen or bash are missing (tests skip with this message
    /// outside CI). The `ssh` client is the tests' (and tokenfleet's), not the front's.
    pub fn unavailable() -> Option<String> {
        let mut missing = Vec::new();
        if !Path::new(SSHD).is_file() {
            missing.push(SSHD.to_string());
        }
        for p in ["ssh", SSH_KEYGEN] {
            if !on_path(p) {
                missing.push(p.to_string());
            }
        }
        if !Path::new(BASH).is_file() {
            missing.push(BASH.to_string());
        }
        if missing.is_empty() {
            None
        } else {
            Some(format!(
                "cpanel-sim's SSH front needs OpenSSH's sshd, ssh and ssh-keygen and bash; missing: {} (Debian: apt-get install openssh-server openssh-client)",
                missing.join(", ")
            ))
        }
    }

    /// One sshd per host of `fleet` (none for a host whose faults say `down`: connections to its
    /// port are refused), listening on the host's address on an ephemeral port, with its own
    /// ed25519 host key, accepting one client key generated here for the user running this
    /// process. Files under `dir`: `client_ed25519` (0600), `known_hosts`, `ssh-shim.bash`, and
    /// per host `HOST/` with `sshd_config`, `ssh_host_ed25519_key`, `authorized_keys`, `sshd.log`.
    pub fn start(fleet: &Fleet, dir: &Path) -> anyhow::Result<SshFront> {
        if let Some(why) = SshFront::unavailable() {
            bail!(why);
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let dir = dir
            .canonicalize()
            .with_context(|| format!("resolving {}", dir.display()))?;
        let login = run(Command::new("id").arg("-un"))?.trim().to_string();
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 && !Path::new("/run/sshd").is_dir() {
            std::fs::create_dir_all("/run/sshd").context("creating /run/sshd")?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions("/run/sshd", std::fs::Permissions::from_mode(0o755))?;
        }
        let client_key = dir.join("client_ed25519");
        keygen(&client_key, "tokenfleet-tests@cpanel-sim")?;
        let authorized = format!("{}\n", key_type_and_blob(&pub_path(&client_key))?);

        let listener = TcpListener::bind("127.0.0.1:0").context("binding the shim listener")?;
        let front_port = listener.local_addr()?.port();
        let shim = dir.join("ssh-shim.bash");
        std::fs::write(&shim, shim_script(front_port))?;

        let shared = Arc::new(Shared {
            hosts: fleet
                .hosts()
                .iter()
                .map(|h| (h.name().to_string(), h.clone()))
                .collect(),
            root_token: fleet.root_token().to_string(),
            records: Mutex::new(BTreeMap::new()),
            violations: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let accept = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("cpanel-sim-ssh".to_string())
                .spawn(move || accept_loop(listener, shared))?
        };
        let mut front = SshFront {
            login,
            client_key,
            known_hosts: dir.join("known_hosts"),
            authorized,
            shim,
            hosts: Vec::new(),
            shared,
            front_port,
            accept: Some(accept),
        };
        let mut known = String::new();
        for h in fleet.hosts() {
            let hdir = dir.join(h.name());
            std::fs::create_dir_all(&hdir)?;
            let host_key = hdir.join("ssh_host_ed25519_key");
            let fingerprint = keygen(&host_key, &format!("root@{}", h.name()))?;
            let authorized_keys = hdir.join("authorized_keys");
            std::fs::write(&authorized_keys, &front.authorized)?;
            let sh = SshHost {
                name: h.name().to_string(),
                address: h.address().to_string(),
                port: Mutex::new(0),
                config: hdir.join("sshd_config"),
                log: hdir.join("sshd.log"),
                host_key,
                authorized_keys,
                fingerprint: Mutex::new(fingerprint),
                child: Mutex::new(None),
            };
            if h.faults().down {
                *lock(&sh.port) = free_port(&sh.address)?;
            } else {
                let mut started = false;
                for _ in 0..10 {
                    if sh.spawn(free_port(&sh.address)?, &front.shim)? {
                        started = true;
                        break;
                    }
                }
                if !started {
                    bail!(
                        "no free port for {}'s sshd on {} after 10 tries",
                        sh.name,
                        sh.address
                    );
                }
            }
            known.push_str(&format!(
                "[{}]:{} {}\n",
                sh.address,
                lock(&sh.port),
                key_type_and_blob(&pub_path(&sh.host_key))?
            ));
            front.hosts.push(sh);
        }
        std::fs::write(&front.known_hosts, known)?;
        Ok(front)
    }

    fn host(&self, name: &str) -> &SshHost {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("cpanel-sim: no host named {name:?} behind this SSH front"))
    }

    /// The host's sshd port.
    pub fn port(&self, host: &str) -> u16 {
        *lock(&self.host(host).port)
    }

    /// The address the host's sshd listens on (the host's own: `fleet.host(..).address()`).
    pub fn address(&self, host: &str) -> String {
        self.host(host).address.clone()
    }

    /// The user name to log in as: whoever runs this process (root in CI).
    pub fn login(&self) -> String {
        self.login.clone()
    }

    /// The client's private key (ed25519, no passphrase, 0600).
    pub fn client_key(&self) -> &Path {
        &self.client_key
    }

    /// Every host's key as `[ADDR]:PORT ssh-ed25519 AAAA…`, as written at start: a
    /// [`SshFront::change_host_key`] later does not update it (so the old key is what a client
    /// trusting this file expects).
    pub fn known_hosts(&self) -> &Path {
        &self.known_hosts
    }

    /// The host's current key's fingerprint, `SHA256:…` exactly as `ssh-keygen -lf` prints it.
    pub fn fingerprint(&self, host: &str) -> String {
        lock(&self.host(host).fingerprint).clone()
    }

    /// The host's current key as a known_hosts line, `[ADDR]:PORT ssh-ed25519 AAAA…`.
    pub fn known_hosts_line(&self, host: &str) -> String {
        let h = self.host(host);
        format!(
            "[{}]:{} {}",
            h.address,
            lock(&h.port),
            key_type_and_blob(&pub_path(&h.host_key)).unwrap_or_default()
        )
    }

    /// Successful authentications on the host's sshd so far ("Accepted publickey" in its log).
    pub fn logins(&self, host: &str) -> u64 {
        count_lines(&self.host(host).log, "Accepted publickey")
    }

    /// TCP connections the host's sshd saw ("Connection from" in its log), failed ones included.
    pub fn connections(&self, host: &str) -> u64 {
        count_lines(&self.host(host).log, "Connection from ")
    }

    /// Distinct SSH connections that ran commands on the host (distinct
    /// [`CliRecord::connection`] values).
    pub fn command_connections(&self, host: &str) -> u64 {
        let recs = lock(&self.shared.records);
        let mut seen: Vec<&str> = recs
            .get(host)
            .into_iter()
            .flatten()
            .map(|r| r.connection.as_str())
            .collect();
        seen.sort_unstable();
        seen.dedup();
        seen.len() as u64
    }

    /// Every command line run on the host, in order of arrival.
    pub fn commands(&self, host: &str) -> Vec<CliRecord> {
        lock(&self.shared.records)
            .get(host)
            .cloned()
            .unwrap_or_default()
    }

    /// What tokenfleet must never do, on any host: unsafe quoting, a bare program name, a token
    /// secret on a command line. Must stay empty. No secret appears in these.
    pub fn violations(&self) -> Vec<String> {
        lock(&self.shared.violations).clone()
    }

    /// A new host key for `host`, and its sshd restarted on the same port (connections already
    /// open stay up, as on a real server).
    pub fn change_host_key(&self, host: &str) -> anyhow::Result<()> {
        let h = self.host(host);
        let fingerprint = keygen(&h.host_key, &format!("root@{host}"))?;
        *lock(&h.fingerprint) = fingerprint;
        if lock(&h.child).is_some() {
            h.stop(false);
            h.restart(&self.shim)?;
        }
        Ok(())
    }

    /// Empty the host's authorized_keys (`refuse`), or restore the client key: sshd reads it at
    /// each login, so the next login is refused ("Permission denied (publickey)") or accepted.
    pub fn refuse_client_key(&self, host: &str, refuse: bool) {
        let h = self.host(host);
        let text = if refuse { "" } else { self.authorized.as_str() };
        std::fs::write(&h.authorized_keys, text).unwrap_or_else(|e| {
            panic!(
                "cpanel-sim: cannot write {}: {e}",
                h.authorized_keys.display()
            )
        });
    }

    /// Take the host's sshd down (it and every connection it serves are killed: connection
    /// refused from now on) or bring it back on the same port. The host's HTTPS ports are not
    /// touched (use `SimHost::set_faults` for those); a command arriving while the host's
    /// faults say `down` loses its connection.
    pub fn set_down(&self, host: &str, down: bool) -> anyhow::Result<()> {
        let h = self.host(host);
        let running = lock(&h.child).is_some();
        if down && running {
            h.stop(true);
        } else if !down && !running {
            h.restart(&self.shim)?;
        }
        Ok(())
    }

    /// Write `inventory-ssh.toml` into `dir`: per host `api = "ssh"`, `address`, `ssh_port`,
    /// `ssh_user`, `ssh_identity`, and `ssh_host_key = "SHA256:…"` (`pin`) or
    /// `ssh_known_hosts = "…"`, besides what the HTTPS inventory has (`whm_port`,
    /// `cpanel_port`, `tls_pin`, `accounts`; `[defaults]` with `credential` and `whm_user`).
    pub fn write_inventory(
        &self,
        fleet: &Fleet,
        dir: &Path,
        pin: bool,
    ) -> std::io::Result<PathBuf> {
        let entries: Vec<crate::inventory::SshEntry> = fleet
            .hosts()
            .iter()
            .map(|h| crate::inventory::SshEntry {
                host: crate::InventoryHost::of(h),
                port: self.port(h.name()),
                user: self.login.clone(),
                identity: self.client_key.clone(),
                trust: if pin {
                    crate::inventory::SshTrust::HostKey(self.fingerprint(h.name()))
                } else {
                    crate::inventory::SshTrust::KnownHosts(self.known_hosts.clone())
                },
            })
            .collect();
        crate::inventory::write_ssh(&entries, dir, &crate::InventoryOptions::default())
    }

    /// The port of the loopback listener the shims talk to (for diagnostics).
    pub fn shim_port(&self) -> u16 {
        self.front_port
    }
}

impl Drop for SshFront {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for h in &self.hosts {
            h.stop(true);
        }
        // Wake the accept loop so it sees `stop`.
        let _ = TcpStream::connect(("127.0.0.1", self.front_port));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn shim_script(port: u16) -> String {
    format!(
        r#"#!/bin/bash
# cpanel-sim's SSH shim (written by SshFront): hands this SSH command to the simulator over
# loopback TCP and prints its answer. It is no shell: the simulator splits and checks the line.
exec 3<>/dev/tcp/127.0.0.1/{port} || {{ echo "cpanel-sim: the simulator's SSH front is gone" >&2; exit 255; }}
printf '%s\0' "$1" "$(id -un)" "$SSH_CONNECTION" "$SSH_ORIGINAL_COMMAND" >&3
IFS= read -r head <&3 || exit 255
if [ "$head" = DROP ]; then
  # A lost answer: kill the sshd process serving this connection, so the whole SSH connection
  # dies as on a lost network (a multiplexed client's other sessions with it).
  pid=$PPID
  while [ "$pid" -gt 1 ] && [ "$(cat /proc/$pid/comm 2>/dev/null)" != sshd ]; do
    pid=$(awk '{{print $4}}' /proc/$pid/stat 2>/dev/null || echo 1)
  done
  [ "$pid" -gt 1 ] && kill -9 "$pid"
  exit 255
fi
code=${{head%% *}}
case ${{head#* }} in
  stderr) cat <&3 >&2 ;;
  *) cat <&3 ;;
esac
exit "$code"
"#
    )
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(conn) = conn else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        let shared = shared.clone();
        let _ = std::thread::Builder::new()
            .name("cpanel-sim-ssh-cmd".to_string())
            .spawn(move || serve(conn, &shared));
    }
}

/// The shim's four fields: host, login, `$SSH_CONNECTION`, `$SSH_ORIGINAL_COMMAND`.
fn read_request(conn: &TcpStream) -> Option<[String; 4]> {
    conn.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let mut r = BufReader::new(conn.take(MAX_REQUEST as u64));
    let mut fields: [String; 4] = Default::default();
    for f in &mut fields {
        let mut buf = Vec::new();
        r.read_until(0, &mut buf).ok()?;
        if buf.pop() != Some(0) {
            return None;
        }
        *f = String::from_utf8_lossy(&buf).into_owned();
    }
    Some(fields)
}

fn serve(mut conn: TcpStream, shared: &Shared) {
    let Some([name, login, connection, line]) = read_request(&conn) else {
        return;
    };
    let Some(host) = shared.hosts.get(&name) else {
        let _ = conn.write_all(format!("1 stderr\ncpanel-sim: no host named {name}\n").as_bytes());
        return;
    };
    lock(&shared.records)
        .entry(name.clone())
        .or_default()
        .push(CliRecord {
            line: line.clone(),
            argv: split_line(&line).unwrap_or_default(),
            login: login.clone(),
            connection,
        });
    if let Some(v) = secret_in(shared, &line) {
        lock(&shared.violations).push(format!("{name}: {v}"));
    }
    let faults = host.faults();
    if faults.down {
        let _ = conn.write_all(b"DROP\n");
        return;
    }
    let mut delay = faults.latency;
    if !faults.jitter.is_zero() {
        delay += faults.jitter.mul_f64(fastrand::f64());
    }
    if !delay.is_zero() {
        std::thread::sleep(delay);
    }
    if faults.hang {
        // Never answer; the shim (and the SSH session) wait until the front drops.
        while !shared.stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = conn.shutdown(Shutdown::Both);
        return;
    }
    let answer = run_cli(&host.inner, &login, &line);
    lock(&shared.violations).extend(answer.violations.iter().cloned());
    if answer.drop {
        let _ = conn.write_all(b"DROP\n");
        return;
    }
    let (stream, body) = if answer.stderr.is_empty() {
        ("stdout", answer.stdout)
    } else {
        ("stderr", answer.stderr)
    };
    if conn
        .write_all(format!("{} {stream}\n", answer.code).as_bytes())
        .is_err()
    {
        return;
    }
    if faults.drip.is_zero() {
        let _ = conn.write_all(&body);
    } else {
        let _ = conn.set_nodelay(true);
        for b in &body {
            std::thread::sleep(faults.drip);
            if conn.write_all(std::slice::from_ref(b)).is_err() {
                return;
            }
        }
    }
    let _ = conn.shutdown(Shutdown::Write);
}

/// A description (never the secret) of a token secret of the fleet found in `line`.
fn secret_in(shared: &Shared, line: &str) -> Option<String> {
    if line.contains(&shared.root_token) {
        return Some("secret on a command line (the fleet's root WHM token)".into());
    }
    // Every other secret the fleet makes is 32 of A-Z0-9: a line without such a run holds
    // none, and the scan of every host's tokens is spared (it is per command).
    let token_shaped = line
        .split(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit()))
        .any(|run| run.len() >= 32);
    if !token_shaped {
        return None;
    }
    for h in shared.hosts.values() {
        let state = lock(&h.inner.state);
        let live = state.live(h.name());
        if let Some(t) = live.iter().find(|t| line.contains(&t.secret)) {
            return Some(format!(
                "secret on a command line (live token “{}” of {:?} on {})",
                t.name, t.owner, t.host
            ));
        }
        if let Some((owner, t)) = state.revoked.iter().find(|(_, t)| line.contains(&t.secret)) {
            return Some(format!(
                "secret on a command line (revoked token “{}” of {owner:?} on {})",
                t.name,
                h.name()
            ));
        }
    }
    None
}
