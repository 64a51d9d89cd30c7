//! Why this module exists: the recipients decide who can ever read the secrets of a run, so a
//! mistake here must fail before anything is contacted, with an age/rage-style message that
//! says what was wrong and how to fix it. It parses `-r`, `-R FILE` (`-R -`: stdin) and
//! `--passphrase` into [`Recipients`], and never echoes a secret key that was passed by mistake.
//! As age does, it takes native X25519 keys (`age1…`) and SSH keys (`ssh-ed25519`, `ssh-rsa`):
//! a user's SSH key is often the only key they have.

use crate::error::{InputError, Problem};
use crate::secret::Secret;
use age::x25519;
use std::path::{Path, PathBuf};

/// Who the handoff (and the journal's sealed secrets) are sealed to.
#[derive(Clone)]
pub struct Recipients {
    pub(crate) kind: RecipientKind,
    /// scrypt work factor (log2 N) for passphrase sealing; `None` = age's ~1 s calibration.
    pub(crate) scrypt_log_n: Option<u8>,
}

#[derive(Clone)]
pub(crate) enum RecipientKind {
    Keys(Vec<Recipient>),
    Passphrase(Secret),
}

/// One public key a run seals to: a native age key or an SSH key, as age takes them. Its
/// `Display` is the key as the user gives it (`age1…`, `ssh-ed25519 AAAA…`, no comment): what
/// the journal records and resume parses again.
#[derive(Clone, Debug)]
pub enum Recipient {
    X25519(x25519::Recipient),
    Ssh(age::ssh::Recipient),
}

impl Recipient {
    pub(crate) fn as_age(&self) -> &dyn age::Recipient {
        match self {
            Recipient::X25519(r) => r,
            Recipient::Ssh(r) => r,
        }
    }
}

impl From<x25519::Recipient> for Recipient {
    fn from(r: x25519::Recipient) -> Self {
        Recipient::X25519(r)
    }
}

impl std::fmt::Display for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Recipient::X25519(r) => r.fmt(f),
            Recipient::Ssh(r) => r.fmt(f),
        }
    }
}

impl PartialEq for Recipient {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

/// An SSH public key line (`ssh-ed25519 AAAA… comment`), as age takes it with `-r`/`-R`.
fn parse_ssh_recipient(s: &str, location: &str) -> Result<Recipient, Problem> {
    use age::ssh::ParseRecipientKeyError as E;
    let kind = s.split_whitespace().next().unwrap_or("ssh");
    let unsupported = || {
        Problem::new(
            location,
            format!(
                "SSH keys of type {kind} are not supported (age takes ssh-ed25519 and ssh-rsa)"
            ),
        )
        .hint("use an ssh-ed25519 key (`ssh-keygen -t ed25519`) or an age key (age1…)")
    };
    if kind != "ssh-ed25519" && kind != "ssh-rsa" {
        return Err(unsupported());
    }
    match s.parse::<age::ssh::Recipient>() {
        Ok(r) => Ok(Recipient::Ssh(r)),
        Err(E::RsaModulusTooSmall) => Err(Problem::new(
            location,
            "this ssh-rsa key is shorter than 2048 bits, too weak for age",
        )
        .hint("use an ssh-ed25519 key (`ssh-keygen -t ed25519`) or an age key (age1…)")),
        Err(E::RsaModulusTooLarge) => Err(Problem::new(
            location,
            "this ssh-rsa key is longer than 4096 bits, more than age supports",
        )
        .hint("use an ssh-ed25519 key (`ssh-keygen -t ed25519`) or an age key (age1…)")),
        Err(E::Unsupported(_) | E::Ignore) => Err(unsupported()),
        Err(_) => Err(Problem::new(location, format!("invalid {kind} public key"))
            .hint("copy the whole line of the .pub file (`ssh-ed25519 AAAA… comment`)")),
    }
}

impl std::fmt::Debug for Recipients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            RecipientKind::Keys(k) => f.debug_tuple("Recipients").field(k).finish(),
            RecipientKind::Passphrase(_) => f.write_str("Recipients(passphrase)"),
        }
    }
}

const SECRET_KEY_HINT: &str = "age public keys start with age1; did you pass the identity file \
(AGE-SECRET-KEY-…) instead? Print its public key with `age-keygen -y FILE`";

