//! Why this module exists: a journal can be damaged (a flipped byte, a torn line, a lost record)
//! and other runs may have worked on the same accounts since. Resume must neither refuse the
//! whole run nor revoke a token it cannot prove is this run's. This module weighs what the
//! damage and the other journals beside this one mean for each target's [`Seen`], before any
//! request: a target whose record is lost is reconciled from the server, with the proof of
//! ownership kept only where the intact records (or the damaged text) still carry it.

use super::Seen;
use crate::plan::Operation;
use crate::seal::{Damaged, EventDetail, Scanned};
use std::collections::{HashMap, HashSet};
use std::path::Path;

type Target = (String, String);

/// Adjust `seen` for the journal's damage; returns the warnings to print (always, even `-q`).
/// `unreadable`: sealed secrets that no longer open. `unattributed` is set when a damaged line
/// names no target: then no pending target keeps its proof, and targets with no record at all
/// must be reconciled too (the damaged line may have been theirs).
pub(super) fn weigh(
    op: Operation,
    seen: &mut HashMap<Target, Seen>,
    scanned: &Scanned,
    unreadable: &[Damaged],
    hosts: &HashSet<String>,
    shown: &str,
) -> (Vec<String>, bool) {
    let mut warnings = Vec::new();
    let mut unattributed = false;
    for d in unreadable {
        if d.superseded {
            warnings.push(format!(
                "{shown}:{}: {}; a later record replaced it, nothing to do",
                d.line, d.why
            ));
            continue;
        }
        warnings.push(format!(
            "{shown}:{}: {}; this run made that token and nobody can read its secret: it is revoked and made again",
            d.line, d.why
        ));
        if let Some(t) = &d.target {
            // The `created` record proves the token is this run's.
            seen.insert(t.clone(), Seen::Reconcile { proven: true });
        }
    }
    for d in scanned.damaged.iter().filter(|d| d.line > 1) {
        // A host the plan does not have: the damage garbled the name itself.
        let target = d.target.as_ref().filter(|t| hosts.contains(&t.0));
        if d.kind.as_deref() == Some("refused") || target.is_some_and(|t| t.1.is_empty()) {
            // About a host's credential, not a target: no token to reconcile.
            warnings.push(format!(
                "{shown}:{}: {}; it recorded a refused credential (or another host-level fact), not a target's step: nothing to reconcile, but that credential may be tried once more",
                d.line, d.why
            ));
            continue;
        }
        let Some(t) = target else {
            unattributed = true;
            warnings.push(format!(
                "{shown}:{}: {}, and it names no target: every unfinished target is checked on its server, and a token of its name that this run cannot prove it made is kept and named",
                d.line, d.why
            ));
            continue;
        };
        if settled_before(op, scanned, t, d.line) || settled_after(op, scanned, t, d.line) {
            warnings.push(format!(
                "{shown}:{}: {} ({} {}); the records around it settle that target",
                d.line, d.why, t.0, t.1
            ));
            continue;
        }
        let pending_proof = matches!(seen.get(t), Some(Seen::Reconcile { proven: true }));
        let proven = match d.kind.as_deref() {
            // A `created` record is written only for a token this run made.
            Some("created") => true,
            // Records that leave an intent's proof as it was.
            Some("intent" | "failed" | "revoked" | "verified") => pending_proof,
            // An `exists`, or a kind that cannot be read: someone else's token, perhaps.
            _ => false,
        };
        warnings.push(format!(
            "{shown}:{}: {} ({} {}); that target is reconciled from its server",
            d.line, d.why, t.0, t.1
        ));
        seen.insert(t.clone(), Seen::Reconcile { proven });
    }
    if unattributed {
        for s in seen.values_mut() {
            if let Seen::Reconcile { proven } = s {
                *proven = false;
            }
        }
    }
    (warnings, unattributed)
}

/// The damaged line follows a readable `created` of the target with no create intent between:
/// it was a later step of that rotation (verified, revoked) or a failure of it, and the intact
/// `created` (with its secret) already says what to do.
fn settled_before(op: Operation, scanned: &Scanned, t: &Target, line: usize) -> bool {
    let mut settled = false;
    for (e, l) in scanned.events.iter().zip(&scanned.lines) {
        if *l > line || (&e.host, &e.account) != (&t.0, &t.1) {
            continue;
        }
        match &e.detail {
            EventDetail::Created { .. } => settled = true,
            EventDetail::Intent { action, .. } if *action == crate::seal::Action::Create => {
                settled = false;
            }
            _ => {}
        }
    }
    settled && matches!(op, Operation::Create | Operation::Rotate)
}

/// An intact record after the damaged one settles the target: a new `created`, an `exists`, or
/// (rotate) the `revoked` that finished it.
fn settled_after(op: Operation, scanned: &Scanned, t: &Target, line: usize) -> bool {
    scanned
        .events
        .iter()
        .zip(&scanned.lines)
        .filter(|(e, l)| **l > line && (&e.host, &e.account) == (&t.0, &t.1))
        .any(|(e, _)| match &e.detail {
            EventDetail::Created { .. } | EventDetail::Exists {} => true,
            EventDetail::Revoked { .. } => op == Operation::Rotate,
            _ => false,
        })
}

/// Tokens (host, account, name) that the other journals beside this one hold a sealed secret
/// for: another run made them, so they are never this run's orphans, whatever its proof says
/// (that run may have created the name after this one was killed and before it was resumed).
pub(super) fn held_elsewhere(journal: &Path) -> HashSet<(String, String, String)> {
    let mut held = HashSet::new();
    let dir = match journal.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => Path::new(".").to_path_buf(),
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return held;
    };
    let ours = std::fs::canonicalize(journal).ok();
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        let is_journal = name.ends_with(".journal") || name.contains(".journal.old-");
        if !is_journal || std::fs::canonicalize(&path).ok() == ours {
            continue;
        }
        let Ok(other) = crate::seal::scan_journal(&path) else {
            continue;
        };
        for e in other.events {
            if matches!(e.detail, EventDetail::Created { .. }) {
                held.insert((e.host, e.account, e.token_name));
            }
        }
    }
    held
}

/// The token name each target's records are about (the last record wins; resume has checked
/// that the plan still gives each target the same name).
pub(super) fn pending_names(scanned: &Scanned) -> HashMap<Target, String> {
    let mut names = HashMap::new();
    for e in &scanned.events {
        let about_a_target = matches!(
            &e.detail,
            EventDetail::Intent {
                action: crate::seal::Action::Create,
                ..
            } | EventDetail::Created { .. }
                | EventDetail::Exists {}
        );
        if about_a_target {
            names.insert((e.host.clone(), e.account.clone()), e.token_name.clone());
        }
    }
    names
}
