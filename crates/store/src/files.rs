//! Content files addressed by digest: `<root>/sha256/<hex>`. Uploads go to
//! `<root>/tmp/` first and are renamed into place only after they were
//! fsynced, so a partial upload never becomes visible content.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use cairn_protocol::Hash;
use cairn_registry::oci::{BlobStore, Digest, Digester, Finished, SessionWriter};
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
}

/// Moves the fsynced file `from` into place as the blob `digest` under
/// `root`, then fsyncs the directory.
fn place(root: &Path, from: &Path, digest: &Digest) -> Result<(), StoreError> {
    let dir = root.join(digest.algorithm().name());
    fs::create_dir_all(&dir).map_err(|e| io("cannot create content directory", e))?;
    fs::rename(from, dir.join(digest.hex())).map_err(|e| io("cannot move upload into place", e))?;
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io("cannot sync content directory", e))
}

impl ContentStore for FsContentStore {
    fn begin(&self) -> Result<Box<dyn PendingContent>, StoreError> {
        let file = tempfile::NamedTempFile::new_in(self.root.join("tmp"))
            .map_err(|e| io("cannot create upload file", e))?;
        Ok(Box::new(FsPending {
            file,
            root: self.root.clone(),
        }))
    }

    fn locate(&self, digest: &Hash) -> Result<Option<ContentLocation>, StoreError> {
        BlobStore::locate(self, &Digest::from(digest))
    }
}

struct FsPending {
    file: tempfile::NamedTempFile,
    root: PathBuf,
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
        let (_, path) = self
            .file
            .keep()
            .map_err(|e| io("cannot keep upload", e.error))?;
        place(&self.root, &path, &Digest::from(digest))
    }
}

/// Upload session bytes live in `<root>/uploads/<id>`; blobs of other
/// algorithms in `<root>/<algorithm>/<hex>`.
impl FsContentStore {
    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join(digest.algorithm().name()).join(digest.hex())
    }

    fn session_path(&self, id: &str) -> Result<PathBuf, StoreError> {
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StoreError::Backend(format!("bad upload session id `{id}`")));
        }
        Ok(self.root.join("uploads").join(id))
    }
}

struct FsSession {
    file: File,
}

impl SessionWriter for FsSession {
    fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.file
            .write_all(bytes)
            .map_err(|e| io("cannot write upload", e))
    }

    fn flush(&mut self) -> Result<u64, StoreError> {
        self.file
            .sync_data()
            .map_err(|e| io("cannot sync upload", e))?;
        self.file
            .metadata()
            .map(|m| m.len())
            .map_err(|e| io("cannot read upload size", e))
    }
}

impl BlobStore for FsContentStore {
    fn locate(&self, digest: &Digest) -> Result<Option<ContentLocation>, StoreError> {
        let path = self.blob_path(digest);
        match fs::metadata(&path) {
            Ok(meta) => Ok(Some(ContentLocation::File {
                path,
                size: meta.len(),
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("cannot read blob metadata", e)),
        }
    }

    fn put(&self, digest: &Digest, bytes: &[u8]) -> Result<(), StoreError> {
        if BlobStore::locate(self, digest)?.is_some() {
            return Ok(());
        }
        let mut file = tempfile::NamedTempFile::new_in(self.root.join("tmp"))
            .map_err(|e| io("cannot create blob file", e))?;
        file.write_all(bytes)
            .and_then(|_| file.as_file().sync_all())
            .map_err(|e| io("cannot write blob", e))?;
        let (_, path) = file
            .keep()
            .map_err(|e| io("cannot keep blob file", e.error))?;
        place(&self.root, &path, digest)
    }

    fn create_session(&self, id: &str) -> Result<(), StoreError> {
        let path = self.session_path(id)?;
        fs::create_dir_all(self.root.join("uploads"))
            .map_err(|e| io("cannot create upload directory", e))?;
        File::create(&path)
            .map(|_| ())
            .map_err(|e| io("cannot create upload", e))
    }

    fn session_size(&self, id: &str) -> Result<Option<u64>, StoreError> {
        match fs::metadata(self.session_path(id)?) {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("cannot read upload size", e)),
        }
    }

    fn append_session(&self, id: &str) -> Result<Box<dyn SessionWriter>, StoreError> {
        let file = fs::OpenOptions::new()
            .append(true)
            .open(self.session_path(id)?)
            .map_err(|e| io("cannot open upload", e))?;
        Ok(Box::new(FsSession { file }))
    }

    fn finish_session(&self, id: &str, digest: &Digest) -> Result<Finished, StoreError> {
        let path = self.session_path(id)?;
        let mut file = File::open(&path).map_err(|e| io("cannot open upload", e))?;
        let mut digester = Digester::new(digest.algorithm());
        let mut buf = vec![0u8; 1 << 20];
        let mut size = 0u64;
        loop {
            let n = file
                .read(&mut buf)
                .map_err(|e| io("cannot read upload", e))?;
            if n == 0 {
                break;
            }
            digester.update(&buf[..n]);
            size += n as u64;
        }
        let found = digester.finish();
        if &found != digest {
            return Ok(Finished::Mismatch { found });
        }
        if BlobStore::locate(self, digest)?.is_some() {
            fs::remove_file(&path).map_err(|e| io("cannot remove upload", e))?;
        } else {
            file.sync_all().map_err(|e| io("cannot sync upload", e))?;
            place(&self.root, &path, digest)?;
        }
        Ok(Finished::Stored { size })
    }

    fn delete_session(&self, id: &str) -> Result<(), StoreError> {
        match fs::remove_file(self.session_path(id)?) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("cannot remove upload", e)),
        }
    }
}
