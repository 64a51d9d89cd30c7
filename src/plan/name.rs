//! Why this module exists: token names are the only handle on a token after it is created
//! (cPanel shows a secret once and lists names), so `--name` is a template checked twice: its
//! syntax when parsed, and every expansion against cPanel's rule `^[A-Za-z0-9_-]{1,50}$` before
//! any request is sent.
//!
//! Placeholders: `{date}` (UTC run date, YYYYMMDD), `{host}`, `{account}`, `{run}` (short run
//! id). Host names may contain dots, which token names may not: `{host}` expands with every `.`
//! replaced by `-` (`web1.example.com` → `web1-example-com`).

/// The placeholders a template may use.
pub const PLACEHOLDERS: &[&str] = &["date", "host", "account", "run"];

/// Longest token name cPanel accepts.
pub const MAX_NAME_LEN: usize = 50;

/// The values a `--name` template may use.
#[derive(Debug, Clone, Copy)]
pub struct NameVars<'a> {
    /// UTC run date, YYYYMMDD.
    pub date: &'a str,
    pub host: &'a str,
    /// The account; for `--scope whm`, the host's `whm_user`.
    pub account: &'a str,
    /// Short run id.
    pub run: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Date,
    Host,
    Account,
    Run,
}

/// A validated `--name` template: `{date}`, `{host}`, `{account}`, `{run}` and literal text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameTemplate {
    raw: String,
    parts: Vec<Part>,
}