/// Parse one public key. `location` is where it came from (`-r` or `file:line`). The error never
/// contains the input when it looks like a secret key.
pub fn parse_recipient(input: &str, location: &str) -> Result<Recipient, Problem> {
    let s = input.trim();
    if s.to_ascii_uppercase().starts_with("AGE-SECRET-KEY-") {
        return Err(Problem::new(
            location,
            "this is an age secret key (identity), not a recipient",
        )
        .hint(SECRET_KEY_HINT));
    }
    if s.to_ascii_uppercase().starts_with("AGE-PLUGIN-") {
        return Err(
            Problem::new(location, "this is an age plugin identity, not a recipient")
                .hint(SECRET_KEY_HINT),
        );
    }
    if s.starts_with("ssh-") || s.starts_with("ecdsa-") || s.starts_with("sk-ssh-") {
        return parse_ssh_recipient(s, location);
    }
    if s.starts_with("-----BEGIN") {
        return Err(Problem::new(
            location,
            "this is a PEM/OpenSSH block (a private key?), not a public key",
        )
        .hint("give the public key: age1…, or the line of an SSH key's .pub file"));
    }
    if s.is_empty() {
        return Err(
            Problem::new(location, "empty recipient").hint("give an age public key, e.g. -r age1…")
        );
    }
    match s.parse::<x25519::Recipient>() {
        Ok(r) => Ok(Recipient::X25519(r)),
        Err(why) => {
            let lower = s.to_ascii_lowercase();
            if let Some(rest) = lower.strip_prefix("age1") {
                // age1NAME1… is a plugin recipient (age1yubikey1…, age1tpm1…): '1' is not in
                // the Bech32 data alphabet, so a second '1' means a longer prefix.
                if rest.contains('1') {
                    return Err(Problem::new(
                        location,
                        format!("'{s}' is an age plugin recipient; plugins are not supported"),
                    )
                    .hint("use a native X25519 age key (age1… from age-keygen)"));
                }
                Err(
                    Problem::new(location, format!("invalid age public key '{s}': {why}"))
                        .hint("copy the whole key as age-keygen printed it (62 characters, age1…)"),
                )
            } else {
                Err(
                    Problem::new(location, format!("'{s}' is not an age public key"))
                        .hint("age public keys start with age1"),
                )
            }
        }
    }
}

/// Parse a recipients file as `age -R` reads it: one key per line, `#` comments, blank lines;
/// `-` is standard input.
pub fn parse_recipients_file(path: &Path) -> Result<Vec<Recipient>, InputError> {
    let stdin = path == Path::new("-");
    let shown = if stdin {
        "-R - (standard input)".to_string()
    } else {
        path.display().to_string()
    };
    let read = if stdin {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut b).map(|_| b)
    } else {
        std::fs::read(path)
    };
    let text = match read {
        Ok(b) => b,
        Err(e) => {
            return Err(InputError::one(
                Problem::new(shown.clone(), format!("cannot read recipients file: {e}"))
                    .hint("check the path given to -R"),
            ));
        }
    };
    let text = zeroize::Zeroizing::new(text);
    let Ok(text) = std::str::from_utf8(&text) else {
        return Err(InputError::one(
            Problem::new(shown, "recipients file is not text (UTF-8)")
                .hint("-R takes a text file of public keys (age1…, ssh-ed25519 …), one per line"),
        ));
    };
    if text.starts_with("age-encryption.org/") || text.starts_with("-----BEGIN AGE ENCRYPTED") {
        return Err(InputError::one(
            Problem::new(
                shown,
                "this is an age-encrypted file, not a recipients file",
            )
            .hint("-R takes a text file of public keys (age1…, ssh-ed25519 …), one per line"),
        ));
    }
    let mut keys = Vec::new();
    let mut problems = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        match parse_recipient(l, &format!("{shown}:{}", i + 1)) {
            Ok(k) => keys.push(k),
            Err(p) => problems.push(p),
        }
    }
    if !problems.is_empty() {
        return Err(InputError { problems });
    }
    if keys.is_empty() {
        return Err(InputError::one(
            Problem::new(shown, "recipients file has no recipients")
                .hint("add public keys (age1…, ssh-ed25519 …), one per line"),
        ));
    }
    Ok(keys)
}

