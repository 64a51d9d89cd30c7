//! Why this module exists: one place turns plaintext into age messages ([`Sealer`]) and age
//! messages back into plaintext ([`Keys`]: identity files and/or a passphrase), so the handoff,
//! the journal and `open` all agree on formats, armor detection and error wording. Decrypted
//! bytes come back in zeroizing buffers; errors never contain key material.

use super::recipients::{Recipient, RecipientKind, Recipients};
use crate::secret::Secret;
use age::armor::{ArmoredReader, ArmoredWriter, Format};
use age::secrecy::SecretString;
use age::{scrypt, x25519};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Anything that went wrong sealing, opening or parsing. Never carries a secret.
///
/// Each message says its cause once: an I/O error is part of the message and not also a
/// `source()` (a field named `source` would be both, and every chain printer, `{:#}` and
/// [`crate::error::chain`], would print "No space left on device (os error 28)" twice).
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("{}: {error}", path.display())]
    Io { path: PathBuf, error: io::Error },
    #[error("could not encrypt: {0}")]
    Encrypt(String),
    /// A file or record is not what it should be, or cannot be decrypted.
    #[error("{location}: {message}{}", hint.as_ref().map(|h| format!("\n  hint: {h}")).unwrap_or_default())]
    Invalid {
        location: String,
        message: String,
        hint: Option<String>,
    },
    /// Decrypting `what` needs the passphrase and none was given.
    #[error("{what} is sealed with a passphrase; give it (prompt or TOKENFLEET_PASSPHRASE)")]
    NeedPassphrase { what: String },
    /// Decrypting `what` needs an identity file and none was given.
    #[error(
        "{what} is sealed to public keys; pass -k/--identity KEY (the matching age identity file, AGE-SECRET-KEY-1…, or SSH private key)"
    )]
    NeedIdentity { what: String },
    /// The journal could not be created (the run has not started).
    #[error("cannot create the journal {}: {error}", path.display())]
    CreateJournal { path: PathBuf, error: io::Error },
}

impl SealError {
    pub(crate) fn io(path: &Path, error: io::Error) -> Self {
        SealError::Io {
            path: path.to_path_buf(),
            error,
        }
    }

    pub(crate) fn invalid(location: impl Into<String>, message: impl Into<String>) -> Self {
        SealError::Invalid {
            location: location.into(),
            message: message.into(),
            hint: None,
        }
    }

    pub(crate) fn with_hint(self, h: impl Into<String>) -> Self {
        match self {
            SealError::Invalid {
                location, message, ..
            } => SealError::Invalid {
                location,
                message,
                hint: Some(h.into()),
            },
            other => other,
        }
    }
}

#[derive(Clone)]
enum SealTo {
    Keys(Vec<Recipient>),
    Passphrase {
        passphrase: Secret,
        log_n: Option<u8>,
    },
}

/// Encrypts byte slices to a fixed set of recipients. Cheap to share between threads.
#[derive(Clone)]
pub struct Sealer {
    to: SealTo,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.to {
            SealTo::Keys(k) => f.debug_tuple("Sealer").field(k).finish(),
            SealTo::Passphrase { .. } => f.write_str("Sealer(passphrase)"),
        }
    }
}

impl Sealer {
    /// A sealer for the handoff file: to the public keys, or to the passphrase (one scrypt per
    /// [`Sealer::seal`] call, ~1 s: do not use it per secret; see `journal::JournalSealing`).
    pub fn new(recipients: &Recipients) -> Sealer {
        let to = match &recipients.kind {
            RecipientKind::Keys(k) => SealTo::Keys(k.clone()),
            RecipientKind::Passphrase(p) => SealTo::Passphrase {
                passphrase: p.clone(),
                log_n: recipients.scrypt_log_n,
            },
        };
        Sealer { to }
    }

