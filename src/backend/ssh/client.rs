//! The system OpenSSH client, driven for one host: one multiplexed master connection per host
//! for the whole run (`ControlMaster`, its socket in a private 0700 folder), so a host costs one
//! handshake however many commands it gets; each command then runs over it as a mux client with
//! the run's timeout, its output capped, and what went wrong told apart: a host key not trusted
//! (nothing ran), a refused login (never retried), no connection (nothing ran), a connection lost
//! mid-command (it may have run), a program missing on the server.
//!
//! Host keys are as strict as TLS: `ssh_known_hosts` (only that file), `ssh_host_key` (only that
//! fingerprint, vouched for by a `KnownHostsCommand` that answers for the one key whose
//! fingerprint matches), or the user's own known_hosts files; `StrictHostKeyChecking=yes`
//! always, unless `ssh_insecure`. The same command records the fingerprint every server
//! presents, for `check` to print. `BatchMode=yes`: nothing ever prompts. The user's ssh config
//! (bastions, agent, ciphers) applies; the options here take precedence over it.

use super::super::ApiError;
use super::super::protocol::server_text;
use super::super::redact::Redactor;
use crate::inventory::Ssh;
use crate::transport::{TransportConfig, TransportError};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// What a master connection waits for idle before it exits on its own: the backstop for a run
/// that was killed before it could close its masters.
const PERSIST_SECS: u64 = 120;
/// Standard error kept from a command (it is only ever quoted, shortened).
const STDERR_CAP: u64 = 64 * 1024;

/// What a mux client's exit 255 means, from what it said.
#[derive(Debug, PartialEq, Eq)]
enum Broken {
    /// The server refused a new session on the live connection (sshd's `MaxSessions`): the
    /// command never started, the connection is fine.
    SessionRefused,
    /// No master to talk to: the command was never sent.
    MasterGone,
    /// The connection broke with the command under way: it may have run.
    Lost,
}

fn broken(said: &str) -> Broken {
    if said.contains("Session open refused") || said.contains("session request failed") {
        Broken::SessionRefused
    } else if said.contains("Control socket connect") || said.contains("ControlSocket") {
        Broken::MasterGone
    } else {
        Broken::Lost
    }
}

/// The host-key script: OpenSSH runs it (`KnownHostsCommand`) with the presented key's
/// fingerprint, host, type and key, the pin (`-` for none) and where to record the fingerprint.
/// With a pin it vouches for that key alone; without, it vouches for none (the known_hosts
/// files decide). It is called once first to order algorithms, with `NONE` for the key.
const HOST_KEY_SCRIPT: &str = r#"#!/bin/sh
# tokenfleet: records the host key a server presents; vouches for it only if it is the pinned one.
[ "$1" = NONE ] && exit 0
printf '%s\n' "$1" > "$6"
[ "$5" != - ] && [ "$1" = "$5" ] && printf '%s %s %s\n' "$2" "$3" "$4"
exit 0
"#;

/// The run's private folder (0700): control sockets, the host-key script, each host's log and
/// presented key. Shared by every SSH host of the run, removed with the last of them.
struct RunDir {
    dir: tempfile::TempDir,
    script: PathBuf,
}

impl RunDir {
    fn shared() -> std::io::Result<Arc<RunDir>> {
        static SHARED: Mutex<Weak<RunDir>> = Mutex::new(Weak::new());
        let mut slot = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(dir) = slot.upgrade() {
            return Ok(dir);
        }
        // Control socket paths must stay short (about 100 bytes): /tmp, not a long TMPDIR.
        let base = Path::new("/tmp");
        let dir = tempfile::Builder::new()
            .prefix("tokenfleet-ssh.")
            .tempdir_in(if base.is_dir() {
                base.to_path_buf()
            } else {
                std::env::temp_dir()
            })?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
        let script = dir.path().join("host-key");
        std::fs::write(&script, HOST_KEY_SCRIPT)?;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700))?;
        let dir = Arc::new(RunDir { dir, script });
        *slot = Arc::downgrade(&dir);
        Ok(dir)
    }
}

/// Where the master connection of a host stands.
enum Master {
    /// None yet, or it went away: the next command opens one.
    Down,
    Up,
    /// A failure that another try cannot mend in this run (host key, refused login): every
    /// later command fails with it, unsent.
    Failed(ApiError),
}

/// One host's OpenSSH client.
pub struct Client {
    dir: Arc<RunDir>,
    socket: PathBuf,
    log: PathBuf,
    presented: PathBuf,
    address: String,
    ssh: Ssh,
    timeout: Duration,
    connect_timeout: Duration,
    cap: usize,
    master: tokio::sync::Mutex<Master>,
}

