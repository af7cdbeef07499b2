//! Bytes on the local filesystem, addressed by digest, in two stores kept
//! apart: release content (`content/sha256/<hex>`, only what passed the
//! content door) and OCI blobs (`blobs/<algorithm>/<hex>`, any artifact's
//! bytes, with upload sessions in `blobs/uploads/<id>`). New files are
//! written in a `tmp/` directory, fsynced and renamed into place (then the
//! directory is fsynced), so a partial write never becomes visible.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use cairn_protocol::Hash;
use cairn_registry::oci::{BlobStore, Digest, Digester, Finished, SessionWriter};
use cairn_registry::{ByteReader, ContentStore, PendingContent, StoreError};

fn io(what: &str, e: std::io::Error) -> StoreError {
    StoreError::io(what, &e)
}

/// Files by digest under a root: `<root>/<algorithm>/<hex>`, new files in
/// `<root>/tmp/` (cleared at open: leftovers of a crash).
#[derive(Clone, Debug)]
struct DigestFiles {
    root: PathBuf,
    /// Bytes of free disk these files never use (see [`DigestFiles::room_for`]).
    reserve: u64,
}

impl DigestFiles {
    fn open(root: &Path) -> Result<DigestFiles, StoreError> {
        let tmp = root.join("tmp");
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(|e| io("cannot clear the temporary directory", e))?;
        }
        fs::create_dir_all(&tmp).map_err(|e| io("cannot create the temporary directory", e))?;
        Ok(DigestFiles {
            root: root.to_owned(),
            reserve: 0,
        })
    }

    /// Refuses a write of `len` bytes that would leave less than the
    /// reserve free on the disk: content and blobs stop short of filling
    /// it, so the database (records, checkpoints) can still commit and the
    /// server can still start.
    fn room_for(&self, len: usize) -> Result<(), StoreError> {
        if self.reserve == 0 {
            return Ok(());
        }
        let Ok(stat) = rustix::fs::statvfs(&self.root) else {
            return Ok(());
        };
        let free = stat.f_bavail.saturating_mul(stat.f_frsize);
        if free < self.reserve.saturating_add(len as u64) {
            return Err(StoreError::Full(format!(
                "{free} bytes are free on the disk of {}, and the last {} are kept for the \
                 registry's database",
                self.root.display(),
                self.reserve
            )));
        }
        Ok(())
    }

    fn path(&self, algorithm: &str, hex: &str) -> PathBuf {
        self.root.join(algorithm).join(hex)
    }

    fn temporary(&self) -> Result<tempfile::NamedTempFile, StoreError> {
        tempfile::NamedTempFile::new_in(self.root.join("tmp"))
            .map_err(|e| io("cannot create a temporary file", e))
    }

    /// Moves the fsynced file `from` into place as `<algorithm>/<hex>`,
    /// then fsyncs the directory.
    fn place(&self, from: &Path, algorithm: &str, hex: &str) -> Result<(), StoreError> {
        let dir = self.root.join(algorithm);
        fs::create_dir_all(&dir).map_err(|e| io("cannot create the content directory", e))?;
        fs::rename(from, dir.join(hex)).map_err(|e| io("cannot move a file into place", e))?;
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io("cannot sync the content directory", e))
    }

    fn remove(&self, path: &Path) -> Result<(), StoreError> {
        match fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("cannot remove a file", e)),
        }
    }

    fn size(&self, path: &Path) -> Result<Option<u64>, StoreError> {
        match fs::metadata(path) {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("cannot read file metadata", e)),
        }
    }

    fn read(&self, path: &Path, start: u64, len: u64) -> Result<Option<ByteReader>, StoreError> {
        let mut file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("cannot open a stored file", e)),
        };
        if start > 0 {
            file.seek(SeekFrom::Start(start))
                .map_err(|e| io("cannot seek a stored file", e))?;
        }
        Ok(Some(Box::new(file.take(len))))
    }
}

/// Release content on the local filesystem.
pub struct FsContentStore {
    files: DigestFiles,
}

impl FsContentStore {
    /// Opens `root`, creating it, and removes upload leftovers of a crash.
    pub fn open(root: &Path) -> Result<FsContentStore, StoreError> {
        let files = DigestFiles::open(root)?;
        fs::create_dir_all(root.join("sha256"))
            .map_err(|e| io("cannot create content directory", e))?;
        Ok(FsContentStore { files })
    }

    fn path(&self, digest: &Hash) -> PathBuf {
        self.files.path("sha256", &hex_of(digest))
    }

    /// Where a tile is kept: `<root>/tiles/<tile path>` (paths are made
    /// by `Tile::path`, never taken from a request as they are).
    fn tile_path(&self, path: &str) -> PathBuf {
        path.split('/')
            .fold(self.files.root.join("tiles"), |at, part| at.join(part))
    }

    /// Keeps `bytes` of the disk free: writes that would use them fail as
    /// full.
    pub fn with_reserve(mut self, bytes: u64) -> FsContentStore {
        self.files.reserve = bytes;
        self
    }
}

fn hex_of(digest: &Hash) -> String {
    Digest::from(digest).hex().to_owned()
}

