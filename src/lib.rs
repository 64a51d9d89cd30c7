//! tokenfleet: create, rotate and revoke cPanel & WHM API tokens across a fleet, in parallel,
//! sealing every new secret into an age-encrypted handoff file.
//!
//! Data flows one way: `inventory` → `plan` → `run` (over a [`backend`] per host, on
//! [`transport`]) → `seal` (the journal) and `sink` (the handoff) → `report`. `job` builds what a
//! plan needs; [`cli`] wires it all; `main.rs` only calls [`cli::main`]. The design and its
//! contract: docs/DESIGN.md.
//!
//! The public API is small: [`cli::main`] for the binary, and for programs that drive servers
//! themselves (the benches do) [`inventory::load`], [`backend::open`] with the [`backend::Backend`]
//! trait, [`transport::TransportConfig`], [`trust`], [`secret::Secret`] and [`error`]. Everything
//! else is internal.

pub(crate) mod atomic;
pub(crate) mod audit;
pub mod backend;
pub mod cli;
pub(crate) mod coverage;
pub mod error;
pub mod inventory;
pub(crate) mod job;
pub(crate) mod outcome;
pub(crate) mod plan;
pub(crate) mod progress;
pub(crate) mod report;
pub(crate) mod resume;
pub(crate) mod run;
pub(crate) mod seal;
pub mod secret;
pub(crate) mod shard;
pub(crate) mod sink;
pub mod spool;
pub(crate) mod table;
pub(crate) mod time;
pub mod transport;
pub mod trust;
