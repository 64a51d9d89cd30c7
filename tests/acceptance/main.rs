//! Acceptance tests: the built `tokenfleet` binary against a simulated fleet on loopback.
//! One test binary with modules, so it links once.

mod common;

mod addressing;
mod age_habits;
mod args;
mod audit;
mod batch;
mod corpus;

mod chaos;
mod check_list;
mod create;
mod display;
mod failures;
mod hostile;
mod hygiene;
mod inventory_errors;
mod journal_lock;
mod leaks;
mod lockout;
mod lockout_hang;
mod operator;
mod policy;
mod preflight;
mod promises;
mod refusals;
mod resume;
mod revoke;
mod rotate;
mod shard;
mod snapshots;
mod ssh;
mod store;
mod tls;
