//! Why this module exists: every token and credential tokenfleet touches lives in [`Secret`], a
//! type that cannot be printed by accident. Debug and Display print `[redacted]`; the only way to
//! the characters is [`Secret::expose`], which is easy to grep for in review.

use secrecy::{ExposeSecret, SecretString};
use std::fmt;

/// Rounds of SHA-256 in [`Secret::tag`].
const TAG_ROUNDS: u32 = 1 << 16;

/// A token, password or passphrase. Zeroized on drop (via `secrecy`), never printed.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(SecretString::from(value.into()))
    }

    /// The secret's characters. Call only where they must leave the process: an Authorization
    /// header, the age plaintext buffer.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }

    /// Four hex digits of a slow digest of `salt` and the secret: enough to tell whether a
    /// secret changed between two runs (the journal's `refused` records), too few to guess it
    /// by, and slow (2^16 rounds of SHA-256) so a dictionary cannot be filtered through it fast.
    pub fn tag(&self, salt: &str) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(b"tokenfleet-tag\0");
        h.update(salt.as_bytes());
        h.update([0]);
        h.update(self.expose().as_bytes());
        let mut d: [u8; 32] = h.finalize().into();
        for _ in 0..TAG_ROUNDS {
            let mut h = Sha256::new();
            h.update(d);
            h.update(self.expose().as_bytes());
            d = h.finalize().into();
        }
        format!("{:02x}{:02x}", d[0], d[1])
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        // Not constant-time; secrets are compared only in tests and journal reconciliation.
        self.expose() == other.expose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_its_value() {
        let s = Secret::new("JPQNSRU0DH448UJLGXH7KVJECC5QN9N9");
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(&s)), "Some([redacted])");
        assert_eq!(s.expose(), "JPQNSRU0DH448UJLGXH7KVJECC5QN9N9");
    }
}
