//! Definition files as text, from a directory or compiled in, before parsing.

use std::path::Path;

use crate::Error;

/// One definition file's text.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    /// The file name within its directory (`atlas.yaml`): what tells `actions.yaml` and
    /// `fleets.yaml` from agent files, and a workflow's expected name.
    pub file_name: String,
    /// The path shown in problems (`agents/atlas.yaml`).
    pub path: String,
    /// The file's contents.
    pub text: String,
}

impl Source {
    /// The file name without `.yaml`.
    pub fn stem(&self) -> &str {
        self.file_name
            .strip_suffix(".yaml")
            .unwrap_or(&self.file_name)
    }
}

/// Every `*.yaml` file of `dir`, sorted by name so problems come out in a stable order.
/// Other files (a README, editor backups) are not definitions and are skipped.
pub(crate) fn read_dir(dir: &Path) -> Result<Vec<Source>, Error> {
    let io_error = |path: &Path, source| Error::Io {
        path: path.display().to_string(),
        source,
    };
    let mut sources = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|err| io_error(dir, err))? {
        let entry = entry.map_err(|err| io_error(dir, err))?;
        let path = entry.path();
        let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !file_name.ends_with(".yaml") || !path.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|err| io_error(&path, err))?;
        sources.push(Source {
            file_name: file_name.to_string(),
            path: path.display().to_string(),
            text,
        });
    }
    sources.sort_by(|a, b| a.file_name.cmp(&b.file_name));
    Ok(sources)
}

/// Compiled-in files as sources, shown as `<dir>/<file>`.
pub(crate) fn builtin(dir: &str, files: &[(&str, &str)]) -> Vec<Source> {
    files
        .iter()
        .map(|(file_name, text)| Source {
            file_name: file_name.to_string(),
            path: format!("{dir}/{file_name}"),
            text: text.to_string(),
        })
        .collect()
}
