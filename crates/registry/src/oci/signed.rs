//! Signatures and attestations pushed as referrers: the keys an operator
//! trusts per namespace or package, the check at push (the verdict goes
//! into the attestation record), and which releases carry a verified one.
//! The verification itself is pure, in [`crate::signatures`].

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use cairn_protocol::attestation::SignatureCheck;
use cairn_protocol::{PackageName, Version};

use super::digest::Digest;
use super::error::{ErrorCode, OciError};
use super::manifest::{Descriptor, Manifest};
use super::names::repository_of;
use super::store::TrustedKey;
use super::Oci;
use crate::signatures::{self, Checked, Kind, PublicKey, Trusted, Verdict};

/// Why a key cannot be trusted.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The namespace or package name is not valid.
    #[error("{0}")]
    Name(String),
    /// The key does not parse.
    #[error(transparent)]
    Key(#[from] signatures::SignatureError),
    /// The label is too long or not printable.
    #[error("a key's label is at most 100 printable characters")]
    Label,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] crate::StoreError),
}

/// The largest PEM accepted for a trusted key, in bytes.
pub const MAX_KEY_PEM: usize = 8 * 1024;

/// The key `pem` to trust for signatures in `namespace` (or only in its
/// package `package`, a name within it), labelled `label` (its id when
/// empty), once checked.
pub fn trusted_key(
    namespace: &str,
    package: Option<&str>,
    pem: &str,
    label: &str,
) -> Result<TrustedKey, TrustError> {
    cairn_protocol::validate_namespace(namespace)
        .map_err(|e| TrustError::Name(format!("`{namespace}` is not a namespace: {e}")))?;
    if let Some(package) = package {
        PackageName::new(format!("{namespace}:{package}")).map_err(|e| {
            TrustError::Name(format!(
                "`{namespace}:{package}` is not a package name: {e}"
            ))
        })?;
    }
    if pem.len() > MAX_KEY_PEM {
        return Err(signatures::SignatureError::PublicKey(format!(
            "the PEM is longer than {MAX_KEY_PEM} bytes"
        ))
        .into());
    }
    let key = PublicKey::from_pem(pem)?;
    if label.chars().count() > 100 || label.chars().any(char::is_control) {
        return Err(TrustError::Label);
    }
    let trusted = TrustedKey {
        namespace: namespace.to_owned(),
        package: package.map(str::to_owned),
        key_id: key.id().to_owned(),
        label: if label.is_empty() {
            key.id().to_owned()
        } else {
            label.to_owned()
        },
        pem: pem.trim().to_owned() + "\n",
    };
    Ok(trusted)
}

/// Of `keys`, the one trusted for `package` (namespace-wide for `None`)
/// whose id or label is `key`.
pub fn find_trusted<'a>(
    keys: &'a [TrustedKey],
    package: Option<&str>,
    key: &str,
) -> Option<&'a TrustedKey> {
    keys.iter()
        .filter(|k| k.package.as_deref() == package)
        .find(|k| k.key_id == key || k.label == key)
}

impl Oci {
    /// Trusts the public key `pem` for signatures in `namespace` (or only
    /// in its package `package`, a name within it), labelled `label` (the
    /// key id when empty). Returns what was stored.
    pub fn trust_key(
        &self,
        namespace: &str,
        package: Option<&str>,
        pem: &str,
        label: &str,
    ) -> Result<TrustedKey, TrustError> {
        let trusted = trusted_key(namespace, package, pem, label)?;
        self.store.trust_key(&trusted)?;
        Ok(trusted)
    }

    /// The keys trusted in `namespace` (namespace-wide and per package).
    pub fn trusted_keys(&self, namespace: &str) -> Result<Vec<TrustedKey>, crate::StoreError> {
        self.store.trusted_keys(namespace)
    }

    /// Stops trusting a key, given by its id or label; whether one was
    /// trusted.
    pub fn untrust_key(
        &self,
        namespace: &str,
        package: Option<&str>,
        key: &str,
    ) -> Result<bool, crate::StoreError> {
        let keys = self.store.trusted_keys(namespace)?;
        match find_trusted(&keys, package, key) {
            Some(k) => self.store.untrust_key(namespace, package, &k.key_id),
            None => Ok(false),
        }
    }

    /// The keys that verify signatures on `name`: its namespace's and its
    /// own.
    fn keys_for(&self, name: &PackageName) -> Result<Vec<Trusted>, OciError> {
        let keys = self.store.trusted_keys(name.namespace())?;
        Ok(keys
            .into_iter()
            .filter(|k| k.package.as_deref().is_none_or(|p| p == name.name()))
            .filter_map(|k| match PublicKey::from_pem(&k.pem) {
                Ok(key) => Some(Trusted {
                    label: k.label,
                    key,
                }),
                Err(e) => {
                    tracing::warn!(key = %k.key_id, error = %e, "a stored trusted key does not parse");
                    None
                }
            })
            .collect())
    }