    /// A sealer to the given public keys (X25519 or SSH).
    pub fn to_keys<K: Into<Recipient>>(keys: impl IntoIterator<Item = K>) -> Sealer {
        Sealer {
            to: SealTo::Keys(keys.into_iter().map(Into::into).collect()),
        }
    }

    /// Encrypt `plaintext` into one age message, ASCII-armored or binary.
    pub fn seal(&self, plaintext: &[u8], armor: bool) -> Result<Vec<u8>, SealError> {
        let enc_err = |e: io::Error| SealError::Encrypt(e.to_string());
        let mut w = self.seal_to(Vec::new(), armor)?;
        w.write_all(plaintext).map_err(enc_err)?;
        w.finish().map_err(enc_err)
    }

    /// An age message written as a stream into `out`: write the plaintext, then
    /// [`SealWriter::finish`]. Only one chunk of plaintext is held at a time.
    pub fn seal_to<W: Write>(&self, out: W, armor: bool) -> Result<SealWriter<W>, SealError> {
        let encryptor = match &self.to {
            SealTo::Keys(keys) => {
                age::Encryptor::with_recipients(keys.iter().map(Recipient::as_age))
                    .map_err(|e| SealError::Encrypt(e.to_string()))?
            }
            SealTo::Passphrase { passphrase, log_n } => {
                let mut r = scrypt::Recipient::new(SecretString::from(passphrase.expose()));
                if let Some(n) = log_n {
                    r.set_work_factor(*n);
                }
                age::Encryptor::with_recipients(std::iter::once(&r as &dyn age::Recipient))
                    .map_err(|e| SealError::Encrypt(e.to_string()))?
            }
        };
        let format = if armor {
            Format::AsciiArmor
        } else {
            Format::Binary
        };
        let enc_err = |e: io::Error| SealError::Encrypt(e.to_string());
        let armored = ArmoredWriter::wrap_output(out, format).map_err(enc_err)?;
        Ok(SealWriter(encryptor.wrap_output(armored).map_err(enc_err)?))
    }

    /// Seal one secret as a binary age message, base64 (the journal's `sealed` field).
    pub fn seal_secret(&self, secret: &Secret) -> Result<String, SealError> {
        Ok(B64.encode(self.seal(secret.expose().as_bytes(), false)?))
    }
}

/// An age message being written (see [`Sealer::seal_to`]).
pub struct SealWriter<W: Write>(age::stream::StreamWriter<ArmoredWriter<W>>);

impl<W: Write> Write for SealWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<W: Write> SealWriter<W> {
    /// Write the last chunk (and the armor's end line); returns the output.
    pub fn finish(self) -> io::Result<W> {
        self.0.finish()?.finish()
    }
}

/// What can open age messages: X25519 identities, SSH private keys (decrypted when loaded)
/// and/or a passphrase.
#[derive(Clone, Default)]
pub struct Keys {
    identities: Vec<x25519::Identity>,
    ssh: Vec<age::ssh::Identity>,
    passphrase: Option<Secret>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Keys {{ identities: {}, passphrase: {} }}",
            self.identities.len() + self.ssh.len(),
            self.passphrase.is_some()
        )
    }
}

fn is_age_file(bytes: &[u8]) -> bool {
    bytes.starts_with(b"age-encryption.org/") || bytes.starts_with(b"-----BEGIN AGE ENCRYPTED FILE")
}

impl Keys {
    pub fn new() -> Keys {
        Keys::default()
    }

    #[cfg(test)]
    pub fn from_identities(identities: Vec<x25519::Identity>) -> Keys {
        Keys {
            identities,
            ssh: Vec::new(),
            passphrase: None,
        }
    }

    pub fn with_passphrase(mut self, passphrase: Secret) -> Keys {
        self.passphrase = Some(passphrase);
        self
    }

    pub fn add_identity(&mut self, identity: x25519::Identity) {
        self.identities.push(identity);
    }

    #[cfg(test)]
    pub fn identities(&self) -> &[x25519::Identity] {
        &self.identities
    }

