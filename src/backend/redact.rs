//! Why this module exists: servers, and the proxies in front of them, put credentials and tokens
//! in their error text: a proxy echoing the Authorization header into a 401 body, a 403 JSON
//! error or `metadata.reason`; an inner UAPI error quoting the token it has just made. That text
//! becomes part of an [`ApiError`](super::ApiError), and from there the report, the journal's
//! plaintext `failed` records and stderr. So every piece of server text passes through
//! [`Redactor::redact`] before it is stored in an error (`protocol.rs` does it in one place, where
//! it cuts server text to one short line).
//!
//! Two rules, applied to the original text at once (one pass: a replacement is never matched
//! again, and overlapping matches become one `[redacted]`):
//!
//! 1. **Credentials of the call.** Every credential value the call holds (the one it sent, the
//!    host's, the owner's) and every form an Authorization header carries it in: `TOKEN`,
//!    `USER:TOKEN`, `whm USER:TOKEN`, `cpanel USER:TOKEN`, `Basic base64(USER:PASS)` and the
//!    base64 itself (with or without its `=` padding), and base64 of the value alone. Matched
//!    without regard to ASCII case (a proxy that lower-cases still leaks). Every non-empty
//!    value is redacted, however short: a one-letter password makes messages ugly, not leaky.
//! 2. **Token-shaped strings**, whoever they belong to (a new token the client has not read, a
//!    token of another run): a maximal run of ASCII letters and digits at least
//!    [`TOKEN_RUN`] (24) long that either holds both a letter and a digit, or holds 24 characters
//!    in a row of cPanel's token alphabet `[A-Z0-9]`. cPanel tokens are 32 characters of
//!    `A-Z0-9`, so any token, wherever it is embedded, is caught by the second half (even one
//!    with no digit, glued to other letters); the first half also catches tokens of another
//!    alphabet (lower case, hex, base64 fragments). Ordinary words, long lower-case words and
//!    the short names cPanel uses (accounts, token names like `ci-20250101`) are kept.

use crate::secret::Secret;

/// What a redacted span becomes.
pub const REDACTED: &str = "[redacted]";

/// The shortest run of ASCII letters and digits treated as token-shaped.
pub const TOKEN_RUN: usize = 24;

/// The credentials in play in one call. Cheap to build (references only); the forms of each
/// credential are computed only when there is text to redact, i.e. on the error path.
#[derive(Clone, Default)]
pub struct Redactor<'a> {
    creds: Vec<(&'a str, &'a Secret)>,
}

impl std::fmt::Debug for Redactor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} credentials)", self.creds.len())
    }
}

impl<'a> Redactor<'a> {
    /// Only the token-shape rule.
    pub fn new() -> Self {
        Redactor::default()
    }

    /// A credential (token or password) that `user` authenticates with: its value and the forms
    /// an Authorization header carries it in.
    pub fn credential(mut self, user: &'a str, secret: &'a Secret) -> Self {
        self.creds.push((user, secret));
        self
    }

    /// The text with every credential form and every token-shaped string replaced by
    /// [`REDACTED`].
    pub fn redact(&self, text: &str) -> String {
        let mut spans = token_shaped_spans(text);
        if !self.creds.is_empty() {
            let lower = text.to_ascii_lowercase();
            for needle in self.needles() {
                spans.extend(occurrences(&lower, needle.expose()));
            }
        }
        replace_spans(text, spans)
    }

    /// Every form of every credential, ASCII-lowercased, each kept in a [`Secret`] so it is
    /// zeroized when dropped.
    fn needles(&self) -> Vec<Secret> {
        let mut out = Vec::new();
        for (user, secret) in &self.creds {
            let value = secret.expose();
            if value.is_empty() {
                continue;
            }
            push(&mut out, value.to_string());
            push_base64(&mut out, value);
            let pair = Secret::new(format!("{user}:{value}"));
            let pair = pair.expose();
            push(&mut out, pair.to_string());
            push(&mut out, format!("whm {pair}"));
            push(&mut out, format!("cpanel {pair}"));
            let encoded = push_base64(&mut out, pair);
            push(&mut out, format!("basic {}", encoded.expose()));
        }
        out
    }
}

