//! cPanel's wire formats, as pure functions: the three envelopes (UAPI, WHM API 1, and UAPI
//! wrapped inside `uapi_cpanel`), their quirks (HTTP 200 with `status: 0`, `metadata.result: 1`
//! over a failed inner call, `expires_at` as number, string or null), the Authorization header
//! each endpoint wants, and the typed answers. No I/O: `http.rs` sends what this builds.
//!
//! Server text reaches an [`ApiError`] only through [`shorten`], which first passes it through
//! the call's [`Redactor`] (credentials of the call, token-shaped strings): a server or proxy
//! that echoes the Authorization header or quotes a token cannot put either into the report,
//! the journal or stderr.

use super::redact::Redactor;
use super::{AccountInfo, ApiError, NewToken, TokenInfo};
use crate::inventory::AuthKind;
use crate::plan::{NewExpiry, TokenChange, TokenPolicy};
use crate::secret::Secret;
use crate::transport::{Authorization, Response};
use serde_json::Value;

/// Longest server message kept in an error (server text can be long HTML or a stack dump).
const MAX_MESSAGE: usize = 200;

const HTML_ANSWER: &str =
    "the server answered with an HTML page, not the API (a proxy or login page?)";

pub(super) fn authorization<'c>(
    user: &'c str,
    credential: &'c Secret,
    auth: AuthKind,
    whm: bool,
) -> Authorization<'c> {
    match (auth, whm) {
        (AuthKind::Password, _) => Authorization::Basic {
            user,
            password: credential,
        },
        (AuthKind::Token, true) => Authorization::Token {
            scheme: "whm",
            user,
            token: credential,
        },
        (AuthKind::Token, false) => Authorization::Token {
            scheme: "cpanel",
            user,
            token: credential,
        },
    }
}

/// WHM API 1 `api_token_create`'s arguments: the name, the expiry (absent: never), ACLs as
/// `acl-N` and the allow-list as `whitelist_ip-N`.
pub(super) fn whm_create_args(
    name: &str,
    expires_at: Option<i64>,
    policy: &TokenPolicy,
) -> Vec<(String, String)> {
    let mut form = vec![("token_name".to_string(), name.to_string())];
    if let Some(e) = expires_at {
        form.push(("expires_at".into(), e.to_string()));
    }
    form.extend(numbered("acl", &policy.acls));
    form.extend(numbered("whitelist_ip", &policy.whitelist));
    form
}

/// UAPI `Tokens::create_full_access`'s arguments.
pub(super) fn uapi_create_args(name: &str, expires_at: Option<i64>) -> Vec<(String, String)> {
    let mut form = vec![("name".to_string(), name.to_string())];
    if let Some(e) = expires_at {
        form.push(("expires_at".into(), e.to_string()));
    }
    form
}

/// WHM API 1 `api_token_update`'s arguments: a new expiry (`0`: never), new ACLs (`acl-N`), a
/// new allow-list (`whitelist_ip-N`, or `whitelist_ip=any` to clear it).
pub(super) fn whm_update_args(name: &str, change: &TokenChange) -> Vec<(String, String)> {
    let mut form = vec![("token_name".to_string(), name.to_string())];
    match change.expires {
        Some(NewExpiry::At(at)) => form.push(("expires_at".into(), at.to_string())),
        Some(NewExpiry::Never) => form.push(("expires_at".into(), "0".into())),
        None => {}
    }
    if let Some(acls) = &change.acls {
        form.extend(numbered("acl", acls));
    }
    match &change.whitelist {
        Some(list) if list.is_empty() => form.push(("whitelist_ip".into(), "any".into())),
        Some(list) => form.extend(numbered("whitelist_ip", list)),
        None => {}
    }
    form
}

/// WHM API 1 `api_token_revoke`'s arguments: `token_name`, `token_name-1`, … for every name.
pub(super) fn whm_revoke_args(names: &[String]) -> Vec<(String, String)> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let key = if i == 0 {
                "token_name".to_string()
            } else {
                format!("token_name-{i}")
            };
            (key, n.clone())
        })
        .collect()
}

/// A repeated WHM API 1 argument as cPanel numbers it: `KEY-1`, `KEY-2`, …
fn numbered<'v>(key: &str, values: &'v [String]) -> impl Iterator<Item = (String, String)> + 'v {
    let key = key.to_string();
    values
        .iter()
        .enumerate()
        .map(move |(i, v)| (format!("{key}-{}", i + 1), v.clone()))
}

/// `(String, String)` pairs as the `&str` pairs a call takes.
pub(super) fn as_pairs(form: &[(String, String)]) -> Vec<(&str, &str)> {
    form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// A refusal that means "this name is taken" becomes [`ApiError::Conflict`].
pub(super) fn conflict_on_duplicate(err: ApiError) -> ApiError {
    match err {
        ApiError::Rejected(m) if is_duplicate(&m) => ApiError::Conflict(m),
        other => other,
    }
}

fn is_duplicate(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("conflicting api token") || m.contains("already exists")
}

pub(super) fn is_missing_token(message: &str) -> bool {
    message.to_ascii_lowercase().contains("does not exist")
}

/// Server text as it may enter an error: redacted first (before cutting, so no cut can leave
/// part of a secret that the redactor would no longer recognise), then one short line.
fn shorten(text: &str, r: &Redactor<'_>) -> String {
    let clean = r.redact(text);
    let one_line: String = clean.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= MAX_MESSAGE {
        one_line
    } else {
        let cut: String = one_line.chars().take(MAX_MESSAGE).collect();
        format!("{cut}…")
    }
}

fn looks_like_html(resp: &Response) -> bool {
    let ct_html = resp
        .content_type
        .as_deref()
        .is_some_and(|c| c.to_ascii_lowercase().contains("html"));
    let start = resp
        .body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map(|i| resp.body[i]);
    ct_html || start == Some(b'<')
}

/// A short reason from a refusal's JSON body (`cpanelresult.error`, `metadata.reason`, UAPI
/// `errors`), or a short plain-text body; never a long raw body.
fn auth_message(resp: &Response, r: &Redactor<'_>) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(&resp.body) {
        let candidates = [
            v.pointer("/cpanelresult/error"),
            v.pointer("/cpanelresult/data/reason"),
            v.pointer("/metadata/reason"),
            v.pointer("/errors/0"),
            v.pointer("/error"),
            v.pointer("/data/reason"),
            v.pointer("/reason"),
        ];
        for c in candidates.into_iter().flatten() {
            if let Some(text) = c.as_str()
                && !text.trim().is_empty()
            {
                return shorten(text, r);
            }
        }
    } else if !looks_like_html(resp)
        && let Ok(text) = std::str::from_utf8(&resp.body)
        && !text.trim().is_empty()
        && text.len() <= MAX_MESSAGE
        && !text.chars().any(|c| c.is_control() && !c.is_whitespace())
    {
        return shorten(text, r);
    }
    "the server refused the credential".to_string()
}

