//! One logical call = one HTTPS request on the host's transport, for both cPanel routes: the
//! request is built and the answer parsed by `protocol.rs`; this file only sends. [`Caller`] is
//! who makes the call on the wire, and so which endpoint and Authorization header it uses.
//!
//! Every call parses its answer with a [`Redactor`] holding the credential it sent plus the
//! secrets its backend holds for the call (`known`: the host's credential, the owner's), so
//! server text quoting any of them is redacted before it becomes an error.

use super::gate::{Gate, Key};
use super::protocol::{
    as_pairs, authorization, conflict_on_duplicate, created_each, is_missing_token, listed_each,
    parse_accounts, parse_new_token, parse_uapi, parse_uapi_cpanel, parse_uapi_cpanel_batch,
    parse_uapi_token_list, parse_version, parse_whm, parse_whm_token_list, uapi_cpanel_command,
    uapi_create_args, whm_create_args, whm_revoke_args, whm_update_args,
};
use super::redact::Redactor;
use super::{AccountInfo, ApiError, Backend, Cred, Many, NewToken, Owner, TokenInfo};
use crate::inventory::{AuthKind, Host};
use crate::plan::{TokenChange, TokenPolicy};
use crate::secret::Secret;
use crate::transport::HostTransport;
use crate::trust::Pin;
use serde_json::Value;

/// One `uapi_cpanel` Tokens call of a batch: (account, function, args).
pub type BatchCall<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>);

/// Who makes a call, and so which endpoint and Authorization header it uses.
#[derive(Debug, Clone, Copy)]
pub enum Caller<'a> {
    /// A WHM token (or password) of `whm_user` acting for `account` through `uapi_cpanel`.
    WhmFor {
        whm_user: &'a str,
        credential: &'a Secret,
        auth: AuthKind,
        account: &'a str,
    },
    /// The account itself on the cPanel port (`/execute/Tokens/...`).
    Account {
        user: &'a str,
        credential: &'a Secret,
        auth: AuthKind,
    },
    /// `whm_user`'s own WHM API tokens (`api_token_*`), for `--scope whm`.
    Whm {
        whm_user: &'a str,
        credential: &'a Secret,
        auth: AuthKind,
    },
}

/// Typed calls on one host: each builds its request with `protocol.rs`, sends it once over the
/// host's transport, and parses the answer with `protocol.rs`.
pub struct Http {
    transport: HostTransport,
    /// The host's login gate: one failed login per host per run (see `gate.rs`).
    gate: Gate,
    whm_port: u16,
    cpanel_port: u16,
}

impl Http {
    pub fn new(transport: HostTransport, whm_port: u16, cpanel_port: u16) -> Self {
        Http {
            transport,
            gate: Gate::default(),
            whm_port,
            cpanel_port,
        }
    }

    /// `https://ADDRESS:PORT` of the WHM port (`whm`) or the cPanel port.
    pub fn url(&self, whm: bool) -> String {
        let port = if whm { self.whm_port } else { self.cpanel_port };
        format!("https://{}:{port}", self.transport.url_host())
    }

    /// The SHA-256 of the certificate the host presented on its last handshake.
    pub fn peer_pin(&self) -> Option<Pin> {
        self.transport.peer_pin()
    }

    /// Create a full-access token named `name`. `expires_at`: unix seconds, `None` = never.
    /// `known`: secrets to redact from server text besides the caller's credential (which is
    /// always redacted).
    pub fn create_token(
        &self,
        caller: &Caller<'_>,
        name: &str,
        expires_at: Option<i64>,
        known: &Redactor<'_>,
    ) -> Result<NewToken, ApiError> {
        self.create_token_with(caller, name, expires_at, &TokenPolicy::default(), known)
    }

    /// [`Http::create_token`] with ACLs and an allow-list (`acl-N`, `whitelist_ip-N`): WHM
    /// tokens only; for a cPanel account token a non-empty `policy` is refused unsent.
    pub fn create_token_with(
        &self,
        caller: &Caller<'_>,
        name: &str,
        expires_at: Option<i64>,
        policy: &TokenPolicy,
        known: &Redactor<'_>,
    ) -> Result<NewToken, ApiError> {
        let data = match caller {
            Caller::Whm { .. } => {
                let form = whm_create_args(name, expires_at, policy);
                self.whm_call(caller, "api_token_create", &as_pairs(&form), known, None)
            }
            _ if !policy.is_empty() => {
                return Err(ApiError::Rejected(
                    crate::plan::policy::ACCOUNT_HAS_NO_POLICY.into(),
                ));
            }
            _ => {
                let form = uapi_create_args(name, expires_at);
                self.uapi_call(caller, "create_full_access", &as_pairs(&form), known, None)
            }
        }
        .map_err(conflict_on_duplicate)?;
        parse_new_token(&data, name, expires_at)
    }

