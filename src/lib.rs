//! tokenfleet: create, rotate and revoke cPanel & WHM API tokens across a fleet, in parallel,
//! sealing every new secret into an age-encrypted handoff file.
//!
//! Data flows one way: [`inventory`] → [`plan`] → [`run`] (over [`cpanel`] and [`transport`]) →
//! [`seal`] → [`report`]. [`cli`] wires them; `main.rs` only calls [`cli::main`].

pub mod cli;
pub mod cpanel;
pub mod error;
pub mod inventory;
pub mod plan;
pub mod progress;
pub mod report;
pub mod resume;
pub mod run;
pub mod seal;
pub mod secret;
pub mod transport;
