//! Why this module exists: the wiring from parsed arguments to inventory → plan → run → seal →
//! report. It validates everything the user gave before the first request (exit 2, nothing
//! contacted), then hands over to the library. No business logic lives here: each step is one
//! call into the module that owns it. `args.rs` holds the clap types, `show.rs` what fleet
//! commands print on stdout.
//! See docs/DESIGN.md §1 and §5.

use crate::backend::Fleet;
use crate::error::{InputError, Problem, exit};
use crate::inventory;
use crate::job::{self, NetOptions, RunRecord, defaults};
use crate::plan::{self, Operation, Plan, PlanRequest, Scope};
use crate::progress::{Mode, Progress};
use crate::report::Report;
use crate::run::{self, Observer, RunOptions};
use crate::seal::{JournalLock, LockError, Output};
use crate::secret::Secret;
use crate::sink::bao::{BaoStore, StoreSpec};
use crate::sink::{AgeHandoff, Delivered, Sink, SinkError};
use clap::{CommandFactory, Parser};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// `eprintln!` without its panic: a closed stderr (`tokenfleet … 2>&1 | head`) must not turn a
/// finished run (tokens created and sealed) into a crash with exit code 101.
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod args;
mod census;
mod man;
mod retry;
mod show;

pub use args::*;
use show::{
    Screen, print_checks, print_dry_run, print_hosts, print_listing, print_plan, print_targets,
};

/// Entry point used by `main.rs`: parse, run, and turn every error into a message and a code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(Failure::Input(e)) => {
            say!("{e}");
            exit::BAD_INPUT
        }
        Err(Failure::Other(e)) => {
            say!("error: {e:#}");
            exit::SOME_FAILED
        }
    }
}

/// Why a command ended early.
pub enum Failure {
    /// Bad input: nothing was contacted (exit 2).
    Input(InputError),
    /// Anything else.
    Other(anyhow::Error),
}

impl From<InputError> for Failure {
    fn from(e: InputError) -> Self {
        Failure::Input(e)
    }
}

impl From<Problem> for Failure {
    fn from(p: Problem) -> Self {
        Failure::Input(InputError::one(p))
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Other(e)
    }
}

/// Write generated text to stdout; a reader that stops early (`| head`) is not an error.
fn print_stdout(bytes: &[u8]) -> Result<i32, Failure> {
    match std::io::stdout().write_all(bytes) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(anyhow::Error::from(e).into()),
        _ => Ok(exit::OK),
    }
}

/// Run a parsed command line; returns the exit code.
pub fn run(cli: Cli) -> Result<i32, Failure> {
    match cli.command {
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "tokenfleet", &mut out);
            print_stdout(&out)
        }
        Command::Man { page, dir: None } => match man::page(page.as_deref()) {
            Ok(roff) => print_stdout(&roff),
            Err(why) => Err(Problem::new("tokenfleet man", why)
                .hint("`tokenfleet man` alone prints tokenfleet(1)")
                .into()),
        },
        Command::Man { dir: Some(dir), .. } => {
            let written = man::write_all(&dir).map_err(|e| {
                Problem::new(
                    dir.display().to_string(),
                    format!("cannot write the man pages: {e}"),
                )
                .hint("choose a folder you can write, e.g. --dir ~/.local/share/man/man1")
            })?;
            say!("wrote {} man pages into {}", written.len(), dir.display());
            Ok(exit::OK)
        }
        Command::Audit(args) => census::audit(args),
        Command::Sweep(args) => census::sweep(args),
        Command::Open(args) => open(args),
        Command::Coverage(args) => coverage(args),
        Command::Resume(args) => resume(args),
        Command::List(args) => {
            let format = args.format;
            fleet(
                Job {
                    common: args.common,
                    op: Operation::List,
                    ..Job::default()
                },
                |out, w| print_listing(&out.listings, format, w),
            )
        }
        Command::Check(args) => {
            let format = args.format;
            fleet(
                Job {
                    common: args.common,
                    op: Operation::Check,
                    ..Job::default()
                },
                |out, w| print_checks(&out.checks, format, w),
            )
        }
        Command::Revoke(args) => fleet(
            Job {
                common: args.common,
                op: Operation::Revoke,
                name: Some(args.name),
                dry_run: args.dry_run,
                revoke_own: args.revoke_own_credential,
                ..Job::default()
            },
            |_, _| Ok(()),
        ),
        Command::Create(args) => {
            let expires_at = plan::expiry(
                args.mint.expires_in.as_deref(),
                args.mint.expires_at.as_deref(),
            )?;
            let policy = token_policy(&args.mint.acls, &args.mint.whitelist_ips)?;
            fleet(
                Job {
                    common: args.common,
                    op: Operation::Create,
                    name: Some(args.name),
                    expires_at,
                    seal: Some(args.mint.seal),
                    dry_run: args.mint.dry_run,
                    replace_existing: args.mint.replace_existing,
                    policy,
                    ..Job::default()
                },
                |_, _| Ok(()),
            )
        }
        Command::Rotate(args) => {
            let expires_at = plan::expiry(
                args.mint.expires_in.as_deref(),
                args.mint.expires_at.as_deref(),
            )?;
            let policy = token_policy(&args.mint.acls, &args.mint.whitelist_ips)?;
            let expiring = expiring(args.expiring_within.as_deref())?;
            fleet(
                Job {
                    common: args.common,
                    op: Operation::Rotate,
                    name: Some(args.name),
                    revoke: Some(args.revoke),
                    expires_at,
                    seal: Some(args.mint.seal),
                    dry_run: args.mint.dry_run,
                    verify: !args.no_verify,
                    replace_existing: args.mint.replace_existing,
                    policy,
                    expiring,
                    ..Job::default()
                },
                |_, _| Ok(()),
            )
        }
        Command::Update(args) => {
            let change = token_change(&args)?;
            let expiring = expiring(args.expiring_within.as_deref())?;
            fleet(
                Job {
                    common: args.common,
                    op: Operation::Update,
                    name: Some(args.name),
                    dry_run: args.dry_run,
                    include_own: args.include_own_credential,
                    change: Some(change),
                    expiring,
                    ..Job::default()
                },
                |_, _| Ok(()),
            )
        }
    }
}

/// `--acl`, `--whitelist-ip` of create and rotate, checked (the scope is the plan's to check).
fn token_policy(acls: &[String], whitelist: &[String]) -> Result<plan::TokenPolicy, Failure> {
    Ok(plan::TokenPolicy {
        acls: plan::policy::acls(acls)?,
        whitelist: plan::policy::whitelist(whitelist)?,
    })
}

/// `--expiring-within DUR`, as a deadline from now.
fn expiring(raw: Option<&str>) -> Result<Option<plan::Expiring>, Failure> {
    raw.map(|r| plan::policy::expiring_within(r, jiff::Timestamp::now()))
        .transpose()
        .map_err(Failure::from)
}

