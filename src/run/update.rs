//! `update`: WHM tokens changed in place (`api_token_update`), keeping their secrets: a new
//! expiry, new ACLs, a new allow-list. It mints nothing, so nothing is journaled; an update is
//! safe to send again (it sets values, it adds nothing), so it is retried as a revoke is.
//!
//! The credential the run logs in with is never narrowed unasked: a change that could take
//! something away from it (ACLs, an allow-list, a sooner expiry) skips it with a note unless
//! `--include-own-credential`, since every later call of every run would be refused. Extending
//! its expiry takes nothing away, and is done.

use super::steps::Ctx;
use super::*;
use crate::backend::TokenInfo;
use crate::plan::TokenChange;

const FLAG: &str = "--include-own-credential";

impl Runner<'_> {
    /// One `update` target (a host's `whm_user`): list, choose the matching tokens (narrowed by
    /// `--expiring-within`), keep the own credential out when the change would narrow it, then
    /// one `api_token_update` per token.
    pub(super) fn update(
        &self,
        cx: &Ctx<'_>,
        pattern: &glob::Pattern,
        change: &TokenChange,
    ) -> Result<Status, Failure> {
        let tokens = self
            .with_retries(&cx.attempts, || cx.backend.list_tokens(cx.owner))
            .map_err(|e| Failure::api("list", e))?;
        let mut chosen: Vec<&TokenInfo> = tokens
            .iter()
            .filter(|t| pattern.matches(&t.name))
            .filter(|t| self.plan.expiring.as_ref().is_none_or(|e| e.holds(t)))
            .collect();
        chosen.sort_by(|a, b| a.name.cmp(&b.name));
        if chosen.is_empty() {
            if let Some(e) = &self.plan.expiring {
                *cx.note.borrow_mut() = Some(e.none_note(pattern.as_str()));
            }
            return Ok(Status::Unchanged);
        }
        if chosen.iter().any(|t| change.narrows(t)) {
            self.spare_own_credential(cx, &mut chosen, change)?;
        }
        if chosen.is_empty() {
            return Ok(Status::Unchanged);
        }
        let described = |t: &TokenInfo| {
            RevokedToken::from_listing(&t.name, t.create_time, change.expiry_after(t))
        };
        if self.opts.dry_run {
            *cx.updated.borrow_mut() = chosen.iter().map(|t| described(t)).collect();
            return Ok(Status::Updated);
        }
        for t in chosen {
            if let Err(e) = self.with_retries(&cx.attempts, || {
                cx.backend.update_token(cx.owner, &t.name, change)
            }) {
                let mut f = Failure::api("update", e);
                f.message = format!("{} (token {})", f.message, t.name);
                return Err(f);
            }
            // Named only once changed: a failed update must not read as done.
            cx.updated.borrow_mut().push(described(t));
        }
        Ok(Status::Updated)
    }

    /// Take the token the run logs in with (WHM `api_token_get_details`) out of `chosen` when
    /// `change` would narrow it, unless `--include-own-credential`; the note says which.
    fn spare_own_credential(
        &self,
        cx: &Ctx<'_>,
        chosen: &mut Vec<&TokenInfo>,
        change: &TokenChange,
    ) -> Result<(), Failure> {
        let own = self
            .with_retries(&cx.attempts, || cx.backend.credential_token())
            .map_err(|e| {
                let mut f = Failure::api("update (which token is the credential?)", e);
                if !f.stop_host {
                    f.message = format!(
                        "{}; nothing was changed: tokenfleet could not tell whether the credential it logs in with is among the tokens (pass {FLAG} to change them anyway)",
                        f.message
                    );
                }
                f
            })?;
        let Some(own) = own else {
            return Ok(());
        };
        let Some(t) = chosen.iter().find(|t| t.name == own) else {
            return Ok(());
        };
        if !change.narrows(t) {
            return Ok(());
        }
        if self.opts.include_own {
            *cx.note.borrow_mut() = Some(format!(
                "{own} is the credential this run logs in with, changed as asked ({FLAG}): check that this host still accepts it from here"
            ));
        } else {
            chosen.retain(|t| t.name != own);
            *cx.note.borrow_mut() = Some(format!(
                "kept {own} as it is: it is the credential this run logs in with, and this change could narrow it ({FLAG} changes it too; extending its expiry alone is done)"
            ));
        }
        Ok(())
    }
}
