//! One storage suite for every metadata backend: what the engine, the OCI
//! face and auth rely on a store for, checked through the traits alone
//! (`MetaStore`, `OciStore`, `AuthStore`). The in-memory store, SQLite and
//! PostgreSQL run it (`tests/storage.rs`); a new backend must pass the same
//! suite.

use std::io::Read;
use std::sync::Arc;

use cairn_protocol::{
    Checkpoint, Hash, LogId, LogLeaf, PackageName, PrivateKey, RecordId, TimestampedCheckpoint,
};
use cairn_registry::auth::{AuthStore, Scope, TokenInfo};
use cairn_registry::oci::{
    Algorithm, Digest, ManifestWrite, OciStore, StoredManifest, TrustedKey, UploadSession,
};
use cairn_registry::{Batch, MetaStore, RecordState, StoredRecord};

/// A store of every kind the registry needs.
pub trait Backend: MetaStore + OciStore + AuthStore {}

impl<T: MetaStore + OciStore + AuthStore> Backend for T {}

/// Runs every case, each on a fresh store from `fresh`.
pub fn run(fresh: &dyn Fn() -> Arc<dyn Backend>) {
    an_empty_store_loads_nothing(fresh().as_ref());
    records_leaves_names_and_checkpoints(fresh().as_ref());
    sourcing_records_are_sequenced_rejected_or_still_wait(fresh().as_ref());
    map_snapshots_replace_each_other(fresh().as_ref());
    blobs_manifests_tags_and_referrers(fresh().as_ref());
    upload_sessions(fresh().as_ref());
    trusted_keys(fresh().as_ref());
    accounts_and_tokens(fresh().as_ref());
    a_large_batch_commits_whole(fresh().as_ref());
    manifests_commit_with_their_records(fresh().as_ref());
    publish_policies(fresh().as_ref());
}

fn name(text: &str) -> PackageName {
    PackageName::new(text).expect("name")
}

/// A stored record of `log` with distinct bytes (the store checks no
/// signature: the engine did).
fn record(log: &LogId, tag: &str, state: RecordState) -> StoredRecord {
    let content_bytes = format!("record {tag}").into_bytes();
    StoredRecord {
        record_id: RecordId::package_record(&content_bytes),
        log_id: *log,
        content_bytes,
        key_id: "sha256:0000000000000000000000000000000000000000000000000000000000000000".into(),
        signature: "ecdsa-p256:AAAA".into(),
        state,
    }
}

fn checkpoint(length: u64) -> cairn_protocol::SignedCheckpoint {
    TimestampedCheckpoint {
        checkpoint: Checkpoint {
            log_root: Hash::of(format!("log {length}").as_bytes()),
            log_length: length,
            map_root: Hash::of(format!("map {length}").as_bytes()),
        },
        timestamp: 1_800_000_000 + length,
    }
    .sign(&PrivateKey::generate())
}

fn an_empty_store_loads_nothing(store: &dyn Backend) {
    let loaded = store.load(0).expect("load");
    assert!(loaded.leaves.is_empty() && loaded.sourcing.is_empty());
    assert_eq!(loaded.log_length, 0);
    assert!(store.load(u64::MAX).expect("load").leaves.is_empty());
    assert!(loaded.checkpoint.is_none());
    assert!(store.package_list().expect("list").is_empty());
    assert!(store.leaves(0, 10).expect("leaves").is_empty());
    assert!(store.load_map_snapshot().expect("snapshot").is_none());
    assert!(!store.has_accounts().expect("accounts"));
}

