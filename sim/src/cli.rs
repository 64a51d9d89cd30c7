//! The `uapi` and `whmapi1` command-line programs of a simulated host, as its SSH front
//! ([`crate::SshFront`]) runs them: tokenfleet's `api = "ssh"` sends command lines over a real
//! sshd, and these must act on the same state, with the same rules and messages, as the HTTPS
//! handlers (whose code they call), so tests can mix the two paths. The line is split as POSIX
//! `sh` would split it, and anything a shell would interpret (an unquoted metacharacter, a bare
//! program name left to `PATH`) is refused and recorded as a violation: tokenfleet must quote
//! every argument and name the programs by their full paths.

use serde_json::{Value, json};

use crate::server::{Action, HostInner, cpanel_call, lock, whm_call};
use crate::state::{Args, now_epoch};

pub(crate) const UAPI: &str = "/usr/local/cpanel/bin/uapi";
pub(crate) const WHMAPI1: &str = "/usr/local/cpanel/bin/whmapi1";

pub(crate) const UNSAFE: &str = "cpanel-sim: unsafe command line";

/// What one command line printed and how it ended.
#[derive(Debug, Default)]
pub(crate) struct CliAnswer {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Lose the answer: the SSH connection is dropped (the command ran).
    pub drop: bool,
    /// The words of the line (empty when it could not be split safely).
    pub argv: Vec<String>,
    /// What the line did that tokenfleet must never do (no secret in these).
    pub violations: Vec<String>,
}

impl CliAnswer {
    fn err(code: i32, stderr: String) -> CliAnswer {
        CliAnswer {
            code,
            stderr: stderr.into_bytes(),
            ..CliAnswer::default()
        }
    }
}

/// Unquoted, these make a shell do something besides run one program with these words.
const META: &str = ";&|<>()$`*?[]#~{}!\n";

