//! Why this module exists: `tokenfleet open FILE` is how a user reads back what a run sealed,
//! whether the run finished (a handoff file) or died (its journal, docs/DESIGN.md §1). This module
//! detects which one it is and returns the rows, decrypted with the given identities or
//! passphrase; printing is the CLI's job (`cli/show.rs`).

use super::handoff::{HandoffRow, parse_rows};
use super::journal::{
    Damaged, bytes_look_like_journal, looks_like_journal, recover_rows, scan_journal,
    scan_journal_from,
};
use super::sealer::{Keys, SealError};
use std::path::Path;

/// Open a handoff file (armored or binary age, CSV or JSON inside) or a journal, and return its
/// rows with the tokens decrypted. A damaged journal gives every record that is intact, and
/// names the lines that are not.
pub fn open_file(path: &Path, keys: &Keys) -> Result<(Vec<HandoffRow>, Vec<Damaged>), SealError> {
    if looks_like_journal(path).map_err(|e| SealError::io(path, e))? {
        let scanned = scan_journal(path)?;
        let (rows, mut damaged) = recover_rows(&scanned, keys)?;
        damaged.extend(scanned.damaged);
        damaged.sort_by_key(|d| d.line);
        return Ok((rows, damaged));
    }
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| SealError::io(path, e))?;
    let plain = keys.decrypt(&bytes, &shown)?;
    Ok((parse_rows(&plain, &shown)?, Vec::new()))
}

/// [`open_file`] of bytes already read (`open -`: standard input), a handoff (armored or
/// binary) or a journal, told apart by their first bytes as for a file. `what` names them.
pub fn open_bytes(
    bytes: &[u8],
    what: &Path,
    keys: &Keys,
) -> Result<(Vec<HandoffRow>, Vec<Damaged>), SealError> {
    if bytes_look_like_journal(bytes) {
        let scanned = scan_journal_from(bytes, what)?;
        let (rows, mut damaged) = recover_rows(&scanned, keys)?;
        damaged.extend(scanned.damaged);
        damaged.sort_by_key(|d| d.line);
        return Ok((rows, damaged));
    }
    let shown = what.display().to_string();
    let plain = keys.decrypt(bytes, &shown)?;
    Ok((parse_rows(&plain, &shown)?, Vec::new()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::handoff::{HandoffFormat, write_handoff};
    use crate::seal::journal::{Event, EventDetail, Journal, JournalSealing, PlanRecord};
    use crate::seal::{Recipients, Sealer};
    use crate::secret::Secret;
    use age::x25519;

    fn row(host: &str, tok: &str) -> HandoffRow {
        HandoffRow {
            host: host.into(),
            account: "alice".into(),
            token_name: "n1".into(),
            token: Secret::new(tok),
            url: format!("https://{host}:2083"),
            created_at: 1_700_000_000,
            expires_at: Some(1_800_000_000),
        }
    }

    #[test]
    fn opens_handoffs_and_journals() {
        let d = tempfile::tempdir().unwrap();
        let id = x25519::Identity::generate();
        let r = Recipients::keys(vec![id.to_public()]);
        let keys = Keys::from_identities(vec![id]);
        let rows = vec![row("web1", "AAAA"), row("web2", "BBBB")];
        let out = d.path().join("out.age");
        write_handoff(
            &out,
            &rows,
            HandoffFormat::Json,
            &Sealer::new(&r),
            true,
            false,
        )
        .unwrap();
        assert_eq!(open_file(&out, &keys).unwrap().0, rows);

        let jp = d.path().join("out.age.journal");
        let sealing = JournalSealing::new(&r).unwrap();
        let mut plan = PlanRecord {
            run_id: "x".into(),
            ..PlanRecord::default()
        };
        sealing.apply(&mut plan);
        let j = Journal::create(&jp, &plan, false).unwrap();
        for rw in &rows {
            let detail = EventDetail::Created {
                sealed: sealing.sealer.seal_secret(&rw.token).unwrap(),
                create_time: rw.created_at,
                expires_at: rw.expires_at,
                url: rw.url.clone(),
            };
            j.append(&Event::new(&rw.host, &rw.account, &rw.token_name, detail))
                .unwrap();
            j.append(&Event::new(
                &rw.host,
                &rw.account,
                &rw.token_name,
                EventDetail::Verified {},
            ))
            .unwrap();
        }
        assert_eq!(open_file(&jp, &keys).unwrap().0, rows);
        // The same bytes on standard input (`open -`), a journal and a handoff alike.
        for p in [&jp, &out] {
            let bytes = std::fs::read(p).unwrap();
            assert_eq!(open_bytes(&bytes, Path::new("-"), &keys).unwrap().0, rows);
        }

        let e = open_file(&out, &Keys::new()).unwrap_err();
        assert!(matches!(e, SealError::NeedIdentity { .. }), "{e}");
        let e = open_file(&d.path().join("missing"), &keys)
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing"), "{e}");
    }
}
