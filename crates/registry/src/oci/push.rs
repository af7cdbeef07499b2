//! Pushing a manifest. A Wasm artifact pushed to a version tag is a
//! publish, and one step: its layer passes the content door, the release
//! record is signed with the account's custodial key and submitted together
//! with the manifest and tag, which the sequencer commits with the record
//! if, and only if, it accepts it. A referrer pushed into a package's
//! repository is recorded in the package's attestation log the same way.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use cairn_protocol::attestation::Attestation;
use cairn_protocol::package::{PackageEntry, PackageState};
use cairn_protocol::{Envelope, HashAlgorithm, LogId, PackageName, PublicKey, RecordId, Version};

use super::digest::{Algorithm, Digest};
use super::error::{ErrorCode, Hint, OciError};
use super::manifest::Manifest;
use super::names::{check_repository, package_of, refuse_version_tag, Reference};
use super::releases::Releases;
use super::store::{Account, ManifestWrite, StoredManifest};
use super::Oci;
use crate::answer::{self, Answer};
use crate::error::SubmitError;
use crate::policy::BREAK_ANNOTATION;
use crate::registry::{Attested, RecordStatus, Registry};

/// What a manifest push did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pushed {
    /// The manifest's digest.
    pub digest: Digest,
    /// Its subject, if any.
    pub subject: Option<Digest>,
    /// The record that released the version, for a Wasm push to a new
    /// version.
    pub released: Option<RecordId>,
    /// Where a referrer was recorded in its package's attestation log.
    pub attested: Option<Attested>,
}

/// Where a push stands once [`Oci::put_manifest`] returns.
pub enum PushStep {
    /// Stored; nothing to wait for.
    Done(Pushed),
    /// Handed to the sequencer: wait with [`PendingPush::finish`].
    Pending(PendingPush),
}

/// A push whose record the sequencer is deciding.
pub struct PendingPush {
    registry: Arc<Registry>,
    pushed: Pushed,
    waiting: Waiting,
}

enum Waiting {
    Release {
        answer: Answer<RecordStatus>,
        name: PackageName,
        account: String,
        key: Box<PublicKey>,
    },
    Attestation(Answer<Attested>),
}

impl PendingPush {
    /// Waits until the push is accepted and published (a checkpoint covers
    /// its record). No IO and no timer: the caller bounds the wait.
    pub async fn finish(self) -> Result<Pushed, OciError> {
        let PendingPush {
            registry,
            mut pushed,
            waiting,
        } = self;
        match waiting {
            Waiting::Attestation(answer) => {
                let attested = answer.await.map_err(|e| {
                    OciError::new(
                        ErrorCode::Internal,
                        format!("cannot record the referrer: {e}"),
                    )
                })?;
                // Published (a checkpoint covers it) by the time the push
                // answers, as a release is: a client that lists the log
                // next proves it.
                if !registry.checkpointed(attested.index).await {
                    return Err(OciError::new(ErrorCode::Internal, "the registry stopped"));
                }
                pushed.attested = Some(attested);
            }
            Waiting::Release {
                answer,
                name,
                account,
                key,
            } => {
                let status = answer
                    .await
                    .map_err(|e| refused(e, &name, &account, &key))?;
                let index = match status {
                    RecordStatus::Processing { index } | RecordStatus::Published { index } => index,
                    RecordStatus::Rejected { reason } => {
                        return Err(OciError::new(ErrorCode::Denied, reason))
                    }
                    RecordStatus::Sourcing { missing } => {
                        return Err(OciError::new(
                            ErrorCode::Internal,
                            format!("the release waits for content {missing:?}"),
                        ))
                    }
                };
                if !registry.checkpointed(index).await {
                    return Err(OciError::new(ErrorCode::Internal, "the registry stopped"));
                }
            }
        }
        Ok(pushed)
    }

