//! cpanel-sim: a simulated fleet of cPanel & WHM servers on loopback, quirks and faults included.
//!
//! tokenfleet cannot be tested against real cPanel servers, so its integration tests, README demo
//! and benchmark run against this instead. Each host serves WHM API 1 (`version`, `listaccts`,
//! `api_token_create`/`list`/`get_details`/`revoke`/`update`, `uapi_cpanel` and the legacy
//! `json-api/cpanel` route) and UAPI `Tokens` over TLS on its own two ports (ephemeral ports on 127.0.0.1, or 2087/2083 on
//! the host's own loopback address with [`Addressing::PerHost`]; [`parts`] splits a big fleet over
//! processes), keeps token
//! hashes per account and WHM user, models cPHulk, injects faults on demand and counts what it saw.
//! WHM tokens keep their ACLs and IP allow-list (`acl-N`, `whitelist_ip-N`; `api_token_update`
//! changes them in place). Tests plant tokens made by others before a run with [`SeedToken`]
//! ([`SimHost::seed_whm_token`], [`SimHost::seed_account_token`]; expired ones stay listed but
//! no longer authenticate), or a whole incident with [`seed_compromised`] ([`seeds`]).
//!
//! [`SshFront`] puts one real OpenSSH `sshd` per host beside the HTTPS ports (the host's own
//! address, an ephemeral port, its own ed25519 host key, one generated client key), for
//! tokenfleet's `api = "ssh"`. Its only command is a bash shim that hands
//! `$SSH_ORIGINAL_COMMAND` to this process, which runs `/usr/local/cpanel/bin/uapi
//! --output=json --user=U Tokens create_full_access|list|revoke|rename …` and
//! `/usr/local/cpanel/bin/whmapi1 --output=json version|listaccts|api_token_*` (optionally after
//! `sudo -n --`) on the host's state through the HTTPS handlers' code: what one path creates the
//! other lists. Lines are split as `sh` would split them; an unquoted metacharacter, a bare
//! `uapi`, or a token secret anywhere in a line is recorded in [`SshFront::violations`]. Commands
//! count in [`HostStats`] as `ssh/uapi/Tokens/<fn>` and `ssh/whmapi1/<fn>`; [`SshFront::logins`]
//! and [`SshFront::commands`] count handshakes and lines. Faults that apply: `latency`, `jitter`,
//! `hang`, `drip`, `drop_after_create`/`drop_create_answers` (the SSH connection is killed after
//! the create), the other after-create faults, `clock_offset`, `down`, and the CLI's own
//! `cli_non_json`, `cli_banner`, `cli_missing`, `sudo_refused`; the HTTP-only ones (`error_503_rate`,
//! `html_login`, `fail_routes`, `echo_auth`, body and TLS faults) do not, as no cpsrvd stands
//! between sshd and the programs. [`SshFront::write_inventory`] writes
//! `inventory-ssh.toml`.
//!
//! Faults can also come from a TOML file ([`FaultsFile`]): `[default]` applies to every host and
//! `[hosts.NAME]` overrides it key by key; durations are written `"20ms"`, `"1.5s"` or as a number
//! of milliseconds; unknown keys and unknown host names are errors.
//!
//! ```toml
//! [default]
//! latency = "20ms"
//! [hosts.web003]
//! error_503_rate = 0.3
//! [hosts.web007]
//! down = true
//! [hosts.web008]
//! drip = "1s"                  # answers correctly, one byte a second
//! [hosts.web009]
//! hang_accept = true           # TCP accepted, TLS never started
//! [hosts.web010]
//! refuse_cpanel_tokens = true  # port 2083 refuses every token login (a failed login)
//! deny_uapi_cpanel = true      # WHM uapi_cpanel / cpanel answered 403 (not a failed login)
//! ```
//!
//! The keys are the fields of [`Faults`], each documented there: `latency`, `jitter`,
//! `error_503_rate`, `drop_after_create`, `drop_create_answers`, `hang`, `hang_accept`, `drip`,
//! `html_login`, `redirect_to`, `endless_body`, `oversized_body`, `reset_mid_body`, `down`,
//! `refuse_cpanel_tokens`, `deny_uapi_cpanel`, `fail_routes`, `echo_auth`,
//! `inner_error_after_create`, `oversized_after_create`, `odd_token_after_create`,
//! `clock_offset`, and for the SSH front `cli_non_json`, `cli_banner`, `cli_missing`, `sudo_refused`. cPHulk is not a fault: set it in [`FleetSpec::cphulk`] or on a running
//! fleet with [`Fleet::set_cphulk`].
//!
//! ```no_run
//! let fleet = cpanel_sim::Fleet::start(cpanel_sim::FleetSpec::uniform(3, 10)).unwrap();
//! let web1 = fleet.host("web001");
//! println!("WHM on 127.0.0.1:{} pin {}", web1.whm_port(), web1.cert_pin());
//! ```

