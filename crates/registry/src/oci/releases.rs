//! Reading the OCI face: blobs, manifests, tags, the catalog and
//! referrers, with the artifact of every release built on first read.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::sync::Arc;

use cairn_protocol::package::PackageState;
use cairn_protocol::{Hash, PackageName, Version};
use serde_json::json;

use super::digest::{Algorithm, Digest};
use super::error::{ErrorCode, OciError};
use super::manifest::{
    self, metadata_annotations, Manifest, ReleaseArtifact, EMPTY_CONFIG, IMAGE_INDEX,
    IMAGE_MANIFEST, TLOG_PROOF_ARTIFACT, TLOG_PROOF_LAYER,
};
use super::names::{check_repository, check_tag, repository_of, Reference};
use super::store::{BlobStore, ManifestWrite, Mirrored, StoredManifest};
use super::Oci;
use crate::registry::Registry;
use crate::storage::ByteReader;

/// A blob a repository can serve: its size and where its bytes are (the
/// blob store, or release content for the layer of a release).
pub struct Blob {
    /// Its size in bytes.
    pub size: u64,
    source: Source,
}

enum Source {
    Blob(Arc<dyn BlobStore>, Digest),
    Content(Arc<Registry>, Hash),
    Mirrored(Arc<dyn Mirrored>, Hash),
}

impl Blob {
    /// `len` bytes from `start` (within the size). Blocking.
    pub fn read(&self, start: u64, len: u64) -> Result<ByteReader, OciError> {
        let found = match &self.source {
            Source::Blob(blobs, digest) => blobs.read(digest, start, len)?,
            Source::Content(registry, digest) => registry.read_content(digest, start, len)?,
            Source::Mirrored(mirrored, digest) => mirrored.read_content(digest, start, len)?,
        };
        found.ok_or_else(|| OciError::new(ErrorCode::BlobUnknown, "the blob's bytes are gone"))
    }
}

/// A repository's package (if it shows one) and tags, with every release's
/// artifact built.
pub(crate) struct Releases {
    pub package: Option<(PackageName, PackageState)>,
    pub tags: BTreeMap<String, Digest>,
}

impl Oci {
    /// The error for a repository this registry does not hold: it names
    /// the registry its namespace is imported from, if it is.
    fn unknown_repository(&self, repository: &str) -> OciError {
        let imported = repository
            .split_once('/')
            .and_then(|(ns, _)| Some((ns, self.registry.imported_from(ns)?)));
        match imported {
            Some((ns, from)) => OciError::new(
                ErrorCode::NameUnknown,
                format!(
                    "repository `{repository}` is not here: namespace `{ns}` is imported from \
                     {from}; pull it from there"
                ),
            ),
            None => OciError::new(
                ErrorCode::NameUnknown,
                format!("repository `{repository}` is not known to this registry"),
            ),
        }
    }

    /// A blob of a repository: one linked into it, or the content of a
    /// release of the package it shows.
    pub fn blob(&self, repository: &str, digest: &Digest) -> Result<Blob, OciError> {
        check_repository(repository)?;
        let unknown = || {
            OciError::new(
                ErrorCode::BlobUnknown,
                format!("blob `{digest}` is not in repository `{repository}`"),
            )
        };
        if let Some(hash) = digest.to_hash() {
            self.registry.check_not_taken_down(&hash)?;
        }
        let linked = self.store.blob_linked(repository, digest)?;
        let released = || -> Result<bool, OciError> {
            Ok(self.package(repository)?.is_some_and(|(_, state)| {
                state
                    .releases()
                    .any(|r| Some(r.content) == digest.to_hash())
            }))
        };
        if !linked && !released()? {
            return Err(unknown());
        }
        if let Some(size) = self.blobs.size(digest)? {
            return Ok(Blob {
                size,
                source: Source::Blob(self.blobs.clone(), digest.clone()),
            });
        }
        if let Some(hash) = digest.to_hash() {
            if let Some(size) = self.registry.content_size(&hash)? {
                return Ok(Blob {
                    size,
                    source: Source::Content(self.registry.clone(), hash),
                });
            }
            if let Some(mirrored) = &self.mirrored {
                if let Some((scope, reason)) = mirrored.taken_down(&hash) {
                    return Err(OciError::new(
                        ErrorCode::TakenDown,
                        format!(
                            "content {hash} of {scope} was taken down by the operator of the \
                             registry it is mirrored from: {reason}"
                        ),
                    ));
                }
                if let Some(size) = mirrored.content_size(&hash)? {
                    return Ok(Blob {
                        size,
                        source: Source::Mirrored(mirrored.clone(), hash),
                    });
                }
            }
        }
        Err(unknown())
    }