/// Split `line` as POSIX `sh` would: `'…'`, `"…"` (with `\"` `\\` `\$` `` \` `` escapes),
/// backslash outside quotes, blanks between words. `Err`: why it is unsafe (an unquoted
/// metacharacter, an expansion inside double quotes, an unterminated quote).
pub(crate) fn split_line(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("an unterminated '…' quote".to_string()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("an unterminated \"…\" quote".to_string()),
                        },
                        Some(c @ ('$' | '`')) => {
                            return Err(format!("an expansion ({c}) inside \"…\""));
                        }
                        Some(c) => word.push(c),
                        None => return Err("an unterminated \"…\" quote".to_string()),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(c) => {
                    in_word = true;
                    word.push(c);
                }
                None => return Err("a trailing backslash".to_string()),
            },
            c if META.contains(c) => {
                return Err(format!("the unquoted shell metacharacter {c:?}"));
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// `%XX` decoded (a bad escape stays as written); `+` stays a plus, unlike in a form body.
pub(crate) fn uri_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// The request-count key of a command line: `ssh/uapi/<Module>/<function>`,
/// `ssh/whmapi1/<function>`, or `ssh/other` (refused before a program ran).
fn count_key(program: &str, positional: &[&str]) -> String {
    match (program, positional) {
        ("uapi", [module, function, ..]) => format!("ssh/uapi/{module}/{function}"),
        ("whmapi1", [function, ..]) => format!("ssh/whmapi1/{function}"),
        _ => "ssh/other".to_string(),
    }
}

/// Run one command line as `login` on `host` (see the module doc and [`crate::SshFront`]).
pub(crate) fn run_cli(host: &HostInner, login: &str, line: &str) -> CliAnswer {
    let argv = match split_line(line) {
        Ok(argv) => argv,
        Err(why) => {
            host.count("ssh/other");
            let mut a = CliAnswer::err(2, format!("{UNSAFE}\n"));
            a.violations
                .push(format!("{}: unsafe command line: {why}", host.name));
            return a;
        }
    };
    let mut a = run_argv(host, login, &argv);
    a.argv = argv;
    a
}

fn run_argv(host: &HostInner, login: &str, argv: &[String]) -> CliAnswer {
    let faults = lock(&host.faults).clone();
    let mut words: &[String] = argv;
    let mut root = login == "root";
    if words.first().map(String::as_str) == Some("sudo") {
        if words.get(1).map(String::as_str) != Some("-n")
            || words.get(2).map(String::as_str) != Some("--")
        {
            host.count("ssh/other");
            return CliAnswer::err(
                1,
                "sudo: a terminal is required to read the password; either use the -S option to read from standard input or configure an askpass helper\n(cpanel-sim: run `sudo -n -- PROGRAM …`)\n".to_string(),
            );
        }
        if faults.sudo_refused {
            host.count("ssh/other");
            return CliAnswer::err(1, "sudo: a password is required\n".to_string());
        }
        words = &words[3..];
        root = true;
    }
    let Some(program_path) = words.first() else {
        host.count("ssh/other");
        let mut a = CliAnswer::err(2, format!("{UNSAFE}\n"));
        a.violations
            .push(format!("{}: an empty command line", host.name));
        return a;
    };
    let program = match program_path.as_str() {
        UAPI => "uapi",
        WHMAPI1 => "whmapi1",
        other => {
            host.count("ssh/other");
            let mut a = CliAnswer::err(127, format!("sh: 1: {other}: not found\n"));
            let base = other.rsplit('/').next().unwrap_or(other);
            let why = if matches!(base, "uapi" | "whmapi1") {
                format!("“{other}” is not the full path {UAPI} or {WHMAPI1}")
            } else {
                format!("“{other}” is not a cPanel program")
            };
            a.violations.push(format!("{}: {why}", host.name));
            return a;
        }
    };
    let mut output: Option<&str> = None;
    let mut user: Option<&str> = None;
    let mut positional: Vec<&str> = Vec::new();
    let mut bad_option = None;
    for w in &words[1..] {
        if let Some(v) = w.strip_prefix("--output=") {
            output = Some(v);
        } else if let Some(v) = w.strip_prefix("--user=")
            && program == "uapi"
        {
            user = Some(v);
        } else if w.starts_with("--") {
            bad_option.get_or_insert(w.as_str());
        } else {
            positional.push(w);
        }
    }
    let key = count_key(program, &positional);
    host.count(&key);
    let _in_flight = crate::server::InFlight::enter(&host.stats);
    if faults.cli_missing {
        return CliAnswer::err(127, format!("sh: 1: {program_path}: not found\n"));
    }
    if faults.cli_non_json {
        return CliAnswer {
            code: 0,
            stdout: b"Use of uninitialized value $user in concatenation (.) or string at /usr/local/cpanel/Cpanel/AdminBin/Call.pm line 42.\n".to_vec(),
            ..CliAnswer::default()
        };
    }
    if let Some(opt) = bad_option {
        return CliAnswer::err(1, format!("{program}: Unknown option: {opt}\n"));
    }
    let args = Args {
        pairs: positional
            .iter()
            .skip(if program == "uapi" { 2 } else { 1 })
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (uri_decode(k), uri_decode(v)),
                None => (uri_decode(p), String::new()),
            })
            .collect(),
    };
    let server_now = now_epoch().saturating_add(faults.clock_offset);
    let (envelope, created, is_create) = match program {
        "uapi" => {
            let account = match (root, user) {
                (true, None) => {
                    return CliAnswer::err(
                        1,
                        "This program must be passed the --user flag when run by root!\n"
                            .to_string(),
                    );
                }
                (true, Some(u)) => u,
                (false, None) => login,
                (false, Some(u)) if u == login => u,
                (false, Some(_)) => {
                    return CliAnswer::err(
                        1,
                        "uapi: you may only act as yourself without root (cpanel-sim)\n"
                            .to_string(),
                    );
                }
            };
            let [module, function, ..] = positional[..] else {
                return CliAnswer::err(
                    1,
                    "Usage: uapi [--user=USER] [--output=FORMAT] Module function [key=value ...]\n"
                        .to_string(),
                );
            };
            // An unknown --user is answered by the same handler as an unknown account over
            // HTTPS: a UAPI envelope with status 0, "The user “X” does not exist." Real cPanel's
            // wording here is close to that (exact text not verified).
            let path = format!("/execute/{module}/{function}");
            let (resp, created) = cpanel_call(host, account, &path, &args, server_now);
            let inner: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
            let envelope =
                json!({"apiversion": 3, "func": function, "module": module, "result": inner});
            (envelope, created, function == "create_full_access")
        }
        _ => {
            if !root {
                return CliAnswer::err(
                    1,
                    "whmapi1: this program must be run as root (cpanel-sim)\n".to_string(),
                );
            }
            let Some(function) = positional.first() else {
                return CliAnswer::err(
                    1,
                    "Usage: whmapi1 [--output=FORMAT] function [key=value ...]\n".to_string(),
                );
            };
            if *function == "batch" {
                // One whmapi1 process runs every command of the batch, as over HTTPS.
                let (answer, cost) = crate::server::batch_core(host, "root", &args, &faults);
                std::thread::sleep(cost);
                let Some(resp) = answer else {
                    return dropped();
                };
                let envelope: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
                (envelope, None, false)
            } else {
                let path = format!("/json-api/{function}");
                let (resp, created) = whm_call(host, "root", &path, &args, server_now);
                let envelope: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
                (envelope, created, *function == "api_token_create")
            }
        }
    };
    let mut envelope = envelope;
    if let Some(c) = &created {
        match host.after_create(c) {
            Some(Action::Drop) => return dropped(),
            Some(Action::Reply(resp)) => {
                let replaced: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
                if program == "uapi" {
                    envelope["result"] = replaced;
                } else {
                    envelope = replaced;
                }
            }
            _ => {}
        }
    }
    if is_create && host.take_drop_create_answer() {
        return dropped();
    }
    let stdout = match output {
        Some("json") => {
            let mut s = envelope.to_string();
            s.push('\n');
            s
        }
        Some(other) if other != "yaml" => {
            return CliAnswer::err(
                1,
                format!("{program}: unsupported --output={other} (cpanel-sim knows json, yaml)\n"),
            );
        }
        _ => yaml(&envelope),
    };
    let stdout = if faults.cli_banner {
        format!("Welcome to {}! Last backup: today.\n{stdout}", host.name)
    } else {
        stdout
    };
    CliAnswer {
        code: 0,
        stdout: stdout.into_bytes(),
        ..CliAnswer::default()
    }
}