    /// WHM `api_token_update` of `whm_user`'s token `name`: a new expiry (`0`: never), new
    /// ACLs (`acl-N`), a new allow-list (`whitelist_ip-N`, or `whitelist_ip=any` to clear it).
    /// The secret is unchanged. WHM tokens only.
    pub fn update_token(
        &self,
        caller: &Caller<'_>,
        name: &str,
        change: &TokenChange,
        known: &Redactor<'_>,
    ) -> Result<(), ApiError> {
        if !matches!(caller, Caller::Whm { .. }) {
            return Err(ApiError::Rejected(
                crate::plan::policy::ACCOUNT_HAS_NO_UPDATE.into(),
            ));
        }
        let form = whm_update_args(name, change);
        self.whm_call(caller, "api_token_update", &as_pairs(&form), known, None)
            .map(|_| ())
    }

    /// The caller's tokens (the account's, or `whm_user`'s for `Caller::Whm`).
    pub fn list_tokens(
        &self,
        caller: &Caller<'_>,
        known: &Redactor<'_>,
    ) -> Result<Vec<TokenInfo>, ApiError> {
        match caller {
            Caller::Whm { .. } => {
                parse_whm_token_list(&self.whm_call(caller, "api_token_list", &[], known, None)?)
            }
            _ => parse_uapi_token_list(&self.uapi_call(caller, "list", &[], known, None)?),
        }
    }

