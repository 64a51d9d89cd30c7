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
//! give one host different values are an error naming both lines and both values (a pin
//! shortened, a credential reference shown, anything that could be a secret described).
//!
//! `credential` on a host with `api = cpanel`: when the host's rows give different values, each
//! account row's cell is that account's own credential (as if written in `account_credential`;
//! both set and different is an error) and rows without an account give the host's. When they
//! all agree it is the host's credential, as on any host.
//!
//! What spreadsheets write is read as meant: empty columns at the end of the header (and any
//! unnamed column whose cells are all empty) and empty cells past the header's last column are
//! ignored; a first line `sep=;` (Excel's) sets the separator, and a header with `;` (or a tab)
//! but no `,` is read with that separator.

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

/// The separator and where the CSV proper starts: after an Excel `sep=X` first line (which
/// names the separator), else 0 with `;` or a tab when the header has that and no `,`.
fn dialect(text: &str, file: &str, problems: &mut Vec<Problem>) -> (usize, u8) {
    let first_end = text.find('\n').map_or(text.len(), |n| n + 1);
    let first = text[..first_end].trim().trim_matches('"');
    if first.len() >= 4 && first[..4].eq_ignore_ascii_case("sep=") {
        let sep = &first[4..];
        return match sep.as_bytes() {
            [b] if b.is_ascii() && !b.is_ascii_alphanumeric() && *b != b'"' && *b != b'#' => {
                (first_end, *b)
            }
            _ => {
                problems.push(
                    Problem::new(
                        format!("{file}:1"),
                        "the sep= line does not name one separator character",
                    )
                    .hint(
                        "write sep=, or sep=; as the first line (or remove it: ',' is the default)",
                    ),
                );
                (first_end, b',')
            }
        };
    }
    let header_at = record_start(text, 0);
    let header_end = text[header_at..]
        .find('\n')
        .map_or(text.len(), |n| header_at + n);
    let header = &text[header_at..header_end];
    let sep = if header.contains(',') {
        b','
    } else if header.contains(';') {
        b';'
    } else if header.contains('\t') {
        b'\t'
    } else {
        b','
    };
    (0, sep)
}

/// A value quoted in a conflict message: short plain values in full, a credential reference
/// as written (it names a variable or file, not a secret), anything that could be a secret
/// described by its length.
fn shown(key: &str, value: &str) -> String {
    if key == "credential" {
        let is_ref = value == "prompt" || value.starts_with("env:") || value.starts_with("file:");
        return if is_ref && value.len() <= 200 && !value.contains(char::is_control) {
            format!("\"{value}\"")
        } else {
            "a value that is not a credential reference (not shown)".to_string()
        };
    }
    if key == "tls_pin" {
        return match value.parse::<super::Pin>() {
            Ok(pin) => short_pin(&pin),
            Err(_) => "a value that is not a fingerprint".to_string(),
        };
    }
    let n = value.chars().count();
    let token_like = n >= 24 && value.chars().all(|c| c.is_ascii_alphanumeric());
    if n <= 80 && !token_like && !value.contains(char::is_control) {
        format!("\"{value}\"")
    } else {
        format!("a {n}-character value")
    }
}

/// `sha256:3F:1A:9C…A1:84:D0`: enough of a fingerprint to tell two apart.
pub(crate) fn short_pin(pin: &super::Pin) -> String {
    let full = pin.to_string();
    let hex = full.strip_prefix("sha256:").unwrap_or(&full);
    let groups: Vec<&str> = hex.split(':').collect();
    if groups.len() <= 6 {
        return full;
    }
    format!(
        "sha256:{}…{}",
        groups[..3].join(":"),
        groups[groups.len() - 3..].join(":")
    )
}

/// Whether two cells of one host's column mean the same (a pin in two spellings, `WHM` and
/// `whm`).
fn same(key: &str, a: &str, b: &str) -> bool {
    match key {
        "tls_pin" => match (a.parse::<super::Pin>(), b.parse::<super::Pin>()) {
            (Ok(x), Ok(y)) => x == y,
            _ => a == b,
        },
        "api" | "auth" | "tls_insecure" => a.eq_ignore_ascii_case(b),
        _ => a == b,
    }
}

