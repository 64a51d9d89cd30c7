//! Why this file exists: a run that mints 100,000 tokens must not hold 100,000 secrets (and
//! their host, account and URL strings) in memory until the handoff is written at the end, and
//! must not write a secret to a plaintext file either. A [`MintedSpool`] encrypts each new
//! secret's handoff row, as it is minted, with ChaCha20-Poly1305 under a key made for this
//! process and held only in its memory, and spools the ciphertext to an unlinked temporary file
//! ([`crate::spool`]); the sink reads the rows back, in order, when it delivers. The temporary
//! file is useless without the key, which dies with the process; the journal (sealed with age
//! to the recipients) stays the durable copy of every secret. The row nonce is its sequence
//! number, so no nonce is ever used twice under one key.

use crate::outcome::{Minted, MintedRows, NewToken};
use crate::secret::Secret;
use crate::spool::Spool;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, OsRng};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use zeroize::Zeroizing;

/// One encrypted row: its sequence number (the nonce) and the ciphertext, base64.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct SealedRow {
    n: u64,
    c: String,
}

/// The new secrets of a run, encrypted under a key only this process holds.
pub struct MintedSpool {
    cipher: ChaCha20Poly1305,
    next: u64,
    rows: Spool<SealedRow>,
}

impl Default for MintedSpool {
    fn default() -> Self {
        MintedSpool::new()
    }
}

impl std::fmt::Debug for MintedSpool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MintedSpool")
            .field("rows", &self.rows.len())
            .finish_non_exhaustive()
    }
}

fn nonce(n: u64) -> Nonce {
    let mut bytes = [0u8; 12];
    bytes[4..].copy_from_slice(&n.to_be_bytes());
    Nonce::from(bytes)
}

fn put(buf: &mut Vec<u8>, field: &[u8]) {
    buf.extend_from_slice(&(field.len() as u32).to_be_bytes());
    buf.extend_from_slice(field);
}

/// Reads back what [`put`] wrote.
struct Fields<'b>(&'b [u8]);

impl<'b> Fields<'b> {
    fn take(&mut self, n: usize) -> Option<&'b [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn bytes(&mut self) -> Option<&'b [u8]> {
        let len = u32::from_be_bytes(self.take(4)?.try_into().ok()?) as usize;
        self.take(len)
    }
    fn text(&mut self) -> Option<String> {
        std::str::from_utf8(self.bytes()?).ok().map(str::to_string)
    }
    fn int(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
}

fn encode(m: &Minted) -> Zeroizing<Vec<u8>> {
    let t = &m.token;
    let mut buf = Zeroizing::new(Vec::with_capacity(
        64 + m.host.len() + m.account.len() + m.url.len() + t.name.len() + t.token.expose().len(),
    ));
    put(&mut buf, m.host.as_bytes());
    put(&mut buf, m.account.as_bytes());
    put(&mut buf, m.url.as_bytes());
    put(&mut buf, t.name.as_bytes());
    put(&mut buf, t.token.expose().as_bytes());
    buf.extend_from_slice(&t.create_time.to_be_bytes());
    match t.expires_at {
        Some(e) => {
            buf.push(1);
            buf.extend_from_slice(&e.to_be_bytes());
        }
        None => buf.push(0),
    }
    buf
}

fn decode(plain: &[u8]) -> Option<Minted> {
    let mut f = Fields(plain);
    let host = f.text()?;
    let account = f.text()?;
    let url = f.text()?;
    let name = f.text()?;
    let token = Secret::new(std::str::from_utf8(f.bytes()?).ok()?);
    let create_time = f.int()?;
    let expires_at = match f.take(1)?[0] {
        1 => Some(f.int()?),
        _ => None,
    };
    Some(Minted {
        host,
        account,
        url,
        token: NewToken {
            name,
            token,
            create_time,
            expires_at,
        },
    })
}

impl MintedSpool {
    pub fn new() -> MintedSpool {
        MintedSpool {
            cipher: ChaCha20Poly1305::new(&ChaCha20Poly1305::generate_key(&mut OsRng)),
            next: 0,
            rows: Spool::new(),
        }
    }

    pub fn push(&mut self, m: Minted) {
        let n = self.next;
        self.next += 1;
        let plain = encode(&m);
        let sealed = self
            .cipher
            .encrypt(&nonce(n), plain.as_slice())
            .expect("ChaCha20-Poly1305 encrypts any row");
        self.rows.push(SealedRow {
            n,
            c: base64::engine::general_purpose::STANDARD_NO_PAD.encode(sealed),
        });
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Every row, decrypted, in the order minted.
    pub fn iter(&self) -> impl Iterator<Item = Minted> + '_ {
        self.rows.iter().filter_map(|row| {
            let sealed = base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(row.c)
                .ok()?;
            let plain = Zeroizing::new(self.cipher.decrypt(&nonce(row.n), sealed.as_slice()).ok()?);
            decode(&plain)
        })
    }

    #[cfg(test)]
    pub fn to_vec(&self) -> Vec<Minted> {
        self.iter().collect()
    }
}

impl MintedRows for MintedSpool {
    fn count(&self) -> usize {
        self.len()
    }
    fn rows(&self) -> Box<dyn Iterator<Item = Minted> + '_> {
        Box::new(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minted(i: usize, expires: Option<i64>) -> Minted {
        Minted {
            host: format!("web{i}"),
            account: format!("user{i}"),
            url: "https://[2001:db8::1]:2083".into(),
            token: NewToken {
                name: format!("ci-{i}"),
                token: Secret::new(format!("JPQNSRU0DH448UJLGXH7KVJECC5QN{i:03}")),
                create_time: 1_700_000_000 + i as i64,
                expires_at: expires,
            },
        }
    }

    #[test]
    fn rows_come_back_whole_and_in_order_and_the_spool_holds_no_plaintext() {
        let mut s = MintedSpool::new();
        for i in 0..1_000 {
            s.push(minted(i, (i % 2 == 0).then_some(1_800_000_000)));
        }
        assert_eq!(s.len(), 1_000);
        let back = s.to_vec();
        assert_eq!(back.len(), 1_000);
        for (i, m) in back.iter().enumerate() {
            let want = minted(i, (i % 2 == 0).then_some(1_800_000_000));
            assert_eq!(
                (
                    &m.host,
                    &m.account,
                    &m.url,
                    &m.token.name,
                    m.token.token.expose()
                ),
                (
                    &want.host,
                    &want.account,
                    &want.url,
                    &want.token.name,
                    want.token.token.expose()
                )
            );
            assert_eq!(
                (m.token.create_time, m.token.expires_at),
                (want.token.create_time, want.token.expires_at)
            );
        }
        // What the spool stores (and its temporary file holds) is ciphertext only.
        let stored = serde_json::to_string(&s.rows).unwrap();
        assert!(
            !stored.contains("JPQNSRU0DH448UJLGXH7KVJECC5QN"),
            "{stored:.200}"
        );
        assert!(!stored.contains("user1"), "{stored:.200}");
    }

    #[test]
    fn another_process_key_cannot_read_the_rows() {
        let mut s = MintedSpool::new();
        s.push(minted(1, None));
        let other = MintedSpool {
            rows: Spool::in_memory(s.rows.to_vec()),
            ..MintedSpool::new()
        };
        assert_eq!(other.iter().count(), 0);
    }
}
