//! The repository's `agents/` and `workflows/` files, compiled into the binary so a worker
//! needs no files beside it. Listed one by one (include_str! cannot glob); the test below
//! fails when a file on disk is missing from these lists.

/// `agents/*.yaml`, by file name.
pub(crate) const AGENT_FILES: &[(&str, &str)] = &[
    ("actions.yaml", include_str!("../../../agents/actions.yaml")),
    ("aegis.yaml", include_str!("../../../agents/aegis.yaml")),
    ("atlas.yaml", include_str!("../../../agents/atlas.yaml")),
    (
        "commerce.yaml",
        include_str!("../../../agents/commerce.yaml"),
    ),
    ("core.yaml", include_str!("../../../agents/core.yaml")),
    (
        "creative.yaml",
        include_str!("../../../agents/creative.yaml"),
    ),
    (
        "experimental.yaml",
        include_str!("../../../agents/experimental.yaml"),
    ),
    ("fleets.yaml", include_str!("../../../agents/fleets.yaml")),
    (
        "sentinel.yaml",
        include_str!("../../../agents/sentinel.yaml"),
    ),
    (
        "travel-commerce.yaml",
        include_str!("../../../agents/travel-commerce.yaml"),
    ),
];

/// `workflows/*.yaml`, by file name.
pub(crate) const WORKFLOW_FILES: &[(&str, &str)] = &[
    (
        "content-creation.yaml",
        include_str!("../../../workflows/content-creation.yaml"),
    ),
    (
        "research.yaml",
        include_str!("../../../workflows/research.yaml"),
    ),
    (
        "security-audit.yaml",
        include_str!("../../../workflows/security-audit.yaml"),
    ),
];

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    fn repo_dir(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(name)
    }

    fn assert_matches_disk(dir: &str, compiled: &[(&str, &str)]) {
        let on_disk = crate::source::read_dir(&repo_dir(dir)).unwrap();
        let disk_names: Vec<&str> = on_disk.iter().map(|s| s.file_name.as_str()).collect();
        let compiled_names: Vec<&str> = compiled.iter().map(|(name, _)| *name).collect();
        assert_eq!(
            disk_names, compiled_names,
            "{dir}/: the files on disk and the list compiled in (src/builtin.rs) differ"
        );
        for (source, (name, text)) in on_disk.iter().zip(compiled) {
            assert_eq!(
                source.text, *text,
                "{dir}/{name} differs from its compiled-in copy"
            );
        }
    }

    #[test]
    fn compiled_in_agent_files_match_the_directory() {
        assert_matches_disk("agents", AGENT_FILES);
    }

    #[test]
    fn compiled_in_workflow_files_match_the_directory() {
        assert_matches_disk("workflows", WORKFLOW_FILES);
    }
}
