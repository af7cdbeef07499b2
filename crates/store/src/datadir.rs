//! The data directory of the embedded default: the SQLite database, the
//! content files, the operator key and a lock held by the running server.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_protocol::PrivateKey;
use cairn_registry::StoreError;
use cairn_transparency::note::{Signer, ED25519};

use crate::{FsBlobStore, FsContentStore, Sealer, SqliteStore};

/// Paths inside a data directory.
#[derive(Clone, Debug)]
pub struct DataDir {
    root: PathBuf,
    key_encryption_key: Option<Secret>,
    disk_reserve: u64,
}

/// Text that is never printed.
#[derive(Clone)]
struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("(secret)")
    }
}

/// The lock a server holds on its data directory while it runs.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

/// Where the operator key came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// Read from the key file.
    File,
    /// Created now and written to the key file.
    Created,
    /// Given by the caller (environment).
    Given,
}

fn io(what: String, e: std::io::Error) -> StoreError {
    StoreError::io(what, &e)
}

impl DataDir {
    /// A data directory at `root` (created if missing), readable by its
    /// owner only (mode 0700): it holds the operator key, the tokens and
    /// every account's custodial key.
    pub fn create(root: &Path) -> Result<DataDir, StoreError> {
        fs::create_dir_all(root).map_err(|e| {
            io(
                format!("cannot create data directory {}", root.display()),
                e,
            )
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(root, fs::Permissions::from_mode(0o700)).map_err(|e| {
                io(
                    format!("cannot make {} private (mode 0700)", root.display()),
                    e,
                )
            })?;
        }
        Ok(DataDir {
            key_encryption_key: None,
            disk_reserve: 0,
            root: root.to_owned(),
        })
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The SQLite database file.
    pub fn database(&self) -> PathBuf {
        self.root.join("cairn.sqlite3")
    }

    /// The operator key file.
    pub fn key_file(&self) -> PathBuf {
        self.root.join("operator.key")
    }

    /// Takes the directory's lock; `Ok(None)` when another process holds it.
    pub fn try_lock(&self) -> Result<Option<DirLock>, StoreError> {
        let path = self.root.join("lock");
        let file = private_options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| io(format!("cannot open {}", path.display()), e))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(DirLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(io(format!("cannot lock {}", path.display()), e))
            }
        }
    }

    /// The operator key: `given` if set; else the key file; else a new key,
    /// written to the key file with mode 0600.
    pub fn operator_key(&self, given: Option<&str>) -> Result<(PrivateKey, KeySource), StoreError> {
        if let Some(text) = given {
            let key = PrivateKey::decode(text.trim()).map_err(|e| {
                StoreError::Backend(format!("the operator key given is invalid: {e}"))
            })?;
            return Ok((key, KeySource::Given));
        }
        let path = self.key_file();
        match fs::read_to_string(&path) {
            Ok(text) => {
                let key = PrivateKey::decode(text.trim()).map_err(|e| {
                    StoreError::Corrupt(format!("operator key file {}: {e}", path.display()))
                })?;
                Ok((key, KeySource::File))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = PrivateKey::generate();
                write_private(&path, &key.encode())?;
                Ok((key, KeySource::Created))
            }
            Err(e) => Err(io(format!("cannot read {}", path.display()), e)),
        }
    }

    /// The file of the log's Ed25519 note key (C2SP checkpoints).
    pub fn log_key_file(&self) -> PathBuf {
        self.root.join("log.key")
    }