fn records_leaves_names_and_checkpoints(store: &dyn Backend) {
    let (a, b) = (name("acme:a"), name("acme:b"));
    let (log_a, log_b) = (LogId::package(&a), LogId::package(&b));
    let records = vec![
        record(&log_a, "a0", RecordState::Sequenced { index: 0 }),
        record(&log_b, "b0", RecordState::Sequenced { index: 1 }),
        record(&log_a, "a1", RecordState::Sequenced { index: 2 }),
    ];
    let batch = Batch {
        records: records.clone(),
        names: vec![(log_a, a.clone()), (log_b, b.clone())],
        checkpoint: Some(checkpoint(3)),
        ..Batch::default()
    };
    store.commit(&batch).expect("commit");
    let loaded = store.load(0).expect("load");
    let leaves: Vec<LogLeaf> = records
        .iter()
        .map(|r| LogLeaf {
            log_id: r.log_id,
            record_id: r.record_id,
        })
        .collect();
    assert_eq!(loaded.leaves, leaves);
    assert_eq!(loaded.log_length, 3);
    // The leaves from an index on, with the whole log's length.
    for from in [1, 2] {
        let loaded = store.load(from).expect("load");
        assert_eq!(loaded.leaves, leaves[from as usize..].to_vec());
        assert_eq!(loaded.log_length, 3);
        assert!(loaded.checkpoint.is_some());
    }
    for from in [3, 4, u64::MAX] {
        let loaded = store.load(from).expect("load");
        assert!(loaded.leaves.is_empty());
        assert_eq!(loaded.log_length, 3);
    }
    assert_eq!(
        loaded.checkpoint.map(|c| c.contents.checkpoint.log_length),
        Some(3)
    );
    assert_eq!(store.leaves(1, 10).expect("leaves"), leaves[1..].to_vec());
    assert_eq!(store.leaves(0, 2).expect("leaves"), leaves[..2].to_vec());
    assert_eq!(
        store.leaves_at(&[2, 7, 0]).expect("leaves at"),
        vec![Some(leaves[2]), None, Some(leaves[0])]
    );
    assert_eq!(
        store.record(&log_a, &records[2].record_id).expect("record"),
        Some(records[2].clone())
    );
    // Record ids are unique within a log only.
    assert_eq!(
        store.record(&log_b, &records[0].record_id).expect("record"),
        None
    );
    let log: Vec<u64> = store
        .log_records(&log_a, None, u64::MAX, 10)
        .expect("log")
        .into_iter()
        .map(|(i, _)| i)
        .collect();
    assert_eq!(log, [0, 2]);
    let after: Vec<u64> = store
        .log_records(&log_a, Some(0), u64::MAX, 10)
        .expect("log")
        .into_iter()
        .map(|(i, _)| i)
        .collect();
    assert_eq!(after, [2]);
    assert!(store
        .log_records(&log_a, None, 2, 10)
        .expect("log")
        .iter()
        .all(|(i, _)| *i < 2));
    assert_eq!(store.writer_log(&log_b).expect("writer log").len(), 1);
    assert_eq!(
        store
            .package_names(&[log_b, LogId::package(&name("acme:none"))])
            .expect("names"),
        vec![Some(b.clone()), None]
    );
    assert_eq!(store.package_list().expect("list"), vec![a, b]);
    assert!(store.checkpoint(3).expect("checkpoint").is_some());
    assert!(store.checkpoint(2).expect("checkpoint").is_none());
}

fn sourcing_records_are_sequenced_rejected_or_still_wait(store: &dyn Backend) {
    let log = LogId::package(&name("acme:wait"));
    let (x, y) = (Hash::of(b"x"), Hash::of(b"y"));
    let waiting = |tag: &str| {
        record(
            &log,
            tag,
            RecordState::Sourcing {
                missing: vec![x, y],
                since: 1_800_000_000,
            },
        )
    };
    let (first, second, third) = (waiting("w1"), waiting("w2"), waiting("w3"));
    store
        .commit(&Batch {
            records: vec![first.clone(), second.clone(), third.clone()],
            names: vec![(log, name("acme:wait"))],
            ..Batch::default()
        })
        .expect("commit");
    assert_eq!(store.load(0).expect("load").sourcing.len(), 3);
    assert_eq!(store.load(u64::MAX).expect("load").sourcing.len(), 3);
    store
        .commit(&Batch {
            sequenced: vec![(log, first.record_id, 0)],
            rejected: vec![(log, second.record_id, "no content".into())],
            still_missing: vec![(log, third.record_id, vec![y])],
            ..Batch::default()
        })
        .expect("commit");
    let loaded = store.load(0).expect("load");
    assert_eq!(loaded.leaves.len(), 1);
    assert_eq!(loaded.log_length, 1);
    assert_eq!(loaded.sourcing.len(), 1);
    assert!(matches!(
        &loaded.sourcing[0].state,
        RecordState::Sourcing { missing, .. } if *missing == vec![y]
    ));
    assert!(matches!(
        store
            .record(&log, &first.record_id)
            .expect("record")
            .map(|r| r.state),
        Some(RecordState::Sequenced { index: 0 })
    ));
    assert!(matches!(
        store
            .record(&log, &second.record_id)
            .expect("record")
            .map(|r| r.state),
        Some(RecordState::Rejected { .. })
    ));
}

