//! Differential tests of `cairn-transparency` against `warg-transparency`
//! 0.10: the same log roots and map roots for the same leaves, proofs and
//! bundles byte-identical and accepted in both directions, and decoders that
//! never panic on arbitrary bytes.

use cairn_interop::{any_hash, from_reference as ours};
use cairn_protocol::{LogId, LogLeaf, MapLeaf, RecordId};
use cairn_transparency::log::{
    ConsistencyProof, InclusionProof, LogData, LogProofBundle, Node, VecLog,
};
use cairn_transparency::map::{Map, MapProofBundle};
use cairn_transparency::Hash;
use proptest::prelude::*;
use warg_crypto::hash::Sha256;
use warg_protocol::registry as wreg;
use warg_transparency::log as wlog;
use warg_transparency::log::{LogBuilder, LogData as _};
use warg_transparency::map as wmap;

type WLog = wlog::VecLog<Sha256, wreg::LogLeaf>;
type WMap = wmap::Map<Sha256, wreg::LogId, wreg::MapLeaf>;

fn digest(seed: u64, salt: &str) -> Hash {
    Hash::of(format!("{salt}-{seed}"))
}

fn log_leaf(i: u64) -> (LogLeaf, wreg::LogLeaf) {
    let log_id = digest(i % 7, "log");
    let record_id = digest(i, "record");
    (
        LogLeaf {
            log_id: LogId::from(log_id),
            record_id: RecordId::from(record_id),
        },
        wreg::LogLeaf {
            log_id: any_hash(&log_id).into(),
            record_id: any_hash(&record_id).into(),
        },
    )
}

fn map_entry(key: u64, version: u64) -> ((Hash, Hash), (wreg::LogId, wreg::MapLeaf)) {
    let log_id = digest(key, "package");
    let record_id = digest(key * 1000 + version, "record");
    let leaf = MapLeaf {
        record_id: RecordId::from(record_id),
    };
    (
        (log_id, leaf.leaf_hash()),
        (
            any_hash(&log_id).into(),
            wreg::MapLeaf {
                record_id: any_hash(&record_id).into(),
            },
        ),
    )
}

struct Logs {
    cairn: VecLog,
    reference: WLog,
    leaves: Vec<(LogLeaf, wreg::LogLeaf)>,
}

fn logs(n: u64) -> Logs {
    let mut logs = Logs {
        cairn: VecLog::new(),
        reference: WLog::default(),
        leaves: Vec::new(),
    };
    assert_eq!(
        logs.cairn.root(),
        ours(&logs.reference.checkpoint().root()),
        "empty log roots"
    );
    for i in 0..n {
        let (leaf, ref_leaf) = log_leaf(i);
        let node = logs.cairn.push(leaf.leaf_hash());
        let ref_node = logs.reference.push(&ref_leaf);
        assert_eq!(node.index() as usize, ref_node.index());
        assert_eq!(
            logs.cairn.root(),
            ours(&logs.reference.checkpoint().root()),
            "roots at length {}",
            i + 1
        );
        logs.leaves.push((leaf, ref_leaf));
    }
    logs
}

/// Cairn bundles a consistency proof (old -> new) and inclusion proofs of
/// `included` leaves at `new`; the reference must accept the bytes, and its
/// own bundle of the same proofs must be byte-identical and accepted by Cairn.
fn check_log_bundles(logs: &Logs, old: u64, new: u64, included: &[u64]) {
    let consistency = [ConsistencyProof {
        old_length: old,
        new_length: new,
    }];
    let inclusion: Vec<_> = included
        .iter()
        .map(|&i| InclusionProof::for_leaf(i, new))
        .collect();
    let bundle = LogProofBundle::bundle(&consistency, &inclusion, &logs.cairn).expect("bundle");
    let bytes = bundle.encode().expect("encode");

    // The reference makes the same bundle, byte for byte.
    let ref_bundle = wlog::LogProofBundle::<Sha256, wreg::LogLeaf>::bundle(
        vec![logs.reference.prove_consistency(old as usize, new as usize)],
        included
            .iter()
            .map(|&i| {
                logs.reference
                    .prove_inclusion(wlog::Node(2 * i as usize), new as usize)
            })
            .collect(),
        &logs.reference,
    )
    .expect("reference bundle");
    assert_eq!(ref_bundle.encode(), bytes, "bundle bytes for {old}->{new}");

    let old_root = logs.cairn.root_at(old).expect("old root");
    let new_root = logs.cairn.root_at(new).expect("new root");

    // The reference verifies Cairn's bytes.
    let (data, ref_consistency, ref_inclusion) =
        wlog::LogProofBundle::<Sha256, wreg::LogLeaf>::decode(&bytes)
            .expect("reference decodes")
            .unbundle();
    let (o, n) = ref_consistency[0]
        .evaluate(&data)
        .expect("reference consistency");
    assert_eq!((ours(&o), ours(&n)), (old_root, new_root));
    for (proof, &i) in ref_inclusion.iter().zip(included) {
        let root = proof
            .evaluate_value(&data, &logs.leaves[i as usize].1)
            .expect("reference inclusion");
        assert_eq!(ours(&root), new_root);
    }

    // Cairn verifies the reference's bytes (the same bytes, decoded by us).
    let decoded = LogProofBundle::decode(&bytes).expect("cairn decodes");
    assert_eq!(decoded, bundle);
    let (data, consistency, inclusion) = decoded.unbundle();
    assert_eq!(consistency[0].evaluate(&data), Ok((old_root, new_root)));
    for (proof, &i) in inclusion.iter().zip(included) {
        let leaf = logs.leaves[i as usize].0.leaf_hash();
        assert_eq!(proof.evaluate(&data, leaf), Ok(new_root));
        // A different leaf does not verify.
        let other = logs.leaves[(i as usize + 1) % logs.leaves.len()]
            .0
            .leaf_hash();
        if other != leaf {
            assert_ne!(proof.evaluate(&data, other), Ok(new_root));
        }
    }
}