mod addr;
mod cli;
mod inventory;
pub mod parts;
pub mod seeds;
mod server;
mod spec;
mod ssh;
mod state;
mod tls;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, TcpListener as StdListener};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::sync::mpsc;

pub use inventory::{
    InventoryFiles, InventoryHost, InventoryOptions, InventoryTls, write_entries, write_private,
};
pub use seeds::{PlantKind, Planted, Seeded, seed_compromised};
pub use spec::{
    AccountSpec, Addressing, BatchCost, CertMode, CphulkConfig, EchoAuth, Faults, FaultsFile,
    FleetSpec, HostSpec, MAX_BATCH_COMMANDS, OVERSIZED_CREATE_BYTES, TestCaPem, host_name,
    parse_duration,
};
pub use ssh::{CliRecord, SshFront};
pub use state::{SimToken, SimWhmToken, TokenOwner, TokenSecret};

use server::{HostInner, Port, PortCmd, Stats, lock};
use state::{Cphulk, HostState, TokenRec, new_secret, now_epoch};

/// A running fleet. Serves until dropped or [`Fleet::shutdown`]; runs its own tokio runtime on
/// background threads, so callers need no async code.
pub struct Fleet {
    runtime: Option<tokio::runtime::Runtime>,
    hosts: Vec<SimHost>,
    root_token: String,
    ca_pem: String,
    cert_mode: CertMode,
    addressing: Addressing,
    /// The claimed loopback addresses (`Addressing::PerHost`), released when the fleet drops.
    _block: Option<addr::Block>,
}

/// One host's listeners before the fleet starts (none for a host that starts `down`).
struct Bound {
    ip: Ipv4Addr,
    whm_port: u16,
    cpanel_port: u16,
    whm: Option<StdListener>,
    cpanel: Option<StdListener>,
}

/// Bind every host's two listeners. Per-host addressing claims a block first, and takes another
/// when a port in it turns out to be held by someone outside this scheme.
fn bind_fleet(spec: &FleetSpec) -> anyhow::Result<(Option<addr::Block>, Vec<Bound>)> {
    let localhost = Ipv4Addr::LOCALHOST;
    match spec.addressing {
        Addressing::Shared => {
            let mut bound = Vec::with_capacity(spec.hosts.len());
            for hs in &spec.hosts {
                let whm = bind_loopback(localhost, 0)?;
                let cpanel = bind_loopback(localhost, 0)?;
                let (whm_port, cpanel_port) =
                    (whm.local_addr()?.port(), cpanel.local_addr()?.port());
                let up = !hs.faults.down;
                bound.push(Bound {
                    ip: localhost,
                    whm_port,
                    cpanel_port,
                    whm: up.then_some(whm),
                    cpanel: up.then_some(cpanel),
                });
            }
            Ok((None, bound))
        }
        Addressing::PerHost => {
            let mut last = None;
            for _ in 0..20 {
                let block = addr::Block::claim(spec.hosts.len())?;
                match bind_block(spec, &block) {
                    Ok(bound) => return Ok((Some(block), bound)),
                    Err(e) if addr::in_use(&e) => last = Some(e),
                    Err(e) => return Err(e),
                }
            }
            Err(last.expect("tried at least once"))
                .context("every block of loopback addresses tried had a port in use")
        }
    }
}

