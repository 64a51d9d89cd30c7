//! Why this module exists: every token and credential tokenfleet touches lives in [`Secret`], a
//! type that cannot be printed by accident. Debug and Display print `[redacted]`; the only way to
//! the characters is [`Secret::expose`], which is easy to grep for in review.

use secrecy::{ExposeSecret, SecretString};
use std::fmt;

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
