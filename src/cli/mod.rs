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
mod show;

pub use args::*;
use show::{print_checks, print_listing, print_plan};

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
        Command::Man => {
            let mut out = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut out)
                .map_err(anyhow::Error::from)?;
            print_stdout(&out)
        }
        Command::Open(args) => open(args),
        Command::Resume(args) => resume(args),
        Command::List(args) => {
            let format = args.format;
            fleet(
                Job {
                    common: args.common,
                    op: Operation::List,
                    ..Job::default()
                },
                |out| print_listing(&out.listings, format),
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
                |out| print_checks(&out.checks, format),
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
            |_| Ok(()),
        ),
        Command::Create(args) => {
            let expires_at = plan::expiry(
                args.mint.expires_in.as_deref(),
                args.mint.expires_at.as_deref(),
            )?;
            fleet(
                Job {
                    common: args.common,
                    op: Operation::Create,
                    name: Some(args.name),
                    expires_at,
                    seal: Some(args.mint.seal),
                    dry_run: args.mint.dry_run,
                    replace_existing: args.mint.replace_existing,
                    ..Job::default()
                },
                |_| Ok(()),
            )
        }
        Command::Rotate(args) => {
            let expires_at = plan::expiry(
                args.mint.expires_in.as_deref(),
                args.mint.expires_at.as_deref(),
            )?;
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
                    revoke_own: false,
                },
                |_| Ok(()),
            )
        }
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
                timeout: defaults::TIMEOUT_SECS,
                retries: defaults::RETRIES,
                report: None,
                progress: "auto".into(),
                color: "auto".into(),
                quiet: false,
                verbose: false,
                scope: ScopeArg::Account,
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
    let inventory = inventory::load(&common.inventory).map_err(|mut e| {
        // The flags are checked too, so one run shows every mistake.
        e.problems
            .extend(plan::template_problem(job.op, job.name.as_deref()));
        e
    })?;
    let now = jiff::Timestamp::now();
    let req = PlanRequest {
        op: Some(job.op),
        scope: match common.scope {
            ScopeArg::Account => Scope::Account,
            ScopeArg::Whm => Scope::Whm,
        },
        name: job.name.clone(),
        revoke: job.revoke.clone(),
        expires_at: job.expires_at,
        limit: common.limit.clone(),
        accounts: common.accounts.clone(),
        per_host: common.per_host as usize,
        run_id: format!("{:08x}", fastrand::u32(..)),
        date: now.strftime("%Y%m%d").to_string(),
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

/// The shared path of every fleet command: validate, run, seal, report.
fn fleet(
    job: Job,
    print: impl FnOnce(&run::Outcome) -> anyhow::Result<()>,
) -> Result<i32, Failure> {
    let common = &job.common;
    let (plan, backends, inventory_sha256, sealing) = validate(&job)?;
    for w in &plan.warnings {
        say!("warning: {w}");
    }
    if job.dry_run {
        print_plan(&plan, job.op);
    }
    let colour = crate::progress::colour(&common.color);
    let progress = progress_for(&plan, &common.progress, common.quiet, colour);
    let opts = RunOptions {
        jobs: common.jobs as usize,
        retries: common.retries,
        dry_run: job.dry_run,
        verify: job.verify,
        replace_existing: job.replace_existing,
        revoke_own: job.revoke_own,
        ..RunOptions::default()
    };
    let stop = install_interrupt(
        sealing
            .as_ref()
            .map(|out| resume_command(out.journal_path(), !out.recipients().is_passphrase())),
    );
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
                            .hint("make room or choose another -o; nothing was contacted"),
                        ))
                    }
                    other => Failure::Other(other.into()),
                }
            })?)
        }
        None => None,
    };
    let ledger: &dyn run::Ledger = match &journal {
        Some(j) => j,
        None => &run::NoLedger,
    };
    let observer = &progress as &dyn Observer;
    let outcome = run::execute(&plan, &backends, &opts, ledger, observer, &stop);
    progress.finish();

    let handoff = sealing.as_ref().map(|out| {
        let delivered = AgeHandoff::for_output(out).deliver(&outcome.minted);
        if let (Ok(Some(_)), Some(j)) = (&delivered, &journal) {
            j.delivered(out.path());
        }
        (delivered, out.journal_path().to_path_buf())
    });
    let end = Ending {
        run_id: &plan.run_id,
        op: plan.op(),
        report: common.report.as_deref(),
        quiet: common.quiet,
        verbose: common.verbose,
        dry_run: job.dry_run,
        started,
        colour,
        retry: None,
    };
    conclude(&end, outcome, handoff, print)
}

