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

  # Read the handoff (or use: age -d -i key.txt deploy.age); -k takes SSH keys too
  tokenfleet open deploy.age -k key.txt
  tokenfleet open deploy.age -k ~/.ssh/id_ed25519

  # Seal to an SSH key, the handoff on stdout (the journal: --journal, kept on disk)
  tokenfleet create -i fleet.toml --name 'ci-{date}' -R ~/.ssh/id_ed25519.pub \\
      -o - --journal ci.journal > ci.age

  # Straight into OpenBao / Vault KV v2, write-once (BAO_TOKEN, BAO_CACERT); the journal
  # still seals every token to the team
  tokenfleet rotate -i fleet.toml --name 'ci-{date}' --revoke 'ci-*' -R team.txt \\
      --to 'bao+https://bao.example.net:8200/secret/cpanel/{host}/{account}' --journal ci.journal

  # Many machines: shard 3 of 8 (a complete run over its hosts), then check all 8 reports
  tokenfleet rotate -i fleet.toml --shard 3/8 --name 'ci-{date}' --revoke 'ci-*' -R team.txt \\
      -o 'ci.{shard}.age' --report 'r.{shard}.json'
  tokenfleet coverage -i fleet.toml r.*-of-8.json

Each command has its own page: tokenfleet help create, or man tokenfleet-create.
";

const CREATE_EXAMPLES: &str = "\
Examples:
  # What would be created, for every account (a \"*\" host's accounts are discovered)
  tokenfleet create -i fleet.toml --name 'deploy-{date}' -R team.txt -o deploy.age --dry-run

  # A token per account of the eu group, expiring in 90 days, sealed to two recipients
  tokenfleet create -i fleet.toml -l eu --name 'deploy-{date}' --expires-in 90d \\
      -r age1... -r age1... -o deploy.age

  # Sealed with a passphrase instead (asked twice, or TOKENFLEET_PASSPHRASE)
  tokenfleet create -i fleet.csv --name 'ci-{host}' --passphrase -o ci.age

  # Only the targets an earlier run failed (it wrote deploy.age.retry)
  tokenfleet create -i fleet.toml --name 'deploy-{date}' -R team.txt -o deploy2.age \\
      --limit @deploy.age.retry

  # One shard of 8 in a Kubernetes Indexed Job pod (K = JOB_COMPLETION_INDEX + 1)
  tokenfleet create -i fleet.toml --shard-count 8 --name 'deploy-{date}' -R team.txt \\
      -o '/out/deploy.{shard}.age' --report '/out/report.{shard}.json'
";

const ROTATE_EXAMPLES: &str = "\
Examples:
  # Which old tokens would go
  tokenfleet rotate -i fleet.toml --name 'ci-{date}-{run}' --revoke 'ci-*' -R team.txt -o ci.age --dry-run

  # New token, verified on the cPanel port, then the old ci-* tokens revoked
  tokenfleet rotate -i fleet.toml --name 'ci-{date}-{run}' --revoke 'ci-*' -R team.txt -o ci.age

  # The hosts' own WHM tokens (the WHM user of each host)
  tokenfleet rotate -i fleet.toml --scope whm --name 'whm-{date}' --revoke 'whm-*' -R team.txt -o whm.age

  # Only where a ci-* token expires within 30 days; the new WHM token limited to two ACLs
  # and the management network
  tokenfleet rotate -i fleet.toml --scope whm --name 'ci-{date}' --revoke 'ci-*' --expiring-within 30d \\
      --acl list-accts,create-acct --whitelist-ip 198.51.100.0/24 -R team.txt -o ci.age
";

const REVOKE_EXAMPLES: &str = "\
Examples:
  # Every token that would go, by name, with its creation and expiry
  tokenfleet revoke -i fleet.toml --name 'ci-2025*' --dry-run

  # Revoke them, with a JSON report on stdout for jq
  tokenfleet revoke -i fleet.toml --name 'ci-2025*' --report - | jq '.totals'

  # After a panel compromise: every WHM token but the one tokenfleet logs in with
  tokenfleet revoke -i fleet.toml --scope whm --name '*' --dry-run
";

const UPDATE_EXAMPLES: &str = "\
Examples:
  # Which WHM tokens expiring within 30 days would get 90 more days
  tokenfleet update -i fleet.toml --scope whm --name 'whm-*' --expiring-within 30d \\
      --expires-in 90d --dry-run

  # Narrow the DNS cluster tokens to clustering, usable only from the management network
  tokenfleet update -i fleet.toml --scope whm --name 'cluster-*' --acl clustering \\
      --whitelist-ip 198.51.100.0/24

  # Anyone may use them again
  tokenfleet update -i fleet.toml --scope whm --name 'cluster-*' --whitelist-any

