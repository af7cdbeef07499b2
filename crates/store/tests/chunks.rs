//! The registry log on SQLite: a restart reads only the leaves since the
//! snapshot's last chunk (`MetaStore::load(leaves_from)`), and proofs read
//! the chunks they need from the database (`MetaStore::leaves`).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_protocol::package::{PackageEntry, PackageRecord};
use cairn_protocol::{Envelope, HashAlgorithm, LogId, PackageName, PrivateKey, Timestamp};
use cairn_registry::{wait_until, Config, MetaStore, RecordStatus, Registry};
use cairn_store::DataDir;
use cairn_transparency::log::{LogProofBundle, VecLog};

fn open(dir: &Path) -> (Arc<Registry>, Arc<dyn MetaStore>) {
    let data = DataDir::create(dir).expect("data dir");
    let (key, _) = data.operator_key(None).expect("key");
    let stores = data.open_stores().expect("stores");
    let registry = Registry::open(
        stores.meta.clone(),
        stores.content,
        key,
        &["example".to_owned()],
        Config::default(),
    )
    .expect("open");
    (registry, stores.meta)
}

#[test]
fn proofs_read_chunks_from_sqlite_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (registry, _) = open(dir.path());
    let key = PrivateKey::generate();
    let mut last = 0;
    for i in 0..600 {
        let name: PackageName = format!("example:p{i}").parse().expect("name");
        let envelope = Envelope::sign(
            &key,
            PackageRecord {
                prev: None,
                version: 0,
                timestamp: Timestamp::new(1_800_000_000, 0),
                entries: vec![PackageEntry::Init {
                    hash_algorithm: HashAlgorithm::Sha256,
                    key: key.public_key().clone(),
                }],
            },
        );
        let status = registry
            .submit(name.clone(), LogId::package(&name), envelope)
            .wait()
            .expect("accepted");
        let RecordStatus::Processing { index } = status else {
            panic!("not sequenced: {status:?}")
        };
        last = index;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    assert!(wait_until(registry.checkpointed(last), deadline).expect("in time"));
    registry.shutdown();
    drop(registry);

    let (registry, meta) = open(dir.path());
    let length = registry.log_length();
    assert!(length > 512);
    let (at, _) = meta.load_map_snapshot().expect("read").expect("snapshot");
    assert_eq!(at, length);
    assert_eq!(
        meta.load(512).expect("load").leaves.len() as u64,
        length - 512
    );
    let mut reference = VecLog::new();
    for leaf in meta.leaves(0, usize::MAX).expect("leaves") {
        reference.push(leaf.leaf_hash());
    }
    let root = reference.root_at(length).expect("root");
    let leaves = [0, 3, 255, 256, 300, 511, 512, length - 1];
    let (bundle, _) = registry
        .prove_inclusion(length, &leaves)
        .expect("inclusion");
    let (data, _, inclusion) = LogProofBundle::decode(&bundle).expect("bundle").unbundle();
    for (proof, leaf) in inclusion.iter().zip(leaves) {
        let hash = meta.leaves(leaf, 1).expect("leaf")[0].leaf_hash();
        assert_eq!(proof.evaluate(&data, hash), Ok(root), "leaf {leaf}");
    }
    for old in [1, 100, 256, 300, 511, 512, 513, length - 1] {
        let bundle = registry
            .prove_consistency(old, length)
            .expect("consistency");
        let (data, proofs, _) = LogProofBundle::decode(&bundle).expect("bundle").unbundle();
        assert_eq!(
            proofs[0].evaluate(&data),
            Ok((reference.root_at(old).expect("old root"), root)),
            "from {old}"
        );
    }
}