/// Saves `bytes`, written in pieces of `piece` bytes.
fn save_snapshot(store: &dyn Backend, length: u64, bytes: &[u8], piece: usize) {
    store
        .save_map_snapshot(length, &mut |out| {
            for part in bytes.chunks(piece) {
                out.write_all(part)?;
            }
            Ok(())
        })
        .expect("save");
}

fn load_snapshot(store: &dyn Backend) -> Option<(u64, Vec<u8>)> {
    let (length, mut reader) = store.load_map_snapshot().expect("load")?;
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes).expect("read the snapshot");
    Some((length, bytes))
}

fn map_snapshots_replace_each_other(store: &dyn Backend) {
    save_snapshot(store, 10, b"first", 2);
    save_snapshot(store, 20, b"second", 100);
    assert_eq!(load_snapshot(store), Some((20, b"second".to_vec())));
    // A large one (several of PostgreSQL's pieces), streamed both ways.
    let large: Vec<u8> = (0..9_000_000u32).map(|i| (i % 251) as u8).collect();
    save_snapshot(store, 30, &large, 65_536);
    assert_eq!(load_snapshot(store), Some((30, large.clone())));
    // A save that fails part way leaves the last one.
    let failed = store.save_map_snapshot(40, &mut |out| {
        out.write_all(&large[..5_000_000])?;
        Err(std::io::Error::other("the writer gave up"))
    });
    assert!(failed.is_err());
    assert_eq!(load_snapshot(store), Some((30, large)));
    save_snapshot(store, 50, b"", 1);
    assert_eq!(load_snapshot(store), Some((50, Vec::new())));
}

fn blobs_manifests_tags_and_referrers(store: &dyn Backend) {
    let repo = "acme/thing";
    let blob = Digest::of(Algorithm::Sha256, b"a blob");
    assert!(!store.repository_exists(repo).expect("exists"));
    store.link_blob(repo, &blob).expect("link");
    assert!(store.blob_linked(repo, &blob).expect("linked"));
    assert!(!store.blob_linked("acme/other", &blob).expect("linked"));
    assert!(store.repository_exists(repo).expect("exists"));
    let manifest = |bytes: &[u8], subject: Option<Digest>| StoredManifest {
        digest: Digest::of(Algorithm::Sha256, bytes),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        bytes: bytes.to_vec(),
        subject,
    };
    let main = manifest(b"{\"main\":1}", None);
    store
        .put_manifest(&ManifestWrite {
            repository: repo.into(),
            manifest: main.clone(),
            tag: Some("1.0.0".into()),
            links: vec![blob.clone()],
        })
        .expect("put");
    assert_eq!(
        store.manifest(repo, &main.digest).expect("manifest"),
        Some(main.clone())
    );
    assert_eq!(
        store.tag(repo, "1.0.0").expect("tag"),
        Some(main.digest.clone())
    );
    let signature = manifest(b"{\"signature\":1}", Some(main.digest.clone()));
    store
        .put_manifest(&ManifestWrite {
            repository: repo.into(),
            manifest: signature.clone(),
            tag: None,
            links: Vec::new(),
        })
        .expect("put");
    assert_eq!(
        store.referrers(repo, &main.digest).expect("referrers"),
        vec![signature.clone()]
    );
    assert_eq!(store.tags(repo).expect("tags").len(), 1);
    assert_eq!(
        store.repositories(None, 10).expect("repos"),
        vec![repo.to_owned()]
    );
    assert!(store.delete_tag(repo, "1.0.0").expect("delete tag"));
    assert!(!store.delete_tag(repo, "1.0.0").expect("delete tag"));
    assert!(store
        .delete_manifest(repo, &signature.digest)
        .expect("delete"));
    assert!(store
        .referrers(repo, &main.digest)
        .expect("referrers")
        .is_empty());
    assert!(store.unlink_blob(repo, &blob).expect("unlink"));
    assert!(!store.blob_linked(repo, &blob).expect("linked"));
    assert!(store.oci_create_allowed("acme").expect("policy"));
}

