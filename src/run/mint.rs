//! The work that mints a secret: create, rotate (create → seal → verify → revoke the old), and
//! the reconciliation of a create whose outcome was never seen. Every step is journaled before
//! the next one, so a crash anywhere leaves a journal that `resume` can finish from.

use super::steps::Ctx;
use super::*;

impl Runner<'_> {
    /// Create the target's token. Returns the status and, when a secret was minted and made
    /// durable, the new token. With `reconcile` (resume of a create whose outcome was never
    /// seen), list first and revoke an orphan of this name before creating.
    pub(super) fn create(
        &self,
        cx: &Ctx<'_>,
        reconcile: bool,
    ) -> Result<(Status, Option<NewToken>), Failure> {
        let name = cx.name.ok_or_else(|| Failure::plain("no token name"))?;
        if self.opts.dry_run {
            let tokens = self
                .with_retries(&cx.attempts, || cx.backend.list_tokens(cx.owner))
                .map_err(|e| Failure::api("list", e))?;
            let exists = tokens.iter().any(|t| t.name == name);
            return Ok((
                if exists && !self.opts.replace_existing {
                    Status::Exists
                } else {
                    Status::Created
                },
                None,
            ));
        }
        if reconcile && !self.revoke_orphan(cx, name)? {
            let _ = self.ledger.exists(cx.host(), cx.account, name);
            return Ok((Status::Exists, None));
        }
        let mut tries = 0u32;
        let mut replaced = false;
        let mut ahead = self.intent_journaled_ahead(cx.host(), cx.account);
        loop {
            // Journaled ahead: already durable with the batch this target was claimed in.
            if !std::mem::take(&mut ahead) {
                self.journal_intent(cx, name, "create")?;
            }
            cx.attempts.set(cx.attempts.get() + 1);
            let err = match cx
                .backend
                .create_token(cx.owner, name, self.plan.expires_at)
            {
                Ok(token) => return self.seal_new(cx, token),
                Err(e) => e,
            };
            match err {
                ApiError::Conflict(msg) => {
                    if self.opts.replace_existing && !replaced {
                        replaced = true;
                        self.replace(cx, name)?;
                        continue;
                    }
                    return self.name_taken(cx, name, &msg);
                }
                e if e.outcome_unknown() && self.tries_left(tries) => {
                    // The server may have created the token and we never saw its secret. List
                    // first: an orphan of this name is revoked, then created again; a token
                    // older than the run is someone's, and the target is `exists`.
                    tries += 1;
                    self.backoff(tries - 1);
                    if !self.revoke_orphan(cx, name)? {
                        let _ = self.ledger.exists(cx.host(), cx.account, name);
                        return Ok((Status::Exists, None));
                    }
                }
                e if self.may_retry(&e, tries) => {
                    tries += 1;
                    self.backoff(tries - 1);
                }
                e => {
                    let _ =
                        self.ledger
                            .failed(cx.host(), cx.account, name, "create", &e.to_string());
                    return Err(Failure::api("create", e));
                }
            }
        }
    }

    fn journal_intent(&self, cx: &Ctx<'_>, name: &str, action: &str) -> Result<(), Failure> {
        self.ledger
            .intent(cx.host(), cx.account, name, action)
            .map_err(|e| {
                Failure::step(
                    "journal",
                    format!("cannot write the journal: {e}"),
                    "journal write failed",
                )
            })
    }

    /// A secret was just shown: journal it (sealed) and keep it for the handoff.
    fn seal_new(
        &self,
        cx: &Ctx<'_>,
        token: NewToken,
    ) -> Result<(Status, Option<NewToken>), Failure> {
        let minted = Minted {
            host: cx.host().to_string(),
            account: cx.account.to_string(),
            url: cx.backend.url(cx.owner),
            token,
        };
        let durable = self.ledger.created(&minted);
        let token = minted.token.clone();
        self.out.lock().unwrap().minted.push(minted);
        if let Err(e) = durable {
            return Err(Failure::step(
                "seal",
                format!(
                    "created, but the journal could not record it: {e}; the secret is kept for the handoff"
                ),
                "journal write failed",
            ));
        }
        Ok((Status::Created, Some(token)))
    }

    /// `--replace-existing`: revoke the same-named token so the create can be sent again.
    fn replace(&self, cx: &Ctx<'_>, name: &str) -> Result<(), Failure> {
        let names = [name.to_string()];
        self.with_retries(&cx.attempts, || cx.backend.revoke_tokens(cx.owner, &names))
            .map_err(|e| Failure::api("revoke", e))?;
        let _ = self.ledger.revoked(cx.host(), cx.account, name, &names);
        Ok(())
    }

    /// The name is taken by a token this run did not make: `exists` for a create, a failure for
    /// a rotate (it needs a new name). Journaled either way, so that resume knows the name was
    /// taken before this run (never an orphan of ours to revoke).
    fn name_taken(
        &self,
        cx: &Ctx<'_>,
        name: &str,
        msg: &str,
    ) -> Result<(Status, Option<NewToken>), Failure> {
        let _ = self.ledger.exists(cx.host(), cx.account, name);
        if self.plan.op() == Operation::Rotate {
            return Err(Failure::step(
                "create",
                format!(
                    "{msg}; rotate needs a new name (use {{date}} or {{run}} in --name, or --replace-existing)"
                ),
                "token name already exists",
            ));
        }
        Ok((Status::Exists, None))
    }

    pub(super) fn rotate(
        &self,
        cx: &Ctx<'_>,
        pattern: &glob::Pattern,
        reconcile: bool,
    ) -> Result<Status, Failure> {
        let name = cx.name.unwrap_or_default();
        if self.opts.dry_run {
            let tokens = self
                .with_retries(&cx.attempts, || cx.backend.list_tokens(cx.owner))
                .map_err(|e| Failure::api("list", e))?;
            return Ok(if tokens.iter().any(|t| t.name == name) {
                Status::Exists
            } else {
                Status::Rotated
            });
        }
        let (status, token) = self.create(cx, reconcile)?;
        let Some(token) = token else {
            return Ok(status);
        };
        self.finish_rotate(cx, pattern, &token, false)
    }

    /// The rotation after the new token is sealed: verify it (unless done already), then revoke
    /// the old tokens matching `--revoke`, never the new one.
    pub(super) fn finish_rotate(
        &self,
        cx: &Ctx<'_>,
        pattern: &glob::Pattern,
        token: &NewToken,
        verified: bool,
    ) -> Result<Status, Failure> {
        let name = cx.name.unwrap_or_default();
        if self.opts.verify && !verified {
            self.verify(cx, name, token)?;
        }
        let after = self.owner_after_rotation(cx, &token.token, verified);
        let tokens = self
            .with_retries(&cx.attempts, || cx.backend.list_tokens(after))
            .map_err(|e| Failure::step_api("revoke", "listing the old tokens", e))?;
        let old: Vec<String> = tokens
            .into_iter()
            .map(|t| t.name)
            .filter(|n| n != name && pattern.matches(n))
            .collect();
        if !old.is_empty()
            && let Err(e) =
                self.with_retries(&cx.attempts, || cx.backend.revoke_tokens(after, &old))
        {
            let _ = self
                .ledger
                .failed(cx.host(), cx.account, name, "revoke", &e.to_string());
            return Err(Failure::step_api("revoke", "revoking the old tokens", e));
        }
        // Recorded even when nothing matched: the journal's proof that this rotation finished.
        let _ = self.ledger.revoked(cx.host(), cx.account, name, &old);
        Ok(Status::Rotated)
    }

    /// Verify the new token with a real call that uses only it.
    fn verify(&self, cx: &Ctx<'_>, name: &str, token: &NewToken) -> Result<(), Failure> {
        cx.attempts.set(cx.attempts.get() + 1);
        if let Err(e) = cx.backend.verify(cx.owner, &token.token) {
            let _ = self
                .ledger
                .failed(cx.host(), cx.account, name, "verify", &e.to_string());
            // A refused new token says nothing about the host's credential: do not stop the host.
            return Err(Failure {
                status: Status::Failed,
                message: format!("verify: the new token did not work ({e}); old tokens left alive"),
                cause: format!("new token failed verification: {}", e.cause()),
                step: Some("verify".into()),
                auth_refused: false,
                silent: false,
            });
        }
        let _ = self.ledger.verified(cx.host(), cx.account, name);
        Ok(())
    }

    /// Who makes the calls after the new token is in place. With a token credential of the
    /// account's own (or of `whm_user` for WHM tokens, once verified), continue with the new
    /// token: rotating the credential tokenfleet itself uses must not depend on the old one
    /// surviving.
    fn owner_after_rotation<'a>(
        &self,
        cx: &Ctx<'a>,
        new: &'a crate::secret::Secret,
        verified: bool,
    ) -> Owner<'a> {
        if cx.hp.host.auth != AuthKind::Token {
            return cx.owner;
        }
        match cx.owner {
            // A backend that acts for the account with the host's credential ignores this.
            Owner::Account { user, .. } => Owner::Account {
                user,
                credential: Some(Cred::token(new)),
            },
            Owner::WhmUser { .. } if self.opts.verify || verified => Owner::WhmUser {
                credential: Some(Cred::token(new)),
            },
            other => other,
        }
    }

    /// Whether the server says `token` was created well before this run started.
    fn older_than_run(&self, token: &TokenInfo) -> bool {
        token
            .create_time
            .is_some_and(|t| t < self.opts.run_started - CLOCK_SKEW)
    }

    /// A create whose outcome was never seen (its answer lost mid-run, or a resume after a
    /// crash): a token of this name created since the run started was made by that create, and
    /// its secret was never received. Revoke it (recorded). Returns false when the name belongs
    /// to a token older than the run: nothing is revoked and the target is `exists`.
    fn revoke_orphan(&self, cx: &Ctx<'_>, name: &str) -> Result<bool, Failure> {
        let (host, account) = (cx.host(), cx.account);
        let tokens = match self.with_retries(&cx.attempts, || cx.backend.list_tokens(cx.owner)) {
            Ok(t) => t,
            Err(e) => {
                let _ = self
                    .ledger
                    .failed(host, account, name, "reconcile", &e.to_string());
                return Err(Failure::api("reconcile (list)", e));
            }
        };
        let Some(found) = tokens.iter().find(|t| t.name == name) else {
            return Ok(true);
        };
        if self.older_than_run(found) {
            return Ok(false);
        }
        let orphan = [name.to_string()];
        self.journal_intent(cx, name, "revoke")?;
        if let Err(e) =
            self.with_retries(&cx.attempts, || cx.backend.revoke_tokens(cx.owner, &orphan))
        {
            let _ = self
                .ledger
                .failed(host, account, name, "reconcile", &e.to_string());
            return Err(Failure::api("reconcile (revoke orphan)", e));
        }
        let _ = self.ledger.revoked(host, account, name, &orphan);
        self.observer.event(&Event::Warning(format!(
            "{host} {account}: revoked orphan token {name} (created, but its secret was never received); creating it again"
        )));
        Ok(true)
    }
}
