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
}

impl Problem {
    pub fn new(location: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            location: location.into(),
            field: None,
            message: message.into(),
            hint: None,
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

/// Everything wrong with the input; nothing was contacted. Exit code 2.
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
        if self.problems.len() > 1 {
            write!(
                f,
                "\n{} problems; nothing was contacted",
                self.problems.len()
            )?;
        } else {
            write!(f, "\nnothing was contacted")?;
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
