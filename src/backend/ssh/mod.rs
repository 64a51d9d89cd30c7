//! `api = "ssh"`: cPanel's own command-line programs run on the server over SSH, as root:
//! `uapi --user=U Tokens …` for account tokens, `whmapi1 api_token_* | listaccts | version` for
//! root's WHM tokens and the accounts. For fleets whose WHM port is closed to the operator (the
//! published mitigation of CVE-2026-41940) and operators who hold root SSH keys, not WHM tokens:
//! the SSH key is the credential, and tokenfleet never holds it.
//!
//! `command.rs` builds the command lines (full paths, URI-encoded arguments, shell-quoted,
//! never a secret); `client.rs` drives the system OpenSSH client (one multiplexed connection
//! per host, host keys as strict as TLS); the answers are judged by `protocol.rs`'s envelope
//! rules, as over HTTPS. The handoff's URL is still the cPanel (or WHM) port's: that is where
//! the new tokens are used.
//!
//! What the SSH path verifies: that the server lists the new token under its name. Proving the
//! secret logs in would mean sending it: on a command line (seen in the server's process list)
//! or to a port that may be closed to us. See docs/DESIGN.md §7.

mod client;
mod command;

use super::protocol::{
    as_pairs, conflict_on_duplicate, created_each, is_missing_token, listed_each, parse_accounts,
    parse_cli, parse_cli_batch, parse_new_token, parse_uapi_token_list, parse_version,
    parse_whm_token_list, uapi_cpanel_command, uapi_create_args, whm_create_args, whm_revoke_args,
    whm_update_args,
};
use super::redact::Redactor;
use super::{AccountInfo, ApiError, Backend, Many, NewToken, Owner, TokenInfo};
use crate::inventory::Host;
use crate::plan::{TokenChange, TokenPolicy};
use crate::secret::Secret;
use crate::transport::TransportConfig;
use crate::trust::Pin;
use serde_json::Value;

pub use client::Client;

/// One UAPI Tokens call of a `whmapi1 batch`: (account, function, args).
type BatchCall<'a> = (&'a str, &'a str, Vec<(String, String)>);

/// The accounts a batch is for: batches carry account calls only.
fn accounts_only<'a, 'o: 'a>(
    owners: impl Iterator<Item = &'a Owner<'o>>,
) -> Result<Vec<&'o str>, ApiError> {
    owners
        .map(|o| match o {
            Owner::Account { user, .. } => Ok(*user),
            Owner::WhmUser { .. } => Err(ApiError::Protocol(
                "internal: a batch carries account calls only".into(),
            )),
        })
        .collect()
}

/// The SSH backend of one host.
pub(super) struct SshBackend {
    client: Client,
    address: String,
    whm_port: u16,
    cpanel_port: u16,
}

impl SshBackend {
    pub(super) fn new(host: &Host, config: &TransportConfig) -> std::io::Result<SshBackend> {
        Ok(SshBackend {
            client: Client::new(&host.address, &host.ssh, config)?,
            address: host.address.clone(),
            whm_port: host.whm_port,
            cpanel_port: host.cpanel_port,
        })
    }

    /// `uapi --user=USER Tokens FUNCTION …`: the inner `data`.
    fn uapi(&self, user: &str, function: &str, args: &[(&str, &str)]) -> Result<Value, ApiError> {
        let line = command::uapi(user, function, args);
        parse_cli(&self.client.run("uapi", &line)?, false, &Redactor::new())
    }

    /// Many UAPI Tokens calls in one `whmapi1 batch` (each a `uapi_cpanel` command, as over
    /// HTTPS): one process on the server runs them all, one answer comes back. `calls[i]` is
    /// (account, function, args); each call's inner `data` or its own failure, in order.
    fn uapi_batch(&self, calls: &[BatchCall<'_>]) -> Many<Value> {
        let commands: Vec<String> = calls
            .iter()
            .map(|(account, function, args)| {
                uapi_cpanel_command(account, function, &as_pairs(args))
            })
            .collect();
        // Numbered, not repeated: the CLI reads `key=value` words into a map.
        let keys: Vec<String> = (1..=commands.len())
            .map(|i| format!("command-{i}"))
            .collect();
        let mut form: Vec<(&str, &str)> = keys
            .iter()
            .map(String::as_str)
            .zip(commands.iter().map(String::as_str))
            .collect();
        form.push(("abort_on_error", "0"));
        let line = command::whmapi1("batch", &form);
        let out = self.client.run("whmapi1", &line)?;
        parse_cli_batch(&out, calls.len(), &Redactor::new())
    }

    /// `whmapi1 FUNCTION …`: `data`.
    fn whmapi1(&self, function: &str, args: &[(&str, &str)]) -> Result<Value, ApiError> {
        let line = command::whmapi1(function, args);
        parse_cli(&self.client.run("whmapi1", &line)?, true, &Redactor::new())
    }
}

impl Backend for SshBackend {
    fn list_accounts(&self) -> Result<Vec<AccountInfo>, ApiError> {
        let data = self.whmapi1("listaccts", &[("want", "user,domain,owner,suspended")])?;
        parse_accounts(&data, &Redactor::new())
    }