fn trusted_keys(store: &dyn Backend) {
    let key = |package: Option<&str>, id: &str, label: &str| TrustedKey {
        namespace: "acme".into(),
        package: package.map(str::to_owned),
        key_id: id.into(),
        label: label.into(),
        pem: format!("-----BEGIN PUBLIC KEY-----\n{id}\n-----END PUBLIC KEY-----\n"),
    };
    assert!(store.trusted_keys("acme").expect("keys").is_empty());
    store
        .trust_key(&key(None, "sha256:bb", "ci"))
        .expect("trust");
    store
        .trust_key(&key(Some("app"), "sha256:aa", "release"))
        .expect("trust");
    store
        .trust_key(&key(None, "sha256:aa", "team"))
        .expect("trust");
    let mut other = key(None, "sha256:cc", "elsewhere");
    other.namespace = "other".into();
    store.trust_key(&other).expect("trust");
    // Trusting again replaces the label.
    store
        .trust_key(&key(None, "sha256:bb", "ci-2"))
        .expect("trust");
    assert_eq!(
        store.trusted_keys("acme").expect("keys"),
        vec![
            key(None, "sha256:aa", "team"),
            key(None, "sha256:bb", "ci-2"),
            key(Some("app"), "sha256:aa", "release"),
        ],
        "namespace-wide keys first, then by package and key id"
    );
    assert!(store
        .untrust_key("acme", Some("app"), "sha256:aa")
        .expect("untrust"));
    assert!(!store
        .untrust_key("acme", Some("app"), "sha256:aa")
        .expect("untrust"));
    assert!(!store
        .untrust_key("acme", None, "sha256:cc")
        .expect("untrust"));
    assert_eq!(store.trusted_keys("acme").expect("keys").len(), 2);
    assert_eq!(store.trusted_keys("other").expect("keys"), vec![other]);
}

fn upload_sessions(store: &dyn Backend) {
    for (id, account, updated) in [
        ("aa", "alice", 100),
        ("bb", "alice", 200),
        ("cc", "bob", 300),
    ] {
        store
            .create_upload(&UploadSession {
                id: id.into(),
                repository: "acme/x".into(),
                account: account.into(),
                updated,
            })
            .expect("create");
    }
    assert_eq!(store.count_uploads(None).expect("count"), 3);
    assert_eq!(store.count_uploads(Some("alice")).expect("count"), 2);
    let mut stale = store.stale_uploads(250).expect("stale");
    stale.sort();
    assert_eq!(stale, ["aa", "bb"]);
    let mut all = store.stale_uploads(u64::MAX).expect("stale");
    all.sort();
    assert_eq!(all, ["aa", "bb", "cc"], "u64::MAX means every session");
    store.touch_upload("aa", 400).expect("touch");
    assert_eq!(
        store.upload("aa").expect("upload").map(|u| u.updated),
        Some(400)
    );
    store.delete_upload("aa").expect("delete");
    assert!(store.upload("aa").expect("upload").is_none());
    assert_eq!(store.count_uploads(None).expect("count"), 2);
}