    /// The key that signs the log's C2SP checkpoints: `given` if set
    /// (`PRIVATE+KEY+...`); else the key file; else a new key named
    /// `origin()` (the log's identity, which the key keeps from then on),
    /// written to the key file with mode 0600.
    pub fn log_key(
        &self,
        given: Option<&str>,
        origin: impl FnOnce() -> String,
    ) -> Result<(Signer, KeySource), StoreError> {
        if let Some(text) = given {
            let key = Signer::parse(text)
                .map_err(|e| StoreError::Backend(format!("the log key given is invalid: {e}")))?;
            return Ok((key, KeySource::Given));
        }
        let path = self.log_key_file();
        match fs::read_to_string(&path) {
            Ok(text) => {
                let key = Signer::parse(&text).map_err(|e| {
                    StoreError::Corrupt(format!("log key file {}: {e}", path.display()))
                })?;
                Ok((key, KeySource::File))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut seed = [0u8; 32];
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
                    .map_err(|_| StoreError::Backend("no randomness for a new log key".into()))?;
                let name = origin();
                let key = Signer::from_seed(&name, ED25519, seed).map_err(|e| {
                    StoreError::Backend(format!("cannot make a log key named `{name}`: {e}"))
                })?;
                write_private(&path, &key.encode())?;
                Ok((key, KeySource::Created))
            }
            Err(e) => Err(io(format!("cannot read {}", path.display()), e)),
        }
    }

    /// Where the admin token made at first start is written.
    pub fn admin_token_file(&self) -> PathBuf {
        self.root.join("admin.token")
    }

    /// Writes the admin token (mode 0600); returns the file's path.
    pub fn write_admin_token(&self, token: &str) -> Result<PathBuf, StoreError> {
        let path = self.admin_token_file();
        if path.exists() {
            std::fs::remove_file(&path)
                .map_err(|e| io(format!("cannot replace {}", path.display()), e))?;
        }
        write_private(&path, token)?;
        Ok(path)
    }

    /// The same directory, sealing custodial keys with `key` (64 hex
    /// digits or base64 of 32 bytes; e.g. from `CAIRN_KEY_ENCRYPTION_KEY`)
    /// instead of the key file.
    pub fn with_key_encryption_key(mut self, key: Option<String>) -> DataDir {
        self.key_encryption_key = key.filter(|k| !k.trim().is_empty()).map(Secret);
        self
    }

    /// A file of zeros that holds disk space in reserve: when the disk
    /// fills, releasing it lets the registry start (SQLite needs room for
    /// its WAL and shared-memory files) and serve while space is freed.
    pub fn ballast_file(&self) -> PathBuf {
        self.root.join("ballast")
    }