/// What `update` changes, checked: every flag's problem at once.
fn token_change(args: &UpdateArgs) -> Result<plan::TokenChange, Failure> {
    let mut problems = Vec::new();
    let mut change = plan::TokenChange::default();
    match plan::expiry(args.expires_in.as_deref(), args.expires_at.as_deref()) {
        Ok(Some(at)) => change.expires = Some(plan::NewExpiry::At(at)),
        Ok(None) if args.never_expires => change.expires = Some(plan::NewExpiry::Never),
        Ok(None) => {}
        Err(p) => problems.push(p),
    }
    if !args.acls.is_empty() {
        match plan::policy::acls(&args.acls) {
            Ok(a) => change.acls = Some(a),
            Err(p) => problems.push(p),
        }
    }
    if args.whitelist_any {
        change.whitelist = Some(Vec::new());
    } else if !args.whitelist_ips.is_empty() {
        match plan::policy::whitelist(&args.whitelist_ips) {
            Ok(w) => change.whitelist = Some(w),
            Err(p) => problems.push(p),
        }
    }
    if problems.is_empty() {
        Ok(change)
    } else {
        Err(Failure::Input(InputError { problems }))
    }
}

/// One fleet command, as flags.
struct Job {
    common: Common,
    op: Operation,
    name: Option<String>,
    revoke: Option<String>,
    expires_at: Option<i64>,
    seal: Option<SealArgs>,
    dry_run: bool,
    verify: bool,
    replace_existing: bool,
    revoke_own: bool,
    /// Chosen before anything is read: it names the plan and, with `-o -`, the journal.
    run_id: String,
    /// `--shard K/N` or `--shard-count N` with JOB_COMPLETION_INDEX, checked.
    shard: Option<crate::shard::Shard>,
    /// `--acl`, `--whitelist-ip` (create, rotate).
    policy: plan::TokenPolicy,
    /// `--expiring-within` (rotate, update).
    expiring: Option<plan::Expiring>,
    /// What `update` changes.
    change: Option<plan::TokenChange>,
    /// `update --include-own-credential`.
    include_own: bool,
    /// `audit`, `sweep`: what classes a token.
    census: Option<CensusArgs>,
    /// `sweep`: what it takes, its journal and what an earlier run of it did.
    sweep: Option<census::SweepJob>,
}

impl Default for Job {
    fn default() -> Self {
        Job {
            common: Common {
                inventory: PathBuf::new(),
                limit: None,
                accounts: None,
                jobs: defaults::JOBS,
                per_host: defaults::PER_HOST,
                batch: crate::run::DEFAULT_BATCH,
                timeout: defaults::TIMEOUT_SECS,
                retries: defaults::RETRIES,
                report: None,
                progress: "auto".into(),
                color: "auto".into(),
                quiet: false,
                verbose: false,
                scope: None,
                list_hosts: false,
                list_targets: false,
                shard: None,
                shard_count: None,
            },
            op: Operation::List,
            name: None,
            revoke: None,
            expires_at: None,
            seal: None,
            dry_run: false,
            verify: true,
            replace_existing: false,
            revoke_own: false,
            run_id: format!("{:08x}", fastrand::u32(..)),
            shard: None,
            policy: plan::TokenPolicy::default(),
            expiring: None,
            change: None,
            include_own: false,
            census: None,
            sweep: None,
        }
    }
}

/// Ask on the terminal (for `credential = "prompt"`).
fn prompt_credential(label: &str) -> Result<Secret, String> {
    if !std::io::IsTerminal::is_terminal(&std::io::stdin())
        && std::fs::File::open("/dev/tty").is_err()
    {
        return Err(
            "credential = \"prompt\" needs a terminal; use env:NAME or file:PATH for automation"
                .into(),
        );
    }
    rpassword::prompt_password(format!("{label}: "))
        .map(Secret::new)
        .map_err(|e| format!("cannot read the credential from the terminal: {e}"))
}

fn build_plan(job: &Job) -> Result<(Plan, Fleet, String), Failure> {
    let common = &job.common;
    let now = jiff::Timestamp::now();
    // The flags are checked with the inventory, so one run shows every mistake.
    let mut flag_problems = Vec::new();
    let (scope, scope_problem) = scope_of(job.op, common.scope);
    flag_problems.extend(scope_problem);
    let (census, sweep) = match census::rules_of(job, now.as_second()) {
        Ok(r) => r,
        Err(mut p) => {
            flag_problems.append(&mut p);
            (None, None)
        }
    };
    let inventory = match inventory::load(&common.inventory) {
        Ok(i) if flag_problems.is_empty() => i,
        Ok(_) => {
            let mut problems: Vec<Problem> = plan::template_problem(job.op, job.name.as_deref())
                .into_iter()
                .collect();
            problems.append(&mut flag_problems);
            return Err(Failure::Input(InputError { problems }));
        }
        Err(mut e) => {
            e.problems
                .extend(plan::template_problem(job.op, job.name.as_deref()));
            e.problems.append(&mut flag_problems);
            return Err(Failure::Input(e));
        }
    };
    let req = PlanRequest {
        op: Some(job.op),
        scope,
        census,
        sweep,
        name: job.name.clone(),
        revoke: job.revoke.clone(),
        expires_at: job.expires_at,
        limit: common.limit.clone(),
        accounts: common.accounts.clone(),
        per_host: common.per_host as usize,
        run_id: job.run_id.clone(),
        date: now.strftime("%Y%m%d").to_string(),
        shard: job.shard,
        policy: job.policy.clone(),
        expiring: job.expiring.clone(),
        change: job.change.clone(),
    };
    let plan = plan::build(&inventory, &req, &mut prompt_credential)?;
    let backends = job::backends(
        &plan,
        NetOptions {
            timeout_secs: common.timeout,
        },
    )?;
    Ok((plan, backends, inventory.sha256))
}

/// `--scope` for `op`: `all` only for audit and sweep, where it is the default.
fn scope_of(op: Operation, arg: Option<ScopeArg>) -> (Scope, Option<Problem>) {
    let census = matches!(op, Operation::Audit | Operation::Sweep);
    match arg {
        None if census => (Scope::All, None),
        None | Some(ScopeArg::Account) => (Scope::Account, None),
        Some(ScopeArg::Whm) => (Scope::Whm, None),
        Some(ScopeArg::All) if census => (Scope::All, None),
        Some(ScopeArg::All) => (
            Scope::Account,
            Some(
                Problem::new(
                    "--scope all",
                    format!("{} works on one kind of token at a time", op.as_str()),
                )
                .hint("--scope account (the default) or --scope whm; `all` is for audit and sweep"),
            ),
        ),
    }
}

/// Where a command's printed text goes: stderr when stdout carries the report or the handoff.
fn screen_for(report: Option<&Path>, output: Option<&Path>) -> Screen {
    let stdout = |p: Option<&Path>| p.is_some_and(|p| p.as_os_str() == "-");
    Screen {
        to_stderr: stdout(report) || stdout(output),
    }
}