    pub fn passphrase(&self) -> Option<&Secret> {
        self.passphrase.as_ref()
    }

    #[cfg(test)]
    /// True when the identity file is itself an age file (passphrase-protected), so the
    /// caller knows to ask for the passphrase before [`Keys::load_identity_file`].
    pub fn identity_file_is_encrypted(path: &Path) -> Result<bool, SealError> {
        let mut head = [0u8; 40];
        let mut f = std::fs::File::open(path).map_err(|e| SealError::io(path, e))?;
        let mut n = 0;
        while n < head.len() {
            match f.read(&mut head[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) => return Err(SealError::io(path, e)),
            }
        }
        Ok(is_age_file(&head[..n]))
    }

    /// Add the identities of an age identity file (`AGE-SECRET-KEY-1…` lines, `#` comments) or
    /// of an OpenSSH private key (ed25519, rsa), as `age -i` takes them. A passphrase-encrypted
    /// identity file or SSH key is decrypted with this `Keys`' passphrase (none yet:
    /// [`SealError::NeedPassphrase`], so the caller asks and loads it again).
    pub fn load_identity_file(&mut self, path: &Path) -> Result<usize, SealError> {
        let shown = path.display().to_string();
        let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| SealError::io(path, e))?);
        if bytes.starts_with(b"-----BEGIN OPENSSH PRIVATE KEY-----")
            || bytes.starts_with(b"-----BEGIN RSA PRIVATE KEY-----")
        {
            return self.load_ssh_key(&bytes, &shown);
        }
        let text = if is_age_file(&bytes) {
            if self.passphrase.is_none() {
                return Err(SealError::NeedPassphrase {
                    what: format!("identity file {shown}"),
                });
            }
            let only_pass = Keys {
                passphrase: self.passphrase.clone(),
                ..Keys::default()
            };
            only_pass.decrypt(&bytes, &format!("identity file {shown}"))?
        } else {
            bytes
        };
        let Ok(text) = std::str::from_utf8(&text) else {
            return Err(
                SealError::invalid(&shown, "identity file is not text (UTF-8)")
                    .with_hint("--identity takes a file of AGE-SECRET-KEY-1… lines (age-keygen)"),
            );
        };
        let mut found = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            match l.parse::<x25519::Identity>() {
                Ok(id) => found.push(id),
                Err(_) => {
                    let loc = format!("{shown}:{}", i + 1);
                    let e = SealError::invalid(loc, "not an age identity (AGE-SECRET-KEY-1…)");
                    let hint = if l.starts_with("age1") {
                        "this line is a public key; -k/--identity needs the secret key file that \
                         age-keygen wrote"
                    } else if l.starts_with("ssh-") {
                        "this is an SSH public key; -k/--identity needs the private key file \
                         (e.g. ~/.ssh/id_ed25519, not the .pub)"
                    } else if l.starts_with("-----BEGIN") {
                        "SSH private keys are read in OpenSSH format (-----BEGIN OPENSSH PRIVATE \
                         KEY-----); convert with `ssh-keygen -p -f FILE`"
                    } else {
                        "an age identity file holds AGE-SECRET-KEY-1… lines and # comments"
                    };
                    return Err(e.with_hint(hint));
                }
            }
        }
        if found.is_empty() {
            return Err(SealError::invalid(shown, "identity file holds no identity")
                .with_hint("create one with `age-keygen -o key.txt`"));
        }
        let n = found.len();
        self.identities.extend(found);
        Ok(n)
    }

    /// An OpenSSH private key file, as `age -i` reads it. An encrypted one is opened with this
    /// `Keys`' passphrase; a wrong one is said so, never echoed.
    fn load_ssh_key(&mut self, bytes: &[u8], shown: &str) -> Result<usize, SealError> {
        use age::ssh::{Identity, UnsupportedKey};
        let hint_new =
            "create one with `ssh-keygen -t ed25519`, or use an age identity (age-keygen)";
        let id = Identity::from_buffer(bytes, Some(shown.to_string())).map_err(|e| {
            SealError::invalid(shown, format!("not a readable SSH private key: {e}"))
                .with_hint("age reads OpenSSH ed25519 and rsa private keys")
        })?;
        let id = match id {
            Identity::Unencrypted(_) => id,
            Identity::Encrypted(key) => {
                let Some(p) = &self.passphrase else {
                    return Err(SealError::NeedPassphrase {
                        what: format!("SSH key {shown}"),
                    });
                };
                match key.decrypt(SecretString::from(p.expose())) {
                    Ok(k) => Identity::Unencrypted(k),
                    Err(_) => {
                        return Err(SealError::invalid(
                            shown,
                            "the passphrase does not open this SSH key",
                        )
                        .with_hint(
                            "type the key's own passphrase (the one ssh asks for), or set \
                             TOKENFLEET_PASSPHRASE to it",
                        ));
                    }
                }
            }
            Identity::Unsupported(u) => {
                let why = match u {
                    UnsupportedKey::EncryptedPem => {
                        "an encrypted PEM key: convert it with `ssh-keygen -o -p -f FILE`".into()
                    }
                    UnsupportedKey::EncryptedSsh(c) => {
                        format!("encrypted with {c}, a cipher age cannot read")
                    }
                    UnsupportedKey::Hardware(t) => {
                        format!("a hardware key ({t}): use age-plugin-yubikey with the age CLI")
                    }
                    UnsupportedKey::Type(t) => format!("an SSH key of type {t}"),
                };
                return Err(SealError::invalid(
                    shown,
                    format!("this SSH key is not supported: {why}"),
                )
                .with_hint(hint_new));
            }
        };
        self.ssh.push(id);
        Ok(1)
    }

    /// Decrypt one age message (armored or binary). `what` names it in errors.
    pub fn decrypt(&self, ciphertext: &[u8], what: &str) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let bad = |m: String| SealError::invalid(what, m);
        let decryptor = age::Decryptor::new(ArmoredReader::new(ciphertext))
            .map_err(|e| bad(format!("not a readable age file: {e}")))?;
        let mut out = Zeroizing::new(Vec::new());
        let result = if decryptor.is_scrypt() {
            let Some(p) = &self.passphrase else {
                return Err(SealError::NeedPassphrase {
                    what: what.to_string(),
                });
            };
            let id = scrypt::Identity::new(SecretString::from(p.expose()));
            decryptor.decrypt(std::iter::once(&id as &dyn age::Identity))
        } else {
            if self.identities.is_empty() && self.ssh.is_empty() {
                return Err(SealError::NeedIdentity {
                    what: what.to_string(),
                });
            }
            decryptor.decrypt(
                self.identities
                    .iter()
                    .map(|i| i as &dyn age::Identity)
                    .chain(self.ssh.iter().map(|i| i as &dyn age::Identity)),
            )
        };
        let mut reader = result.map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => {
                bad("none of the given identities can open it".into()).with_hint(
                    "use the identity (or SSH private key) whose public key was given with -r/-R for this run",
                )
            }
            age::DecryptError::DecryptionFailed | age::DecryptError::KeyDecryptionFailed => {
                bad("could not decrypt (wrong passphrase or damaged file)".into())
            }
            other => bad(format!("could not decrypt: {other}")),
        })?;
        reader
            .read_to_end(&mut out)
            .map_err(|e| bad(format!("damaged or truncated age file: {e}")))?;
        Ok(out)
    }

    /// Open a journal `sealed` field (base64 of a binary age message) into a secret.
    pub fn unseal_b64(&self, sealed: &str, what: &str) -> Result<Secret, SealError> {
        let bytes = B64
            .decode(sealed.trim())
            .map_err(|e| SealError::invalid(what, format!("sealed secret is not base64: {e}")))?;
        let plain = self.decrypt(&bytes, what)?;
        let s = std::str::from_utf8(&plain)
            .map_err(|_| SealError::invalid(what, "sealed secret is not text"))?;
        Ok(Secret::new(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every printer (Display, anyhow's `{:#}`, `error::chain`) says each cause once: the disk
    /// error of a handoff or journal used to read "…(os error 28): …(os error 28)".
    #[test]
    fn every_cause_is_printed_once() {
        let enospc = || io::Error::from_raw_os_error(libc::ENOSPC);
        let cases = [
            (
                SealError::io(Path::new("out.age"), enospc()),
                "out.age: No space left on device (os error 28)",
            ),
            (
                SealError::CreateJournal {
                    path: "out.age.journal".into(),
                    error: enospc(),
                },
                "cannot create the journal out.age.journal: No space left on device (os error 28)",
            ),
        ];
        for (e, want) in cases {
            assert_eq!(e.to_string(), want);
            assert_eq!(crate::error::chain(&e), want);
            assert_eq!(format!("{:#}", anyhow::Error::from(e)), want);
        }
    }

    #[test]
    fn seal_roundtrips_with_age_decryptor_binary_and_armored() {
        let id = x25519::Identity::generate();
        let other = x25519::Identity::generate();
        let sealer = Sealer::to_keys(vec![id.to_public(), other.to_public()]);
        for armor in [false, true] {
            let ct = sealer.seal(b"secret payload", armor).unwrap();
            assert_eq!(ct.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----"), armor);
            // age's own decryptor, independent of Keys.
            let d = age::Decryptor::new(ArmoredReader::new(&ct[..])).unwrap();
            let mut r = d
                .decrypt(std::iter::once(&other as &dyn age::Identity))
                .unwrap();
            let mut pt = Vec::new();
            r.read_to_end(&mut pt).unwrap();
            assert_eq!(pt, b"secret payload");
            let keys = Keys::from_identities(vec![id.clone()]);
            assert_eq!(&keys.decrypt(&ct, "t").unwrap()[..], b"secret payload");
        }
    }

    #[test]
    fn wrong_identity_and_missing_keys_are_clear() {
        let id = x25519::Identity::generate();
        let ct = Sealer::to_keys(vec![id.to_public()])
            .seal(b"x", false)
            .unwrap();
        let wrong = Keys::from_identities(vec![x25519::Identity::generate()]);
        let e = wrong.decrypt(&ct, "out.age").unwrap_err().to_string();
        assert!(e.contains("none of the given identities"), "{e}");
        let e = Keys::new().decrypt(&ct, "out.age").unwrap_err();
        assert!(matches!(e, SealError::NeedIdentity { .. }), "{e}");
        let e = Keys::new()
            .decrypt(b"garbage", "out.age")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a readable age file"), "{e}");
    }

    #[test]
    fn passphrase_sealing_roundtrip() {
        let mut r = Recipients::passphrase(Secret::new("correct horse"));
        r.set_scrypt_work_factor(10);
        let ct = Sealer::new(&r).seal(b"data", true).unwrap();
        let e = Keys::new().decrypt(&ct, "f").unwrap_err();
        assert!(matches!(e, SealError::NeedPassphrase { .. }));
        let wrong = Keys::new().with_passphrase(Secret::new("nope"));
        assert!(wrong.decrypt(&ct, "f").is_err());
        let keys = Keys::new().with_passphrase(Secret::new("correct horse"));
        assert_eq!(&keys.decrypt(&ct, "f").unwrap()[..], b"data");
    }

    #[test]
    fn identity_files_plain_and_encrypted() {
        let d = tempfile::tempdir().unwrap();
        let id = x25519::Identity::generate();
        let sk = age::secrecy::ExposeSecret::expose_secret(&id.to_string()).to_string();
        let text = format!("# created: now\n# public key: {}\n{sk}\n", id.to_public());
        let plain = d.path().join("key.txt");
        std::fs::write(&plain, &text).unwrap();
        let mut k = Keys::new();
        assert!(!Keys::identity_file_is_encrypted(&plain).unwrap());
        assert_eq!(k.load_identity_file(&plain).unwrap(), 1);
        assert_eq!(k.identities()[0].to_public(), id.to_public());

        let mut r = Recipients::passphrase(Secret::new("pw"));
        r.set_scrypt_work_factor(10);
        let enc = d.path().join("key.age");
        std::fs::write(&enc, Sealer::new(&r).seal(text.as_bytes(), true).unwrap()).unwrap();
        assert!(Keys::identity_file_is_encrypted(&enc).unwrap());
        let e = Keys::new().load_identity_file(&enc).unwrap_err();
        assert!(matches!(e, SealError::NeedPassphrase { .. }), "{e}");
        let mut k = Keys::new().with_passphrase(Secret::new("pw"));
        assert_eq!(k.load_identity_file(&enc).unwrap(), 1);
        assert_eq!(k.identities()[0].to_public(), id.to_public());

        let pubfile = d.path().join("pub.txt");
        std::fs::write(&pubfile, format!("{}\n", id.to_public())).unwrap();
        let e = Keys::new()
            .load_identity_file(&pubfile)
            .unwrap_err()
            .to_string();
        assert!(e.contains("pub.txt:1") && e.contains("public key"), "{e}");
        let bad = d.path().join("bad.txt");
        std::fs::write(&bad, format!("{sk}x\n")).unwrap();
        let e = Keys::new()
            .load_identity_file(&bad)
            .unwrap_err()
            .to_string();
        assert!(!e.contains(&sk[15..]), "secret echoed: {e}");
    }

    #[test]
    fn ssh_identities_open_what_ssh_recipients_seal() {
        use crate::seal::recipients::{parse_recipient, tests::ssh_keygen};
        let d = tempfile::tempdir().unwrap();
        let (Some((plain, plain_pub)), Some((enc, enc_pub))) =
            (ssh_keygen(d.path(), ""), ssh_keygen(d.path(), "sesame"))
        else {
            return;
        };
        let to = |p: &str| parse_recipient(p, "-r").unwrap();
        let ct = Sealer::to_keys([to(&plain_pub), to(&enc_pub)])
            .seal(b"payload", false)
            .unwrap();
        let mut k = Keys::new();
        assert_eq!(k.load_identity_file(&plain).unwrap(), 1);
        assert_eq!(&k.decrypt(&ct, "f").unwrap()[..], b"payload");
        // An encrypted key needs its passphrase; a wrong one is said so.
        let e = Keys::new().load_identity_file(&enc).unwrap_err();
        assert!(matches!(e, SealError::NeedPassphrase { .. }), "{e}");
        let mut wrong = Keys::new().with_passphrase(Secret::new("nope"));
        let e = wrong.load_identity_file(&enc).unwrap_err().to_string();
        assert!(e.contains("does not open this SSH key"), "{e}");
        let mut k = Keys::new().with_passphrase(Secret::new("sesame"));
        k.load_identity_file(&enc).unwrap();
        assert_eq!(&k.decrypt(&ct, "f").unwrap()[..], b"payload");
        // The .pub file given as an identity is named as such.
        let e = Keys::new()
            .load_identity_file(&plain.with_extension("pub"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("SSH public key"), "{e}");
    }

    #[test]
    fn secrets_seal_to_base64_and_back() {
        let id = x25519::Identity::generate();
        let s = Sealer::to_keys(vec![id.to_public()]);
        let b = s
            .seal_secret(&Secret::new("JPQNSRU0DH448UJLGXH7KVJECC5QN9N9"))
            .unwrap();
        assert!(!b.contains("JPQNSRU0"));
        let k = Keys::from_identities(vec![id]);
        assert_eq!(
            k.unseal_b64(&b, "t").unwrap().expose(),
            "JPQNSRU0DH448UJLGXH7KVJECC5QN9N9"
        );
    }
}