impl Recipients {
    /// Build the recipients of a run from `-r` values, `-R` files and `--passphrase`. Collects
    /// every problem; fails when there is no recipient at all or a passphrase is mixed with keys.
    pub fn from_args(
        keys: &[String],
        files: &[PathBuf],
        passphrase: Option<Secret>,
    ) -> Result<Recipients, InputError> {
        let mut problems = Vec::new();
        let mut parsed: Vec<Recipient> = Vec::new();
        for k in keys {
            match parse_recipient(k, "-r") {
                Ok(r) => parsed.push(r),
                Err(p) => problems.push(p),
            }
        }
        if files
            .iter()
            .filter(|f| f.as_path() == Path::new("-"))
            .count()
            > 1
        {
            problems.push(
                Problem::new("-R -", "standard input can be read only once")
                    .hint("give `-R -` once; put every key in what you pipe in"),
            );
        }
        for f in files {
            match parse_recipients_file(f) {
                Ok(rs) => parsed.extend(rs),
                Err(e) => problems.extend(e.problems),
            }
        }
        if let Some(p) = &passphrase {
            if !keys.is_empty() || !files.is_empty() {
                problems.push(
                    Problem::new("--passphrase", "a passphrase cannot be combined with -r/-R")
                        .hint(
                            "age seals a file either to one passphrase or to public keys; pick \
                             one (several -r keys let several people open it)",
                        ),
                );
            } else if p.is_empty() {
                problems.push(
                    Problem::new("--passphrase", "the passphrase is empty")
                        .hint("type a passphrase, or set TOKENFLEET_PASSPHRASE"),
                );
            }
        }
        if !problems.is_empty() {
            return Err(InputError { problems });
        }
        if let Some(p) = passphrase {
            return Ok(Recipients::passphrase(p));
        }
        if parsed.is_empty() {
            return Err(InputError::one(
                Problem::new("-o", "no recipients for the handoff file").hint(
                    "add -r age1… (your public key: `age-keygen -y key.txt`), -R recipients.txt, \
                     or --passphrase",
                ),
            ));
        }
        Ok(Recipients::keys(parsed))
    }

    /// Recipients from parsed keys (duplicates removed, order kept).
    pub fn keys<K: Into<Recipient>>(keys: impl IntoIterator<Item = K>) -> Recipients {
        let mut uniq: Vec<Recipient> = Vec::new();
        for k in keys.into_iter().map(Into::into) {
            if !uniq.contains(&k) {
                uniq.push(k);
            }
        }
        Recipients {
            kind: RecipientKind::Keys(uniq),
            scrypt_log_n: None,
        }
    }

    /// Seal to a passphrase (scrypt).
    pub fn passphrase(passphrase: Secret) -> Recipients {
        Recipients {
            kind: RecipientKind::Passphrase(passphrase),
            scrypt_log_n: None,
        }
    }

    #[cfg(test)]
    /// Fix the scrypt work factor (log2 N) instead of age's ~1 s calibration. Tests use this;
    /// so can automation that trades passphrase strength for speed.
    pub fn set_scrypt_work_factor(&mut self, log_n: u8) {
        assert!(log_n > 0 && log_n < 64, "scrypt log_n must be in 1..64");
        self.scrypt_log_n = Some(log_n);
    }

    /// The public keys (`age1…`, `ssh-ed25519 …`), empty in passphrase mode. Safe to print and
    /// journal.
    pub fn public_keys(&self) -> Vec<String> {
        match &self.kind {
            RecipientKind::Keys(k) => k.iter().map(|r| r.to_string()).collect(),
            RecipientKind::Passphrase(_) => Vec::new(),
        }
    }