    /// Checks the cosign signatures and DSSE attestations among a
    /// referrer's layers (their blobs in `blobs`) about the manifest
    /// `subject` of `name`. `None` when it carries neither; an error (a
    /// 400, and nothing is stored) when one is malformed or names another
    /// manifest.
    pub(crate) fn check_signatures(
        &self,
        name: &PackageName,
        parsed: &Manifest,
        blobs: &BTreeMap<Digest, super::releases::Blob>,
        subject: &Digest,
    ) -> Result<Option<SignatureCheck>, OciError> {
        let layers: Vec<(&Descriptor, Kind)> = parsed
            .layers
            .iter()
            .filter_map(|l| Kind::of_layer(&l.media_type).map(|k| (l, k)))
            .collect();
        if layers.is_empty() {
            return Ok(None);
        }
        let refuse = |e: signatures::SignatureError| {
            OciError::new(
                ErrorCode::ManifestInvalid,
                format!("the signature pushed for `{name}` ({subject}) is refused: {e}"),
            )
        };
        if layers.len() > signatures::MAX_LAYERS {
            return Err(refuse(signatures::SignatureError::TooMany));
        }
        let keys = self.keys_for(name)?;
        let repository = repository_of(name);
        let subject_text = subject.to_string();
        let mut wasm_layer: Option<Option<String>> = None;
        let mut best: Option<Checked> = None;
        for (layer, kind) in layers {
            let blob = blobs
                .get(&layer.digest)
                .ok_or_else(|| OciError::new(ErrorCode::Internal, "a layer was not located"))?;
            if blob.size > signatures::MAX_LAYER_BYTES {
                return Err(refuse(signatures::SignatureError::TooLarge(blob.size)));
            }
            let mut bytes = Vec::new();
            blob.read(0, blob.size)?
                .take(signatures::MAX_LAYER_BYTES)
                .read_to_end(&mut bytes)
                .map_err(|e| {
                    OciError::new(ErrorCode::Internal, format!("cannot read a layer: {e}"))
                })?;
            let checked = match kind {
                Kind::Cosign => signatures::check_cosign(
                    &bytes,
                    layer
                        .annotations
                        .get(signatures::COSIGN_SIGNATURE_ANNOTATION)
                        .map(String::as_str),
                    &subject_text,
                    &keys,
                ),
                Kind::Dsse => {
                    let wasm = wasm_layer
                        .get_or_insert_with(|| self.wasm_layer_of(&repository, subject))
                        .clone();
                    signatures::check_dsse(&bytes, &subject_text, wasm.as_deref(), &keys)
                }
            }
            .map_err(refuse)?;
            let better = match &best {
                None => true,
                Some(b) => b.verdict != Verdict::Verified && checked.verdict == Verdict::Verified,
            };
            if better {
                best = Some(checked);
            }
        }
        Ok(best.map(|c| SignatureCheck {
            kind: c.kind.as_str().to_owned(),
            verdict: c.verdict.as_str().to_owned(),
            key_id: c.key_id.unwrap_or_default(),
            key_label: c.key_label.unwrap_or_default(),
            predicate_type: c.predicate_type.unwrap_or_default(),
            matched: c.matched.to_owned(),
        }))
    }

    /// The Wasm layer's digest of the manifest `digest`, if it is a Wasm
    /// artifact stored in `repository`.
    fn wasm_layer_of(&self, repository: &str, digest: &Digest) -> Option<String> {
        let stored = self.store.manifest(repository, digest).ok()??;
        let parsed = Manifest::parse(Some(&stored.media_type), &stored.bytes).ok()?;
        let layer = parsed.wasm_layer().ok()?;
        Some(layer.digest.to_string())
    }

    /// The versions of `name` that carry a signature or attestation
    /// verified by a key the operator trusts, with how each checked out
    /// (a version signed several times lists each).
    pub fn signed_releases(
        &self,
        name: &PackageName,
    ) -> Result<BTreeMap<Version, Vec<SignatureCheck>>, OciError> {
        let records = self.registry.attestations(name)?;
        let verified: Vec<(String, SignatureCheck)> = records
            .iter()
            .filter_map(|(_, envelope)| {
                let a = &envelope.contents().attestation;
                let check = a.signature.as_ref()?;
                (check.verdict == Verdict::Verified.as_str())
                    .then(|| (a.subject.clone(), check.clone()))
            })
            .collect();
        let mut signed: BTreeMap<Version, Vec<SignatureCheck>> = BTreeMap::new();
        if verified.is_empty() {
            return Ok(signed);
        }
        let repository = repository_of(name);
        let releases = self.ensure_release_artifacts(&repository)?;
        let released: BTreeSet<Version> = releases
            .package
            .iter()
            .flat_map(|(_, s)| s.releases())
            .map(|r| r.version.clone())
            .collect();
        for (tag, digest) in &releases.tags {
            let Ok(version) = tag.parse::<Version>() else {
                continue;
            };
            if !released.contains(&version) {
                continue;
            }
            let digest = digest.to_string();
            for (subject, check) in &verified {
                if *subject == digest {
                    signed
                        .entry(version.clone())
                        .or_default()
                        .push(check.clone());
                }
            }
        }
        Ok(signed)
    }

    /// Where the referrer `digest` of `name` is recorded in its
    /// attestation log (its registry index), if it is.
    pub(crate) fn recorded_referrer(
        &self,
        name: &PackageName,
        digest: &Digest,
    ) -> Result<Option<u64>, OciError> {
        let digest = digest.to_string();
        Ok(self
            .registry
            .attestations(name)?
            .iter()
            .find(|(_, e)| e.contents().attestation.referrer == digest)
            .map(|(index, _)| *index))
    }
}