fn dropped() -> CliAnswer {
    CliAnswer {
        code: 255,
        drop: true,
        ..CliAnswer::default()
    }
}

/// The programs' default output: YAML, roughly as cPanel prints it.
fn yaml(v: &Value) -> String {
    fn scalar(v: &Value) -> String {
        match v {
            Value::Null => "~".to_string(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
    fn walk(v: &Value, indent: usize, out: &mut String) {
        let pad = "  ".repeat(indent);
        match v {
            Value::Object(m) => {
                for (k, val) in m {
                    match val {
                        Value::Object(o) if !o.is_empty() => {
                            out.push_str(&format!("{pad}{k}:\n"));
                            walk(val, indent + 1, out);
                        }
                        Value::Array(a) if !a.is_empty() => {
                            out.push_str(&format!("{pad}{k}:\n"));
                            walk(val, indent + 1, out);
                        }
                        Value::Object(_) => out.push_str(&format!("{pad}{k}: {{}}\n")),
                        Value::Array(_) => out.push_str(&format!("{pad}{k}: []\n")),
                        _ => out.push_str(&format!("{pad}{k}: {}\n", scalar(val))),
                    }
                }
            }
            Value::Array(a) => {
                for item in a {
                    match item {
                        Value::Object(_) | Value::Array(_) => {
                            out.push_str(&format!("{pad}-\n"));
                            walk(item, indent + 1, out);
                        }
                        _ => out.push_str(&format!("{pad}- {}\n", scalar(item))),
                    }
                }
            }
            other => out.push_str(&format!("{pad}{}\n", scalar(other))),
        }
    }
    let mut out = String::from("---\n");
    walk(v, 0, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_sh() {
        assert_eq!(
            split_line(r#"/usr/local/cpanel/bin/uapi  --user='u1' "a\"b\\c\$" x\ y '' "#).unwrap(),
            vec![
                "/usr/local/cpanel/bin/uapi",
                "--user=u1",
                r#"a"b\c$"#,
                "x y",
                ""
            ]
        );
        assert_eq!(split_line(r#""a\nb""#).unwrap(), vec![r"a\nb"]);
        assert_eq!(split_line("'a;b|c$d'").unwrap(), vec!["a;b|c$d"]);
        assert_eq!(split_line(r"a\;b").unwrap(), vec!["a;b"]);
        for bad in [
            "a;b",
            "a|b",
            "a && b",
            "a > f",
            "$(x)",
            "`x`",
            "a*",
            "a?",
            "[a]",
            "#c",
            "~",
            "{a}",
            "!x",
            "a\nb",
            "(a)",
            "a<b",
            "'open",
            "\"open",
            "\"$HOME\"",
            "\"`id`\"",
            "x\\",
        ] {
            assert!(split_line(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn uri_decoding_keeps_plus() {
        assert_eq!(uri_decode("a%20b+c%2B%3d"), "a b+c+=");
        assert_eq!(uri_decode("100%"), "100%");
        assert_eq!(uri_decode("%zz%4"), "%zz%4");
        assert_eq!(uri_decode("%41"), "A");
    }

    #[test]
    fn yaml_is_readable() {
        let y = yaml(&json!({"a": 1, "b": {"c": null, "d": [1, {"e": "x"}]}, "f": []}));
        assert_eq!(
            y,
            "---\na: 1\nb:\n  c: ~\n  d:\n    - 1\n    -\n      e: x\nf: []\n"
        );
    }
}