/// Status line and body checks shared by every envelope: what is not a 2xx JSON answer becomes
/// the right error; a 2xx JSON answer comes back parsed.
fn json_body(resp: &Response, r: &Redactor<'_>) -> Result<Value, ApiError> {
    match resp.status {
        200..=299 => {}
        300..=399 => {
            let to = resp
                .location
                .as_deref()
                .map(|l| shorten(l, r))
                .unwrap_or_else(|| "an unnamed location".into());
            return Err(ApiError::Protocol(format!(
                "the server redirected (HTTP {}) to {to}; redirects are not followed (check the address, port and that the API is not behind a login proxy)",
                resp.status
            )));
        }
        401 | 403 => {
            return Err(ApiError::Auth {
                status: resp.status,
                message: auth_message(resp, r),
            });
        }
        status => return Err(ApiError::Http { status }),
    }
    match serde_json::from_slice::<Value>(&resp.body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(ApiError::Protocol(
            "the server answered with JSON that is not an API envelope".into(),
        )),
        Err(_) if looks_like_html(resp) => Err(ApiError::Protocol(HTML_ANSWER.into())),
        Err(_) if resp.body.iter().all(u8::is_ascii_whitespace) => Err(ApiError::Protocol(
            "the server answered with an empty body, not the API".into(),
        )),
        Err(_) => Err(ApiError::Protocol(format!(
            "the server answered with something that is not JSON ({} bytes), not the API",
            resp.body.len()
        ))),
    }
}

