//! Shared fixtures: a simulated fleet in a temp folder, the binary, decryption of the handoff, and
//! the secret scan every test ends with.

#![allow(dead_code)]

use age::secrecy::ExposeSecret;
use cpanel_sim::{Fleet, FleetSpec, InventoryFiles, InventoryOptions, InventoryTls};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

    /// No known secret in `runs`' stdout/stderr, nor in any plaintext file of the temp folder.
    pub fn assert_no_secret_leaked(&self, runs: &[&Run], extra: &[String]) {
        let secrets: Vec<&String> = self
            .secrets
            .iter()
            .chain(extra)
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
