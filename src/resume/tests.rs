//! Unit tests of resume: classification of journal events, plan fingerprints and their diff.

use super::*;
use crate::seal::{Action, Event};

fn ev(account: &str, detail: EventDetail) -> Event {
    Event::new("web1", account, "tok", detail)
}

fn intent() -> EventDetail {
    EventDetail::Intent {
        action: Action::Create,
        names: Vec::new(),
        absent: true,
    }
}

fn created() -> EventDetail {
    EventDetail::Created {
        sealed: "x".into(),
        create_time: 1,
        expires_at: None,
        url: "https://h:2083".into(),
    }
}

fn key(a: &str) -> (String, String) {
    ("web1".into(), a.into())
}

#[test]
fn create_targets_are_done_reconciled_or_done_again() {
    let events = vec![
        ev("a", intent()),
        ev("a", created()),
        ev("b", intent()),
        ev("c", intent()),
        ev(
            "c",
            EventDetail::Failed {
                step: "create".into(),
                error: "timeout".into(),
            },
        ),
        ev("d", intent()),
        ev("d", EventDetail::Exists {}),
    ];
    let seen = classify(Operation::Create, &events);
    assert_eq!(seen[&key("a")], Seen::Done(Status::Created));
    assert_eq!(seen[&key("b")], Seen::Reconcile { proven: true });
    assert_eq!(
        seen[&key("c")],
        Seen::Reconcile { proven: true },
        "a failure leaves it unknown"
    );
    assert_eq!(seen[&key("d")], Seen::Done(Status::Exists));
    assert!(!seen.contains_key(&key("e")));
}

#[test]
fn replace_existing_revoke_before_create_is_not_a_finished_rotation() {
    let revoked = || EventDetail::Revoked {
        names: vec!["tok".into()],
    };
    // create --replace-existing: intent, exists-conflict revoke, intent again, crash.
    let events = vec![ev("a", intent()), ev("a", revoked()), ev("a", intent())];
    assert_eq!(
        classify(Operation::Rotate, &events)[&key("a")],
        Seen::Reconcile { proven: true }
    );
}

#[test]
fn rotate_continues_from_the_last_finished_step() {
    let revoked = || EventDetail::Revoked {
        names: vec!["old".into()],
    };
    let events = vec![
        ev("a", intent()),
        ev("a", created()),
        ev("a", EventDetail::Verified {}),
        ev("a", revoked()),
        ev("b", intent()),
        ev("b", created()),
        ev("c", intent()),
        ev("c", created()),
        ev("c", EventDetail::Verified {}),
        ev(
            "c",
            EventDetail::Failed {
                step: "revoke".into(),
                error: "500".into(),
            },
        ),
        ev("d", intent()),
        ev("d", EventDetail::Exists {}),
    ];
    let seen = classify(Operation::Rotate, &events);
    assert_eq!(seen[&key("a")], Seen::Done(Status::Rotated));
    assert_eq!(
        seen[&key("b")],
        Seen::Created {
            event: 5,
            verified: false
        }
    );
    assert_eq!(
        seen[&key("c")],
        Seen::Created {
            event: 7,
            verified: true
        }
    );
    assert_eq!(
        seen[&key("d")],
        Seen::Again,
        "a taken name is never an orphan"
    );
}

fn fp(hosts: Value) -> Value {
    json!({"scope": "account", "hosts": hosts})
}

fn host(name: &str, address: &str, accounts: &[&str]) -> Value {
    json!({"name": name, "address": address, "api": "whm", "whm_port": 2087,
           "cpanel_port": 2083, "whm_user": "root", "accounts": accounts})
}

#[test]
fn fingerprint_diff_names_what_matters() {
    let before = fp(json!([
        host("web1", "10.0.0.1", &["a", "b"]),
        host("web2", "10.0.0.2", &["c"])
    ]));
    assert!(fingerprint_diff(&before, &before).is_empty());
    let now = fp(json!([
        host("web1", "10.0.0.9", &["a", "z"]),
        host("web3", "10.0.0.3", &["c"])
    ]));
    let d = fingerprint_diff(&before, &now);
    assert!(
        d.contains(&"host web1: address 10.0.0.1 → 10.0.0.9".to_string()),
        "{d:?}"
    );
    assert!(
        d.contains(&"host web1: accounts gone: b".to_string()),
        "{d:?}"
    );
    assert!(
        d.contains(&"host web1: accounts added: z".to_string()),
        "{d:?}"
    );
    assert!(d.iter().any(|l| l.starts_with("host web2: gone")), "{d:?}");
    assert!(d.iter().any(|l| l.starts_with("host web3: new")), "{d:?}");
    let mut whm = now.clone();
    whm["scope"] = json!("whm");
    assert!(fingerprint_diff(&now, &whm)[0].starts_with("scope:"));
}

