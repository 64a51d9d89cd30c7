//! The wiring of `audit` and `sweep` (docs/DESIGN.md §9): their flags become the census
//! [`Rules`] and the sweep's [`SweepFilter`], checked with the inventory before any request;
//! the census is printed from the run's rows; a sweep asks on a terminal after showing what
//! would go, keeps its journal (the audit trail), and `resume` continues it.

use super::*;
use crate::audit::inputs::{RuleFlags, rules};
use crate::audit::output::{Meta, Summary, Unreached, write_csv, write_json, write_table};
use crate::audit::{Flag, Rules, SweepFilter};
use crate::outcome::Status;
use crate::plan::Work;
use crate::run::{Hold, Prior, PriorState};
use crate::seal::sweep_journal::SweepLedger;
use crate::seal::{EventDetail, Journal, PlanRecord};
use serde::{Deserialize, Serialize};
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};

/// (host, owner, token name).
type TokenKey = (String, String, String);

/// The census rules and a sweep's filter, when the command has them.
type Census = (Option<Arc<Rules>>, Option<SweepFilter>);

/// What a sweep takes, where it journals, and what an earlier run of it did.
#[derive(Default)]
pub(super) struct SweepJob {
    flags: Vec<String>,
    name: Option<String>,
    journal: Option<PathBuf>,
    force: bool,
    /// The tokens shown and confirmed at the prompt: nothing else is revoked.
    confirmed: Option<Arc<HashSet<TokenKey>>>,
    /// `resume`: the journal to continue (already locked), and what it says.
    resumed: Option<Resumed>,
}

struct Resumed {
    journal: PathBuf,
    prior: PriorState,
    hold: HashMap<String, Hold>,
}

/// What a sweep's plan record keeps in `options`, for `resume`.
#[derive(Debug, Serialize, Deserialize, Default)]
#[serde(default)]
struct SweepRecord {
    limit: Option<String>,
    accounts: Option<String>,
    known: Vec<PathBuf>,
    ours: Vec<String>,
    ioc: Vec<PathBuf>,
    since: Option<String>,
    expiring_within: String,
    flags: Vec<String>,
    name: Option<String>,
    confirmed: Option<Vec<TokenKey>>,
    jobs: u32,
    per_host: u32,
    timeout: u64,
    retries: u32,
    batch: u32,
}

/// The census rules and the sweep's filter of `job`, or every problem with their flags.
pub(super) fn rules_of(job: &Job, now: i64) -> Result<Census, Vec<Problem>> {
    let Some(c) = &job.census else {
        return Ok((None, None));
    };
    let flags = RuleFlags {
        known: c.known.clone(),
        ours: c.ours.clone(),
        ioc: c.ioc.clone(),
        since: c.since.clone(),
        expiring_within: Some(c.expiring_within.clone()),
    };
    let mut problems = Vec::new();
    let rules = match rules(&flags, now) {
        Ok(r) => Some(Arc::new(r)),
        Err(mut p) => {
            problems.append(&mut p);
            None
        }
    };
    let filter = match &job.sweep {
        None => None,
        Some(s) => {
            let name = match s.name.as_deref().map(glob::Pattern::new) {
                None => None,
                Some(Ok(g)) => Some(g),
                Some(Err(e)) => {
                    problems.push(
                        Problem::new("--name", format!("not a glob: {e}"))
                            .hint("write it like 'lp*' or 'WHM_*'"),
                    );
                    None
                }
            };
            Some(SweepFilter {
                since: c.since.is_some(),
                flags: s.flags.iter().filter_map(|f| Flag::parse(f)).collect(),
                name,
                confirmed: s.confirmed.clone(),
            })
        }
    };
    if problems.is_empty() {
        Ok((rules, filter))
    } else {
        Err(problems)
    }
}

