//! Why this module exists: the flat CSV form is what people export from spreadsheets and
//! billing systems: one row per account, host settings repeated or left blank. This module turns
//! rows into hosts, insisting that a host's rows agree and that every column is one it knows, and
//! reports each problem at the file's real line (header = line 1, comments and blank lines count).
//!
//! Columns: `host` and `account` are required; the optional ones are the host keys (`address`,
//! `api`, `whm_port`, `cpanel_port`, `whm_user`, `credential`, `auth`, `tls_ca`, `tls_pin`,
//! `tls_insecure`, `per_host`, `groups` with `;` between names) plus one extension column:
//!
//! * `account_credential`: the account's own credential reference (`env:NAME`, `file:PATH` or
//!   `prompt`), used with `api = cpanel` where each account signs in as itself. The `credential`
//!   column is the host's (its WHM credential, or the default account credential for cpanel).
//!
//! An `account` of `*` means every account on the server (WHM discovery). An empty `account`
//! cell makes a row that only describes the host (useful for `--scope whm`). A blank host-key
//! cell inherits from an earlier row of the same host, else the built-in default; two rows that
//! give one host different values are an error naming both lines.

use super::{HOST_KEYS, Raw, RawAccount, RawAccounts, RawHost, RawInventory, RawKey};
use crate::error::Problem;
use std::collections::HashMap;

const ACCOUNT_CREDENTIAL: &str = "account_credential";

fn all_columns() -> Vec<&'static str> {
    let mut v = vec!["host", "account"];
    v.extend_from_slice(HOST_KEYS);
    v.push(ACCOUNT_CREDENTIAL);
    v
}

/// The first byte at or after `from` that is not on a blank or `#` comment line.
fn record_start(text: &str, mut from: usize) -> usize {
    let b = text.as_bytes();
    while from < b.len() {
        match b[from] {
            b'\n' => from += 1,
            b'\r' if b.get(from + 1) == Some(&b'\n') => from += 2,
            b'#' => match b[from..].iter().position(|c| *c == b'\n') {
                Some(n) => from += n + 1,
                None => return b.len(),
            },
            _ => break,
        }
    }
    from
}

