//! Why this module exists: credentials are named in the inventory (`env:NAME`, `file:PATH`,
//! `prompt`), never written there, and are read exactly once per distinct reference right before
//! a run, straight into [`Secret`]. Every failure names the reference and where it is used, never
//! the value; a credential file others can read is worth a warning.

use super::CredentialRef;
use crate::error::Problem;
use crate::secret::Secret;
use std::collections::HashMap;
use std::path::Path;

/// Credential files larger than this are not credentials.
const MAX_CREDENTIAL_BYTES: u64 = 64 * 1024;

const LITERAL_HINT: &str = "put the token in an environment variable and write credential = \"env:NAME\" (or use file:PATH or prompt)";

/// Parse a credential reference as written in the inventory. `Err((message, hint))`; neither
/// ever contains the value, which may be a secret pasted in by mistake.
pub fn parse_ref(value: &str, base: &Path) -> Result<CredentialRef, (String, String)> {
    let value = value.trim();
    if value.is_empty() {
        return Err(("the credential is empty".into(), LITERAL_HINT.into()));
    }
    if value == "prompt" {
        return Ok(CredentialRef::Prompt);
    }
    if let Some(name) = value.strip_prefix("env:") {
        let ok = !name.is_empty()
            && name.len() <= 128
            && !name.as_bytes()[0].is_ascii_digit()
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !ok {
            return Err((
                "env: must be followed by an environment variable name".into(),
                "variable names are letters, digits and '_', e.g. credential = \"env:WHM_TOKEN\""
                    .into(),
            ));
        }
        return Ok(CredentialRef::Env(name.to_string()));
    }
    if let Some(path) = value.strip_prefix("file:") {
        if path.trim().is_empty() {
            return Err((
                "file: must be followed by a path".into(),
                "e.g. credential = \"file:secrets/web1.token\" (relative to the inventory's folder)".into(),
            ));
        }
        return Ok(CredentialRef::File(base.join(path.trim())));
    }
    Err((
        "this is not a credential reference (env:NAME, file:PATH or prompt); literal secrets are refused and the value is not shown".into(),
        LITERAL_HINT.into(),
    ))
}

/// Why a reference could not be read (without the value, which is never part of an error).
fn read_ref(cref: &CredentialRef) -> Result<(Secret, Option<String>), (String, String)> {
    match cref {
        CredentialRef::Env(name) => match std::env::var_os(name) {
            None => Err((
                format!("environment variable {name} is not set"),
                format!(
                    "export {name} before running tokenfleet, or use credential = \"file:PATH\""
                ),
            )),
            Some(v) => match v.into_string() {
                Err(_) => Err((
                    format!("environment variable {name} is not UTF-8"),
                    "set it to the token itself".into(),
                )),
                Ok(v) if v.trim().is_empty() => Err((
                    format!("environment variable {name} is empty"),
                    format!("set {name} to the token (it is read once, before the first request)"),
                )),
                Ok(v) => Ok((Secret::new(v), None)),
            },
        },
        CredentialRef::File(path) => read_file(path),
        CredentialRef::Prompt => {
            unreachable!("prompt references are not read from the environment")
        }
    }
}

fn read_file(path: &Path) -> Result<(Secret, Option<String>), (String, String)> {
    use std::io::Read;
    let shown = path.display();
    let fix =
        "create the file with just the token in it, readable by you only (chmod 600)".to_string();
    let meta = std::fs::metadata(path).map_err(|e| {
        (
            format!("cannot read credential file {shown}: {e}"),
            fix.clone(),
        )
    })?;
    if !meta.is_file() {
        return Err((
            format!("credential file {shown} is not a regular file"),
            fix,
        ));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_CREDENTIAL_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| {
            (
                format!("cannot read credential file {shown}: {e}"),
                fix.clone(),
            )
        })?;
    if bytes.len() as u64 > MAX_CREDENTIAL_BYTES {
        bytes.fill(0);
        return Err((
            format!("credential file {shown} is too large to be a credential"),
            fix,
        ));
    }
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let mut b = e.into_bytes();
            b.fill(0);
            return Err((format!("credential file {shown} is not UTF-8 text"), fix));
        }
    };
    let secret = Secret::new(text.trim_end());
    zeroize::Zeroize::zeroize(&mut text.into_bytes());
    if secret.is_empty() {
        return Err((format!("credential file {shown} is empty"), fix));
    }
    let mut warning = None;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            warning = Some(format!(
                "credential file {shown} is readable by group or others (mode {mode:03o}); run: chmod 600 {shown}"
            ));
        }
    }
    Ok((secret, warning))
}

