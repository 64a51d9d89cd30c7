//! A sink that keeps what it is given in memory, or refuses it: for tests of what reaches a
//! sink, and proof that a destination is one file.

use super::{Delivered, Sink, SinkError};
use crate::outcome::MintedRows;
use std::sync::Mutex;

#[derive(Default)]
pub struct MemorySink {
    /// (host, account, token name, secret) per delivered token.
    pub held: Mutex<Vec<(String, String, String, String)>>,
    /// Refuse every delivery, as a store that is down would.
    pub down: bool,
}

impl Sink for MemorySink {
    fn deliver(&self, minted: &dyn MintedRows) -> Result<Option<Delivered>, SinkError> {
        if self.down {
            return Err(SinkError("the store is down".into()));
        }
        if minted.count() == 0 {
            return Ok(None);
        }
        let mut held = self.held.lock().unwrap();
        for m in minted.rows() {
            let secret = m.token.token.expose().to_string();
            held.push((
                m.host.clone(),
                m.account.clone(),
                m.token.name.clone(),
                secret,
            ));
        }
        Ok(Some(Delivered {
            count: minted.count(),
            message: format!("kept {} new token(s) in memory", minted.count()),
        }))
    }
}