/// 1/0 as a number, a numeric string or a bool.
fn flag(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n
            .as_i64()
            .map(|i| i != 0)
            .or_else(|| n.as_f64().map(|f| f != 0.0)),
        Value::String(s) => match s.trim() {
            "1" | "true" => Some(true),
            "0" | "false" | "" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// The texts of an `errors` field: null, a string, or a list of strings.
fn texts(v: Option<&Value>, r: &Redactor<'_>) -> Vec<String> {
    match v {
        Some(Value::String(s)) if !s.trim().is_empty() => vec![shorten(s, r)],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| match i {
                Value::String(s) if !s.trim().is_empty() => Some(shorten(s, r)),
                Value::Null => None,
                other => Some(shorten(&other.to_string(), r)),
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The legacy API 2 shapes: `{"cpanelresult":{…,"error":…}}` and the bare
/// `{"data":{"reason":…,"result":"0"},"type":"text","error":…}`. Returns the refusal if the value
/// is one of them and says failure.
fn legacy_failure(v: &Value, r: &Redactor<'_>) -> Option<ApiError> {
    let body = v.get("cpanelresult").unwrap_or(v);
    let error = body
        .get("error")
        .and_then(Value::as_str)
        .filter(|e| !e.trim().is_empty());
    let data_failed = body
        .get("data")
        .and_then(|d| d.get("result"))
        .and_then(flag)
        .is_some_and(|ok| !ok);
    if error.is_none() && !data_failed {
        return None;
    }
    let reason = error
        .map(str::to_string)
        .or_else(|| {
            body.pointer("/data/reason")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| "the call failed (no reason given)".into());
    Some(ApiError::Rejected(shorten(&reason, r)))
}

/// Judge one UAPI envelope (flat, or wrapped as `{"result":{…}}`); returns its `data`.
fn uapi_envelope(v: &Value, r: &Redactor<'_>) -> Result<Value, ApiError> {
    let inner = match v.get("result") {
        Some(r @ Value::Object(_)) if v.get("status").is_none() => r,
        _ => v,
    };
    let Some(status) = inner.get("status") else {
        if let Some(err) = legacy_failure(v, r) {
            return Err(err);
        }
        return Err(ApiError::Protocol(
            "the answer is not a UAPI envelope (no status)".into(),
        ));
    };
    let errors = texts(inner.get("errors"), r);
    match flag(status) {
        Some(true) if errors.is_empty() => Ok(inner.get("data").cloned().unwrap_or(Value::Null)),
        Some(true) | Some(false) => {
            let message = if errors.is_empty() {
                "the call failed (no reason given)".to_string()
            } else {
                errors.join("; ")
            };
            Err(ApiError::Rejected(message))
        }
        None => Err(ApiError::Protocol(
            "the UAPI status is neither 1 nor 0".into(),
        )),
    }
}

/// What `uapi --output=json` or `whmapi1 --output=json` printed (`whm`: whmapi1), judged by
/// the same envelope rules as over HTTP: the `uapi` CLI wraps the UAPI envelope as
/// `{"apiversion":3,"func","module","result":{…}}`, `whmapi1` prints WHM API 1's. Returns
/// `data`. Anything else (a Perl warning, YAML, nothing) is a protocol error, never success.
pub(super) fn parse_cli(stdout: &[u8], whm: bool, r: &Redactor<'_>) -> Result<Value, ApiError> {
    match cli_json(stdout) {
        Ok(v @ Value::Object(_)) if whm => whm_envelope(&v, r),
        Ok(v @ Value::Object(_)) => uapi_envelope(&v, r),
        Ok(_) => Err(ApiError::Protocol(
            "the command printed JSON that is not an API envelope".into(),
        )),
        Err(_) if stdout.iter().all(u8::is_ascii_whitespace) => Err(ApiError::Protocol(
            "the command printed nothing on its standard output".into(),
        )),
        Err(_) => {
            let text = String::from_utf8_lossy(stdout);
            let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            Err(ApiError::Protocol(format!(
                "the command printed something that is not JSON ({} bytes, starting {})",
                stdout.len(),
                shorten(first, r)
            )))
        }
    }
}

/// A batch of `Tokens::list` calls' answers (in order), each as a token list.
pub(super) fn listed_each(
    answers: Vec<Result<Value, ApiError>>,
) -> Vec<Result<Vec<TokenInfo>, ApiError>> {
    answers
        .into_iter()
        .map(|a| a.and_then(|data| parse_uapi_token_list(&data)))
        .collect()
}

/// A batch of `Tokens::create_full_access` calls' answers (in order, one per `names`), each as
/// the new token, a taken name as [`ApiError::Conflict`].
pub(super) fn created_each<'n>(
    answers: Vec<Result<Value, ApiError>>,
    names: impl Iterator<Item = &'n str>,
    expires_at: Option<i64>,
) -> Vec<Result<NewToken, ApiError>> {
    answers
        .into_iter()
        .zip(names)
        .map(|(a, name)| {
            a.map_err(conflict_on_duplicate)
                .and_then(|data| parse_new_token(&data, name, expires_at))
        })
        .collect()
}

/// A command's standard output as JSON: the whole of it, or, when lines the login shell printed
/// first (a banner, an `echo` in `.bashrc`) come before it, from the first line that opens an
/// object to the end. Never less than one whole JSON value.
fn cli_json(stdout: &[u8]) -> serde_json::Result<Value> {
    let whole = serde_json::from_slice::<Value>(stdout);
    if whole.is_ok() {
        return whole;
    }
    let mut at = 0;
    for line in stdout.split_inclusive(|b| *b == b'\n') {
        if line.first() == Some(&b'{')
            && let Ok(v @ Value::Object(_)) = serde_json::from_slice::<Value>(&stdout[at..])
        {
            return Ok(v);
        }
        at += line.len();
    }
    whole
}

/// What `whmapi1 --output=json batch` printed: as [`parse_uapi_cpanel_batch`].
pub(super) fn parse_cli_batch(
    stdout: &[u8],
    sent: usize,
    r: &Redactor<'_>,
) -> Result<Vec<Result<Value, ApiError>>, ApiError> {
    match cli_json(stdout) {
        Ok(v @ Value::Object(_)) => uapi_cpanel_batch_value(&v, sent, r),
        // Not an object: parse_cli says what it is instead (never success).
        _ => Err(parse_cli(stdout, true, r)
            .err()
            .unwrap_or_else(|| ApiError::Protocol("the batch answer is not an object".into()))),
    }
}

/// Server text (a command's standard error) as an error may quote it: redacted, one short line.
pub(super) fn server_text(text: &str, r: &Redactor<'_>) -> String {
    shorten(text, r)
}

/// A UAPI answer from `/execute/Module/function` (flat envelope; HTTP 200 with `status: 0` is a
/// failure). Returns `data`. `r`: the call's secrets, redacted from any server text kept.
pub fn parse_uapi(resp: &Response, r: &Redactor<'_>) -> Result<Value, ApiError> {
    let v = json_body(resp, r)?;
    uapi_envelope(&v, r)
}

/// A WHM API 1 answer: `metadata.result` must be 1, else `metadata.reason` is the refusal.
/// Returns `data` (an empty object when absent).
pub fn parse_whm(resp: &Response, r: &Redactor<'_>) -> Result<Value, ApiError> {
    let v = json_body(resp, r)?;
    whm_envelope(&v, r)
}

fn whm_envelope(v: &Value, r: &Redactor<'_>) -> Result<Value, ApiError> {
    let Some(metadata) = v.get("metadata") else {
        if let Some(err) = legacy_failure(v, r) {
            return Err(err);
        }
        return Err(ApiError::Protocol(
            "the answer is not a WHM API 1 envelope (no metadata)".into(),
        ));
    };
    let reason = metadata
        .get("reason")
        .and_then(Value::as_str)
        .map(|t| shorten(t, r));
    match metadata.get("result").and_then(flag) {
        Some(true) => Ok(v
            .get("data")
            .cloned()
            .unwrap_or_else(|| Value::Object(Default::default()))),
        Some(false) => {
            Err(ApiError::Rejected(reason.unwrap_or_else(|| {
                "the call failed (no reason given)".into()
            })))
        }
        None => Err(ApiError::Protocol(
            "the WHM metadata.result is neither 1 nor 0".into(),
        )),
    }
}

/// A `uapi_cpanel` answer: the WHM envelope must succeed AND the UAPI envelope in `data.uapi`
/// (`metadata.result` is 1 even when the inner call failed). Returns the inner `data`.
pub fn parse_uapi_cpanel(resp: &Response, r: &Redactor<'_>) -> Result<Value, ApiError> {
    let v = json_body(resp, r)?;
    uapi_cpanel_envelope(&v, r)
}

/// One `uapi_cpanel` envelope (alone, or one of a batch's `data.result[]`): the inner `data`.
fn uapi_cpanel_envelope(v: &Value, r: &Redactor<'_>) -> Result<Value, ApiError> {
    let data = whm_envelope(v, r)?;
    match data.get("uapi") {
        Some(inner @ Value::Object(_)) => uapi_envelope(inner, r),
        _ => {
            if let Some(err) = legacy_failure(&data, r) {
                return Err(err);
            }
            Err(ApiError::Protocol(
                "the uapi_cpanel answer has no data.uapi".into(),
            ))
        }
    }
}

/// A WHM API 1 `batch` answer that carried `sent` `uapi_cpanel` calls: each call's inner `data`
/// or its own failure, in order. The batch's own `metadata.result` is 0 whenever one command
/// failed, so it decides nothing while `data.result` is there; without `data.result` the batch
/// as a whole was refused (too many commands, say), which is every call's failure. A command
/// absent from `data.result` (a server that stopped early) did not answer: a
/// [`ApiError::Protocol`], which a create treats as possibly made (list before deciding).
pub(super) fn parse_uapi_cpanel_batch(
    resp: &Response,
    sent: usize,
    r: &Redactor<'_>,
) -> Result<Vec<Result<Value, ApiError>>, ApiError> {
    let v = json_body(resp, r)?;
    uapi_cpanel_batch_value(&v, sent, r)
}

/// [`parse_uapi_cpanel_batch`] of an answer already parsed (`whmapi1 batch`'s output too).
pub(super) fn uapi_cpanel_batch_value(
    v: &Value,
    sent: usize,
    r: &Redactor<'_>,
) -> Result<Vec<Result<Value, ApiError>>, ApiError> {
    let Some(results) = v.pointer("/data/result").and_then(Value::as_array) else {
        whm_envelope(v, r)?;
        return Err(ApiError::Protocol(
            "the batch answer has no data.result".into(),
        ));
    };
    if results.len() > sent {
        return Err(ApiError::Protocol(format!(
            "the batch answer holds {} results for {sent} commands",
            results.len()
        )));
    }
    let mut out: Vec<Result<Value, ApiError>> = results
        .iter()
        .map(|one| uapi_cpanel_envelope(one, r))
        .collect();
    while out.len() < sent {
        out.push(Err(ApiError::Protocol(
            "the batch answer holds no result for this command (the server stopped early)".into(),
        )));
    }
    Ok(out)
}

/// One `uapi_cpanel` Tokens call of a `batch` as its command: `account`'s `function` with `args`.
pub(super) fn uapi_cpanel_command(account: &str, function: &str, args: &[(&str, &str)]) -> String {
    let mut all: Vec<(&str, &str)> = vec![
        ("cpanel.user", account),
        ("cpanel.module", "Tokens"),
        ("cpanel.function", function),
    ];
    all.extend_from_slice(args);
    batch_command("uapi_cpanel", &all)
}

/// One call inside a WHM API 1 `batch`: `function?arg=value&…`, every name and value
/// percent-encoded (the form encoding of the batch request encodes the whole again).
pub(super) fn batch_command(function: &str, args: &[(&str, &str)]) -> String {
    fn enc(out: &mut String, text: &str) {
        for b in text.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    let mut out = String::from(function);
    for (n, (k, v)) in args.iter().enumerate() {
        out.push(if n == 0 { '?' } else { '&' });
        enc(&mut out, k);
        out.push('=');
        enc(&mut out, v);
    }
    out
}

/// Unix seconds as a number, a numeric string, or absent/null.
fn lenient_time(v: Option<&Value>) -> Result<Option<i64>, ()> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .map(Some)
            .ok_or(()),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => s.trim().parse::<i64>().map(Some).map_err(|_| ()),
        Some(_) => Err(()),
    }
}

/// `expires_at`: number, numeric string, null, and `0`/`"0"`/`""` = never.
fn expiry(v: Option<&Value>, what: &str) -> Result<Option<i64>, ApiError> {
    match lenient_time(v) {
        Ok(Some(0)) | Ok(None) => Ok(None),
        Ok(Some(t)) => Ok(Some(t)),
        Err(()) => Err(ApiError::Protocol(format!(
            "{what}: expires_at is not a time"
        ))),
    }
}

fn create_time(v: Option<&Value>, what: &str) -> Result<Option<i64>, ApiError> {
    match lenient_time(v) {
        Ok(Some(0)) | Ok(None) => Ok(None),
        Ok(t) => Ok(t),
        Err(()) => Err(ApiError::Protocol(format!(
            "{what}: create_time is not a time"
        ))),
    }
}

/// A token secret is 32 characters of `A-Z0-9`.
fn is_token_shaped(token: &str) -> bool {
    token.len() == 32
        && token
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// The `data` of `create_full_access` (`{create_time, token}`) or `api_token_create`
/// (`{name, token, create_time, expires_at}`). The secret never appears in an error.
pub(super) fn parse_new_token(
    data: &Value,
    name: &str,
    requested_expiry: Option<i64>,
) -> Result<NewToken, ApiError> {
    let token = match data.get("token") {
        Some(Value::String(t)) => t,
        _ => {
            return Err(ApiError::Protocol(
                "the create answer holds no token".into(),
            ));
        }
    };
    if !is_token_shaped(token) {
        return Err(ApiError::Protocol(
            "the create answer holds a token that is not 32 characters of A-Z0-9 (not shown); \
             the server may have created it: list and revoke it by name"
                .into(),
        ));
    }
    let token = Secret::new(token.as_str());
    let create_time = create_time(data.get("create_time"), "create answer")?
        .unwrap_or_else(|| jiff::Timestamp::now().as_second());
    let expires_at = match data.get("expires_at") {
        None => requested_expiry,
        v => expiry(v, "create answer")?,
    };
    let name = data
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or(name)
        .to_string();
    Ok(NewToken {
        name,
        token,
        create_time,
        expires_at,
    })
}

fn token_info(item: &Value, key: Option<&str>) -> Result<TokenInfo, ApiError> {
    let name = match (item.get("name").and_then(Value::as_str), key) {
        (Some(n), _) => n.to_string(),
        (None, Some(k)) => k.to_string(),
        (None, None) => return Err(ApiError::Protocol("a listed token has no name".into())),
    };
    Ok(TokenInfo {
        create_time: create_time(item.get("create_time"), "token list")?,
        expires_at: expiry(item.get("expires_at"), "token list")?,
        name,
        acls: acls(item.get("acls")),
        whitelist_ips: whitelist(item.get("whitelist_ips")),
        full_access: item.get("has_full_access").and_then(flag),
    })
}

/// WHM `acls`: a map of ACL name to 0/1 (`api_token_list`) or a list of names (a create
/// answer); the names granted, sorted. Anything else says nothing.
fn acls(v: Option<&Value>) -> Option<Vec<String>> {
    let mut names: Vec<String> = match v? {
        Value::Object(map) => map
            .iter()
            .filter(|(_, on)| flag(on).unwrap_or(false))
            .map(|(k, _)| k.clone())
            .collect(),
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => return None,
    };
    names.sort();
    Some(names)
}

/// WHM `whitelist_ips`: null or a list of addresses/CIDRs.
fn whitelist(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// UAPI `Tokens::list` `data`: an array of tokens (null = none).
pub(super) fn parse_uapi_token_list(data: &Value) -> Result<Vec<TokenInfo>, ApiError> {
    match data {
        Value::Array(items) => items.iter().map(|i| token_info(i, None)).collect(),
        Value::Null => Ok(Vec::new()),
        _ => Err(ApiError::Protocol("the token list is not a list".into())),
    }
}

/// WHM `api_token_list` `data`: `tokens` is an object keyed by name (an array is accepted too).
pub(super) fn parse_whm_token_list(data: &Value) -> Result<Vec<TokenInfo>, ApiError> {
    match data.get("tokens") {
        Some(Value::Object(map)) => map.iter().map(|(k, v)| token_info(v, Some(k))).collect(),
        Some(Value::Array(items)) => items.iter().map(|i| token_info(i, None)).collect(),
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(_) => Err(ApiError::Protocol(
            "data.tokens is neither an object nor a list".into(),
        )),
    }
}

/// WHM `version` `data`: the version string.
pub(super) fn parse_version(data: &Value) -> Result<String, ApiError> {
    match data.get("version") {
        Some(Value::String(v)) => Ok(v.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => Err(ApiError::Protocol(
            "the WHM version answer has no data.version".into(),
        )),
    }
}

/// WHM `listaccts` `data.acct`.
pub(super) fn parse_accounts(data: &Value, r: &Redactor<'_>) -> Result<Vec<AccountInfo>, ApiError> {
    let items = match data.get("acct") {
        Some(Value::Array(items)) => items,
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(_) => return Err(ApiError::Protocol("data.acct is not a list".into())),
    };
    items
        .iter()
        .map(|a| {
            let text = |k: &str| {
                a.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            let user = text("user");
            if user.is_empty() {
                return Err(ApiError::Protocol(
                    "an account in listaccts has no user".into(),
                ));
            }
            let suspended = match a.get("suspended") {
                None | Some(Value::Null) => false,
                Some(v) => flag(v).ok_or_else(|| {
                    ApiError::Protocol(format!(
                        "listaccts: account {}: suspended is neither 0 nor 1",
                        shorten(&user, r)
                    ))
                })?,
            };
            Ok(AccountInfo {
                domain: text("domain"),
                owner: text("owner"),
                suspended,
                user,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TOKEN: &str = "JPQNSRU0DH448UJLGXH7KVJECC5QN9N9";

    /// No credentials: only the token-shape rule.
    static NONE: std::sync::LazyLock<Redactor<'static>> = std::sync::LazyLock::new(Redactor::new);

    fn ok(body: &str) -> Response {
        Response {
            status: 200,
            location: None,
            content_type: Some("application/json".into()),
            body: body.as_bytes().to_vec(),
        }
    }

    fn with_status(status: u16, body: &str) -> Response {
        Response { status, ..ok(body) }
    }

    // ---- the CLIs' output (SSH) ----

    #[test]
    fn cli_output_is_judged_as_the_http_envelopes() {
        let wrapped = format!(
            r#"{{"apiversion":3,"func":"create_full_access","module":"Tokens","result":{{"data":{{"token":"{TOKEN}","create_time":1}},"errors":null,"status":1}}}}"#
        );
        let data = parse_cli(wrapped.as_bytes(), false, &NONE).unwrap();
        assert_eq!(data["token"], TOKEN);
        // A shell banner before it is not the answer, and not a failure.
        let noisy = format!("Welcome to web1!\n\n{wrapped}\n");
        assert_eq!(parse_cli(noisy.as_bytes(), false, &NONE).unwrap(), data);
        // status 0 is a refusal, whatever the exit code said.
        let refused = r#"{"result":{"data":null,"errors":["The name “x” is taken."],"status":0}}"#;
        assert!(matches!(
            parse_cli(refused.as_bytes(), false, &NONE),
            Err(ApiError::Rejected(_))
        ));
        let whm = r#"{"data":{"version":"11.126"},"metadata":{"result":1,"reason":"OK"}}"#;
        assert_eq!(
            parse_cli(whm.as_bytes(), true, &NONE).unwrap()["version"],
            "11.126"
        );
        for bad in [
            "",
            "Use of uninitialized value at line 42.\n",
            "---\napiversion: 3\n",
            "[1,2]",
            "Welcome\n{\"half\":",
        ] {
            let e = parse_cli(bad.as_bytes(), false, &NONE).unwrap_err();
            assert!(matches!(e, ApiError::Protocol(_)), "{bad:?}: {e:?}");
        }
        // A token quoted in text that is not the answer never reaches the error.
        let e = parse_cli(format!("oops {TOKEN}\n").as_bytes(), false, &NONE).unwrap_err();
        assert!(!e.to_string().contains(TOKEN), "{e}");
    }

    // ---- UAPI flat envelope ----

    #[test]
    fn uapi_success_returns_data() {
        let r = ok(&format!(
            r#"{{"data":{{"create_time":1549467298,"token":"{TOKEN}"}},"errors":null,"messages":null,"metadata":{{}},"status":1,"warnings":null}}"#
        ));
        let data = parse_uapi(&r, &NONE).unwrap();
        let t = parse_new_token(&data, "ci", None).unwrap();
        assert_eq!(t.name, "ci");
        assert_eq!(t.token.expose(), TOKEN);
        assert_eq!(t.create_time, 1549467298);
        assert_eq!(t.expires_at, None);
    }

    #[test]
    fn uapi_http_200_with_status_0_is_a_refusal() {
        let r = ok(
            r#"{"data":null,"errors":["The “expires_at” value must be a future date."],"messages":null,"metadata":{},"status":0,"warnings":null}"#,
        );
        assert_eq!(
            parse_uapi(&r, &NONE),
            Err(ApiError::Rejected(
                "The “expires_at” value must be a future date.".into()
            ))
        );
    }

    #[test]
    fn uapi_status_as_string_and_missing_errors() {
        assert_eq!(
            parse_uapi(&ok(r#"{"data":1,"status":"1"}"#), &NONE),
            Ok(Value::from(1))
        );
        assert_eq!(
            parse_uapi(&ok(r#"{"data":null,"status":"0"}"#), &NONE),
            Err(ApiError::Rejected(
                "the call failed (no reason given)".into()
            ))
        );
    }

    #[test]
    fn uapi_wrapped_result_form_is_accepted() {
        let r = ok(
            r#"{"apiversion":3,"func":"list","module":"Tokens","result":{"data":[],"errors":null,"status":1}}"#,
        );
        assert_eq!(parse_uapi(&r, &NONE), Ok(Value::Array(vec![])));
        let r = ok(
            r#"{"apiversion":3,"func":"revoke","module":"Tokens","result":{"data":null,"errors":["no"],"status":0}}"#,
        );
        assert_eq!(parse_uapi(&r, &NONE), Err(ApiError::Rejected("no".into())));
    }

    #[test]
    fn uapi_wrong_shape_is_protocol() {
        assert!(matches!(
            parse_uapi(&ok(r#"{"hello":"world"}"#), &NONE),
            Err(ApiError::Protocol(_))
        ));
        assert!(matches!(
            parse_uapi(&ok(r#"[1,2]"#), &NONE),
            Err(ApiError::Protocol(_))
        ));
        assert!(matches!(
            parse_uapi(&ok(r#"{"status":"maybe"}"#), &NONE),
            Err(ApiError::Protocol(_))
        ));
    }

    #[test]
    fn duplicate_name_on_create_is_a_conflict() {
        let m = "The system failed to create the API token: A conflicting API token with the name “ci” already exists.";
        assert!(matches!(
            conflict_on_duplicate(ApiError::Rejected(m.into())),
            ApiError::Conflict(_)
        ));
        assert!(matches!(
            conflict_on_duplicate(ApiError::Rejected("Provide the “name” argument.".into())),
            ApiError::Rejected(_)
        ));
    }

    // ---- HTTP-level answers ----

    #[test]
    fn html_answer_is_a_protocol_error_never_success() {
        let mut r = ok("<!DOCTYPE html><html><body>cPanel Login</body></html>");
        r.content_type = Some("text/html; charset=utf-8".into());
        assert_eq!(
            parse_uapi(&r, &NONE),
            Err(ApiError::Protocol(HTML_ANSWER.into()))
        );
        assert_eq!(
            parse_whm(&r, &NONE),
            Err(ApiError::Protocol(HTML_ANSWER.into()))
        );
        assert_eq!(
            parse_uapi_cpanel(&r, &NONE),
            Err(ApiError::Protocol(HTML_ANSWER.into()))
        );
        // HTML without the header is still HTML.
        let mut r = ok("  \n<html>proxy</html>");
        r.content_type = None;
        assert_eq!(
            parse_uapi(&r, &NONE),
            Err(ApiError::Protocol(HTML_ANSWER.into()))
        );
    }

    #[test]
    fn non_json_and_empty_answers_are_protocol_errors_without_the_body() {
        let r = ok("some plain text with SECRETSTUFF");
        match parse_uapi(&r, &NONE) {
            Err(ApiError::Protocol(m)) => assert!(!m.contains("SECRETSTUFF"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_uapi(&ok(""), &NONE),
            Err(ApiError::Protocol(_))
        ));
    }

    #[test]
    fn redirect_is_a_protocol_error_naming_the_location() {
        let mut r = with_status(301, "");
        r.location = Some("https://web1.example.net:2083/login/".into());
        match parse_whm(&r, &NONE) {
            Err(ApiError::Protocol(m)) => {
                assert!(m.contains("https://web1.example.net:2083/login/"), "{m}");
                assert!(m.contains("redirects are not followed"), "{m}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn auth_refusals_carry_a_short_reason() {
        let r = with_status(
            403,
            r#"{"cpanelresult":{"apiversion":"2","error":"Access denied","data":{"reason":"Access denied","result":"0"},"type":"text"}}"#,
        );
        assert_eq!(
            parse_uapi(&r, &NONE),
            Err(ApiError::Auth {
                status: 403,
                message: "Access denied".into()
            })
        );
        let r = with_status(
            403,
            r#"{"metadata":{"reason":"Permission denied","result":0}}"#,
        );
        assert_eq!(
            parse_whm(&r, &NONE),
            Err(ApiError::Auth {
                status: 403,
                message: "Permission denied".into()
            })
        );
        let r = with_status(
            403,
            "Token authentication allows access to UAPI or API 2 calls only.",
        );
        assert_eq!(
            parse_whm(&r, &NONE),
            Err(ApiError::Auth {
                status: 403,
                message: "Token authentication allows access to UAPI or API 2 calls only.".into()
            })
        );
        let long = format!("<html>{}</html>", "x".repeat(5000));
        let r = with_status(401, &long);
        match parse_uapi(&r, &NONE) {
            Err(ApiError::Auth {
                status: 401,
                message,
            }) => assert_eq!(message, "the server refused the credential"),
            other => panic!("{other:?}"),
        }
        let long_json = format!(r#"{{"cpanelresult":{{"error":"{}"}}}}"#, "y".repeat(5000));
        match parse_uapi(&with_status(401, &long_json), &NONE) {
            Err(ApiError::Auth { message, .. }) => assert!(
                message.chars().count() <= MAX_MESSAGE + 1,
                "{}",
                message.len()
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn other_statuses_are_http_errors_and_retryable_where_it_helps() {
        for (status, retry) in [
            (429, true),
            (500, true),
            (503, true),
            (404, false),
            (400, false),
        ] {
            let e = parse_uapi(&with_status(status, "{}"), &NONE).unwrap_err();
            assert_eq!(e, ApiError::Http { status });
            assert_eq!(e.is_retryable(), retry, "{status}");
        }
        assert!(
            !parse_uapi(&with_status(401, ""), &NONE)
                .unwrap_err()
                .is_retryable()
        );
    }

    // ---- WHM API 1 ----

    #[test]
    fn whm_success_and_failure() {
        let r = ok(
            r#"{"data":{"version":"11.126.0.9"},"metadata":{"command":"version","reason":"OK","result":1,"version":1}}"#,
        );
        assert_eq!(parse_whm(&r, &NONE).unwrap()["version"], "11.126.0.9");
        let r = ok(
            r#"{"metadata":{"command":"api_token_create","reason":"The system failed to create the API token: A conflicting API token with the name “ci” already exists.","result":0,"version":1}}"#,
        );
        let e = conflict_on_duplicate(parse_whm(&r, &NONE).unwrap_err());
        assert!(
            matches!(e, ApiError::Conflict(ref m) if m.contains("conflicting API token")),
            "{e:?}"
        );
        assert!(matches!(
            parse_whm(&ok(r#"{"data":{}}"#), &NONE),
            Err(ApiError::Protocol(_))
        ));
        assert_eq!(
            parse_whm(&ok(r#"{"metadata":{"result":"1"}}"#), &NONE),
            Ok(serde_json::json!({}))
        );
    }

    #[test]
    fn whm_create_answer() {
        let r = ok(&format!(
            r#"{{"data":{{"name":"ops","token":"{TOKEN}","create_time":"1700000000","expires_at":0,"acls":["all"]}},"metadata":{{"result":1,"reason":"OK"}}}}"#
        ));
        let t = parse_new_token(&parse_whm(&r, &NONE).unwrap(), "ops", Some(99)).unwrap();
        assert_eq!(
            (t.name.as_str(), t.create_time, t.expires_at),
            ("ops", 1700000000, None)
        );
        let r = ok(&format!(
            r#"{{"data":{{"name":"ops","token":"{TOKEN}","create_time":1700000000,"expires_at":"1800000000"}},"metadata":{{"result":1}}}}"#
        ));
        assert_eq!(
            parse_new_token(&parse_whm(&r, &NONE).unwrap(), "ops", None)
                .unwrap()
                .expires_at,
            Some(1800000000)
        );
    }

    #[test]
    fn a_malformed_token_is_refused_and_not_printed() {
        for bad in [
            "short",
            "jpqnsru0dh448ujlgxh7kvjecc5qn9n9",
            "JPQNSRU0DH448UJLGXH7KVJECC5QN9N9X",
            "JPQNSRU0DH448UJLGXH7KVJECC5QN9N-",
        ] {
            let data = serde_json::json!({"create_time": 1, "token": bad});
            match parse_new_token(&data, "n", None) {
                Err(ApiError::Protocol(m)) => assert!(!m.contains(bad), "{m}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        assert!(matches!(
            parse_new_token(&serde_json::json!({"create_time": 1}), "n", None),
            Err(ApiError::Protocol(_))
        ));
        assert!(matches!(
            parse_new_token(&serde_json::json!({"token": 5}), "n", None),
            Err(ApiError::Protocol(_))
        ));
    }

    #[test]
    fn uapi_create_keeps_the_requested_expiry() {
        let data = serde_json::json!({"create_time": 1549467298, "token": TOKEN});
        assert_eq!(
            parse_new_token(&data, "n", Some(1900000000))
                .unwrap()
                .expires_at,
            Some(1900000000)
        );
    }

    #[test]
    fn uapi_list_with_every_expires_at_spelling() {
        let r = ok(r#"{"data":[
            {"create_time":1549467298,"expires_at":1609372800,"features":[],"has_full_access":1,"name":"a"},
            {"create_time":"1549467299","expires_at":"1609372800","features":[],"has_full_access":1,"name":"b"},
            {"create_time":1549467300,"expires_at":null,"features":[],"has_full_access":1,"name":"c"},
            {"create_time":1549467301,"name":"d"},
            {"create_time":1549467302,"expires_at":"","name":"e"}
        ],"errors":null,"messages":null,"metadata":{},"status":1,"warnings":null}"#);
        let list = parse_uapi_token_list(&parse_uapi(&r, &NONE).unwrap()).unwrap();
        let got: Vec<_> = list
            .iter()
            .map(|t| (t.name.as_str(), t.create_time, t.expires_at))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a", Some(1549467298), Some(1609372800)),
                ("b", Some(1549467299), Some(1609372800)),
                ("c", Some(1549467300), None),
                ("d", Some(1549467301), None),
                ("e", Some(1549467302), None),
            ]
        );
        assert_eq!(parse_uapi_token_list(&Value::Null).unwrap(), vec![]);
        assert!(matches!(
            parse_uapi_token_list(&serde_json::json!({"a":1})),
            Err(ApiError::Protocol(_))
        ));
        assert!(matches!(
            parse_uapi_token_list(&serde_json::json!([{"name":"x","expires_at":"soon"}])),
            Err(ApiError::Protocol(_))
        ));
    }

    #[test]
    fn whm_list_acls_as_a_map_and_the_allow_list() {
        let data = serde_json::json!({"tokens": {
            "dns": {"name":"dns","create_time":1,"expires_at":null,
                    "acls":{"clustering":1,"all":0,"list-accts":"1","create-acct":"0"},
                    "whitelist_ips":["10.0.0.0/8","192.0.2.7"]},
            "wide": {"name":"wide","create_time":1,"expires_at":null,"acls":["all"],"whitelist_ips":[]},
        }});
        let mut list = parse_whm_token_list(&data).unwrap();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(
            list[0].acls,
            Some(vec!["clustering".to_string(), "list-accts".to_string()])
        );
        assert_eq!(list[0].whitelist_ips, vec!["10.0.0.0/8", "192.0.2.7"]);
        assert_eq!(list[1].acls, Some(vec!["all".to_string()]));
        assert!(list[1].whitelist_ips.is_empty());
        let uapi = parse_uapi_token_list(&serde_json::json!([
            {"name":"a","create_time":1,"has_full_access":1},
            {"name":"b","create_time":1,"has_full_access":"0"},
            {"name":"c","create_time":1},
        ]))
        .unwrap();
        let full: Vec<_> = uapi.iter().map(|t| t.full_access).collect();
        assert_eq!(full, vec![Some(true), Some(false), None]);
        assert!(uapi.iter().all(|t| t.acls.is_none()));
    }

    #[test]
    fn whm_list_is_an_object_keyed_by_name() {
        let r = ok(r#"{"data":{"tokens":{
            "ops":{"name":"ops","create_time":1700000000,"expires_at":null,"acls":{"all":1},"whitelist_ips":null},
            "ci":{"create_time":"1700000001","expires_at":"0"},
            "tmp":{"name":"tmp","create_time":1700000002,"expires_at":1800000000}
        }},"metadata":{"command":"api_token_list","reason":"OK","result":1,"version":1}}"#);
        let mut list = parse_whm_token_list(&parse_whm(&r, &NONE).unwrap()).unwrap();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(
            list,
            vec![
                TokenInfo::new("ci", Some(1700000001), None),
                TokenInfo {
                    acls: Some(vec!["all".into()]),
                    ..TokenInfo::new("ops", Some(1700000000), None)
                },
                TokenInfo::new("tmp", Some(1700000002), Some(1800000000)),
            ]
        );
        assert_eq!(
            parse_whm_token_list(&serde_json::json!({"tokens": {}})).unwrap(),
            vec![]
        );
        assert_eq!(
            parse_whm_token_list(&serde_json::json!({})).unwrap(),
            vec![]
        );
    }

    // ---- uapi_cpanel ----

    #[test]
    fn uapi_cpanel_checks_the_inner_status() {
        let r = ok(
            r#"{"data":{"uapi":{"data":null,"errors":["A conflicting API token with the name “ci” already exists."],"messages":null,"metadata":{},"status":0,"warnings":null}},"metadata":{"command":"uapi_cpanel","reason":"OK","result":1,"version":1}}"#,
        );
        let e = conflict_on_duplicate(parse_uapi_cpanel(&r, &NONE).unwrap_err());
        assert!(matches!(e, ApiError::Conflict(_)), "{e:?}");
        let r = ok(&format!(
            r#"{{"data":{{"uapi":{{"data":{{"create_time":1549467298,"token":"{TOKEN}"}},"errors":null,"status":1}}}},"metadata":{{"command":"uapi_cpanel","reason":"OK","result":1,"version":1}}}}"#
        ));
        assert_eq!(
            parse_uapi_cpanel(&r, &NONE).unwrap()["create_time"],
            1549467298
        );
    }

    #[test]
    fn uapi_cpanel_outer_failure_and_missing_inner() {
        let r = ok(
            r#"{"metadata":{"command":"uapi_cpanel","reason":"You do not have permission to act for “root”.","result":0,"version":1}}"#,
        );
        assert!(
            matches!(parse_uapi_cpanel(&r, &NONE), Err(ApiError::Rejected(m)) if m.contains("permission"))
        );
        let r = ok(r#"{"data":{},"metadata":{"result":1}}"#);
        assert!(matches!(
            parse_uapi_cpanel(&r, &NONE),
            Err(ApiError::Protocol(_))
        ));
        // inner envelope in its wrapped form
        let r = ok(
            r#"{"data":{"uapi":{"result":{"data":1,"errors":null,"status":1}}},"metadata":{"result":1}}"#,
        );
        assert_eq!(parse_uapi_cpanel(&r, &NONE), Ok(Value::from(1)));
    }

    #[test]
    fn legacy_unknown_user_answer_is_a_refusal() {
        let r = ok(
            r#"{"data":{"reason":"User parameter is invalid or was not supplied","result":"0"},"type":"text","error":"User parameter is invalid or was not supplied"}"#,
        );
        assert_eq!(
            parse_uapi(&r, &NONE),
            Err(ApiError::Rejected(
                "User parameter is invalid or was not supplied".into()
            ))
        );
        assert_eq!(
            parse_whm(&r, &NONE),
            Err(ApiError::Rejected(
                "User parameter is invalid or was not supplied".into()
            ))
        );
        let r = ok(
            r#"{"cpanelresult":{"apiversion":"2","error":"Access denied","data":{"reason":"Access denied","result":"0"},"type":"text"}}"#,
        );
        assert_eq!(
            parse_uapi(&r, &NONE),
            Err(ApiError::Rejected("Access denied".into()))
        );
    }

    #[test]
    fn revoke_answers_data_0_and_1_are_both_success() {
        for data in ["0", "1"] {
            let r = ok(&format!(
                r#"{{"data":{data},"errors":null,"messages":null,"metadata":{{}},"status":1,"warnings":null}}"#
            ));
            assert!(parse_uapi(&r, &NONE).is_ok());
        }
        assert!(is_missing_token("The API token “x” does not exist."));
        let r = ok(
            r#"{"data":{},"metadata":{"command":"api_token_revoke","reason":"OK","result":1,"version":1}}"#,
        );
        assert!(parse_whm(&r, &NONE).is_ok());
    }

    // ---- listaccts ----

    #[test]
    fn listaccts_suspended_as_number_or_string() {
        let r = ok(r#"{"data":{"acct":[
            {"user":"alice","domain":"alice.example","owner":"root","suspended":0},
            {"user":"bob","domain":"bob.example","owner":"res1","suspended":"1"},
            {"user":"carol","domain":"carol.example","owner":"root","suspended":1}
        ]},"metadata":{"command":"listaccts","reason":"OK","result":1,"version":1}}"#);
        let accts = parse_accounts(&parse_whm(&r, &NONE).unwrap(), &NONE).unwrap();
        let got: Vec<_> = accts
            .iter()
            .map(|a| (a.user.as_str(), a.owner.as_str(), a.suspended))
            .collect();
        assert_eq!(
            got,
            vec![
                ("alice", "root", false),
                ("bob", "res1", true),
                ("carol", "root", true)
            ]
        );
        assert_eq!(accts[0].domain, "alice.example");
        assert!(matches!(
            parse_accounts(&serde_json::json!({"acct":[{"domain":"x"}]}), &NONE),
            Err(ApiError::Protocol(_))
        ));
        assert!(matches!(
            parse_accounts(
                &serde_json::json!({"acct":[{"user":"x","suspended":"maybe"}]}),
                &NONE
            ),
            Err(ApiError::Protocol(_))
        ));
        assert_eq!(
            parse_accounts(&serde_json::json!({}), &NONE).unwrap(),
            vec![]
        );
    }

    #[test]
    fn authorization_kinds_follow_the_endpoint() {
        let s = Secret::new("T");
        assert!(matches!(
            authorization("u", &s, AuthKind::Token, true),
            Authorization::Token { scheme: "whm", .. }
        ));
        assert!(matches!(
            authorization("u", &s, AuthKind::Token, false),
            Authorization::Token {
                scheme: "cpanel",
                ..
            }
        ));
        assert!(matches!(
            authorization("u", &s, AuthKind::Password, true),
            Authorization::Basic { .. }
        ));
    }

    proptest! {
        #[test]
        fn parsers_never_panic_on_any_body(body in proptest::collection::vec(any::<u8>(), 0..256), status in 100u16..600) {
            let r = Response { status, location: None, content_type: None, body };
            let _ = parse_uapi(&r, &NONE);
            let _ = parse_whm(&r, &NONE);
            let _ = parse_uapi_cpanel(&r, &NONE);
        }

        #[test]
        fn parsers_never_panic_on_any_json(v in arb_json()) {
            let r = ok(&v.to_string());
            for data in [parse_uapi(&r, &NONE), parse_whm(&r, &NONE), parse_uapi_cpanel(&r, &NONE)].into_iter().flatten() {
                let _ = parse_uapi_token_list(&data);
                let _ = parse_whm_token_list(&data);
                let _ = parse_accounts(&data, &NONE);
                let _ = parse_new_token(&data, "n", None);
            }
        }

        #[test]
        fn times_read_the_same_as_number_or_string(t in 1i64..4_000_000_000) {
            let as_number = serde_json::json!({"name": "x", "create_time": t, "expires_at": t});
            let as_string = serde_json::json!({"name": "x", "create_time": t.to_string(), "expires_at": format!(" {t} ")});
            let a = token_info(&as_number, None).unwrap();
            prop_assert_eq!(&a, &token_info(&as_string, None).unwrap());
            prop_assert_eq!(a.expires_at, Some(t));
        }

        #[test]
        fn only_32_uppercase_alphanumerics_are_tokens(s in "[A-Za-z0-9_-]{0,40}") {
            let expected = s.len() == 32 && s.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
            prop_assert_eq!(is_token_shaped(&s), expected);
        }
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "[0-9]{0,12}".prop_map(Value::from),
            "[a-z_]{0,8}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            let keys = prop_oneof![
                Just("data".to_string()),
                Just("status".to_string()),
                Just("errors".to_string()),
                Just("metadata".to_string()),
                Just("result".to_string()),
                Just("uapi".to_string()),
                Just("tokens".to_string()),
                Just("acct".to_string()),
                Just("token".to_string()),
                Just("name".to_string()),
                Just("expires_at".to_string()),
                Just("cpanelresult".to_string()),
                Just("error".to_string()),
                "[a-z]{1,4}",
            ];
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map(keys, inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