/// `--shard K/N`, or `--shard-count N` with K from JOB_COMPLETION_INDEX; then `{shard}` in
/// -o, --journal and --report becomes `K-of-N`, and a shard's default file names carry it, so
/// shards sharing a folder never collide.
fn shard_job(mut job: Job) -> Result<Job, Failure> {
    let c = &job.common;
    job.shard = match (&c.shard, c.shard_count) {
        (Some(raw), _) => Some(crate::shard::Shard::parse(raw)?),
        (None, Some(n)) => Some(crate::shard::Shard::from_index(
            n,
            std::env::var(crate::shard::INDEX_ENV).ok().as_deref(),
        )?),
        (None, None) => None,
    };
    let shard = job.shard;
    let mut problems = Vec::new();
    let mut expand =
        |path: &mut PathBuf, flag: &str| match crate::shard::expand_path(path, flag, shard) {
            Ok(Some(p)) => *path = p,
            Ok(None) => {}
            Err(p) => problems.push(p),
        };
    if let Some(report) = job.common.report.as_mut() {
        expand(report, "--report");
    }
    if let Some(seal) = job.seal.as_mut() {
        if let Some(out) = seal.output.as_mut() {
            expand(out, "-o");
        }
        if let Some(journal) = seal.journal.as_mut() {
            expand(journal, "--journal");
        }
        // `-o -` names its journal after the run id; a shard's also says which shard it is.
        if let Some(s) = shard
            && seal.journal.is_none()
            && seal.output.as_deref().is_none_or(crate::seal::is_stdout)
        {
            seal.journal = Some(PathBuf::from(format!(
                "tokenfleet-{}.{}.journal",
                job.op.as_str(),
                s.label()
            )));
        }
    }
    if !problems.is_empty() {
        return Err(Failure::Input(InputError { problems }));
    }
    Ok(job)
}

/// The shared path of every fleet command: validate, run, seal, report.
fn fleet(
    job: Job,
    print: impl FnOnce(&run::Outcome, &mut dyn Write) -> anyhow::Result<()>,
) -> Result<i32, Failure> {
    fleet_planned(job, |out, _, w| print(out, w))
}

/// [`fleet`] whose printing also reads the validated plan (the census's rules and run id).
fn fleet_planned(
    job: Job,
    print: impl FnOnce(&run::Outcome, &Plan, &mut dyn Write) -> anyhow::Result<()>,
) -> Result<i32, Failure> {
    let job = shard_job(job)?;
    let common = &job.common;
    let screen = screen_for(
        common.report.as_deref(),
        job.seal.as_ref().and_then(|s| s.output.as_deref()),
    );
    let (plan, backends, inventory_sha256, sealing, store) = validate(&job)?;
    if let Some(store) = store.as_ref().filter(|_| plan.op() == Operation::Check)
        && !common.quiet
    {
        say!("store: {}", store.describe());
    }
    for w in &plan.warnings {
        say!("warning: {w}");
    }
    if common.list_hosts {
        print_hosts(&plan, screen);
        return Ok(exit::OK);
    }
    if job.dry_run {
        print_plan(&plan, job.op, screen);
    }
    let colour = crate::progress::colour(&common.color);
    let progress = progress_for(
        &plan,
        &common.progress,
        common.quiet || common.list_targets,
        colour,
    );
    let opts = RunOptions {
        jobs: common.jobs as usize,
        retries: common.retries,
        list_only: common.list_targets,
        dry_run: job.dry_run,
        verify: job.verify,
        replace_existing: job.replace_existing,
        revoke_own: job.revoke_own,
        include_own: job.include_own,
        batch: common.batch as usize,
        keep: store
            .as_ref()
            .map(|s| run::Keeper(s.clone() as Arc<dyn crate::outcome::Keep>)),
        ..RunOptions::default()
    };
    // A sweep's journal: made now, before the first request (exit 2 if it cannot be).
    let sweep_journal = census::open_journal(&job, &plan, &inventory_sha256)?;
    let stop = install_interrupt(match (&sealing, &sweep_journal) {
        (Some(out), _) => Some(resume_command(
            out.journal_path(),
            !out.recipients().is_passphrase(),
        )),
        (None, Some((j, _))) => Some(resume_command(j.path(), false)),
        (None, None) => None,
    });
    let started = jiff::Timestamp::now();
    let journal = match &sealing {
        Some(out) => {
            let record = job::plan_record(
                &plan,
                &common.inventory,
                &inventory_sha256,
                &run_record(&job, &plan),
            );
            let lazy_created = plan.op() == Operation::Create;
            Some(out.start_journal(record, lazy_created).map_err(|e| {
                match e {
                    // Nothing has been sent yet: a journal that cannot be created (full disk,
                    // permissions) is bad input like any other, exit 2.
                    crate::seal::SealError::CreateJournal { path, error } => {
                        Failure::Input(InputError::one(
                            Problem::new(
                                path.display().to_string(),
                                format!("cannot create the journal: {error}"),
                            )
                            .hint("make room or choose another -o or --journal; nothing was contacted"),
                        ))
                    }
                    other => Failure::Other(other.into()),
                }
            })?)
        }
        None => None,
    };
    // `-o -` puts the handoff on stdout: say where its journal is (resume and open need it).
    if let Some(out) = sealing.as_ref()
        && !common.quiet
    {
        match out.path() {
            Some(p) if crate::seal::is_stdout(p) => say!(
                "journal: {} (the handoff goes to standard output)",
                out.journal_path().display()
            ),
            None => say!(
                "journal: {} (every new secret sealed to the recipients; the tokens go to the store)",
                out.journal_path().display()
            ),
            Some(_) => {}
        }
    }
    let ledger: &dyn run::Ledger = match (&journal, &sweep_journal) {
        (Some(j), _) => j,
        (None, Some((j, _))) => j,
        (None, None) => &run::NoLedger,
    };
    let observer = &progress as &dyn Observer;
    let outcome = match census::prior_of(&job) {
        Some((prior, hold)) => {
            let opts = RunOptions {
                hold: hold.clone(),
                ..opts
            };
            run::execute_resumed(&plan, &backends, &opts, prior, ledger, observer, &stop)
        }
        None => run::execute(&plan, &backends, &opts, ledger, observer, &stop),
    };
    if let Some((j, _)) = &sweep_journal
        && !common.quiet
    {
        say!(
            "journal: {} (every revocation, with each token's metadata; `tokenfleet resume` continues an interrupted sweep)",
            j.path().display()
        );
    }
    progress.finish();
    if common.list_targets {
        print_targets(&outcome.results, plan.scope == Scope::Whm, screen);
        let failed: Vec<_> = outcome
            .results
            .iter()
            .filter(|t| t.status != crate::outcome::Status::Listed)
            .collect();
        if failed.is_empty() {
            return Ok(exit::OK);
        }
        // A host whose accounts could not be discovered: its targets are not known.
        let report = Report::new(
            &plan.run_id,
            plan.op().as_str(),
            started.to_string(),
            failed,
        );
        say!("{}", report.summary(colour));
        return Ok(exit::SOME_FAILED);
    }

    let mut outcome = outcome;
    let handoff = sealing.as_ref().map(|out| {
        let mut deliveries = Vec::new();
        if let Some(path) = out.path() {
            let delivered = AgeHandoff::for_output(out, path).deliver(&outcome.minted);
            if let (Ok(Some(_)), Some(j)) = (&delivered, &journal) {
                j.delivered(path);
            }
            deliveries.push((Dest::File, delivered));
        }
        if let Some(store) = &store {
            deliveries.push((Dest::Store, store.deliver(&outcome.minted)));
        }
        (deliveries, out.journal_path().to_path_buf())
    });
    if let Some(store) = &store {
        outcome.results = settle_store(&outcome.results, store, plan.op());
    }
    let end = Ending {
        run_id: &plan.run_id,
        sweep_journal: sweep_journal.as_ref().map(|(j, _)| j.path().to_path_buf()),
        op: plan.op(),
        report: common.report.as_deref(),
        quiet: common.quiet,
        verbose: common.verbose,
        dry_run: job.dry_run,
        started,
        screen,
        output: sealing
            .as_ref()
            .and_then(|o| o.path())
            .map(Path::to_path_buf),
        resumed: false,
        whm_scope: plan.scope == Scope::Whm,
        limit: common.limit.clone(),
        passphrase: sealing
            .as_ref()
            .is_some_and(|out| out.recipients().is_passphrase()),
        colour,
        shard: plan.shard,
        inventory_sha256: plan.inventory_sha256.clone(),
    };
    conclude(&end, outcome, handoff, |out, w| print(out, &plan, w))
}