cPanel account tokens cannot be changed in place (UAPI has no update): renew them with
`tokenfleet rotate --expiring-within DUR`.
";

const LIST_EXAMPLES: &str = "\
Examples:
  tokenfleet list -i fleet.toml
  tokenfleet list -i fleet.toml -l 'eu,!web3' --accounts 'shop*' --format csv
  tokenfleet list -i fleet.toml --scope whm --format json
";

const CHECK_EXAMPLES: &str = "\
Examples:
  # TLS, credentials, accounts and ACLs, changing nothing; prints each host's certificate pin
  tokenfleet check -i fleet.toml

  # Which hosts and targets a run would touch (a \"*\" host is asked for its accounts)
  tokenfleet check -i fleet.toml --list-hosts
  tokenfleet check -i fleet.toml --list-hosts --shard 2/4
  tokenfleet create -i fleet.toml --name 'x-{date}' -R team.txt -o x.age --list-targets
";

const RESUME_EXAMPLES: &str = "\
Examples:
  # Finish an interrupted (or partly failed) create or rotate
  tokenfleet resume deploy.age.journal --identity key.txt

  # Only the eu hosts now, more slowly; the rest stay for a later resume
  tokenfleet resume deploy.age.journal --identity key.txt -l eu --per-host 1 --timeout 60
";

const OPEN_EXAMPLES: &str = "\
Examples:
  tokenfleet open deploy.age --identity key.txt
  tokenfleet open deploy.age.journal --identity key.txt --format csv

  # Every shard's handoff as one CSV (one header)
  tokenfleet open -k key.txt --format csv deploy.*-of-8.age > deploy.csv
  age -d -i key.txt deploy.age
";

const COVERAGE_EXAMPLES: &str = "\
Examples:
  # Eight shards ran (each wrote r.K-of-8.json); is every target of the inventory done?
  tokenfleet coverage -i fleet.toml r.*-of-8.json

  # The same as JSON, for a pipeline step
  tokenfleet coverage -i fleet.toml --format json r.*.json | jq '.totals'

Exit status: 0 every target done; 1 a target failed or is missing, a host is in two reports, a
report is of another inventory or shard count, or a shard has no report; 2 bad input.
";

const AUDIT_EXAMPLES: &str = "\
Examples:
  # Every WHM and account token of the fleet, classed; ours are those our runs made
  tokenfleet audit -i fleet.toml --known deploy.age.journal ci-report.json

  # After CVE-2026-41940: what appeared since the exploitation began, as JSON for jq
  tokenfleet audit -i fleet.toml --known *.journal --since 2026-02-23 --format json \\
      | jq '.tokens[] | select(.class == \"unknown\")'

  # Our own naming scheme marks ours; a published indicator list flags suspicious names
  tokenfleet audit -i fleet.toml --ours 'deploy-*' --ours 'ci-*' --ioc iocs.txt --format csv