#[test]
fn merge_keeps_one_row_per_token_the_newest_winning() {
    let row = |acct: &str, tok: &str| Minted {
        host: "web1".into(),
        account: acct.into(),
        token: NewToken {
            name: "t".into(),
            token: Secret::new(tok),
            create_time: 1,
            expires_at: None,
        },
        url: "u".into(),
    };
    let minted = Minted {
        host: "web1".into(),
        account: "b".into(),
        token: NewToken {
            name: "t".into(),
            token: Secret::new("new-b"),
            create_time: 2,
            expires_at: None,
        },
        url: "u".into(),
    };
    let rows = merge_rows(&[row("a", "old-a"), row("b", "old-b")], &vec![minted]);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].token.token.expose(), "new-b");
    assert_eq!(rows[0].token.token.expose(), "old-a");
}

#[test]
fn an_intent_without_its_listing_proves_nothing() {
    let unproven = EventDetail::Intent {
        action: Action::Create,
        names: Vec::new(),
        absent: false,
    };
    // An older journal (or one whose proof was lost): a token found later is not provably ours.
    let events = vec![
        ev("a", unproven.clone()),
        ev("b", intent()),
        ev("b", unproven),
    ];
    let seen = classify(Operation::Create, &events);
    assert_eq!(seen[&key("a")], Seen::Reconcile { proven: false });
    assert_eq!(
        seen[&key("b")],
        Seen::Reconcile { proven: false },
        "the last intent decides"
    );
}

fn scanned(events: Vec<Event>, damaged: Vec<crate::seal::Damaged>) -> crate::seal::Scanned {
    // Events on lines 2, 3, …, skipping the damaged ones' lines.
    let bad: Vec<usize> = damaged.iter().map(|d| d.line).collect();
    let lines: Vec<usize> = (2..)
        .filter(|l| !bad.contains(l))
        .take(events.len())
        .collect();
    crate::seal::Scanned {
        plan: None,
        events,
        lines,
        damaged,
    }
}

fn damaged(line: usize, account: Option<&str>, kind: Option<&str>) -> crate::seal::Damaged {
    crate::seal::Damaged {
        line,
        target: account.map(|a| ("web1".to_string(), a.to_string())),
        kind: kind.map(str::to_string),
        superseded: false,
        why: "the record does not parse".into(),
    }
}

#[test]
fn damage_is_weighed_per_target_and_proof_survives_only_where_the_records_carry_it() {
    // a: its intent (line 2) intact, its created (line 3) torn: this run's token, reconcile.
    // b: its only record, an intent (line 4), torn: nobody can prove whose a token would be.
    // c: intact intent and created, then a torn record (line 7): settled by the created.
    // d: an intact intent, then a torn line that may have been an `exists`: no proof left.
    let events = vec![
        ev("a", intent()),
        ev("c", intent()),
        ev("c", created()),
        ev("d", intent()),
    ];
    let s = scanned(
        events.clone(),
        vec![
            damaged(3, Some("a"), Some("created")),
            damaged(4, Some("b"), Some("intent")),
            damaged(7, Some("c"), Some("verified")),
            damaged(9, Some("d"), None),
        ],
    );
    let mut seen = classify(Operation::Create, &s.events);
    let hosts: std::collections::HashSet<String> = ["web1".to_string()].into();
    let (warnings, unattributed) =
        damage::weigh(Operation::Create, &mut seen, &s, &[], &hosts, "j");
    assert!(!unattributed);
    assert_eq!(warnings.len(), 4);
    assert_eq!(seen[&key("a")], Seen::Reconcile { proven: true });
    assert_eq!(seen[&key("b")], Seen::Reconcile { proven: false });
    assert_eq!(seen[&key("c")], Seen::Done(Status::Created));
    assert_eq!(seen[&key("d")], Seen::Reconcile { proven: false });

    // A line that names no target: no pending target keeps its proof.
    let s = scanned(vec![ev("a", intent())], vec![damaged(3, None, None)]);
    let mut seen = classify(Operation::Create, &s.events);
    let (_, unattributed) = damage::weigh(Operation::Create, &mut seen, &s, &[], &hosts, "j");
    assert!(unattributed);
    assert_eq!(seen[&key("a")], Seen::Reconcile { proven: false });

    // An unreadable secret replaced by a later readable one changes nothing.
    let s = scanned(vec![ev("a", intent()), ev("a", created())], vec![]);
    let mut seen = classify(Operation::Create, &s.events);
    let mut old = damaged(2, Some("a"), Some("created"));
    old.superseded = true;
    damage::weigh(Operation::Create, &mut seen, &s, &[old], &hosts, "j");
    assert_eq!(seen[&key("a")], Seen::Done(Status::Created));
}
