//! A sweep's journal: no secret is made, so nothing is sealed, but every revocation is
//! recorded with the token's metadata before it is sent and once it is done (the audit trail an
//! incident report needs), and what a resumed sweep may skip. Same file format, lock and
//! durability as a create's journal (docs/DESIGN.md §4, §9).

use super::journal::{Event, EventDetail, Journal};
use crate::audit::AuditRow;
use crate::outcome::{Ledger, Minted};
use std::io;
use std::path::Path;

pub struct SweepLedger {
    journal: Journal,
}

impl SweepLedger {
    pub fn new(journal: Journal) -> SweepLedger {
        SweepLedger { journal }
    }

    pub fn path(&self) -> &Path {
        self.journal.path()
    }
}

impl Ledger for SweepLedger {
    // A sweep mints nothing, verifies nothing and records its revokes with `sweep`: the steps
    // of a create, a rotation or a revoke by name never come here.
    fn intent(&self, _: &str, _: &str, _: &str, _: &str) -> io::Result<()> {
        Ok(())
    }

    fn created(&self, _: &Minted) -> io::Result<()> {
        Err(io::Error::other("a sweep creates no token"))
    }

    fn verified(&self, _: &str, _: &str, _: &str) -> io::Result<()> {
        Ok(())
    }

    fn revoked(&self, _: &str, _: &str, _: &str, _: &[String]) -> io::Result<()> {
        Ok(())
    }

    fn failed(&self, _: &str, _: &str, _: &str, _: &str, _: &str) -> io::Result<()> {
        Ok(())
    }

    fn sweep(&self, host: &str, account: &str, step: &str, tokens: &[AuditRow]) -> io::Result<()> {
        let event = Event::new(
            host,
            account,
            "",
            EventDetail::Sweep {
                step: step.to_string(),
                tokens: tokens.to_vec(),
            },
        );
        // An intent is durable before its revoke is sent; a clean owner's record only saves a
        // resume one listing, so it rides on the next sync.
        if step == "clean" {
            self.journal.append_lazy(&event)
        } else {
            self.journal.append(&event)
        }
    }

    fn refused(&self, host: &str, account: &str, credential: &str, tag: &str) -> io::Result<()> {
        self.journal.append(&Event::new(
            host,
            account,
            "",
            EventDetail::Refused {
                credential: credential.to_string(),
                tag: tag.to_string(),
            },
        ))
    }

    fn flush(&self) -> io::Result<()> {
        self.journal.flush()
    }
}