    /// Revoke tokens by name. Unknown names are not an error.
    pub fn revoke_tokens(
        &self,
        caller: &Caller<'_>,
        names: &[String],
        known: &Redactor<'_>,
    ) -> Result<(), ApiError> {
        if names.is_empty() {
            return Ok(());
        }
        match caller {
            Caller::Whm { .. } => {
                let form = whm_revoke_args(names);
                self.whm_call(caller, "api_token_revoke", &as_pairs(&form), known, None)
                    .map(|_| ())
            }
            _ => {
                // UAPI revokes one name per call.
                for name in names {
                    match self.uapi_call(caller, "revoke", &[("name", name.as_str())], known, None)
                    {
                        Ok(_) => {}
                        Err(ApiError::Rejected(m)) if is_missing_token(&m) => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(())
            }
        }
    }

    /// WHM `listaccts` as `whm_user`.
    pub fn list_accounts(
        &self,
        whm_user: &str,
        credential: &Secret,
        auth: AuthKind,
        known: &Redactor<'_>,
    ) -> Result<Vec<AccountInfo>, ApiError> {
        let caller = Caller::Whm {
            whm_user,
            credential,
            auth,
        };
        let data = self.whm_call(
            &caller,
            "listaccts",
            &[("want", "user,domain,owner,suspended")],
            known,
            None,
        )?;
        parse_accounts(&data, &known.clone().credential(whm_user, credential))
    }

    /// WHM `api_token_get_details` of `credential` itself (POSTed, never in a URL): its name.
    pub fn token_name_of(
        &self,
        whm_user: &str,
        credential: &Secret,
        known: &Redactor<'_>,
    ) -> Result<String, ApiError> {
        let caller = Caller::Whm {
            whm_user,
            credential,
            auth: AuthKind::Token,
        };
        let form = [("token", credential.expose())];
        let data = self.whm_call(&caller, "api_token_get_details", &form, known, None)?;
        match data.get("name").and_then(Value::as_str) {
            Some(name) if !name.is_empty() => Ok(name.to_string()),
            _ => Err(ApiError::Protocol(
                "the api_token_get_details answer names no token".into(),
            )),
        }
    }

    /// WHM `version`: a cheap authenticated call for `check`.
    pub fn version(
        &self,
        whm_user: &str,
        credential: &Secret,
        auth: AuthKind,
        known: &Redactor<'_>,
    ) -> Result<String, ApiError> {
        let caller = Caller::Whm {
            whm_user,
            credential,
            auth,
        };
        parse_version(&self.whm_call(&caller, "version", &[], known, None)?)
    }

    /// A new token's proof that it works: WHM `version` with it (a WHM token), or UAPI
    /// `Tokens::list` as `account` with it on the cPanel port. New tokens pass the login gate as
    /// one class per port: when the server refuses one, the verifies after it are not sent.
    pub fn verify_new_token(
        &self,
        whm_user: &str,
        account: Option<&str>,
        token: &Secret,
        known: &Redactor<'_>,
    ) -> Result<(), ApiError> {
        match account {
            None => {
                let caller = Caller::Whm {
                    whm_user,
                    credential: token,
                    auth: AuthKind::Token,
                };
                let class = Key::new_tokens(self.whm_port);
                parse_version(&self.whm_call(&caller, "version", &[], known, Some(class))?)
                    .map(|_| ())
            }
            Some(user) => {
                let caller = Caller::Account {
                    user,
                    credential: token,
                    auth: AuthKind::Token,
                };
                let class = Key::new_tokens(self.cpanel_port);
                parse_uapi_token_list(&self.uapi_call(&caller, "list", &[], known, Some(class))?)
                    .map(|_| ())
            }
        }
    }

    /// Many `uapi_cpanel` Tokens calls in one WHM API 1 `batch` request, all with `whm_user`'s
    /// `credential`: `calls[i]` is (account, function, args). Each call's inner `data` or its
    /// own failure comes back in order; an `Err` of the whole is the request's (no answer, a
    /// refused login: every call shares it). `abort_on_error=0`: the calls are independent.
    pub fn uapi_batch(
        &self,
        whm_user: &str,
        credential: &Secret,
        auth: AuthKind,
        calls: &[BatchCall<'_>],
        known: &Redactor<'_>,
    ) -> Result<Vec<Result<Value, ApiError>>, ApiError> {
        let commands: Vec<String> = calls
            .iter()
            .map(|(account, function, args)| uapi_cpanel_command(account, function, args))
            .collect();
        let mut form: Vec<(&str, &str)> =
            commands.iter().map(|c| ("command", c.as_str())).collect();
        form.push(("abort_on_error", "0"));
        let header = authorization(whm_user, credential, auth, true);
        let key = Key::of(self.whm_port, whm_user, credential);
        self.gate.pass(key, || {
            let resp = self
                .transport
                .post(
                    self.whm_port,
                    "/json-api/batch?api.version=1",
                    &header,
                    &form,
                )
                .map_err(ApiError::Transport)?;
            parse_uapi_cpanel_batch(
                &resp,
                calls.len(),
                &known.clone().credential(whm_user, credential),
            )
        })
    }

    /// A Tokens function through the caller's UAPI route; returns the inner `data`. `class`:
    /// the login gate's key when it is not the caller's credential (new tokens).
    fn uapi_call(
        &self,
        caller: &Caller<'_>,
        function: &str,
        args: &[(&str, &str)],
        known: &Redactor<'_>,
        class: Option<Key>,
    ) -> Result<Value, ApiError> {
        match *caller {
            Caller::WhmFor {
                whm_user,
                credential,
                auth,
                account,
            } => {
                let mut form: Vec<(&str, &str)> = vec![
                    ("api.version", "1"),
                    ("cpanel.user", account),
                    ("cpanel.module", "Tokens"),
                    ("cpanel.function", function),
                ];
                form.extend_from_slice(args);
                let header = authorization(whm_user, credential, auth, true);
                let key = class.unwrap_or_else(|| Key::of(self.whm_port, whm_user, credential));
                self.gate.pass(key, || {
                    let resp = self
                        .transport
                        .post(self.whm_port, "/json-api/uapi_cpanel", &header, &form)
                        .map_err(ApiError::Transport)?;
                    parse_uapi_cpanel(&resp, &known.clone().credential(whm_user, credential))
                })
            }
            Caller::Account {
                user,
                credential,
                auth,
            } => {
                let header = authorization(user, credential, auth, false);
                let path = format!("/execute/Tokens/{function}");
                let key = class.unwrap_or_else(|| Key::of(self.cpanel_port, user, credential));
                self.gate.pass(key, || {
                    let resp = self
                        .transport
                        .post(self.cpanel_port, &path, &header, args)
                        .map_err(ApiError::Transport)?;
                    parse_uapi(&resp, &known.clone().credential(user, credential))
                })
            }
            Caller::Whm { .. } => Err(ApiError::Protocol(format!(
                "internal: UAPI Tokens::{function} called with a WHM caller"
            ))),
        }
    }

    /// A WHM API 1 function as the caller's `whm_user`; returns `data`.
    fn whm_call(
        &self,
        caller: &Caller<'_>,
        function: &str,
        args: &[(&str, &str)],
        known: &Redactor<'_>,
        class: Option<Key>,
    ) -> Result<Value, ApiError> {
        let (user, credential, auth) = match *caller {
            Caller::Whm {
                whm_user,
                credential,
                auth,
            } => (whm_user, credential, auth),
            Caller::WhmFor {
                whm_user,
                credential,
                auth,
                ..
            } => (whm_user, credential, auth),
            Caller::Account { .. } => {
                return Err(ApiError::Protocol(format!(
                    "internal: WHM {function} called with an account caller"
                )));
            }
        };
        let header = authorization(user, credential, auth, true);
        let path = format!("/json-api/{function}?api.version=1");
        let key = class.unwrap_or_else(|| Key::of(self.whm_port, user, credential));
        self.gate.pass(key, || {
            let resp = self
                .transport
                .post(self.whm_port, &path, &header, args)
                .map_err(ApiError::Transport)?;
            parse_whm(&resp, &known.clone().credential(user, credential))
        })
    }
}

/// How one cPanel route reaches an account's tokens: the only thing `whm.rs` and `cpanel.rs`
/// decide. Everything else (WHM tokens, discovery, verify, check) is the same on both.
pub(super) trait Route: Send + Sync + 'static {
    /// The wire caller for `user`'s tokens, given the account's own credential (if the plan
    /// has one) and the host's.
    fn account<'a>(
        user: &'a str,
        own: Option<Cred<'a>>,
        host: Option<Cred<'a>>,
        whm_user: &'a str,
    ) -> Result<Caller<'a>, ApiError>;

    /// Account calls of this route may share one WHM API 1 `batch` request.
    const BATCHES: bool = false;
}

/// A [`Backend`] over cPanel's HTTPS APIs, with the account route `R`.
pub(super) struct HttpBackend<R> {
    http: Http,
    whm_user: String,
    auth: AuthKind,
    credential: Option<Secret>,
    route: std::marker::PhantomData<R>,
}

impl<R: Route> HttpBackend<R> {
    pub(super) fn new(http: Http, host: &Host, credential: Option<Secret>) -> Self {
        HttpBackend {
            http,
            whm_user: host.whm_user.clone(),
            auth: host.auth,
            credential,
            route: std::marker::PhantomData,
        }
    }