struct HostRows {
    name: String,
    first_line: u64,
    /// key → (value, line where first given)
    keys: Vec<(&'static str, String, u64)>,
    accounts: Vec<RawAccount>,
    star: Option<u64>,
}

pub(crate) fn parse(text: &str, file: &str, problems: &mut Vec<Problem>) -> RawInventory {
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .comment(Some(b'#'))
        .flexible(true)
        .trim(::csv::Trim::All)
        .from_reader(text.as_bytes());
    let loc = |line: u64| format!("{file}:{line}");
    // The csv crate's line counter skips comment lines, and a record's position is where the
    // reader stood before it skipped blank and comment lines: skip them here too.
    let lines = super::Lines::new(text);
    let line_at = |byte: u64| lines.line(record_start(text, byte as usize)) as u64;
    let columns = all_columns();
    let mut header: Option<Vec<Option<&'static str>>> = None;
    let mut header_ok = true;
    let mut hosts: Vec<HostRows> = Vec::new();
    let mut by_name: HashMap<String, usize> = HashMap::new();
    let mut record = ::csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map(|p| line_at(p.byte())).unwrap_or(0);
                problems.push(
                    Problem::new(loc(line), "this line is not valid CSV")
                        .hint("check the quotes: a cell that contains a comma or a quote must be quoted, with quotes doubled"),
                );
                break;
            }
        }
        let line = record.position().map(|p| line_at(p.byte())).unwrap_or(0);
        if record.iter().all(str::is_empty) {
            continue;
        }
        let Some(cols) = &header else {
            let mut cols = Vec::with_capacity(record.len());
            let mut seen: HashMap<&'static str, ()> = HashMap::new();
            for cell in record.iter() {
                let name = cell.to_ascii_lowercase();
                match columns.iter().find(|c| **c == name) {
                    Some(c) => {
                        if seen.insert(c, ()).is_some() {
                            header_ok = false;
                            problems.push(
                                Problem::new(loc(line), "this column appears twice in the header")
                                    .field(*c)
                                    .hint("keep one column of each name"),
                            );
                        }
                        cols.push(Some(*c));
                    }
                    None => {
                        header_ok = false;
                        let shown = if name.is_empty() {
                            "(empty)".to_string()
                        } else {
                            name
                        };
                        problems.push(super::unknown_key(&loc(line), &shown, "column", &columns));
                        cols.push(None);
                    }
                }
            }
            for required in ["host", "account"] {
                if !seen.contains_key(required) {
                    header_ok = false;
                    problems.push(
                        Problem::new(loc(line), format!("the header has no {required} column"))
                            .field(required)
                            .hint("the first line must be a header naming at least host and account, e.g. host,account,credential"),
                    );
                }
            }
            header = Some(cols);
            continue;
        };
        if !header_ok {
            // The columns are wrong; row-level messages would only repeat that.
            continue;
        }
        if record.len() != cols.len() {
            problems.push(
                Problem::new(loc(line), format!("this row has {} cells but the header has {}", record.len(), cols.len()))
                    .hint("give every row the same number of cells as the header (leave a cell empty to inherit)"),
            );
            continue;
        }
        let cell = |name: &str| -> &str {
            cols.iter()
                .position(|c| *c == Some(name))
                .map(|i| &record[i])
                .unwrap_or("")
        };
        let host = cell("host");
        if host.is_empty() {
            problems.push(
                Problem::new(loc(line), "the host cell is empty")
                    .field("host")
                    .hint("name the host on every row"),
            );
            continue;
        }
        let idx = *by_name.entry(host.to_string()).or_insert_with(|| {
            hosts.push(HostRows {
                name: host.to_string(),
                first_line: line,
                keys: Vec::new(),
                accounts: Vec::new(),
                star: None,
            });
            hosts.len() - 1
        });
        let h = &mut hosts[idx];
        for key in HOST_KEYS {
            let value = cell(key);
            if value.is_empty() {
                continue;
            }
            match h.keys.iter().find(|(k, _, _)| k == key) {
                Some((_, prev, prev_line)) if prev != value => {
                    let what = if *key == "credential" {
                        format!("host {host}: credential differs from line {prev_line}")
                    } else {
                        format!(
                            "host {host}: {key} is {} here but {} on line {prev_line}",
                            super::show(value),
                            super::show(prev)
                        )
                    };
                    problems.push(
                        Problem::new(loc(line), what)
                            .field(*key)
                            .hint(format!("make the rows of {host} agree, or leave the cell empty to inherit line {prev_line}")),
                    );
                }
                Some(_) => {}
                None => h.keys.push((key, value.to_string(), line)),
            }
        }
        let account = cell("account");
        let account_credential = cell(ACCOUNT_CREDENTIAL);
        match account {
            "" => {
                if !account_credential.is_empty() {
                    problems.push(
                        Problem::new(
                            loc(line),
                            "account_credential is set but the account cell is empty",
                        )
                        .field(ACCOUNT_CREDENTIAL)
                        .hint("name the account this credential belongs to"),
                    );
                }
            }
            "*" => {
                if !account_credential.is_empty() {
                    problems.push(
                        Problem::new(loc(line), "account_credential cannot apply to every account (*)")
                            .field(ACCOUNT_CREDENTIAL)
                            .hint("discovered accounts use the host's WHM credential; put it in the credential column"),
                    );
                }
                h.star.get_or_insert(line);
            }
            user => h.accounts.push(RawAccount {
                user: user.to_string(),
                credential: (!account_credential.is_empty())
                    .then(|| account_credential.to_string()),
                loc: loc(line),
            }),
        }
    }
    if header.is_none() && problems.is_empty() {
        problems.push(
            Problem::new(file, "the inventory has no header line")
                .hint("start with a header such as host,account,credential"),
        );
    }
    let hosts = hosts
        .into_iter()
        .map(|h| {
            let accounts = match (h.star, h.accounts.is_empty()) {
                (Some(star), false) => {
                    problems.push(
                        Problem::new(
                            loc(star),
                            format!("host {} lists * (every account) and named accounts", h.name),
                        )
                        .field("account")
                        .hint(
                            "either keep the * row (every account) or list the accounts, not both",
                        ),
                    );
                    None
                }
                (Some(star), true) => Some((RawAccounts::All, loc(star))),
                (None, false) => Some((RawAccounts::Listed(h.accounts), loc(h.first_line))),
                (None, true) => None,
            };
            RawHost {
                keys: h
                    .keys
                    .into_iter()
                    .map(|(k, v, line)| RawKey {
                        key: k.to_string(),
                        value: Raw::Str(v),
                        loc: loc(line),
                    })
                    .collect(),
                loc: loc(h.first_line),
                name: h.name,
                accounts,
            }
        })
        .collect();
    RawInventory {
        defaults: Vec::new(),
        default_accounts: None,
        hosts,
    }
}
