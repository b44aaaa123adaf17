//! Placeholder: the fake OpenAI-compatible server (issue 4).