    /// Sealed with `--passphrase` (resume asks for it; no `--identity` is needed).
    pub fn is_passphrase(&self) -> bool {
        matches!(self.kind, RecipientKind::Passphrase(_))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn key() -> (x25519::Identity, String) {
        let id = x25519::Identity::generate();
        let pk = id.to_public().to_string();
        (id, pk)
    }

    #[test]
    fn accepts_keys_and_dedupes() {
        let (_, a) = key();
        let (_, b) = key();
        let r = Recipients::from_args(&[a.clone(), b.clone(), a.clone()], &[], None).unwrap();
        assert_eq!(r.public_keys(), vec![a, b]);
        assert!(!r.is_passphrase());
    }

    #[test]
    fn secret_key_is_refused_without_echo() {
        let id = x25519::Identity::generate();
        let sk = age::secrecy::ExposeSecret::expose_secret(&id.to_string()).to_string();
        let e = Recipients::from_args(std::slice::from_ref(&sk), &[], None).unwrap_err();
        let text = e.to_string();
        assert!(!text.contains(&sk), "secret key echoed: {text}");
        assert!(!text.contains(&sk[15..40]));
        assert!(text.contains("did you pass the identity file"), "{text}");
    }

    #[test]
    fn invalid_keys_are_named() {
        let (_, a) = key();
        // Change the last character (Bech32's checksum catches any single substitution).
        let last = if a.ends_with('x') { 'q' } else { 'x' };
        let broken = format!("{}{last}", &a[..a.len() - 1]);
        let e = Recipients::from_args(&[broken.clone(), "bob".into()], &[], None).unwrap_err();
        assert_eq!(e.problems.len(), 2);
        assert!(e.problems[0].message.contains(&broken), "{e}");
        assert!(
            e.problems[1]
                .message
                .contains("'bob' is not an age public key"),
            "{e}"
        );
        assert!(e.problems[1].hint.as_deref().unwrap().contains("age1"));
        let e = parse_recipient(
            "age1yubikey1qwt50d05nh5vutpdzmlg5wn80xq5negm4uj9ghv0snvdd3yysf5yw3rhl3t",
            "-r",
        )
        .unwrap_err();
        assert!(e.message.contains("plugin"), "{e}");
        let e = parse_recipient("ssh-ed25519 AAAAC3Nza user@host", "-r").unwrap_err();
        assert!(e.message.contains("invalid ssh-ed25519 public key"), "{e}");
        let e = parse_recipient("ecdsa-sha2-nistp256 AAAAE2VjZHNh user@host", "-r").unwrap_err();
        assert!(e.message.contains("not supported"), "{e}");
    }

    #[test]
    fn recipients_file_names_file_and_line() {
        let d = tempfile::tempdir().unwrap();
        let (_, a) = key();
        let id = x25519::Identity::generate();
        let sk = age::secrecy::ExposeSecret::expose_secret(&id.to_string()).to_string();
        let p = d.path().join("rcpt.txt");
        std::fs::write(&p, format!("# team\n\n{a}\n  \nnot-a-key\n{sk}\n")).unwrap();
        let e = Recipients::from_args(&[], std::slice::from_ref(&p), None).unwrap_err();
        assert_eq!(e.problems.len(), 2, "{e}");
        assert_eq!(e.problems[0].location, format!("{}:5", p.display()));
        assert_eq!(e.problems[1].location, format!("{}:6", p.display()));
        assert!(!e.to_string().contains(&sk));
        std::fs::write(&p, format!("# team\n\n{a}\n")).unwrap();
        let r = Recipients::from_args(&[], std::slice::from_ref(&p), None).unwrap();
        assert_eq!(r.public_keys(), vec![a]);
        let e = Recipients::from_args(&[], &[d.path().join("missing")], None).unwrap_err();
        assert!(
            e.problems[0]
                .message
                .contains("cannot read recipients file"),
            "{e}"
        );
    }

    #[test]
    fn passphrase_rules() {
        let (_, a) = key();
        let e = Recipients::from_args(&[a], &[], Some(Secret::new("pw"))).unwrap_err();
        assert_eq!(e.problems[0].location, "--passphrase");
        assert!(e.problems[0].message.contains("cannot be combined"));
        let e = Recipients::from_args(&[], &[], Some(Secret::new(""))).unwrap_err();
        assert!(e.problems[0].message.contains("empty"));
        let r = Recipients::from_args(&[], &[], Some(Secret::new("pw"))).unwrap();
        assert!(r.is_passphrase());
        assert!(r.public_keys().is_empty());
        assert_eq!(format!("{r:?}"), "Recipients(passphrase)");
    }

    /// An ed25519 key pair from ssh-keygen in `dir` (`None` where it is missing, outside CI).
    pub(crate) fn ssh_keygen(dir: &Path, pass: &str) -> Option<(PathBuf, String)> {
        let key = dir.join(format!("id_{}", pass.len()));
        let made = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-C", "a@b", "-N", pass, "-f"])
            .arg(&key)
            .output();
        if !made.is_ok_and(|o| o.status.success()) {
            assert!(std::env::var_os("CI").is_none(), "CI must have ssh-keygen");
            eprintln!("skipping: ssh-keygen not available");
            return None;
        }
        let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        Some((key, public.trim().to_string()))
    }

    #[test]
    fn ssh_recipients_as_age_takes_them() {
        let d = tempfile::tempdir().unwrap();
        let Some((_, public)) = ssh_keygen(d.path(), "") else {
            return;
        };
        // With its comment, as the .pub file has it; printed (and journaled) without.
        let r = parse_recipient(&public, "-r").unwrap();
        assert!(matches!(r, Recipient::Ssh(_)));
        let shown = r.to_string();
        assert!(
            public.starts_with(&shown) && !shown.contains("a@b"),
            "{shown}"
        );
        assert_eq!(parse_recipient(&shown, "journal").unwrap(), r);
        let f = d.path().join("team.txt");
        let (_, age_key) = key();
        std::fs::write(&f, format!("# team\n{public}\n{age_key}\n{public}\n")).unwrap();
        let rs = Recipients::from_args(&[], &[f], None).unwrap();
        assert_eq!(
            rs.public_keys(),
            vec![shown, age_key],
            "deduplicated, in order"
        );
        let twice = Recipients::from_args(&[], &["-".into(), "-".into()], None).unwrap_err();
        assert!(twice.problems[0].message.contains("only once"), "{twice}");
    }

    #[test]
    fn no_recipient_is_an_error_with_hint() {
        let e = Recipients::from_args(&[], &[], None).unwrap_err();
        assert!(e.problems[0].message.contains("no recipients"));
        assert!(e.problems[0].hint.as_deref().unwrap().contains("-r age1"));
    }
}
