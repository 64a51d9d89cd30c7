//! The age handoff file: one row per new token, sealed to the run's recipients, written 0600
//! through a temporary file that is fsynced and renamed (`seal::write_handoff_rows`), or with
//! `-o -` streamed to standard output (`seal::handoff::write_handoff_rows_to`).

use super::{Delivered, Sink, SinkError};
use crate::outcome::{Minted, MintedRows};
use crate::seal::handoff::{
    AsRow, HandoffFormat, RowRef, write_handoff_rows, write_handoff_rows_to,
};
use crate::seal::{Output, Recipients, Sealer, is_stdout};
use std::path::PathBuf;

/// The handoff file of a run.
pub struct AgeHandoff {
    path: PathBuf,
    sealer: Sealer,
    armor: bool,
    format: HandoffFormat,
    /// Replace an existing file (`--force`, or resume's final handoff over a partial one).
    overwrite: bool,
    /// Sealed with a passphrase: opened without a key (`age -d` asks for it).
    passphrase: bool,
}

impl AgeHandoff {
    pub fn new(
        path: PathBuf,
        recipients: &Recipients,
        armor: bool,
        format: HandoffFormat,
        overwrite: bool,
    ) -> AgeHandoff {
        AgeHandoff {
            path,
            sealer: Sealer::new(recipients),
            armor,
            format,
            overwrite,
            passphrase: recipients.is_passphrase(),
        }
    }
}

impl AgeHandoff {
    /// Where the file goes (`-`: standard output).
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// The handoff file that `-o` and the sealing flags ask for.
    pub fn for_output(output: &Output, path: &std::path::Path) -> AgeHandoff {
        let (armor, format, force) = output.handoff_options();
        AgeHandoff::new(
            path.to_path_buf(),
            output.recipients(),
            armor,
            format,
            force,
        )
    }
}

impl AsRow for Minted {
    fn as_row(&self) -> RowRef<'_> {
        row_ref(self)
    }
}

fn row_ref(m: &Minted) -> RowRef<'_> {
    RowRef {
        host: &m.host,
        account: &m.account,
        token_name: &m.token.name,
        token: &m.token.token,
        url: &m.url,
        created_at: m.token.create_time,
        expires_at: m.token.expires_at,
    }
}

impl Sink for AgeHandoff {
    fn deliver(&self, minted: &dyn MintedRows) -> Result<Option<Delivered>, SinkError> {
        if minted.count() == 0 {
            return Ok(None);
        }
        let stdout = is_stdout(&self.path);
        // Read back one by one (from the run's encrypted spool): never all secrets at once.
        let rows = minted.rows();
        let written = if stdout {
            let out = std::io::stdout().lock();
            write_handoff_rows_to(out, rows, self.format, &self.sealer, self.armor)
        } else {
            write_handoff_rows(
                &self.path,
                rows,
                self.format,
                &self.sealer,
                self.armor,
                self.overwrite,
            )
        };
        written.map_err(|e| SinkError(crate::error::chain(&e)))?;
        Ok(Some(Delivered {
            count: minted.count(),
            message: self.message(minted.count()),
        }))
    }
}

impl AgeHandoff {
    /// Where the secrets went and how to open them, as the user's key opens them: a passphrase
    /// run needs no `-i KEY` (`age -d` asks for the passphrase).
    fn message(&self, count: usize) -> String {
        let (into, file) = if is_stdout(&self.path) {
            ("to standard output".to_string(), "FILE".to_string())
        } else {
            let p = self.path.display().to_string();
            (format!("into {p}"), p)
        };
        let how = if self.passphrase {
            format!("age -d {file} or tokenfleet open {file}; both ask for the passphrase")
        } else {
            format!("age -d -i KEY {file} or tokenfleet open {file} --identity KEY")
        };
        let saved = if is_stdout(&self.path) {
            " (FILE: where you saved it)"
        } else {
            ""
        };
        format!("sealed {count} token(s) {into} (open with: {how}){saved}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::NewToken;
    use crate::secret::Secret;

    #[test]
    fn the_open_hint_fits_the_key() {
        let id = age::x25519::Identity::generate();
        let keys = Recipients::keys(vec![id.to_public()]);
        let pass = Recipients::passphrase(Secret::new("pw"));
        let sink = |path: &str, r: &Recipients| {
            AgeHandoff::new(path.into(), r, false, HandoffFormat::Csv, false)
        };
        assert_eq!(
            sink("out.age", &keys).message(2),
            "sealed 2 token(s) into out.age (open with: age -d -i KEY out.age or tokenfleet \
             open out.age --identity KEY)"
        );
        let m = sink("out.age", &pass).message(2);
        assert_eq!(
            m,
            "sealed 2 token(s) into out.age (open with: age -d out.age or tokenfleet open \
             out.age; both ask for the passphrase)"
        );
        assert!(!m.contains("-i KEY") && !m.contains("--identity"), "{m}");
        let m = sink("-", &pass).message(1);
        assert!(m.starts_with("sealed 1 token(s) to standard output"), "{m}");
        assert!(m.contains("age -d FILE"), "{m}");
    }

    /// The message a failed handoff prints (after "the handoff file could not be written: ")
    /// names the file and the OS error once each.
    #[test]
    fn a_failed_write_says_its_cause_once() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("gone").join("out.age");
        let id = age::x25519::Identity::generate();
        let sink = AgeHandoff::new(
            path.clone(),
            &Recipients::keys(vec![id.to_public()]),
            false,
            HandoffFormat::Csv,
            false,
        );
        let minted = Minted {
            host: "web1".into(),
            account: "alice".into(),
            token: NewToken {
                name: "ci".into(),
                token: Secret::new("JPQNSRU0DH448UJLGXH7KVJECC5QN9N9"),
                create_time: 1_700_000_000,
                expires_at: None,
            },
            url: "https://web1:2083".into(),
        };
        let e = sink.deliver(&vec![minted]).unwrap_err().to_string();
        assert_eq!(
            e,
            format!("{}: No such file or directory (os error 2)", path.display())
        );
    }
}