Classes: ours (named by --known or --ours), system (reverse_trust_*, WebPros_Dashboard,
WP-Dashboard, the inventory's protect globs), self (the credential in use), unknown.
Exit status: 0 nothing unknown or suspicious and every owner listed; 1 otherwise; 2 bad input.
";

const SWEEP_EXAMPLES: &str = "\
Examples:
  # What would go: every unknown token, by name (changes nothing)
  tokenfleet sweep -i fleet.toml --known *.journal --dry-run

  # Revoke the unknown tokens created since the incident began; asks on a terminal
  tokenfleet sweep -i fleet.toml --known *.journal --since 2026-02-23

  # In a runbook: no question, the audit trail in a journal of its own
  tokenfleet sweep -i fleet.toml --known *.journal --flag full-access --yes \\
      --journal sweep-incident42.journal --report sweep.json

  # Interrupted? Continue where it stopped
  tokenfleet resume sweep-incident42.journal

Never revoked: ours, system (and protect globs), the credential in use.
";

const MAN_EXAMPLES: &str = "\
Examples:
  tokenfleet man > tokenfleet.1
  tokenfleet man create | man -l -
  tokenfleet man --dir /usr/local/share/man/man1
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
    #[command(after_help = CREATE_EXAMPLES)]
    Create(CreateArgs),
    /// Create a new token, verify it, then revoke the old ones it replaces.
    #[command(after_help = ROTATE_EXAMPLES)]
    Rotate(RotateArgs),
    /// Revoke tokens by name or glob.
    #[command(after_help = REVOKE_EXAMPLES)]
    Revoke(RevokeArgs),
    /// Change WHM tokens in place (expiry, ACLs, IP allow-list), keeping their secrets.
    #[command(after_help = UPDATE_EXAMPLES)]
    Update(UpdateArgs),
    /// List tokens (names and expiry only: secrets are never retrievable).
    #[command(after_help = LIST_EXAMPLES)]
    List(ListArgs),
    /// Connect, verify TLS and credentials; change nothing; print each host's certificate pin.
    #[command(after_help = CHECK_EXAMPLES)]
    Check(CheckArgs),
    /// Every token on the fleet, classed ours/system/self/unknown and flagged.
    #[command(after_help = AUDIT_EXAMPLES)]
    Audit(AuditArgs),
    /// Revoke the tokens the audit classes unknown (never ours, system or the credential).
    #[command(after_help = SWEEP_EXAMPLES)]
    Sweep(SweepArgs),
    /// Finish an interrupted create, rotate or sweep from its journal (OUT.journal).
    #[command(after_help = RESUME_EXAMPLES)]
    Resume(ResumeArgs),
    /// Decrypt a handoff file or a journal and print its tokens.
    #[command(after_help = OPEN_EXAMPLES)]
    Open(OpenArgs),
    /// Say which targets of the inventory shard reports cover: done, failed or missing.
    #[command(after_help = COVERAGE_EXAMPLES)]
    Coverage(CoverageArgs),
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print a man page (roff): tokenfleet(1), or one command's, e.g. tokenfleet-create(1)
    #[command(after_help = MAN_EXAMPLES)]
    Man {
        /// The command whose page to print (create, rotate, ...); none: tokenfleet(1).
        #[arg(value_name = "COMMAND")]
        page: Option<String>,
        /// Write every page (tokenfleet.1, tokenfleet-create.1, ...) into DIR instead.
        #[arg(long, value_name = "DIR", conflicts_with = "page")]
        dir: Option<PathBuf>,
    },
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
    /// Account calls per request on `api = "whm"` hosts: listings and creates of up to N
    /// accounts travel in one WHM API 1 `batch`; 1 sends one call per request.
    #[arg(long, default_value_t = crate::run::DEFAULT_BATCH, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=crate::run::MAX_BATCH as i64))]
    pub batch: u32,
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
    /// Whose tokens: cPanel accounts', each host's `whm_user`'s WHM tokens, or both (`all`:
    /// audit and sweep only). Default: account; for audit and sweep, all.
    #[arg(long, value_enum, value_name = "SCOPE")]
    pub scope: Option<ScopeArg>,
    /// Print the hosts this command would contact, one per line, and stop (nothing is sent).
    #[arg(long, conflicts_with = "list_targets")]
    pub list_hosts: bool,
    /// Print every target this command would touch, one `host/account` per line (the form
    /// `--limit @FILE` reads), and stop; an `accounts = "*"` host is asked for its accounts
    /// (WHM `listaccts`, read-only), nothing else is sent.
    #[arg(long)]
    pub list_targets: bool,
    /// Run only shard K of N (1-based): the hosts (after --limit) whose rendezvous hash of
    /// their name picks shard K. Every host is in exactly one shard of N; each shard is a
    /// complete run with its own journal, handoff and report.
    #[arg(long, value_name = "K/N", conflicts_with = "shard_count")]
    pub shard: Option<String>,
    /// Split into N shards and take K from JOB_COMPLETION_INDEX (0-based, as a Kubernetes
    /// Indexed Job sets it): the same as --shard $((JOB_COMPLETION_INDEX+1))/N.
    #[arg(long, value_name = "N")]
    pub shard_count: Option<u32>,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ScopeArg {
    Account,
    Whm,
    All,
}

/// What classes a token in `audit` and `sweep`.
#[derive(Debug, Args, Clone)]
pub struct CensusArgs {
    /// tokenfleet journals or JSON reports of the runs that made your tokens: the tokens they
    /// name are `ours`. Several files may follow one --known.
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub known: Vec<PathBuf>,
    /// Token names matching this glob are `ours` (repeatable).
    #[arg(long, value_name = "GLOB")]
    pub ours: Vec<String>,
    /// Names (globs, one per line, # comments) to flag `suspicious`, besides the built-in list
    /// of names seen in published compromises (WHM_FullRoot, bkl, lp<hex>).
    #[arg(long, value_name = "FILE")]
    pub ioc: Vec<PathBuf>,
    /// The start of an incident window: tokens created since are flagged `created-since`
    /// (a date, midnight UTC, or RFC 3339).
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
    /// Flag `expires-soon` what expires within this long.
    #[arg(long, value_name = "DUR", default_value = "30d")]
    pub expiring_within: String,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub census: CensusArgs,
    /// Output format (JSON: docs/audit.schema.json).
    #[arg(long, value_enum, default_value_t = OutFormat::Table)]
    pub format: OutFormat,
}

#[derive(Debug, Args)]
pub struct SweepArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub census: CensusArgs,
    /// Only tokens with this flag (repeatable: all of them): suspicious, created-since,
    /// full-access, allow-any-ip, never-expires, expired, expires-soon.
    #[arg(long, value_name = "FLAG", value_parser = ["suspicious", "created-since", "full-access", "allow-any-ip", "never-expires", "expired", "expires-soon"])]
    pub flag: Vec<String>,
    /// Only tokens whose name matches this glob.
    #[arg(long, value_name = "GLOB")]
    pub name: Option<String>,
    /// Send only the listings; print every token that would be revoked.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask: revoke what the census takes (for automation; on a terminal the sweep
    /// shows what would go and asks first).
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// The journal: every revocation with the token's metadata (default:
    /// tokenfleet-sweep-RUN.journal in the current folder).
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,
    /// Start over when the journal exists (the old one is kept aside).
    #[arg(long)]
    pub force: bool,
}