/// Everything the user gave, validated before the first request, with every problem reported
/// at once: the inventory and flags, then the sealing side. The passphrase is asked last, only
/// when all else is valid, so a typo never costs the user a passphrase round.
type Validated = (Plan, Fleet, String, Option<Output>, Option<Arc<BaoStore>>);

fn validate(job: &Job) -> Result<Validated, Failure> {
    let (plan, backends, inventory_sha256) = match build_plan(job) {
        Ok(planned) => planned,
        Err(Failure::Input(mut e)) => {
            if let Some(Err(more)) = prepare_sealing(job, false, true) {
                e.problems.extend(more.problems);
            }
            return Err(Failure::Input(e));
        }
        Err(other) => return Err(other),
    };
    // A dry run checks the store too (read-only calls), so its verdict holds for the real run.
    let spec = store_spec(job, &plan).filter(|_| job.seal.is_some() || job.op == Operation::Check);
    let listing = job.common.list_hosts || job.common.list_targets;
    let sealing = prepare_sealing(job, true, spec.is_some()).transpose()?;
    // The store is contacted (checked) only once everything local is valid, and before the
    // fleet: a wrong token or an unreachable store is exit 2 with nothing sent to a server.
    let store = match spec.filter(|_| !listing) {
        Some(spec) => Some(Arc::new(job::store(
            &plan,
            &spec,
            job.common.retries,
            job.replace_existing,
            job::NetOptions {
                timeout_secs: job.common.timeout,
            },
        )?)),
        None => None,
    };
    for w in store.iter().flat_map(|s| s.warnings()) {
        say!("warning: {w}");
    }
    Ok((plan, backends, inventory_sha256, sealing, store))
}

/// The sealing side of a create or rotate (none for a dry run); with `ask` false, a passphrase
/// run is not checked yet (checking it means asking for the passphrase). `store`: a store takes
/// the secrets, so `-o` may be left out.
fn prepare_sealing(job: &Job, ask: bool, store: bool) -> Option<Result<Output, InputError>> {
    let listing = job.common.list_hosts || job.common.list_targets;
    let args = job.seal.as_ref().filter(|_| !job.dry_run && !listing)?;
    if args.output.is_none() && !store {
        return Some(Err(InputError::one(
            Problem::new(
                "-o",
                "no destination for the new tokens: give -o/--output OUT (an age handoff file) or --to URL (a secret store)",
            )
            .hint("e.g. -o deploy.age -r age1…, or --to bao+https://vault:8200/secret/cpanel/{host}/{account} -r age1… (the journal is sealed to the recipients either way)"),
        )));
    }
    let stdout = args.output.as_deref().is_some_and(crate::seal::is_stdout);
    if stdout && job.common.report.as_deref() == Some(Path::new("-")) {
        return Some(Err(InputError::one(
            Problem::new(
                "--report -",
                "-o - already writes the handoff to standard output",
            )
            .hint("write the report to a file (--report run.json)"),
        )));
    }
    if args.passphrase && !ask {
        return None;
    }
    Some(Output::prepare(
        &crate::seal::SealRequest {
            command: job.op.as_str(),
            output: args.output.as_deref(),
            journal: args.journal.as_deref(),
            run_id: &job.run_id,
            stdout_is_terminal: std::io::IsTerminal::is_terminal(&std::io::stdout()),
            recipients: &args.recipients,
            recipient_files: &args.recipients_files,
            passphrase: args.passphrase,
            armor: args.armor,
            json: args.format == PlainFormat::Json,
            force: args.force,
        },
        &mut read_new_passphrase,
    ))
}

/// The progress display of a run over `plan`.
fn progress_for(plan: &Plan, progress: &str, quiet: bool, colour: bool) -> Progress {
    let host_targets: Vec<(String, usize)> = plan
        .hosts
        .iter()
        .map(|h| (h.host.name.clone(), h.targets.len()))
        .collect();
    Progress::new(
        Mode::choose(progress, quiet),
        plan.op().as_str(),
        &host_targets,
        colour,
    )
}

/// What the end of a run needs to know besides its outcome.
struct Ending<'a> {
    run_id: &'a str,
    /// A sweep's journal (it holds no secret, so no handoff names it): what `resume` continues.
    sweep_journal: Option<PathBuf>,
    op: Operation,
    report: Option<&'a std::path::Path>,
    quiet: bool,
    /// `-v`: every failed or skipped target, one line each, after the summary.
    verbose: bool,
    dry_run: bool,
    started: jiff::Timestamp,
    /// Where printed text goes (stderr when the report is on stdout).
    screen: Screen,
    /// The handoff file, if the run writes one (its retry file goes beside it).
    output: Option<PathBuf>,
    /// A `resume`: its retry is another resume.
    resumed: bool,
    /// `--scope whm`: a host's one target is the host (retried as `host`, never `host/user`).
    whm_scope: bool,
    /// The run's `--limit`, as given (a successful retry removes the retry file it read).
    limit: Option<String>,
    /// Sealed with a passphrase: the hints to open or resume need no `--identity KEY`.
    passphrase: bool,
    /// The summary in colour (`--color`).
    colour: bool,
    /// `--shard K/N`: the report says so, and the retry file's default name carries it.
    shard: Option<crate::shard::Shard>,
    /// The inventory's SHA-256, for the report.
    inventory_sha256: String,
}

/// The end of every fleet command and of `resume`: say where the secrets went, print, write the
/// report, the summary and (when interrupted) the exact command that continues; the exit code.
/// `handoff` is the result of each delivery (the handoff file, a store) and the journal they
/// came with.
type HandoffResult = Result<Option<Delivered>, SinkError>;

/// Where a run's secrets went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dest {
    /// The age handoff file (`-o`).
    File,
    /// A secret store (`--to`, `[sink]`).
    Store,
}

type Deliveries = Vec<(Dest, HandoffResult)>;

