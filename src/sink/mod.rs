//! Why this module exists: the journal keeps every new secret sealed with age whatever happens,
//! but where the secrets finally go for the people or systems that use them is a choice: an age
//! handoff file today, a secret store next. Each destination is one implementation of [`Sink`],
//! built by the job; the run and the journal know nothing of them. See docs/DESIGN.md §3 and §7.
//!
//! - `handoff.rs`: the age-encrypted handoff file (`-o`);
//! - `bao.rs`: an OpenBao / Vault KV v2 store (`--to bao+https://…`), written write-once during
//!   the run (it also implements [`crate::outcome::Keep`]) and completed at its end;
//! - `memory.rs` (tests only): keeps what it is given, or refuses it.

use crate::outcome::MintedRows;

pub mod bao;
mod handoff;
#[cfg(test)]
pub(crate) mod memory;

pub use handoff::AgeHandoff;

/// What a sink did with a run's secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// How many secrets it holds now.
    pub count: usize,
    /// One line for the user: where they went and how to get them back.
    pub message: String,
}

/// Why a sink could not take the secrets. The journal still holds every one of them, sealed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SinkError(pub String);

/// A destination for the new secrets of a run.
pub trait Sink {
    /// Deliver every new secret of the run (for a resume: of the whole run, earlier ones
    /// included). `Ok(None)`: there was nothing to deliver, and nothing was written.
    fn deliver(&self, minted: &dyn MintedRows) -> Result<Option<Delivered>, SinkError>;
}