/// One `credential` cell of a host: (line, index of the row's account in `accounts`, value).
type CredCell = (u64, Option<usize>, String);

struct HostRows {
    name: String,
    first_line: u64,
    /// key → (value, line where first given)
    keys: Vec<(&'static str, String, u64)>,
    /// Every `credential` cell, decided once all rows are read (see the module comment).
    creds: Vec<CredCell>,
    accounts: Vec<RawAccount>,
    star: Option<u64>,
}

fn conflict(
    host: &str,
    key: &str,
    value: &str,
    prev: &str,
    line: u64,
    prev_line: u64,
    file: &str,
) -> Problem {
    Problem::new(
        format!("{file}:{line}"),
        format!(
            "host {host}: {key} is {} here but {} on line {prev_line}",
            shown(key, value),
            shown(key, prev)
        ),
    )
    .field(key)
    .hint(format!(
        "make the rows of {host} agree, or leave the cell empty to inherit line {prev_line}"
    ))
}

pub(crate) fn parse(text: &str, file: &str, problems: &mut Vec<Problem>) -> RawInventory {
    let (skip, sep) = dialect(text, file, problems);
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .delimiter(sep)
        .comment(Some(b'#'))
        .flexible(true)
        .from_reader(&text.as_bytes()[skip..]);
    let loc = |line: u64| format!("{file}:{line}");
    // The csv crate's line counter skips comment lines, and a record's position is where the
    // reader stood before it skipped blank and comment lines: skip them here too. A cell's line
    // is its record's plus the line breaks inside the quoted cells before it.
    let lines = super::Lines::new(text);
    let line_at = |byte: u64| lines.line(record_start(text, skip + byte as usize)) as u64;
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
        let first = record.position().map(|p| line_at(p.byte())).unwrap_or(0);
        let mut cell_lines = Vec::with_capacity(record.len());
        let mut at = first;
        for raw in record.iter() {
            cell_lines.push(at);
            at += raw.bytes().filter(|b| *b == b'\n').count() as u64;
        }
        let cells: Vec<&str> = record.iter().map(str::trim).collect();
        if cells.iter().all(|c| c.is_empty()) {
            continue;
        }
        let line = first;
        let Some(cols) = &header else {
            let mut names: Vec<String> = cells.iter().map(|c| c.to_ascii_lowercase()).collect();
            // Spreadsheets write empty columns at the end of the header: not columns.
            while names.last().is_some_and(String::is_empty) {
                names.pop();
            }
            let mut cols = Vec::with_capacity(names.len());
            let mut seen: HashMap<&'static str, ()> = HashMap::new();
            for name in names {
                if name.is_empty() {
                    // An unnamed column is fine while its cells are empty (checked per row).
                    cols.push(None);
                    continue;
                }
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
                        let p = super::unknown_key(&loc(line), &name, "column", &columns);
                        let p = if name.contains(';') && sep == b',' {
                            p.hint("the header mixes ',' and ';': separate the columns with one of them (or write sep=; as the first line)")
                        } else {
                            p
                        };
                        problems.push(p);
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
        // Empty cells past the header's last column (spreadsheets pad rows) are no cells.
        let mut width = cells.len();
        while width > cols.len() && cells[width - 1].is_empty() {
            width -= 1;
        }
        if width != cols.len() {
            problems.push(
                Problem::new(loc(line), format!("this row has {width} cells but the header has {}", cols.len()))
                    .hint("give every row the same number of cells as the header (leave a cell empty to inherit)"),
            );
            continue;
        }
        if let Some(i) = (0..width).find(|i| cols[*i].is_none() && !cells[*i].is_empty()) {
            problems.push(
                Problem::new(
                    loc(cell_lines[i]),
                    format!(
                        "cell {} is under a column with no name in the header",
                        i + 1
                    ),
                )
                .hint("name the column in the header, or empty the cell"),
            );
            continue;
        }
        let index = |name: &str| cols.iter().position(|c| *c == Some(name));
        let cell = |name: &str| -> &str { index(name).map(|i| cells[i]).unwrap_or("") };
        let cell_line = |name: &str| index(name).map_or(line, |i| cell_lines[i]);
        let host = cell("host");
        if host.is_empty() {
            problems.push(
                Problem::new(loc(cell_line("host")), "the host cell is empty")
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
                creds: Vec::new(),
                accounts: Vec::new(),
                star: None,
            });
            hosts.len() - 1
        });
        let h = &mut hosts[idx];
        let account = cell("account");
        let account_credential = cell(ACCOUNT_CREDENTIAL);
        let account_index = match account {
            "" | "*" => None,
            _ => Some(h.accounts.len()),
        };
        for key in HOST_KEYS {
            let value = cell(key);
            if value.is_empty() {
                continue;
            }
            let vline = cell_line(key);
            if *key == "credential" {
                h.creds.push((vline, account_index, value.to_string()));
                continue;
            }
            match h.keys.iter().find(|(k, _, _)| k == key) {
                Some((_, prev, prev_line)) if !same(key, value, prev) => {
                    problems.push(conflict(host, key, value, prev, vline, *prev_line, file));
                }
                Some(_) => {}
                None => h.keys.push((key, value.to_string(), vline)),
            }
        }
        match account {
            "" => {
                if !account_credential.is_empty() {
                    problems.push(
                        Problem::new(
                            loc(cell_line(ACCOUNT_CREDENTIAL)),
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
                        Problem::new(loc(cell_line(ACCOUNT_CREDENTIAL)), "account_credential cannot apply to every account (*)")
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
                loc: loc(if account_credential.is_empty() {
                    cell_line("account")
                } else {
                    cell_line(ACCOUNT_CREDENTIAL)
                }),
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
        .map(|mut h| {
            credentials(&mut h, file, problems);
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
        sink: None,
    }
}

/// Decide what a host's `credential` cells are: one host credential when they agree; with
/// `api = cpanel` and different values, each account row's own (rows without an account give
/// the host's); otherwise a conflict naming both lines.
fn credentials(h: &mut HostRows, file: &str, problems: &mut Vec<Problem>) {
    let creds = std::mem::take(&mut h.creds);
    let Some((first_line, _, first)) = creds.first().cloned() else {
        return;
    };
    let differ = creds.iter().find(|(_, _, v)| *v != first);
    let Some((line, _, other)) = differ.cloned() else {
        h.keys.push(("credential", first, first_line));
        return;
    };
    let cpanel = h
        .keys
        .iter()
        .any(|(k, v, _)| *k == "api" && v.eq_ignore_ascii_case("cpanel"));
    if !cpanel {
        problems.push(
            conflict(&h.name, "credential", &other, &first, line, first_line, file).hint(format!(
                "a WHM host has one credential (its whm_user's): make the rows of {} agree or leave the cell empty; \
                 for each account's own, set api = cpanel (then an account row's credential is that account's) \
                 or use the account_credential column",
                h.name
            )),
        );
        return;
    }
    let mut host_level: Option<(u64, String)> = None;
    for (line, account, value) in creds {
        match account {
            Some(i) => {
                let acct = &mut h.accounts[i];
                match &acct.credential {
                    Some(own) if *own != value => problems.push(
                        Problem::new(
                            format!("{file}:{line}"),
                            format!(
                                "account {}: credential and account_credential differ",
                                acct.user
                            ),
                        )
                        .field("credential")
                        .hint("with api = cpanel an account row's credential is that account's: keep one of the two cells"),
                    ),
                    Some(_) => {}
                    None => {
                        acct.credential = Some(value);
                        acct.loc = format!("{file}:{line}");
                    }
                }
            }
            None => match &host_level {
                Some((prev_line, prev)) if *prev != value => problems.push(conflict(
                    &h.name,
                    "credential",
                    &value,
                    prev,
                    line,
                    *prev_line,
                    file,
                )),
                Some(_) => {}
                None => host_level = Some((line, value)),
            },
        }
    }
    if let Some((line, value)) = host_level {
        h.keys.push(("credential", value, line));
    }
}