#[test]
fn log_roots_proofs_and_bundles_match_the_reference() {
    let logs = logs(70);
    for new in 1..=70 {
        for old in 1..=new {
            let included: Vec<u64> = [0, old - 1, new / 2, new - 1].into_iter().collect();
            check_log_bundles(&logs, old, new, &included);
        }
    }
    // Inclusion alone, consistency alone.
    check_log_bundles(&logs, 70, 70, &[]);
    let inclusion = [InclusionProof::for_leaf(3, 9)];
    let bundle = LogProofBundle::bundle(&[], &inclusion, &logs.cairn).expect("bundle");
    let (data, _, proofs) =
        wlog::LogProofBundle::<Sha256, wreg::LogLeaf>::decode(&bundle.encode().expect("encode"))
            .expect("decode")
            .unbundle();
    let root = proofs[0]
        .evaluate_value(&data, &logs.leaves[3].1)
        .expect("evaluate");
    assert_eq!(Some(ours(&root)), logs.cairn.root_at(9));
}

#[test]
fn log_nodes_are_served_like_the_reference() {
    let logs = logs(37);
    for index in 0..80u64 {
        let ours = logs.cairn.hash_for(Node(index));
        let theirs = logs
            .reference
            .hash_for(wlog::Node(index as usize))
            .map(|h| self::ours(&h));
        // Cairn serves exactly the complete nodes (the reference also hands
        // out nodes that are still incomplete), and serves them alike.
        assert_eq!(
            ours.is_some(),
            Node(index).exists_at_length(37),
            "node {index}"
        );
        if ours.is_some() {
            assert_eq!(ours, theirs, "node {index}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn random_log_bundles(n in 1u64..300, picks in prop::collection::vec((any::<u64>(), any::<u64>()), 1..6)) {
        let logs = logs(n);
        for (a, b) in picks {
            let new = 1 + a % n;
            let old = 1 + b % new;
            let included = [b % new, a % new];
            check_log_bundles(&logs, old, new, &included);
        }
    }

    #[test]
    fn map_roots_proofs_and_bundles_match_the_reference(
        batches in prop::collection::vec(prop::collection::vec((0u64..400, 0u64..3), 1..40), 1..5)
    ) {
        let mut cairn = Map::new();
        let mut reference = WMap::default();
        prop_assert_eq!(cairn.root(), ours(reference.root()));
        let mut model = std::collections::BTreeMap::new();
        for batch in batches {
            let entries: Vec<_> = batch.iter().map(|&(k, v)| (k, map_entry(k, v))).collect();
            cairn = cairn.apply(entries.iter().map(|(_, (c, _))| *c));
            reference = reference.extend(entries.iter().map(|(_, (_, r))| r.clone()));
            prop_assert_eq!(cairn.root(), ours(reference.root()));
            for (k, entry) in entries {
                model.insert(k, entry);
            }
            // (The reference's `len` undercounts a key that parts from a lone
            // key at the first differing level, so count against the model.)
            prop_assert_eq!(cairn.len(), model.len());
            // Every key: the same proof bytes, and each side accepts the other's.
            let mut cairn_bundle = MapProofBundle::default();
            let mut ref_proofs = Vec::new();
            let mut expected = Vec::new();
            for ((key, leaf), (ref_key, ref_leaf)) in model.values() {
                cairn_bundle.proofs.push(cairn.prove(key).expect("cairn proof"));
                ref_proofs.push(reference.prove(ref_key.clone()).expect("reference proof"));
                expected.push(((*key, *leaf), (ref_key.clone(), ref_leaf.clone())));
            }
            let bytes = cairn_bundle.encode();
            let ref_bytes = wmap::MapProofBundle::bundle(ref_proofs).encode();
            prop_assert_eq!(&bytes, &ref_bytes);
            let theirs = wmap::MapProofBundle::<Sha256, wreg::LogId, wreg::MapLeaf>::decode(&bytes)
                .expect("reference decodes")
                .unbundle();
            let mine = MapProofBundle::decode(&ref_bytes).expect("cairn decodes");
            for ((ref_proof, proof), ((key, leaf), (ref_key, ref_leaf))) in
                theirs.iter().zip(&mine.proofs).zip(&expected)
            {
                prop_assert_eq!(ours(&ref_proof.evaluate(ref_key, ref_leaf)), cairn.root());
                prop_assert_eq!(proof.evaluate(key, leaf), Ok(cairn.root()));
            }
        }
        // Absent keys have no proof on either side.
        let ((absent, _), (ref_absent, _)) = map_entry(10_000, 0);
        prop_assert!(cairn.prove(&absent).is_none());
        prop_assert!(reference.prove(ref_absent).is_none());
    }

    #[test]
    fn decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200), key in any::<u64>()) {
        if let Ok(bundle) = LogProofBundle::decode(&bytes) {
            let (data, consistency, inclusion) = bundle.unbundle();
            for proof in consistency {
                let _ = proof.evaluate(&data);
            }
            for proof in inclusion {
                let _ = proof.evaluate(&data, digest(key, "leaf"));
            }
            let _ = bundle.encode();
        }
        if let Ok(bundle) = MapProofBundle::decode(&bytes) {
            for proof in &bundle.proofs {
                let _ = proof.evaluate(&digest(key, "key"), &digest(key, "leaf"));
            }
        }
    }

    #[test]
    fn structured_garbage_never_panics(
        log_length in any::<u32>(),
        lengths in prop::collection::vec(any::<u32>(), 0..4),
        indices in prop::collection::vec(any::<u32>(), 0..4),
        hashes in prop::collection::vec((any::<u32>(), prop::collection::vec(any::<u8>(), 30..34)), 0..6),
        peers in prop::collection::vec(prop::option::of(prop::collection::vec(any::<u8>(), 31..33)), 0..300),
    ) {
        // Well-formed protobuf with arbitrary numbers and hash lengths.
        let mut entries = Vec::new();
        for (index, hash) in &hashes {
            entries.push(wlog_entry(*index, hash));
        }
        let message = warg_protobuf::transparency::LogProofBundle {
            log_length,
            consistent_lengths: lengths,
            included_indices: indices,
            hashes: entries,
        };
        let bytes = prost012::Message::encode_to_vec(&message);
        if let Ok(bundle) = LogProofBundle::decode(&bytes) {
            let (data, consistency, inclusion) = bundle.unbundle();
            for proof in consistency {
                let _ = proof.evaluate(&data);
            }
            for proof in inclusion {
                let _ = proof.evaluate(&data, digest(1, "leaf"));
            }
        }
        let map = warg_protobuf::transparency::MapProofBundle {
            proofs: vec![warg_protobuf::transparency::MapInclusionProof {
                hashes: peers
                    .into_iter()
                    .map(|hash| warg_protobuf::transparency::OptionalHash { hash })
                    .collect(),
            }],
        };
        if let Ok(bundle) = MapProofBundle::decode(&prost012::Message::encode_to_vec(&map)) {
            let _ = bundle.proofs[0].evaluate(&digest(2, "key"), &digest(2, "leaf"));
        }
    }
}

fn wlog_entry(index: u32, hash: &[u8]) -> warg_protobuf::transparency::HashEntry {
    warg_protobuf::transparency::HashEntry {
        index,
        hash: hash.to_vec(),
    }
}

#[test]
fn small_maps_match_the_reference() {
    // Zero, one and two keys: the root always forks, so a lone key's proof
    // has one sibling; the proofs must be byte-identical.
    let mut cairn = Map::new();
    let mut reference = WMap::default();
    for k in 0..3u64 {
        let ((key, leaf), (ref_key, ref_leaf)) = map_entry(k, 0);
        cairn = cairn.insert(key, leaf);
        reference = reference.insert(ref_key.clone(), ref_leaf.clone());
        assert_eq!(cairn.root(), ours(reference.root()));
        let proof = cairn.prove(&key).expect("proof");
        let ref_proof = reference.prove(ref_key.clone()).expect("reference proof");
        assert_eq!(
            MapProofBundle {
                proofs: vec![proof]
            }
            .encode(),
            wmap::MapProofBundle::bundle(vec![ref_proof]).encode()
        );
    }
}