fn placeholder_hint() -> String {
    format!(
        "placeholders are {}; other characters must be letters, digits, '_' or '-'",
        PLACEHOLDERS
            .iter()
            .map(|p| format!("{{{p}}}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

#[cfg(test)]
/// A token name cPanel accepts: `^[A-Za-z0-9_-]{1,50}$`.
pub fn valid_token_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The placeholder after a `{` at byte `at`, up to its `}`.
fn placeholder(chars: &mut std::str::CharIndices<'_>, at: usize) -> Result<Part, String> {
    let mut name = String::new();
    let mut closed = false;
    for (_, c) in chars.by_ref() {
        match c {
            '}' => {
                closed = true;
                break;
            }
            '{' => {
                return Err(format!(
                    "unbalanced '{{' at position {}; {}",
                    at + 1,
                    placeholder_hint()
                ));
            }
            c => name.push(c),
        }
    }
    if !closed {
        return Err(format!(
            "unbalanced '{{' at position {}: no closing '}}'; {}",
            at + 1,
            placeholder_hint()
        ));
    }
    match name.as_str() {
        "date" => Ok(Part::Date),
        "host" => Ok(Part::Host),
        "account" => Ok(Part::Account),
        "run" => Ok(Part::Run),
        _ => {
            let shown: String = name.chars().take(20).collect();
            Err(format!(
                "unknown placeholder {{{shown}}}; {}",
                placeholder_hint()
            ))
        }
    }
}

impl NameTemplate {
    /// Check the placeholders and the literal characters; the expansion is checked per target.
    /// The error says what is wrong and lists the valid placeholders.
    pub fn parse(raw: &str) -> Result<NameTemplate, String> {
        if raw.is_empty() {
            return Err(format!(
                "the name template is empty; {}",
                placeholder_hint()
            ));
        }
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut chars = raw.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '{' => {
                    let part = placeholder(&mut chars, i)?;
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(part);
                }
                '}' => {
                    return Err(format!(
                        "unbalanced '}}' at position {}; {}",
                        i + 1,
                        placeholder_hint()
                    ));
                }
                c if c.is_ascii_alphanumeric() || c == '_' || c == '-' => text.push(c),
                c => {
                    return Err(format!(
                        "{c:?} at position {} cannot be part of a token name; {}",
                        i + 1,
                        placeholder_hint()
                    ));
                }
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        let template = NameTemplate {
            raw: raw.to_string(),
            parts,
        };
        let literal_len: usize = template
            .parts
            .iter()
            .map(|p| if let Part::Text(t) = p { t.len() } else { 0 })
            .sum();
        if literal_len > MAX_NAME_LEN {
            return Err(format!(
                "the template's fixed text alone is {literal_len} characters; token names are at most {MAX_NAME_LEN}"
            ));
        }
        Ok(template)
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    #[cfg(test)]
    /// Whether the template uses `{account}` (else every account of a host gets the same name).
    pub fn uses_account(&self) -> bool {
        self.parts.contains(&Part::Account)
    }

    /// Expand and validate against `^[A-Za-z0-9_-]{1,50}$`; the error says why and how to fix.
    pub fn expand(&self, vars: &NameVars<'_>) -> Result<String, NameError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Date => out.push_str(vars.date),
                Part::Host => out.extend(vars.host.chars().map(|c| if c == '.' { '-' } else { c })),
                Part::Account => out.push_str(vars.account),
                Part::Run => out.push_str(vars.run),
            }
        }
        let wrong = if let Some(bad) = out
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
        {
            Wrong::Char(bad)
        } else if out.is_empty() {
            Wrong::Empty
        } else if out.chars().count() > MAX_NAME_LEN {
            Wrong::TooLong
        } else {
            return Ok(out);
        };
        Err(NameError {
            wrong,
            template: self.raw.clone(),
            expanded: out,
        })
    }
}

/// What is wrong with an expanded name; equal values are the same mistake (folded into one
/// message over many targets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Wrong {
    /// A character token names may not hold (a `.` in an account, say).
    Char(char),
    Empty,
    /// Over [`MAX_NAME_LEN`].
    TooLong,
}

/// A `--name` expansion cPanel would refuse; its Display says why and how to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameError {
    pub wrong: Wrong,
    pub template: String,
    pub expanded: String,
}

impl NameError {
    /// The expanded name's length in characters.
    pub fn length(&self) -> usize {
        self.expanded.chars().count()
    }
}

impl std::fmt::Display for NameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = &self.template;
        match self.wrong {
            Wrong::Char(bad) => write!(
                f,
                "--name \"{t}\" expands to a name containing {bad:?}; token names use only letters, digits, '_' and '-'"
            ),
            Wrong::Empty => write!(f, "--name \"{t}\" expands to an empty name"),
            Wrong::TooLong => write!(
                f,
                "--name \"{t}\" expands to \"{}\", {} characters; token names are at most {MAX_NAME_LEN} (shorten the fixed text or drop a placeholder)",
                self.expanded,
                self.length()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn vars<'a>(host: &'a str, account: &'a str) -> NameVars<'a> {
        NameVars {
            date: "20250101",
            host,
            account,
            run: "r7k2",
        }
    }

    #[test]
    fn expands_every_placeholder_and_dots_in_hosts() {
        let t = NameTemplate::parse("deploy-{date}_{host}-{account}-{run}").unwrap();
        assert_eq!(
            t.expand(&vars("web1.example.com", "alice")).unwrap(),
            "deploy-20250101_web1-example-com-alice-r7k2"
        );
        assert!(t.uses_account());
        assert!(!NameTemplate::parse("ci-{host}").unwrap().uses_account());
        assert_eq!(
            NameTemplate::parse("plain")
                .unwrap()
                .expand(&vars("h", "a"))
                .unwrap(),
            "plain"
        );
    }

    #[test]
    fn rejects_bad_templates_with_a_hint() {
        for (raw, needle) in [
            ("", "empty"),
            ("x-{hots}", "unknown placeholder {hots}"),
            ("x-{host", "unbalanced '{'"),
            ("x-host}", "unbalanced '}'"),
            ("x-{{host}}", "unbalanced '{'"),
            ("my token", "' '"),
            ("a.b", "'.'"),
        ] {
            let e = NameTemplate::parse(raw).unwrap_err();
            assert!(e.contains(needle), "{raw}: {e}");
            assert!(
                e.contains("{date}, {host}, {account}, {run}")
                    || raw.is_empty()
                    || needle == "empty",
                "{e}"
            );
        }
        assert!(
            NameTemplate::parse(&"x".repeat(51))
                .unwrap_err()
                .contains("51")
        );
    }

    #[test]
    fn expansion_over_50_characters_is_refused_with_the_length() {
        let t = NameTemplate::parse("rotation-{host}-{account}").unwrap();
        let e = t
            .expand(&vars("a-very-long-host-name.example.com", "someaccount"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("54 characters"), "{e}");
        assert!(t.expand(&vars("web1", "bob")).is_ok());
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_expansion_is_valid_or_an_error(
            raw in "[a-z{}_. -]{0,30}",
            host in "[A-Za-z0-9._-]{1,40}",
            account in "[a-z0-9][a-z0-9_-]{0,20}",
        ) {
            if let Ok(t) = NameTemplate::parse(&raw) {
                match t.expand(&vars(&host, &account)) {
                    Ok(name) => prop_assert!(valid_token_name(&name), "{name}"),
                    Err(e) => prop_assert!(e.to_string().contains("--name")),
                }
            }
        }

        #[test]
        fn templates_of_valid_parts_always_parse(parts in proptest::collection::vec(
            prop_oneof!["[A-Za-z0-9_-]{1,5}", Just("{date}".to_string()), Just("{host}".to_string()),
                        Just("{account}".to_string()), Just("{run}".to_string())], 1..6)) {
            let raw: String = parts.concat();
            prop_assert!(NameTemplate::parse(&raw).is_ok(), "{raw}");
        }
    }
}
