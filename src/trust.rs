//! Why this module exists: how a host's TLS certificate is trusted (a pin, a CA file, or
//! nothing) is stated by the inventory and enforced by the transport; neither should import the
//! other, so the two types they share live here. See docs/DESIGN.md §2 and §7.

use std::fmt;
use std::path::PathBuf;

/// SHA-256 of a leaf certificate (DER). Parsed from `sha256:AB:CD:…` (prefix optional, colons
/// optional, any case); displayed as `sha256:AB:CD:…`, the form `check` prints.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pin(pub [u8; 32]);

impl Pin {
    pub fn of_der(der: &[u8]) -> Pin {
        use sha2::Digest;
        Pin(sha2::Sha256::digest(der).into())
    }
}

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for Pin {
    type Err = String;
    fn from_str(s: &str) -> Result<Pin, String> {
        let s = s.trim();
        let hex = s
            .strip_prefix("sha256:")
            .or_else(|| s.strip_prefix("SHA256:"))
            .or_else(|| s.strip_prefix("sha256/"))
            .unwrap_or(s);
        let digits: String = hex.chars().filter(|c| *c != ':').collect();
        if digits.len() != 64 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!(
                "\"{s}\" is not a SHA-256 fingerprint (64 hex digits, colons optional)"
            ));
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&digits[2 * i..2 * i + 2], 16).expect("checked hex");
        }
        Ok(Pin(out))
    }
}

/// How a host's TLS certificate is trusted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tls {
    /// Trust this CA (PEM file, resolved against the inventory folder) besides webpki roots.
    pub ca: Option<PathBuf>,
    /// Accept exactly this leaf certificate (SHA-256 of its DER).
    pub pin: Option<Pin>,
    /// Skip verification entirely (warned on every run).
    pub insecure: bool,
}