fn bind_block(spec: &FleetSpec, block: &addr::Block) -> anyhow::Result<Vec<Bound>> {
    let mut bound = Vec::with_capacity(spec.hosts.len());
    for (i, hs) in spec.hosts.iter().enumerate() {
        let ip = block.address(i);
        let (whm, cpanel) = if hs.faults.down {
            (None, None)
        } else {
            (
                Some(bind_loopback(ip, addr::WHM_PORT)?),
                Some(bind_loopback(ip, addr::CPANEL_PORT)?),
            )
        };
        bound.push(Bound {
            ip,
            whm_port: addr::WHM_PORT,
            cpanel_port: addr::CPANEL_PORT,
            whm,
            cpanel,
        });
    }
    Ok(bound)
}

impl Fleet {
    /// Generate the certificates, bind every listener and start serving: on 127.0.0.1 with
    /// ephemeral ports (`Addressing::Shared`), or each host on its own loopback address with
    /// ports 2087 and 2083 (`Addressing::PerHost`).
    pub fn start(spec: FleetSpec) -> anyhow::Result<Fleet> {
        validate(&spec)?;
        let root_token = spec.root_token.clone().unwrap_or_else(new_secret);
        let ca = match &spec.ca {
            Some(pem) => tls::TestCa::from_pem(pem)?,
            None => tls::TestCa::generate()?,
        };
        let (block, bound) = bind_fleet(&spec)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cpanel-sim")
            .enable_all()
            .build()
            .context("starting the simulator's runtime")?;
        let mut hosts = Vec::with_capacity(spec.hosts.len());
        for (hs, b) in spec.hosts.iter().zip(bound) {
            let address = b.ip.to_string();
            let cert = tls::host_cert(&hs.name, &address, spec.cert_mode, &ca)?;
            let (whm_tx, whm_rx) = mpsc::unbounded_channel();
            let (cp_tx, cp_rx) = mpsc::unbounded_channel();
            let inner = Arc::new(HostInner {
                name: hs.name.clone(),
                ip: b.ip,
                address,
                whm_port: b.whm_port,
                cpanel_port: b.cpanel_port,
                cert_der: cert.der,
                acceptor: tokio_rustls::TlsAcceptor::from(cert.config),
                auth_failure_status: hs.auth_failure_status,
                cphulk_cfg: Mutex::new(spec.cphulk),
                state: Mutex::new(HostState::new(&hs.accounts, &hs.resellers, &root_token)),
                cphulk: Mutex::new(Cphulk::default()),
                faults: Mutex::new(hs.faults.clone()),
                stats: Stats::default(),
                port_ctl: vec![whm_tx, cp_tx],
                odd_answers: std::sync::atomic::AtomicU64::new(0),
            });
            runtime.spawn(server::accept_loop(inner.clone(), Port::Whm, b.whm, whm_rx));
            runtime.spawn(server::accept_loop(
                inner.clone(),
                Port::Cpanel,
                b.cpanel,
                cp_rx,
            ));
            hosts.push(SimHost { inner });
        }
        Ok(Fleet {
            runtime: Some(runtime),
            hosts,
            root_token,
            ca_pem: ca.pem,
            cert_mode: spec.cert_mode,
            addressing: spec.addressing,
            _block: block,
        })
    }

    pub fn hosts(&self) -> &[SimHost] {
        &self.hosts
    }

    /// The host with this name; panics on an unknown name (meant for tests).
    pub fn host(&self, name: &str) -> &SimHost {
        self.hosts
            .iter()
            .find(|h| h.name() == name)
            .unwrap_or_else(|| panic!("cpanel-sim: no host named {name:?} in this fleet"))
    }

    /// The root WHM token valid on every host.
    pub fn root_token(&self) -> &str {
        &self.root_token
    }

