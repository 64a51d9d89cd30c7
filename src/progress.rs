//! Why this module exists: people watch long runs. An overall bar and per-host bars on a terminal,
//! one line per finished host when stderr is a pipe, nothing with `-q`. It only renders events the
//! run module sends.
