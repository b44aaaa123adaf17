//! The crate's one error type, and [`Problem`]: one finding of validation, naming the file
//! and the item so a reader can go straight to the line to fix.

use std::fmt;

use serde::Serialize;

/// Errors of the agents crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A definitions directory or file cannot be read.
    #[error("{path}: {source}")]
    Io {
        /// The directory or file.
        path: String,
        /// What the operating system said.
        source: std::io::Error,
    },

    /// The definitions do not validate. Every problem found is listed, not only the first,
    /// so one `chatgptd config check` shows all there is to fix.
    #[error("{} problem(s):{}", problems.len(), bullet_list(problems))]
    Invalid {
        /// What is wrong, one finding each.
        problems: Vec<Problem>,
    },

    /// A template refers to something the render context does not have.
    #[error("template references `{reference}`, which is not in the context")]
    UnknownReference {
        /// The reference as written, e.g. `steps.plan.output` or `input.trip.city`.
        reference: String,
    },

    /// A template does not parse (an unclosed `{{`, an empty or malformed reference).
    #[error("template: {message}")]
    Template {
        /// What is wrong, with the offending text.
        message: String,
    },

    /// A workflow run's input does not fit the workflow's declared `input`.
    #[error("workflow `{workflow}` input: {}", problems.join("; "))]
    Input {
        /// The workflow.
        workflow: String,
        /// Every mismatch (a missing required field, a wrong type, an undeclared field).
        problems: Vec<String>,
    },
}

impl Error {
    /// The validation findings, when this is [`Error::Invalid`]; empty otherwise.
    pub fn problems(&self) -> &[Problem] {
        match self {
            Error::Invalid { problems } => problems,
            _ => &[],
        }
    }

    /// A short, bounded label for metrics and dead-letter headers.
    pub fn class(&self) -> &'static str {
        match self {
            Error::Io { .. } | Error::Invalid { .. } => "config",
            Error::UnknownReference { .. } | Error::Template { .. } => "template",
            Error::Input { .. } => "input",
        }
    }
}

/// One validation finding: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The file, as given to the loader (`agents/atlas.yaml`, or a path under the loaded
    /// directory).
    pub file: String,
    /// The item within the file, e.g. ``agent `wanderweave` `` or ``step `plan` ``; empty
    /// when the finding is about the whole file.
    pub item: String,
    /// What is wrong, and where it helps, how to fix it.
    pub message: String,
}

impl Problem {
    pub(crate) fn new(file: &str, item: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            file: file.to_string(),
            item: item.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.item.is_empty() {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}: {}: {}", self.file, self.item, self.message)
        }
    }
}

fn bullet_list(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("\n  - {p}")).collect()
}
