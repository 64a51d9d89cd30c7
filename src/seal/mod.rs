//! Why this module exists: a token is shown once, so the moment it exists it must be sealed. This
//! module owns everything that touches disk with secrets in it: age recipients and encryption,
//! the handoff file (written 0600 through a temp file, fsynced, renamed), the journal, and `open`.
//! No plaintext secret is ever written. It knows nothing of the network.
//! See docs/DESIGN.md §3 and §4.

pub mod recipients;
pub mod sealer;

pub use crate::atomic::check_output;
pub use recipients::{Recipients, parse_recipient};
pub use sealer::{Keys, SealError, Sealer};
pub mod handoff;
pub use handoff::{HandoffFormat, HandoffRow, encode_rows};
pub mod journal;
pub mod lock;
mod minted_spool;
pub mod sweep_journal;
pub use journal::{
    Action, Damaged, Event, EventDetail, Journal, JournalSealing, PlanRecord, Scanned,
    discard_journal, journal_keys, recover_rows, scan_journal, unseal_secret,
};
pub use lock::{JournalLock, LockError};
pub use minted_spool::MintedSpool;
pub mod open;
pub use open::{open_bytes, open_file};
pub mod output;
pub use output::{JournalLedger, Output, SealRequest, is_stdout};

/// For tests that run the reference `age` CLI: true when it is on PATH. Where it is missing
/// the test is skipped, except under CI (which installs it), where a missing `age` fails.
#[cfg(test)]
pub(crate) fn age_cli_available() -> bool {
    let have = std::process::Command::new("age")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but the `age` binary is not on PATH (apt-get install age)"
        );
        eprintln!("skipping: `age` not on PATH");
    }
    have
}
