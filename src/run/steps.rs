//! The request half of a run: what one piece of work sends (discovery, check, list, revoke,
//! create, rotate), with retries, reconciliation of unknown outcomes, and the ledger records
//! each mutation needs before its next step.

use super::*;

impl Runner<'_> {
    pub(super) fn account_of<'t>(&self, hp: &'t HostPlan, t: &'t Target) -> &'t str {
        t.account.as_deref().unwrap_or(&hp.host.whm_user)
    }

    /// Do one piece of work and record its result.
    pub(super) fn perform(&self, i: usize, work: Work) -> FollowUp {
        let hp = &self.plan.hosts[i];
        let api = Api::new(&self.transports[i]);
        let started = Instant::now();
        match work {
            Work::Discover => self.discover(hp, &api, started),
            Work::CheckHost => {
                self.check_host(hp, &api, &self.transports[i], started);
                FollowUp::None
            }
            Work::Target(t) => {
                let account = self.account_of(hp, &t).to_string();
                let mut attempts = 0u32;
                let prior = if self.prior.is_empty() {
                    None
                } else {
                    self.prior.get(&(hp.host.name.clone(), account.clone()))
                };
                let verdict = match prior {
                    // Done before the interruption: nothing to send.
                    Some(Prior::Done(status)) => Ok(*status),
                    _ => self.target(
                        hp,
                        &api,
                        &self.transports[i],
                        &t,
                        &account,
                        prior,
                        &mut attempts,
                    ),
                };
                let (status, error, cause, step, follow) = match verdict {
                    Ok(status) => (status, None, None, None, FollowUp::None),
                    Err(f) => {
                        let follow = if f.auth_refused {
                            FollowUp::StopHost(f.cause.clone())
                        } else if f.silent {
                            FollowUp::Silent(f.cause.clone())
                        } else {
                            FollowUp::None
                        };
                        (f.status, Some(f.message), Some(f.cause), f.step, follow)
                    }
                };
                self.record(
                    i,
                    TargetResult {
                        host: hp.host.name.clone(),
                        account: Some(account),
                        token_name: t.token_name.clone(),
                        status,
                        error,
                        cause,
                        step,
                        attempts,
                        elapsed_ms: started.elapsed().as_millis() as u64,
                    },
                );
                follow
            }
        }
    }

    /// `listaccts`, then one target per eligible account.
    pub(super) fn discover(&self, hp: &HostPlan, api: &Api<'_>, started: Instant) -> FollowUp {
        let Some(cred) = hp.credential.as_ref() else {
            return self.host_failure(
                hp,
                "discovery needs the host's WHM credential",
                "no WHM credential",
                None,
                started,
            );
        };
        let mut attempts = 0;
        let accounts: Result<Vec<AccountInfo>, ApiError> = self.with_retries(&mut attempts, || {
            api.list_accounts(&hp.host.whm_user, cred, hp.host.auth)
        });
        let accounts = match accounts {
            Ok(a) => a,
            Err(e) => {
                let stop = matches!(e, ApiError::Auth { .. });
                let follow = self.host_failure(
                    hp,
                    &format!("listaccts: {e}"),
                    &e.cause(),
                    Some(&e),
                    started,
                );
                return if stop {
                    FollowUp::StopHost(e.cause())
                } else {
                    follow
                };
            }
        };
        let mut works = Vec::new();
        let mut sorted = accounts;
        sorted.sort_by(|a, b| a.user.cmp(&b.user));
        for acct in sorted {
            if !self.plan.wants_account(&acct.user) {
                continue;
            }
            if acct.suspended {
                let i = self.index_of(hp);
                self.record(
                    i,
                    TargetResult {
                        host: hp.host.name.clone(),
                        account: Some(acct.user.clone()),
                        token_name: None,
                        status: Status::Skipped,
                        // Skipped by policy, not by failure: no error, so the exit code stays 0.
                        error: None,
                        cause: Some("account suspended".into()),
                        step: None,
                        attempts: 0,
                        elapsed_ms: 0,
                    },
                );
                continue;
            }
            match self.plan.target_for(hp, &acct.user) {
                Ok(t) => works.push(Work::Target(t)),
                Err(msg) => {
                    let i = self.index_of(hp);
                    self.record(
                        i,
                        TargetResult {
                            host: hp.host.name.clone(),
                            account: Some(acct.user.clone()),
                            token_name: None,
                            status: Status::Failed,
                            error: Some(msg),
                            cause: Some("invalid token name".into()),
                            step: Some("plan".into()),
                            attempts: 0,
                            elapsed_ms: 0,
                        },
                    );
                }
            }
        }
        self.observer.event(&Event::Discovered {
            host: &hp.host.name,
            targets: works.len(),
        });
        FollowUp::Queue(works)
    }

    pub(super) fn index_of(&self, hp: &HostPlan) -> usize {
        self.plan
            .hosts
            .iter()
            .position(|h| std::ptr::eq(h, hp))
            .expect("host of this plan")
    }

    /// A failure that concerns the whole host, before any target (discovery).
    pub(super) fn host_failure(
        &self,
        hp: &HostPlan,
        message: &str,
        cause: &str,
        _e: Option<&ApiError>,
        started: Instant,
    ) -> FollowUp {
        let i = self.index_of(hp);
        self.record(
            i,
            TargetResult {
                host: hp.host.name.clone(),
                account: None,
                token_name: None,
                status: Status::Failed,
                error: Some(message.to_string()),
                cause: Some(cause.to_string()),
                step: Some("discover".into()),
                attempts: 1,
                elapsed_ms: started.elapsed().as_millis() as u64,
            },
        );
        FollowUp::None
    }

    pub(super) fn check_host(
        &self,
        hp: &HostPlan,
        api: &Api<'_>,
        transport: &HostTransport,
        started: Instant,
    ) {
        let url = format!(
            "https://{}:{}",
            url_host(&hp.host.address),
            hp.host.whm_port
        );
        let result = match hp.credential.as_ref() {
            Some(cred) => {
                let mut attempts = 0;
                self.with_retries(&mut attempts, || {
                    api.version(&hp.host.whm_user, cred, hp.host.auth)
                })
            }
            None => Err(ApiError::Protocol("no WHM credential to check".into())),
        };
        self.push_check(
            hp,
            &hp.host.whm_user,
            url,
            result,
            transport.peer_pin(),
            started,
        );
    }

    pub(super) fn push_check(
        &self,
        hp: &HostPlan,
        user: &str,
        url: String,
        result: Result<String, ApiError>,
        pin: Option<Pin>,
        started: Instant,
    ) {
        let i = self.index_of(hp);
        let (ok, detail) = match &result {
            Ok(v) => (true, v.clone()),
            Err(e) => (false, e.to_string()),
        };
        let pin = match &result {
            Err(ApiError::Transport(TransportError::PinMismatch { got, .. })) => Some(*got),
            _ => pin,
        };
        self.out.lock().unwrap().checks.push(CheckRow {
            host: hp.host.name.clone(),
            user: user.to_string(),
            url,
            ok,
            detail: detail.clone(),
            tls_pin: pin.map(|p| p.to_string()),
            elapsed_ms: started.elapsed().as_millis() as u64,
        });
        let (status, error, cause) = match result {
            Ok(_) => (Status::Unchanged, None, None),
            Err(e) => (Status::Failed, Some(detail), Some(e.cause())),
        };
        self.record(
            i,
            TargetResult {
                host: hp.host.name.clone(),
                account: Some(user.to_string()),
                token_name: None,
                status,
                error,
                cause,
                step: Some("check".into()),
                attempts: 1,
                elapsed_ms: started.elapsed().as_millis() as u64,
            },
        );
    }

    /// Call `f` until it succeeds, fails for good, or the retries run out. Only failures where
    /// nothing can have happened on the server are retried here (connect errors, 429, 5xx on
    /// reads); callers handle outcome-unknown mutations themselves.
    pub(super) fn with_retries<T>(
        &self,
        attempts: &mut u32,
        mut f: impl FnMut() -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let mut tries = 0;
        loop {
            *attempts += 1;
            match f() {
                Ok(v) => return Ok(v),
                Err(e)
                    if e.is_retryable()
                        && tries < self.opts.retries
                        && !self.stop.load(Ordering::SeqCst) =>
                {
                    self.backoff(tries);
                    tries += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    pub(super) fn backoff(&self, tries: u32) {
        let base = self.opts.backoff.saturating_mul(1 << tries.min(6));
        let jitter = base.mul_f64(fastrand::f64() * 0.5);
        std::thread::sleep(base + jitter);
    }

    /// One target of a create, rotate, revoke or list.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn target(
        &self,
        hp: &HostPlan,
        api: &Api<'_>,
        transport: &HostTransport,
        t: &Target,
        account: &str,
        prior: Option<&Prior>,
        attempts: &mut u32,
    ) -> Result<Status, Failure> {
        let caller = self.caller(hp, t)?;
        let reconcile = matches!(prior, Some(Prior::Reconcile));
        match self.plan.op {
            Operation::List => {
                let tokens = self
                    .with_retries(attempts, || api.list_tokens(&caller))
                    .map_err(|e| Failure::api("list", e))?;
                let mut out = self.out.lock().unwrap();
                for tok in tokens {
                    out.listings.push(ListingRow {
                        host: hp.host.name.clone(),
                        account: account.to_string(),
                        token_name: tok.name,
                        create_time: tok.create_time,
                        expires_at: tok.expires_at,
                    });
                }
                Ok(Status::Unchanged)
            }
            Operation::Check => {
                // api = "cpanel": check each account's own credential.
                let started = Instant::now();
                let result = self
                    .with_retries(attempts, || api.list_tokens(&caller))
                    .map(|tokens| format!("{} tokens", tokens.len()));
                let url = format!(
                    "https://{}:{}",
                    url_host(&hp.host.address),
                    hp.host.cpanel_port
                );
                let failure = result.as_ref().err().cloned();
                let ok = result.is_ok();
                let (detail, pin) = (
                    match &result {
                        Ok(v) => v.clone(),
                        Err(e) => e.to_string(),
                    },
                    transport.peer_pin(),
                );
                self.out.lock().unwrap().checks.push(CheckRow {
                    host: hp.host.name.clone(),
                    user: account.to_string(),
                    url,
                    ok,
                    detail,
                    tls_pin: pin.map(|p| p.to_string()),
                    elapsed_ms: started.elapsed().as_millis() as u64,
                });
                match failure {
                    None => Ok(Status::Unchanged),
                    Some(e) => Err(Failure::api("check", e)),
                }
            }
            Operation::Revoke => self.revoke(hp, api, &caller, account, attempts),
            Operation::Create => self
                .create(hp, api, &caller, t, account, reconcile, attempts)
                .map(|(status, _)| status),
            Operation::Rotate => match prior {
                Some(Prior::Created { minted, verified }) => {
                    let name = t.token_name.clone().unwrap_or_default();
                    self.finish_rotate(
                        hp,
                        api,
                        &caller,
                        account,
                        &name,
                        &minted.token,
                        *verified,
                        attempts,
                    )
                }
                _ => self.rotate(hp, api, &caller, t, account, reconcile, attempts),
            },
        }
    }

    pub(super) fn caller<'c>(
        &self,
        hp: &'c HostPlan,
        t: &'c Target,
    ) -> Result<Caller<'c>, Failure> {
        let host = &hp.host;
        if self.plan.scope == Scope::Whm {
            let cred = hp
                .credential
                .as_ref()
                .ok_or_else(|| Failure::plain("no WHM credential for this host"))?;
            return Ok(Caller::Whm {
                whm_user: &host.whm_user,
                credential: cred,
                auth: host.auth,
            });
        }
        let account = t.account.as_deref().unwrap_or(&host.whm_user);
        match host.api {
            ApiKind::Whm => {
                let cred = hp
                    .credential
                    .as_ref()
                    .ok_or_else(|| Failure::plain("no WHM credential for this host"))?;
                Ok(Caller::WhmFor {
                    whm_user: &host.whm_user,
                    credential: cred,
                    auth: host.auth,
                    account,
                })
            }
            ApiKind::Cpanel => {
                let cred = t
                    .credential
                    .as_ref()
                    .or(hp.credential.as_ref())
                    .ok_or_else(|| Failure::plain("no credential for this account"))?;
                Ok(Caller::Account {
                    user: account,
                    credential: cred,
                    auth: host.auth,
                })
            }
        }
    }

    pub(super) fn revoke(
        &self,
        hp: &HostPlan,
        api: &Api<'_>,
        caller: &Caller<'_>,
        account: &str,
        attempts: &mut u32,
    ) -> Result<Status, Failure> {
        let pattern = self
            .plan
            .revoke
            .as_ref()
            .ok_or_else(|| Failure::plain("no token name to revoke"))?;
        let tokens = self
            .with_retries(attempts, || api.list_tokens(caller))
            .map_err(|e| Failure::api("list", e))?;
        let names: Vec<String> = tokens
            .into_iter()
            .map(|t| t.name)
            .filter(|n| pattern.matches(n))
            .collect();
        if names.is_empty() {
            return Ok(Status::Unchanged);
        }
        if self.opts.dry_run {
            return Ok(Status::Revoked);
        }
        // Revoke is idempotent: re-sending after an unknown outcome is safe.
        self.with_retries(attempts, || api.revoke_tokens(caller, &names))
            .map_err(|e| Failure::api("revoke", e))?;
        let _ = self
            .ledger
            .revoked(&hp.host.name, account, pattern.as_str(), &names);
        Ok(Status::Revoked)
    }

    /// Create the target's token. Returns the status and, when a secret was minted and made
    /// durable, the new token. With `reconcile` (resume of a create whose outcome was never
    /// seen), list first and revoke an orphan of this name before creating.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn create(
        &self,
        hp: &HostPlan,
        api: &Api<'_>,
        caller: &Caller<'_>,
        t: &Target,
        account: &str,
        reconcile: bool,
        attempts: &mut u32,
    ) -> Result<(Status, Option<NewToken>), Failure> {
        let name = t
            .token_name
            .as_deref()
            .ok_or_else(|| Failure::plain("no token name"))?;
        let host = &hp.host.name;
        if self.opts.dry_run {
            let tokens = self
                .with_retries(attempts, || api.list_tokens(caller))
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
        if reconcile && !self.revoke_orphan(hp, api, caller, account, name, attempts)? {
            let _ = self.ledger.exists(host, account, name);
            return Ok((Status::Exists, None));
        }
        let mut tries = 0u32;
        let mut replaced = false;
        let mut ahead = self.intent_journaled_ahead(host, account);
        loop {
            if std::mem::take(&mut ahead) {
                // Already durable: journaled with the batch this target was claimed in.
            } else {
                self.ledger
                    .intent(host, account, name, "create")
                    .map_err(|e| {
                        Failure::step(
                            "journal",
                            format!("cannot write the journal: {e}"),
                            "journal write failed",
                        )
                    })?;
            }
            *attempts += 1;
            match api.create_token(caller, name, self.plan.expires_at) {
                Ok(token) => {
                    let minted = Minted {
                        host: host.clone(),
                        account: account.to_string(),
                        url: self.token_url(hp),
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
                    return Ok((Status::Created, Some(token)));
                }
                Err(ApiError::Conflict(msg)) => {
                    if self.opts.replace_existing && !replaced {
                        replaced = true;
                        self.with_retries(attempts, || {
                            api.revoke_tokens(caller, &[name.to_string()])
                        })
                        .map_err(|e| Failure::api("revoke", e))?;
                        let _ = self
                            .ledger
                            .revoked(host, account, name, &[name.to_string()]);
                        continue;
                    }
                    if self.plan.op == Operation::Rotate {
                        // Journaled, so that resume knows the name was taken before this run
                        // (never an orphan of ours to revoke).
                        let _ = self.ledger.exists(host, account, name);
                        return Err(Failure::step(
                            "create",
                            format!(
                                "{msg}; rotate needs a new name (use {{date}} or {{run}} in --name, or --replace-existing)"
                            ),
                            "token name already exists",
                        ));
                    }
                    let _ = self.ledger.exists(host, account, name);
                    return Ok((Status::Exists, None));
                }
                Err(e)
                    if e.outcome_unknown()
                        && tries < self.opts.retries
                        && !self.stop.load(Ordering::SeqCst) =>
                {
                    // The server may have created the token and we never saw its secret. List
                    // first: an orphan of this name is revoked, then created again; a token
                    // older than the run is someone's, and the target is `exists`.
                    tries += 1;
                    self.backoff(tries - 1);
                    if !self.revoke_orphan(hp, api, caller, account, name, attempts)? {
                        let _ = self.ledger.exists(host, account, name);
                        return Ok((Status::Exists, None));
                    }
                }
                Err(e)
                    if e.is_retryable()
                        && tries < self.opts.retries
                        && !self.stop.load(Ordering::SeqCst) =>
                {
                    tries += 1;
                    self.backoff(tries - 1);
                }
                Err(e) => {
                    let _ = self
                        .ledger
                        .failed(host, account, name, "create", &e.to_string());
                    return Err(Failure::api("create", e));
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn rotate(
        &self,
        hp: &HostPlan,
        api: &Api<'_>,
        caller: &Caller<'_>,
        t: &Target,
        account: &str,
        reconcile: bool,
        attempts: &mut u32,
    ) -> Result<Status, Failure> {
        let name = t.token_name.clone().unwrap_or_default();
        if self.plan.revoke.is_none() {
            return Err(Failure::plain("rotate needs --revoke"));
        }
        if self.opts.dry_run {
            let tokens = self
                .with_retries(attempts, || api.list_tokens(caller))
                .map_err(|e| Failure::api("list", e))?;
            return Ok(if tokens.iter().any(|t| t.name == name) {
                Status::Exists
            } else {
                Status::Rotated
            });
        }
        let (status, token) = self.create(hp, api, caller, t, account, reconcile, attempts)?;
        let Some(token) = token else {
            return Ok(status);
        };
        self.finish_rotate(hp, api, caller, account, &name, &token, false, attempts)
    }

    /// The rotation after the new token is sealed: verify it (unless done already), then revoke
    /// the old tokens matching `--revoke`, never the new one.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn finish_rotate(
        &self,
        hp: &HostPlan,
        api: &Api<'_>,
        caller: &Caller<'_>,
        account: &str,
        name: &str,
        token: &NewToken,
        verified: bool,
        attempts: &mut u32,
    ) -> Result<Status, Failure> {
        let pattern = self
            .plan
            .revoke
            .as_ref()
            .ok_or_else(|| Failure::plain("rotate needs --revoke"))?;
        let host = &hp.host;
        // Verify with a real call that uses only the new token.
        if self.opts.verify && !verified {
            *attempts += 1;
            let verified = match self.plan.scope {
                Scope::Whm => api
                    .version(&host.whm_user, &token.token, AuthKind::Token)
                    .map(|_| ()),
                Scope::Account => api
                    .list_tokens(&Caller::Account {
                        user: account,
                        credential: &token.token,
                        auth: AuthKind::Token,
                    })
                    .map(|_| ()),
            };
            if let Err(e) = verified {
                let _ = self
                    .ledger
                    .failed(&host.name, account, name, "verify", &e.to_string());
                // A refused new token says nothing about the host's credential: do not stop the host.
                return Err(Failure {
                    status: Status::Failed,
                    message: format!(
                        "verify: the new token did not work ({e}); old tokens left alive"
                    ),
                    cause: format!("new token failed verification: {}", e.cause()),
                    step: Some("verify".into()),
                    auth_refused: false,
                    silent: false,
                });
            }
            let _ = self.ledger.verified(&host.name, account, name);
        }
        // With the account's own token credential, continue with the new token: rotating the
        // credential tokenfleet itself uses must not depend on the old one surviving.
        let after = match *caller {
            Caller::Account {
                user,
                auth: AuthKind::Token,
                ..
            } => Caller::Account {
                user,
                credential: &token.token,
                auth: AuthKind::Token,
            },
            Caller::Whm {
                whm_user,
                auth: AuthKind::Token,
                ..
            } if self.opts.verify || verified => Caller::Whm {
                whm_user,
                credential: &token.token,
                auth: AuthKind::Token,
            },
            other => other,
        };
        let tokens = self
            .with_retries(attempts, || api.list_tokens(&after))
            .map_err(|e| Failure::step_api("revoke", "listing the old tokens", e))?;
        let old: Vec<String> = tokens
            .into_iter()
            .map(|t| t.name)
            .filter(|n| n != name && pattern.matches(n))
            .collect();
        if !old.is_empty()
            && let Err(e) = self.with_retries(attempts, || api.revoke_tokens(&after, &old))
        {
            let _ = self
                .ledger
                .failed(&host.name, account, name, "revoke", &e.to_string());
            return Err(Failure::step_api("revoke", "revoking the old tokens", e));
        }
        // Recorded even when nothing matched: the journal's proof that this rotation finished.
        let _ = self.ledger.revoked(&host.name, account, name, &old);
        Ok(Status::Rotated)
    }

    /// Whether the server says `token` was created well before this run started.
    pub(super) fn older_than_run(&self, token: &TokenInfo) -> bool {
        token
            .create_time
            .is_some_and(|t| t < self.opts.run_started - CLOCK_SKEW)
    }

    /// A create whose outcome was never seen (its answer lost mid-run, or a resume after a
    /// crash): a token of this name created since the run started was made by that create, and
    /// its secret was never received. Revoke it (recorded). Returns false when the name belongs
    /// to a token older than the run: nothing is revoked and the target is `exists`.
    pub(super) fn revoke_orphan(
        &self,
        hp: &HostPlan,
        api: &Api<'_>,
        caller: &Caller<'_>,
        account: &str,
        name: &str,
        attempts: &mut u32,
    ) -> Result<bool, Failure> {
        let host = &hp.host.name;
        let tokens = match self.with_retries(attempts, || api.list_tokens(caller)) {
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
        self.ledger
            .intent(host, account, name, "revoke")
            .map_err(|e| {
                Failure::step(
                    "journal",
                    format!("cannot write the journal: {e}"),
                    "journal write failed",
                )
            })?;
        if let Err(e) = self.with_retries(attempts, || api.revoke_tokens(caller, &orphan)) {
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

    pub(super) fn token_url(&self, hp: &HostPlan) -> String {
        let port = match self.plan.scope {
            Scope::Whm => hp.host.whm_port,
            Scope::Account => hp.host.cpanel_port,
        };
        format!("https://{}:{}", url_host(&hp.host.address), port)
    }
}