    /// The test CA (PEM). Generated in both certificate modes; hosts use it in `CaSigned`.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    pub fn cert_mode(&self) -> CertMode {
        self.cert_mode
    }

    pub fn addressing(&self) -> Addressing {
        self.addressing
    }

    /// Every token not revoked on every host, with its secret (see [`SimHost::live_tokens`]).
    pub fn live_tokens(&self) -> Vec<TokenSecret> {
        self.hosts.iter().flat_map(SimHost::live_tokens).collect()
    }

    /// Every token revoked on any host, with its secret (see [`SimHost::revoked_tokens`]).
    pub fn revoked_tokens(&self) -> Vec<TokenSecret> {
        self.hosts
            .iter()
            .flat_map(SimHost::revoked_tokens)
            .collect()
    }

    /// Every credential and token value the fleet knows, for "nothing leaked" checks: the root
    /// WHM token, every token secret (live or revoked, on any host, any owner) and every
    /// account password.
    pub fn known_secrets(&self) -> Vec<String> {
        let mut all: BTreeSet<String> = BTreeSet::new();
        all.insert(self.root_token.clone());
        for h in &self.hosts {
            all.extend(h.live_tokens().into_iter().map(|t| t.secret));
            all.extend(h.revoked_tokens().into_iter().map(|t| t.secret));
            all.extend(h.account_specs().into_iter().filter_map(|a| a.password));
        }
        all.into_iter().collect()
    }

    /// Change the cPHulk settings of every host while the fleet runs (see
    /// [`SimHost::set_cphulk`]).
    pub fn set_cphulk(&self, cfg: CphulkConfig) {
        for h in &self.hosts {
            h.set_cphulk(cfg);
        }
    }

    /// Apply a fault file to the running fleet (hosts not named keep `[default]`).
    pub fn apply_faults(&self, file: &FaultsFile) -> anyhow::Result<()> {
        for name in file.host_names() {
            if !self.hosts.iter().any(|h| h.name() == name) {
                bail!("fault file names host “{name}”, which is not in the fleet");
            }
        }
        for h in &self.hosts {
            h.set_faults(file.for_host(h.name())?);
        }
        Ok(())
    }

    /// Write `inventory.toml`, `inventory.csv`, `fleet.env` (0600) and `ca.pem` into `dir`.
    pub fn write_inventory(
        &self,
        dir: &std::path::Path,
        opts: &InventoryOptions,
    ) -> std::io::Result<InventoryFiles> {
        inventory::write(self, dir, opts)
    }

    /// Stop serving: listeners and connections close.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                rt.shutdown_background();
            } else {
                rt.shutdown_timeout(Duration::from_secs(2));
            }
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.stop();
    }
}

fn bind_loopback(ip: Ipv4Addr, port: u16) -> anyhow::Result<StdListener> {
    assert!(ip.is_loopback(), "cpanel-sim binds loopback addresses only");
    let l = StdListener::bind((ip, port)).with_context(|| format!("binding {ip}:{port}"))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

fn validate(spec: &FleetSpec) -> anyhow::Result<()> {
    let mut names = BTreeSet::new();
    for h in &spec.hosts {
        if !names.insert(h.name.as_str()) {
            bail!("host name “{}” appears twice in the fleet spec", h.name);
        }
        if h.auth_failure_status != 401 && h.auth_failure_status != 403 {
            bail!(
                "host “{}”: auth_failure_status is {}; use 401 or 403",
                h.name,
                h.auth_failure_status
            );
        }
        let mut users = BTreeSet::new();
        for a in &h.accounts {
            if !users.insert(a.user.as_str()) {
                bail!("host “{}”: account “{}” appears twice", h.name, a.user);
            }
            if a.owner != "root" && !h.resellers.contains(&a.owner) {
                bail!(
                    "host “{}”: account “{}” is owned by “{}”, which is neither root nor one of the host's resellers",
                    h.name,
                    a.user,
                    a.owner
                );
            }
        }
        if h.resellers.iter().any(|r| r == "root") {
            bail!("host “{}”: “root” cannot be a reseller", h.name);
        }
    }
    if let Some(t) = &spec.root_token
        && (t.is_empty() || t.contains(char::is_whitespace))
    {
        bail!("root_token must be non-empty with no whitespace");
    }
    Ok(())
}

/// A cheap handle on one simulated host, for inspecting and steering it from tests.
#[derive(Clone)]
pub struct SimHost {
    inner: Arc<HostInner>,
}

impl std::fmt::Debug for SimHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHost")
            .field("name", &self.inner.name)
            .field("address", &self.inner.address)
            .field("whm_port", &self.inner.whm_port)
            .field("cpanel_port", &self.inner.cpanel_port)
            .finish()
    }
}

