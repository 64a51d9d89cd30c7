//! Why this module exists: bad input must be reported once, completely and actionably (file,
//! line or key, field, what is wrong, how to fix it), before anything is contacted. [`Problem`] is
//! one such finding, [`InputError`] all of them; both map to exit code 2.

use std::fmt;

/// One thing wrong with the user's input, with where it is and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where: `inventory.csv:4`, `inventory.toml: hosts[2]` or `--name`.
    pub location: String,
    /// Which field or column, if any: `whm_port`.
    pub field: Option<String>,
    /// What is wrong, in one sentence without a trailing period.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
    /// What was contacted to find this out (the secret store, checked before the fleet), if
    /// anything: the closing line says so instead of "nothing was contacted".
    pub reached: Option<String>,
}

impl Problem {
    pub fn new(location: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            location: location.into(),
            field: None,
            message: message.into(),
            hint: None,
            reached: None,
        }
    }

    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Found by asking `what` (e.g. "the store at https://…"), which no fleet host is.
    pub fn reached(mut self, what: impl Into<String>) -> Self {
        self.reached = Some(what.into());
        self
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.location)?;
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        write!(f, "{}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Everything wrong with the input; nothing was contacted (at most the secret store, to check
/// it: then the closing line names it). Exit code 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    pub problems: Vec<Problem>,
}

impl InputError {
    pub fn one(problem: Problem) -> Self {
        InputError {
            problems: vec![problem],
        }
    }
}

impl From<Problem> for InputError {
    fn from(p: Problem) -> Self {
        InputError::one(p)
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "error: {p}")?;
        }
        let contacted = match self.problems.iter().find_map(|p| p.reached.as_deref()) {
            Some(what) => format!("no fleet host was contacted (only {what}, to check it)"),
            None => "nothing was contacted".to_string(),
        };
        if self.problems.len() > 1 {
            write!(f, "\n{} problems; {contacted}", self.problems.len())?;
        } else {
            write!(f, "\n{contacted}")?;
        }
        Ok(())
    }
}

impl std::error::Error for InputError {}

/// Exit codes of docs/DESIGN.md §5.
pub mod exit {
    pub const OK: i32 = 0;
    pub const SOME_FAILED: i32 = 1;
    pub const BAD_INPUT: i32 = 2;
    pub const HANDOFF_FAILED: i32 = 3;
    pub const INTERRUPTED: i32 = 130;
}

/// An error and its sources on one line, `outer: inner: root`, as anyhow's `{:#}` shows it.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        text.push_str(": ");
        text.push_str(&e.to_string());
        next = e.source();
    }
    text
}

/// `a, b, c and 4 more`: names in a message, the first `at_most` of them.
pub fn name_list(names: &[&str], at_most: usize) -> String {
    if names.len() <= at_most {
        return names.join(", ");
    }
    format!(
        "{} and {} more",
        names[..at_most].join(", "),
        names.len() - at_most
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_closing_line_says_what_was_contacted() {
        let plain = InputError::one(Problem::new("--name", "empty").hint("give one"));
        assert_eq!(
            plain.to_string(),
            "error: --name: empty\n  hint: give one\nnothing was contacted"
        );
        let store = InputError {
            problems: vec![
                Problem::new("--name", "empty"),
                Problem::new("--to", "the token was refused")
                    .reached("the store at https://s:8200"),
            ],
        };
        assert_eq!(
            store.to_string(),
            "error: --name: empty\nerror: --to: the token was refused\n2 problems; no fleet host was contacted (only the store at https://s:8200, to check it)"
        );
    }
}
