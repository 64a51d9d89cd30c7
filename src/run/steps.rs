//! The request half of a run, for the work that mints nothing: what one piece of work sends
//! (discovery, check, list, revoke) through the host's [`Backend`], and the result it records.
//! Create and rotate are in `mint.rs`; the retry rule in `retry.rs`.

use super::retry::Tries;
use super::*;

/// One target's work in progress: where its calls go and what they have cost so far.
pub(super) struct Ctx<'r> {
    pub(super) hp: &'r HostPlan,
    pub(super) backend: &'r dyn Backend,
    /// The account, or the host's `whm_user` for `--scope whm`.
    pub(super) account: &'r str,
    /// The target's token name (create, rotate), if any.
    pub(super) name: Option<&'r str>,
    /// Whose tokens, as the backend takes it.
    pub(super) owner: Owner<'r>,
    /// Requests sent for this target, retries included.
    pub(super) attempts: Tries,
    /// The tokens revoked (or, dry run, to be revoked), each by name, for the result.
    pub(super) revoked: std::cell::RefCell<Vec<RevokedToken>>,
    /// The account's tokens as the last listing of this target showed them.
    pub(super) listing: std::cell::RefCell<Vec<crate::backend::TokenInfo>>,
    /// A note for the result (a token kept on purpose).
    pub(super) note: std::cell::RefCell<Option<String>>,
    /// `update`: the tokens changed (or, dry run, to be), each by name.
    pub(super) updated: std::cell::RefCell<Vec<RevokedToken>>,
}

impl Ctx<'_> {
    pub(super) fn host(&self) -> &str {
        &self.hp.host.name
    }
}