/// A snapshot of one host's counters (both ports together).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostStats {
    /// Requests received per endpoint, counted on arrival (before faults and auth):
    /// `whm/version`, `whm/listaccts`, `whm/api_token_create`, `whm/api_token_get_details`,
    /// `whm/uapi_cpanel/Tokens/create_full_access`, `whm/cpanel/Tokens/list` (legacy route),
    /// `cpanel/Tokens/list`, …
    pub requests: BTreeMap<String, u64>,
    pub total_requests: u64,
    /// The most requests being handled at once (from head read to answer written).
    pub max_in_flight: usize,
    /// Logins refused for a bad, expired or revoked credential (these feed cPHulk).
    pub failed_auth: u64,
    /// Requests refused because cPHulk had blocked the client.
    pub blocked: u64,
    pub tls_handshakes: u64,
    pub connections: u64,
    /// WHM API 1 `batch` requests that ran (each is one of `total_requests`, key `whm/batch`).
    /// Their commands count in `requests` under their own keys but not in `total_requests`.
    pub batches: u64,
    /// Commands run inside those batches.
    pub batch_commands: u64,
    /// Requests refused 401/403 by `fail_routes` (a refused batch counts once).
    pub refused_by_route: u64,
}

impl HostStats {
    pub fn count(&self, key: &str) -> u64 {
        self.requests.get(key).copied().unwrap_or(0)
    }

    /// Requests that create, revoke, rename or update a token, on any route (`api_token_update`
    /// included).
    pub fn mutations(&self) -> u64 {
        self.requests
            .iter()
            .filter(|(k, _)| {
                let f = k.rsplit('/').next().unwrap_or("");
                matches!(
                    f,
                    "create_full_access"
                        | "revoke"
                        | "rename"
                        | "api_token_create"
                        | "api_token_revoke"
                        | "api_token_update"
                )
            })
            .map(|(_, n)| n)
            .sum()
    }
}

/// One host's figures as a simulator process reports them at the end of a run (JSON for the
/// parent or the bench): counters and the live token count, no secret.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HostReport {
    pub name: String,
    pub address: String,
    pub tls_handshakes: u64,
    pub connections: u64,
    pub requests: u64,
    /// Requests that create, revoke, rename or update a token ([`HostStats::mutations`]).
    pub mutations: u64,
    pub failed_auth: u64,
    pub blocked: u64,
    pub max_in_flight: usize,
    /// Tokens not revoked, accounts' and WHM users' (the root token among them).
    pub live_tokens: usize,
}

impl SimHost {
    /// This host's counters and live token count, for a report.
    pub fn report(&self) -> HostReport {
        let s = self.stats();
        HostReport {
            name: self.name().to_string(),
            address: self.address().to_string(),
            tls_handshakes: s.tls_handshakes,
            connections: s.connections,
            requests: s.total_requests,
            mutations: s.mutations(),
            failed_auth: s.failed_auth,
            blocked: s.blocked,
            max_in_flight: s.max_in_flight,
            live_tokens: lock(&self.inner.state).live(&self.inner.name).len(),
        }
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }
    /// `127.0.0.1`, or the host's own loopback address (`Addressing::PerHost`).
    pub fn address(&self) -> &str {
        &self.inner.address
    }
    pub fn whm_port(&self) -> u16 {
        self.inner.whm_port
    }
    pub fn cpanel_port(&self) -> u16 {
        self.inner.cpanel_port
    }
    /// `https://ADDRESS:WHM_PORT`
    pub fn whm_url(&self) -> String {
        format!("https://{}:{}", self.inner.address, self.inner.whm_port)
    }
    /// `https://ADDRESS:CPANEL_PORT`
    pub fn cpanel_url(&self) -> String {
        format!("https://{}:{}", self.inner.address, self.inner.cpanel_port)
    }

