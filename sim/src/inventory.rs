//! Writes a tokenfleet inventory (TOML and CSV) that matches a running fleet, the env file with
//! its root WHM token and the test CA, so tests and people can point tokenfleet at the fleet.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::Fleet;

/// How the written inventory trusts each host's certificate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InventoryTls {
    /// `tls_pin` per host (the default).
    #[default]
    Pin,
    /// `tls_ca = "ca.pem"` per host (start the fleet with `CertMode::CaSigned`).
    Ca,
    /// `tls_insecure = true`.
    Insecure,
}

#[derive(Clone, Debug)]
pub struct InventoryOptions {
    pub tls: InventoryTls,
    /// `accounts = "*"` (TOML) / one `*` row per host (CSV) instead of listing every account.
    pub accounts_star: bool,
    /// The credential reference; default `env:WHM_TOKEN`.
    pub credential: String,
}

impl Default for InventoryOptions {
    fn default() -> Self {
        InventoryOptions {
            tls: InventoryTls::Pin,
            accounts_star: false,
            credential: "env:WHM_TOKEN".to_string(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct InventoryFiles {
    pub toml: PathBuf,
    pub csv: PathBuf,
    /// `WHM_TOKEN=…` (the variable named by an `env:` credential), mode 0600.
    pub env: PathBuf,
    pub ca: PathBuf,
}

fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// One host as the inventory shows it: what [`write_entries`] needs, and what a simulator
/// process serving part of a fleet hands its parent (no secret in it).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InventoryHost {
    pub name: String,
    pub address: String,
    pub whm_port: u16,
    pub cpanel_port: u16,
    /// `sha256:AB:CD:…`
    pub cert_pin: String,
    pub accounts: Vec<String>,
}

impl InventoryHost {
    pub fn of(h: &crate::SimHost) -> InventoryHost {
        InventoryHost {
            name: h.name().to_string(),
            address: h.address().to_string(),
            whm_port: h.whm_port(),
            cpanel_port: h.cpanel_port(),
            cert_pin: h.cert_pin(),
            accounts: h.accounts(),
        }
    }
}

pub(crate) fn write(
    fleet: &Fleet,
    dir: &Path,
    opts: &InventoryOptions,
) -> std::io::Result<InventoryFiles> {
    let hosts: Vec<InventoryHost> = fleet.hosts().iter().map(InventoryHost::of).collect();
    write_entries(&hosts, fleet.root_token(), fleet.ca_pem(), dir, opts)
}

/// Write `inventory.toml`, `inventory.csv`, `fleet.env` (0600) and `ca.pem` into `dir` for these
/// hosts. Ports that are cPanel's defaults (2087, 2083) are left out, as a person would write
/// them: the CSV has port columns only when some host needs them.
pub fn write_entries(
    hosts: &[InventoryHost],
    root_token: &str,
    ca_pem: &str,
    dir: &Path,
    opts: &InventoryOptions,
) -> std::io::Result<InventoryFiles> {
    fs::create_dir_all(dir)?;
    let files = InventoryFiles {
        toml: dir.join("inventory.toml"),
        csv: dir.join("inventory.csv"),
        env: dir.join("fleet.env"),
        ca: dir.join("ca.pem"),
    };
    fs::write(&files.ca, ca_pem)?;

    let on_localhost = hosts.iter().all(|h| h.address == "127.0.0.1");
    let default_ports = |h: &InventoryHost| {
        h.whm_port == crate::addr::WHM_PORT && h.cpanel_port == crate::addr::CPANEL_PORT
    };
    let port_columns = !hosts.iter().all(default_ports);
    let mut t = if on_localhost {
        String::from("# Written by cpanel-sim for a simulated fleet on 127.0.0.1.\n")
    } else {
        String::from(
            "# Written by cpanel-sim for a simulated fleet, each host on its own loopback address.\n",
        )
    };
    t.push_str("[defaults]\n");
    t.push_str(&format!("credential = {}\n", quote(&opts.credential)));
    t.push_str("whm_user = \"root\"\n");
    let tls_col = match opts.tls {
        InventoryTls::Pin => "tls_pin",
        InventoryTls::Ca => "tls_ca",
        InventoryTls::Insecure => "tls_insecure",
    };
    let mut c = if port_columns {
        format!("host,address,whm_port,cpanel_port,{tls_col},credential,account\n")
    } else {
        format!("host,address,{tls_col},credential,account\n")
    };
    for h in hosts {
        let tls_value = match opts.tls {
            InventoryTls::Pin => h.cert_pin.clone(),
            InventoryTls::Ca => "ca.pem".to_string(),
            InventoryTls::Insecure => "true".to_string(),
        };
        t.push_str("\n[[hosts]]\n");
        t.push_str(&format!("name = {}\n", quote(&h.name)));
        t.push_str(&host_lines(h, opts));
        let star = ["*".to_string()];
        let row_accounts: &[String] = if opts.accounts_star {
            &star
        } else {
            &h.accounts
        };
        let ports = if port_columns {
            format!("{},{},", h.whm_port, h.cpanel_port)
        } else {
            String::new()
        };
        for a in row_accounts {
            c.push_str(&format!(
                "{},{},{ports}{},{},{}\n",
                csv_cell(&h.name),
                h.address,
                csv_cell(&tls_value),
                csv_cell(&opts.credential),
                csv_cell(a)
            ));
        }
    }
    fs::write(&files.toml, t)?;
    fs::write(&files.csv, c)?;

    let var = opts
        .credential
        .strip_prefix("env:")
        .filter(|v| !v.is_empty())
        .unwrap_or("WHM_TOKEN");
    write_private(&files.env, format!("{var}={root_token}\n").as_bytes())?;
    Ok(files)
}

/// A host's entry after its name, as both inventories write it: address, non-default ports,
/// certificate trust and accounts.
fn host_lines(h: &InventoryHost, opts: &InventoryOptions) -> String {
    let mut t = String::new();
    t.push_str(&format!("address = {}\n", quote(&h.address)));
    if h.whm_port != crate::addr::WHM_PORT {
        t.push_str(&format!("whm_port = {}\n", h.whm_port));
    }
    if h.cpanel_port != crate::addr::CPANEL_PORT {
        t.push_str(&format!("cpanel_port = {}\n", h.cpanel_port));
    }
    match opts.tls {
        InventoryTls::Pin => t.push_str(&format!("tls_pin = {}\n", quote(&h.cert_pin))),
        InventoryTls::Ca => t.push_str("tls_ca = \"ca.pem\"\n"),
        InventoryTls::Insecure => t.push_str("tls_insecure = true\n"),
    }
    if opts.accounts_star {
        t.push_str("accounts = \"*\"\n");
    } else {
        let list: Vec<String> = h.accounts.iter().map(|a| quote(a)).collect();
        t.push_str(&format!("accounts = [{}]\n", list.join(", ")));
    }
    t
}

/// How an SSH inventory entry trusts its host's key.
#[derive(Clone, Debug)]
pub(crate) enum SshTrust {
    /// `ssh_host_key = "SHA256:…"`
    HostKey(String),
    /// `ssh_known_hosts = "/abs/known_hosts"`
    KnownHosts(PathBuf),
}

/// One host of an SSH inventory ([`crate::SshFront::write_inventory`]).
pub(crate) struct SshEntry {
    pub host: InventoryHost,
    pub port: u16,
    pub user: String,
    pub identity: PathBuf,
    pub trust: SshTrust,
}

/// Write `inventory-ssh.toml` into `dir`: the HTTPS inventory's entries with `api = "ssh"` and
/// the SSH settings added.
pub(crate) fn write_ssh(
    entries: &[SshEntry],
    dir: &Path,
    opts: &InventoryOptions,
) -> std::io::Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let path = dir.join("inventory-ssh.toml");
    let mut t = String::from(
        "# Written by cpanel-sim: the simulated fleet over SSH (one real sshd per host).\n",
    );
    // No credential: over SSH the key is the credential.
    t.push_str("# The SSH key is the credential: no WHM token is needed.\n");
    for e in entries {
        t.push_str("\n[[hosts]]\n");
        t.push_str(&format!("name = {}\n", quote(&e.host.name)));
        t.push_str("api = \"ssh\"\n");
        t.push_str(&host_lines(&e.host, opts));
        t.push_str(&format!("ssh_port = {}\n", e.port));
        t.push_str(&format!("ssh_user = {}\n", quote(&e.user)));
        t.push_str(&format!(
            "ssh_identity = {}\n",
            quote(&e.identity.display().to_string())
        ));
        match &e.trust {
            SshTrust::HostKey(fp) => t.push_str(&format!("ssh_host_key = {}\n", quote(fp))),
            SshTrust::KnownHosts(p) => t.push_str(&format!(
                "ssh_known_hosts = {}\n",
                quote(&p.display().to_string())
            )),
        }
    }
    fs::write(&path, t)?;
    Ok(path)
}

/// Create (or truncate) a file readable only by its owner, then write it.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    f.write_all(bytes)?;
    f.sync_all()
}