/// Keep one form (moved, so no copy of it is left behind unzeroized).
fn push(out: &mut Vec<Secret>, mut form: String) {
    if !form.is_empty() {
        form.make_ascii_lowercase();
        out.push(Secret::new(form));
    }
}

/// Push the base64 of `raw` with its padding (so no stray `=` is left) and without (a proxy may
/// trim it); returns the padded form.
fn push_base64(out: &mut Vec<Secret>, raw: &str) -> Secret {
    use base64::Engine;
    let encoded = Secret::new(base64::engine::general_purpose::STANDARD.encode(raw));
    push(out, encoded.expose().to_string());
    push(out, encoded.expose().trim_end_matches('=').to_string());
    encoded
}

/// Every (possibly overlapping) occurrence of `needle` in `haystack`, as byte spans. Both are
/// ASCII-lowercased already, which keeps byte offsets those of the original text.
fn occurrences(haystack: &str, needle: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    if needle.is_empty() {
        return spans;
    }
    let mut from = 0;
    while let Some(i) = haystack[from..].find(needle) {
        let at = from + i;
        spans.push((at, at + needle.len()));
        // Step one character, so overlapping occurrences are found too.
        from = at + haystack[at..].chars().next().map_or(1, char::len_utf8);
    }
    spans
}

/// The token-shaped runs of `text` (rule 2 of the module doc), as byte spans.
fn token_shaped_spans(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_alphanumeric() {
            i += 1;
            continue;
        }
        let start = i;
        let (mut digit, mut letter) = (false, false);
        let (mut alphabet_run, mut longest_alphabet_run) = (0usize, 0usize);
        while i < bytes.len() && bytes[i].is_ascii_alphanumeric() {
            let b = bytes[i];
            digit |= b.is_ascii_digit();
            letter |= b.is_ascii_alphabetic();
            if b.is_ascii_uppercase() || b.is_ascii_digit() {
                alphabet_run += 1;
                longest_alphabet_run = longest_alphabet_run.max(alphabet_run);
            } else {
                alphabet_run = 0;
            }
            i += 1;
        }
        if i - start >= TOKEN_RUN && ((digit && letter) || longest_alphabet_run >= TOKEN_RUN) {
            spans.push((start, i));
        }
    }
    spans
}