    fn host_cred(&self) -> Option<Cred<'_>> {
        self.credential.as_ref().map(|secret| Cred {
            secret,
            auth: self.auth,
        })
    }

    /// The secrets this backend holds for a call about `owner`, besides the one the call sends:
    /// the host's credential and the owner's own. Server text quoting any of them is redacted.
    fn known<'a>(&'a self, owner: Owner<'a>) -> Redactor<'a> {
        let mut r = Redactor::new();
        if let Some(host) = &self.credential {
            r = r.credential(&self.whm_user, host);
        }
        match owner {
            Owner::Account {
                user,
                credential: Some(own),
            } => r.credential(user, own.secret),
            Owner::WhmUser {
                credential: Some(own),
            } => r.credential(&self.whm_user, own.secret),
            _ => r,
        }
    }

    fn whm_cred(&self) -> Result<Cred<'_>, ApiError> {
        self.host_cred()
            .ok_or_else(|| ApiError::NoCredential("no WHM credential for this host".into()))
    }

    fn caller<'a>(&'a self, owner: Owner<'a>) -> Result<Caller<'a>, ApiError> {
        match owner {
            Owner::WhmUser { credential } => {
                let cred = match credential {
                    Some(c) => c,
                    None => self.whm_cred()?,
                };
                Ok(Caller::Whm {
                    whm_user: &self.whm_user,
                    credential: cred.secret,
                    auth: cred.auth,
                })
            }
            Owner::Account { user, credential } => {
                R::account(user, credential, self.host_cred(), &self.whm_user)
            }
        }
    }
}

/// The account an owner of a batched call is (batches carry account calls only).
fn account_of<'a>(o: &Owner<'a>) -> &'a str {
    match o {
        Owner::Account { user, .. } => user,
        Owner::WhmUser { .. } => "",
    }
}