    /// Removes a blob from a repository.
    pub fn delete_blob(&self, repository: &str, digest: &Digest) -> Result<(), OciError> {
        check_repository(repository)?;
        if let Some((name, state)) = self.package(repository)? {
            if state
                .releases()
                .any(|r| Some(r.content) == digest.to_hash())
            {
                return Err(OciError::new(
                    ErrorCode::Unsupported,
                    format!(
                        "blob `{digest}` is the content of a release of `{name}`; \
                         released content is immutable"
                    ),
                ));
            }
        }
        if self.store.unlink_blob(repository, digest)? {
            Ok(())
        } else {
            Err(OciError::new(
                ErrorCode::BlobUnknown,
                format!("blob `{digest}` is not in repository `{repository}`"),
            ))
        }
    }

    /// Mounts a blob of `from` into `repository`; `false` if `from` does not
    /// have it (the caller then starts an ordinary upload).
    pub fn mount(&self, repository: &str, from: &str, digest: &Digest) -> Result<bool, OciError> {
        check_repository(repository)?;
        if check_repository(from).is_err() || self.blob(from, digest).is_err() {
            return Ok(false);
        }
        self.store.link_blob(repository, digest)?;
        Ok(true)
    }

    /// Whether release content is a component (layer 1) rather than a core
    /// module, and the annotations its metadata sections stand for.
    /// Unreadable content counts as a module without metadata.
    fn wasm_facts(&self, content: &Hash, size: u64) -> (bool, BTreeMap<String, String>) {
        let mut bytes = Vec::new();
        let reader = match self.registry.read_content(content, 0, size) {
            Ok(Some(reader)) => Some(reader),
            _ => self
                .mirrored
                .as_ref()
                .and_then(|m| m.read_content(content, 0, size).ok().flatten()),
        };
        let read = reader.map(|mut reader| reader.read_to_end(&mut bytes));
        match read {
            Some(Ok(_)) => (
                wasmparser::Parser::is_component(&bytes),
                metadata_annotations(&bytes),
            ),
            _ => (false, BTreeMap::new()),
        }
    }

    /// Builds and stores the artifact of every release of the package a
    /// repository shows that has none yet. Returns the package state and
    /// every tag of the repository.
    pub(crate) fn ensure_release_artifacts(&self, repository: &str) -> Result<Releases, OciError> {
        let mut tags: BTreeMap<String, Digest> = self.store.tags(repository)?.into_iter().collect();
        let Some((name, state)) = self.package(repository)? else {
            return Ok(Releases {
                package: None,
                tags,
            });
        };
        for release in state.releases() {
            let tag = release.version.to_string();
            if tags.contains_key(&tag) || check_tag(&tag).is_err() {
                continue;
            }
            let Some(size) = self.content_size(&release.content)? else {
                continue;
            };
            let content = Digest::from(&release.content);
            let (component, annotations) = self.wasm_facts(&release.content, size);
            let built = ReleaseArtifact {
                name: &name,
                version: &release.version,
                content: &content,
                size,
                created: &release.timestamp,
                component,
                annotations: &annotations,
            }
            .build();
            let config_digest = Digest::of(Algorithm::Sha256, &built.config);
            self.blobs.put(&config_digest, &built.config)?;
            let manifest = StoredManifest {
                digest: Digest::of(Algorithm::Sha256, &built.manifest),
                media_type: IMAGE_MANIFEST.to_owned(),
                bytes: built.manifest,
                subject: None,
            };
            let digest = manifest.digest.clone();
            self.store.put_manifest(&ManifestWrite {
                repository: repository.to_owned(),
                manifest,
                tag: Some(tag.clone()),
                links: vec![config_digest, content],
            })?;
            tags.insert(tag, digest);
        }
        Ok(Releases {
            package: Some((name, state)),
            tags,
        })
    }

    /// A manifest by tag or digest.
    pub fn manifest(
        &self,
        repository: &str,
        reference: &Reference,
    ) -> Result<StoredManifest, OciError> {
        check_repository(repository)?;
        let unknown = || {
            OciError::new(
                ErrorCode::ManifestUnknown,
                format!("manifest `{reference}` is not in repository `{repository}`"),
            )
        };
        let find = |this: &Oci| -> Result<Option<StoredManifest>, OciError> {
            let digest = match reference {
                Reference::Tag(tag) => match this.store.tag(repository, tag)? {
                    Some(d) => d,
                    None => return Ok(None),
                },
                Reference::Digest(d) => d.clone(),
            };
            Ok(this.store.manifest(repository, &digest)?)
        };
        if let Some(found) = find(self)? {
            return Ok(found);
        }
        if self.ensure_release_artifacts(repository)?.package.is_none() {
            if !self.store.repository_exists(repository)? {
                return Err(self.unknown_repository(repository));
            }
            return Err(unknown());
        }
        find(self)?.ok_or_else(unknown)
    }