    /// `sha256:AB:CD:…` (uppercase, colons): SHA-256 of the leaf certificate's DER.
    pub fn cert_pin(&self) -> String {
        tls::pin_of(&self.inner.cert_der)
    }
    pub fn cert_der(&self) -> Vec<u8> {
        self.inner.cert_der.clone()
    }

    /// Replace this host's faults. Turning `down` on closes both listeners (and keep-alive
    /// connections at their next request) before returning; turning it off reopens the same ports.
    pub fn set_faults(&self, f: Faults) {
        let was_down = {
            let mut cur = lock(&self.inner.faults);
            let was = cur.down;
            *cur = f.clone();
            was
        };
        if f.down && !was_down {
            for tx in &self.inner.port_ctl {
                let (ack_tx, ack_rx) = std::sync::mpsc::channel();
                if tx.send(PortCmd::Down(ack_tx)).is_ok() {
                    let _ = ack_rx.recv_timeout(Duration::from_secs(5));
                }
            }
        } else if !f.down && was_down {
            for (tx, port) in self
                .inner
                .port_ctl
                .iter()
                .zip([self.inner.whm_port, self.inner.cpanel_port])
            {
                let listener = (0..100).find_map(|_| match bind_loopback(self.inner.ip, port) {
                    Ok(l) => Some(l),
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(20));
                        None
                    }
                });
                match listener {
                    Some(l) => {
                        let _ = tx.send(PortCmd::Up(l));
                    }
                    None => panic!(
                        "cpanel-sim: host {} cannot reopen port {port}: another process took it",
                        self.inner.name
                    ),
                }
            }
        }
    }

    pub fn faults(&self) -> Faults {
        lock(&self.inner.faults).clone()
    }

    pub fn stats(&self) -> HostStats {
        let s = &self.inner.stats;
        HostStats {
            requests: lock(&s.requests).clone(),
            total_requests: s.total.load(Ordering::SeqCst),
            max_in_flight: s.max_in_flight.load(Ordering::SeqCst),
            failed_auth: s.failed_auth.load(Ordering::SeqCst),
            blocked: s.blocked.load(Ordering::SeqCst),
            tls_handshakes: s.tls_handshakes.load(Ordering::SeqCst),
            connections: s.connections.load(Ordering::SeqCst),
            batches: s.batches.load(Ordering::SeqCst),
            batch_commands: s.batch_commands.load(Ordering::SeqCst),
            refused_by_route: s.refused_by_route.load(Ordering::SeqCst),
        }
    }

    /// Zero the counters (`max_in_flight` restarts from the requests in flight now).
    pub fn reset_stats(&self) {
        let s = &self.inner.stats;
        lock(&s.requests).clear();
        s.total.store(0, Ordering::SeqCst);
        s.max_in_flight
            .store(s.in_flight.load(Ordering::SeqCst), Ordering::SeqCst);
        s.failed_auth.store(0, Ordering::SeqCst);
        s.blocked.store(0, Ordering::SeqCst);
        s.tls_handshakes.store(0, Ordering::SeqCst);
        s.connections.store(0, Ordering::SeqCst);
        s.batches.store(0, Ordering::SeqCst);
        s.batch_commands.store(0, Ordering::SeqCst);
    }

    /// Forget every cPHulk failure and block on this host.
    pub fn reset_cphulk(&self) {
        lock(&self.inner.cphulk).reset();
    }

    /// Change this host's cPHulk settings (first set from [`FleetSpec::cphulk`]) while it runs.
    /// Failures and blocks already recorded are kept: the new threshold and window apply from
    /// the next failed login, the new block time to blocks it starts. An IP is blocked by the
    /// failed login that makes `max_failures` within `window`; that login is still answered as
    /// a plain refusal, and every request after it (any credential, either port) is refused as
    /// blocked, counted in [`HostStats::blocked`], until `block` has passed.
    pub fn set_cphulk(&self, cfg: CphulkConfig) {
        *lock(&self.inner.cphulk_cfg) = cfg;
    }

    /// This host's cPHulk settings now.
    pub fn cphulk(&self) -> CphulkConfig {
        *lock(&self.inner.cphulk_cfg)
    }

    /// Account names, sorted.
    pub fn accounts(&self) -> Vec<String> {
        lock(&self.inner.state).accounts.keys().cloned().collect()
    }

    /// Accounts as WHM `listaccts` shows them to root: (user, owner, suspended).
    pub fn account_specs(&self) -> Vec<AccountSpec> {
        lock(&self.inner.state)
            .accounts
            .iter()
            .map(|(user, a)| AccountSpec {
                user: user.clone(),
                owner: a.owner.clone(),
                suspended: a.suspended,
                password: a.password.clone(),
            })
            .collect()
    }

    /// Would `cpanel ACCOUNT:TOKEN` authenticate on the cPanel port right now?
    pub fn token_valid(&self, account: &str, token: &str) -> bool {
        lock(&self.inner.state).account_token_auth(account, token)
    }

    /// Would `whm WHM_USER:TOKEN` authenticate on the WHM port right now?
    pub fn whm_token_valid(&self, whm_user: &str, token: &str) -> bool {
        lock(&self.inner.state).whm_auth(whm_user, token)
    }

    pub fn account_tokens(&self, account: &str) -> Vec<SimToken> {
        lock(&self.inner.state)
            .accounts
            .get(account)
            .map(|a| a.tokens.iter().map(TokenRec::public).collect())
            .unwrap_or_default()
    }

    /// Every token on this host that is not revoked (expired ones included: they stay listed),
    /// accounts' first then WHM users' (the fleet's root token among them), with its secret.
    pub fn live_tokens(&self) -> Vec<TokenSecret> {
        lock(&self.inner.state).live(&self.inner.name)
    }

    /// Every token revoked on this host so far (through any route), oldest first, with its
    /// secret: what a test checks no later run destroyed, and no output shows.
    pub fn revoked_tokens(&self) -> Vec<TokenSecret> {
        let host = &self.inner.name;
        lock(&self.inner.state)
            .revoked
            .iter()
            .map(|(owner, t)| t.with_secret(host, owner))
            .collect()
    }

    pub fn whm_tokens(&self, whm_user: &str) -> Vec<SimToken> {
        lock(&self.inner.state)
            .whm_users
            .get(whm_user)
            .map(|t| t.iter().map(TokenRec::public).collect())
            .unwrap_or_default()
    }

    /// Seed an account token (expiry may be in the past: an expired token stays listed but no
    /// longer authenticates). Returns the secret. Panics on an unknown account or a taken name.
    pub fn add_account_token(&self, account: &str, name: &str, expires_at: Option<i64>) -> String {
        let mut t = SeedToken::named(name);
        t.expires_at = expires_at;
        self.seed_account_token(account, t)
    }

    /// Like [`SimHost::add_account_token`], for a token created `age` ago (its `create_time`
    /// is in the past), as a token someone made before the run under test.
    pub fn add_old_account_token(
        &self,
        account: &str,
        name: &str,
        age: std::time::Duration,
    ) -> String {
        let created = now_epoch() - age.as_secs() as i64;
        self.seed_account_token(account, SeedToken::named(name).created(created))
    }

    /// Seed a WHM token for root or a reseller (ACLs `all`, no allow-list, never expires).
    /// Returns the secret. Panics on an unknown WHM user or a taken name.
    pub fn add_whm_token(&self, whm_user: &str, name: &str) -> String {
        self.seed_whm_token(whm_user, SeedToken::named(name))
    }

    /// Seed a token someone else made for `account` before the run: any `create_time`, any
    /// expiry (a past one: listed, but it no longer authenticates). Returns the secret. Panics
    /// on an unknown account or a taken name (the name's syntax is not checked: seeding may
    /// plant what a server would refuse to create). `acls` and `whitelist_ips` are ignored
    /// (account tokens have neither).
    pub fn seed_account_token(&self, account: &str, token: SeedToken) -> String {
        let mut state = lock(&self.inner.state);
        let host = &self.inner.name;
        let acct = state
            .accounts
            .get_mut(account)
            .unwrap_or_else(|| panic!("cpanel-sim: host {host} has no account {account:?}"));
        seed(&mut acct.tokens, token, false)
    }

    /// Seed a WHM token for root or a reseller, as [`SimHost::seed_account_token`] does for an
    /// account; empty `acls` means `["all"]`. Returns the secret.
    pub fn seed_whm_token(&self, whm_user: &str, token: SeedToken) -> String {
        let mut state = lock(&self.inner.state);
        let host = &self.inner.name;
        let tokens = state
            .whm_users
            .get_mut(whm_user)
            .unwrap_or_else(|| panic!("cpanel-sim: host {host} has no WHM user {whm_user:?}"));
        seed(tokens, token, true)
    }

    /// `whm_user`'s WHM tokens with their ACLs, allow-lists and expiry (empty for an unknown
    /// user), in creation order.
    pub fn whm_token_details(&self, whm_user: &str) -> Vec<SimWhmToken> {
        lock(&self.inner.state)
            .whm_users
            .get(whm_user)
            .map(|t| t.iter().map(TokenRec::whm_public).collect())
            .unwrap_or_default()
    }

    /// Run `f` on this host's state under its lock (bulk seeding without a lock per token).
    pub(crate) fn with_state<R>(&self, f: impl FnOnce(&mut HostState) -> R) -> R {
        f(&mut lock(&self.inner.state))
    }
}