/// After the store's final delivery, each target's result says where its token is: a create
/// whose write failed during the run but got there at the end is `created` again; a target
/// whose token is still not in the store says so (for a resume: its earlier token too).
fn settle_store(
    results: &crate::spool::Spool<crate::outcome::TargetResult>,
    store: &BaoStore,
    op: Operation,
) -> crate::spool::Spool<crate::outcome::TargetResult> {
    let mut out = crate::spool::Spool::new();
    for mut t in results.iter() {
        let key = (
            t.host.clone(),
            t.account.clone().unwrap_or_default(),
            t.token_name.clone().unwrap_or_default(),
        );
        let ours = matches!(
            t.status,
            crate::outcome::Status::Created | crate::outcome::Status::Rotated
        ) || t.step.as_deref() == Some("store");
        if ours {
            if let Some((message, cause)) = store.missing(&key) {
                if t.step.as_deref() != Some("store") {
                    t.status = crate::outcome::Status::Failed;
                    t.error = Some(format!(
                        "the token is sealed in the journal but not in the store: {message}"
                    ));
                    t.cause = Some(cause);
                    t.step = Some("store".into());
                }
            } else if t.step.as_deref() == Some("store")
                && op == Operation::Create
                && store.holds(&key)
            {
                t.status = crate::outcome::Status::Created;
                t.error = None;
                t.cause = None;
                t.step = None;
                t.note = Some("written to the store at the end of the run".into());
            }
        }
        out.push(t);
    }
    out
}

fn conclude(
    end: &Ending<'_>,
    outcome: run::Outcome,
    handoff: Option<(Deliveries, PathBuf)>,
    print: impl FnOnce(&run::Outcome, &mut dyn Write) -> anyhow::Result<()>,
) -> Result<i32, Failure> {
    let journal_failed = outcome.journal_failed;
    let (sealed_any, handoff_failed) = match &handoff {
        Some((deliveries, journal)) => say_delivered(
            deliveries,
            journal,
            journal_failed,
            end.quiet,
            end.passphrase,
        ),
        None => (false, false),
    };
    print(&outcome, &mut *end.screen.writer()).map_err(Failure::Other)?;
    if end.dry_run {
        print_dry_run(&outcome.results, end.screen);
    }

    let mut report = Report::new(
        end.run_id,
        end.op.as_str(),
        end.started.to_string(),
        outcome.results,
    );
    report.dry_run = end.dry_run;
    report.shard = end.shard;
    report.inventory_sha256 = Some(end.inventory_sha256.clone()).filter(|s| !s.is_empty());
    let summary = report.summary(end.colour);
    let mut code = report.exit_code(handoff_failed, outcome.interrupted);
    if let Some(path) = end.report
        && let Err(e) = report.write(&path.to_string_lossy())
    {
        // The run's own code still tells what happened to the secrets (3 stays 3); a missing
        // report on an otherwise clean run is a failure of its own.
        say!("error: cannot write the report {}: {e}", path.display());
        if code == exit::OK {
            code = exit::SOME_FAILED;
        }
    }
    // A run that minted nothing and left no token for a later step to settle (nothing
    // unproven, no live token nobody holds) has a journal without a secret or an open step:
    // remove it, so the same command (or its retry of the failed targets) can run again
    // without --force. What it failed at is in the summary, the report and the retry file.
    // A journal that saw a credential refused is kept too: its `resume` will not send that
    // credential again unchanged, where a fresh run would (one more failed login for cPHulk).
    // A resume never removes its journal: hosts outside its --limit are still to do.
    let settled = !report
        .targets
        .iter()
        .any(|t| t.attention.is_some() || t.status == crate::outcome::Status::Unproven);
    let mut journal_kept = handoff.is_some();
    if let Some((deliveries, journal)) = &handoff
        && deliveries.iter().all(|(_, r)| matches!(r, Ok(None)))
        && settled
        && !end.resumed
        && !outcome.refusal_journaled
        && !outcome.interrupted
        && !journal_failed
    {
        crate::seal::discard_journal(journal);
        journal_kept = false;
    }
    // As Ansible's "to retry, use: --limit @FILE": before the recap, so the totals stay last.
    if code == exit::SOME_FAILED && !outcome.interrupted && !end.dry_run {
        say_retry(
            end,
            &report,
            &handoff,
            journal_kept,
            sealed_any,
            outcome.refusal_journaled,
        );
    }
    // A retry that succeeded leaves no retry list behind to be run again by mistake.
    if code == exit::OK && !end.dry_run && !end.resumed {
        let path = retry::retry_path(end.output.as_deref(), end.op.as_str(), end.shard);
        if end
            .limit
            .as_ref()
            .is_some_and(|l| l.contains(&format!("@{}", path.display())))
        {
            let _ = std::fs::remove_file(&path);
        }
    }
    if !end.quiet || code != exit::OK {
        // The summary ends with a newline of its own.
        say!("{}", summary.trim_end());
    }
    if end.verbose {
        say_failures(&report);
    }
    if end.dry_run {
        say!("dry run: nothing was changed");
    }
    if journal_failed && let Some((_, journal)) = &handoff {
        say!(
            "the journal {} could not be written, so nothing more was minted; make room, then finish with `{}`",
            journal.display(),
            resume_command(journal, sealed_any && !end.passphrase)
        );
    }
    if outcome.interrupted {
        match &handoff {
            // The secrets sealed so far are needed again for the final handoff.
            Some((_, journal)) => say!(
                "interrupted: the journal is consistent; continue with `{}`",
                resume_command(journal, sealed_any && !end.passphrase)
            ),
            None => match &end.sweep_journal {
                Some(journal) => say!(
                    "interrupted: the journal is consistent; continue with `{}`",
                    resume_command(journal, false)
                ),
                None => say!("interrupted"),
            },
        }
    }
    Ok(code)
}

/// After an exit 1: write the failed targets for `--limit @FILE` and say how to retry only
/// them. A create or rotate whose journal is kept is finished by `resume` (it retries what
/// failed, and its handoff then holds every secret of the run).
fn say_retry(
    end: &Ending<'_>,
    report: &Report,
    handoff: &Option<(Deliveries, PathBuf)>,
    journal_kept: bool,
    sealed_any: bool,
    refused: bool,
) {
    let fix = if refused {
        "; fix the refused credential first (resume does not send it again unchanged)"
    } else {
        ""
    };
    if let (Some((_, journal)), true) = (handoff, end.resumed) {
        say!(
            "retry the failed targets with `{}`{fix}",
            resume_command(journal, !end.passphrase)
        );
        return;
    }
    let path = retry::retry_path(end.output.as_deref(), end.op.as_str(), end.shard);
    let written = match retry::write_retry(&path, &report.targets, end.whm_scope) {
        None => return,
        Some(Ok(())) => true,
        Some(Err(e)) => {
            say!(
                "warning: cannot write the retry file {}: {e}",
                path.display()
            );
            false
        }
    };
    match handoff {
        Some((_, journal)) if journal_kept => {
            let also = if written {
                format!("; they are also listed in {}", path.display())
            } else {
                String::new()
            };
            say!(
                "retry the failed targets with `{}`{fix}{also}",
                resume_command(journal, sealed_any && !end.passphrase)
            );
        }
        _ if written => {
            let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
            say!(
                "retry only the failed targets: `{}`",
                retry::retry_command(&args, &path)
            );
        }
        _ => {}
    }
}

/// The command that continues an interrupted run; `identity`: it must re-read sealed secrets.
fn resume_command(journal: &Path, identity: bool) -> String {
    let identity = if identity { " --identity KEY" } else { "" };
    format!("tokenfleet resume {}{identity}", journal.display())
}