    fn list_tokens(&self, owner: Owner<'_>) -> Result<Vec<TokenInfo>, ApiError> {
        match owner {
            Owner::WhmUser { .. } => parse_whm_token_list(&self.whmapi1("api_token_list", &[])?),
            Owner::Account { user, .. } => parse_uapi_token_list(&self.uapi(user, "list", &[])?),
        }
    }

    fn create_token(
        &self,
        owner: Owner<'_>,
        name: &str,
        expires_at: Option<i64>,
    ) -> Result<NewToken, ApiError> {
        self.create_token_with(owner, name, expires_at, &TokenPolicy::default())
    }

    fn create_token_with(
        &self,
        owner: Owner<'_>,
        name: &str,
        expires_at: Option<i64>,
        policy: &TokenPolicy,
    ) -> Result<NewToken, ApiError> {
        let data = match owner {
            Owner::WhmUser { .. } => {
                let form = whm_create_args(name, expires_at, policy);
                self.whmapi1("api_token_create", &as_pairs(&form))
            }
            Owner::Account { .. } if !policy.is_empty() => {
                return Err(ApiError::Rejected(
                    crate::plan::policy::ACCOUNT_HAS_NO_POLICY.into(),
                ));
            }
            Owner::Account { user, .. } => {
                let form = uapi_create_args(name, expires_at);
                self.uapi(user, "create_full_access", &as_pairs(&form))
            }
        }
        .map_err(conflict_on_duplicate)?;
        parse_new_token(&data, name, expires_at)
    }

    fn revoke_tokens(&self, owner: Owner<'_>, names: &[String]) -> Result<(), ApiError> {
        if names.is_empty() {
            return Ok(());
        }
        match owner {
            Owner::WhmUser { .. } => {
                let form = whm_revoke_args(names);
                self.whmapi1("api_token_revoke", &as_pairs(&form))
                    .map(|_| ())
            }
            Owner::Account { user, .. } => {
                // UAPI revokes one name per call.
                for name in names {
                    match self.uapi(user, "revoke", &[("name", name.as_str())]) {
                        Ok(_) => {}
                        Err(ApiError::Rejected(m)) if is_missing_token(&m) => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(())
            }
        }
    }

    fn update_token(
        &self,
        owner: Owner<'_>,
        name: &str,
        change: &TokenChange,
    ) -> Result<(), ApiError> {
        match owner {
            Owner::WhmUser { .. } => {
                let form = whm_update_args(name, change);
                self.whmapi1("api_token_update", &as_pairs(&form))
                    .map(|_| ())
            }
            Owner::Account { .. } => Err(ApiError::Rejected(
                crate::plan::policy::ACCOUNT_HAS_NO_UPDATE.into(),
            )),
        }
    }

    /// Over SSH: the server lists the new token under its name (the secret is not sent).
    fn verify(&self, owner: Owner<'_>, name: &str, _token: &Secret) -> Result<(), ApiError> {
        let listed = self.list_tokens(owner)?;
        if listed.iter().any(|t| t.name == name) {
            Ok(())
        } else {
            Err(ApiError::Rejected(format!(
                "the server does not list the new token “{name}”"
            )))
        }
    }

    fn batches(&self) -> bool {
        true
    }

    fn list_tokens_many(&self, owners: &[Owner<'_>]) -> Many<Vec<TokenInfo>> {
        let users = accounts_only(owners.iter())?;
        let calls: Vec<BatchCall<'_>> = users.iter().map(|u| (*u, "list", Vec::new())).collect();
        Ok(listed_each(self.uapi_batch(&calls)?))
    }

    fn create_tokens_many(
        &self,
        items: &[(Owner<'_>, &str)],
        expires_at: Option<i64>,
    ) -> Many<NewToken> {
        let users = accounts_only(items.iter().map(|(o, _)| o))?;
        let calls: Vec<BatchCall<'_>> = users
            .iter()
            .zip(items)
            .map(|(u, (_, name))| (*u, "create_full_access", uapi_create_args(name, expires_at)))
            .collect();
        Ok(created_each(
            self.uapi_batch(&calls)?,
            items.iter().map(|(_, n)| *n),
            expires_at,
        ))
    }

    fn whoami(&self) -> Result<String, ApiError> {
        parse_version(&self.whmapi1("version", &[])?)
    }

    /// An SSH login uses no WHM token: none of root's tokens is the credential in use.
    fn credential_token(&self) -> Result<Option<String>, ApiError> {
        Ok(None)
    }

    fn url(&self, owner: Owner<'_>) -> String {
        let port = match owner {
            Owner::WhmUser { .. } => self.whm_port,
            Owner::Account { .. } => self.cpanel_port,
        };
        let host = if self.address.contains(':') {
            format!("[{}]", self.address)
        } else {
            self.address.clone()
        };
        format!("https://{host}:{port}")
    }

    fn peer_pin(&self) -> Option<Pin> {
        None
    }

    fn host_key(&self) -> Option<String> {
        self.client.presented()
    }

    fn release(&self) {
        self.client.release();
    }
}
