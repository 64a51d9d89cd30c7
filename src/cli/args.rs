//! The command line as clap types: every subcommand, flag, default and help text.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

const EXAMPLES: &str = "\
Examples:
  # Check connectivity, TLS and credentials; print each host's certificate pin
  tokenfleet check -i fleet.toml

  # A token for every account of the eu group, sealed to two age recipients
  tokenfleet create -i fleet.toml -l eu --name 'deploy-{date}' --expires-in 90d \\
      -r age1... -r age1... -o deploy.age

  # Rotate after an incident: new token, verify it, then revoke the old ones
  tokenfleet rotate -i fleet.csv --name 'ci-{date}-{run}' --revoke 'ci-*' -R team.txt -o ci.age

  # Revoke by glob, after looking at what would go
  tokenfleet revoke -i fleet.toml --name 'ci-2025*' --dry-run
  tokenfleet list -i fleet.toml --format csv

  # Read the handoff (or use: age -d -i key.txt deploy.age)
  tokenfleet open deploy.age --identity key.txt
";

/// Create, rotate and revoke cPanel & WHM API tokens across a fleet, sealed with age.
#[derive(Debug, Parser)]
#[command(name = "tokenfleet", version, about, after_help = EXAMPLES, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a token per target and seal the secrets into an age file.
    #[command(after_help = EXAMPLES)]
    Create(CreateArgs),
    /// Create a new token, verify it, then revoke the old ones it replaces.
    #[command(after_help = EXAMPLES)]
    Rotate(RotateArgs),
    /// Revoke tokens by name or glob.
    Revoke(RevokeArgs),
    /// List tokens (names and expiry only: secrets are never retrievable).
    List(ListArgs),
    /// Connect, verify TLS and credentials; change nothing; print each host's certificate pin.
    Check(CheckArgs),
    /// Finish an interrupted create or rotate from its journal (OUT.journal).
    Resume(ResumeArgs),
    /// Decrypt a handoff file or a journal and print its tokens.
    Open(OpenArgs),
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    Man,
}