impl Runner<'_> {
    pub(super) fn account_of<'t>(&self, hp: &'t HostPlan, t: &'t Target) -> &'t str {
        t.account.as_deref().unwrap_or(&hp.host.whm_user)
    }

    /// Whose tokens a target is about, in the backend's terms.
    pub(super) fn owner_of<'t>(&self, hp: &'t HostPlan, t: &'t Target) -> Owner<'t> {
        match (self.plan.scope, &t.account) {
            (Scope::Whm, _) | (Scope::All, None) => Owner::WhmUser { credential: None },
            (Scope::Account | Scope::All, _) => Owner::Account {
                user: self.account_of(hp, t),
                credential: t.credential.as_ref().map(|secret| Cred {
                    secret,
                    auth: hp.host.auth,
                }),
            },
        }
    }

    /// Do one piece of work and record its result.
    pub(super) fn perform(&self, i: usize, work: Task) -> FollowUp {
        let started = Instant::now();
        match work {
            Task::Discover => self.discover(i, started),
            Task::CheckHost => self.check_host(i, started),
            Task::Target(t) => self.perform_target(i, &t, started),
            Task::Batch(ts) => self.perform_batch(i, &ts, started),
        }
    }

    /// Record in the journal that a credential was refused on host `i`, so a resume does not
    /// send it again: the host's own, the account's own (`target`'s, `api = "cpanel"`), or new
    /// tokens at verify.
    pub(super) fn journal_refusal(&self, i: usize, target: Option<&Target>, verify: bool) {
        let hp = &self.plan.hosts[i];
        let run = &self.plan.run_id;
        let (account, what, tag) = if verify {
            (
                String::new(),
                "new tokens at verify".to_string(),
                "-".to_string(),
            )
        } else if let Some(t) = target
            && let Some(own) = &t.credential
            && self.plan.scope == Scope::Account
        {
            let account = self.account_of(hp, t).to_string();
            (
                account,
                "the account's own credential".to_string(),
                own.tag(run),
            )
        } else if hp.host.api == crate::inventory::Api::Ssh {
            (
                String::new(),
                hp.host.ssh.describe(),
                hp.host.ssh.login_tag(run),
            )
        } else if let Some(cred) = &hp.credential {
            let what = match &hp.host.credential {
                Some(r) => format!("credential {r}"),
                None => "credential".into(),
            };
            (String::new(), what, cred.tag(run))
        } else {
            return;
        };
        if self
            .ledger
            .refused(&hp.host.name, &account, &what, &tag)
            .is_ok()
        {
            self.out.lock().unwrap().refusal_journaled = true;
        }
    }

    /// Where target `t` of host `i`'s calls go, with nothing sent yet.
    pub(super) fn ctx<'t>(&'t self, i: usize, t: &'t Target) -> Ctx<'t> {
        let hp = &self.plan.hosts[i];
        Ctx {
            hp,
            backend: &*self.backends[i],
            account: self.account_of(hp, t),
            name: t.token_name.as_deref(),
            owner: self.owner_of(hp, t),
            attempts: Tries::on(i),
            revoked: Default::default(),
            listing: Default::default(),
            note: Default::default(),
            updated: Default::default(),
        }
    }

    /// What the journal of an interrupted run says about target `t` of host `i`.
    pub(super) fn prior_of(&self, i: usize, t: &Target) -> Option<&Prior> {
        if self.prior.is_empty() {
            return None;
        }
        let hp = &self.plan.hosts[i];
        // A target with no record of its own takes its host's (`*`): resume sets one when a
        // damaged journal line may have been that target's only record.
        self.prior
            .get(&(hp.host.name.clone(), self.account_of(hp, t).to_string()))
            .or_else(|| self.prior.get(&(hp.host.name.clone(), "*".to_string())))
    }

    fn perform_target(&self, i: usize, t: &Target, started: Instant) -> FollowUp {
        let cx = self.ctx(i, t);
        let prior = self.prior_of(i, t);
        let verdict = match prior {
            // Done before the interruption: nothing to send.
            Some(Prior::Done(status)) => Ok(*status),
            _ if self.opts.list_only => Ok(Status::Listed),
            _ => self.target(&cx, prior),
        };
        self.finish_target(i, t, &cx, verdict, started)
    }

    /// Turn a target's verdict into its result (recorded) and what its lane does next.
    pub(super) fn finish_target(
        &self,
        i: usize,
        t: &Target,
        cx: &Ctx<'_>,
        verdict: Result<Status, Failure>,
        started: Instant,
    ) -> FollowUp {
        let hp = &self.plan.hosts[i];
        let mut result = TargetResult::new(&hp.host.name, Some(cx.account), None);
        // A revoke's target has a glob, never a token name: what matched is `revoked`.
        (result.token_name, result.pattern) = self.name_and_pattern(cx.name.map(str::to_string));
        result.attempts = cx.attempts.get();
        result.revoked = cx.revoked.take();
        result.note = cx.note.take();
        result.updated = cx.updated.take();
        result.elapsed_ms = started.elapsed().as_millis() as u64;
        let sent = cx.attempts.get() > 0;
        let follow = match verdict {
            Ok(status) => {
                result.status = if self.opts.dry_run {
                    status.would()
                } else {
                    status
                };
                if sent { FollowUp::None } else { FollowUp::Idle }
            }
            Err(f) => {
                // After a verify, calls may carry the new token: a refusal there says nothing
                // of the inventory's credential, so only the earlier steps' are journaled.
                if f.fresh_refusal && f.step.as_deref() != Some("revoke") {
                    self.journal_refusal(i, Some(t), f.step.as_deref() == Some("verify"));
                }
                let follow = if f.stop_host {
                    FollowUp::StopHost(f.cause.clone())
                } else if f.silent && !cx.attempts.answered() {
                    FollowUp::Silent(f.cause.clone())
                } else if sent {
                    FollowUp::None
                } else {
                    FollowUp::Idle
                };
                result.status = f.status;
                result.error = Some(f.message);
                result.cause = Some(f.cause);
                result.step = f.step;
                result.attention = f.attention;
                follow
            }
        };
        self.record(i, result);
        follow
    }

    /// One target of a create, rotate, revoke, list or check.
    fn target(&self, cx: &Ctx<'_>, prior: Option<&Prior>) -> Result<Status, Failure> {
        let reconcile = match prior {
            Some(Prior::Reconcile { proven }) => Some(*proven),
            _ => None,
        };
        match &self.plan.work {
            Work::List => self.list(cx),
            Work::Check => self.check_account(cx),
            Work::Revoke { pattern } => self.revoke(cx, pattern),
            Work::Update { pattern, change } => self.update(cx, pattern, change),
            Work::Audit { .. } => self.list(cx),
            Work::Sweep { rules, filter } => self.sweep(cx, rules, filter),
            Work::Create { .. } => self.create(cx, reconcile).map(|(status, _)| status),
            Work::Rotate { revoke, .. } => match prior {
                Some(Prior::Created { minted, verified }) => {
                    self.finish_rotate(cx, revoke, &minted.token, *verified)
                }
                _ => self.rotate(cx, revoke, reconcile),
            },
        }
    }

    /// `listaccts`, then one target per eligible account.
    fn discover(&self, i: usize, started: Instant) -> FollowUp {
        let hp = &self.plan.hosts[i];
        let attempts = Tries::on(i);
        let accounts = match self.with_retries(&attempts, || self.backends[i].list_accounts()) {
            Ok(a) => a,
            Err(e) => {
                let mut r = TargetResult::new(&hp.host.name, None, None);
                r.status = Status::Failed;
                r.error = Some(format!("listaccts: {e}"));
                r.cause = Some(e.cause());
                r.step = Some("discover".into());
                r.attempts = 1;
                r.elapsed_ms = started.elapsed().as_millis() as u64;
                self.record(i, r);
                if e.refused_by_server() {
                    self.journal_refusal(i, None, false);
                }
                return follow_up_of(&e);
            }
        };
        let mut works = Vec::new();
        let mut sorted = accounts;
        sorted.sort_by(|a, b| a.user.cmp(&b.user));
        for acct in sorted {
            if !self.plan.wants_account(hp, &acct.user) {
                continue;
            }
            if let Some(work) = self.discovered(i, &acct) {
                works.push(work);
            }
        }
        self.observer.event(&Event::Discovered {
            host: &hp.host.name,
            targets: works.len(),
        });
        FollowUp::Queue(self.batched(i, works))
    }

    /// The work for one discovered account, or its result when there is nothing to send.
    fn discovered(&self, i: usize, acct: &AccountInfo) -> Option<Task> {
        let hp = &self.plan.hosts[i];
        let mut r = TargetResult::new(&hp.host.name, Some(&acct.user), None);
        if acct.suspended {
            // Skipped by policy, not by failure: no error, so the exit code stays 0, unless a
            // resumed create of this run was never confirmed there: that token is named.
            r.status = Status::Skipped;
            r.cause = Some("account suspended".into());
            r.attention = self.unconfirmed(&hp.host.name, &acct.user, None);
            if r.attention.is_some() {
                r.error = Some("account suspended since the interruption; not checked".into());
            }
            self.record(i, r);
            return None;
        }
        match self.plan.target_for(hp, &acct.user) {
            Ok(t) => Some(Task::Target(t)),
            Err(msg) => {
                r.status = Status::Failed;
                r.error = Some(msg);
                r.cause = Some("invalid token name".into());
                r.step = Some("plan".into());
                self.record(i, r);
                None
            }
        }
    }

    /// `check` of the host's own credential (WHM), then of the calls the real run makes with
    /// it: `api_token_list` for `--scope whm`; otherwise the inventory's accounts against
    /// `listaccts` (an account the server does not have would fail at create) and one read
    /// through `uapi_cpanel` (a WHM token may pass `version` and still be refused there).
    fn check_host(&self, i: usize, started: Instant) -> FollowUp {
        let hp = &self.plan.hosts[i];
        let backend = &*self.backends[i];
        let attempts = Tries::on(i);
        let result = self.with_retries(&attempts, || backend.whoami());
        let whm = Owner::WhmUser { credential: None };
        let url = backend.url(whm);
        let ok = result.is_ok();
        let follow = self.push_check(i, &hp.host.whm_user, url.clone(), result, started);
        if !ok {
            return follow;
        }
        let user = &hp.host.whm_user;
        if self.plan.scope == Scope::Whm {
            let started = Instant::now();
            return match self.with_retries(&attempts, || backend.list_tokens(whm)) {
                Ok(t) => {
                    self.amend_check(i, &format!("api_token_list: {} WHM tokens", t.len()));
                    FollowUp::None
                }
                Err(e) => self.push_check(i, user, url, Err(e), started),
            };
        }
        let started = Instant::now();
        let accounts = match self.with_retries(&attempts, || backend.list_accounts()) {
            Ok(a) => a,
            Err(e) => return self.push_check(i, user, url, Err(e), started),
        };
        let mut first = None;
        for t in &hp.targets {
            let account = self.account_of(hp, t);
            let problem = match accounts.iter().find(|a| a.user == account) {
                None => Some(
                    "no such account on this server (WHM listaccts does not list it): create and rotate would fail here",
                ),
                Some(a) if a.suspended => {
                    Some("the account is suspended: tokens cannot be created for it")
                }
                Some(_) => None,
            };
            match problem {
                Some(p) => self.push_check_failed(
                    i,
                    account,
                    url.clone(),
                    p,
                    "account not on the server",
                    started,
                ),
                None => {
                    first.get_or_insert(account);
                }
            }
        }
        let first = match first {
            Some(a) => a.to_string(),
            None => match accounts
                .iter()
                .find(|a| !a.suspended && self.plan.wants_account(hp, &a.user))
            {
                Some(a) => a.user.clone(),
                None => return FollowUp::None,
            },
        };
        let started = Instant::now();
        let owner = Owner::Account {
            user: &first,
            credential: None,
        };
        match self.with_retries(&attempts, || backend.list_tokens(owner)) {
            Ok(t) => {
                let text = format!(
                    "{} accounts listed; uapi_cpanel as {first}: {} tokens",
                    accounts.len(),
                    t.len()
                );
                self.amend_check(i, &text);
                FollowUp::None
            }
            Err(
                ApiError::Auth { status, message }
                | ApiError::RefusedAfter {
                    status, message, ..
                },
            ) => {
                // Accepted a moment ago by `version` and `listaccts`: not a login failure but
                // a credential that may not act for accounts.
                let e = ApiError::Auth {
                    status,
                    message: format!(
                        "uapi_cpanel refused: the WHM credential passed `version` and `listaccts` but may not act for accounts (its ACLs?): {message}"
                    ),
                };
                self.push_check(i, &first, url, Err(e), started)
            }
            Err(e) => self.push_check(i, &first, url, Err(e), started),
        }
    }

    /// Add what a later check call found to the host's first check row.
    fn amend_check(&self, i: usize, text: &str) {
        let host = &self.plan.hosts[i].host.name;
        let mut out = self.out.lock().unwrap();
        if let Some(row) = out.checks.iter_mut().rev().find(|r| &r.host == host) {
            row.detail = format!("{}; {text}", row.detail);
        }
    }

    /// A check row (and a failed result) for a problem found without a failed call.
    fn push_check_failed(
        &self,
        i: usize,
        user: &str,
        url: String,
        detail: &str,
        cause: &str,
        started: Instant,
    ) {
        let hp = &self.plan.hosts[i];
        self.out.lock().unwrap().checks.push(CheckRow {
            host: hp.host.name.clone(),
            user: user.to_string(),
            url,
            ok: false,
            detail: detail.to_string(),
            tls_pin: self.backends[i].peer_pin().map(|p| p.to_string()),
            ssh_host_key: self.backends[i].host_key(),
            elapsed_ms: started.elapsed().as_millis() as u64,
        });
        let mut r = TargetResult::new(&hp.host.name, Some(user), None);
        r.step = Some("check".into());
        r.status = Status::Failed;
        r.error = Some(detail.to_string());
        r.cause = Some(cause.to_string());
        self.record(i, r);
    }

    /// `check` of an account's own credential (`api = "cpanel"`): list its tokens.
    fn check_account(&self, cx: &Ctx<'_>) -> Result<Status, Failure> {
        let started = Instant::now();
        let result = self
            .with_retries(&cx.attempts, || cx.backend.list_tokens(cx.owner))
            .map(|tokens| format!("{} tokens", tokens.len()));
        let failure = result.as_ref().err().cloned();
        let pin = failure
            .as_ref()
            .and_then(ApiError::presented_pin)
            .or_else(|| cx.backend.peer_pin());
        self.out.lock().unwrap().checks.push(CheckRow {
            host: cx.host().to_string(),
            user: cx.account.to_string(),
            url: cx.backend.url(cx.owner),
            ok: failure.is_none(),
            detail: match &result {
                Ok(v) => v.clone(),
                Err(e) => e.to_string(),
            },
            tls_pin: pin.map(|p| p.to_string()),
            ssh_host_key: failure
                .as_ref()
                .and_then(|e| e.presented_host_key().map(str::to_string))
                .or_else(|| cx.backend.host_key()),
            elapsed_ms: started.elapsed().as_millis() as u64,
        });
        match failure {
            None => Ok(Status::Checked),
            Some(e) => Err(Failure::api("check", e)),
        }
    }

    fn push_check(
        &self,
        i: usize,
        user: &str,
        url: String,
        result: Result<String, ApiError>,
        started: Instant,
    ) -> FollowUp {
        let follow = match &result {
            Ok(_) => FollowUp::None,
            Err(e) => follow_up_of(e),
        };
        let hp = &self.plan.hosts[i];
        let (ok, detail) = match &result {
            Ok(v) => (true, v.clone()),
            Err(e) => (false, e.to_string()),
        };
        let pin = match &result {
            Err(e) => e.presented_pin(),
            Ok(_) => None,
        }
        .or_else(|| self.backends[i].peer_pin());
        self.out.lock().unwrap().checks.push(CheckRow {
            host: hp.host.name.clone(),
            user: user.to_string(),
            url,
            ok,
            detail: detail.clone(),
            tls_pin: pin.map(|p| p.to_string()),
            ssh_host_key: match &result {
                Err(e) => e.presented_host_key().map(str::to_string),
                Ok(_) => None,
            }
            .or_else(|| self.backends[i].host_key()),
            elapsed_ms: started.elapsed().as_millis() as u64,
        });
        let mut r = TargetResult::new(&hp.host.name, Some(user), None);
        r.step = Some("check".into());
        r.attempts = 1;
        r.elapsed_ms = started.elapsed().as_millis() as u64;
        match result {
            Ok(_) => r.status = Status::Checked,
            Err(e) => {
                // The host's own calls failed (its credential, TLS, ACLs): a host-level failure,
                // which a retry names by host, not as one of its accounts.
                r.account = None;
                r.status = Status::Failed;
                r.error = Some(detail);
                r.cause = Some(e.cause());
            }
        }
        self.record(i, r);
        follow
    }

    fn list(&self, cx: &Ctx<'_>) -> Result<Status, Failure> {
        let tokens = self
            .with_retries(&cx.attempts, || cx.backend.list_tokens(cx.owner))
            .map_err(|e| Failure::api("list", e))?;
        self.listed(cx, tokens)
    }

    /// A `list` target's tokens, as listing rows; an `audit`'s, classed and flagged.
    pub(super) fn listed(
        &self,
        cx: &Ctx<'_>,
        tokens: Vec<crate::backend::TokenInfo>,
    ) -> Result<Status, Failure> {
        if let Work::Audit { rules } = &self.plan.work {
            let census = self.census(cx, rules, &tokens);
            let mut out = self.out.lock().unwrap();
            for row in census.rows {
                out.audit.push(row);
            }
            drop(out);
            return match census.unsure {
                Some(f) => Err(f),
                None => Ok(Status::Listed),
            };
        }
        let mut out = self.out.lock().unwrap();
        for tok in tokens {
            out.listings.push(ListingRow {
                host: cx.host().to_string(),
                account: cx.account.to_string(),
                token_name: tok.name,
                create_time: tok.create_time,
                expires_at: tok.expires_at,
            });
        }
        Ok(Status::Listed)
    }

    /// Take the token tokenfleet logs in with out of `names` (a note says so): revoking it
    /// would have every later call refused, on this host and, across a fleet, on all of them.
    /// A WHM token is named by `api_token_get_details` on the credential itself; an account that
    /// logs in with one of its own tokens cannot say which one it is, so a revoke that matches
    /// any of its tokens is refused for that account.
    pub(super) fn keep_own_credential(
        &self,
        cx: &Ctx<'_>,
        names: &mut Vec<String>,
        allowed: bool,
    ) -> Result<(), Failure> {
        const FLAG: &str = "--revoke-own-credential";
        match cx.owner {
            Owner::WhmUser { .. } => {
                let own = self
                    .with_retries(&cx.attempts, || cx.backend.credential_token())
                    .map_err(|e| {
                        let mut f = Failure::api("revoke (which token is the credential?)", e);
                        if !f.stop_host {
                            f.message = format!(
                                "{}; nothing was revoked: tokenfleet could not tell whether the credential it logs in with is among {} (pass {FLAG} to revoke them anyway)",
                                f.message,
                                names.join(", ")
                            );
                        }
                        f
                    })?;
                if let Some(own) = own
                    && names.contains(&own)
                {
                    if allowed {
                        *cx.note.borrow_mut() = Some(format!(
                            "{own} is the credential this run logs in with, revoked as asked ({FLAG}): later runs need another credential for this host"
                        ));
                    } else {
                        names.retain(|n| *n != own);
                        *cx.note.borrow_mut() = Some(format!(
                            "kept {own}: it is the credential this run logs in with ({FLAG} revokes it too)"
                        ));
                    }
                }
                Ok(())
            }
            Owner::Account {
                credential: Some(own),
                ..
            } if own.auth == AuthKind::Token && cx.hp.host.api == ApiKind::Cpanel && allowed => {
                *cx.note.borrow_mut() = Some(format!(
                    "this account logs in with one of its own tokens and cPanel cannot say which: {} may include it ({FLAG})",
                    names.join(", ")
                ));
                Ok(())
            }
            Owner::Account {
                credential: Some(own),
                ..
            } if own.auth == AuthKind::Token && cx.hp.host.api == ApiKind::Cpanel => {
                Err(Failure::step(
                    "revoke",
                    format!(
                        "nothing was revoked: this account logs in with one of its own tokens and cPanel cannot say which, so revoking {} might revoke tokenfleet's own login (pass {FLAG} to revoke them anyway)",
                        names.join(", ")
                    ),
                    "might revoke the credential in use",
                ))
            }
            Owner::Account { .. } => Ok(()),
        }
    }

    /// The census of one owner's tokens. The credential in use is asked of the server (WHM
    /// `api_token_get_details`) so that it is classed `self`; when that cannot be told, the
    /// rows still come, with the failure that keeps a sweep from revoking anything here.
    fn census(
        &self,
        cx: &Ctx<'_>,
        rules: &crate::audit::Rules,
        tokens: &[crate::backend::TokenInfo],
    ) -> Census {
        use crate::audit::{OwnerKind, Whose};
        let mut unsure = None;
        let mut credential = None;
        let kind = match cx.owner {
            Owner::WhmUser { .. } => {
                match self.with_retries(&cx.attempts, || cx.backend.credential_token()) {
                    Ok(name) => credential = name,
                    Err(e) => {
                        let mut f = Failure::api("audit (which token is the credential?)", e);
                        if !f.stop_host {
                            f.message = format!(
                                "{}; tokenfleet cannot tell which of these WHM tokens it logs in with, so none is revoked here (the credential needs api_token_get_details on itself)",
                                f.message
                            );
                        }
                        unsure = Some(f);
                    }
                }
                OwnerKind::Whm
            }
            Owner::Account {
                credential: Some(own),
                ..
            } if own.auth == AuthKind::Token && cx.hp.host.api == ApiKind::Cpanel => {
                match &cx.hp.host.credential_name {
                    // The inventory names it: cPanel cannot.
                    Some(name) => credential = Some(name.clone()),
                    None => {
                        unsure = Some(Failure::step(
                            "audit",
                            "this account logs in with one of its own tokens and cPanel cannot say which: none of its tokens is revoked (name it with credential_name in the inventory, reach the account through an api = \"whm\" host, or revoke by name with tokenfleet revoke)".to_string(),
                            "cannot tell which token is the credential in use: set credential_name",
                        ))
                    }
                }
                OwnerKind::Account
            }
            Owner::Account { .. } => OwnerKind::Account,
        };
        let whose = Whose {
            host: cx.host(),
            kind,
            owner: cx.account,
            protect: &cx.hp.host.protect,
            credential: credential.as_deref(),
        };
        let rows = tokens.iter().map(|t| rules.judge(&whose, t)).collect();
        Census { rows, unsure }
    }

    /// A sweep of one owner: the census, then the revoke of the `unknown` tokens `filter`
    /// takes, each journaled with its metadata before and after.
    fn sweep(
        &self,
        cx: &Ctx<'_>,
        rules: &crate::audit::Rules,
        filter: &crate::audit::SweepFilter,
    ) -> Result<Status, Failure> {
        let listed_at = Instant::now();
        let tokens = self
            .with_retries(&cx.attempts, || cx.backend.list_tokens(cx.owner))
            .map_err(|e| Failure::api("list", e))?;
        self.sweep_listed(cx, rules, filter, tokens, listed_at)
    }

    /// A sweep of one owner whose tokens are listed (alone, or in a WHM `batch`).
    pub(super) fn sweep_listed(
        &self,
        cx: &Ctx<'_>,
        rules: &crate::audit::Rules,
        filter: &crate::audit::SweepFilter,
        tokens: Vec<crate::backend::TokenInfo>,
        listed_at: Instant,
    ) -> Result<Status, Failure> {
        let census = self.census(cx, rules, &tokens);
        let taken: Vec<crate::audit::AuditRow> = census
            .rows
            .into_iter()
            .filter(|r| filter.takes(r))
            // A run of ours may have made it since the files were read (a rotation beside
            // this sweep): its journal says so by now.
            .filter(|r| {
                !rules.named_since(
                    &(r.host.clone(), r.owner.clone(), r.name.clone()),
                    listed_at,
                )
            })
            .collect();
        if taken.is_empty() {
            if !self.opts.dry_run {
                let _ = self.ledger.sweep(cx.host(), cx.account, "clean", &[]);
            }
            return Ok(Status::Unchanged);
        }
        if let Some(f) = census.unsure {
            return Err(f);
        }
        let names: Vec<String> = taken.iter().map(|r| r.name.clone()).collect();
        let named = named_tokens(&tokens, &names);
        if self.opts.dry_run {
            *cx.revoked.borrow_mut() = named;
            return Ok(Status::Revoked);
        }
        // The audit trail first: a revoke the journal cannot tell of is not sent.
        self.ledger
            .sweep(cx.host(), cx.account, "intent", &taken)
            .map_err(|e| {
                Failure::step(
                    "revoke",
                    format!("the journal could not record the sweep ({e}); nothing was revoked"),
                    "journal write failed",
                )
            })?;
        self.with_retries(&cx.attempts, || cx.backend.revoke_tokens(cx.owner, &names))
            .map_err(|e| Failure::api("revoke", e))?;
        *cx.revoked.borrow_mut() = named;
        let _ = self.ledger.sweep(cx.host(), cx.account, "revoked", &taken);
        Ok(Status::Revoked)
    }

    fn revoke(&self, cx: &Ctx<'_>, pattern: &glob::Pattern) -> Result<Status, Failure> {
        let tokens = self
            .with_retries(&cx.attempts, || cx.backend.list_tokens(cx.owner))
            .map_err(|e| Failure::api("list", e))?;
        let mut names: Vec<String> = tokens
            .iter()
            .map(|t| t.name.clone())
            .filter(|n| pattern.matches(n))
            .collect();
        names.sort();
        if names.is_empty() {
            return Ok(Status::Unchanged);
        }
        self.keep_own_credential(cx, &mut names, self.opts.revoke_own)?;
        if names.is_empty() {
            return Ok(Status::Unchanged);
        }
        let named = named_tokens(&tokens, &names);
        if self.opts.dry_run {
            *cx.revoked.borrow_mut() = named;
            return Ok(Status::Revoked);
        }
        // Revoke is idempotent: re-sending after an unknown outcome is safe.
        self.with_retries(&cx.attempts, || cx.backend.revoke_tokens(cx.owner, &names))
            .map_err(|e| Failure::api("revoke", e))?;
        // Named only once gone: a failed revoke must not read as done.
        *cx.revoked.borrow_mut() = named;
        let _ = self
            .ledger
            .revoked(cx.host(), cx.account, pattern.as_str(), &names);
        Ok(Status::Revoked)
    }
}

/// One owner's tokens, classed, and why a sweep may not act on them (the credential in use
/// cannot be told).
struct Census {
    rows: Vec<crate::audit::AuditRow>,
    unsure: Option<Failure>,
}

/// `names` (in their order) as the listing `tokens` describes them.
pub(super) fn named_tokens(
    tokens: &[crate::backend::TokenInfo],
    names: &[String],
) -> Vec<RevokedToken> {
    names
        .iter()
        .map(|n| match tokens.iter().find(|t| &t.name == n) {
            Some(t) => RevokedToken::from_listing(n, t.create_time, t.expires_at),
            None => RevokedToken::from_listing(n, None, None),
        })
        .collect()
}

/// What a host-level call's failure (discovery, a check) means for the rest of its host.
fn follow_up_of(e: &ApiError) -> FollowUp {
    if e.is_refusal() {
        FollowUp::StopHost(e.cause())
    } else if e.host_broken() {
        FollowUp::Silent(e.cause())
    } else {
        FollowUp::None
    }
}
