//! Moving a data directory of the first layout to the current one.
//!
//! The first layout kept every byte in `content/`: Warg release content and
//! OCI blobs alike (`content/sha256/`, `content/sha512/`, upload sessions in
//! `content/uploads/`). Now release content (what passed the content door)
//! and OCI blobs live apart: `content/sha256/` holds exactly the content of
//! sequenced releases, `blobs/` every OCI blob. The move is safe to
//! interrupt: `blobs/` appears (by a rename) only complete, and the file
//! `layout` (holding `2`) in the data directory only once `content/` holds
//! release content alone.

use std::collections::HashSet;
use std::fs;
use std::path::Path;

use cairn_protocol::package::{PackageEntry, PackageRecord};
use cairn_protocol::{Envelope, Hash};
use cairn_registry::StoreError;

use crate::SqliteStore;

fn io(what: String, e: std::io::Error) -> StoreError {
    StoreError::io(what, &e)
}

/// Files directly in `dir` (none if it does not exist).
fn files_in(dir: &Path) -> Result<Vec<std::path::PathBuf>, StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(format!("cannot list {}", dir.display()), e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io(format!("cannot list {}", dir.display()), e))?;
        if entry.path().is_file() {
            files.push(entry.path());
        }
    }
    Ok(files)
}

/// Brings `content` and `blobs` to the current layout, which `marker`
/// records.
pub(crate) fn migrate(
    meta: &SqliteStore,
    content: &Path,
    blobs: &Path,
    marker: &Path,
) -> Result<(), StoreError> {
    let fresh = !content.exists();
    if !blobs.exists() {
        let staging = blobs.with_extension("migrating");
        if staging.exists() {
            fs::remove_dir_all(&staging)
                .map_err(|e| io(format!("cannot clear {}", staging.display()), e))?;
        }
        for algorithm in ["sha256", "sha512", "uploads"] {
            let to = staging.join(algorithm);
            fs::create_dir_all(&to)
                .map_err(|e| io(format!("cannot create {}", to.display()), e))?;
            for file in files_in(&content.join(algorithm))? {
                let Some(name) = file.file_name() else {
                    continue;
                };
                let target = to.join(name);
                // A link keeps release content where it is; other bytes
                // are copied if the filesystem has no links.
                if fs::hard_link(&file, &target).is_err() {
                    fs::copy(&file, &target)
                        .map_err(|e| io(format!("cannot copy {}", file.display()), e))?;
                }
            }
        }
        fs::rename(&staging, blobs)
            .map_err(|e| io(format!("cannot move {} into place", blobs.display()), e))?;
    }
    if marker.exists() {
        return Ok(());
    }
    if !fresh {
        let released = release_digests(meta)?;
        let mut removed = 0usize;
        for file in files_in(&content.join("sha256"))? {
            let keep = file
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|hex| format!("sha256:{hex}").parse::<Hash>().ok())
                .is_some_and(|digest| released.contains(&digest));
            if !keep {
                fs::remove_file(&file)
                    .map_err(|e| io(format!("cannot remove {}", file.display()), e))?;
                removed += 1;
            }
        }
        for dir in ["sha512", "uploads"] {
            let dir = content.join(dir);
            if dir.exists() {
                fs::remove_dir_all(&dir)
                    .map_err(|e| io(format!("cannot remove {}", dir.display()), e))?;
            }
        }
        tracing::info!(
            removed,
            "moved the data directory to the layout with release content apart from OCI blobs"
        );
    }
    use std::io::Write;
    crate::datadir::private_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(marker)
        .and_then(|mut file| file.write_all(b"2\n"))
        .map_err(|e| io(format!("cannot write {}", marker.display()), e))
}

/// The content digests every sequenced package record releases.
fn release_digests(meta: &SqliteStore) -> Result<HashSet<Hash>, StoreError> {
    let mut digests = HashSet::new();
    for (content_bytes, key_id, signature) in meta.sequenced_package_records()? {
        let envelope = Envelope::<PackageRecord>::from_parts(content_bytes, &key_id, &signature)
            .map_err(|e| StoreError::Corrupt(format!("stored package record: {e}")))?;
        for entry in &envelope.contents().entries {
            if let PackageEntry::Release { content, .. } = entry {
                digests.insert(*content);
            }
        }
    }
    Ok(digests)
}
