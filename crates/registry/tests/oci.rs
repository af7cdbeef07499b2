//! The OCI face's doors over the in-memory stores: pushes are one step
//! with their record, sessions have one writer and a size limit, and a
//! layer becomes release content only through the content door.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_protocol::package::{PackageEntry, PackageRecord};
use cairn_protocol::{Envelope, Hash, HashAlgorithm, LogId, PackageName, PrivateKey, Timestamp};
use cairn_registry::auth::AuthStore;
use cairn_registry::memory::{MemoryBlobs, MemoryContent, MemoryMeta};
use cairn_registry::oci::{
    Account, Algorithm, Digest, ErrorCode, Hint, Oci, OciConfig, OciStore, PushStep, Pushed,
    Reference,
};
use cairn_registry::{Config, Registry};
use serde_json::json;

const WASM: &[u8] = b"\0asm\x01\0\0\0";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

struct Face {
    oci: Oci,
    registry: Arc<Registry>,
    meta: Arc<MemoryMeta>,
    content: MemoryContent,
    blobs: MemoryBlobs,
}

fn face(config: OciConfig) -> Face {
    let meta = Arc::new(MemoryMeta::default());
    let content = MemoryContent::default();
    let registry = Registry::open(
        meta.clone(),
        Arc::new(content.clone()),
        PrivateKey::generate(),
        &["acme".to_owned()],
        Config::default(),
    )
    .expect("open");
    let blobs = MemoryBlobs::default();
    let oci = Oci::new(
        registry.clone(),
        meta.clone(),
        Arc::new(blobs.clone()),
        config,
    );
    Face {
        oci,
        registry,
        meta,
        content,
        blobs,
    }
}

impl Face {
    fn push_blob(&self, repo: &str, bytes: &[u8]) -> Digest {
        let digest = Digest::of(Algorithm::Sha256, bytes);
        let id = self.oci.start_upload(repo, "test").expect("session");
        let mut chunk = self.oci.open_chunk(repo, &id, None).expect("chunk");
        chunk.write(bytes).expect("write");
        chunk.complete(&digest).expect("complete");
        digest
    }

    /// A Wasm artifact whose layer is `layer`; returns the manifest bytes.
    fn artifact(&self, repo: &str, layer: &[u8]) -> Vec<u8> {
        let config = br#"{"architecture":"wasm","os":"wasip1"}"#;
        let config_digest = self.push_blob(repo, config);
        let layer_digest = self.push_blob(repo, layer);
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": {"mediaType": "application/vnd.wasm.config.v0+json",
                       "digest": config_digest.to_string(), "size": config.len()},
            "layers": [{"mediaType": "application/wasm",
                        "digest": layer_digest.to_string(), "size": layer.len()}],
        }))
        .expect("json")
    }

    fn push(
        &self,
        repo: &str,
        tag: &str,
        manifest: &[u8],
        account: &Account,
    ) -> Result<Pushed, cairn_registry::oci::OciError> {
        let step = self.oci.put_manifest(
            repo,
            &Reference::Tag(tag.to_owned()),
            Some(MANIFEST),
            manifest,
            Some(account),
        )?;
        match step {
            PushStep::Done(pushed) => Ok(pushed),
            PushStep::Pending(pending) => pending.wait(Instant::now() + Duration::from_secs(10)),
        }
    }
}

#[test]
fn a_wasm_push_publishes_its_record_manifest_and_tag_together() {
    let f = face(OciConfig::default());
    let alice = f.meta.ensure_account("alice").expect("account");
    let manifest = f.artifact("acme/app", WASM);
    let pushed = f
        .push("acme/app", "1.0.0", &manifest, &alice)
        .expect("pushed");
    let record = pushed.released.expect("a release record");
    // Published by the time the push answers; the tag points at the
    // manifest as pushed, committed with the record.
    let name: PackageName = "acme:app".parse().expect("name");
    let deadline = Instant::now() + Duration::from_secs(10);
    f.registry
        .wait_published(&LogId::package(&name), &record, deadline)
        .expect("published");
    assert_eq!(
        f.meta.tag("acme/app", "1.0.0").expect("tag"),
        Some(pushed.digest.clone())
    );
    let committed = f.meta.manifests();
    assert_eq!(committed.len(), 1, "the manifest rode with the record");
    assert_eq!(committed[0].tag.as_deref(), Some("1.0.0"));
    // The layer passed the content door: it is release content now.
    assert_eq!(f.content.size_of(&Hash::of(WASM)), Some(WASM.len() as u64));
}