fn accounts_and_tokens(store: &dyn Backend) {
    let first = store.ensure_account("alice").expect("account");
    let again = store.ensure_account("alice").expect("account");
    assert_eq!(
        first.custodial_key.public_key(),
        again.custodial_key.public_key(),
        "an account keeps its custodial key"
    );
    assert!(store.has_accounts().expect("accounts"));
    let info = |expires| TokenInfo {
        account: "alice".into(),
        scopes: vec![Scope::Pull, "publish:acme/*".parse().expect("scope")],
        expires,
    };
    let (keep, expire) = ([1u8; 32], [2u8; 32]);
    store.add_token(&keep, &info(None), "kept").expect("add");
    store
        .add_token(&expire, &info(Some(100)), "old")
        .expect("add");
    assert_eq!(store.token(&keep).expect("token"), Some(info(None)));
    assert_eq!(store.tokens().expect("tokens").len(), 2);
    assert_eq!(store.purge_tokens(200).expect("purge"), 1);
    assert!(store.token(&expire).expect("token").is_none());
    let listed = store.tokens().expect("tokens");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].note, "kept");
    assert!(store.revoke_token(&keep).expect("revoke"));
    assert!(!store.revoke_token(&keep).expect("revoke"));
    assert!(store.token(&keep).expect("token").is_none());
}

/// A batch of 1,000 records over ten logs (a backend batches its
/// statements, but must keep every row and the order of the log).
fn a_large_batch_commits_whole(store: &dyn Backend) {
    let names: Vec<PackageName> = (0..10).map(|n| name(&format!("acme:p{n}"))).collect();
    let logs: Vec<LogId> = names.iter().map(LogId::package).collect();
    let records: Vec<StoredRecord> = (0..1_000u64)
        .map(|i| {
            record(
                &logs[(i % 10) as usize],
                &format!("many {i}"),
                RecordState::Sequenced { index: i },
            )
        })
        .collect();
    store
        .commit(&Batch {
            records: records.clone(),
            names: logs.iter().copied().zip(names.iter().cloned()).collect(),
            checkpoint: Some(checkpoint(1_000)),
            ..Batch::default()
        })
        .expect("commit");
    let loaded = store.load(0).expect("load");
    assert_eq!(loaded.leaves.len(), 1_000);
    assert_eq!(loaded.log_length, 1_000);
    let tail = store.load(744).expect("load");
    assert_eq!(tail.log_length, 1_000);
    assert_eq!(tail.leaves, loaded.leaves[744..].to_vec());
    assert!(loaded
        .leaves
        .iter()
        .zip(&records)
        .all(|(leaf, r)| leaf.log_id == r.log_id && leaf.record_id == r.record_id));
    assert_eq!(store.package_list().expect("list"), names);
    // Read back by key, in the order asked, absent keys included.
    let absent = (logs[1], records[0].record_id);
    let keys = vec![
        (records[999].log_id, records[999].record_id),
        absent,
        (records[3].log_id, records[3].record_id),
    ];
    let found = store.writer_records(&keys).expect("records");
    assert_eq!(
        found,
        vec![Some(records[999].clone()), None, Some(records[3].clone())]
    );
    let log = store
        .log_records(&logs[7], Some(7), 500, 3)
        .expect("log")
        .into_iter()
        .map(|(i, _)| i)
        .collect::<Vec<_>>();
    assert_eq!(log, [17, 27, 37]);
    assert_eq!(store.writer_log(&logs[7]).expect("log").len(), 100);
    assert_eq!(
        store.leaves_at(&[999, 1_000, 500]).expect("leaves").len(),
        3
    );
    assert_eq!(store.leaves(990, 100).expect("leaves").len(), 10);
}