    /// [`PendingPush::finish`] from a blocking thread, giving up at
    /// `deadline` (the push may still complete).
    pub fn wait(self, deadline: Instant) -> Result<Pushed, OciError> {
        answer::block_on(self.finish(), Some(deadline)).unwrap_or_else(|| {
            Err(OciError::new(
                ErrorCode::Timeout,
                "the push was not published in time",
            ))
        })
    }
}

/// A refused custodial release record, as an OCI error.
fn refused(e: SubmitError, name: &PackageName, account: &str, key: &PublicKey) -> OciError {
    let key_id = key.id();
    match e {
        SubmitError::NamespaceNotDefined(ns) => OciError::new(
            ErrorCode::NameUnknown,
            format!("namespace `{ns}` is not defined on this registry"),
        ),
        SubmitError::Invalid(reason) => OciError::new(
            ErrorCode::Denied,
            format!(
                "the release record signed with account `{account}`'s custodial key {key_id} \
                 was refused: {reason}"
            ),
        )
        .with_hint(Hint::GrantRelease {
            package: name.clone(),
            key: Box::new(key.clone()),
        }),
        e @ SubmitError::ConflictPending { .. } => {
            OciError::new(ErrorCode::Conflict, format!("`{name}`: {e}"))
        }
        e @ SubmitError::TakenDown { .. } => OciError::new(ErrorCode::TakenDown, e.to_string()),
        e => OciError::new(ErrorCode::Internal, e.to_string()),
    }
}