#[test]
fn a_push_the_log_refuses_leaves_nothing() {
    let f = face(OciConfig::default());
    // `acme:owned` belongs to a key Bob's custodial key is not granted.
    let owner = PrivateKey::generate();
    let name: PackageName = "acme:owned".parse().expect("name");
    let init = Envelope::sign(
        &owner,
        PackageRecord {
            prev: None,
            version: 0,
            timestamp: Timestamp::new(1_800_000_000, 0),
            entries: vec![PackageEntry::Init {
                hash_algorithm: HashAlgorithm::Sha256,
                key: owner.public_key().clone(),
            }],
        },
    );
    let id = init.record_id();
    f.registry
        .submit(name.clone(), LogId::package(&name), init)
        .wait()
        .expect("init");
    f.registry
        .wait_published(
            &LogId::package(&name),
            &id,
            Instant::now() + Duration::from_secs(10),
        )
        .expect("published");
    let bob = f.meta.ensure_account("bob").expect("account");
    let manifest = f.artifact("acme/owned", WASM);
    let refused = f
        .push("acme/owned", "1.0.0", &manifest, &bob)
        .expect_err("refused");
    assert_eq!(refused.code, ErrorCode::Denied, "{refused}");
    assert!(matches!(refused.hint, Some(Hint::GrantRelease { .. })));
    assert_eq!(f.meta.tag("acme/owned", "1.0.0").expect("tag"), None);
    assert!(f.meta.manifests().is_empty(), "nothing was committed");
    let digest = Digest::of(Algorithm::Sha256, &manifest);
    assert_eq!(
        f.meta.manifest("acme/owned", &digest).expect("manifest"),
        None
    );
}

#[test]
fn a_layer_that_is_not_wasm_never_becomes_content() {
    let f = face(OciConfig::default());
    let alice = f.meta.ensure_account("alice").expect("account");
    let junk = b"not wasm at all";
    let manifest = f.artifact("acme/junk", junk);
    let refused = f
        .push("acme/junk", "1.0.0", &manifest, &alice)
        .expect_err("refused");
    assert_eq!(refused.code, ErrorCode::ManifestInvalid, "{refused}");
    assert_eq!(f.content.size_of(&Hash::of(junk)), None);
    assert!(f.meta.manifests().is_empty());
}

#[test]
fn a_session_has_one_writer_and_a_size_limit() {
    let f = face(OciConfig {
        max_blob_bytes: 10,
        ..OciConfig::default()
    });
    let id = f.oci.start_upload("misc/x", "test").expect("session");
    let mut first = f.oci.open_chunk("misc/x", &id, None).expect("chunk");
    let busy = f.oci.open_chunk("misc/x", &id, None).err().expect("busy");
    assert_eq!(busy.code, ErrorCode::Busy);
    let completing = f
        .oci
        .open_chunk("misc/x", &id, None)
        .err()
        .expect("no second writer, not even to complete");
    assert_eq!(completing.code, ErrorCode::Busy);
    first.write(b"123456").expect("within the limit");
    assert_eq!(first.finish().expect("finish"), 6);
    let mut second = f
        .oci
        .open_chunk("misc/x", &id, Some(6))
        .expect("next chunk");
    let too_large = second.write(b"12345").expect_err("over the limit");
    assert_eq!(too_large.code, ErrorCode::TooLarge);
    assert_eq!(too_large.hint, Some(Hint::BlobLimit));
    drop(second);
    // The session ended with its bytes.
    let gone = f.oci.upload_size("misc/x", &id).expect_err("ended");
    assert_eq!(gone.code, ErrorCode::BlobUploadUnknown);
}

#[test]
fn a_namespace_closed_to_oci_creation_refuses_a_new_package_with_the_fix() {
    let f = face(OciConfig::default());
    f.meta.set_oci_create("acme", false);
    let alice = f.meta.ensure_account("alice").expect("account");
    let manifest = f.artifact("acme/new", WASM);
    let refused = f
        .push("acme/new", "1.0.0", &manifest, &alice)
        .expect_err("refused");
    assert_eq!(refused.code, ErrorCode::Denied, "{refused}");
    assert_eq!(
        refused.hint,
        Some(Hint::AllowOciCreate {
            namespace: "acme".into()
        })
    );
    assert!(f.meta.manifests().is_empty());
}

#[test]
fn upload_bytes_without_a_session_and_sessions_without_bytes_are_removed() {
    use cairn_registry::oci::{BlobStore, OciStore};
    let f = face(OciConfig::default());
    let kept = f.oci.start_upload("misc/x", "test").expect("session");
    // Bytes left by a crash between writing and recording the session.
    f.blobs
        .create_session("0123456789abcdef0123456789abcdef")
        .expect("stray");
    // A session whose bytes went.
    let emptied = f.oci.start_upload("misc/x", "test").expect("session");
    f.blobs.delete_session(&emptied).expect("delete");
    assert_eq!(f.oci.remove_orphan_uploads().expect("sweep"), 2);
    assert_eq!(f.blobs.sessions().expect("sessions"), vec![kept.clone()]);
    assert!(f.meta.upload(&emptied).expect("read").is_none());
    assert_eq!(f.oci.upload_size("misc/x", &kept).expect("kept"), 0);
    assert_eq!(f.oci.remove_orphan_uploads().expect("sweep"), 0);
}