/// A token to plant before a run ([`SimHost::seed_whm_token`], [`SimHost::seed_account_token`]):
/// `SeedToken::named("x").created(t).expires(t).acls(&["clustering"]).whitelist(&["10.0.0.0/8"])`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeedToken {
    pub name: String,
    /// Unix time; `None`: now.
    pub create_time: Option<i64>,
    /// Unix time, past or future; `None`: never expires.
    pub expires_at: Option<i64>,
    /// WHM tokens only; empty: `["all"]`.
    pub acls: Vec<String>,
    /// WHM tokens only; empty: any address.
    pub whitelist_ips: Vec<String>,
}

impl SeedToken {
    pub fn named(name: &str) -> SeedToken {
        SeedToken {
            name: name.to_string(),
            ..SeedToken::default()
        }
    }
    pub fn created(mut self, unix_time: i64) -> SeedToken {
        self.create_time = Some(unix_time);
        self
    }
    pub fn expires(mut self, unix_time: i64) -> SeedToken {
        self.expires_at = Some(unix_time);
        self
    }
    pub fn acls(mut self, acls: &[&str]) -> SeedToken {
        self.acls = acls.iter().map(|a| a.to_string()).collect();
        self
    }
    pub fn whitelist(mut self, ips: &[&str]) -> SeedToken {
        self.whitelist_ips = ips.iter().map(|a| a.to_string()).collect();
        self
    }
}