impl ContentStore for FsContentStore {
    fn tile(&self, path: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match fs::read(self.tile_path(path)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("cannot read a tile", e)),
        }
    }

    fn put_tile(&self, path: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.files.room_for(bytes.len())?;
        let target = self.tile_path(path);
        let dir = target
            .parent()
            .ok_or_else(|| StoreError::Backend(format!("bad tile path `{path}`")))?;
        fs::create_dir_all(dir).map_err(|e| io("cannot create the tiles directory", e))?;
        let mut file = self.files.temporary()?;
        file.write_all(bytes)
            .and_then(|()| file.as_file().sync_all())
            .map_err(|e| io("cannot write a tile", e))?;
        file.persist(&target)
            .map_err(|e| io("cannot move a tile into place", e.error))?;
        Ok(())
    }

    fn begin(&self) -> Result<Box<dyn PendingContent>, StoreError> {
        Ok(Box::new(FsPending {
            file: self.files.temporary()?,
            files: self.files.clone(),
        }))
    }

    fn size(&self, digest: &Hash) -> Result<Option<u64>, StoreError> {
        self.files.size(&self.path(digest))
    }

    fn read(&self, digest: &Hash, start: u64, len: u64) -> Result<Option<ByteReader>, StoreError> {
        self.files.read(&self.path(digest), start, len)
    }

    fn remove(&self, digest: &Hash) -> Result<(), StoreError> {
        self.files.remove(&self.path(digest))
    }
}

struct FsPending {
    file: tempfile::NamedTempFile,
    files: DigestFiles,
}

impl PendingContent for FsPending {
    fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.files.room_for(bytes.len())?;
        self.file
            .write_all(bytes)
            .map_err(|e| io("cannot write upload", e))
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
        self.files.place(&path, "sha256", &hex_of(digest))
    }
}

/// OCI blobs and upload sessions on the local filesystem.
pub struct FsBlobStore {
    files: DigestFiles,
}

impl FsBlobStore {
    /// Opens `root`, creating it, and removes leftovers of a crash.
    pub fn open(root: &Path) -> Result<FsBlobStore, StoreError> {
        let files = DigestFiles::open(root)?;
        fs::create_dir_all(root.join("uploads"))
            .map_err(|e| io("cannot create upload directory", e))?;
        Ok(FsBlobStore { files })
    }

    /// Keeps `bytes` of the disk free: writes that would use them fail as
    /// full.
    pub fn with_reserve(mut self, bytes: u64) -> FsBlobStore {
        self.files.reserve = bytes;
        self
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.files.path(digest.algorithm().name(), digest.hex())
    }

    fn session_path(&self, id: &str) -> Result<PathBuf, StoreError> {
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StoreError::Backend(format!("bad upload session id `{id}`")));
        }
        Ok(self.files.root.join("uploads").join(id))
    }
}

struct FsSession {
    file: File,
    files: DigestFiles,
}

impl SessionWriter for FsSession {
    fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.files.room_for(bytes.len())?;
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

impl BlobStore for FsBlobStore {
    fn size(&self, digest: &Digest) -> Result<Option<u64>, StoreError> {
        self.files.size(&self.blob_path(digest))
    }

    fn read(
        &self,
        digest: &Digest,
        start: u64,
        len: u64,
    ) -> Result<Option<ByteReader>, StoreError> {
        self.files.read(&self.blob_path(digest), start, len)
    }

    fn remove(&self, digest: &Digest) -> Result<(), StoreError> {
        self.files.remove(&self.blob_path(digest))
    }

    fn put(&self, digest: &Digest, bytes: &[u8]) -> Result<(), StoreError> {
        self.files.room_for(bytes.len())?;
        if BlobStore::size(self, digest)?.is_some() {
            return Ok(());
        }
        let mut file = self.files.temporary()?;
        file.write_all(bytes)
            .and_then(|_| file.as_file().sync_all())
            .map_err(|e| io("cannot write blob", e))?;
        let (_, path) = file
            .keep()
            .map_err(|e| io("cannot keep blob file", e.error))?;
        self.files
            .place(&path, digest.algorithm().name(), digest.hex())
    }

    fn create_session(&self, id: &str) -> Result<(), StoreError> {
        crate::datadir::private_options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(self.session_path(id)?)
            .map(|_| ())
            .map_err(|e| io("cannot create upload", e))
    }

    fn session_size(&self, id: &str) -> Result<Option<u64>, StoreError> {
        self.files.size(&self.session_path(id)?)
    }

    fn append_session(&self, id: &str) -> Result<Box<dyn SessionWriter>, StoreError> {
        let file = fs::OpenOptions::new()
            .append(true)
            .open(self.session_path(id)?)
            .map_err(|e| io("cannot open upload", e))?;
        Ok(Box::new(FsSession {
            file,
            files: self.files.clone(),
        }))
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
        if BlobStore::size(self, digest)?.is_some() {
            fs::remove_file(&path).map_err(|e| io("cannot remove upload", e))?;
        } else {
            file.sync_all().map_err(|e| io("cannot sync upload", e))?;
            self.files
                .place(&path, digest.algorithm().name(), digest.hex())?;
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

    fn sessions(&self) -> Result<Vec<String>, StoreError> {
        let dir = self.files.root.join("uploads");
        let entries = fs::read_dir(&dir).map_err(|e| io("cannot list uploads", e))?;
        let mut ids = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io("cannot list uploads", e))?;
            if let Some(id) = entry.file_name().to_str() {
                if self.session_path(id).is_ok() {
                    ids.push(id.to_owned());
                }
            }
        }
        Ok(ids)
    }
}
