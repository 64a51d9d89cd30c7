//! Retry what failed, as Ansible users expect: a run that exits 1 writes the targets that did
//! not succeed, one `host/account` per line (a host-level failure is its `host`), to a file
//! that `--limit @FILE` reads, and says the command that retries only them: the same command
//! line with its `--limit` replaced. Names only, never a secret.

use crate::outcome::TargetResult;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The retry file's lines for `results`: each failed target once, in the run's order; a
/// host-level failure (no account) names the whole host and covers its accounts, and so does
/// every target of a `--scope whm` run (`hosts_only`: its one target per host is the host).
pub(super) fn retry_lines(results: &[TargetResult], hosts_only: bool) -> Vec<String> {
    let whole: std::collections::HashSet<&str> = results
        .iter()
        .filter(|t| t.went_wrong() && (hosts_only || t.account.is_none()))
        .map(|t| t.host.as_str())
        .collect();
    let mut seen = std::collections::HashSet::new();
    let mut lines = Vec::new();
    for t in results.iter().filter(|t| t.went_wrong()) {
        let account = t
            .account
            .as_deref()
            .filter(|_| !whole.contains(t.host.as_str()));
        let line = crate::plan::limit::retry_line(&t.host, account);
        if seen.insert(line.clone()) {
            lines.push(line);
        }
    }
    lines
}

/// Where a run's retry file goes: beside its output (`OUT.retry`), else in the current folder
/// as `tokenfleet-OP.retry` (the next failed run of that command replaces it, as Ansible's
/// `PLAYBOOK.retry` is replaced); a shard's is `tokenfleet-OP.K-of-N.retry`.
pub(super) fn retry_path(
    output: Option<&Path>,
    op: &str,
    shard: Option<crate::shard::Shard>,
) -> PathBuf {
    match output.filter(|o| o.as_os_str() != "-") {
        Some(out) => {
            let mut p = out.as_os_str().to_owned();
            p.push(".retry");
            PathBuf::from(p)
        }
        None => match shard {
            Some(s) => PathBuf::from(format!("tokenfleet-{op}.{}.retry", s.label())),
            None => PathBuf::from(format!("tokenfleet-{op}.retry")),
        },
    }
}

/// Write the retry file; `None` when nothing needs a retry.
pub(super) fn write_retry(
    path: &Path,
    results: &crate::spool::Spool<TargetResult>,
    hosts_only: bool,
) -> Option<std::io::Result<()>> {
    let failed: Vec<TargetResult> = results.iter().filter(|t| t.went_wrong()).collect();
    let lines = retry_lines(&failed, hosts_only);
    if lines.is_empty() {
        return None;
    }
    let mut text = String::from(
        "# tokenfleet: the targets that did not succeed; retry them with --limit @FILE\n",
    );
    for l in &lines {
        text.push_str(l);
        text.push('\n');
    }
    Some(crate::atomic::write_atomic_with(path, true, |f| {
        std::io::Write::write_all(f, text.as_bytes())
    }))
}

/// Value-taking short flags of the fleet commands: in a cluster such as `-ql eu`, the first of
/// these takes the rest of the cluster (or the next argument) as its value.
const VALUED_SHORTS: &str = "ilRrojk";

/// This process's command line with its `--limit` replaced by `--limit @FILE`, quoted for a
/// POSIX shell.
pub(super) fn retry_command(args: &[OsString], file: &Path) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut it = args.iter().map(|a| a.to_string_lossy().into_owned());
    if let Some(program) = it.next() {
        out.push(program);
    }
    while let Some(a) = it.next() {
        if a == "--" {
            out.push(a);
            out.extend(it.by_ref());
            break;
        }
        if a == "--limit" {
            it.next();
            continue;
        }
        if a.starts_with("--limit=") {
            continue;
        }
        if let Some(cluster) = a
            .strip_prefix('-')
            .filter(|c| !c.starts_with('-') && !c.is_empty())
            && let Some(pos) = cluster.find(|c| VALUED_SHORTS.contains(c))
            && cluster[pos..].starts_with('l')
        {
            let before = &cluster[..pos];
            if pos + 1 == cluster.len() {
                it.next();
            }
            if !before.is_empty() {
                out.push(format!("-{before}"));
            }
            continue;
        }
        out.push(a);
    }
    out.push("--limit".into());
    out.push(format!("@{}", file.display()));
    out.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
}

/// `a` as one word for a POSIX shell.
fn quote(a: &str) -> String {
    let plain = !a.is_empty()
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c));
    if plain {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Status;

    fn args(s: &[&str]) -> Vec<OsString> {
        s.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_limit_is_replaced_in_every_spelling() {
        let f = Path::new("x.retry");
        for line in [
            &["tf", "revoke", "-i", "inv.toml", "-l", "eu", "--name", "a*"][..],
            &[
                "tf", "revoke", "-i", "inv.toml", "--limit", "eu", "--name", "a*",
            ],
            &[
                "tf",
                "revoke",
                "-i",
                "inv.toml",
                "--limit=eu",
                "--name",
                "a*",
            ],
            &["tf", "revoke", "-i", "inv.toml", "-leu", "--name", "a*"],
            &["tf", "revoke", "-i", "inv.toml", "--name", "a*"],
        ] {
            assert_eq!(
                retry_command(&args(line), f),
                "tf revoke -i inv.toml --name 'a*' --limit @x.retry",
                "{line:?}"
            );
        }
        assert_eq!(
            retry_command(&args(&["tf", "revoke", "-ql", "eu", "-i", "v"]), f),
            "tf revoke -q -i v --limit @x.retry"
        );
        // `-il` is the inventory `l`, not a limit.
        assert_eq!(
            retry_command(&args(&["tf", "list", "-il"]), f),
            "tf list -il --limit @x.retry"
        );
        assert_eq!(quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn failed_targets_become_lines_and_a_host_level_failure_covers_its_host() {
        let mut r = vec![
            TargetResult::new("web1", Some("alice"), None),
            TargetResult::new("web1", Some("bob"), None),
            TargetResult::new("web2", None, None),
            TargetResult::new("web2", Some("carol"), None),
            TargetResult::new("web3", Some("dave"), None),
            TargetResult::new("web3", Some("erin"), None),
        ];
        r[1].status = Status::Created;
        r[3].status = Status::Skipped;
        r[3].error = Some("the host was given up".into());
        r[4].status = Status::Skipped; // no error: skipped on purpose
        assert_eq!(retry_lines(&r, false), ["web1/alice", "web2", "web3/erin"]);
        assert_eq!(retry_lines(&r, true), ["web1", "web2", "web3"]);
        assert_eq!(
            retry_path(None, "revoke", None),
            Path::new("tokenfleet-revoke.retry")
        );
        assert_eq!(
            retry_path(None, "list", Some(crate::shard::Shard { k: 3, n: 8 })),
            Path::new("tokenfleet-list.3-of-8.retry")
        );
        assert_eq!(
            retry_path(Some(Path::new("out/d.age")), "create", None),
            Path::new("out/d.age.retry")
        );
    }
}
