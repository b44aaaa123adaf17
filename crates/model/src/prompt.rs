//! Versioned prompt files (`prompts/`): a front matter block with the version, then the
//! prompt. The version goes into every output's provenance and the result cache key.

use std::path::Path;

/// A prompt template and its version.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    /// Goes into provenance and the result cache key.
    pub version: String,
    /// The template text, with `{{name}}` placeholders.
    pub template: String,
}

/// A prompt file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("prompt {source_name}: {message}")]
pub struct PromptError {
    pub source_name: String,
    pub message: String,
}

impl Prompt {
    /// Parses a prompt file's text; `source_name` is for messages.
    pub fn parse(text: &str, source_name: &str) -> Result<Prompt, PromptError> {
        let error = |message: &str| PromptError {
            source_name: source_name.to_string(),
            message: message.to_string(),
        };
        let rest = text
            .strip_prefix("---\n")
            .ok_or_else(|| error("must start with a --- front matter block"))?;
        let (front, body) = rest
            .split_once("\n---\n")
            .ok_or_else(|| error("the front matter block is not closed by ---"))?;
        let version = front
            .lines()
            .find_map(|line| line.strip_prefix("version:"))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| error("the front matter has no `version:`"))?;
        let template = body.trim().to_string();
        if template.is_empty() {
            return Err(error("the prompt is empty"));
        }
        Ok(Prompt { version, template })
    }

    /// Reads a prompt file, or parses `builtin` (named `builtin_name`) when `path` is empty.
    pub fn load_or(path: &Path, builtin: &str, builtin_name: &str) -> Result<Prompt, PromptError> {
        if path.as_os_str().is_empty() {
            return Self::parse(builtin, builtin_name);
        }
        let text = std::fs::read_to_string(path).map_err(|err| PromptError {
            source_name: path.display().to_string(),
            message: err.to_string(),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// The template with `{{name}}` replaced by each value.
    pub fn render(&self, values: &[(&str, &str)]) -> String {
        values
            .iter()
            .fold(self.template.clone(), |text, (name, value)| {
                text.replace(&format!("{{{{{name}}}}}"), value)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_prompts_parse_and_render() {
        let enrich = include_str!("../../../prompts/enrich_ticket.v1.md");
        let prompt = Prompt::load_or(Path::new(""), enrich, "enrich").unwrap();
        assert_eq!(prompt.version, "enrich_ticket.v1");
        let text = prompt.render(&[("categories", "bug, access")]);
        assert!(text.contains("from: bug, access."));
        assert!(!text.contains("{{"));
        let agent =
            Prompt::parse(include_str!("../../../prompts/agent_reply.v1.md"), "agent").unwrap();
        assert_eq!(agent.version, "agent_reply.v1");
        let text = agent.render(&[
            ("agent_name", "Wanderweave"),
            ("fleet", "Creative"),
            ("actions", "reply"),
        ]);
        assert!(text.contains("You are Wanderweave") && !text.contains("{{"));
    }

    #[test]
    fn malformed_files_are_refused_with_a_reason() {
        assert!(
            Prompt::parse("no front matter", "x")
                .unwrap_err()
                .to_string()
                .contains("front matter")
        );
        assert!(
            Prompt::parse("---\nname: x\n---\nbody", "x")
                .unwrap_err()
                .to_string()
                .contains("version")
        );
        assert!(
            Prompt::parse("---\nversion: v\n---\n  ", "x")
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
    }
}
