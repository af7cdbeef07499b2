use super::*;
use crate::hash::hash_leaf;
use proptest::prelude::*;

/// The map root by the definition: every one of the 256 levels, no tricks.
fn naive_root(entries: &[(Hash, Hash)], depth: usize) -> Hash {
    if entries.is_empty() {
        return *empty_subtree(256 - depth);
    }
    if depth == 256 {
        return entries[0].1;
    }
    let split = entries.partition_point(|(p, _)| !p.bit(depth));
    hash_branch(
        &naive_root(&entries[..split], depth + 1),
        &naive_root(&entries[split..], depth + 1),
    )
}

fn key(i: u64) -> Hash {
    Hash::of(i.to_le_bytes())
}

fn leaf(i: u64, version: u64) -> Hash {
    hash_leaf(&[i.to_le_bytes(), version.to_le_bytes()].concat())
}

fn check(map: &Map, model: &std::collections::BTreeMap<Hash, Hash>) {
    let mut entries: Vec<(Hash, Hash)> = model
        .iter()
        .map(|(k, v)| (Hash::of(k.as_bytes()), *v))
        .collect();
    entries.sort();
    assert_eq!(map.len(), model.len());
    assert_eq!(map.root(), naive_root(&entries, 0));
    for (k, v) in model {
        assert_eq!(map.get(k), Some(*v));
        let proof = map.prove(k).expect("present key has a proof");
        assert_eq!(proof.evaluate(k, v), Ok(map.root()));
        assert_ne!(proof.evaluate(k, &hash_leaf(b"not it")), Ok(map.root()));
        // Depth = 1 + longest prefix shared with another key, at least 1.
        let path = Hash::of(k.as_bytes());
        let shared = entries
            .iter()
            .filter(|(p, _)| *p != path)
            .map(|(p, _)| p.common_prefix_bits(&path) + 1)
            .max()
            .unwrap_or(1);
        assert_eq!(proof.peers.len(), shared);
        assert!(proof.peers.iter().all(Option::is_some));
    }
    let absent = Hash::of(b"absent key");
    assert_eq!(map.get(&absent), None);
    assert!(map.prove(&absent).is_none());
}

#[test]
fn empty_map() {
    let map = Map::new();
    assert_eq!(map.root(), *empty_subtree(256));
    assert!(map.is_empty());
    assert!(map.prove(&key(0)).is_none());
}

#[test]
fn single_and_few_keys() {
    let mut model = std::collections::BTreeMap::new();
    let mut map = Map::new();
    for i in 0..20 {
        map = map.insert(key(i), leaf(i, 0));
        model.insert(key(i), leaf(i, 0));
        check(&map, &model);
    }
}

#[test]
fn keys_that_share_long_prefixes() {
    // Paths are SHA-256 of keys, so search for keys whose paths share 12+
    // bits to exercise compressed chains and forks deep in the tree.
    let mut by_prefix: std::collections::HashMap<u16, Vec<u64>> = Default::default();
    let mut close = Vec::new();
    for i in 0..200_000u64 {
        let p = Hash::of(key(i).as_bytes());
        let top = u16::from_be_bytes([p.as_bytes()[0], p.as_bytes()[1]]) >> 4;
        let group = by_prefix.entry(top).or_default();
        group.push(i);
        if group.len() == 3 {
            close.extend(group.iter().copied());
            if close.len() >= 12 {
                break;
            }
        }
    }
    let mut model = std::collections::BTreeMap::new();
    let mut map = Map::new();
    for (n, i) in close.into_iter().enumerate() {
        map = map.insert(key(i), leaf(i, 0));
        model.insert(key(i), leaf(i, 0));
        check(&map, &model);
        if n % 3 == 0 {
            map = map.insert(key(i), leaf(i, 1));
            model.insert(key(i), leaf(i, 1));
            check(&map, &model);
        }
    }
}

