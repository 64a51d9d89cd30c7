//! Man pages from the clap definitions: tokenfleet(1) and one page per command
//! (tokenfleet-create(1), …, which the top page's COMMANDS section cites). clap_mangen renders
//! the title, synopsis, description and options; the examples are rendered here as a literal
//! block, so that what `man` shows can be pasted into a shell (plain `-`, kept line breaks).

use super::Cli;
use clap::CommandFactory;
use std::path::{Path, PathBuf};

/// Every page: (file name, roff), the top page first.
pub(super) fn pages() -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut top = Cli::command().disable_help_subcommand(true);
    top.build();
    let mut out = vec![render(&top)?];
    for sub in top.get_subcommands().filter(|s| !s.is_hide_set()) {
        out.push(render(sub)?);
    }
    Ok(out)
}

/// The page of `command` (`None`: the top page).
pub(super) fn page(command: Option<&str>) -> Result<Vec<u8>, String> {
    let all = pages().map_err(|e| e.to_string())?;
    let want = match command {
        None => "tokenfleet.1".to_string(),
        Some(c) => format!("tokenfleet-{c}.1"),
    };
    let names: Vec<String> = all
        .iter()
        .skip(1)
        .map(|(n, _)| {
            n.trim_start_matches("tokenfleet-")
                .trim_end_matches(".1")
                .to_string()
        })
        .collect();
    all.into_iter()
        .find(|(n, _)| *n == want)
        .map(|(_, roff)| roff)
        .ok_or_else(|| {
            format!(
                "no man page for {:?}; the commands are: {}",
                command.unwrap_or_default(),
                names.join(", ")
            )
        })
}

/// Write every page into `dir`; returns the files written.
pub(super) fn write_all(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for (name, roff) in pages()? {
        let path = dir.join(name);
        std::fs::write(&path, roff)?;
        written.push(path);
    }
    Ok(written)
}

fn render(cmd: &clap::Command) -> std::io::Result<(String, Vec<u8>)> {
    let examples = cmd.get_after_help().map(|h| h.to_string());
    let man = clap_mangen::Man::new(cmd.clone().after_help(None::<&str>));
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut out)?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(&mut out)?;
    }
    if let Some(text) = examples {
        out.extend_from_slice(examples_roff(&text).as_bytes());
    }
    man.render_version_section(&mut out)?;
    Ok((man.get_filename(), out))
}

/// The `Examples:` text of a help page as a man EXAMPLES section: each block a literal,
/// unfilled paragraph, with roff's special characters escaped.
fn examples_roff(text: &str) -> String {
    let mut out = String::from(".SH EXAMPLES\n");
    let body = text.trim_start().strip_prefix("Examples:").unwrap_or(text);
    for block in body.split("\n\n").filter(|b| !b.trim().is_empty()) {
        out.push_str(".PP\n.RS 4\n.nf\n");
        for line in block.lines() {
            out.push_str(&escape(line.strip_prefix("  ").unwrap_or(line)));
            out.push('\n');
        }
        out.push_str(".fi\n.RE\n");
    }
    out
}

/// One line of literal text for roff.
fn escape(line: &str) -> String {
    let s = line.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn every_command_has_a_page_with_examples_and_the_top_page_cites_them() {
        let pages = pages().unwrap();
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        for want in [
            "tokenfleet.1",
            "tokenfleet-create.1",
            "tokenfleet-rotate.1",
            "tokenfleet-revoke.1",
            "tokenfleet-update.1",
            "tokenfleet-list.1",
            "tokenfleet-check.1",
            "tokenfleet-resume.1",
            "tokenfleet-open.1",
            "tokenfleet-coverage.1",
            "tokenfleet-completions.1",
            "tokenfleet-man.1",
        ] {
            assert!(names.contains(&want), "{want}: {names:?}");
        }
        let top = String::from_utf8_lossy(&pages[0].1).into_owned();
        assert!(top.contains("tokenfleet\\-create(1)"), "{top}");
        let create = String::from_utf8_lossy(&page(Some("create")).unwrap()).into_owned();
        assert!(create.contains(".SH EXAMPLES"), "{create}");
        assert!(create.contains("\\-\\-dry\\-run"), "{create}");
        assert!(page(Some("nope")).unwrap_err().contains("create, rotate"));
    }

    /// `line` split as a POSIX shell would (quotes; no expansions), up to a `|`.
    fn words(line: &str) -> Vec<String> {
        let (mut out, mut cur, mut quote, mut any) = (Vec::new(), String::new(), None, false);
        for c in line.chars() {
            match (quote, c) {
                (None, '\'' | '"') => {
                    quote = Some(c);
                    any = true;
                }
                (Some(q), c) if c == q => quote = None,
                (None, '|' | '>') => break,
                (None, c) if c.is_whitespace() => {
                    if any || !cur.is_empty() {
                        out.push(std::mem::take(&mut cur));
                    }
                    any = false;
                }
                (_, c) => cur.push(c),
            }
        }
        if any || !cur.is_empty() {
            out.push(cur);
        }
        out
    }

    #[test]
    fn every_example_in_every_help_parses() {
        let mut top = Cli::command();
        top.build();
        let mut helps: Vec<String> = vec![top.get_after_help().unwrap().to_string()];
        helps.extend(
            top.get_subcommands()
                .filter_map(|s| s.get_after_help().map(|h| h.to_string())),
        );
        let mut seen = 0;
        for help in &helps {
            let joined = help.replace("\\\n", " ");
            for line in joined.lines().map(str::trim) {
                let Some(rest) = line.strip_prefix("tokenfleet ") else {
                    continue;
                };
                let argv: Vec<String> = std::iter::once("tokenfleet".to_string())
                    .chain(words(rest))
                    .collect();
                if let Err(e) = Cli::try_parse_from(&argv) {
                    panic!("{line}\n{e}");
                }
                seen += 1;
            }
        }
        assert!(seen >= 20, "{seen} examples");
    }

    #[test]
    fn roff_specials_are_escaped() {
        assert_eq!(escape(r"a \ b"), r"a \e b");
        assert_eq!(escape(".x -y"), r"\&.x \-y");
    }
}
