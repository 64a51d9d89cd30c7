//! The age handoff file: one row per new token, sealed to the run's recipients, written 0600
//! through a temporary file that is fsynced and renamed (`seal::write_handoff_rows`).

use super::{Delivered, Sink, SinkError};
use crate::outcome::Minted;
use crate::seal::handoff::{HandoffFormat, RowRef, write_handoff_rows};
use crate::seal::{Output, Recipients, Sealer};
use std::path::PathBuf;

/// The handoff file of a run.
pub struct AgeHandoff {
    path: PathBuf,
    sealer: Sealer,
    armor: bool,
    format: HandoffFormat,
    /// Replace an existing file (`--force`, or resume's final handoff over a partial one).
    overwrite: bool,
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
        }
    }
}

impl AgeHandoff {
    /// The handoff file that `-o` and the sealing flags ask for.
    /// Where the file goes.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    pub fn for_output(output: &Output) -> AgeHandoff {
        let (armor, format, force) = output.handoff_options();
        AgeHandoff::new(
            output.path().to_path_buf(),
            output.recipients(),
            armor,
            format,
            force,
        )
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
    fn deliver(&self, minted: &[Minted]) -> Result<Option<Delivered>, SinkError> {
        if minted.is_empty() {
            return Ok(None);
        }
        write_handoff_rows(
            &self.path,
            minted.iter().map(row_ref),
            self.format,
            &self.sealer,
            self.armor,
            self.overwrite,
        )
        .map_err(|e| SinkError(crate::error::chain(&e)))?;
        let path = self.path.display();
        Ok(Some(Delivered {
            count: minted.len(),
            message: format!(
                "sealed {} new token(s) into {path} (open with: age -d -i KEY {path} or tokenfleet open {path} --identity KEY)",
                minted.len()
            ),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::NewToken;
    use crate::secret::Secret;

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
        let e = sink.deliver(&[minted]).unwrap_err().to_string();
        assert_eq!(
            e,
            format!("{}: No such file or directory (os error 2)", path.display())
        );
    }
}