/// `text` with each span (merged where they overlap or touch) replaced by [`REDACTED`].
fn replace_spans(text: &str, mut spans: Vec<(usize, usize)>) -> String {
    if spans.is_empty() {
        return text.to_string();
    }
    spans.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut kept_to = 0;
    let mut current: Option<(usize, usize)> = None;
    for (s, e) in spans {
        match current {
            Some((cs, ce)) if s <= ce => current = Some((cs, ce.max(e))),
            Some((cs, ce)) => {
                out.push_str(&text[kept_to..cs]);
                out.push_str(REDACTED);
                kept_to = ce;
                current = Some((s, e));
            }
            None => current = Some((s, e)),
        }
    }
    if let Some((cs, ce)) = current {
        out.push_str(&text[kept_to..cs]);
        out.push_str(REDACTED);
        kept_to = ce;
    }
    out.push_str(&text[kept_to..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use proptest::prelude::*;

    const TOKEN: &str = "JPQNSRU0DH448UJLGXH7KVJECC5QN9N9";

    /// No piece of `out` between redaction markers holds `secret` (a secret may be a substring
    /// of the marker itself, e.g. a password "act").
    fn survives(out: &str, secret: &str) -> bool {
        out.split(REDACTED).any(|piece| {
            piece
                .to_ascii_lowercase()
                .contains(&secret.to_ascii_lowercase())
        })
    }

    #[test]
    fn an_echoed_header_is_redacted_whole() {
        let cred = Secret::new("ROOTTOKENROOTTOKENROOTTOKEN12345");
        let r = Redactor::new().credential("root", &cred);
        assert_eq!(
            r.redact("Access denied (Authorization: whm root:ROOTTOKENROOTTOKENROOTTOKEN12345)"),
            "Access denied (Authorization: [redacted])"
        );
        let pw = Secret::new("hunter2");
        let basic = base64::engine::general_purpose::STANDARD.encode("bob:hunter2");
        let r = Redactor::new().credential("bob", &pw);
        assert_eq!(
            r.redact(&format!("denied: Basic {basic}; user bob, pass hunter2")),
            "denied: [redacted]; user bob, pass [redacted]"
        );
        // The base64 without its padding, and in another case, is still caught.
        let unpadded = basic.trim_end_matches('=');
        assert!(!r.redact(unpadded).contains(unpadded));
        assert_eq!(r.redact("HUNTER2"), REDACTED);
    }

    #[test]
    fn token_shaped_strings_go_whoever_they_belong_to() {
        let r = Redactor::new();
        assert_eq!(
            r.redact(&format!("Internal error after saving token {TOKEN}: oops")),
            "Internal error after saving token [redacted]: oops"
        );
        // Lower case, glued to other text, all letters, hex.
        for hidden in [
            TOKEN.to_ascii_lowercase(),
            format!("abc{TOKEN}def"),
            "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEF".to_string(),
            format!("xyz{}", "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEF"),
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".to_string(),
        ] {
            let out = r.redact(&format!("token “{hidden}” refused"));
            assert_eq!(out, "token “[redacted]” refused", "{hidden}");
        }
    }

    #[test]
    fn ordinary_messages_are_kept() {
        let cred = Secret::new(TOKEN);
        let r = Redactor::new().credential("root", &cred);
        for m in [
            "A conflicting API token with the name “ci-20250101” already exists.",
            "The “expires_at” value must be a future date.",
            "You do not have permission to access the account “u001a0001”.",
            "Token authentication allows access to UAPI or API 2 calls only.",
            "pneumonoultramicroscopicsilicovolcanoconiosis is a word",
            "ABCDEFGHIJKLMNOPQRSTUVW is 23 long",
            "",
        ] {
            assert_eq!(r.redact(m), m);
        }
    }

    #[test]
    fn a_short_secret_is_redacted_without_eating_the_marker() {
        let pw = Secret::new("e");
        let out = Redactor::new().credential("u", &pw).redact("see me");
        assert_eq!(out, "s[redacted] m[redacted]");
        assert!(!survives(&out, "e"));
    }

    #[test]
    fn an_empty_secret_redacts_nothing() {
        let empty = Secret::new("");
        assert_eq!(
            Redactor::new().credential("u", &empty).redact("u: fine"),
            "u: fine"
        );
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "\\PC{0,40}",
            "[A-Za-z0-9 :_-]{0,40}",
            "[A-Z0-9]{0,30}",
            "[a-z]{0,30}",
        ]
    }

    proptest! {
        #[test]
        fn a_random_token_anywhere_never_survives(
            token in "[A-Z0-9]{32}",
            before in text(),
            after in text(),
        ) {
            let out = Redactor::new().redact(&format!("{before}{token}{after}"));
            prop_assert!(!out.contains(&token), "{out}");
            prop_assert!(!survives(&out, &token), "{out}");
        }

        #[test]
        fn a_credential_in_any_header_form_never_survives(
            user in "[a-z][a-z0-9]{0,15}",
            value in "\\PC{1,40}",
            form in 0usize..6,
            before in text(),
            after in text(),
        ) {
            let secret = Secret::new(value.clone());
            let pair = format!("{user}:{value}");
            let encoded = base64::engine::general_purpose::STANDARD.encode(pair.as_bytes());
            let shown = match form {
                0 => value.clone(),
                1 => pair.clone(),
                2 => format!("whm {pair}"),
                3 => format!("cpanel {pair}"),
                4 => format!("Basic {encoded}"),
                _ => encoded.clone(),
            };
            let r = Redactor::new().credential(&user, &secret);
            let out = r.redact(&format!("{before}{shown}{after}"));
            prop_assert!(!survives(&out, &value), "{out}");
            prop_assert!(!survives(&out, encoded.trim_end_matches('=')), "{out}");
        }

        #[test]
        fn redaction_never_panics_and_keeps_clean_text(t in "\\PC{0,80}") {
            let s = Secret::new("SOMESECRETVALUE");
            let out = Redactor::new().credential("root", &s).redact(&t);
            if !out.contains(REDACTED) {
                prop_assert_eq!(out, t);
            }
        }
    }
}