/// Sessions started at once cannot pass the per-account limit between
/// counting and creating.
#[test]
fn upload_sessions_started_at_once_stop_at_the_limit() {
    let f = face(OciConfig {
        max_uploads_per_account: 5,
        ..OciConfig::default()
    });
    let started = std::sync::atomic::AtomicUsize::new(0);
    let barrier = std::sync::Barrier::new(16);
    std::thread::scope(|scope| {
        for _ in 0..16 {
            scope.spawn(|| {
                barrier.wait();
                if f.oci.start_upload("misc/x", "alice").is_ok() {
                    started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            });
        }
    });
    assert_eq!(started.into_inner(), 5);
    assert_eq!(f.oci.open_uploads().expect("count"), 5);
}

#[test]
fn signed_releases_are_the_versions_with_a_verified_signature() {
    use base64::Engine;
    use cairn_registry::signatures::{self, SigningKey};

    let f = face(OciConfig::default());
    let alice = f.meta.ensure_account("alice").expect("account");
    let name: PackageName = "acme:app".parse().expect("name");
    let mut digests = Vec::new();
    for (version, layer) in [
        ("1.0.0", WASM.to_vec()),
        ("2.0.0", [WASM, &[0, 2, 1, b'x']].concat()),
    ] {
        let manifest = f.artifact("acme/app", &layer);
        f.push("acme/app", version, &manifest, &alice)
            .expect("pushed");
        digests.push((Digest::of(Algorithm::Sha256, &manifest), manifest.len()));
    }
    let trusted = SigningKey::generate();
    let stranger = SigningKey::generate();
    let stored = f
        .oci
        .trust_key("acme", None, &trusted.public_key_pem(), "ci")
        .expect("trusted");
    assert_eq!(
        f.oci.trusted_keys("acme").expect("keys"),
        vec![stored.clone()]
    );
    let sign = |key: &SigningKey, (subject, size): &(Digest, usize)| {
        let payload = signatures::simple_signing_payload("r/acme/app", &subject.to_string());
        let config = f.push_blob("acme/app", b"{}");
        let layer = f.push_blob("acme/app", &payload);
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "artifactType": signatures::COSIGN_ARTIFACT,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                       "digest": config.to_string(), "size": 2},
            "layers": [{"mediaType": signatures::COSIGN_LAYER,
                        "digest": layer.to_string(), "size": payload.len(),
                        "annotations": {signatures::COSIGN_SIGNATURE_ANNOTATION:
                            base64::engine::general_purpose::STANDARD.encode(key.sign(&payload))}}],
            "subject": {"mediaType": MANIFEST, "digest": subject.to_string(), "size": size},
        }))
        .expect("json");
        let digest = Digest::of(Algorithm::Sha256, &manifest);
        match f
            .oci
            .put_manifest(
                "acme/app",
                &Reference::Digest(digest),
                Some(MANIFEST),
                &manifest,
                Some(&alice),
            )
            .expect("pushed")
        {
            PushStep::Done(pushed) => pushed,
            PushStep::Pending(p) => p
                .wait(Instant::now() + Duration::from_secs(10))
                .expect("recorded"),
        }
    };
    // 1.0.0 signed by the trusted key, 2.0.0 only by a stranger.
    assert!(sign(&trusted, &digests[0]).attested.is_some());
    assert!(sign(&stranger, &digests[1]).attested.is_some());
    let signed = f.oci.signed_releases(&name).expect("signed");
    let versions: Vec<String> = signed.keys().map(ToString::to_string).collect();
    assert_eq!(versions, ["1.0.0"]);
    let check = &signed.values().next().expect("one")[0];
    assert_eq!(check.verdict, "verified");
    assert_eq!(check.key_label, "ci");
    assert_eq!(check.key_id, stored.key_id);
    // Every record keeps its verdict; untrusting the key later does not
    // rewrite history.
    let records = f.registry.attestations(&name).expect("log");
    let verdicts: Vec<&str> = records
        .iter()
        .filter_map(|(_, e)| e.contents().attestation.signature.as_ref())
        .map(|c| c.verdict.as_str())
        .collect();
    assert_eq!(verdicts, ["verified", "unverified"]);
    assert!(f.oci.untrust_key("acme", None, "ci").expect("untrust"));
    assert!(f.oci.trusted_keys("acme").expect("keys").is_empty());
    assert_eq!(f.oci.signed_releases(&name).expect("signed").len(), 1);
}