impl Client {
    pub fn new(address: &str, ssh: &Ssh, config: &TransportConfig) -> std::io::Result<Client> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = RunDir::shared()?;
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Ok(Client {
            socket: dir.dir.path().join(format!("{n}.sock")),
            log: dir.dir.path().join(format!("{n}.log")),
            presented: dir.dir.path().join(format!("{n}.key")),
            dir,
            address: address.to_string(),
            ssh: ssh.clone(),
            timeout: config.timeout,
            connect_timeout: config.connect_timeout,
            cap: config.body_cap,
            master: tokio::sync::Mutex::new(Master::Down),
        })
    }

    /// The fingerprint of the host key the server presented last, if it was seen.
    pub fn presented(&self) -> Option<String> {
        let text = std::fs::read_to_string(&self.presented).ok()?;
        let key = text.trim();
        crate::inventory::valid_ssh_fingerprint(key).then(|| key.to_string())
    }

    /// `address:port` as messages name it.
    fn place(&self) -> String {
        match self.ssh.port {
            Some(p) => format!("{}:{p}", self.address),
            None => self.address.clone(),
        }
    }

    /// The options every ssh process of this host shares: who, where, which socket, never a
    /// prompt.
    fn common(&self, cmd: &mut tokio::process::Command) {
        cmd.arg("-o").arg("BatchMode=yes");
        cmd.arg("-o")
            .arg(format!("ControlPath={}", self.socket.display()));
        cmd.arg("-o").arg(format!(
            "ConnectTimeout={}",
            self.connect_timeout.as_secs().max(1)
        ));
        cmd.arg("-l").arg(self.ssh.login());
        if let Some(p) = self.ssh.port {
            cmd.arg("-p").arg(p.to_string());
        }
        // Terminal signals (Ctrl-C) are the run's to handle: a command in flight finishes.
        cmd.process_group(0);
        cmd.stdin(Stdio::null());
        cmd.kill_on_drop(true);
    }

    /// The master connection's trust and login options.
    fn trust(&self, cmd: &mut tokio::process::Command) {
        let pin = self.ssh.host_key.as_deref().unwrap_or("-");
        // Paths in double quotes: ssh splits these values into words.
        cmd.arg("-o").arg(format!(
            "KnownHostsCommand=\"{}\" %f %H %t %K {pin} \"{}\"",
            self.dir.script.display(),
            self.presented.display()
        ));
        if self.ssh.insecure {
            cmd.args(["-o", "StrictHostKeyChecking=no"]);
            cmd.args(["-o", "UserKnownHostsFile=/dev/null"]);
            cmd.args(["-o", "GlobalKnownHostsFile=/dev/null"]);
        } else {
            cmd.args(["-o", "StrictHostKeyChecking=yes"]);
            if let Some(file) = &self.ssh.known_hosts {
                cmd.arg("-o")
                    .arg(format!("UserKnownHostsFile=\"{}\"", file.display()));
                cmd.args(["-o", "GlobalKnownHostsFile=/dev/null"]);
            } else if self.ssh.host_key.is_some() {
                cmd.args(["-o", "UserKnownHostsFile=/dev/null"]);
                cmd.args(["-o", "GlobalKnownHostsFile=/dev/null"]);
            }
        }
        // Checked by host key alone: a DNS-based or IP-based second look would only differ.
        cmd.args(["-o", "CheckHostIP=no", "-o", "UpdateHostKeys=no"]);
        if let Some(key) = &self.ssh.identity {
            cmd.arg("-i").arg(key);
            cmd.args(["-o", "IdentitiesOnly=yes"]);
        }
        cmd.args([
            "-o",
            "PasswordAuthentication=no",
            "-o",
            "KbdInteractiveAuthentication=no",
            "-o",
            "ClearAllForwardings=yes",
            "-o",
            "ForwardAgent=no",
            "-o",
            "ForwardX11=no",
            "-o",
            "ServerAliveInterval=15",
            "-o",
            "ServerAliveCountMax=3",
        ]);
    }

    /// Open the master connection (`ssh -M -N -f`): back once it has logged in and listens on
    /// its control socket, else the failure, told apart.
    async fn open_master(&self) -> Result<(), ApiError> {
        // After a failed command the master may well be alive: ask it before logging in again.
        if self.socket.exists() && self.master_alive().await {
            return Ok(());
        }
        let _ = std::fs::remove_file(&self.log);
        let _ = std::fs::remove_file(&self.presented);
        let _ = std::fs::remove_file(&self.socket);
        let mut cmd = tokio::process::Command::new("ssh");
        cmd.args(["-M", "-N", "-f"]);
        cmd.args(["-o", "ControlMaster=yes"]);
        cmd.arg("-o").arg(format!("ControlPersist={PERSIST_SECS}"));
        cmd.arg("-E").arg(&self.log);
        self.common(&mut cmd);
        self.trust(&mut cmd);
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        cmd.arg("--").arg(&self.address);
        let mut child = cmd.spawn().map_err(|e| {
            ApiError::Transport(TransportError::Connect(format!(
                "{}: cannot run ssh: {e}",
                self.place()
            )))
        })?;
        let limit = self.timeout.max(self.connect_timeout);
        let status = match tokio::time::timeout(limit, child.wait()).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                return Err(ApiError::Transport(TransportError::Connect(format!(
                    "{}: ssh: {e}",
                    self.place()
                ))));
            }
            Err(_) => {
                let _ = child.kill().await;
                return Err(ApiError::Transport(TransportError::Timeout { sent: false }));
            }
        };
        if status.success() {
            return Ok(());
        }
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        Err(self.login_failure(&log))
    }

    /// Whether the master connection answers on its control socket (`ssh -O check`).
    async fn master_alive(&self) -> bool {
        let mut cmd = tokio::process::Command::new("ssh");
        cmd.args(["-O", "check"]);
        self.common(&mut cmd);
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        cmd.arg("--").arg(&self.address);
        match cmd.spawn() {
            Ok(mut child) => matches!(
                tokio::time::timeout(self.connect_timeout, child.wait()).await,
                Ok(Ok(s)) if s.success()
            ),
            Err(_) => false,
        }
    }

    /// Why ssh could not log in, from what it logged.
    fn login_failure(&self, log: &str) -> ApiError {
        let r = Redactor::new();
        let lines: Vec<&str> = log
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("debug"))
            .collect();
        let find = |needle: &str| lines.iter().find(|l| l.contains(needle)).copied();
        let last = lines
            .last()
            .copied()
            .unwrap_or("ssh exited without saying why");
        if log.contains("Host key verification failed")
            || log.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
            || log.contains("host key is known")
        {
            let presented = self.presented();
            let why = find("host key is known")
                .or(find("REMOTE HOST IDENTIFICATION HAS CHANGED"))
                .unwrap_or("Host key verification failed");
            let message = match (&presented, &self.ssh.host_key) {
                (Some(got), Some(want)) => format!(
                    "{}: the server presented {got}, ssh_host_key is {want}: not one command was run (if the server's key really changed, check it on its console and set ssh_host_key = \"{got}\")",
                    self.place()
                ),
                (Some(got), None) => format!(
                    "{}: {}; the server presented {got}: not one command was run (check it on the server's console, then pin it with ssh_host_key = \"{got}\" or add it to known_hosts)",
                    self.place(),
                    server_text(why, &r)
                ),
                (None, _) => format!(
                    "{}: {}: not one command was run",
                    self.place(),
                    server_text(why, &r)
                ),
            };
            return ApiError::HostKey { presented, message };
        }
        if let Some(line) = find("Permission denied") {
            return ApiError::LoginRefused(format!(
                "{} as {}: {} (not tried again this run: check ssh_identity, the agent and the server's authorized_keys)",
                self.place(),
                self.ssh.login(),
                server_text(line, &r)
            ));
        }
        for needle in [
            "Connection refused",
            "Connection timed out",
            "No route to host",
            "Network is unreachable",
            "Could not resolve hostname",
            "Name or service not known",
            "Connection closed by",
            "Connection reset",
            "kex_exchange_identification",
        ] {
            if let Some(line) = find(needle) {
                return ApiError::Transport(TransportError::Connect(format!(
                    "{}: {}",
                    self.place(),
                    server_text(line, &r)
                )));
            }
        }
        ApiError::Protocol(format!(
            "{}: ssh could not log in: {}",
            self.place(),
            server_text(last, &r)
        ))
    }

    /// The master, opened if it is not up. A host key or login failure is kept: every later
    /// command of the run gets it without a new attempt.
    async fn ensure_master(&self) -> Result<(), ApiError> {
        // Held across the handshake: the host's other workers wait for this one connection
        // instead of each making their own.
        let mut master = self.master.lock().await;
        match &*master {
            Master::Up => return Ok(()),
            Master::Failed(e) => return Err(e.clone()),
            Master::Down => {}
        }
        match self.open_master().await {
            Ok(()) => {
                *master = Master::Up;
                Ok(())
            }
            Err(e) => {
                if matches!(e, ApiError::HostKey { .. } | ApiError::LoginRefused(_)) {
                    *master = Master::Failed(e.clone());
                }
                Err(e)
            }
        }
    }

    /// Run `line` on the host over the master connection; its standard output when it exits 0.
    /// `program` names it in messages.
    pub fn run(&self, program: &str, line: &str) -> Result<Vec<u8>, ApiError> {
        crate::transport::runtime().block_on(async {
            self.ensure_master().await?;
            self.run_mux(program, line).await
        })
    }

    async fn run_mux(&self, program: &str, line: &str) -> Result<Vec<u8>, ApiError> {
        let mut cmd = tokio::process::Command::new("ssh");
        cmd.args(["-T", "-o", "ControlMaster=no"]);
        // Never a second connection behind the master's back: if the master is gone, the
        // fallback connection fails at once (and says so) instead of logging in again.
        cmd.args([
            "-o",
            "ProxyCommand=false",
            "-o",
            "StrictHostKeyChecking=yes",
        ]);
        self.common(&mut cmd);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.arg("--").arg(&self.address).arg(line);
        let mut child = cmd.spawn().map_err(|e| {
            ApiError::Transport(TransportError::Connect(format!(
                "{}: cannot run ssh: {e}",
                self.place()
            )))
        })?;
        let mut stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let cap = self.cap;
        let work = async {
            let mut out = Vec::new();
            let mut err = Vec::new();
            let mut o_take = (&mut stdout).take(cap as u64 + 1);
            let mut e_take = (&mut stderr).take(STDERR_CAP);
            let (o, e) = tokio::join!(o_take.read_to_end(&mut out), e_take.read_to_end(&mut err));
            o.and(e).map(|_| (out, err))
        };
        let (out, err) = match tokio::time::timeout(self.timeout, work).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                let _ = child.kill().await;
                return Err(ApiError::Transport(TransportError::Io {
                    message: format!("{}: reading from ssh: {e}", self.place()),
                    sent: true,
                }));
            }
            Err(_) => {
                let _ = child.kill().await;
                return Err(ApiError::Transport(TransportError::Timeout { sent: true }));
            }
        };
        if out.len() > cap {
            let _ = child.kill().await;
            return Err(ApiError::Transport(TransportError::BodyTooLarge { cap }));
        }
        let status = match tokio::time::timeout(self.timeout, child.wait()).await {
            Ok(Ok(s)) => s,
            _ => {
                let _ = child.kill().await;
                return Err(ApiError::Transport(TransportError::Timeout { sent: true }));
            }
        };
        let r = Redactor::new();
        let said = String::from_utf8_lossy(&err);
        let first = said
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("")
            .to_string();
        match status.code() {
            Some(0) => Ok(out),
            Some(255) => {
                // ssh's own failure (a remote program exiting 255 looks the same; cPanel's CLIs
                // do not).
                let broken = broken(&said);
                if broken != Broken::SessionRefused {
                    let mut master = self.master.lock().await;
                    if matches!(*master, Master::Up) {
                        *master = Master::Down;
                    }
                }
                Err(match broken {
                    Broken::SessionRefused => {
                        ApiError::Transport(TransportError::Connect(format!(
                            "{}: sshd refused one more session on the connection (its MaxSessions?); nothing was sent",
                            self.place()
                        )))
                    }
                    Broken::MasterGone => ApiError::Transport(TransportError::Connect(format!(
                        "{}: the SSH connection had closed; nothing was sent",
                        self.place()
                    ))),
                    Broken::Lost => ApiError::Transport(TransportError::Io {
                        message: format!(
                            "{}: the SSH connection broke during {program}: {}",
                            self.place(),
                            server_text(&first, &r)
                        ),
                        sent: true,
                    }),
                })
            }
            Some(127) => Err(ApiError::Protocol(format!(
                "{program} is not on the server ({}): is it a cPanel & WHM server (56 or later)?",
                server_text(&first, &r)
            ))),
            Some(126) => Err(ApiError::Protocol(format!(
                "{program} cannot be run by {} on the server ({}): log in as root (ssh_user = \"root\")",
                self.ssh.login(),
                server_text(&first, &r)
            ))),
            Some(code) => Err(ApiError::Protocol(format!(
                "{program} exited {code}: {}",
                if first.is_empty() {
                    "(it said nothing on standard error)".to_string()
                } else {
                    server_text(&first, &r)
                }
            ))),
            None => Err(ApiError::Transport(TransportError::Io {
                message: format!("{}: ssh was killed during {program}", self.place()),
                sent: true,
            })),
        }
    }

    /// Close the master connection (`ssh -O exit`), if one is up.
    pub fn release(&self) {
        let mut master = self.master.blocking_lock();
        if !matches!(*master, Master::Up) {
            return;
        }
        *master = Master::Down;
        let mut cmd = std::process::Command::new("ssh");
        cmd.args(["-O", "exit", "-o"])
            .arg(format!("ControlPath={}", self.socket.display()))
            .arg("-l")
            .arg(self.ssh.login());
        if let Some(p) = self.ssh.port {
            cmd.arg("-p").arg(p.to_string());
        }
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        cmd.arg("--").arg(&self.address);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let _ = cmd.status();
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(ssh: Ssh) -> Client {
        Client::new("203.0.113.10", &ssh, &TransportConfig::default()).unwrap()
    }

    #[test]
    fn what_ssh_logged_says_why_it_could_not_log_in() {
        let c = client(Ssh {
            port: Some(2222),
            ..Ssh::default()
        });
        let e = c.login_failure("root@203.0.113.10: Permission denied (publickey).\n");
        assert!(matches!(e, ApiError::LoginRefused(_)), "{e:?}");
        assert!(e.is_refusal() && e.refused_by_server() && e.stops_host());
        assert!(e.to_string().contains("203.0.113.10:2222 as root"), "{e}");

        let e = c.login_failure(
            "No ED25519 host key is known for [203.0.113.10]:2222 and you have requested strict checking.\nHost key verification failed.\n",
        );
        assert!(
            matches!(
                e,
                ApiError::HostKey {
                    presented: None,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.stops_host() && !e.is_retryable() && !e.outcome_unknown());

        let e =
            c.login_failure("ssh: connect to host 203.0.113.10 port 2222: Connection refused\n");
        assert!(e.is_retryable() && !e.outcome_unknown(), "{e:?}");

        let e = c.login_failure("something odd\n");
        assert!(matches!(e, ApiError::Protocol(_)), "{e:?}");
    }

    #[test]
    fn a_pinned_key_mismatch_names_both_keys() {
        let want = "SHA256:ktUIQRVc1H8NZC4UPYF7HasdqyU3kYq+Eku80Xyaw4g";
        let got = "SHA256:AtUIQRVc1H8NZC4UPYF7HasdqyU3kYq+Eku80Xyaw4g";
        let c = client(Ssh {
            host_key: Some(want.into()),
            ..Ssh::default()
        });
        std::fs::write(&c.presented, format!("{got}\n")).unwrap();
        assert_eq!(c.presented().as_deref(), Some(got));
        let e = c.login_failure("Host key verification failed.\n");
        assert_eq!(e.presented_host_key(), Some(got));
        let text = e.to_string();
        assert!(text.contains(want) && text.contains(got), "{text}");
        assert!(
            text.contains(&format!("ssh_host_key = \"{got}\"")),
            "{text}"
        );
    }

    #[test]
    fn a_mux_clients_exit_255_says_whether_the_command_was_sent() {
        assert_eq!(
            broken(
                "mux_client_request_session: session request failed: Session open refused by peer\nkex_exchange_identification: Connection closed by remote host\n"
            ),
            Broken::SessionRefused
        );
        assert_eq!(
            broken("Control socket connect(/tmp/x/0.sock): No such file or directory\n"),
            Broken::MasterGone
        );
        assert_eq!(broken(""), Broken::Lost, "a master that died says nothing");
    }

    /// The host-key script vouches for the pinned key alone, and records what it was shown.
    #[test]
    fn the_host_key_script_vouches_for_the_pin_only() {
        let c = client(Ssh::default());
        let pin = "SHA256:ktUIQRVc1H8NZC4UPYF7HasdqyU3kYq+Eku80Xyaw4g";
        let run = |shown: &str, pinned: &str| {
            let out = std::process::Command::new(&c.dir.script)
                .args([shown, "[h]:22", "ssh-ed25519", "AAAAkey", pinned])
                .arg(&c.presented)
                .output()
                .unwrap();
            assert!(out.status.success());
            String::from_utf8(out.stdout).unwrap()
        };
        assert_eq!(run(pin, pin), "[h]:22 ssh-ed25519 AAAAkey\n");
        assert_eq!(c.presented().as_deref(), Some(pin));
        assert_eq!(run(pin, "-"), "", "no pin: the known_hosts files decide");
        assert_eq!(
            run("SHA256:AtUIQRVc1H8NZC4UPYF7HasdqyU3kYq+Eku80Xyaw4g", pin),
            ""
        );
        assert_eq!(
            run("NONE", pin),
            "",
            "the ordering call vouches for nothing"
        );
    }
}