impl Oci {
    /// Stores a pushed manifest under `reference`. A Wasm artifact pushed
    /// to a version tag publishes that version through `account`'s
    /// custodial key; a referrer into a package's repository is recorded in
    /// its attestation log. Blocking; what remains to wait for is returned.
    pub fn put_manifest(
        &self,
        repository: &str,
        reference: &Reference,
        content_type: Option<&str>,
        bytes: &[u8],
        account: Option<&Account>,
    ) -> Result<PushStep, OciError> {
        check_repository(repository)?;
        let parsed = Manifest::parse(content_type, bytes)
            .map_err(|e| OciError::new(ErrorCode::ManifestInvalid, e.to_string()))?;
        let digest = match reference {
            Reference::Digest(given) => {
                let actual = Digest::of(given.algorithm(), bytes);
                if &actual != given {
                    return Err(OciError::new(
                        ErrorCode::DigestInvalid,
                        format!("manifest bytes have digest `{actual}`, not `{given}`"),
                    ));
                }
                actual
            }
            Reference::Tag(_) => Digest::of(Algorithm::Sha256, bytes),
        };
        // Everything the manifest lists must be here.
        let mut blobs = BTreeMap::new();
        for blob in parsed.config.iter().chain(&parsed.layers) {
            let found = self.blob(repository, &blob.digest).map_err(|_| {
                OciError::new(
                    ErrorCode::ManifestBlobUnknown,
                    format!(
                        "blob `{}` ({}) is not in repository `{repository}`: push it first",
                        blob.digest, blob.media_type
                    ),
                )
            })?;
            blobs.insert(blob.digest.clone(), found);
        }
        for child in &parsed.manifests {
            if self.store.manifest(repository, &child.digest)?.is_none() {
                return Err(OciError::new(
                    ErrorCode::ManifestBlobUnknown,
                    format!(
                        "manifest `{}` listed by the index is not in repository `{repository}`: push it first",
                        child.digest
                    ),
                ));
            }
        }
        let stored = StoredManifest {
            digest: digest.clone(),
            media_type: parsed.media_type.clone(),
            bytes: bytes.to_vec(),
            subject: parsed.subject.as_ref().map(|s| s.digest.clone()),
        };
        let write = |tag: Option<&str>| ManifestWrite {
            repository: repository.to_owned(),
            manifest: stored.clone(),
            tag: tag.map(str::to_owned),
            links: Vec::new(),
        };
        let pushed = Pushed {
            digest: digest.clone(),
            subject: stored.subject.clone(),
            released: None,
            attested: None,
        };
        // An artifact that refers to another (a signature, an SBOM) is
        // recorded in the package's attestation log; so is one pushed to
        // cosign's classic tag (`sha256-<hex>.sig` or `.att`), which names
        // the manifest it refers to.
        let referred = match (&parsed.subject, reference.tag()) {
            (Some(subject), _) => Some(subject.digest.clone()),
            (None, Some(tag)) if package_of(repository).is_some() => {
                crate::signatures::tag_subject(tag).and_then(|d| d.parse::<Digest>().ok())
            }
            _ => None,
        };
        if let (Some(subject), false) = (referred, parsed.is_wasm()) {
            let tag = reference.tag();
            if let Some(tag) = tag {
                refuse_version_tag(repository, tag)?;
            }
            let existed = self.store.manifest(repository, &digest)?.is_some();
            // Recorded when it refers into a package that exists (other
            // repositories are plain OCI storage).
            let package = match package_of(repository) {
                Some(name) if !existed => self
                    .registry
                    .published_package(&LogId::package(&name))?
                    .map(|state| (name, state)),
                _ => None,
            };
            let Some((name, state)) = package else {
                self.store.put_manifest(&write(tag))?;
                return Ok(PushStep::Done(pushed));
            };
            // An attestation is permanent and speaks about the package, so
            // only its maintainers may add one: an account whose custodial
            // key holds a permission in the package's log. A co-tenant with
            // push rights to the namespace may not.
            let maintainer = account.filter(|a| {
                state
                    .authorities()
                    .permissions(&a.custodial_key.public_key().id())
                    .next()
                    .is_some()
            });
            let Some(maintainer) = maintainer else {
                let who = account.map_or("anonymous".to_owned(), |a| format!("`{}`", a.name));
                let refusal = OciError::new(
                    ErrorCode::Denied,
                    format!(
                        "only maintainers of `{name}` may attach artifacts to it (they are \
                         recorded in its attestation log for good); account {who} holds no \
                         permission in its log"
                    ),
                );
                return Err(match account {
                    Some(a) => refusal.with_hint(Hint::GrantRelease {
                        package: name,
                        key: Box::new(a.custodial_key.public_key().clone()),
                    }),
                    None => refusal,
                });
            };
            // A cosign signature or in-toto attestation is checked against
            // the keys the operator trusts; a malformed one is refused.
            let signature = self.check_signatures(&name, &parsed, &blobs, &subject)?;
            let attestation = Attestation {
                subject: subject.to_string(),
                referrer: digest.to_string(),
                artifact_type: parsed
                    .effective_artifact_type()
                    .unwrap_or_default()
                    .to_owned(),
                media_type: parsed.media_type.clone(),
                size: bytes.len() as u64,
                account: maintainer.name.clone(),
                signature,
            };
            let answer = self
                .registry
                .attest_with(name, attestation, Some(write(tag)));
            return Ok(PushStep::Pending(PendingPush {
                registry: self.registry.clone(),
                pushed,
                waiting: Waiting::Attestation(answer),
            }));
        }
        let Some(tag) = reference.tag() else {
            self.store.put_manifest(&write(None))?;
            return Ok(PushStep::Done(pushed));
        };
        let Releases { package, tags } = self.ensure_release_artifacts(repository)?;
        let version: Option<Version> = tag.parse().ok();
        // A version that exists keeps its manifest.
        if let (Some((name, state)), Some(version)) = (&package, &version) {
            if let Some(release) = state.release(version) {
                if tags.get(tag) == Some(&digest) {
                    return Ok(PushStep::Done(pushed));
                }
                return Err(OciError::new(
                    ErrorCode::Conflict,
                    format!(
                        "version {version} of `{name}` is already released (content `{}`); \
                         versions are immutable: publish a new version",
                        Digest::from(&release.content)
                    ),
                ));
            }
        }
        if !parsed.is_wasm() {
            refuse_version_tag(repository, tag)?;
            self.store.put_manifest(&write(Some(tag)))?;
            return Ok(PushStep::Done(pushed));
        }
        // A Wasm artifact: a publish.
        let Some(version) = version else {
            return Err(OciError::new(
                ErrorCode::ManifestInvalid,
                format!(
                    "tag `{tag}` is not a semantic version: a Wasm package is published by version \
                     (push to a tag such as `1.0.0`; see wasm-pkg-tools#69)"
                ),
            ));
        };
        let Some(name) = package_of(repository) else {
            return Err(OciError::new(
                ErrorCode::NameInvalid,
                format!(
                    "repository `{repository}` does not name a package: Wasm packages live at \
                     `<namespace>/<name>` (kebab-case)"
                ),
            ));
        };
        let layer = parsed
            .wasm_layer()
            .map_err(|e| OciError::new(ErrorCode::ManifestInvalid, e))?;
        let Some(content) = layer.digest.to_hash() else {
            return Err(OciError::new(
                ErrorCode::ManifestInvalid,
                "the Wasm layer of a package release must have a sha256 digest",
            ));
        };
        let blob = blobs
            .remove(&layer.digest)
            .ok_or_else(|| OciError::new(ErrorCode::Internal, "the layer was not located"))?;
        if blob.size != layer.size {
            return Err(OciError::new(
                ErrorCode::ManifestInvalid,
                format!(
                    "the Wasm layer is {} bytes, but the manifest says {}",
                    blob.size, layer.size
                ),
            ));
        }
        let Some(account) = account else {
            return Err(OciError::new(
                ErrorCode::Unauthorized,
                "publishing a Wasm package needs an account: authenticate with a token",
            ));
        };
        let key = &account.custodial_key;
        let mut entries = Vec::new();
        if package.is_none() {
            if !self.store.oci_create_allowed(name.namespace())? {
                return Err(OciError::new(
                    ErrorCode::Denied,
                    format!(
                        "package `{name}` does not exist and namespace `{}` does not allow \
                         creating packages by OCI push; create it with a Warg client first",
                        name.namespace(),
                    ),
                )
                .with_hint(Hint::AllowOciCreate {
                    namespace: name.namespace().to_owned(),
                }));
            }
            entries.push(PackageEntry::Init {
                hash_algorithm: HashAlgorithm::Sha256,
                key: key.public_key().clone(),
            });
        }
        entries.push(PackageEntry::Release {
            version: version.clone(),
            content,
        });
        // The layer becomes release content only through the content door.
        let mut source = blob.read(0, blob.size)?;
        let known = self
            .registry
            .content_size(&content)
            .ok()
            .flatten()
            .is_some();
        self.registry.admit(&content, &mut source)?;
        // And meets the namespace's publish policy; refused content that
        // was not release content before goes again.
        let marked_break = parsed
            .annotations
            .get(BREAK_ANNOTATION)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        if let Err(refusal) = self
            .registry
            .check_release(&name, &version, &content, marked_break)
        {
            if !known {
                self.registry.forget_content(&content);
            }
            return Err(refusal.into());
        }
        let state = package.map(|(_, s)| s).unwrap_or_else(PackageState::new);
        let record = state.next_record(self.registry.config().clock.timestamp(), entries);
        let envelope = Envelope::sign(key, record);
        let record_id = envelope.record_id();
        let answer = self.registry.submit_with(
            name.clone(),
            LogId::package(&name),
            envelope,
            Some(write(Some(tag))),
        );
        Ok(PushStep::Pending(PendingPush {
            registry: self.registry.clone(),
            pushed: Pushed {
                released: Some(record_id),
                ..pushed
            },
            waiting: Waiting::Release {
                answer,
                name,
                account: account.name.clone(),
                key: Box::new(key.public_key().clone()),
            },
        }))
    }
}
