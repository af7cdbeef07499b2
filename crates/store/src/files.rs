//! Content files addressed by digest: `<root>/sha256/<hex>`. Uploads go to
//! `<root>/tmp/` first and are renamed into place only after they were
//! fsynced, so a partial upload never becomes visible content.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use cairn_protocol::Hash;
use cairn_registry::{ContentLocation, ContentStore, PendingContent, StoreError};

fn io(what: &str, e: std::io::Error) -> StoreError {
    StoreError::Backend(format!("{what}: {e}"))
}

/// Content on the local filesystem.
pub struct FsContentStore {
    root: PathBuf,
}

impl FsContentStore {
    /// Opens `root`, creating it, and removes upload leftovers of a crash.
    pub fn open(root: &Path) -> Result<FsContentStore, StoreError> {
        let tmp = root.join("tmp");
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(|e| io("cannot clear upload directory", e))?;
        }
        fs::create_dir_all(&tmp).map_err(|e| io("cannot create upload directory", e))?;
        fs::create_dir_all(root.join("sha256"))
            .map_err(|e| io("cannot create content directory", e))?;
        Ok(FsContentStore {
            root: root.to_owned(),
        })
    }

    fn path_of(&self, digest: &Hash) -> PathBuf {
        self.root.join("sha256").join(hex_of(digest))
    }
}

fn hex_of(digest: &Hash) -> String {
    let text = digest.to_string();
    text.trim_start_matches("sha256:").to_owned()
}

impl ContentStore for FsContentStore {
    fn begin(&self) -> Result<Box<dyn PendingContent>, StoreError> {
        let file = tempfile::NamedTempFile::new_in(self.root.join("tmp"))
            .map_err(|e| io("cannot create upload file", e))?;
        Ok(Box::new(FsPending {
            file,
            dir: self.root.join("sha256"),
        }))
    }

    fn locate(&self, digest: &Hash) -> Result<Option<ContentLocation>, StoreError> {
        let path = self.path_of(digest);
        match fs::metadata(&path) {
            Ok(meta) => Ok(Some(ContentLocation::File {
                path,
                size: meta.len(),
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("cannot read content metadata", e)),
        }
    }
}

struct FsPending {
    file: tempfile::NamedTempFile,
    dir: PathBuf,
}

impl PendingContent for FsPending {
    fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.file
            .write_all(bytes)
            .map_err(|e| io("cannot write upload", e))
    }

    fn read_back(&mut self) -> Result<Vec<u8>, StoreError> {
        let file = self.file.as_file_mut();
        file.flush().map_err(|e| io("cannot flush upload", e))?;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| io("cannot read upload", e))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| io("cannot read upload", e))?;
        Ok(bytes)
    }

    fn commit(self: Box<Self>, digest: &Hash) -> Result<(), StoreError> {
        self.file
            .as_file()
            .sync_all()
            .map_err(|e| io("cannot sync upload", e))?;
        let target = self.dir.join(hex_of(digest));
        self.file
            .persist(&target)
            .map_err(|e| io("cannot move upload into place", e.error))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io("cannot sync content directory", e))?;
        Ok(())
    }
}
