//! Why this module exists: a run over thousands of accounts will be interrupted, and a token is
//! shown once. `tokenfleet resume JOURNAL` (docs/DESIGN.md §4) turns the journal of an interrupted
//! `create` or `rotate` back into a run: the same plan (run id, date, names, options), checked
//! against the inventory as it is now (a change that matters is refused with a diff), a
//! [`Prior`] per target that the journal says something about (done: skip; outcome unknown:
//! reconcile; sealed but not rotated: continue), and a final handoff that holds every secret of
//! the run, the earlier ones unsealed from the journal. The run itself stays in [`crate::run`],
//! which knows nothing of the journal's format; the wiring stays in `cli`.

use crate::backend::{Fleet, NewToken};
use crate::error::{InputError, Problem};
use crate::inventory;
use crate::job::{self, NetOptions, RunRecord};
use crate::outcome::MintedRows;
use crate::outcome::Status;
use crate::plan::{self, Operation, Plan, PlanRequest, Prompter, Scope};
use crate::run::{Hold, Minted, Prior, PriorState, RunOptions};
use crate::seal::handoff::HandoffFormat;
use crate::seal::{
    EventDetail, HandoffRow, Journal, JournalLedger, JournalSealing, Keys, PlanRecord, Recipients,
    SealError, parse_recipient, scan_journal,
};
use crate::secret::Secret;
use crate::sink::{AgeHandoff, Delivered, Sink, SinkError};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// Above this many listed accounts, the plan fingerprint keeps a digest per host instead of
/// the names (the plan record stays small; the diff then says "changed" without names).
const FINGERPRINT_MAX_NAMES: usize = 10_000;

/// What resume needs to know about a plan to tell whether the inventory changed in a way that
/// matters: per host, where its tokens live and which accounts are targets. Recorded in the
/// journal's plan record (`options.targets`) by `create` and `rotate`.
pub fn fingerprint(plan: &Plan) -> Value {
    let listed: usize = plan
        .hosts
        .iter()
        .filter(|h| !h.discover)
        .map(|h| h.targets.len())
        .sum();
    let hosts: Vec<Value> = plan
        .hosts
        .iter()
        .map(|hp| {
            let h = &hp.host;
            let mut v = json!({
                "name": h.name, "address": h.address, "api": h.api.as_str(),
                "whm_port": h.whm_port, "cpanel_port": h.cpanel_port, "whm_user": h.whm_user,
            });
            if hp.discover {
                v["accounts"] = json!("*");
            } else {
                let mut names: Vec<&str> = hp
                    .targets
                    .iter()
                    .map(|t| t.account.as_deref().unwrap_or(&h.whm_user))
                    .collect();
                names.sort_unstable();
                if listed <= FINGERPRINT_MAX_NAMES {
                    v["accounts"] = json!(names);
                } else {
                    use sha2::Digest;
                    let digest = sha2::Sha256::digest(names.join("\n").as_bytes());
                    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
                    v["accounts_sha256"] = json!(hex);
                    v["accounts_count"] = json!(names.len());
                }
            }
            v
        })
        .collect();
    json!({ "scope": plan.scope.as_str(), "hosts": hosts })
}

