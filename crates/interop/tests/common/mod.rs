//! The reference client, `warg-client` 0.10, as the interop tests drive
//! it: every call runs the client's own verification of checkpoints, logs
//! and proofs.
#![allow(dead_code)] // each test file uses some of these

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use cairn_interop::keys;
use futures_util::stream;
use semver::{Version, VersionReq};
use sha2::{Digest, Sha256};
use warg_client::storage::{
    ContentStorage, FileSystemContentStorage, FileSystemNamespaceMapStorage,
    FileSystemRegistryStorage, PublishEntry, PublishInfo,
};
use warg_client::{ClientError, FileSystemClient};
use warg_crypto::hash::AnyHash;
use warg_crypto::signing::PrivateKey;
use warg_protocol::registry::PackageName;

pub const POLL: Duration = Duration::from_millis(20);

pub fn digest(bytes: &[u8]) -> AnyHash {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
        .parse()
        .expect("digest text")
}

pub fn reference_key(index: usize) -> PrivateKey {
    PrivateKey::decode(keys()[index].encode()).expect("reference reads Cairn's key text")
}

/// A reference client; `token` is sent as `Authorization: Bearer`.
pub fn client(url: &str, storage: &Path, token: Option<&str>) -> FileSystemClient {
    FileSystemClient::new(
        url,
        FileSystemRegistryStorage::lock(storage.join("registries")).expect("registry storage"),
        FileSystemContentStorage::lock(storage.join("content")).expect("content storage"),
        FileSystemNamespaceMapStorage::new(storage.join("namespaces.json")),
        token.map(|t| secrecy::Secret::new(t.to_owned())),
        true,
        true,
        true,
        true,
        None,
        Default::default(),
    )
    .expect("client")
}

/// Publishes `entries` signed by `key` and waits until published; returns
/// the record id.
pub async fn publish(
    client: &FileSystemClient,
    key: &PrivateKey,
    name: &PackageName,
    entries: Vec<PublishEntry>,
) -> Result<warg_protocol::registry::RecordId, ClientError> {
    let record_id = client
        .publish_with_info(
            key,
            PublishInfo {
                name: name.clone(),
                head: None,
                entries,
            },
        )
        .await?;
    client.wait_for_publish(name, &record_id, POLL).await?;
    Ok(record_id)
}

/// Stores `bytes` in the client's content storage (where `publish` uploads
/// missing content from) and returns the release entry.
pub async fn release(client: &FileSystemClient, version: &str, bytes: &[u8]) -> PublishEntry {
    let chunk: anyhow::Result<Bytes> = Ok(Bytes::copy_from_slice(bytes));
    let stored = client
        .content()
        .store_content(Box::pin(stream::iter([chunk])), None)
        .await
        .expect("store content");
    assert_eq!(stored, digest(bytes));
    PublishEntry::Release {
        version: version.parse().expect("version"),
        content: stored,
    }
}

pub async fn download_exact(
    client: &FileSystemClient,
    name: &PackageName,
    version: &str,
) -> Vec<u8> {
    let download = client
        .download_exact(name, &version.parse().expect("version"))
        .await
        .unwrap_or_else(|e| panic!("download {name}@{version}: {e}"));
    std::fs::read(&download.path).expect("downloaded file")
}

pub async fn download_newest(
    client: &FileSystemClient,
    name: &PackageName,
    req: &str,
) -> (Version, Vec<u8>) {
    let download = client
        .download(name, &VersionReq::parse(req).expect("requirement"))
        .await
        .unwrap_or_else(|e| panic!("download {name} {req}: {e}"))
        .unwrap_or_else(|| panic!("no release of {name} matches {req}"));
    let bytes = std::fs::read(&download.path).expect("downloaded file");
    assert_eq!(digest(&bytes), download.digest, "bytes match their digest");
    (download.version, bytes)
}
