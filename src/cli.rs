//! Why this module exists: the clap types of the command line, and the wiring from parsed
//! arguments to inventory → plan → run → seal → report. No business logic lives here.