/// Owners whose tokens the run could not list: a census with holes is not clean.
fn unreached(results: &crate::spool::Spool<crate::outcome::TargetResult>) -> Vec<Unreached> {
    results
        .iter()
        .filter(|t| t.went_wrong())
        .map(|t| Unreached {
            host: t.host.clone(),
            owner: t.account.clone(),
            cause: t.cause.clone().unwrap_or_default(),
            error: t.error.clone().unwrap_or_default(),
        })
        .collect()
}

pub(super) fn audit(args: AuditArgs) -> Result<i32, Failure> {
    let format = args.format;
    let started = crate::time::now_rfc3339();
    let job = Job {
        common: args.common,
        op: Operation::Audit,
        census: Some(args.census),
        ..Job::default()
    };
    let findings = Cell::new(false);
    let code = fleet_planned(job, |out, plan, w| {
        let mut rows = out.audit.to_vec();
        rows.sort_by(|a, b| {
            (&a.host, a.owner_kind, &a.owner, &a.name).cmp(&(
                &b.host,
                b.owner_kind,
                &b.owner,
                &b.name,
            ))
        });
        let unreached = unreached(&out.results);
        findings.set(Summary::of(&rows, &unreached).exit_code() != exit::OK);
        // What the census was measured against is the plan's: its rules, scope and inventory.
        let Work::Audit { rules } = &plan.work else {
            unreachable!("an audit's plan audits")
        };
        let meta = Meta {
            run_id: plan.run_id.clone(),
            started,
            finished: crate::time::now_rfc3339(),
            now: crate::time::rfc3339(rules.now),
            since: rules.since.map(crate::time::rfc3339),
            expiring_within_secs: rules.expiring_within,
            scope: plan.scope.as_str().into(),
            inventory_sha256: plan.inventory_sha256.clone(),
        };
        match format {
            OutFormat::Json => write_json(w, &meta, &rows, &unreached)?,
            OutFormat::Csv => write_csv(w, &rows)?,
            OutFormat::Table => write_table(w, &rows, &unreached)?,
        }
        Ok(())
    })?;
    Ok(if code == exit::OK && findings.get() {
        exit::SOME_FAILED
    } else {
        code
    })
}

pub(super) fn sweep(args: SweepArgs) -> Result<i32, Failure> {
    let run_id = format!("{:08x}", fastrand::u32(..));
    let make = |dry_run: bool, confirmed: Option<Arc<HashSet<TokenKey>>>, common: Common| Job {
        common,
        op: Operation::Sweep,
        dry_run,
        census: Some(args.census.clone()),
        run_id: run_id.clone(),
        sweep: Some(SweepJob {
            flags: args.flag.clone(),
            name: args.name.clone(),
            journal: args.journal.clone(),
            force: args.force,
            confirmed,
            resumed: None,
        }),
        ..Job::default()
    };
    if args.dry_run || args.yes || args.common.list_hosts || args.common.list_targets {
        return fleet(make(args.dry_run, None, args.common.clone()), |_, _| Ok(()));
    }
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stdin())
        && std::io::IsTerminal::is_terminal(&std::io::stderr());
    if !terminal {
        return Err(Problem::new(
            "sweep",
            "a sweep revokes tokens and asks first, but there is no terminal to ask on",
        )
        .hint("pass --yes to sweep without asking (automation), or --dry-run to see what would go; nothing was contacted")
        .into());
    }
    // What would go, shown as a dry run shows it; then the question; then only that.
    let mut preview = args.common.clone();
    preview.report = None;
    let shown: RefCell<HashSet<TokenKey>> = RefCell::default();
    let code = fleet(make(true, None, preview), |out, _| {
        let mut shown = shown.borrow_mut();
        for t in out.results.iter() {
            let owner = t.account.clone().unwrap_or_default();
            for r in &t.revoked {
                shown.insert((t.host.clone(), owner.clone(), r.name.clone()));
            }
        }
        Ok(())
    })?;
    let shown = shown.into_inner();
    if code == exit::INTERRUPTED {
        return Ok(code);
    }
    if shown.is_empty() {
        say!("sweep: nothing to revoke; nothing was changed");
        return Ok(code);
    }
    let hosts: HashSet<&str> = shown.iter().map(|(h, _, _)| h.as_str()).collect();
    let question = format!(
        "Revoke the {} token(s) above on {} host(s)? Only these go, never ours, system or the credential in use. Type yes to go on: ",
        shown.len(),
        hosts.len()
    );
    if !confirmed(&question) {
        say!("sweep: not confirmed; nothing was revoked");
        return Ok(exit::OK);
    }
    fleet(make(false, Some(Arc::new(shown)), args.common), |_, _| {
        Ok(())
    })
}