/// Where the secrets went, or how to recover them. Returns (a secret was sealed, the delivery
/// failed). `journal_failed`: the journal stopped taking records part-way, so it holds only
/// what was journaled before (the run minted nothing after, and revoked what it could not hold).
/// `passphrase`: the run is sealed with one, so no command says `--identity KEY`.
fn say_delivered(
    deliveries: &Deliveries,
    journal: &Path,
    journal_failed: bool,
    quiet: bool,
    passphrase: bool,
) -> (bool, bool) {
    let key = if passphrase { "" } else { " --identity KEY" };
    if deliveries.iter().all(|(_, r)| matches!(r, Ok(None))) {
        if !quiet {
            let what = if deliveries.iter().any(|(d, _)| *d == Dest::File) {
                "no handoff file was written"
            } else {
                "nothing was written to the store"
            };
            say!("no token was created; {what}");
        }
        return (false, false);
    }
    let (mut sealed, mut failed) = (false, false);
    for (dest, delivered) in deliveries {
        let (s, f) = match (dest, delivered) {
            (_, Ok(None)) => (false, false),
            (Dest::Store, Err(e)) => {
                say!(
                    "error: {}
  every one of them is sealed in the journal {}: once the store is fixed, `tokenfleet resume {}{key}` sends them again (what the store holds already is kept), or `--to` another path; recover them with `tokenfleet open {}{key}`",
                    crate::error::chain(e),
                    journal.display(),
                    journal.display(),
                    journal.display()
                );
                (true, true)
            }
            (_, delivered) => say_handed_off(delivered, journal, journal_failed, quiet, key),
        };
        sealed |= s;
        failed |= f;
    }
    (sealed, failed)
}

/// [`say_delivered`] for the handoff file.
fn say_handed_off(
    delivered: &HandoffResult,
    journal: &Path,
    journal_failed: bool,
    quiet: bool,
    key: &str,
) -> (bool, bool) {
    match delivered {
        Ok(Some(delivered)) => {
            if !quiet {
                say!("{}", delivered.message);
            }
            (true, false)
        }
        Ok(None) => {
            if !quiet {
                say!("no token was created; no handoff file was written");
            }
            (false, false)
        }
        Err(e) if journal_failed => {
            say!(
                "error: the handoff file could not be written: {}\n  the journal {} stopped taking records part-way: \
                 the secrets journaled before that are in it (recover them with `tokenfleet open {}{key}`, \
                 or finish the run with `tokenfleet resume {}{key}` once there is room); nothing was minted after, and every \
                 token the journal could not hold was revoked or is listed under \"needs a look\"",
                crate::error::chain(e),
                journal.display(),
                journal.display(),
                journal.display()
            );
            (true, true)
        }
        Err(e) => {
            say!(
                "error: the handoff file could not be written: {}\n  the new secrets are sealed in the journal {}: \
                 recover them with `tokenfleet open {}{key}`",
                crate::error::chain(e),
                journal.display(),
                journal.display()
            );
            (true, true)
        }
    }
}

/// `-v`: every failed or skipped target, one line each, after the summary.
fn say_failures(report: &Report) {
    for t in report.targets.iter().filter(|t| t.error.is_some()) {
        let step = t
            .step
            .as_deref()
            .map(|s| format!(" [{s}]"))
            .unwrap_or_default();
        say!(
            "  {} {}/{}{step}: {}",
            t.status.as_str(),
            t.host,
            t.account.as_deref().unwrap_or("-"),
            t.error.as_deref().unwrap_or("")
        );
    }
}

/// `resume JOURNAL`: the library rebuilds the interrupted run; this wires it like `fleet`.
fn resume(args: ResumeArgs) -> Result<i32, Failure> {
    let mut ask = |prompt: &str| -> Result<Secret, Problem> {
        read_passphrase(prompt).map_err(|f| match f {
            Failure::Input(mut e) => e.problems.remove(0),
            Failure::Other(e) => Problem::new("--identity", format!("{e:#}")),
        })
    };
    // One writer per journal: locked before it is read, so what this run reads stays true
    // until it ends (docs/DESIGN.md §4). Held to the end of this function.
    let _lock = lock_existing_journal(&args.journal)?;
    // A sweep's journal holds no secret and its own plan: it resumes as a sweep.
    if crate::seal::journal::plan_record(&args.journal).is_some_and(|p| p.operation == "sweep") {
        return census::resume_sweep(args);
    }
    let steer = crate::resume::Steer {
        limit: args.limit.clone(),
        jobs: args.jobs,
        per_host: args.per_host,
        timeout: args.timeout,
        retries: args.retries,
        retry_refused: args.retry_refused,
        store: args.to.clone().map(|to| StoreSpec {
            to,
            ca_file: args.to_ca.clone(),
            token_file: args.to_token_file.clone(),
            origin: "--to".into(),
        }),
        no_store: args.no_store,
    };
    let resumed = crate::resume::Resume::prepare(
        &args.journal,
        &args.identity,
        &steer,
        &mut ask,
        &mut prompt_credential,
    )?;
    let plan = &resumed.plan;
    if args.report.as_deref() == Some(Path::new("-"))
        && resumed.output_path().is_some_and(crate::seal::is_stdout)
    {
        return Err(Problem::new(
            "--report -",
            "this run writes its handoff to standard output (-o -)",
        )
        .hint("write the report to a file (--report run.json); nothing was contacted")
        .into());
    }
    for w in &plan.warnings {
        say!("warning: {w}");
    }
    for w in &resumed.warnings {
        say!("warning: {w}");
    }
    if !args.quiet {
        for n in &resumed.notes {
            say!("{n}");
        }
    }
    let colour = crate::progress::colour(&args.color);
    let progress = progress_for(plan, &args.progress, args.quiet, colour);
    let stop = install_interrupt(Some(resume_command(
        resumed.journal_path(),
        !resumed.record.passphrase,
    )));
    let started = jiff::Timestamp::now();
    let outcome = run::execute_resumed(
        plan,
        &resumed.backends,
        &resumed.opts,
        &resumed.prior,
        &resumed.ledger,
        &progress as &dyn Observer,
        &stop,
    );
    progress.finish();
    let mut outcome = outcome;
    let mut written = Vec::new();
    if let Some(d) = resumed.deliver(&outcome.minted) {
        written.push((Dest::File, d));
    }
    if let Some(d) = resumed.deliver_store(&outcome.minted) {
        written.push((Dest::Store, d));
    }
    if let Some(store) = resumed.store() {
        outcome.results = settle_store(&outcome.results, store, plan.op());
    }
    conclude(
        &Ending {
            sweep_journal: None,
            run_id: &plan.run_id,
            op: plan.op(),
            report: args.report.as_deref(),
            quiet: args.quiet,
            verbose: args.verbose,
            dry_run: false,
            started,
            screen: screen_for(args.report.as_deref(), resumed.output_path()),
            output: None,
            resumed: true,
            whm_scope: plan.scope == Scope::Whm,
            limit: None,
            passphrase: resumed.record.passphrase,
            colour,
            shard: plan.shard,
            inventory_sha256: plan.inventory_sha256.clone(),
        },
        outcome,
        Some((written, resumed.journal_path().to_path_buf())),
        |_, _| Ok(()),
    )
}

