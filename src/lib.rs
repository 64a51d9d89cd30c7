//! tokenfleet: create, rotate and revoke cPanel & WHM API tokens across a fleet, in parallel,
//! sealing every new secret into an age-encrypted handoff file.
//!
//! Data flows one way: [`inventory`] → [`plan`] → [`run`] (over a [`backend`] per host, on
//! [`transport`]) → [`seal`] and the sinks → [`report`]. [`cli`] wires them; `main.rs` only
//! calls [`cli::main`]. The design and its contract: docs/DESIGN.md.

pub mod atomic;
pub mod backend;
pub mod cli;
pub mod error;
pub mod inventory;
pub mod job;
pub mod outcome;
pub mod plan;
pub mod progress;
pub mod report;
pub mod resume;
pub mod run;
pub mod seal;
pub mod secret;
pub mod sink;
pub mod table;
pub mod time;
pub mod transport;
pub mod trust;