impl<R: Route> HttpBackend<R> {
    /// One `batch` request for `calls` (one per owner, all accounts this host's WHM credential
    /// acts for), redacting every owner's secrets from server text.
    fn batch(
        &self,
        owners: &[Owner<'_>],
        calls: &[BatchCall<'_>],
    ) -> Result<Vec<Result<Value, ApiError>>, ApiError> {
        if owners.iter().any(|o| matches!(o, Owner::WhmUser { .. })) {
            return Err(ApiError::Protocol(
                "internal: a batch carries account calls only".into(),
            ));
        }
        let cred = self.whm_cred()?;
        let mut known = self.known(Owner::WhmUser { credential: None });
        for o in owners {
            if let Owner::Account {
                user,
                credential: Some(own),
            } = o
            {
                known = known.credential(user, own.secret);
            }
        }
        self.http
            .uapi_batch(&self.whm_user, cred.secret, cred.auth, calls, &known)
    }
}

impl<R: Route> Backend for HttpBackend<R> {
    fn list_accounts(&self) -> Result<Vec<AccountInfo>, ApiError> {
        let cred = self.whm_cred()?;
        self.http.list_accounts(
            &self.whm_user,
            cred.secret,
            cred.auth,
            &self.known(Owner::WhmUser { credential: None }),
        )
    }

    fn list_tokens(&self, owner: Owner<'_>) -> Result<Vec<TokenInfo>, ApiError> {
        self.http
            .list_tokens(&self.caller(owner)?, &self.known(owner))
    }

    fn create_token(
        &self,
        owner: Owner<'_>,
        name: &str,
        expires_at: Option<i64>,
    ) -> Result<NewToken, ApiError> {
        self.http
            .create_token(&self.caller(owner)?, name, expires_at, &self.known(owner))
    }

    fn create_token_with(
        &self,
        owner: Owner<'_>,
        name: &str,
        expires_at: Option<i64>,
        policy: &TokenPolicy,
    ) -> Result<NewToken, ApiError> {
        self.http.create_token_with(
            &self.caller(owner)?,
            name,
            expires_at,
            policy,
            &self.known(owner),
        )
    }

    fn revoke_tokens(&self, owner: Owner<'_>, names: &[String]) -> Result<(), ApiError> {
        self.http
            .revoke_tokens(&self.caller(owner)?, names, &self.known(owner))
    }

    fn update_token(
        &self,
        owner: Owner<'_>,
        name: &str,
        change: &TokenChange,
    ) -> Result<(), ApiError> {
        self.http
            .update_token(&self.caller(owner)?, name, change, &self.known(owner))
    }

    fn batches(&self) -> bool {
        R::BATCHES
    }

    fn list_tokens_many(&self, owners: &[Owner<'_>]) -> Many<Vec<TokenInfo>> {
        if !R::BATCHES {
            return Ok(owners.iter().map(|o| self.list_tokens(*o)).collect());
        }
        let calls: Vec<_> = owners
            .iter()
            .map(|o| (account_of(o), "list", Vec::new()))
            .collect();
        Ok(listed_each(self.batch(owners, &calls)?))
    }

    fn create_tokens_many(
        &self,
        items: &[(Owner<'_>, &str)],
        expires_at: Option<i64>,
    ) -> Many<NewToken> {
        if !R::BATCHES {
            return Ok(items
                .iter()
                .map(|(o, name)| self.create_token(*o, name, expires_at))
                .collect());
        }
        let args: Vec<Vec<(String, String)>> = items
            .iter()
            .map(|(_, name)| uapi_create_args(name, expires_at))
            .collect();
        let calls: Vec<_> = items
            .iter()
            .zip(&args)
            .map(|((o, _), a)| (account_of(o), "create_full_access", as_pairs(a)))
            .collect();
        let owners: Vec<Owner<'_>> = items.iter().map(|(o, _)| *o).collect();
        let answers = self.batch(&owners, &calls)?;
        Ok(created_each(
            answers,
            items.iter().map(|(_, n)| *n),
            expires_at,
        ))
    }

    /// WHM tokens: WHM `version` with the new token; account tokens: UAPI `Tokens::list` on the
    /// cPanel port as the account with the new token, whatever route created it.
    fn verify(&self, owner: Owner<'_>, _name: &str, token: &Secret) -> Result<(), ApiError> {
        let known = self.known(owner);
        let account = match owner {
            Owner::WhmUser { .. } => None,
            Owner::Account { user, .. } => Some(user),
        };
        self.http
            .verify_new_token(&self.whm_user, account, token, &known)
    }

    fn whoami(&self) -> Result<String, ApiError> {
        let cred = self
            .host_cred()
            .ok_or_else(|| ApiError::Protocol("no WHM credential to check".into()))?;
        self.http.version(
            &self.whm_user,
            cred.secret,
            cred.auth,
            &self.known(Owner::WhmUser { credential: None }),
        )
    }

    fn credential_token(&self) -> Result<Option<String>, ApiError> {
        let cred = self.whm_cred()?;
        if cred.auth != AuthKind::Token {
            return Ok(None);
        }
        let known = self.known(Owner::WhmUser { credential: None });
        self.http
            .token_name_of(&self.whm_user, cred.secret, &known)
            .map(Some)
    }

    fn url(&self, owner: Owner<'_>) -> String {
        self.http.url(matches!(owner, Owner::WhmUser { .. }))
    }

    fn peer_pin(&self) -> Option<Pin> {
        self.http.peer_pin()
    }

    fn release(&self) {
        self.http.transport.release();
    }
}

#[cfg(test)]
mod wire {
    use super::*;
    use crate::plan::NewExpiry;
    use crate::transport::test_server::{Recorded, Reply, TestServer, self_signed};
    use crate::transport::{Endpoint, TransportConfig};
    use crate::trust::{Pin, Tls};

    const CRED: &str = "WHMTOKENWHMTOKENWHMTOKENWHMTOKEN";

    /// No secrets besides the caller's.
    static K: std::sync::LazyLock<Redactor<'static>> = std::sync::LazyLock::new(Redactor::new);

    fn answer(r: &Recorded) -> Reply {
        let form = r.form();
        let get = |k: &str| {
            form.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let uapi = |inner: String| {
            format!(
                r#"{{"data":{{"uapi":{inner}}},"metadata":{{"command":"uapi_cpanel","reason":"OK","result":1,"version":1}}}}"#
            )
        };
        if r.header("authorization")
            .is_some_and(|a| a.contains("REVOKED"))
        {
            return Reply::json(403, r#"{"metadata":{"reason":"Access denied","result":0}}"#);
        }
        let body = match r.path.as_str() {
                "/json-api/uapi_cpanel" if get("name") == "taken" => uapi(
                    r#"{"data":null,"errors":["A conflicting API token with the name “taken” already exists."],"status":0}"#.into(),
                ),
                "/json-api/uapi_cpanel" if get("cpanel.function") == "create_full_access" => {
                    uapi(format!(r#"{{"data":{{"create_time":1700000000,"token":"{TOKEN}"}},"errors":null,"status":1}}"#))
                }
                "/json-api/uapi_cpanel" if get("cpanel.function") == "list" => uapi(
                    r#"{"data":[{"name":"old","create_time":"1600000000","expires_at":null}],"errors":null,"status":1}"#.into(),
                ),
                "/execute/Tokens/list" => r#"{"data":[{"name":"mine","create_time":1600000000,"expires_at":"1900000000"}],"errors":null,"status":1}"#.into(),
                "/execute/Tokens/revoke" if get("name") == "ghost" => {
                    r#"{"data":null,"errors":["The API token “ghost” does not exist."],"status":0}"#.into()
                }
                "/execute/Tokens/revoke" => r#"{"data":0,"errors":null,"status":1}"#.into(),
                "/json-api/api_token_revoke?api.version=1" => r#"{"data":{},"metadata":{"result":1,"reason":"OK"}}"#.into(),
                "/json-api/listaccts?api.version=1" => {
                    r#"{"data":{"acct":[{"user":"bob","domain":"bob.example","owner":"root","suspended":"0"}]},"metadata":{"result":1}}"#.into()
                }
                "/json-api/version?api.version=1" => r#"{"data":{"version":"11.126.0.9"},"metadata":{"result":1}}"#.into(),
                _ => return Reply::json(404, "{}"),
            };
        Reply::json(200, &body)
    }

    const TOKEN: &str = "JPQNSRU0DH448UJLGXH7KVJECC5QN9N9";

    fn start() -> (TestServer, Http) {
        start_with(answer)
    }

    fn start_with(
        handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> (TestServer, Http) {
        let id = self_signed(&["127.0.0.1"]);
        let server = TestServer::start(id.server_config(), handler);
        let endpoint = Endpoint {
            address: "127.0.0.1".into(),
            tls: Tls {
                pin: Some(Pin::of_der(id.leaf())),
                ..Tls::default()
            },
            origin: "test".into(),
        };
        let t = HostTransport::new(&endpoint, &TransportConfig::default()).unwrap();
        let port = server.port;
        (server, Http::new(t, port, port))
    }

    fn field<'r>(form: &'r [(String, String)], k: &str) -> Option<&'r str> {
        form.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn whm_for_create_goes_through_uapi_cpanel() {
        let (server, t) = start();
        let cred = Secret::new(CRED);
        let caller = Caller::WhmFor {
            whm_user: "root",
            credential: &cred,
            auth: AuthKind::Token,
            account: "bob",
        };
        let new = t.create_token(&caller, "ci", Some(1900000000), &K).unwrap();
        assert_eq!(new.token.expose(), TOKEN);
        assert_eq!(
            (new.create_time, new.expires_at),
            (1700000000, Some(1900000000))
        );
        let err = t.create_token(&caller, "taken", None, &K).unwrap_err();
        assert!(matches!(err, ApiError::Conflict(_)), "{err:?}");
        let seen = server.requests();
        let req = &seen[0];
        assert_eq!(req.path, "/json-api/uapi_cpanel");
        assert_eq!(
            req.header("authorization"),
            Some(format!("whm root:{CRED}").as_str())
        );
        let form = req.form();
        assert_eq!(field(&form, "api.version"), Some("1"));
        assert_eq!(field(&form, "cpanel.user"), Some("bob"));
        assert_eq!(field(&form, "cpanel.module"), Some("Tokens"));
        assert_eq!(field(&form, "cpanel.function"), Some("create_full_access"));
        assert_eq!(field(&form, "name"), Some("ci"));
        assert_eq!(field(&form, "expires_at"), Some("1900000000"));
        assert_eq!(
            field(&seen[1].form(), "expires_at"),
            None,
            "never expiring sends no expires_at"
        );
        let list = t.list_tokens(&caller, &K).unwrap();
        assert_eq!(list, vec![TokenInfo::new("old", Some(1600000000), None)]);
    }

    #[test]
    fn account_calls_go_to_execute_with_the_account_credential() {
        let (server, t) = start();
        let cred = Secret::new(CRED);
        let caller = Caller::Account {
            user: "bob",
            credential: &cred,
            auth: AuthKind::Token,
        };
        let list = t.list_tokens(&caller, &K).unwrap();
        assert_eq!(list[0].expires_at, Some(1900000000));
        let names = vec!["old".to_string(), "ghost".to_string()];
        t.revoke_tokens(&caller, &names, &K).unwrap();
        let pw = Secret::new("hunter2");
        let by_password = Caller::Account {
            user: "bob",
            credential: &pw,
            auth: AuthKind::Password,
        };
        t.list_tokens(&by_password, &K).unwrap();
        let seen = server.requests();
        assert_eq!(seen.len(), 4);
        assert_eq!(seen[0].path, "/execute/Tokens/list");
        assert_eq!(
            seen[0].header("authorization"),
            Some(format!("cpanel bob:{CRED}").as_str())
        );
        assert_eq!(
            (seen[1].path.as_str(), seen[1].form()),
            (
                "/execute/Tokens/revoke",
                vec![("name".into(), "old".into())]
            )
        );
        assert_eq!(
            seen[2].form(),
            vec![("name".to_string(), "ghost".to_string())]
        );
        assert_eq!(
            seen[3].header("authorization"),
            Some("Basic Ym9iOmh1bnRlcjI=")
        );
    }

    #[test]
    fn whm_revoke_sends_every_name_in_one_call_and_nothing_for_none() {
        let (server, t) = start();
        let cred = Secret::new(CRED);
        let caller = Caller::Whm {
            whm_user: "root",
            credential: &cred,
            auth: AuthKind::Token,
        };
        t.revoke_tokens(&caller, &[], &K).unwrap();
        assert!(server.requests().is_empty());
        let names = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        t.revoke_tokens(&caller, &names, &K).unwrap();
        let seen = server.requests();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].path, "/json-api/api_token_revoke?api.version=1");
        assert_eq!(
            seen[0].form(),
            vec![
                ("token_name".into(), "a".into()),
                ("token_name-1".into(), "b".into()),
                ("token_name-2".into(), "c".into())
            ]
        );
    }

    #[test]
    fn whm_policy_and_update_travel_as_numbered_arguments() {
        let (server, t) = start_with(|r: &Recorded| match r.path.as_str() {
            "/json-api/api_token_create?api.version=1" => Reply::json(
                200,
                &format!(
                    r#"{{"data":{{"name":"ci","token":"{TOKEN}","create_time":1700000000,"expires_at":null,"acls":["list-accts"]}},"metadata":{{"result":1,"reason":"OK"}}}}"#
                ),
            ),
            "/json-api/api_token_update?api.version=1"
                if r.form().iter().any(|(_, v)| v == "gone") =>
            {
                Reply::json(
                    200,
                    r#"{"metadata":{"result":0,"reason":"The API token “gone” does not exist."}}"#,
                )
            }
            "/json-api/api_token_update?api.version=1" => Reply::json(
                200,
                r#"{"data":{"name":"ci"},"metadata":{"result":1,"reason":"OK"}}"#,
            ),
            _ => Reply::json(404, "{}"),
        });
        let cred = Secret::new(CRED);
        let whm = Caller::Whm {
            whm_user: "root",
            credential: &cred,
            auth: AuthKind::Token,
        };
        let policy = TokenPolicy {
            acls: vec!["list-accts".into(), "clustering".into()],
            whitelist: vec!["198.51.100.0/24".into()],
        };
        t.create_token_with(&whm, "ci", None, &policy, &K).unwrap();
        let change = TokenChange {
            expires: Some(NewExpiry::Never),
            acls: Some(vec!["all".into()]),
            whitelist: Some(Vec::new()),
        };
        t.update_token(&whm, "ci", &change, &K).unwrap();
        let e = t.update_token(&whm, "gone", &change, &K).unwrap_err();
        assert!(
            matches!(e, ApiError::Rejected(ref m) if m.contains("does not exist")),
            "{e:?}"
        );
        // An account token has neither: refused, nothing sent.
        let account = Caller::Account {
            user: "bob",
            credential: &cred,
            auth: AuthKind::Token,
        };
        assert!(
            t.create_token_with(&account, "ci", None, &policy, &K)
                .is_err()
        );
        assert!(t.update_token(&account, "ci", &change, &K).is_err());
        let seen = server.requests();
        assert_eq!(seen.len(), 3);
        let pairs = |i: usize| -> Vec<(String, String)> { seen[i].form() };
        let want = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert_eq!(
            pairs(0),
            want(&[
                ("token_name", "ci"),
                ("acl-1", "list-accts"),
                ("acl-2", "clustering"),
                ("whitelist_ip-1", "198.51.100.0/24")
            ])
        );
        assert_eq!(
            pairs(1),
            want(&[
                ("token_name", "ci"),
                ("expires_at", "0"),
                ("acl-1", "all"),
                ("whitelist_ip", "any")
            ])
        );
    }

    #[test]
    fn listaccts_and_version() {
        let (server, t) = start();
        let cred = Secret::new(CRED);
        let accts = t.list_accounts("root", &cred, AuthKind::Token, &K).unwrap();
        assert_eq!(
            accts,
            vec![AccountInfo {
                user: "bob".into(),
                domain: "bob.example".into(),
                owner: "root".into(),
                suspended: false
            }]
        );
        assert_eq!(
            t.version("root", &cred, AuthKind::Token, &K).unwrap(),
            "11.126.0.9"
        );
        assert_eq!(
            server.requests()[0].header("authorization"),
            Some(format!("whm root:{CRED}").as_str())
        );
    }

    #[test]
    fn a_refused_credential_is_auth_and_never_echoes_it() {
        let (_server, t) = start();
        let cred = Secret::new("REVOKEDREVOKEDREVOKEDREVOKED1234");
        let e = t.version("root", &cred, AuthKind::Token, &K).unwrap_err();
        assert_eq!(
            e,
            ApiError::Auth {
                status: 403,
                message: "Access denied".into()
            }
        );
        assert!(!e.is_retryable());
        assert!(!format!("{e} {e:?} {}", e.cause()).contains("REVOKED"));
    }

    /// A server (or proxy) that quotes the Authorization header, another secret of the run and a
    /// token it made in every kind of error answer: none of them reaches the error.
    #[test]
    fn echoed_credentials_and_quoted_tokens_never_reach_an_error() {
        const OTHER: &str = "host-password-Ω-42";
        const MINTED: &str = "ZX9QWERTYZX9QWERTYZX9QWERTYZX9QW";
        let (_server, t) = start_with(|r: &Recorded| {
            let auth = r.header("authorization").unwrap_or("").to_string();
            let echo = format!("Access denied (Authorization: {auth}; also {OTHER})");
            let quoted = serde_json::to_string(&echo).unwrap();
            match r.path.as_str() {
                "/json-api/version?api.version=1" => Reply::Respond {
                    status: 401,
                    headers: vec![("Content-Type".into(), "text/plain".into())],
                    body: echo.into_bytes(),
                },
                "/execute/Tokens/list" => Reply::json(
                    403,
                    &format!(
                        r#"{{"cpanelresult":{{"error":{quoted},"data":{{"reason":{quoted},"result":"0"}}}}}}"#
                    ),
                ),
                "/json-api/api_token_list?api.version=1" => Reply::json(
                    200,
                    &format!(r#"{{"metadata":{{"reason":{quoted},"result":0}}}}"#),
                ),
                "/json-api/uapi_cpanel" => Reply::json(
                    200,
                    &format!(
                        r#"{{"data":{{"uapi":{{"data":null,"errors":["Internal error after saving token {MINTED}: {OTHER}"],"status":0}}}},"metadata":{{"result":1}}}}"#
                    ),
                ),
                _ => Reply::json(404, "{}"),
            }
        });
        let cred = Secret::new(CRED);
        let other = Secret::new(OTHER);
        let pw = Secret::new("pass word 123");
        let known = Redactor::new().credential("root", &other);
        let whm = Caller::Whm {
            whm_user: "root",
            credential: &cred,
            auth: AuthKind::Token,
        };
        // Each call on its own: the login gate would hold back every call after the first refusal.
        let errors = vec![
            t.version("root", &cred, AuthKind::Token, &known)
                .unwrap_err(),
            {
                t.gate.forget();
                t.list_tokens(&whm, &known).unwrap_err()
            },
            t.list_tokens(
                &Caller::Account {
                    user: "bob",
                    credential: &pw,
                    auth: AuthKind::Password,
                },
                &known,
            )
            .unwrap_err(),
            t.create_token(
                &Caller::WhmFor {
                    whm_user: "root",
                    credential: &cred,
                    auth: AuthKind::Token,
                    account: "bob",
                },
                "ci",
                None,
                &known,
            )
            .unwrap_err(),
        ];
        use base64::Engine;
        let basic = base64::engine::general_purpose::STANDARD.encode("bob:pass word 123");
        for e in &errors {
            let shown = format!("{e} {e:?} {}", e.cause());
            for secret in [
                CRED,
                OTHER,
                "pass word 123",
                basic.trim_end_matches('='),
                MINTED,
            ] {
                assert!(!shown.contains(secret), "{secret} in {shown}");
            }
            assert!(shown.contains(crate::backend::REDACTED), "{shown}");
        }
        assert!(matches!(errors[0], ApiError::Auth { status: 401, .. }));
        assert!(matches!(errors[2], ApiError::Auth { status: 403, .. }));
        assert!(matches!(errors[3], ApiError::Rejected(_)));
    }
}
