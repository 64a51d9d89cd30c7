//! The command lines the SSH backend runs on a server, built here and nowhere else, as pure
//! functions: cPanel's CLIs by their full paths (CloudLinux cages PATH), `--output=json` always,
//! `uapi --user=U` always (root must pass it), every argument `key=value` URI-encoded as the
//! CLIs require, and every word shell-quoted, because sshd hands the line to the login shell.
//! No secret is ever an argument: nothing here takes one.

/// cPanel's UAPI command-line program.
pub const UAPI: &str = "/usr/local/cpanel/bin/uapi";
/// cPanel's WHM API 1 command-line program.
pub const WHMAPI1: &str = "/usr/local/cpanel/bin/whmapi1";

/// `uapi --output=json --user=USER Tokens FUNCTION k=v…` as one shell line.
pub fn uapi(user: &str, function: &str, args: &[(&str, &str)]) -> String {
    let mut words = vec![
        UAPI.to_string(),
        "--output=json".to_string(),
        format!("--user={user}"),
        "Tokens".to_string(),
        function.to_string(),
    ];
    words.extend(args.iter().map(|(k, v)| pair(k, v)));
    line(&words)
}

/// `whmapi1 --output=json FUNCTION k=v…` as one shell line.
pub fn whmapi1(function: &str, args: &[(&str, &str)]) -> String {
    let mut words = vec![
        WHMAPI1.to_string(),
        "--output=json".to_string(),
        function.to_string(),
    ];
    words.extend(args.iter().map(|(k, v)| pair(k, v)));
    line(&words)
}

/// `key=value`, both URI-encoded (the CLIs decode them).
fn pair(key: &str, value: &str) -> String {
    format!("{}={}", uri_encode(key), uri_encode(value))
}

/// Percent-encoding of everything but the unreserved characters of RFC 3986.
pub fn uri_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Words joined for a POSIX shell: a word of safe characters as it is, any other in single
/// quotes (a `'` inside written `'\''`).
fn line(words: &[String]) -> String {
    words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ")
}

fn quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'_' | b'.' | b'/' | b'=' | b'%' | b',' | b':' | b'+' | b'@'
                )
        });
    if safe {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// How a POSIX shell splits a line of single-quoted and bare words (all this module makes).
    fn split(line: &str) -> Vec<String> {
        let mut words = Vec::new();
        let mut cur = String::new();
        let mut in_word = false;
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\'' => {
                    in_word = true;
                    for q in chars.by_ref() {
                        if q == '\'' {
                            break;
                        }
                        cur.push(q);
                    }
                }
                '\\' => {
                    in_word = true;
                    cur.extend(chars.next());
                }
                ' ' => {
                    if in_word {
                        words.push(std::mem::take(&mut cur));
                        in_word = false;
                    }
                }
                other => {
                    assert!(
                        !";&|<>()$`*?[]#~{}!\"\n".contains(other),
                        "unquoted {other:?} in {line}"
                    );
                    in_word = true;
                    cur.push(other);
                }
            }
        }
        if in_word {
            words.push(cur);
        }
        words
    }

    fn uri_decode(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_lines_use_full_paths_json_and_user() {
        assert_eq!(
            uapi(
                "bob",
                "create_full_access",
                &[("name", "ci-2026"), ("expires_at", "1900000000")]
            ),
            "/usr/local/cpanel/bin/uapi --output=json --user=bob Tokens create_full_access name=ci-2026 expires_at=1900000000"
        );
        assert_eq!(
            whmapi1(
                "api_token_revoke",
                &[("token_name", "a"), ("token_name-1", "b c")]
            ),
            "/usr/local/cpanel/bin/whmapi1 --output=json api_token_revoke token_name=a token_name-1=b%20c"
        );
        assert_eq!(
            whmapi1("api_token_create", &[("whitelist_ip-1", "198.51.100.0/24")]),
            "/usr/local/cpanel/bin/whmapi1 --output=json api_token_create whitelist_ip-1=198.51.100.0%2F24"
        );
    }

    proptest! {
        /// Whatever the values, the shell sees exactly the intended words, and each value comes
        /// back from the URI decoding the CLI applies.
        #[test]
        fn any_value_reaches_the_cli_intact(user in "[a-z][a-z0-9_-]{0,15}", key in "[a-z_-]{1,12}", value in any::<String>()) {
            let l = uapi(&user, "list", &[(&key, &value)]);
            let words = split(&l);
            prop_assert_eq!(words.len(), 6);
            prop_assert_eq!(&words[2], &format!("--user={user}"));
            let (k, v) = words[5].split_once('=').unwrap();
            prop_assert_eq!(uri_decode(k), key);
            prop_assert_eq!(uri_decode(v), value);
        }

        #[test]
        fn quoting_survives_any_word(word in any::<String>()) {
            let l = line(std::slice::from_ref(&word));
            prop_assert_eq!(split(&l), vec![word]);
        }
    }
}
