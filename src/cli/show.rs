//! What fleet commands print for the user to read or parse: the dry-run plan and what it would
//! do, `list` and `check` as a table, JSON or CSV, and `--list-hosts`/`--list-targets`. Names,
//! times and pins only: never a secret. It goes to stdout, or to stderr when stdout carries the
//! report (`--report -`), so that stdout always parses.

use super::OutFormat;
use crate::inventory;
use crate::outcome::{CheckRow, ListingRow, Status, TargetResult};
use crate::plan::{Operation, Plan, Scope};
use crate::seal::{HandoffFormat, HandoffRow, encode_rows};
use crate::spool::Spool;
use crate::table::write_table;
use crate::time::rfc3339;
use std::io::Write;

/// Where the text a command prints goes: stdout, unless stdout carries the report.
#[derive(Debug, Clone, Copy)]
pub(super) struct Screen {
    pub(super) to_stderr: bool,
}

impl Screen {
    pub(super) fn writer(self) -> Box<dyn Write> {
        if self.to_stderr {
            Box::new(std::io::stderr())
        } else {
            Box::new(std::io::stdout())
        }
    }

    /// Informative text: a reader that went away (`| head`) is not an error.
    pub(super) fn print(self, text: &str) {
        let _ = self.writer().write_all(text.as_bytes());
    }
}

/// `--list-hosts`: the hosts a command would contact, one name per line.
pub(super) fn print_hosts(plan: &Plan, screen: Screen) {
    let mut out = String::new();
    for hp in &plan.hosts {
        out.push_str(&hp.host.name);
        out.push('\n');
    }
    screen.print(&out);
}

/// `--list-targets`: every target a command would touch, discovered accounts included, one
/// `host/account` per line (`host` for `--scope whm`): the form `--limit @FILE` reads, so a
/// list can be edited and fed back. The dry run shows each target's token names.
pub(super) fn print_targets(results: &Spool<TargetResult>, hosts_only: bool, screen: Screen) {
    let mut out = String::new();
    for t in results.iter() {
        let account = t.account.as_deref().filter(|_| !hosts_only);
        out.push_str(&crate::plan::limit::retry_line(&t.host, account));
        out.push('\n');
    }
    screen.print(&out);
}

/// A dry run's verdict per target, every target: what would be created, rotated or revoked,
/// each revoked token by name with its creation and expiry.
pub(super) fn print_dry_run(results: &Spool<TargetResult>, screen: Screen) {
    let mut updates = false;
    let body: Vec<[String; 5]> = results
        .iter()
        .map(|t| {
            // `update` names the tokens it would change; the others, those they would revoke.
            updates |= !t.updated.is_empty();
            let revokes: Vec<String> = t
                .revoked
                .iter()
                .chain(&t.updated)
                .map(|r| r.describe())
                .collect();
            [
                t.status.as_str().to_string(),
                t.host.clone(),
                t.account.clone().unwrap_or_else(|| "-".into()),
                t.token_name.clone().unwrap_or_else(|| "-".into()),
                match (&t.error, revokes.is_empty(), &t.note) {
                    (Some(e), _, _) => e.clone(),
                    (None, false, _) => revokes.join(", "),
                    // Why nothing would happen, when a note says (--expiring-within).
                    (None, true, Some(n)) if t.status == Status::Unchanged => n.clone(),
                    (None, true, _) => "-".into(),
                },
            ]
        })
        .collect();
    let mut out = Vec::new();
    let _ = write_table(
        &mut out,
        [
            "WOULD",
            "HOST",
            "ACCOUNT",
            "NEW TOKEN",
            if updates {
                "UPDATES (or why not)"
            } else {
                "REVOKES (or why not)"
            },
        ],
        &body,
    );
    screen.print(&String::from_utf8_lossy(&out));
}