/// Ask `question` on the terminal; only `yes` (or `y`) goes on.
fn confirmed(question: &str) -> bool {
    use std::io::BufRead;
    let _ = write!(std::io::stderr(), "{question}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// The sweep's journal, made (or, for a resume, reopened) before the first request; `None` for
/// other commands and dry runs. With the lock of a new one.
pub(super) fn open_journal(
    job: &Job,
    plan: &Plan,
    inventory_sha256: &str,
) -> Result<Option<(SweepLedger, Option<JournalLock>)>, Failure> {
    let Some(s) = job.sweep.as_ref().filter(|_| !job.dry_run) else {
        return Ok(None);
    };
    if let Some(r) = &s.resumed {
        let journal = Journal::open_append(&r.journal).map_err(|e| {
            Failure::Input(InputError::one(Problem::new(
                r.journal.display().to_string(),
                format!("cannot append to the journal: {e}"),
            )))
        })?;
        return Ok(Some((SweepLedger::new(journal), None)));
    }
    let path = s
        .journal
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("tokenfleet-sweep-{}.journal", plan.run_id)));
    let lock = JournalLock::for_new(&path, "sweep").map_err(|e| match e {
        LockError::Busy { .. } => Failure::Input(InputError::one(e.problem())),
        other => Failure::Input(InputError::one(
            Problem::new(path.display().to_string(), other.to_string())
                .hint("choose a folder you can write with --journal; nothing was contacted"),
        )),
    })?;
    let c = job.census.as_ref().expect("a sweep has its census flags");
    let common = &job.common;
    let record = SweepRecord {
        limit: plan.limit.clone(),
        accounts: common.accounts.clone(),
        known: c.known.iter().map(|p| absolute(p)).collect(),
        ours: c.ours.clone(),
        ioc: c.ioc.iter().map(|p| absolute(p)).collect(),
        since: c.since.clone(),
        expiring_within: c.expiring_within.clone(),
        flags: s.flags.clone(),
        name: s.name.clone(),
        confirmed: s.confirmed.as_ref().map(|set| {
            let mut v: Vec<TokenKey> = set.iter().cloned().collect();
            v.sort();
            v
        }),
        jobs: common.jobs,
        per_host: common.per_host,
        timeout: common.timeout,
        retries: common.retries,
        batch: common.batch,
    };
    let plan_record = PlanRecord {
        run_id: plan.run_id.clone(),
        operation: "sweep".into(),
        inventory: absolute(&common.inventory).display().to_string(),
        inventory_sha256: inventory_sha256.to_string(),
        scope: plan.scope.as_str().into(),
        options: serde_json::to_value(&record).map_err(|e| Failure::Other(e.into()))?,
        ..PlanRecord::default()
    };
    let journal = Journal::create(&path, &plan_record, s.force).map_err(|e| {
        Failure::Input(InputError::one(
            Problem::new(
                path.display().to_string(),
                format!("cannot create the journal: {e}"),
            )
            .hint("make room, choose another --journal, or --force to start over; nothing was contacted"),
        ))
    })?;
    Ok(Some((SweepLedger::new(journal), Some(lock))))
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// What an earlier run of this sweep's journal settles: owners revoked or found clean are
/// done; hosts that refused the credential are held (unless `--retry-refused`).
pub(super) fn prior_of(job: &Job) -> Option<(&PriorState, &HashMap<String, Hold>)> {
    let r = job.sweep.as_ref()?.resumed.as_ref()?;
    Some((&r.prior, &r.hold))
}

/// `tokenfleet resume JOURNAL` of a sweep: the same sweep, over what is left.
pub(super) fn resume_sweep(args: ResumeArgs) -> Result<i32, Failure> {
    let shown = args.journal.display().to_string();
    let scanned = crate::seal::scan_journal(&args.journal)
        .map_err(|e| Failure::Input(InputError::one(Problem::new(&shown, e.to_string()))))?;
    let (Some(record), events) = (scanned.plan, scanned.events) else {
        return Err(Problem::new(&shown, "the sweep's plan record is damaged")
            .hint("start the sweep again (it revokes only what is still unknown)")
            .into());
    };
    let o: SweepRecord = serde_json::from_value(record.options.clone()).map_err(|e| {
        Failure::Input(InputError::one(Problem::new(
            &shown,
            format!("the sweep's plan record cannot be read: {e}"),
        )))
    })?;
    let mut prior = PriorState::new();
    let mut hold = HashMap::new();
    for e in &events {
        match &e.detail {
            EventDetail::Sweep { step, .. } if step == "revoked" => {
                prior.insert(
                    (e.host.clone(), e.account.clone()),
                    Prior::Done(Status::Revoked),
                );
            }
            EventDetail::Sweep { step, .. } if step == "clean" => {
                prior.insert(
                    (e.host.clone(), e.account.clone()),
                    Prior::Done(Status::Unchanged),
                );
            }
            EventDetail::Refused { credential, .. } if !args.retry_refused => {
                hold.insert(
                    e.host.clone(),
                    Hold {
                        cause: "credential refused before".into(),
                        why: format!(
                            "not attempted: this sweep saw {credential} refused on this host; fix it, then resume with --retry-refused (each refusal counts toward cPHulk)"
                        ),
                    },
                );
            }
            _ => {}
        }
    }
    let limit = match (&o.limit, &args.limit) {
        (Some(a), Some(b)) => Some(format!("{a},&{b}")),
        (a, b) => b.clone().or_else(|| a.clone()),
    };
    let scope = match record.scope.as_str() {
        "whm" => ScopeArg::Whm,
        "account" => ScopeArg::Account,
        _ => ScopeArg::All,
    };
    let common = Common {
        inventory: PathBuf::from(&record.inventory),
        limit,
        accounts: o.accounts.clone(),
        jobs: args.jobs.unwrap_or(o.jobs.max(1)),
        per_host: args.per_host.unwrap_or(o.per_host.max(1)),
        batch: o.batch.max(1),
        timeout: args.timeout.unwrap_or(o.timeout.max(1)),
        retries: args.retries.unwrap_or(o.retries),
        report: args.report.clone(),
        progress: args.progress.clone(),
        color: args.color.clone(),
        quiet: args.quiet,
        verbose: args.verbose,
        scope: Some(scope),
        list_hosts: false,
        list_targets: false,
        shard: None,
        shard_count: None,
    };
    let census = CensusArgs {
        known: o.known.clone(),
        ours: o.ours.clone(),
        ioc: o.ioc.clone(),
        since: o.since.clone(),
        expiring_within: o.expiring_within.clone(),
    };
    let job = Job {
        common,
        op: Operation::Sweep,
        census: Some(census),
        run_id: record.run_id.clone(),
        sweep: Some(SweepJob {
            flags: o.flags.clone(),
            name: o.name.clone(),
            journal: None,
            force: false,
            confirmed: o.confirmed.map(|v| Arc::new(v.into_iter().collect())),
            resumed: Some(Resumed {
                journal: args.journal.clone(),
                prior,
                hold,
            }),
        }),
        ..Job::default()
    };
    fleet(job, |_, _| Ok(()))
}