/// Lock the journal `resume` is given. A journal that is not there is left to
/// `Resume::prepare`, which says what is wrong with the path.
fn lock_existing_journal(journal: &Path) -> Result<Option<JournalLock>, Failure> {
    match JournalLock::for_existing(journal, "resume") {
        Ok(lock) => Ok(Some(lock)),
        Err(LockError::Io { .. }) if std::fs::symlink_metadata(journal).is_err() => Ok(None),
        Err(e) => Err(e.problem().into()),
    }
}

/// The first Ctrl-C (or SIGTERM) stops new work; the second exits at once with the
/// interrupted code (the journal is fsynced per record; a create in flight is reconciled by
/// resume). Either way the user is told the command that continues: `resume` is the
/// `tokenfleet resume …` line of a run that writes a journal.
fn install_interrupt(resume: Option<String>) -> Arc<AtomicBool> {
    static STOP: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    static PRESSES: AtomicUsize = AtomicUsize::new(0);
    STOP.get_or_init(|| {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let _ = ctrlc::set_handler(move || {
            if PRESSES.fetch_add(1, Ordering::SeqCst) == 0 {
                flag.store(true, Ordering::SeqCst);
                // One line, above the bars when there are bars; the hosts it skips are
                // counted once, in the summary.
                crate::progress::notice(
                    "interrupt: finishing requests in flight, then stopping (Ctrl-C again to quit now)",
                );
            } else {
                match &resume {
                    Some(command) => say!(
                        "interrupted again: quitting now; the journal is consistent (what was in \
                         flight is reconciled); continue with `{command}`"
                    ),
                    None => say!("interrupted again: quitting now"),
                }
                std::process::exit(exit::INTERRUPTED);
            }
        });
        stop
    })
    .clone()
}

/// `coverage -i INV REPORT...`: reads only; exit 0 when every target is done and the reports
/// belong together, 1 otherwise, 2 when a file cannot be read.
fn coverage(args: CoverageArgs) -> Result<i32, Failure> {
    let inventory = inventory::load(&args.inventory)?;
    let mut problems = Vec::new();
    let mut inputs = Vec::new();
    for path in &args.reports {
        let shown = path.display().to_string();
        let read = std::fs::read(path)
            .map_err(|e| Problem::new(&shown, format!("cannot read the report: {e}")))
            .and_then(|bytes| {
                serde_json::from_slice::<Report>(&bytes).map_err(|e| {
                    Problem::new(
                        format!("{shown}:{}", e.line()),
                        format!("not a tokenfleet report: {e}"),
                    )
                    .hint("give the JSON files the shards wrote with --report FILE")
                })
            });
        match read {
            Ok(report) => inputs.push(crate::coverage::Input {
                path: shown,
                report,
            }),
            Err(p) => problems.push(p),
        }
    }
    if !problems.is_empty() {
        return Err(Failure::Input(InputError { problems }));
    }
    let cov = crate::coverage::check(&inventory, inputs, args.scope == ScopeArg::Whm);
    let text = match args.format {
        CoverageFormat::Table => crate::coverage::render(&cov),
        CoverageFormat::Json => {
            let mut v = serde_json::to_value(&cov).map_err(anyhow::Error::from)?;
            v["complete"] = cov.complete().into();
            format!(
                "{}\n",
                serde_json::to_string_pretty(&v).map_err(anyhow::Error::from)?
            )
        }
    };
    print_stdout(text.as_bytes())?;
    Ok(if cov.complete() {
        exit::OK
    } else {
        exit::SOME_FAILED
    })
}

/// `open FILE` (`-`: standard input). Its input errors print without "nothing was contacted":
/// `open` contacts nothing anyway.
fn open(args: OpenArgs) -> Result<i32, Failure> {
    match open_file(args) {
        Err(Failure::Input(e)) => {
            for p in &e.problems {
                say!("error: {p}");
            }
            Ok(exit::BAD_INPUT)
        }
        other => other,
    }
}

fn open_file(args: OpenArgs) -> Result<i32, Failure> {
    use crate::seal::{Keys, SealError};
    // The same file twice would print its tokens twice: refused before anything is decrypted.
    let mut seen = std::collections::HashMap::new();
    for f in &args.files {
        let id = if f == Path::new("-") {
            f.clone()
        } else {
            std::fs::canonicalize(f).unwrap_or_else(|_| f.clone())
        };
        if let Some(first) = seen.insert(id, f) {
            let what = if f == Path::new("-") {
                "standard input (-) is given twice".to_string()
            } else {
                format!("given twice (also as {})", first.display())
            };
            return Err(Problem::new(f.display().to_string(), what)
                .hint("name each handoff or journal once")
                .into());
        }
    }
    let mut keys = Keys::new();
    let seal_failure = |file: &Path, e: SealError| {
        match e {
        SealError::Encrypt(_) => Failure::Other(anyhow::Error::from(e)),
        SealError::Io { path, error } => Failure::Input(InputError::one(
            Problem::new(path.display().to_string(), format!("cannot read: {error}"))
                .hint("check the path; `tokenfleet open` reads a handoff file or its journal (`-`: standard input)"),
        )),
        SealError::Invalid { location, message, hint } => Failure::Input(InputError::one(
            Problem::new(location, message).hint(hint.unwrap_or_else(|| {
                "`tokenfleet open` reads what tokenfleet wrote: an age handoff file (binary or armored) or a journal"
                    .to_string()
            })),
        )),
        other => Failure::Input(InputError::one(Problem::new(
            file.display().to_string(),
            other.to_string(),
        ))),
    }
    };
    for path in &args.identity {
        match keys.load_identity_file(path) {
            Ok(_) => {}
            Err(SealError::NeedPassphrase { .. }) => {
                keys = keys.with_passphrase(read_passphrase(&format!(
                    "Passphrase for {}: ",
                    path.display()
                ))?);
                keys.load_identity_file(path)
                    .map_err(|e| seal_failure(path, e))?;
            }
            Err(e) => return Err(seal_failure(path, e)),
        }
    }
    let mut rows: Vec<crate::seal::HandoffRow> = Vec::new();
    let mut damaged_files = 0;
    let mut twice = 0;
    let mut differ: Vec<String> = Vec::new();
    for file in &args.files {
        let (mut more, damaged) = open_one(file, &mut keys).map_err(|e| seal_failure(file, e))?;
        let recovered = more.len();
        // A handoff and its journal (or two shards' files) may hold the same secret: it is
        // printed once. The same target and name with another secret is printed, and said.
        more.retain(|r| {
            match rows.iter().find(|o| {
                o.host == r.host && o.account == r.account && o.token_name == r.token_name
            }) {
                Some(o) if o.token == r.token => {
                    twice += 1;
                    false
                }
                Some(_) => {
                    differ.push(format!("{}/{} {}", r.host, r.account, r.token_name));
                    true
                }
                None => true,
            }
        });
        rows.append(&mut more);
        if damaged.is_empty() {
            continue;
        }
        // Every intact record was shown; the damaged ones are named, and the exit code says so.
        damaged_files += 1;
        for d in &damaged {
            say!("warning: {}:{}: {}", file.display(), d.line, d.why);
        }
        say!(
            "{} damaged line(s) in {}; {recovered} secret(s) recovered. A target whose secret is lost is reconciled by `tokenfleet resume` (it revokes the token this run made and creates it again).",
            damaged.len(),
            file.display(),
        );
    }
    if twice > 0 {
        say!("note: {twice} token(s) found in more than one file are printed once");
    }
    if !differ.is_empty() {
        say!(
            "warning: {} target(s) have a token of the same name with different secrets in these files (from different runs?); both are printed: {}",
            differ.len(),
            crate::error::name_list(&differ.iter().map(String::as_str).collect::<Vec<_>>(), 5)
        );
    }
    let text = show::render_handoff(&rows, args.format);
    let code = print_stdout(text.as_bytes())?;
    if damaged_files > 0 {
        return Ok(exit::SOME_FAILED);
    }
    Ok(code)
}