/// Manifests committed with records, as a Wasm push's are: written in
/// order, so the first manifest of a digest stays and the last tag wins.
fn manifests_commit_with_their_records(store: &dyn Backend) {
    let package = name("acme:pushed");
    let log = LogId::package(&package);
    let repo = "acme/pushed";
    let blob = Digest::of(Algorithm::Sha256, b"layer");
    let manifest = |bytes: &[u8]| StoredManifest {
        digest: Digest::of(Algorithm::Sha256, bytes),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        bytes: bytes.to_vec(),
        subject: None,
    };
    let (first, second) = (manifest(b"{\"v\":1}"), manifest(b"{\"v\":2}"));
    let write = |m: &StoredManifest, tag: &str| ManifestWrite {
        repository: repo.into(),
        manifest: m.clone(),
        tag: Some(tag.into()),
        links: vec![blob.clone()],
    };
    let mut same_digest = second.clone();
    same_digest.media_type = "application/other".into();
    store
        .commit(&Batch {
            records: vec![record(&log, "pushed", RecordState::Sequenced { index: 0 })],
            names: vec![(log, package)],
            manifests: vec![
                write(&first, "1.0.0"),
                write(&second, "1.0.0"),
                write(&second, "2.0.0"),
                ManifestWrite {
                    manifest: same_digest,
                    tag: None,
                    ..write(&second, "unused")
                },
            ],
            ..Batch::default()
        })
        .expect("commit");
    assert_eq!(
        store.tag(repo, "1.0.0").expect("tag"),
        Some(second.digest.clone()),
        "the last write of a tag wins"
    );
    assert_eq!(store.tags(repo).expect("tags").len(), 2);
    assert_eq!(
        store.manifest(repo, &second.digest).expect("manifest"),
        Some(second.clone()),
        "the first manifest of a digest stays"
    );
    assert!(store
        .manifest(repo, &first.digest)
        .expect("manifest")
        .is_some());
    assert!(store.blob_linked(repo, &blob).expect("linked"));
    assert_eq!(
        store.repositories(Some("acme/a"), 10).expect("repos"),
        vec![repo.to_owned()]
    );
    assert!(store
        .repositories(Some(repo), 10)
        .expect("repos")
        .is_empty());
}

fn publish_policies(store: &dyn Backend) {
    use cairn_registry::policy::PublishPolicy;
    assert_eq!(
        store.publish_policy("acme").expect("read"),
        PublishPolicy::default(),
        "a namespace without a policy asks nothing"
    );
    let strict = PublishPolicy {
        require_license: true,
        require_source: false,
        semver_gate: true,
        allowed_breaks: ["acme:tool@1.2.0".to_owned()].into(),
    };
    assert!(store
        .set_publish_policy("acme", &strict, None)
        .expect("set"));
    assert_eq!(store.publish_policy("acme").expect("read"), strict);
    assert_eq!(
        store.publish_policy("other").expect("read"),
        PublishPolicy::default()
    );
    let relaxed = PublishPolicy::default();
    assert!(store
        .set_publish_policy("acme", &relaxed, None)
        .expect("replace"));
    assert_eq!(store.publish_policy("acme").expect("read"), relaxed);
    // Set only if unchanged: an edit made on what was read goes in; one
    // made on a policy since replaced changes nothing.
    let gated = PublishPolicy {
        semver_gate: true,
        ..PublishPolicy::default()
    };
    assert!(store
        .set_publish_policy("acme", &gated, Some(&relaxed.tag()))
        .expect("set if unchanged"));
    assert!(!store
        .set_publish_policy("acme", &strict, Some(&relaxed.tag()))
        .expect("a stale edit"));
    assert_eq!(store.publish_policy("acme").expect("read"), gated);
    // A namespace without a policy has the default one.
    assert!(store
        .set_publish_policy("fresh", &gated, Some(&PublishPolicy::default().tag()))
        .expect("set if unchanged"));
    assert!(!store
        .set_publish_policy("fresh", &strict, Some(&PublishPolicy::default().tag()))
        .expect("a stale edit"));
    assert_eq!(store.publish_policy("fresh").expect("read"), gated);
}