impl TestCaPem {
    /// A new test CA, for a fleet split over several processes that must all sign with it.
    pub fn generate() -> anyhow::Result<TestCaPem> {
        tls::TestCa::generate_pem()
    }
}

/// Raise this process's soft open-file limit to its hard limit (a simulator process holds two
/// listeners per host plus the connections). Returns the soft limit now in force.
pub fn raise_fd_limit() -> std::io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct they are given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        lim = raised;
    }
    Ok(lim.rlim_cur)
}

// Tests keep fleets in statics and hand hosts to threads.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Fleet>();
    send_sync::<SimHost>();
};

/// Plant `token` in a token set (a WHM user's when `whm`: ACLs default to `all`).
pub(crate) fn seed(tokens: &mut Vec<TokenRec>, token: SeedToken, whm: bool) -> String {
    let name = token.name;
    assert!(
        !tokens.iter().any(|t| t.name == name),
        "cpanel-sim: a token named {name:?} already exists"
    );
    let expires = token.expires_at;
    let (mut rec, secret) = TokenRec::new(
        &name,
        token.create_time.unwrap_or_else(now_epoch),
        expires.map(serde_json::Value::from).unwrap_or_default(),
        expires,
    );
    if whm {
        rec.acls = if token.acls.is_empty() {
            vec!["all".to_string()]
        } else {
            token.acls
        };
        rec.whitelist_ips = token.whitelist_ips;
    }
    tokens.push(rec);
    secret
}