    /// Tags in lexical order after `last`, at most `n` (all if `None`).
    /// Yanked versions are left out (they stay fetchable by tag).
    pub fn tags(
        &self,
        repository: &str,
        last: Option<&str>,
        n: Option<usize>,
    ) -> Result<Vec<String>, OciError> {
        check_repository(repository)?;
        let Releases { package, tags } = self.ensure_release_artifacts(repository)?;
        if package.is_none() && !self.store.repository_exists(repository)? {
            return Err(self.unknown_repository(repository));
        }
        let yanked: BTreeSet<String> = package
            .iter()
            .flat_map(|(_, state)| state.releases())
            .filter(|r| r.yanked.is_some())
            .map(|r| r.version.to_string())
            .collect();
        // The map is in lexical order already.
        Ok(tags
            .into_keys()
            .filter(|t| !yanked.contains(t))
            .filter(|t| last.is_none_or(|l| t.as_str() > l))
            .take(n.unwrap_or(usize::MAX))
            .collect())
    }

    /// Repositories in lexical order after `last`, at most `n`: those with
    /// OCI content and every package.
    pub fn catalog(&self, last: Option<&str>, n: Option<usize>) -> Result<Vec<String>, OciError> {
        let n = n.unwrap_or(usize::MAX);
        let mut names: BTreeSet<String> = self.store.repositories(last, n)?.into_iter().collect();
        for name in self.registry.package_list()? {
            let repo = repository_of(&name);
            if last.is_none_or(|l| repo.as_str() > l) {
                names.insert(repo);
            }
        }
        Ok(names.into_iter().take(n).collect())
    }