/// What changed between two [`fingerprint`]s, one line per difference (empty: nothing that
/// matters).
pub fn fingerprint_diff(before: &Value, now: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if before["scope"] != now["scope"] {
        out.push(format!("scope: {} → {}", before["scope"], now["scope"]));
    }
    let by_name = |v: &Value| -> BTreeMap<String, Value> {
        v["hosts"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|h| (h["name"].as_str().unwrap_or("").to_string(), h.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (old, new) = (by_name(before), by_name(now));
    for (name, o) in &old {
        let Some(n) = new.get(name) else {
            out.push(format!(
                "host {name}: gone (removed from the inventory, or no longer selected by --limit)"
            ));
            continue;
        };
        for field in ["address", "api", "whm_port", "cpanel_port", "whm_user"] {
            if o[field] != n[field] {
                out.push(format!(
                    "host {name}: {field} {} → {}",
                    show(&o[field]),
                    show(&n[field])
                ));
            }
        }
        match (o["accounts"].as_array(), n["accounts"].as_array()) {
            (Some(a), Some(b)) => {
                let a: BTreeSet<&str> = a.iter().filter_map(Value::as_str).collect();
                let b: BTreeSet<&str> = b.iter().filter_map(Value::as_str).collect();
                let gone: Vec<&str> = a.difference(&b).copied().collect();
                let added: Vec<&str> = b.difference(&a).copied().collect();
                if !gone.is_empty() {
                    out.push(format!("host {name}: accounts gone: {}", few(&gone)));
                }
                if !added.is_empty() {
                    out.push(format!("host {name}: accounts added: {}", few(&added)));
                }
            }
            _ => {
                let key = |v: &Value| {
                    (
                        v["accounts"].clone(),
                        v["accounts_sha256"].clone(),
                        v["accounts_count"].clone(),
                    )
                };
                if key(o) != key(n) {
                    out.push(format!("host {name}: the selected accounts changed"));
                }
            }
        }
    }
    for name in new.keys().filter(|n| !old.contains_key(*n)) {
        out.push(format!(
            "host {name}: new (not part of the interrupted run)"
        ));
    }
    out
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn few(names: &[&str]) -> String {
    const MAX: usize = 10;
    if names.len() <= MAX {
        names.join(", ")
    } else {
        format!("{} and {} more", names[..MAX].join(", "), names.len() - MAX)
    }
}

/// What the journal says about one target, before any secret is unsealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// Finished: report this status, send nothing.
    Done(Status),
    /// Last create outcome never seen: list; a token found is revoked as an orphan when
    /// `proven` (the create intent carries the listing that showed the name absent), kept and
    /// reported `unproven` otherwise; then create again.
    Reconcile { proven: bool },
    /// Rotate: sealed (the `created` event at this index), not yet through verify and revoke.
    Created { event: usize, verified: bool },
    /// Nothing to pick up (e.g. a rotate that found its name taken): do it again from the start.
    Again,
}

/// Per target (host, account), what to do next given the journal's events of operation `op`.
pub fn classify(op: Operation, events: &[crate::seal::Event]) -> HashMap<(String, String), Seen> {
    #[derive(Default)]
    struct Track {
        created: Option<usize>,
        verified: bool,
        revoked_after_created: bool,
        exists: bool,
        pending: bool,
        /// The pending create's intent carries its proof of ownership (`absent`).
        proven: bool,
    }
    let mut tracks: HashMap<(String, String), Track> = HashMap::new();
    for (i, e) in events.iter().enumerate() {
        if matches!(e.detail, EventDetail::Refused { .. }) {
            // About a host's credential, not a target's progress.
            continue;
        }
        let t = tracks
            .entry((e.host.clone(), e.account.clone()))
            .or_default();
        match &e.detail {
            EventDetail::Intent { action, absent, .. } => {
                if *action == crate::seal::Action::Create {
                    // Each create intent stands for itself: a later one without proof (an
                    // older journal) does not inherit an earlier one's.
                    t.proven = *absent;
                    t.pending = true;
                    t.exists = false;
                }
            }
            EventDetail::Created { .. } => {
                *t = Track {
                    created: Some(i),
                    ..Track::default()
                };
            }
            EventDetail::Verified {} => t.verified = true,
            EventDetail::Revoked { .. } => {
                if t.created.is_some() {
                    t.revoked_after_created = true;
                }
            }
            EventDetail::Exists {} => {
                t.exists = true;
                t.pending = false;
            }
            // A failure after an intent leaves the outcome as unknown as the intent did (a
            // definite refusal such as a taken name is journaled as `exists`).
            EventDetail::Failed { .. }
            | EventDetail::Skipped { .. }
            | EventDetail::Refused { .. }
            | EventDetail::Delivered { .. }
            | EventDetail::Store { .. }
            | EventDetail::Sweep { .. } => {}
        }
    }
    tracks
        .into_iter()
        .map(|(key, t)| {
            let seen = match (op, t.created) {
                (Operation::Rotate, Some(_)) if t.revoked_after_created => {
                    Seen::Done(Status::Rotated)
                }
                (Operation::Rotate, Some(event)) => Seen::Created {
                    event,
                    verified: t.verified,
                },
                (_, Some(_)) => Seen::Done(Status::Created),
                (_, None) if t.pending => Seen::Reconcile { proven: t.proven },
                (Operation::Create, None) if t.exists => Seen::Done(Status::Exists),
                _ => Seen::Again,
            };
            (key, seen)
        })
        .collect()
}

/// An interrupted run, ready to continue.
pub struct Resume {
    pub record: PlanRecord,
    pub plan: Plan,
    pub backends: Fleet,
    pub opts: RunOptions,
    pub prior: PriorState,
    /// Secrets sealed before the interruption (unsealed: they go into the final handoff).
    pub earlier: Vec<Minted>,
    /// The same journal, appended to.
    pub ledger: JournalLedger,
    /// Things to tell the user before the run (inventory changed harmlessly, counts).
    pub notes: Vec<String>,
    /// What the user must see even with `-q`: damaged journal lines and what resume does about
    /// them, tokens another run holds.
    pub warnings: Vec<String>,
    sink: Option<AgeHandoff>,
    store: Option<std::sync::Arc<crate::sink::bao::BaoStore>>,
}

impl std::fmt::Debug for Resume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resume")
            .field("run_id", &self.record.run_id)
            .field("journal", &self.ledger.path())
            .finish_non_exhaustive()
    }
}

/// What `resume` may change of the interrupted run: only how fast and which hosts now, never
/// what is minted. `None`: the interrupted run's value.
#[derive(Debug, Clone, Default)]
pub struct Steer {
    /// Finish only these hosts now (a `--limit` pattern within the run's own selection).
    pub limit: Option<String>,
    pub jobs: Option<u32>,
    pub per_host: Option<u32>,
    pub timeout: Option<u64>,
    pub retries: Option<u32>,
    /// Send credentials the journal saw refused, though unchanged.
    pub retry_refused: bool,
    /// `resume --to`: deliver to this store instead of the run's own.
    pub store: Option<crate::sink::bao::StoreSpec>,
    /// `resume --no-store`: finish with the handoff file alone.
    pub no_store: bool,
}

/// How resume obtains the passphrase of a `--passphrase` run (env or terminal).
pub type AskPassphrase<'a> = dyn FnMut(&str) -> Result<Secret, Problem> + 'a;

impl Resume {
    /// Read the journal, unseal what it holds, reload and compare the inventory, rebuild the plan
    /// and the per-target prior state. Nothing is contacted; every problem is an [`InputError`].
    pub fn prepare(
        journal: &Path,
        identities: &[PathBuf],
        steer: &Steer,
        ask_passphrase: &mut AskPassphrase<'_>,
        prompt: &mut Prompter<'_>,
    ) -> Result<Resume, InputError> {
        let shown = journal.display().to_string();
        // Through a symlink, the run's files are beside the journal it points to (the lock
        // is taken on that one too): its handoff, the journals beside it.
        let real;
        let journal = match std::fs::symlink_metadata(journal) {
            Ok(m) if m.file_type().is_symlink() => {
                real = std::fs::canonicalize(journal).unwrap_or_else(|_| journal.to_path_buf());
                real.as_path()
            }
            _ => journal,
        };
        let scanned = scan_journal(journal).map_err(|e| seal_problem(&shown, e))?;
        let Some(record) = scanned.plan.clone() else {
            return Err(InputError::one(
                Problem::new(
                    format!("{shown}:1"),
                    "the journal's plan record (its first line) is missing or damaged: resume cannot rebuild the run without it",
                )
                .hint(format!(
                    "`tokenfleet open {shown} --identity KEY` recovers every secret the journal still holds"
                )),
            ));
        };
        let events = &scanned.events;
        let (op, o) = read_record(&record, &shown)?;
        let keys = load_keys(&record, identities, ask_passphrase)?;
        let (earlier, unreadable) =
            earlier_secrets(&record, &o, &scanned, &keys, identities, &shown)?;
        let journal_sealing =
            JournalSealing::resume(&record, &keys).map_err(|e| seal_problem(&shown, e))?;
        let handoff_recipients = handoff_recipients(&record, &keys, &shown)?;
        // The store: `resume --to` (delivering elsewhere), else the one an earlier `resume
        // --to` chose (none, after a `--no-store`), else the run's own.
        let moved = events.iter().rev().find_map(|e| match &e.detail {
            EventDetail::Store { to, .. } if to.is_empty() => Some(None),
            EventDetail::Store {
                to,
                ca_file,
                token_file,
            } => Some(Some(job::StoreRecord {
                to: to.clone(),
                ca_file: ca_file.clone(),
                token_file: token_file.clone(),
            })),
            _ => None,
        });
        if steer.no_store && o.output.is_none() {
            return Err(InputError::one(
                Problem::new(
                    "--no-store",
                    "this run has no handoff file (-o): without its store, its tokens would be in the journal alone",
                )
                .hint(format!(
                    "deliver them to another store (--to URL), or take them out with `tokenfleet open {shown} --identity KEY`"
                )),
            ));
        }
        let store_spec = if steer.no_store {
            None
        } else {
            steer.store.clone().or_else(|| {
                moved
                    .unwrap_or_else(|| o.store.clone())
                    .map(|s| s.spec(&shown))
            })
        };
        if o.output.is_none() && store_spec.is_none() {
            return Err(InputError::one(Problem::new(
                &shown,
                "the plan record names no output file and no store",
            )));
        }
        let (mut plan, mut notes) = rebuild_plan(&record, &o, op, prompt, &shown)?;
        if let Some(n) = steer.per_host {
            for hp in &mut plan.hosts {
                if hp.host.per_host.is_none() {
                    hp.per_host = n as usize;
                }
            }
        }
        let handoff = o.output.is_some().then(|| resolve_output(journal, &o));
        if handoff.as_deref().is_some_and(crate::seal::is_stdout)
            && !o.armor.unwrap_or(false)
            && std::io::IsTerminal::is_terminal(&std::io::stdout())
        {
            // The run wrote its handoff to standard output (`-o -`); so does its resume.
            return Err(InputError::one(
                Problem::new(
                    &shown,
                    "this run writes its handoff to standard output (-o -), which is a terminal",
                )
                .hint(format!(
                    "redirect it: tokenfleet resume {shown} … > deploy.age"
                )),
            ));
        }
        let (handed, trusted) = match &handoff {
            Some(h) => handed_off(h, &keys, &scanned, &shown)?,
            None => (Vec::new(), true),
        };
        let handoff_shown = handoff
            .as_ref()
            .map(|h| h.display().to_string())
            .unwrap_or_default();
        let plan_hosts: std::collections::HashSet<String> =
            plan.hosts.iter().map(|h| h.host.name.clone()).collect();
        let mut seen = classify(op, events);
        let (mut warnings, unattributed) =
            damage::weigh(op, &mut seen, &scanned, &unreadable, &plan_hosts, &shown);
        let names = damage::pending_names(&scanned);
        let elsewhere = damage::held_elsewhere(journal);
        for (target, s) in seen.iter_mut() {
            let Seen::Reconcile {
                proven: proven @ true,
            } = s
            else {
                continue;
            };
            if let Some(name) = names.get(target)
                && elsewhere.contains(&(target.0.clone(), target.1.clone(), name.clone()))
            {
                *proven = false;
                warnings.push(format!(
                    "{} {}: another journal beside this one holds a token named {name} for this account: it is never revoked as this run's",
                    target.0, target.1
                ));
            }
        }
        check_names(&plan, &seen, events, &shown)?;
        let (mut prior, counts) = prior_state(seen, events, &record, &keys, &shown)?;
        let (done, reconcile, cont) = counts;
        // A secret the handoff already holds is never an orphan. When the journal vouches for
        // the file (a `delivered` record of its digest), the target is done (create) or its
        // rotation continues with that secret. Otherwise the file may be an earlier run's (one
        // this run was to overwrite with --force): the token is kept and named, and its row
        // kept in the final handoff, but nothing is taken as done.
        let mut keep: Vec<Minted> = Vec::new();
        for (key, p) in prior.iter_mut() {
            let Prior::Reconcile { .. } = p else { continue };
            let Some(row) = handed.iter().find(|m| {
                (&m.host, &m.account) == (&key.0, &key.1)
                    && names.get(key).is_some_and(|n| *n == m.token.name)
            }) else {
                continue;
            };
            if !trusted {
                warnings.push(format!(
                    "{} {}: {} holds a token named {} for this account, and this journal does not vouch for that file: it is kept, never revoked as this run's",
                    key.0,
                    key.1,
                    handoff_shown,
                    row.token.name
                ));
                *p = Prior::Reconcile { proven: false };
                keep.push(row.clone());
                continue;
            }
            *p = match op {
                Operation::Rotate => Prior::Created {
                    minted: row.clone(),
                    verified: false,
                },
                _ => Prior::Done(Status::Created),
            };
        }
        let handed = if trusted { handed } else { keep };
        if unattributed {
            // The damaged line may have been the only record of a target: none starts afresh.
            for hp in &plan.hosts {
                prior
                    .entry((hp.host.name.clone(), "*".into()))
                    .or_insert(Prior::Reconcile { proven: false });
            }
        }
        let earlier = merge_rows(&handed, &earlier);
        notes.push(format!(
            "resuming {} run {}: {done} target(s) done, {reconcile} to reconcile, {cont} to finish rotating, the rest to do",
            record.operation, record.run_id
        ));
        let backends = job::backends(
            &plan,
            NetOptions {
                timeout_secs: steer.timeout.unwrap_or(o.timeout),
            },
        )?;
        let mut opts = o.run_options();
        if let Some(j) = steer.jobs {
            opts.jobs = j as usize;
        }
        if let Some(r) = steer.retries {
            opts.retries = r;
        }
        opts.hold = holds(&plan, events, steer, &o, &record.run_id, &mut warnings)?;
        let store = match store_spec {
            Some(spec) => Some(std::sync::Arc::new(job::store(
                &plan,
                &spec,
                opts.retries,
                o.replace_existing,
                NetOptions {
                    timeout_secs: steer.timeout.unwrap_or(o.timeout),
                },
            )
            .map_err(|mut e| {
                // The way on when the store will not come back: the handoff file alone.
                if o.output.is_some()
                    && let Some(p) = e.problems.first_mut()
                {
                    let way = format!(
                        "if the store is gone for good, `tokenfleet resume {shown} --no-store` finishes with the handoff file alone"
                    );
                    p.hint = Some(match p.hint.take() {
                        Some(h) => format!("{h}; {way}"),
                        None => way,
                    });
                }
                e
            })?)),
            None => None,
        };
        if let Some(s) = &store {
            warnings.extend(s.warnings().iter().cloned());
        }
        opts.keep = store
            .as_ref()
            .map(|s| crate::run::Keeper(s.clone() as std::sync::Arc<dyn crate::outcome::Keep>));
        let journal_file = Journal::open_append(journal).map_err(|e| {
            InputError::one(Problem::new(
                &shown,
                format!("cannot open the journal to append: {e}"),
            ))
        })?;
        if steer.store.is_some() || steer.no_store {
            // From now on this is the run's store (none: `to` empty): later resumes too.
            let r = steer.store.as_ref().map(job::StoreRecord::of);
            let moved = EventDetail::Store {
                to: r.as_ref().map(|r| r.to.clone()).unwrap_or_default(),
                ca_file: r.as_ref().and_then(|r| r.ca_file.clone()),
                token_file: r.and_then(|r| r.token_file),
            };
            journal_file
                .append(&crate::seal::journal::Event::new("", "", "", moved))
                .map_err(|e| {
                    InputError::one(Problem::new(
                        &shown,
                        format!("cannot record the new store in the journal: {e}"),
                    ))
                })?;
        }
        let format = if o.format.as_deref() == Some("json") {
            HandoffFormat::Json
        } else {
            HandoffFormat::Csv
        };
        let lazy_created = plan.op() == Operation::Create;
        Ok(Resume {
            plan,
            backends,
            opts,
            prior,
            earlier,
            ledger: JournalLedger::resume(journal_file, journal_sealing.sealer, lazy_created),
            notes,
            warnings,
            sink: handoff.map(|handoff| {
                AgeHandoff::new(
                    handoff,
                    &handoff_recipients,
                    o.armor.unwrap_or(false),
                    format,
                    true,
                )
            }),
            store,
            record,
        })
    }

    /// Where the final handoff goes (`-`: standard output; `None`: the run has no handoff file).
    pub fn output_path(&self) -> Option<&Path> {
        self.sink.as_ref().map(|s| s.path())
    }

    /// The run's store (`--to`), opened and checked.
    pub fn store(&self) -> Option<&crate::sink::bao::BaoStore> {
        self.store.as_deref()
    }

    /// The store's final delivery: every secret of the run, the earlier ones too; what the
    /// store already holds is recognised, never written twice.
    pub fn deliver_store(
        &self,
        minted: &dyn MintedRows,
    ) -> Option<Result<Option<Delivered>, SinkError>> {
        let store = self.store.as_ref()?;
        Some(store.deliver(&merge_rows(&self.earlier, minted)))
    }

    pub fn journal_path(&self) -> &Path {
        self.ledger.path()
    }

    /// The final handoff: every secret of the run, the earlier ones and `minted` (a target
    /// created again replaces its earlier row). Overwrites the partial handoff an interrupted
    /// run may have written. `Ok(None)` when the run has no secret at all.
    pub fn deliver(&self, minted: &dyn MintedRows) -> Option<Result<Option<Delivered>, SinkError>> {
        let sink = self.sink.as_ref()?;
        let mut delivered = sink.deliver(&merge_rows(&self.earlier, minted));
        if let Ok(Some(d)) = &mut delivered {
            self.ledger.delivered(sink.path());
            // Not "N new": most of them may have been sealed before the interruption.
            if !self.earlier.is_empty() {
                d.message = format!(
                    "{}; {} minted by this resume, {} before",
                    d.message,
                    minted.count(),
                    d.count.saturating_sub(minted.count())
                );
            }
        }
        Some(delivered)
    }
}

/// The hosts this resume does not contact: those outside its `--limit`, and those where the
/// journal saw a credential refused that is unchanged since (its tag is the same), unless
/// `--retry-refused` (each of these is also a warning). A refused verify (new tokens refused on
/// the cPanel port) holds a rotation's host while it still verifies.
fn holds(
    plan: &Plan,
    events: &[crate::seal::Event],
    steer: &Steer,
    o: &RunRecord,
    run_id: &str,
    warnings: &mut Vec<String>,
) -> Result<HashMap<String, Hold>, InputError> {
    let mut out = HashMap::new();
    if let Some(pattern) = &steer.limit {
        let hosts: Vec<inventory::Host> = plan.hosts.iter().map(|hp| hp.host.clone()).collect();
        let selection = plan::limit::select(&hosts, pattern).map_err(InputError::one)?;
        for (i, hp) in plan.hosts.iter().enumerate() {
            if !selection.hosts.contains(&i) {
                out.insert(
                    hp.host.name.clone(),
                    Hold {
                        cause: "outside this resume's --limit".into(),
                        why: "not attempted: outside this resume's --limit; resume again (without it, or naming this host) to finish".into(),
                    },
                );
            }
        }
    }
    if steer.retry_refused {
        return Ok(out);
    }
    // Per host, the last record of work there (the host took a credential then).
    let mut last_work: HashMap<&str, usize> = HashMap::new();
    for (i, e) in events.iter().enumerate() {
        if matches!(
            e.detail,
            EventDetail::Intent { .. }
                | EventDetail::Created { .. }
                | EventDetail::Verified {}
                | EventDetail::Revoked { .. }
                | EventDetail::Exists {}
        ) {
            last_work.insert(&e.host, i);
        }
    }
    for (i, e) in events.iter().enumerate() {
        let EventDetail::Refused { credential, tag } = &e.detail else {
            continue;
        };
        let Some(hp) = plan.hosts.iter().find(|hp| hp.host.name == e.host) else {
            continue;
        };
        // A later record of work on that host (a resume with --retry-refused, or a block that
        // ended) shows the host took a credential since: the refusal is history.
        if last_work.get(e.host.as_str()).is_some_and(|&w| w > i) {
            continue;
        }
        let unchanged = if e.account.is_empty() && tag == "-" {
            // New tokens were refused at verify: every verify there would be refused again.
            plan.op() == Operation::Rotate && o.verify
        } else if e.account.is_empty() && hp.host.api == crate::inventory::Api::Ssh {
            hp.host.ssh.login_tag(run_id) == *tag
        } else if e.account.is_empty() {
            hp.credential
                .as_ref()
                .is_some_and(|c| c.tag(run_id) == *tag)
        } else {
            hp.targets
                .iter()
                .find(|t| t.account.as_deref() == Some(e.account.as_str()))
                .and_then(|t| t.credential.as_ref())
                .is_some_and(|c| c.tag(run_id) == *tag)
        };
        if !unchanged {
            continue;
        }
        // The whole host, even for one account's credential: cPHulk counts every failed login
        // against this IP, and the other accounts' credentials are unproven there.
        let whose = if e.account.is_empty() {
            String::new()
        } else {
            format!(" (account {})", e.account)
        };
        if out.contains_key(&e.host) {
            continue;
        }
        let story = format!(
            "the interrupted run saw this host refuse {credential}{whose}, and it has not changed: nothing is sent to the host again (cPHulk counts failed logins across runs); fix it, or resume with --retry-refused"
        );
        warnings.push(format!("{}: {story}", e.host));
        out.insert(
            e.host.clone(),
            Hold {
                cause: "credential refused before".into(),
                why: format!("not attempted: {story}"),
            },
        );
    }
    Ok(out)
}

/// What the plan line says was run: the operation (only create and rotate resume) and its
/// options.
fn read_record(record: &PlanRecord, shown: &str) -> Result<(Operation, RunRecord), InputError> {
    let op = match record.operation.as_str() {
        "create" => Operation::Create,
        "rotate" => Operation::Rotate,
        other => {
            return Err(InputError::one(Problem::new(
                shown,
                format!("the journal is of a `{other}` run; only create and rotate resume"),
            )));
        }
    };
    let o = RunRecord::from_value(&record.options).map_err(|e| {
        InputError::one(Problem::new(
            shown,
            format!("the plan record's options cannot be read: {e}"),
        ))
    })?;
    Ok((op, o))
}

/// The keys that open the journal's secrets: identity files, and the passphrase of a
/// passphrase run.
fn load_keys(
    record: &PlanRecord,
    identities: &[PathBuf],
    ask_passphrase: &mut AskPassphrase<'_>,
) -> Result<Keys, InputError> {
    let mut keys = Keys::new();
    if record.passphrase {
        keys = keys.with_passphrase(ask_passphrase(&format!(
            "Passphrase of the run {} (it seals the handoff): ",
            record.run_id
        ))?);
    }
    for path in identities {
        if let Err(e) = keys.load_identity_file(path) {
            let e = match e {
                SealError::NeedPassphrase { .. } if keys.passphrase().is_none() => {
                    keys = keys.clone().with_passphrase(ask_passphrase(&format!(
                        "Passphrase for the identity file {}: ",
                        path.display()
                    ))?);
                    match keys.load_identity_file(path) {
                        Ok(_) => continue,
                        Err(e) => e,
                    }
                }
                e => e,
            };
            return Err(seal_problem("--identity", e));
        }
    }
    Ok(keys)
}

/// The secrets sealed before the interruption, unsealed for the final handoff, and the sealed
/// records that no longer open (damaged). A run that sealed some needs a key to read them.
fn earlier_secrets(
    record: &PlanRecord,
    o: &RunRecord,
    scanned: &crate::seal::Scanned,
    keys: &Keys,
    identities: &[PathBuf],
    shown: &str,
) -> Result<(Vec<Minted>, Vec<crate::seal::Damaged>), InputError> {
    let sealed_before = scanned
        .events
        .iter()
        .filter(|e| matches!(e.detail, EventDetail::Created { .. }))
        .count();
    if sealed_before > 0 && !record.passphrase && identities.is_empty() {
        let output = o.output.clone().unwrap_or_else(|| "the handoff".into());
        return Err(InputError::one(
            Problem::new(
                shown,
                format!(
                    "{sealed_before} secret(s) of this run were sealed before the interruption; \
                     the final handoff {output} must hold them too, so resume needs a key to read them"
                ),
            )
            .hint(format!(
                "run: tokenfleet resume {shown} --identity KEY   (KEY: the age identity file of \
                 one of the run's recipients: {})",
                record.recipients.join(", ")
            )),
        ));
    }
    if sealed_before == 0 {
        return Ok((Vec::new(), Vec::new()));
    }
    let (rows, damaged) =
        crate::seal::recover_rows(scanned, keys).map_err(|e| seal_problem(shown, e))?;
    Ok((rows.into_iter().map(minted_of).collect(), damaged))
}

/// A journal row as the run's record of a new secret.
fn minted_of(r: HandoffRow) -> Minted {
    Minted {
        host: r.host,
        account: r.account,
        token: NewToken {
            name: r.token_name,
            token: r.token,
            create_time: r.created_at,
            expires_at: r.expires_at,
        },
        url: r.url,
    }
}

/// Whom the final handoff is sealed to: the run's recipients, or its passphrase.
fn handoff_recipients(
    record: &PlanRecord,
    keys: &Keys,
    shown: &str,
) -> Result<Recipients, InputError> {
    Ok(if record.passphrase {
        let pass = keys.passphrase().cloned().expect("asked above");
        Recipients::passphrase(pass)
    } else {
        let mut parsed = Vec::new();
        for (i, r) in record.recipients.iter().enumerate() {
            parsed.push(parse_recipient(r, &format!("{shown}: recipients[{i}]"))?);
        }
        Recipients::keys(parsed)
    })
}

/// The interrupted run's plan, rebuilt from the inventory as it is now; a change of the
/// inventory that matters is refused with a diff. Returns the plan and notes for the user.
fn rebuild_plan(
    record: &PlanRecord,
    o: &RunRecord,
    op: Operation,
    prompt: &mut Prompter<'_>,
    shown: &str,
) -> Result<(Plan, Vec<String>), InputError> {
    // The inventory, as it is now.
    let mut inv_path = PathBuf::from(&record.inventory);
    if !inv_path.exists()
        && let Some(abs) = o.inventory_abs.clone()
    {
        inv_path = PathBuf::from(abs);
    }
    let inventory = inventory::load(&inv_path)?;
    let date = o.date.clone().unwrap_or_else(|| {
        // Journals that predate `date`: the run date is the plan record's start date.
        record.started.get(..10).unwrap_or("").replace('-', "")
    });
    let scope = if record.scope == "whm" {
        Scope::Whm
    } else {
        Scope::Account
    };
    let req = PlanRequest {
        op: Some(op),
        scope,
        name: Some(record.name_template.clone()),
        revoke: o.revoke.clone(),
        expires_at: o.expires_at,
        limit: o.limit.clone(),
        accounts: o.accounts.clone(),
        per_host: o.per_host as usize,
        run_id: record.run_id.clone(),
        date,
        shard: o.shard,
        policy: o.policy.clone(),
        expiring: o.expiring.clone(),
        change: None,
        census: None,
        sweep: None,
    };
    let plan = plan::build(&inventory, &req, prompt)?;
    let mut notes = Vec::new();
    if inventory.sha256 != record.inventory_sha256 {
        let diff = match &o.targets {
            Some(before) => fingerprint_diff(before, &fingerprint(&plan)),
            None => vec![
                "the journal records no target list to compare (written by an older tokenfleet)"
                    .into(),
            ],
        };
        if !diff.is_empty() {
            let mut msg = format!(
                "the inventory changed since the interrupted run (sha256 {} → {}) in a way that matters:",
                short(&record.inventory_sha256),
                short(&inventory.sha256)
            );
            for d in &diff {
                msg.push_str("\n    ");
                msg.push_str(d);
            }
            // A passphrase run opens with the passphrase alone (asked), no key.
            let key = if record.passphrase {
                ""
            } else {
                " --identity KEY"
            };
            return Err(InputError::one(
                Problem::new(inv_path.display().to_string(), msg).hint(format!(
                    "restore the inventory the run used, then run `tokenfleet resume {shown}` again; \
                     or finish with a new run (its secrets so far: `tokenfleet open {shown}{key}`)"
                )),
            ));
        }
        notes.push(format!(
            "note: the inventory changed since the interrupted run (sha256 {} → {}), but not its targets",
            short(&record.inventory_sha256),
            short(&inventory.sha256)
        ));
    }

    Ok((plan, notes))
}

/// Names must expand exactly as before: the journal's names are the truth.
fn check_names(
    plan: &Plan,
    seen: &HashMap<(String, String), Seen>,
    events: &[crate::seal::Event],
    shown: &str,
) -> Result<(), InputError> {
    let mut problems = Vec::new();
    for hp in &plan.hosts {
        for t in &hp.targets {
            let account = t.account.as_deref().unwrap_or(&hp.host.whm_user);
            let key = (hp.host.name.clone(), account.to_string());
            if seen.contains_key(&key)
                && let Some(e) = events.iter().rev().find(|e| {
                    e.host == key.0
                        && e.account == key.1
                        && !matches!(
                            e.detail,
                            EventDetail::Refused { .. }
                                | EventDetail::Delivered { .. }
                                | EventDetail::Store { .. }
                        )
                })
                && Some(e.token_name.as_str()) != t.token_name.as_deref()
            {
                problems.push(Problem::new(
                    shown,
                    format!(
                        "{} {}: the journal names the token {}, the plan now names it {}",
                        key.0,
                        key.1,
                        e.token_name,
                        t.token_name.as_deref().unwrap_or("-")
                    ),
                ));
            }
        }
    }
    if !problems.is_empty() {
        problems.truncate(20);
        problems[0].hint = Some(
            "the name template or run date no longer expands the same way; resume cannot mix names"
                .into(),
        );
        return Err(InputError { problems });
    }

    Ok(())
}

/// Per target, what the journal says to do next, with the secrets of rotations to continue
/// unsealed. Also counts (done, to reconcile, to finish rotating).
fn prior_state(
    seen: HashMap<(String, String), Seen>,
    events: &[crate::seal::Event],
    record: &PlanRecord,
    keys: &Keys,
    shown: &str,
) -> Result<(PriorState, (usize, usize, usize)), InputError> {
    let mut prior = PriorState::new();
    let keys_for_journal =
        crate::seal::journal_keys(record, keys).map_err(|e| seal_problem(shown, e))?;
    let (mut done, mut reconcile, mut cont) = (0, 0, 0);
    for (key, s) in seen {
        let p = match s {
            Seen::Done(status) => {
                done += 1;
                Prior::Done(status)
            }
            Seen::Reconcile { proven } => {
                reconcile += 1;
                Prior::Reconcile { proven }
            }
            Seen::Created { event, verified } => {
                cont += 1;
                let e = &events[event];
                let token = crate::seal::unseal_secret(e, &keys_for_journal)
                    .map_err(|err| seal_problem(shown, err))?;
                let EventDetail::Created {
                    create_time,
                    expires_at,
                    url,
                    ..
                } = &e.detail
                else {
                    unreachable!("classify points at created events")
                };
                Prior::Created {
                    minted: Minted {
                        host: e.host.clone(),
                        account: e.account.clone(),
                        token: NewToken {
                            name: e.token_name.clone(),
                            token,
                            create_time: *create_time,
                            expires_at: *expires_at,
                        },
                        url: url.clone(),
                    },
                    verified,
                }
            }
            Seen::Again => continue,
        };
        prior.insert(key, p);
    }
    Ok((prior, (done, reconcile, cont)))
}

/// Earlier secrets, then this run's, one per (host, account, token name), the newest winning.
pub fn merge_rows(earlier: &[Minted], minted: &dyn MintedRows) -> Vec<Minted> {
    let mut rows: Vec<Minted> = Vec::with_capacity(earlier.len() + minted.count());
    let mut index: HashMap<(String, String, String), usize> = HashMap::new();
    for row in earlier.iter().cloned().chain(minted.rows()) {
        let key = (
            row.host.clone(),
            row.account.clone(),
            row.token.name.clone(),
        );
        match index.get(&key) {
            Some(&i) => rows[i] = row,
            None => {
                index.insert(key, rows.len());
                rows.push(row);
            }
        }
    }
    rows
}

/// The handoff of a journal: the journal is `OUT.journal`, so `OUT` is where the journal is now
/// (it may have moved with its folder); the recorded path is the fallback. A run with `-o -`
/// writes to standard output again; one with `--journal` to the recorded absolute `OUT` while
/// the journal keeps its name (a journal kept aside gets its handoff beside it, as below).
fn resolve_output(journal: &Path, o: &RunRecord) -> PathBuf {
    if o.output
        .as_deref()
        .is_some_and(|out| crate::seal::is_stdout(Path::new(out)))
    {
        return PathBuf::from("-");
    }
    if let Some(given) = &o.journal {
        let same_name = Path::new(given).file_name() == journal.file_name();
        if let (true, Some(abs)) = (same_name, &o.output_abs) {
            return PathBuf::from(abs);
        }
        let mut out = journal.as_os_str().to_os_string();
        out.push(".age");
        return PathBuf::from(out);
    }
    match journal
        .as_os_str()
        .to_str()
        .and_then(|s| s.strip_suffix(".journal"))
    {
        Some(out) if !out.is_empty() => PathBuf::from(out),
        // A journal kept aside (`OUT.journal.old-…`) or renamed: its handoff goes beside it,
        // never over the `OUT` a later run wrote.
        _ => {
            let mut out = journal.as_os_str().to_os_string();
            out.push(".age");
            PathBuf::from(out)
        }
    }
}

/// The rows of the handoff at `OUT`, so that the final one keeps them and no secret in it is
/// ever taken for an orphan, and whether this journal vouches for the file (a `delivered`
/// record of its digest: then it is this run's own). A file there that these keys cannot open
/// is not this run's: resume would overwrite it, so it refuses. Nothing decrypted is ever
/// quoted in an error.
fn handed_off(
    handoff: &Path,
    keys: &Keys,
    scanned: &crate::seal::Scanned,
    shown: &str,
) -> Result<(Vec<Minted>, bool), InputError> {
    // Standard output kept nothing to read back: the journal holds every secret.
    if crate::seal::is_stdout(handoff) || std::fs::symlink_metadata(handoff).is_err() {
        return Ok((Vec::new(), false));
    }
    let where_ = handoff.display().to_string();
    let digest = crate::seal::journal::file_sha256(handoff).ok();
    let trusted = digest.is_some_and(|d| {
        scanned
            .events
            .iter()
            .any(|e| matches!(&e.detail, EventDetail::Delivered { sha256 } if *sha256 == d))
    });
    match crate::seal::open_file(handoff, keys) {
        Ok((rows, _)) => Ok((rows.into_iter().map(minted_of).collect(), trusted)),
        Err(SealError::NeedIdentity { .. }) => Err(InputError::one(
            Problem::new(
                &where_,
                "this run's handoff already exists; resume rewrites it with every secret of the run, so it needs a key to read it",
            )
            .hint(format!("run: tokenfleet resume {shown} --identity KEY")),
        )),
        Err(_) => Err(InputError::one(
            Problem::new(
                &where_,
                "exists but cannot be read as this run's handoff with these keys; resume would overwrite it",
            )
            .hint("move it aside (it may hold someone's secrets), then resume again"),
        )),
    }
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

fn seal_problem(location: &str, e: SealError) -> InputError {
    match e {
        SealError::Invalid {
            location: l,
            message,
            hint,
        } => {
            let p = Problem::new(l, message);
            InputError::one(match hint {
                Some(h) => p.hint(h),
                None => p,
            })
        }
        SealError::NeedIdentity { .. } => InputError::one(
            Problem::new(location, e.to_string())
                .hint(format!("run: tokenfleet resume {location} --identity KEY")),
        ),
        other => InputError::one(Problem::new(location, other.to_string())),
    }
}

mod damage;
#[cfg(test)]
mod tests;
