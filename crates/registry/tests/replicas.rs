//! Replicas over one shared in-memory store (`SharedMemory`: a lead one
//! handle holds at a time, and fenced commits, as PostgreSQL gives them):
//! one leads and sequences, the others follow its checkpoints and refuse
//! writes; when the leader's session ends, a follower takes over with
//! every committed record, and the old leader follows it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_protocol::package::{PackageEntry, PackageRecord};
use cairn_protocol::{Envelope, HashAlgorithm, LogId, PackageName, PrivateKey, Timestamp};
use cairn_registry::memory::{MemoryContent, MemoryMeta, SharedMemory};
use cairn_registry::{wait_until, Config, FetchRequest, RecordStatus, Registry, Role, SubmitError};

const T0: i64 = 1_800_000_000;

fn replica(
    store: &Arc<SharedMemory>,
    content: &MemoryContent,
    key: &PrivateKey,
    url: &str,
) -> Arc<Registry> {
    replica_of(store, content, key, url, &["acme"])
}

fn replica_of(
    store: &Arc<SharedMemory>,
    content: &MemoryContent,
    key: &PrivateKey,
    url: &str,
    namespaces: &[&str],
) -> Arc<Registry> {
    let namespaces: Vec<String> = namespaces.iter().map(|n| n.to_string()).collect();
    Registry::open_replica(
        store.clone(),
        Arc::new(content.clone()),
        key.clone(),
        &namespaces,
        Config::default(),
        store.clone(),
        url.to_owned(),
    )
    .expect("open replica")
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

fn init_record(key: &PrivateKey) -> Envelope<PackageRecord> {
    Envelope::sign(
        key,
        PackageRecord {
            prev: None,
            version: 0,
            timestamp: Timestamp::new(T0, 0),
            entries: vec![PackageEntry::Init {
                hash_algorithm: HashAlgorithm::Sha256,
                key: key.public_key().clone(),
            }],
        },
    )
}

fn publish(registry: &Registry, name: &str) -> Result<u64, SubmitError> {
    let name: PackageName = name.parse().expect("name");
    let key = PrivateKey::generate();
    match registry
        .submit(name.clone(), LogId::package(&name), init_record(&key))
        .wait()?
    {
        RecordStatus::Processing { index } | RecordStatus::Published { index } => Ok(index),
        other => panic!("not sequenced: {other:?}"),
    }
}

/// Waits (polling; roles change on the replica thread) until `check` holds.
fn eventually(what: &str, check: impl Fn() -> bool) {
    let until = deadline();
    while !check() {
        assert!(Instant::now() < until, "{what}: not within 10 s");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn one_replica_leads_the_others_follow_and_one_takes_over_when_it_goes() {
    let meta = Arc::new(MemoryMeta::default());
    let content = MemoryContent::default();
    let key = PrivateKey::generate();
    let a_store = Arc::new(SharedMemory::new(meta.clone()));
    let b_store = Arc::new(a_store.another());
    let a = replica(&a_store, &content, &key, "http://a");
    let b = replica(&b_store, &content, &key, "http://b");
    assert_eq!(a.role(), Role::Leader);
    assert_eq!(
        b.role(),
        Role::Follower {
            leader: Some("http://a".into())
        }
    );
    assert_eq!(
        b.namespaces(),
        vec!["acme".to_owned()],
        "the follower sees the operator log"
    );

    // Writes are sequenced by the leader; the follower sees each
    // checkpoint once its roots are reproduced.
    let mut indexes = Vec::new();
    for i in 0..20 {
        indexes.push(publish(&a, &format!("acme:p{i}")).expect("published"));
    }
    let last = *indexes.last().expect("some");
    assert!(wait_until(b.checkpointed(last), deadline()).expect("the follower caught up"));
    let length = b.log_length();
    assert_eq!(
        b.latest_checkpoint(),
        a.checkpoint_at(length).expect("read")
    );
    b.prove_inclusion(length, &indexes)
        .expect("the follower proves inclusion");
    let name: PackageName = "acme:p3".parse().expect("name");
    let fetched = b
        .fetch_logs(&FetchRequest {
            log_length: length,
            packages: vec![(LogId::package(&name), None)],
            ..FetchRequest::default()
        })
        .expect("the follower serves fetch/logs");
    assert_eq!(fetched.packages[0].1.len(), 1);
    assert!(matches!(
        publish(&b, "acme:refused"),
        Err(SubmitError::NotLeader)
    ));

    // The leader's session ends: it stops sequencing, b takes the lead
    // with every committed record, and a follows b.
    a_store.lose_lead();
    eventually("b leads", || b.role() == Role::Leader);
    eventually("a follows b", || {
        a.role()
            == Role::Follower {
                leader: Some("http://b".into()),
            }
    });
    let mut after = Vec::new();
    for i in 20..30 {
        after.push(publish(&b, &format!("acme:p{i}")).expect("published by the new leader"));
    }
    assert_eq!(after[0], last + 1, "no gap and no duplicate in the log");
    let newest = *after.last().expect("some");
    assert!(wait_until(a.checkpointed(newest), deadline()).expect("the old leader follows"));
    // One chain of checkpoints across the takeover.
    a.prove_consistency(length, a.log_length())
        .expect("consistent across the takeover");
    let leaves = meta_leaves(&meta);
    let mut seen = std::collections::HashSet::new();
    for leaf in &leaves {
        assert!(
            seen.insert((leaf.log_id, leaf.record_id)),
            "a record twice in the log"
        );
    }
    assert_eq!(leaves.len() as u64, newest + 1);
    a.shutdown();
    b.shutdown();
}

fn meta_leaves(meta: &MemoryMeta) -> Vec<cairn_protocol::LogLeaf> {
    use cairn_registry::MetaStore;
    meta.leaves(0, usize::MAX).expect("leaves")
}

#[test]
fn a_namespace_given_to_a_follower_is_defined_by_the_leader() {
    let meta = Arc::new(MemoryMeta::default());
    let content = MemoryContent::default();
    let key = PrivateKey::generate();
    let a_store = Arc::new(SharedMemory::new(meta.clone()));
    let b_store = Arc::new(a_store.another());
    let a = replica(&a_store, &content, &key, "http://a");
    let b = replica_of(&b_store, &content, &key, "http://b", &["acme", "later"]);
    assert!(matches!(b.role(), Role::Follower { .. }));
    eventually("the follower sees the namespace it asked for", || {
        b.namespaces().contains(&"later".to_owned())
    });
    assert!(a.namespaces().contains(&"later".to_owned()));
    publish(&a, "later:thing").expect("the new namespace takes packages");
    // Asked again by a follower restarting: already defined, nothing new.
    drop(b);
    let b = replica_of(&b_store, &content, &key, "http://b", &["later"]);
    assert_eq!(a.namespaces(), vec!["acme".to_owned(), "later".to_owned()]);
    assert_eq!(b.namespaces(), a.namespaces());
}