    /// The referrers of `subject` as an image index, optionally only those
    /// of `artifact_type`.
    pub fn referrers(
        &self,
        repository: &str,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<u8>, OciError> {
        check_repository(repository)?;
        let mut manifests = Vec::new();
        for stored in self.store.referrers(repository, subject)? {
            let Ok(parsed) = Manifest::parse(Some(&stored.media_type), &stored.bytes) else {
                continue;
            };
            let kind = parsed.effective_artifact_type().map(str::to_owned);
            if artifact_type.is_some_and(|want| kind.as_deref() != Some(want)) {
                continue;
            }
            let mut descriptor = json!({
                "mediaType": stored.media_type,
                "digest": stored.digest.to_string(),
                "size": stored.bytes.len(),
            });
            if let Some(kind) = kind {
                descriptor["artifactType"] = json!(kind);
            }
            if !parsed.annotations.is_empty() {
                descriptor["annotations"] = json!(parsed.annotations);
            }
            manifests.push(descriptor);
        }
        Ok(manifest::to_bytes(&json!({
            "schemaVersion": 2,
            "mediaType": IMAGE_INDEX,
            "manifests": manifests,
        })))
    }

    /// The package and version whose release artifact is the manifest
    /// `subject` of `repository`, if it is one.
    pub fn release_of(
        &self,
        repository: &str,
        subject: &Digest,
    ) -> Result<Option<(PackageName, Version)>, OciError> {
        check_repository(repository)?;
        let Releases { package, tags } = self.ensure_release_artifacts(repository)?;
        let Some((name, state)) = package else {
            return Ok(None);
        };
        let found = tags
            .iter()
            .filter(|(_, d)| *d == subject)
            .filter_map(|(tag, _)| Version::parse(tag).ok())
            .find(|v| state.releases().any(|r| r.version == *v));
        Ok(found.map(|v| (name, v)))
    }

    /// Attaches an offline proof (a `c2sp.org/tlog-proof@v1` text) of the
    /// release whose artifact is `subject` as a referrer of it, once: a
    /// second call finds it there and makes nothing. `prove` makes the
    /// proof's text, or `None` when it cannot be made yet.
    pub fn attach_release_proof(
        &self,
        repository: &str,
        subject: &Digest,
        prove: impl FnOnce(&PackageName, &Version) -> Result<Option<String>, OciError>,
    ) -> Result<(), OciError> {
        let attached = || -> Result<bool, OciError> {
            Ok(self.store.referrers(repository, subject)?.iter().any(|m| {
                Manifest::parse(Some(&m.media_type), &m.bytes)
                    .is_ok_and(|p| p.effective_artifact_type() == Some(TLOG_PROOF_ARTIFACT))
            }))
        };
        // Made once: looked for without the lock (the common case), and
        // again under it before it is made.
        if attached()? {
            return Ok(());
        }
        let _one = self.proving.lock().unwrap_or_else(|e| e.into_inner());
        if attached()? {
            return Ok(());
        }
        let Some((name, version)) = self.release_of(repository, subject)? else {
            return Ok(());
        };
        let Some(subject_manifest) = self.store.manifest(repository, subject)? else {
            return Ok(());
        };
        let Some(text) = prove(&name, &version)? else {
            return Ok(());
        };
        let layer = Digest::of(Algorithm::Sha256, text.as_bytes());
        self.blobs.put(&layer, text.as_bytes())?;
        let config = Digest::of(Algorithm::Sha256, b"{}");
        self.blobs.put(&config, b"{}")?;
        let title = format!("{}_{}@{version}.tlog-proof", name.namespace(), name.name());
        let bytes = manifest::to_bytes(&json!({
            "schemaVersion": 2,
            "mediaType": IMAGE_MANIFEST,
            "artifactType": TLOG_PROOF_ARTIFACT,
            "config": {
                "mediaType": EMPTY_CONFIG,
                "digest": config.to_string(),
                "size": 2,
                "data": "e30=",
            },
            "layers": [{
                "mediaType": TLOG_PROOF_LAYER,
                "digest": layer.to_string(),
                "size": text.len(),
                "annotations": { "org.opencontainers.image.title": title },
            }],
            "subject": {
                "mediaType": subject_manifest.media_type,
                "digest": subject.to_string(),
                "size": subject_manifest.bytes.len(),
            },
            "annotations": {
                "dev.cairn.release": format!("{name}@{version}"),
            },
        }));
        self.store.put_manifest(&ManifestWrite {
            repository: repository.to_owned(),
            manifest: StoredManifest {
                digest: Digest::of(Algorithm::Sha256, &bytes),
                media_type: IMAGE_MANIFEST.to_owned(),
                bytes,
                subject: Some(subject.clone()),
            },
            tag: None,
            links: vec![config, layer],
        })?;
        Ok(())
    }

    /// Deletes a tag or a manifest. Versions of packages are immutable.
    pub fn delete_manifest(&self, repository: &str, reference: &Reference) -> Result<(), OciError> {
        check_repository(repository)?;
        let package = self.package(repository)?;
        let versions: BTreeSet<String> = package
            .iter()
            .flat_map(|(_, s)| s.releases())
            .map(|r| r.version.to_string())
            .collect();
        // The distribution spec's answer where a registry does not delete
        // something: 405 UNSUPPORTED.
        let immutable = |what: String| {
            Err(OciError::new(
                ErrorCode::Unsupported,
                format!("{what} is a released version and cannot be deleted; yank it instead"),
            ))
        };
        // A referrer recorded in the attestation log stays: removing it
        // would hide a signature the log says exists.
        let permanent = |digest: &Digest| -> Result<(), OciError> {
            let Some((name, _)) = &package else {
                return Ok(());
            };
            match self.recorded_referrer(name, digest)? {
                Some(index) => Err(OciError::new(
                    ErrorCode::Unsupported,
                    format!(
                        "manifest `{digest}` is recorded in the attestation log of `{name}` (registry \
                         index {index}); attestations and signatures are permanent and cannot be \
                         deleted"
                    ),
                )),
                None => Ok(()),
            }
        };
        match reference {
            Reference::Tag(tag) => {
                if versions.contains(tag) {
                    return immutable(format!("tag `{tag}`"));
                }
                if let Some(digest) = self.store.tag(repository, tag)? {
                    permanent(&digest)?;
                }
                if !self.store.delete_tag(repository, tag)? {
                    return Err(OciError::new(
                        ErrorCode::ManifestUnknown,
                        format!("tag `{tag}` is not in repository `{repository}`"),
                    ));
                }
            }
            Reference::Digest(digest) => {
                for (tag, d) in self.store.tags(repository)? {
                    if &d == digest && versions.contains(&tag) {
                        return immutable(format!("manifest `{digest}` (tag `{tag}`)"));
                    }
                }
                permanent(digest)?;
                if !self.store.delete_manifest(repository, digest)? {
                    return Err(OciError::new(
                        ErrorCode::ManifestUnknown,
                        format!("manifest `{digest}` is not in repository `{repository}`"),
                    ));
                }
            }
        }
        Ok(())
    }
}