/// Everything the user gave, validated before the first request, with every problem reported
/// at once: the inventory and flags, then the sealing side. The passphrase is asked last, only
/// when all else is valid, so a typo never costs the user a passphrase round.
fn validate(job: &Job) -> Result<(Plan, Fleet, String, Option<Output>), Failure> {
    let (plan, backends, inventory_sha256) = match build_plan(job) {
        Ok(planned) => planned,
        Err(Failure::Input(mut e)) => {
            if let Some(Err(more)) = prepare_sealing(job, false) {
                e.problems.extend(more.problems);
            }
            return Err(Failure::Input(e));
        }
        Err(other) => return Err(other),
    };
    let sealing = prepare_sealing(job, true).transpose()?;
    Ok((plan, backends, inventory_sha256, sealing))
}

/// The sealing side of a create or rotate (none for a dry run); with `ask` false, a passphrase
/// run is not checked yet (checking it means asking for the passphrase).
fn prepare_sealing(job: &Job, ask: bool) -> Option<Result<Output, InputError>> {
    let args = job.seal.as_ref().filter(|_| !job.dry_run)?;
    if args.passphrase && !ask {
        return None;
    }
    Some(Output::prepare(
        &crate::seal::SealRequest {
            command: job.op.as_str(),
            output: &args.output,
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
    op: Operation,
    report: Option<&'a std::path::Path>,
    quiet: bool,
    /// `-v`: every failed or skipped target, one line each, after the summary.
    verbose: bool,
    dry_run: bool,
    started: jiff::Timestamp,
    /// The summary in colour (`--color`).
    colour: bool,
    /// After an exit 1: the file listing the failed targets and the command that retries them
    /// (see [`crate::report::retry_hint`]); set by whoever writes that file.
    retry: Option<(PathBuf, String)>,
}

/// The end of every fleet command and of `resume`: say where the secrets went, print, write the
/// report, the summary and (when interrupted) the exact command that continues; the exit code.
/// `handoff` is the result of writing the handoff file and the journal it came with.
type HandoffResult = Result<Option<Delivered>, SinkError>;

fn conclude(
    end: &Ending<'_>,
    outcome: run::Outcome,
    handoff: Option<(HandoffResult, PathBuf)>,
    print: impl FnOnce(&run::Outcome) -> anyhow::Result<()>,
) -> Result<i32, Failure> {
    let journal_failed = outcome.journal_failed;
    let (sealed_any, handoff_failed) = match &handoff {
        Some((delivered, journal)) => say_delivered(delivered, journal, journal_failed, end.quiet),
        None => (false, false),
    };
    print(&outcome).map_err(Failure::Other)?;

    let report = Report::new(
        end.run_id,
        end.op.as_str(),
        end.started.to_string(),
        outcome.results,
    );
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
    // A run that minted nothing and left nothing to finish (every target `exists` or
    // `unchanged`) has a journal without a secret or an open step: remove it, so the same
    // command can run again without --force.
    if let Some((Ok(None), journal)) = &handoff
        && code == exit::OK
        && !outcome.interrupted
    {
        crate::seal::discard_journal(journal);
    }
    if !end.quiet || code != exit::OK {
        // The summary ends with a newline of its own.
        say!("{}", summary.trim_end());
    }
    if end.verbose {
        say_failures(&report);
    }
    if code == exit::SOME_FAILED
        && let Some((file, command)) = &end.retry
    {
        say!("{}", crate::report::retry_hint(file, command));
    }
    if end.dry_run {
        say!("dry run: nothing was changed");
    }
    if journal_failed && let Some((_, journal)) = &handoff {
        say!(
            "the journal {} could not be written, so nothing more was minted; make room, then finish with `{}`",
            journal.display(),
            resume_command(journal, sealed_any)
        );
    }
    if outcome.interrupted {
        match &handoff {
            // The secrets sealed so far are needed again for the final handoff.
            Some((_, journal)) => say!(
                "interrupted: the journal is consistent; continue with `{}`",
                resume_command(journal, sealed_any)
            ),
            None => say!("interrupted"),
        }
    }
    Ok(code)
}

/// The command that continues an interrupted run; `identity`: it must re-read sealed secrets.
fn resume_command(journal: &Path, identity: bool) -> String {
    let identity = if identity { " --identity KEY" } else { "" };
    format!("tokenfleet resume {}{identity}", journal.display())
}

/// Where the secrets went, or how to recover them. Returns (a secret was sealed, the delivery
/// failed). `journal_failed`: the journal stopped taking records part-way, so it holds only
/// what was journaled before (the run minted nothing after, and revoked what it could not hold).
fn say_delivered(
    delivered: &HandoffResult,
    journal: &Path,
    journal_failed: bool,
    quiet: bool,
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
                 the secrets journaled before that are in it (recover them with `tokenfleet open {} --identity KEY`, \
                 or finish the run with `tokenfleet resume {} --identity KEY` once there is room); nothing was minted after, and every \
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
                 recover them with `tokenfleet open {} --identity KEY`",
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
    let steer = crate::resume::Steer {
        limit: args.limit.clone(),
        jobs: args.jobs,
        per_host: args.per_host,
        timeout: args.timeout,
        retries: args.retries,
        retry_refused: args.retry_refused,
    };
    let resumed = crate::resume::Resume::prepare(
        &args.journal,
        &args.identity,
        &steer,
        &mut ask,
        &mut prompt_credential,
    )?;
    let plan = &resumed.plan;
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
    let written = resumed.deliver(&outcome.minted);
    conclude(
        &Ending {
            run_id: &plan.run_id,
            op: plan.op(),
            report: args.report.as_deref(),
            quiet: args.quiet,
            verbose: args.verbose,
            dry_run: false,
            started,
            colour,
            retry: None,
        },
        outcome,
        Some((written, resumed.journal_path().to_path_buf())),
        |_| Ok(()),
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

fn open(args: OpenArgs) -> Result<i32, Failure> {
    use crate::seal::{Keys, SealError};
    let seal_failure = |e: SealError| {
        match e {
        SealError::Encrypt(_) => Failure::Other(anyhow::Error::from(e)),
        SealError::Io { path, error } => Failure::Input(InputError::one(
            Problem::new(path.display().to_string(), format!("cannot read: {error}"))
                .hint("check the path; `tokenfleet open` reads a handoff file or its OUT.journal"),
        )),
        SealError::Invalid { location, message, hint } => Failure::Input(InputError::one(
            Problem::new(location, message).hint(hint.unwrap_or_else(|| {
                "`tokenfleet open` reads what tokenfleet wrote: an age handoff file (binary or armored) or a journal"
                    .to_string()
            })),
        )),
        other => Failure::Input(InputError::one(Problem::new(
            args.file.display().to_string(),
            other.to_string(),
        ))),
    }
    };
    let mut keys = Keys::new();
    for path in &args.identity {
        match keys.load_identity_file(path) {
            Ok(_) => {}
            Err(SealError::NeedPassphrase { .. }) => {
                keys = keys.with_passphrase(read_passphrase("Passphrase for the identity file: ")?);
                keys.load_identity_file(path).map_err(seal_failure)?;
            }
            Err(e) => return Err(seal_failure(e)),
        }
    }
    let (rows, damaged) = match crate::seal::open_file(&args.file, &keys) {
        Err(SealError::NeedPassphrase { .. }) if keys.passphrase().is_none() => {
            let keys = keys.with_passphrase(read_passphrase("Passphrase: ")?);
            crate::seal::open_file(&args.file, &keys).map_err(seal_failure)?
        }
        other => other.map_err(seal_failure)?,
    };
    let text = show::render_handoff(&rows, args.format);
    let code = print_stdout(text.as_bytes())?;
    if damaged.is_empty() {
        return Ok(code);
    }
    // Every intact record was shown; the damaged ones are named, and the exit code says so.
    for d in &damaged {
        say!("warning: {}:{}: {}", args.file.display(), d.line, d.why);
    }
    say!(
        "{} damaged line(s) in {}; {} secret(s) recovered. A target whose secret is lost is reconciled by `tokenfleet resume` (it revokes the token this run made and creates it again).",
        damaged.len(),
        args.file.display(),
        rows.len()
    );
    Ok(exit::SOME_FAILED)
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
                .hint("pass --identity FILE, or set TOKENFLEET_PASSPHRASE"),
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
        limit: c.limit.clone(),
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
        output: job.seal.as_ref().map(|s| s.output.display().to_string()),
        armor: job.seal.as_ref().map(|s| s.armor),
        format: job.seal.as_ref().map(|s| {
            if s.format == PlainFormat::Json {
                "json"
            } else {
                "csv"
            }
            .to_string()
        }),
    }
}