pub(super) fn print_plan(plan: &Plan, op: Operation, screen: Screen) {
    let mut out = String::new();
    out.push_str(&format!(
        "plan: {} on {} host(s)\n",
        op.as_str(),
        plan.hosts.len()
    ));
    for hp in &plan.hosts {
        let h = &hp.host;
        let api = match (plan.scope, h.api) {
            (Scope::Whm, _) => "WHM tokens of ".to_string() + &h.whm_user,
            (_, inventory::Api::Whm) => format!("api whm as {}", h.whm_user),
            (_, inventory::Api::Cpanel) => "api cpanel".to_string(),
            (_, inventory::Api::Ssh) => format!("api ssh as {}", h.ssh.login()),
        };
        out.push_str(&format!(
            "  {} ({}, {}, per_host {})\n",
            h.name, h.address, api, hp.per_host
        ));
        if hp.discover {
            out.push_str("    all accounts (discovered with listaccts; each is named below)\n");
        } else if op == Operation::Sweep {
            let who: Vec<String> = hp
                .targets
                .iter()
                .map(|t| match &t.account {
                    Some(a) => a.clone(),
                    None => format!("{} (WHM)", h.whm_user),
                })
                .collect();
            let who: Vec<&str> = who.iter().map(String::as_str).collect();
            out.push_str(&format!(
                "    {}: the tokens the census classes unknown\n",
                plural_accounts(&who)
            ));
        } else if matches!(op, Operation::Revoke | Operation::Update) {
            // One glob for all: the accounts, then what matches is named per token below.
            let who: Vec<&str> = hp
                .targets
                .iter()
                .map(|t| t.account.as_deref().unwrap_or(&h.whm_user))
                .collect();
            let pattern = hp.targets.first().and_then(|t| t.token_name.as_deref());
            out.push_str(&format!(
                "    {}: tokens matching {}\n",
                plural_accounts(&who),
                pattern.unwrap_or("-")
            ));
        } else {
            for t in &hp.targets {
                let who = t.account.as_deref().unwrap_or(&h.whm_user);
                match &t.token_name {
                    Some(n) => out.push_str(&format!("    {who}: {n}\n")),
                    None => out.push_str(&format!("    {who}\n")),
                }
            }
        }
    }
    screen.print(&out);
}

/// `alice, bob, carol` or `120 accounts (alice, bob, carol, …)`.
fn plural_accounts(who: &[&str]) -> String {
    match who.len() {
        0..=5 => who.join(", "),
        n => format!("{n} accounts ({}, …)", who[..3].join(", ")),
    }
}

pub(super) fn print_listing(
    rows: &Spool<ListingRow>,
    format: OutFormat,
    stdout: &mut dyn Write,
) -> anyhow::Result<()> {
    // Sorted, so all of them at once; the spool kept them out of memory during the run.
    let mut rows = rows.to_vec();
    rows.sort_by(|a, b| {
        (&a.host, &a.account, &a.token_name).cmp(&(&b.host, &b.account, &b.token_name))
    });
    let now = jiff::Timestamp::now().as_second();
    match format {
        OutFormat::Json => {
            let v: Vec<serde_json::Value> = rows
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "host": r.host, "account": r.account, "token_name": r.token_name,
                        "created_at": crate::time::seconds(r.create_time),
                        "expires_at": r.expires_at.map(|e| crate::time::seconds(Some(e))),
                        "expired": r.expires_at.is_some_and(|e| e <= now),
                    })
                })
                .collect();
            writeln!(stdout, "{}", serde_json::to_string_pretty(&v)?)?;
        }
        OutFormat::Csv => {
            let mut w = csv::Writer::from_writer(stdout);
            w.write_record([
                "host",
                "account",
                "token_name",
                "created_at",
                "expires_at",
                "expired",
            ])?;
            for r in &rows {
                let expired = r.expires_at.is_some_and(|e| e <= now);
                w.write_record([
                    r.host.as_str(),
                    &r.account,
                    &r.token_name,
                    &crate::time::seconds(r.create_time),
                    &crate::time::seconds(r.expires_at),
                    if expired { "true" } else { "false" },
                ])?;
            }
            w.flush()?;
        }
        OutFormat::Table => {
            let table: Vec<[String; 5]> = rows
                .iter()
                .map(|r| {
                    let expires = match r.expires_at {
                        None => "never".to_string(),
                        Some(e) if e <= now => {
                            format!("{} (expired)", crate::time::seconds(Some(e)))
                        }
                        Some(e) => crate::time::seconds(Some(e)),
                    };
                    [
                        r.host.clone(),
                        r.account.clone(),
                        r.token_name.clone(),
                        crate::time::seconds(r.create_time),
                        expires,
                    ]
                })
                .collect();
            write_table(
                stdout,
                ["HOST", "ACCOUNT", "TOKEN", "CREATED", "EXPIRES"],
                &table,
            )?;
        }
    }
    Ok(())
}