    /// Makes the ballast `bytes` long (written, not sparse, so the space is
    /// really held); `Ok(false)` if it was already; a ballast of 0 bytes
    /// is none. On failure (no room) no partial ballast is left.
    pub fn reserve_ballast(&self, bytes: u64) -> Result<bool, StoreError> {
        let path = self.ballast_file();
        if bytes == 0 {
            self.release_ballast()?;
            return Ok(false);
        }
        if fs::metadata(&path).is_ok_and(|m| m.len() == bytes) {
            return Ok(false);
        }
        let partial = self.root.join("ballast.partial");
        let written = (|| {
            let mut file = private_options()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&partial)?;
            let zeros = vec![0u8; 1 << 20];
            let mut left = bytes;
            while left > 0 {
                let n = left.min(zeros.len() as u64) as usize;
                file.write_all(&zeros[..n])?;
                left -= n as u64;
            }
            file.sync_all()?;
            fs::rename(&partial, &path)
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&partial);
            return Err(io(
                format!("cannot reserve {bytes} bytes in {}", path.display()),
                e,
            ));
        }
        Ok(true)
    }

    /// Removes the ballast; whether there was one.
    pub fn release_ballast(&self) -> Result<bool, StoreError> {
        match fs::remove_file(self.ballast_file()) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io(
                format!("cannot remove {}", self.ballast_file().display()),
                e,
            )),
        }
    }

    /// The same directory, whose content and blob stores leave `bytes` of
    /// the disk free (writes that would use them fail as full), so the
    /// database can still commit and the server still start.
    pub fn with_disk_reserve(mut self, bytes: u64) -> DataDir {
        self.disk_reserve = bytes;
        self
    }

    /// The file holding the key custodial keys are sealed with, when none
    /// is given ([`DataDir::with_key_encryption_key`]).
    pub fn key_encryption_file(&self) -> PathBuf {
        self.root.join("custodial.key")
    }

    /// The key-encryption key: the one given, else the key file's (made,
    /// mode 0600, if missing).
    pub fn sealer(&self) -> Result<Sealer, StoreError> {
        if let Some(Secret(text)) = &self.key_encryption_key {
            return Sealer::parse(text).map_err(|e| {
                StoreError::Backend(format!("the key-encryption key given is invalid: {e}"))
            });
        }
        let path = self.key_encryption_file();
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let text = Sealer::generate()?;
                let mut file = private_options()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .map_err(|e| io(format!("cannot create {}", path.display()), e))?;
                file.write_all(format!("{text}\n").as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(|e| io(format!("cannot write {}", path.display()), e))?;
                text
            }
            Err(e) => return Err(io(format!("cannot read {}", path.display()), e)),
        };
        Sealer::parse(&text).map_err(|e| {
            StoreError::Corrupt(format!("the key in {} is invalid: {e}", path.display()))
        })
    }

    /// Opens the metadata store alone (accounts, tokens, policies), with
    /// custodial keys sealed.
    pub fn open_meta(&self) -> Result<SqliteStore, StoreError> {
        let meta = SqliteStore::open(&self.database())?;
        let sealed = meta.seal_custodial_keys(self.sealer()?)?;
        if sealed > 0 {
            tracing::info!(
                "sealed {sealed} custodial keys stored in plaintext by an earlier Cairn"
            );
        }
        Ok(meta)
    }

    /// Opens the metadata store, first moving a data directory of the
    /// earlier layout to the current one (see [`DataDir::open_stores`]).
    pub fn open_meta_migrated(&self) -> Result<SqliteStore, StoreError> {
        let meta = self.open_meta()?;
        crate::layout::migrate(
            &meta,
            &self.root.join("content"),
            &self.root.join("blobs"),
            &self.root.join("layout"),
        )?;
        Ok(meta)
    }

    /// Opens the metadata, release content and blob stores, first moving
    /// a data directory of the earlier layout (one `content/` directory for
    /// both kinds of bytes) to the current one.
    pub fn open_stores(&self) -> Result<Stores, StoreError> {
        let meta = self.open_meta()?;
        let content_dir = self.root.join("content");
        let blobs_dir = self.root.join("blobs");
        crate::layout::migrate(&meta, &content_dir, &blobs_dir, &self.root.join("layout"))?;
        let content = FsContentStore::open(&content_dir)?.with_reserve(self.disk_reserve);
        let blobs = FsBlobStore::open(&blobs_dir)?.with_reserve(self.disk_reserve);
        Ok(Stores {
            meta: Arc::new(meta),
            content: Arc::new(content),
            blobs: Arc::new(blobs),
        })
    }
}

impl DataDir {
    /// The release content and blob stores of the data directory alone
    /// (for a server whose metadata lives elsewhere, in PostgreSQL).
    pub fn open_files(&self) -> Result<(FsContentStore, FsBlobStore), StoreError> {
        let content =
            FsContentStore::open(&self.root.join("content"))?.with_reserve(self.disk_reserve);
        let blobs = FsBlobStore::open(&self.root.join("blobs"))?.with_reserve(self.disk_reserve);
        Ok((content, blobs))
    }
}

/// The stores of a data directory.
pub struct Stores {
    /// Records, logs, checkpoints, OCI metadata, accounts and tokens.
    pub meta: Arc<SqliteStore>,
    /// Release content.
    pub content: Arc<FsContentStore>,
    /// OCI blobs and upload sessions.
    pub blobs: Arc<FsBlobStore>,
}

/// Options that create a file readable and writable by its owner only.
pub(crate) fn private_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

fn write_private(path: &Path, text: &str) -> Result<(), StoreError> {
    let mut file = private_options()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| io(format!("cannot create {}", path.display()), e))?;
    file.write_all(format!("{text}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| io(format!("cannot write {}", path.display()), e))
}
