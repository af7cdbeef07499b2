//! The data directory of the embedded default: the SQLite database, the
//! content files, the operator key and a lock held by the running server.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_protocol::PrivateKey;
use cairn_registry::StoreError;

use crate::{FsBlobStore, FsContentStore, SqliteStore};

/// Paths inside a data directory.
#[derive(Clone, Debug)]
pub struct DataDir {
    root: PathBuf,
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

    /// Opens the metadata, release content and blob stores, first moving
    /// a data directory of the earlier layout (one `content/` directory for
    /// both kinds of bytes) to the current one.
    pub fn open_stores(&self) -> Result<Stores, StoreError> {
        let meta = SqliteStore::open(&self.database())?;
        let content_dir = self.root.join("content");
        let blobs_dir = self.root.join("blobs");
        crate::layout::migrate(&meta, &content_dir, &blobs_dir, &self.root.join("layout"))?;
        let content = FsContentStore::open(&content_dir)?;
        let blobs = FsBlobStore::open(&blobs_dir)?;
        Ok(Stores {
            meta: Arc::new(meta),
            content: Arc::new(content),
            blobs: Arc::new(blobs),
        })
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
