//! Manifests from files and folders: what `inbound check` reads and `inbound serve` watches.

use std::{
    hash::{DefaultHasher, Hash, Hasher},
    path::{Path, PathBuf},
};

use super::manifest::{Manifest, Problem, Source, parse_file};
use super::validate::{Trust, validate_with};

/// Every `.yaml`/`.yml` file under `paths` (files as given, folders recursively), sorted,
/// skipping hidden entries (such as the `.inbound` data directory).
pub fn manifest_files(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            collect(path, &mut files)?;
        } else {
            // An explicitly named file is read whatever its extension; a missing one errors.
            std::fs::metadata(path)?;
            files.push(path.clone());
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if hidden {
            continue;
        }
        if entry.file_type()?.is_dir() {
            collect(&path, files)?;
        } else if matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
            files.push(path);
        }
    }
    Ok(())
}

/// Reads, parses and validates every manifest under `paths`.
///
/// Returns the manifests when there is no problem at all, otherwise every problem found
/// (parse and semantic), so one run of `inbound check` reports everything.
pub fn load(paths: &[PathBuf], trust: &Trust) -> Result<Vec<Manifest>, Vec<Problem>> {
    let files = manifest_files(paths).map_err(|e| {
        vec![Problem {
            source: Source { file: paths_display(paths), document: 0 },
            object: None,
            field: None,
            message: format!("cannot read: {e}"),
        }]
    })?;
    let mut manifests = Vec::new();
    let mut problems = Vec::new();
    for file in files {
        let name = file.display().to_string();
        match std::fs::read_to_string(&file) {
            Ok(text) => {
                let (m, p) = parse_file(&name, &text);
                manifests.extend(m);
                problems.extend(p);
            }
            Err(e) => problems.push(Problem {
                source: Source { file: name, document: 0 },
                object: None,
                field: None,
                message: format!("cannot read: {e}"),
            }),
        }
    }
    problems.extend(validate_with(&manifests, trust));
    // Report in file and document order; the sort is stable, so field order within a
    // document is kept.
    problems.sort_by(|a, b| (&a.source.file, a.source.document).cmp(&(&b.source.file, b.source.document)));
    if problems.is_empty() { Ok(manifests) } else { Err(problems) }
}

fn paths_display(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

/// A cheap fingerprint of the manifest files (names, sizes, modification times), polled to
/// notice edits. Polling works the same on every filesystem, including the ConfigMap
/// volumes whose symlink swaps defeat inotify-based watchers.
pub fn fingerprint(paths: &[PathBuf]) -> u64 {
    let mut hasher = DefaultHasher::new();
    match manifest_files(paths) {
        Ok(files) => {
            for file in files {
                file.hash(&mut hasher);
                if let Ok(meta) = std::fs::metadata(&file) {
                    meta.len().hash(&mut hasher);
                    meta.modified().ok().hash(&mut hasher);
                }
            }
        }
        Err(e) => e.kind().hash(&mut hasher),
    }
    hasher.finish()
}