pub(super) fn print_checks(
    rows: &[CheckRow],
    format: OutFormat,
    stdout: &mut dyn Write,
) -> anyhow::Result<()> {
    let mut rows = rows.to_vec();
    rows.sort_by(|a, b| (&a.host, &a.user).cmp(&(&b.host, &b.user)));
    match format {
        OutFormat::Json => writeln!(stdout, "{}", serde_json::to_string_pretty(&rows)?)?,
        OutFormat::Csv => {
            let mut w = csv::Writer::from_writer(stdout);
            w.write_record([
                "host",
                "user",
                "url",
                "ok",
                "detail",
                "tls_pin",
                "ssh_host_key",
                "elapsed_ms",
            ])?;
            for r in &rows {
                w.write_record([
                    r.host.as_str(),
                    &r.user,
                    &r.url,
                    if r.ok { "true" } else { "false" },
                    &r.detail,
                    r.tls_pin.as_deref().unwrap_or(""),
                    r.ssh_host_key.as_deref().unwrap_or(""),
                    &r.elapsed_ms.to_string(),
                ])?;
            }
            w.flush()?;
        }
        OutFormat::Table => {
            let table: Vec<[String; 5]> = rows
                .iter()
                .map(|r| {
                    [
                        r.host.clone(),
                        r.user.clone(),
                        if r.ok { "ok".into() } else { "FAILED".into() },
                        r.ssh_host_key
                            .clone()
                            .or_else(|| r.tls_pin.clone())
                            .unwrap_or_else(|| "-".into()),
                        r.detail.clone(),
                    ]
                })
                .collect();
            write_table(stdout, ["HOST", "USER", "STATUS", "PIN", "DETAIL"], &table)?;
        }
    }
    Ok(())
}

/// Handoff rows as `open` prints them (with the tokens: `open` is the explicit "show me").
pub(super) fn render_handoff(rows: &[HandoffRow], format: OutFormat) -> String {
    let plain = |f| String::from_utf8_lossy(&encode_rows(rows, f)).into_owned();
    match format {
        OutFormat::Csv => plain(HandoffFormat::Csv),
        OutFormat::Json => plain(HandoffFormat::Json),
        OutFormat::Table => {
            let body: Vec<[String; 7]> = rows
                .iter()
                .map(|r| {
                    [
                        r.host.clone(),
                        r.account.clone(),
                        r.token_name.clone(),
                        r.token.expose().to_string(),
                        r.url.clone(),
                        rfc3339(r.created_at),
                        r.expires_at.map(rfc3339).unwrap_or_else(|| "never".into()),
                    ]
                })
                .collect();
            let mut out = Vec::new();
            let head = [
                "HOST",
                "ACCOUNT",
                "TOKEN_NAME",
                "TOKEN",
                "URL",
                "CREATED_AT",
                "EXPIRES_AT",
            ];
            write_table(&mut out, head, &body).expect("write to Vec");
            String::from_utf8_lossy(&out).into_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::handoff::CSV_HEADER;
    use crate::seal::handoff::tests::sample_rows;

    #[test]
    fn table_is_aligned_and_shows_tokens() {
        let t = render_handoff(&sample_rows(), OutFormat::Table);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("HOST"));
        let col = lines[0].find("ACCOUNT").unwrap();
        assert_eq!(&lines[1][col..col + 5], "alice");
        assert_eq!(&lines[2][col..col + 3], "bob");
        assert!(lines[1].contains("JPQNSRU0DH448UJLGXH7KVJECC5QN9N9"));
        assert!(lines[2].ends_with("never"));
        assert!(render_handoff(&sample_rows(), OutFormat::Csv).starts_with(CSV_HEADER));
    }
}