/// One handoff or journal of `open` (`-`: standard input), asking for a passphrase the first
/// time one is needed (the next files reuse it).
fn open_one(
    file: &Path,
    keys: &mut crate::seal::Keys,
) -> Result<(Vec<crate::seal::HandoffRow>, Vec<crate::seal::Damaged>), crate::seal::SealError> {
    use crate::seal::SealError;
    // Read before any passphrase is asked (the prompt is on the terminal, not stdin).
    let piped = if file == Path::new("-") {
        let mut bytes = zeroize::Zeroizing::new(Vec::new());
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut bytes)
            .map_err(|e| SealError::io(Path::new("-"), e))?;
        Some(bytes)
    } else {
        None
    };
    let open_it = |keys: &crate::seal::Keys| match &piped {
        Some(bytes) => crate::seal::open_bytes(bytes, Path::new("-"), keys),
        None => crate::seal::open_file(file, keys),
    };
    match open_it(keys) {
        Err(SealError::NeedPassphrase { .. }) if keys.passphrase().is_none() => {
            let pass = read_passphrase("Passphrase: ").map_err(|f| match f {
                Failure::Input(e) => SealError::Invalid {
                    location: e.problems[0].location.clone(),
                    message: e.problems[0].message.clone(),
                    hint: e.problems[0].hint.clone(),
                },
                Failure::Other(e) => SealError::Invalid {
                    location: "--identity".into(),
                    message: format!("{e:#}"),
                    hint: None,
                },
            })?;
            *keys = std::mem::take(keys).with_passphrase(pass);
            open_it(keys)
        }
        other => other,
    }
}

/// `--passphrase`: TOKENFLEET_PASSPHRASE, or asked twice on the terminal.
fn read_new_passphrase() -> Result<Secret, Problem> {
    if let Ok(p) = std::env::var("TOKENFLEET_PASSPHRASE") {
        if p.is_empty() {
            return Err(Problem::new("TOKENFLEET_PASSPHRASE", "is empty")
                .hint("set a passphrase, or unset it to be asked"));
        }
        return Ok(Secret::new(p));
    }
    let ask = |prompt: &str| {
        rpassword::prompt_password(prompt).map_err(|e| {
            Problem::new(
                "--passphrase",
                format!("cannot read a passphrase from the terminal: {e}"),
            )
            .hint("set TOKENFLEET_PASSPHRASE for automation, or use -r/-R with an age key")
        })
    };
    let first = Secret::new(ask("Passphrase for the handoff: ")?);
    let second = Secret::new(ask("Confirm passphrase: ")?);
    if first != second {
        return Err(Problem::new("--passphrase", "the two passphrases differ")
            .hint("run again and type the same passphrase twice"));
    }
    if first.is_empty() {
        return Err(Problem::new("--passphrase", "the passphrase is empty")
            .hint("type a passphrase, or use -r/-R with an age key"));
    }
    Ok(first)
}

/// A passphrase to open something: TOKENFLEET_PASSPHRASE, or asked once on the terminal.
fn read_passphrase(prompt: &str) -> Result<Secret, Failure> {
    if let Ok(p) = std::env::var("TOKENFLEET_PASSPHRASE") {
        return Ok(Secret::new(p));
    }
    rpassword::prompt_password(prompt)
        .map(Secret::new)
        .map_err(|e| {
            Failure::Input(InputError::one(
                Problem::new(
                    "--identity",
                    format!("a passphrase is needed and cannot be read from the terminal: {e}"),
                )
                .hint("pass -k/--identity KEY, or set TOKENFLEET_PASSPHRASE"),
            ))
        })
}

/// The run's record for the journal's plan line, so `resume` can rebuild the same plan.
fn run_record(job: &Job, plan: &Plan) -> RunRecord {
    let c = &job.common;
    RunRecord {
        date: Some(plan.date.clone()),
        inventory_abs: std::path::absolute(&c.inventory)
            .map(|p| p.display().to_string())
            .ok(),
        targets: Some(crate::resume::fingerprint(plan)),
        limit: plan.limit.clone(),
        accounts: c.accounts.clone(),
        jobs: c.jobs,
        per_host: c.per_host,
        timeout: c.timeout,
        retries: c.retries,
        name: job.name.clone(),
        revoke: job.revoke.clone(),
        expires_at: job.expires_at,
        verify: job.verify,
        replace_existing: job.replace_existing,
        output: job
            .seal
            .as_ref()
            .and_then(|s| s.output.as_ref())
            .map(|o| o.display().to_string()),
        output_abs: job
            .seal
            .as_ref()
            .and_then(|s| s.output.as_deref())
            .filter(|o| !crate::seal::is_stdout(o))
            .and_then(|o| std::path::absolute(o).ok())
            .map(|p| p.display().to_string()),
        journal: job
            .seal
            .as_ref()
            .and_then(|s| s.journal.as_ref())
            .map(|j| j.display().to_string()),
        armor: job.seal.as_ref().map(|s| s.armor),
        format: job.seal.as_ref().map(|s| {
            if s.format == PlainFormat::Json {
                "json"
            } else {
                "csv"
            }
            .to_string()
        }),
        shard: plan.shard,
        policy: plan.policy.clone(),
        expiring: plan.expiring.clone(),
        store: store_spec(job, plan).as_ref().map(job::StoreRecord::of),
    }
}

/// The store a create or rotate writes to: `--to` (its files relative to here), else the
/// inventory's `[sink]` (its files relative to the inventory).
fn store_spec(job: &Job, plan: &Plan) -> Option<StoreSpec> {
    let from_inventory = || {
        plan.sink.as_ref().map(|s| StoreSpec {
            to: s.to.clone(),
            ca_file: s.ca_file.clone(),
            token_file: s.token_file.clone(),
            origin: s.loc.clone(),
        })
    };
    // `check` checks the inventory's store as well: what a create or rotate would need there.
    if job.op == Operation::Check {
        return from_inventory();
    }
    let seal = job.seal.as_ref()?;
    if let Some(to) = &seal.to {
        return Some(StoreSpec {
            to: to.clone(),
            ca_file: seal.to_ca.clone(),
            token_file: seal.to_token_file.clone(),
            origin: "--to".into(),
        });
    }
    from_inventory()
}