/// Where new secrets are sealed.
#[derive(Debug, Args, Clone)]
pub struct SealArgs {
    /// The age handoff file to write (refused if it exists, unless --force); `-` writes it to
    /// standard output (binary only when that is not a terminal, else use --armor). Optional
    /// with --to (or an inventory [sink]): the journal still seals every secret.
    #[arg(short, long, value_name = "OUT", allow_hyphen_values = true)]
    pub output: Option<PathBuf>,
    /// Also write each new token to an OpenBao / Vault KV v2 store, write-once:
    /// bao+https://ADDR[:PORT]/MOUNT/PATH with {host}, {account}, {token_name} (the store token:
    /// BAO_TOKEN, VAULT_TOKEN or --to-token-file).
    #[arg(long, value_name = "URL")]
    pub to: Option<String>,
    /// The store's CA file (PEM) [default: BAO_CACERT, VAULT_CACERT, else the system's roots].
    #[arg(long, value_name = "FILE", requires = "to")]
    pub to_ca: Option<PathBuf>,
    /// A file holding the store token [default: BAO_TOKEN, else VAULT_TOKEN].
    #[arg(long, value_name = "FILE", requires = "to")]
    pub to_token_file: Option<PathBuf>,
    /// The run's journal, kept on disk for `resume` and `open` [default: OUT.journal; with
    /// `-o -`: tokenfleet-RUN.journal in the current folder].
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,
    /// A recipient, as age takes it: an age public key (age1...) or an SSH public key
    /// ("ssh-ed25519 AAAA...", "ssh-rsa AAAA..."); repeatable.
    #[arg(short = 'r', long = "recipient", value_name = "RECIPIENT")]
    pub recipients: Vec<String>,
    /// A recipients file, as `age -R` reads (age1... and ssh- keys, e.g. ~/.ssh/id_ed25519.pub);
    /// `-` reads standard input; repeatable.
    #[arg(
        short = 'R',
        long = "recipients-file",
        value_name = "FILE",
        allow_hyphen_values = true
    )]
    pub recipients_files: Vec<PathBuf>,
    /// Seal with a passphrase (asked on the terminal, or TOKENFLEET_PASSPHRASE).
    #[arg(short, long)]
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
    /// `--scope whm`: the WHM privileges the new token gets (e.g. list-accts, clustering;
    /// `all` is every privilege of the WHM user); repeatable or comma-separated [default:
    /// every privilege of the WHM user].
    #[arg(long = "acl", value_name = "ACL")]
    pub acls: Vec<String>,
    /// `--scope whm`: the only addresses that may use the new token (IPv4/IPv6 addresses or
    /// CIDRs, at most 100); repeatable or comma-separated [default: any address].
    #[arg(long = "whitelist-ip", value_name = "ADDR")]
    pub whitelist_ips: Vec<String>,
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
    /// Rotate only targets holding a token matching --revoke that expires within DUR (e.g.
    /// 30d; already expired counts); the others are `unchanged`.
    #[arg(long, value_name = "DUR")]
    pub expiring_within: Option<String>,
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
pub struct UpdateArgs {
    #[command(flatten)]
    pub common: Common,
    /// Token name or glob of the WHM tokens to change.
    #[arg(long, value_name = "NAME_OR_GLOB")]
    pub name: String,
    /// New expiry: this long from now (e.g. 90d, 12h, "1 week").
    #[arg(
        long,
        value_name = "DUR",
        conflicts_with_all = ["expires_at", "never_expires"],
        allow_hyphen_values = true
    )]
    pub expires_in: Option<String>,
    /// New expiry: this time (RFC 3339, or a date: 2027-01-31).
    #[arg(long, value_name = "WHEN", conflicts_with = "never_expires")]
    pub expires_at: Option<String>,
    /// The tokens never expire.
    #[arg(long)]
    pub never_expires: bool,
    /// Replace the tokens' WHM privileges (e.g. list-accts, clustering; `all` is every
    /// privilege); repeatable or comma-separated.
    #[arg(long = "acl", value_name = "ACL")]
    pub acls: Vec<String>,
    /// Replace the tokens' IP allow-list (IPv4/IPv6 addresses or CIDRs, at most 100);
    /// repeatable or comma-separated.
    #[arg(
        long = "whitelist-ip",
        value_name = "ADDR",
        conflicts_with = "whitelist_any"
    )]
    pub whitelist_ips: Vec<String>,
    /// Clear the tokens' IP allow-list: any address may use them.
    #[arg(long)]
    pub whitelist_any: bool,
    /// Only tokens that expire within DUR (e.g. 30d; already expired counts).
    #[arg(long, value_name = "DUR")]
    pub expiring_within: Option<String>,
    /// List what would be changed; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Change the token tokenfleet logs in with too, even when the change could narrow it
    /// (ACLs, allow-list, a sooner expiry); kept as it is otherwise. Extending its expiry is
    /// always done.
    #[arg(long)]
    pub include_own_credential: bool,
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
    /// An identity of one of the run's recipients: an age identity file (AGE-SECRET-KEY-...)
    /// or an SSH private key (~/.ssh/id_ed25519); it opens the secrets sealed before the
    /// interruption, for the final handoff. Repeatable. (`-i` is kept as an alias.)
    #[arg(short = 'k', long, short_alias = 'i', value_name = "KEY")]
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
    /// Deliver the run's tokens to this store instead of the one the run named (e.g. another
    /// path, when a path held someone's secret): bao+https://ADDR[:PORT]/MOUNT/PATH.
    #[arg(long, value_name = "URL")]
    pub to: Option<String>,
    /// Finish without the run's store (it is gone for good): the handoff file (-o) gets every
    /// token and rotations go on; this and later resumes leave the store alone.
    #[arg(long, conflicts_with = "to")]
    pub no_store: bool,
    /// With --to: the store's CA file (PEM).
    #[arg(long, value_name = "FILE", requires = "to")]
    pub to_ca: Option<PathBuf>,
    /// With --to: a file holding the store token.
    #[arg(long, value_name = "FILE", requires = "to")]
    pub to_token_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CoverageArgs {
    /// The inventory the shards ran over (.csv or .toml); its SHA-256 must be the reports'.
    #[arg(short, long, value_name = "FILE")]
    pub inventory: PathBuf,
    /// The shards' JSON reports (`--report`); a resume's report replaces its run's earlier one.
    #[arg(value_name = "REPORT", required = true)]
    pub reports: Vec<PathBuf>,
    /// `--scope whm` runs: one target per host (its WHM user).
    #[arg(long, value_enum, default_value_t = ScopeArg::Account)]
    pub scope: ScopeArg,
    #[arg(long, value_enum, default_value_t = CoverageFormat::Table)]
    pub format: CoverageFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum CoverageFormat {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct OpenArgs {
    /// Handoff files or journals (several: one table or CSV with one header, e.g. every
    /// shard's handoff); `-` reads one from standard input.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// An age identity file (AGE-SECRET-KEY-...) or an SSH private key (~/.ssh/id_ed25519), as
    /// `age -d -i` takes; repeatable. Without it, a passphrase is asked. (`-i` is kept as an
    /// alias.)
    #[arg(short = 'k', long, short_alias = 'i', value_name = "KEY")]
    pub identity: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = OutFormat::Table)]
    pub format: OutFormat,
}
