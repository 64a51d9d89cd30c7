//! The work that mints a secret: create, rotate (create → seal → verify → revoke the old), and
//! the reconciliation of a create whose outcome was never seen. Every step is journaled before
//! the next one, so a crash anywhere leaves a journal that `resume` can finish from.
//!
//! Ownership is proven, never guessed: before its first create a target lists its tokens, and
//! the create intent is journaled only once that listing showed the name absent. A token of the
//! name found after an unanswered create is therefore this run's (the journal lock keeps other
//! runs of this journal out), and only such a token is ever revoked as an orphan. No clock and
//! no timestamp enters the decision. A journal that cannot be written stops all minting: a
//! secret the journal cannot hold is revoked at once, or named as an orphan.

use super::steps::Ctx;
use super::*;

/// What the summary says of a token that a create of this run may have left, unchecked.
pub(super) fn unconfirmed_token(name: &str) -> String {
    format!(
        "token {name} may exist with nobody holding it (this run's create was never confirmed); `tokenfleet resume` lists and revokes it"
    )
}

/// Whether a create that failed this way may still have made the token: everything except a
/// refusal that happens before the server does anything (taken name, refused credential, a
/// request never sent, a 4xx). A body over the cap, an odd-shaped token or an inner error after
/// the save all leave the token possibly alive: list before giving up.
fn may_have_minted(e: &ApiError) -> bool {
    match e {
        ApiError::Conflict(_)
        | ApiError::NoCredential(_)
        | ApiError::Auth { .. }
        | ApiError::RefusedAfter { .. }
        | ApiError::Withheld(_)
        | ApiError::HostKey { .. }
        | ApiError::LoginRefused(_) => false,
        ApiError::Http { status } => !(400..500).contains(status),
        ApiError::Transport(t) => t.maybe_sent(),
        ApiError::Rejected(_) | ApiError::Protocol(_) => true,
    }
}