/// Ask for a `prompt` credential; the argument says whose ("web1: root (WHM)").
pub type Prompt<'a> = dyn FnMut(&str) -> Result<Secret, String> + 'a;

/// Reads each distinct credential once. Failures are collected per reference (one problem per
/// broken reference, naming where it is used), warnings once per file.
#[derive(Default)]
pub struct Resolver {
    read: HashMap<CredentialRef, Result<Secret, usize>>,
    /// Failed references: (message, hint, places that write it, hosts or targets that use it).
    failures: Vec<(String, String, Vec<String>, Vec<String>)>,
    prompted: HashMap<(String, String), Result<Secret, ()>>,
    pub warnings: Vec<String>,
    prompt_problems: Vec<Problem>,
}

impl Resolver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Resolve an env or file reference (prompts are deferred: see [`Resolver::prompt`]).
    /// `used_at` is the location that writes the reference, `by` the host (or host/account)
    /// that uses it. `None` = failed (a problem is recorded).
    pub fn read(&mut self, cref: &CredentialRef, used_at: &str, by: &str) -> Option<Secret> {
        if let Some(r) = self.read.get(cref) {
            return match r {
                Ok(s) => Some(s.clone()),
                Err(i) => {
                    let (_, _, places, users) = &mut self.failures[*i];
                    if !places.iter().any(|p| p == used_at) {
                        places.push(used_at.to_string());
                    }
                    if !users.iter().any(|u| u == by) {
                        users.push(by.to_string());
                    }
                    None
                }
            };
        }
        match read_ref(cref) {
            Ok((s, warning)) => {
                self.warnings.extend(warning);
                self.read.insert(cref.clone(), Ok(s.clone()));
                Some(s)
            }
            Err((msg, hint)) => {
                self.failures
                    .push((msg, hint, vec![used_at.to_string()], vec![by.to_string()]));
                self.read.insert(cref.clone(), Err(self.failures.len() - 1));
                None
            }
        }
    }

    /// Ask once per distinct (host, user) for a `prompt` credential.
    pub fn prompt(
        &mut self,
        host: &str,
        user: &str,
        label: &str,
        used_at: &str,
        ask: &mut Prompt<'_>,
    ) -> Option<Secret> {
        let key = (host.to_string(), user.to_string());
        if let Some(r) = self.prompted.get(&key) {
            return r.as_ref().ok().cloned();
        }
        let r = match ask(label) {
            Ok(s) if !s.is_empty() => Ok(s),
            Ok(_) => {
                self.prompt_problems.push(
                    Problem::new(used_at, format!("no credential was entered for {label}"))
                        .field("credential")
                        .hint("enter the token when asked, or use credential = \"env:NAME\""),
                );
                Err(())
            }
            Err(e) => {
                self.prompt_problems.push(
                    Problem::new(
                        used_at,
                        format!("cannot ask for the credential of {label}: {e}"),
                    )
                    .field("credential")
                    .hint("run on a terminal, or use credential = \"env:NAME\" for automation"),
                );
                Err(())
            }
        };
        self.prompted.insert(key, r.clone());
        r.ok()
    }

    /// Every failure so far, one problem per broken reference.
    pub fn problems(&self) -> Vec<Problem> {
        let mut out: Vec<Problem> = self
            .failures
            .iter()
            .map(|(msg, hint, places, users)| {
                let mut more = Vec::new();
                if places.len() > 1 {
                    let n = places.len() - 1;
                    more.push(format!(
                        "also written at {n} other place{}",
                        if n == 1 { "" } else { "s" }
                    ));
                }
                if users.len() > 1 {
                    let names: Vec<&str> = users.iter().map(String::as_str).collect();
                    more.push(format!("used by {}", crate::error::name_list(&names, 3)));
                }
                let more = if more.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", more.join("; "))
                };
                Problem::new(&places[0], format!("{msg}{more}"))
                    .field("credential")
                    .hint(hint.clone())
            })
            .collect();
        out.extend(self.prompt_problems.iter().cloned());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn parses_the_three_forms_and_resolves_files_against_the_base() {
        let base = Path::new("/inv");
        assert_eq!(
            parse_ref("env:WHM_TOKEN", base),
            Ok(CredentialRef::Env("WHM_TOKEN".into()))
        );
        assert_eq!(parse_ref(" prompt ", base), Ok(CredentialRef::Prompt));
        assert_eq!(
            parse_ref("file:s/a.token", base),
            Ok(CredentialRef::File(PathBuf::from("/inv/s/a.token")))
        );
        assert_eq!(
            parse_ref("file:/abs/a", base),
            Ok(CredentialRef::File(PathBuf::from("/abs/a")))
        );
    }

    #[test]
    fn refuses_literals_without_echoing_them() {
        let secret = "JPQNSRU0DH448UJLGXH7KVJECC5QN9N9";
        for v in [secret, "env:", "env:9X", "env:A-B", "file:", "", "Prompt"] {
            let (msg, hint) = parse_ref(v, Path::new(".")).unwrap_err();
            assert!(!msg.contains(secret) && !hint.contains(secret));
        }
        let (_, hint) = parse_ref(secret, Path::new(".")).unwrap_err();
        assert!(hint.contains("env:NAME"), "{hint}");
    }

    #[test]
    fn env_missing_empty_and_read_once() {
        let mut r = Resolver::new();
        // Variable names unique to this test: tests run in parallel threads.
        let missing = CredentialRef::Env("TOKENFLEET_TEST_CRED_MISSING_91".into());
        assert!(
            r.read(&missing, "inv.toml:3 (hosts[0] web1)", "web1")
                .is_none()
        );
        assert!(
            r.read(&missing, "inv.toml:9 (hosts[1] web2)", "web2")
                .is_none()
        );
        let problems = r.problems();
        assert_eq!(
            problems.len(),
            1,
            "one problem per broken reference: {problems:?}"
        );
        assert!(
            problems[0]
                .message
                .contains("TOKENFLEET_TEST_CRED_MISSING_91")
        );
        assert!(
            problems[0]
                .message
                .contains("also written at 1 other place; used by web1, web2")
        );
        assert_eq!(problems[0].location, "inv.toml:3 (hosts[0] web1)");
        // SAFETY: set_var is unsafe because other threads may read the environment at the same
        // time; this variable name is used by this test only.
        unsafe {
            std::env::set_var("TOKENFLEET_TEST_CRED_EMPTY_91", "  ");
        }
        let mut r = Resolver::new();
        assert!(
            r.read(
                &CredentialRef::Env("TOKENFLEET_TEST_CRED_EMPTY_91".into()),
                "x",
                "h"
            )
            .is_none()
        );
        assert!(r.problems()[0].message.contains("is empty"));
    }

    #[test]
    fn file_is_trimmed_read_once_and_loose_modes_warn() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.token");
        std::fs::write(&path, "SECRETVALUE123\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let cref = CredentialRef::File(path.clone());
        let mut r = Resolver::new();
        let s = r.read(&cref, "a", "h").unwrap();
        assert_eq!(s.expose(), "SECRETVALUE123");
        // Second read comes from the cache even if the file is gone.
        std::fs::remove_file(&path).unwrap();
        assert_eq!(r.read(&cref, "b", "h").unwrap().expose(), "SECRETVALUE123");
        #[cfg(unix)]
        {
            assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
            assert!(r.warnings[0].contains("chmod 600"));
            assert!(!r.warnings[0].contains("SECRETVALUE"));
        }
        assert!(r.problems().is_empty());
    }

    #[test]
    fn file_missing_or_empty_is_a_problem() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n \n").unwrap();
        let mut r = Resolver::new();
        assert!(r.read(&CredentialRef::File(empty), "here", "h").is_none());
        assert!(
            r.read(&CredentialRef::File(dir.path().join("nope")), "there", "h")
                .is_none()
        );
        let p = r.problems();
        assert_eq!(p.len(), 2);
        assert!(p[0].message.contains("is empty"));
        assert!(p[1].message.contains("cannot read"));
        assert_eq!(p[1].location, "there");
    }

    #[test]
    fn prompts_once_per_host_and_user() {
        let mut calls = Vec::new();
        let mut ask = |label: &str| {
            calls.push(label.to_string());
            Ok(Secret::new("typed"))
        };
        let mut r = Resolver::new();
        assert!(
            r.prompt("web1", "root", "web1: root (WHM)", "l", &mut ask)
                .is_some()
        );
        assert!(
            r.prompt("web1", "root", "web1: root (WHM)", "l", &mut ask)
                .is_some()
        );
        assert!(
            r.prompt("web2", "root", "web2: root (WHM)", "l", &mut ask)
                .is_some()
        );
        assert_eq!(calls, vec!["web1: root (WHM)", "web2: root (WHM)"]);
        let mut fail = |_: &str| Err("no terminal".to_string());
        assert!(
            r.prompt("web3", "root", "web3: root (WHM)", "l3", &mut fail)
                .is_none()
        );
        assert_eq!(r.problems().len(), 1);
        assert_eq!(r.problems()[0].location, "l3");
    }
}