/// Options every fleet command takes.
#[derive(Debug, Args, Clone)]
pub struct Common {
    /// Inventory file (.csv or .toml).
    #[arg(short, long, value_name = "FILE")]
    pub inventory: PathBuf,
    /// Ansible-style host pattern: names, globs, groups, `a,b`, `!x` excludes, `&g` intersects.
    #[arg(short, long, value_name = "PATTERN")]
    pub limit: Option<String>,
    /// Only accounts matching this glob.
    #[arg(long, value_name = "GLOB")]
    pub accounts: Option<String>,
    /// Requests in flight over the whole fleet.
    #[arg(short, long, default_value_t = crate::job::defaults::JOBS, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub jobs: u32,
    /// Requests in flight per server (hosts may set per_host).
    #[arg(long, default_value_t = crate::job::defaults::PER_HOST, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub per_host: u32,
    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = crate::job::defaults::TIMEOUT_SECS, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
    /// Extra tries after a connect error, 429 or 5xx (never after a refused credential).
    #[arg(long, default_value_t = crate::job::defaults::RETRIES, value_name = "N")]
    pub retries: u32,
    /// Write a JSON report to FILE (`-` for stdout).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Progress display: bars on a terminal, heartbeat lines when piped; `always`: bars even
    /// when piped.
    #[arg(long, default_value = "auto", value_parser = ["auto", "always", "never"])]
    pub progress: String,
    /// Colour on stderr: `auto` on a terminal unless NO_COLOR is set.
    #[arg(long, default_value = "auto", value_parser = ["auto", "always", "never"])]
    pub color: String,
    /// Only errors and the final failures.
    #[arg(short, long)]
    pub quiet: bool,
    /// More detail: every failed target in the summary.
    #[arg(short, long)]
    pub verbose: bool,
    /// Whose tokens: cPanel accounts', or each host's `whm_user`'s WHM tokens.
    #[arg(long, value_enum, default_value_t = ScopeArg::Account)]
    pub scope: ScopeArg,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ScopeArg {
    Account,
    Whm,
}

/// Where new secrets are sealed.
#[derive(Debug, Args, Clone)]
pub struct SealArgs {
    /// The age handoff file to write (refused if it exists, unless --force).
    #[arg(short, long, value_name = "OUT")]
    pub output: PathBuf,
    /// An age recipient (age1...); repeatable.
    #[arg(short = 'r', long = "recipient", value_name = "RECIPIENT")]
    pub recipients: Vec<String>,
    /// A recipients file, as `age -R` reads; repeatable.
    #[arg(short = 'R', long = "recipients-file", value_name = "FILE")]
    pub recipients_files: Vec<PathBuf>,
    /// Seal with a passphrase (asked on the terminal, or TOKENFLEET_PASSPHRASE).
    #[arg(long)]
    pub passphrase: bool,
    /// ASCII-armored output.
    #[arg(short, long)]
    pub armor: bool,
    /// Plaintext format inside the age file.
    #[arg(long, value_enum, default_value_t = PlainFormat::Csv)]
    pub format: PlainFormat,
    /// Overwrite an existing output file and journal.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum PlainFormat {
    Csv,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum OutFormat {
    Table,
    Json,
    Csv,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub common: Common,
    /// Token name template: {date} {host} {account} {run}.
    #[arg(long, value_name = "TEMPLATE")]
    pub name: String,
    #[command(flatten)]
    pub mint: MintArgs,
}

/// What `create` and `rotate` share: the new tokens' expiry, where they are sealed, and how.
#[derive(Debug, Args)]
pub struct MintArgs {
    /// Expire after this long (e.g. 90d, 12h, "1 week").
    #[arg(
        long,
        value_name = "DUR",
        conflicts_with = "expires_at",
        allow_hyphen_values = true
    )]
    pub expires_in: Option<String>,
    /// Expire at this time (RFC 3339, or a date: 2027-01-31).
    #[arg(long, value_name = "WHEN")]
    pub expires_at: Option<String>,
    #[command(flatten)]
    pub seal: SealArgs,
    /// Print the plan and what would happen; send no change.
    #[arg(long)]
    pub dry_run: bool,
    /// Revoke a same-named token and create it again, instead of reporting `exists`.
    #[arg(long)]
    pub replace_existing: bool,
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    #[command(flatten)]
    pub common: Common,
    /// New token name template: {date} {host} {account} {run}.
    #[arg(long, value_name = "TEMPLATE")]
    pub name: String,
    /// Glob of the old tokens to revoke once the new one is verified (never the new one).
    #[arg(long, value_name = "GLOB")]
    pub revoke: String,
    /// Skip verifying the new token before revoking the old ones.
    #[arg(long)]
    pub no_verify: bool,
    #[command(flatten)]
    pub mint: MintArgs,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    #[command(flatten)]
    pub common: Common,
    /// Token name or glob to revoke.
    #[arg(long, value_name = "NAME_OR_GLOB")]
    pub name: String,
    /// List what would be revoked; revoke nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Revoke the token tokenfleet logs in with too, when it matches (kept otherwise: every
    /// later call would be refused).
    #[arg(long)]
    pub revoke_own_credential: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub common: Common,
    #[arg(long, value_enum, default_value_t = OutFormat::Table)]
    pub format: OutFormat,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub common: Common,
    #[arg(long, value_enum, default_value_t = OutFormat::Table)]
    pub format: OutFormat,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The journal of the interrupted run (OUT.journal).
    pub journal: PathBuf,
    /// An age identity file (AGE-SECRET-KEY-...) of one of the run's recipients: it opens the
    /// secrets sealed before the interruption, for the final handoff.
    #[arg(short, long, value_name = "FILE")]
    pub identity: Vec<PathBuf>,
    /// Write a JSON report to FILE (`-` for stdout).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Progress display: bars on a terminal, heartbeat lines when piped; `always`: bars even
    /// when piped.
    #[arg(long, default_value = "auto", value_parser = ["auto", "always", "never"])]
    pub progress: String,
    /// Colour on stderr: `auto` on a terminal unless NO_COLOR is set.
    #[arg(long, default_value = "auto", value_parser = ["auto", "always", "never"])]
    pub color: String,
    /// Only errors and the final failures.
    #[arg(short, long)]
    pub quiet: bool,
    /// More detail: every failed target in the summary.
    #[arg(short, long)]
    pub verbose: bool,
    /// Finish only these hosts now (a host pattern, as `--limit`); the rest stays for a later
    /// resume. Never widens the interrupted run's own `--limit`.
    #[arg(short, long, value_name = "PATTERN")]
    pub limit: Option<String>,
    /// Requests in flight over the whole fleet (default: the interrupted run's).
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub jobs: Option<u32>,
    /// Requests in flight per server (default: the interrupted run's).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub per_host: Option<u32>,
    /// Per-request deadline in seconds (default: the interrupted run's).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: Option<u64>,
    /// Extra tries after a connect error, 429 or 5xx (default: the interrupted run's).
    #[arg(long, value_name = "N")]
    pub retries: Option<u32>,
    /// Contact again the hosts whose credential the journal saw refused, though it has not
    /// changed (each refusal counts toward cPHulk's lockout of this IP).
    #[arg(long)]
    pub retry_refused: bool,
}

#[derive(Debug, Args)]
pub struct OpenArgs {
    /// A handoff file or a journal.
    pub file: PathBuf,
    /// An age identity file (AGE-SECRET-KEY-...). Without it, a passphrase is asked.
    #[arg(short, long, value_name = "FILE")]
    pub identity: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = OutFormat::Table)]
    pub format: OutFormat,
}