#[test]
fn batches_match_one_at_a_time_and_old_versions_stay() {
    let first: Vec<_> = (0..3000).map(|i| (key(i), leaf(i, 0))).collect();
    let batch = Map::new().apply(first.iter().copied());
    let mut one_by_one = Map::new();
    for (k, v) in &first {
        one_by_one = one_by_one.insert(*k, *v);
    }
    assert_eq!(batch.root(), one_by_one.root());
    let model: std::collections::BTreeMap<_, _> = first.iter().copied().collect();
    check(&batch, &model);

    // Updates and new keys together, with a repeated key (last one wins).
    let mut second: Vec<_> = (2500..3500).map(|i| (key(i), leaf(i, 1))).collect();
    second.push((key(2600), leaf(2600, 2)));
    let next = batch.apply(second.iter().copied());
    let mut model2 = model.clone();
    model2.extend(second.iter().copied());
    check(&next, &model2);
    // The old version is untouched.
    check(&batch, &model);
    // Re-applying the same values changes nothing.
    assert_eq!(next.apply(second.iter().copied()).root(), next.root());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn random_batches(batches in prop::collection::vec(
        prop::collection::vec((0u64..64, 0u64..4), 0..24), 1..6)) {
        let mut model = std::collections::BTreeMap::new();
        let mut map = Map::new();
        for batch in batches {
            let updates: Vec<_> = batch.iter().map(|&(k, v)| (key(k), leaf(k, v))).collect();
            map = map.apply(updates.iter().copied());
            model.extend(updates);
            check(&map, &model);
        }
    }
}

#[test]
fn many_proofs_at_once() {
    let entries: Vec<_> = (0..101).map(|i| (key(i), leaf(i, 0))).collect();
    let map = Map::new().apply(entries.iter().copied());
    let mut bundle = MapProofBundle::default();
    for (k, _) in &entries {
        bundle.proofs.push(map.prove(k).expect("present"));
    }
    let roots = bundle.evaluate_all(&entries).expect("evaluates");
    assert!(roots.iter().all(|r| *r == map.root()));
    // A wrong leaf in one lane changes only that lane's root.
    let mut wrong = entries.clone();
    wrong[7].1 = leaf(7, 1);
    let roots = bundle.evaluate_all(&wrong).expect("evaluates");
    for (i, root) in roots.iter().enumerate() {
        assert_eq!(*root == map.root(), i != 7, "proof {i}");
    }
    assert!(matches!(
        bundle.evaluate_all(&entries[1..]),
        Err(MapProofError::EntryCount { .. })
    ));
    let too_long = MapProof {
        peers: vec![None; 257],
    };
    let k = key(1);
    let l = leaf(1, 0);
    let results = MapProof::evaluate_many(&[(&too_long, &k, &l), (&bundle.proofs[1], &k, &l)]);
    assert_eq!(results[0], Err(MapProofError::TooManyPeers(257)));
    assert_eq!(results[1], Ok(map.root()));
}

#[test]
fn created_nodes_count_what_a_version_does_not_share() {
    let base = Map::new().apply((0..1000).map(|i| (key(i), leaf(i, 0))));
    // A fresh map of k keys: k leaves and k - 1 forks.
    assert_eq!(base.created_nodes(), 1999);
    // One changed key: a new leaf and a new fork on each level above it.
    let one = base.apply([(key(7), leaf(7, 1))]);
    assert!(
        (2..=40).contains(&one.created_nodes()),
        "{}",
        one.created_nodes()
    );
    // An empty batch makes nothing.
    assert_eq!(one.apply([]).created_nodes(), 0);
    // A batch shares the forks near the root among its updates.
    let batch = base.apply((0..100).map(|i| (key(i * 10), leaf(i * 10, 1))));
    assert!(
        batch.created_nodes() < 100 * 12,
        "{}",
        batch.created_nodes()
    );
    // Read back from a snapshot, every node is its own.
    let read = Map::from_snapshot(&base.snapshot()).expect("snapshot reads");
    assert_eq!(read.created_nodes(), 1999);
}