impl Runner<'_> {
    /// Create the target's token. Returns the status and, when a secret was minted and made
    /// durable, the new token. `reconcile` is `Some(proven)` for a resumed target whose create
    /// may have been sent before the interruption (see [`Prior::Reconcile`]).
    pub(super) fn create(
        &self,
        cx: &Ctx<'_>,
        reconcile: Option<bool>,
    ) -> Result<(Status, Option<NewToken>), Failure> {
        let name = cx.name.ok_or_else(|| Failure::plain("no token name"))?;
        // What exists before anything is sent: the proof of ownership for everything after.
        let present = match self.name_listed(cx, name, "list") {
            Ok(present) => present,
            // A resumed create may have left a token nobody holds: say so, not just "failed".
            Err(mut f) if reconcile.is_some() => {
                f.attention = Some(unconfirmed_token(name));
                return Err(f);
            }
            Err(f) => return Err(f),
        };
        if reconcile.is_none() && !self.expiring_here(cx, name) {
            return Ok((Status::Unchanged, None));
        }
        self.create_listed(cx, name, reconcile, present, None)
    }

    /// `rotate --expiring-within`: whether the target holds a token matching `--revoke` (not
    /// the new name) that expires by the deadline, by the listing just made; if not, the note
    /// says so and the target is left `unchanged`. True without the flag.
    fn expiring_here(&self, cx: &Ctx<'_>, name: &str) -> bool {
        let (Some(expiring), Work::Rotate { revoke, .. }) = (&self.plan.expiring, &self.plan.work)
        else {
            return true;
        };
        let listing = cx.listing.borrow();
        let due = listing
            .iter()
            .any(|t| t.name != name && revoke.matches(&t.name) && expiring.holds(t));
        if !due {
            *cx.note.borrow_mut() = Some(expiring.none_note(revoke.as_str()));
        }
        due
    }

    /// [`Runner::create`] once the listing is in `cx.listing` and says whether `name` is
    /// `present`. `first`: the answer of a first create already sent for this target (its
    /// intent journaled and its request counted), as a batch sends it; it is judged exactly as
    /// the loop judges its own answers (a lost one is listed, then settled).
    pub(super) fn create_listed(
        &self,
        cx: &Ctx<'_>,
        name: &str,
        reconcile: Option<bool>,
        mut present: bool,
        mut first: Option<Result<NewToken, ApiError>>,
    ) -> Result<(Status, Option<NewToken>), Failure> {
        if self.opts.dry_run {
            let status = if present && !self.opts.replace_existing {
                Status::Exists
            } else {
                if present {
                    // `--replace-existing` would revoke the same-named token first.
                    let listing = cx.listing.borrow();
                    *cx.revoked.borrow_mut() = steps::named_tokens(&listing, &[name.to_string()]);
                }
                Status::Created
            };
            return Ok((status, None));
        }
        if let Some(proven) = reconcile
            && present
        {
            if !proven {
                return Err(self.unproven(cx, name));
            }
            self.revoke_orphan(cx, name)?;
            present = false;
        }
        let mut replaced = false;
        if present {
            if !self.opts.replace_existing {
                return self.name_taken(cx, name, "a token of this name already exists");
            }
            replaced = true;
            self.replace(cx, name)?;
        }
        let mut tries = 0u32;
        // A create of this run whose outcome was never seen (in this loop, or before the
        // interruption a resume continues): it may still land after the listing that followed
        // it, so a later "name taken" is this run's own token.
        let mut unconfirmed = reconcile == Some(true);
        loop {
            let created = match first.take() {
                Some(answer) => answer,
                None => {
                    self.journal_intent(cx, name, "create")?;
                    cx.attempts.bump();
                    let created = cx.backend.create_token_with(
                        cx.owner,
                        name,
                        self.plan.expires_at,
                        &self.plan.policy,
                    );
                    self.saw(&cx.attempts, &created);
                    created
                }
            };
            let err = match created {
                Ok(token) => return self.seal_new(cx, token),
                Err(e) => e,
            };
            match err {
                // A create of ours that landed late: the listing proved the name absent and the
                // journal lock keeps other runs of this journal out, so the token is ours.
                ApiError::Conflict(_) if unconfirmed => {
                    self.revoke_orphan(cx, name)?;
                    if self.tries_left(&cx.attempts, tries) {
                        tries += 1;
                        self.backoff(tries - 1);
                        continue;
                    }
                    let why = "a create whose answer was lost landed late; its token was revoked";
                    let _ = self
                        .ledger
                        .failed(cx.host(), cx.account, name, "create", why);
                    return Err(Failure::step(
                        "create",
                        format!("create: {why}"),
                        "create outcome unknown",
                    ));
                }
                // Perhaps the create sent before the interruption, landing late; perhaps not.
                ApiError::Conflict(_) if reconcile == Some(false) => {
                    return Err(self.unproven(cx, name));
                }
                // Someone made the name between our listing and our create: not ours.
                ApiError::Conflict(msg) => {
                    if self.opts.replace_existing && !replaced {
                        replaced = true;
                        self.replace(cx, name)?;
                        continue;
                    }
                    return self.name_taken(cx, name, &msg);
                }
                e if may_have_minted(&e) => {
                    unconfirmed = true;
                    // The server may have made the token and we never saw its secret. The
                    // listing before proved the name absent, so a token of the name now is
                    // ours: revoke it, then try again or give up with nothing left behind.
                    let found = match self.name_listed(cx, name, "reconcile") {
                        Ok(found) => found,
                        Err(listing) => return Err(self.maybe_orphan(cx, name, &e, listing)),
                    };
                    if found {
                        self.revoke_orphan(cx, name)?;
                    }
                    if e.outcome_unknown() && self.tries_left(&cx.attempts, tries) {
                        tries += 1;
                        self.backoff(tries - 1);
                        continue;
                    }
                    let _ =
                        self.ledger
                            .failed(cx.host(), cx.account, name, "create", &e.to_string());
                    return Err(Failure::api("create", e));
                }
                e if self.may_retry(&cx.attempts, &e, tries) => {
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

    /// List the target's tokens: is `name` among them?
    fn name_listed(&self, cx: &Ctx<'_>, name: &str, step: &str) -> Result<bool, Failure> {
        match self.with_retries(&cx.attempts, || cx.backend.list_tokens(cx.owner)) {
            Ok(tokens) => {
                let present = tokens.iter().any(|t| t.name == name);
                *cx.listing.borrow_mut() = tokens;
                Ok(present)
            }
            Err(e) => {
                if step != "list" {
                    let _ = self
                        .ledger
                        .failed(cx.host(), cx.account, name, step, &e.to_string());
                }
                Err(Failure::api(step, e))
            }
        }
    }

    /// A resumed create whose proof of ownership is gone, and a token of its name exists: keep
    /// it, say so, and never count it as done.
    fn unproven(&self, cx: &Ctx<'_>, name: &str) -> Failure {
        let _ = self.ledger.failed(
            cx.host(),
            cx.account,
            name,
            "reconcile",
            "a token of this name exists and the journal cannot prove this run made it; kept",
        );
        Failure {
            status: Status::Unproven,
            message: format!(
                "a token named {name} exists, and the journal cannot prove this run made it (the record of its listing is missing or damaged): it was kept"
            ),
            cause: "owner of an existing token unproven".into(),
            step: Some("reconcile".into()),
            stop_host: false,
            fresh_refusal: false,
            silent: false,
            attention: Some(format!(
                "token {name} may have been minted by this run and nobody holds its secret; if nobody uses it, revoke just that one: `tokenfleet revoke -i INVENTORY -l {host} --accounts '{account}' --name '{name}'`",
                host = cx.host(),
                account = cx.account
            )),
        }
    }

    /// A create whose outcome is unknown, and the listing that would tell failed too: the token
    /// may be live with nobody holding it. The journal's intent still proves whose it would be,
    /// so `resume` can finish the check.
    fn maybe_orphan(
        &self,
        cx: &Ctx<'_>,
        name: &str,
        create: &ApiError,
        listing: Failure,
    ) -> Failure {
        let _ = self
            .ledger
            .failed(cx.host(), cx.account, name, "create", &create.to_string());
        Failure {
            status: Status::Failed,
            message: format!(
                "create: {create}; the listing that would show whether the token was made failed too ({}): a token named {name} may be live with nobody holding its secret",
                listing.message
            ),
            cause: "create outcome unknown".into(),
            step: Some("create".into()),
            stop_host: listing.stop_host,
            fresh_refusal: listing.fresh_refusal,
            silent: listing.silent,
            attention: Some(unconfirmed_token(name)),
        }
    }

    pub(super) fn journal_intent(
        &self,
        cx: &Ctx<'_>,
        name: &str,
        action: &str,
    ) -> Result<(), Failure> {
        self.ledger
            .intent(cx.host(), cx.account, name, action)
            .map_err(|e| {
                self.halt(format!("the journal could not be written ({e})"));
                Failure::step(
                    "journal",
                    format!("cannot write the journal: {e}; nothing more was sent for this target"),
                    "journal write failed",
                )
            })
    }

    /// Stop minting for the rest of the run (the first journal error wins).
    fn halt(&self, why: String) {
        let mut halted = self.halted.lock().unwrap();
        if halted.is_none() {
            *halted = Some(why);
        }
    }

    /// A secret was just shown: journal it (sealed) and keep it for the handoff. When the
    /// journal cannot hold it, nothing more is minted and the token is revoked at once: a
    /// secret that is not durable must not stay live. If the revoke fails too, the target says
    /// so (an orphan, for `resume`, whose durable intent proves it is this run's).
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
        let Err(e) = self.ledger.created(&minted) else {
            let token = minted.token.clone();
            // A create's secret goes to the store now; a rotation's once it is verified.
            let kept = match (&self.opts.keep, self.plan.op()) {
                (Some(k), Operation::Create) => self.keep_in_store(k, cx.attempts.lane(), &minted),
                _ => Ok(()),
            };
            self.out.lock().unwrap().minted.push(minted);
            if let Err(e) = kept {
                return Err(Failure::step(
                    "store",
                    format!(
                        "created and sealed in the journal, but not in the store: {}",
                        e.message
                    ),
                    &e.cause,
                ));
            }
            return Ok((Status::Created, Some(token)));
        };
        self.halt(format!("the journal could not be written ({e})"));
        let name = minted.token.name.clone();
        match self.revoke_one(cx, &name) {
            Ok(()) => Err(Failure::step(
                "seal",
                format!(
                    "created, but the journal could not record it ({e}); the token was revoked, so no secret is lost"
                ),
                "journal write failed",
            )),
            Err(revoke) => {
                // Not durable anywhere yet: the handoff is its last chance.
                self.out.lock().unwrap().minted.push(minted);
                Err(Failure {
                    status: Status::Failed,
                    message: format!(
                        "created, but the journal could not record it ({e}), and revoking it failed ({revoke}): the token is live; its secret goes to the handoff if that can be written"
                    ),
                    cause: "journal write failed".into(),
                    step: Some("seal".into()),
                    stop_host: false,
                    fresh_refusal: false,
                    silent: false,
                    attention: Some(format!(
                        "token {name} is live and only the handoff (if written) holds it; if the handoff failed, `tokenfleet resume` revokes it"
                    )),
                })
            }
        }
    }

    /// `--replace-existing`: revoke the same-named token so the create can be sent again, unless
    /// it is (or may be) the credential this run logs in with: that one is never replaced.
    fn replace(&self, cx: &Ctx<'_>, name: &str) -> Result<(), Failure> {
        let mut names = vec![name.to_string()];
        self.keep_own_credential(cx, &mut names, false)?;
        if names.is_empty() {
            cx.note.take();
            return Err(Failure::step(
                "replace",
                format!(
                    "the token named {name} is the credential this run logs in with: --replace-existing never revokes it (choose another --name)"
                ),
                "would revoke the credential in use",
            ));
        }
        self.revoke_one(cx, name)
            .map_err(|e| Failure::api("revoke", e))?;
        let _ = self.ledger.revoked(cx.host(), cx.account, name, &names);
        let listing = cx.listing.borrow();
        cx.revoked
            .borrow_mut()
            .extend(steps::named_tokens(&listing, &names));
        Ok(())
    }

    /// Revoke the target's token of `name` (retried: a revoke is safe to repeat).
    fn revoke_one(&self, cx: &Ctx<'_>, name: &str) -> Result<(), ApiError> {
        let names = [name.to_string()];
        self.with_retries(&cx.attempts, || cx.backend.revoke_tokens(cx.owner, &names))
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
        reconcile: Option<bool>,
    ) -> Result<Status, Failure> {
        let (status, token) = self.create(cx, reconcile)?;
        if self.opts.dry_run {
            // The create's listing said whether the name is free (or would be replaced), and
            // which old tokens the revoke would take once the new one is verified.
            if matches!(status, Status::Exists | Status::Unchanged) {
                return Ok(status);
            }
            let name = cx.name.unwrap_or_default();
            let listing = cx.listing.borrow();
            let old: Vec<String> = listing
                .iter()
                .map(|t| t.name.clone())
                .filter(|n| n != name && pattern.matches(n))
                .collect();
            cx.revoked
                .borrow_mut()
                .extend(steps::named_tokens(&listing, &old));
            return Ok(Status::Rotated);
        }
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
        // The store holds the new token before any old one is revoked, so whoever reads it there
        // never holds only a revoked token.
        if let Some(k) = &self.opts.keep {
            let minted = Minted {
                host: cx.host().to_string(),
                account: cx.account.to_string(),
                url: cx.backend.url(cx.owner),
                token: token.clone(),
            };
            if let Err(e) = self.keep_in_store(k, cx.attempts.lane(), &minted) {
                let why = format!(
                    "the new token is sealed in the journal but not in the store ({}); the old tokens were left alive",
                    e.message
                );
                let _ = self
                    .ledger
                    .failed(cx.host(), cx.account, name, "store", &why);
                return Err(Failure::step("store", why, &e.cause));
            }
        }
        let after = self.owner_after_rotation(cx, &token.token, verified);
        let tokens = self
            .with_retries(&cx.attempts, || cx.backend.list_tokens(after))
            .map_err(|e| Failure::step_api("revoke", "listing the old tokens", e))?;
        // Never revoke the old tokens unless the new one is there (with --no-verify, or on a
        // resume, nothing else has shown that it is): an account is never left with neither.
        if !tokens.iter().any(|t| t.name == name) {
            let why = format!(
                "the new token {name} is not on the server; the old tokens were left alive"
            );
            let _ = self
                .ledger
                .failed(cx.host(), cx.account, name, "revoke", &why);
            return Err(Failure::step("revoke", why, "new token missing"));
        }
        let old: Vec<String> = tokens
            .iter()
            .map(|t| t.name.clone())
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
        cx.revoked
            .borrow_mut()
            .extend(steps::named_tokens(&tokens, &old));
        Ok(Status::Rotated)
    }

    /// Verify the new token with a real call that uses only it.
    fn verify(&self, cx: &Ctx<'_>, name: &str, token: &NewToken) -> Result<(), Failure> {
        cx.attempts.bump();
        let verified = cx.backend.verify(cx.owner, name, &token.token);
        self.saw(&cx.attempts, &verified);
        if let Err(e) = verified {
            let _ = self
                .ledger
                .failed(cx.host(), cx.account, name, "verify", &e.to_string());
            // A refused new token says nothing of the host's credential, but it is a failed login
            // all the same (cPHulk counts per IP): the first one stops the host, so no other
            // rotation there creates a token that cannot be verified either.
            let refused = e.is_refusal();
            return Err(Failure {
                status: Status::Failed,
                message: if matches!(e, ApiError::Withheld(_)) {
                    format!(
                        "verify: not sent ({e}); old tokens left alive, the new one is sealed in the handoff"
                    )
                } else if refused {
                    format!(
                        "verify: the new token was refused ({e}); old tokens left alive, the new one is sealed in the handoff; no more rotations on this host (each verify would be a failed login: cPHulk). If this port refuses token logins, rotate with --no-verify"
                    )
                } else {
                    format!("verify: the new token did not work ({e}); old tokens left alive")
                },
                cause: if refused {
                    "new token refused at verify".into()
                } else {
                    format!("new token failed verification: {}", e.cause())
                },
                step: Some("verify".into()),
                stop_host: refused,
                fresh_refusal: e.refused_by_server(),
                silent: false,
                attention: None,
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

    /// Revoke a token of `name` that this run provably minted and whose secret it never
    /// received (journaled: intent, then the revoke). On failure the target names the orphan.
    fn revoke_orphan(&self, cx: &Ctx<'_>, name: &str) -> Result<(), Failure> {
        let (host, account) = (cx.host(), cx.account);
        // Sent even when its intent cannot be journaled (the run then halts): the create's
        // durable intent is the proof, and a revoke is safe to repeat.
        let _ = self.journal_intent(cx, name, "revoke");
        if let Err(e) = self.revoke_one(cx, name) {
            let _ = self
                .ledger
                .failed(host, account, name, "reconcile", &e.to_string());
            let mut f = Failure::api("reconcile (revoke orphan)", e);
            f.attention = Some(format!(
                "token {name} is live and nobody holds its secret (this run made it; its answer was lost); `tokenfleet resume` revokes it"
            ));
            return Err(f);
        }
        let _ = self
            .ledger
            .revoked(host, account, name, &[name.to_string()]);
        self.observer.event(&Event::Warning(format!(
            "{host} {account}: revoked orphan token {name} (this run created it, but its secret was never received)"
        )));
        Ok(())
    }
}
