//! Placeholder: the model client (issue 4).
