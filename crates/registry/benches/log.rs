//! Memory and proof time of the registry log in memory: `TiledLog` (the
//! engine's: nodes above 256-leaf chunks, lower ones rebuilt from a chunk's
//! leaves) against `VecLog` (every node), on synthetic leaf hashes.
//!
//! Prints the heap bytes per leaf of both at 1M and 10M leaves, and the
//! time of inclusion and consistency proofs (bundled as the engine bundles
//! them) at 1M and 10M. The `TiledLog`'s chunk source makes each chunk's
//! 256 leaf hashes anew, as the engine hashes the leaves it reads from the
//! store (the store read itself is not counted).
//!
//! `cargo bench -p cairn-registry --bench log`; `CAIRN_BENCH_SMOKE=1` for
//! 100,000 and 1,000,000 leaves.

use std::time::{Duration, Instant};

use cairn_transparency::hash_leaf;
use cairn_transparency::log::{
    ChunkSource, ConsistencyProof, InclusionProof, LogData, LogProofBundle, Node, TiledLog, VecLog,
    CHUNK_LEAVES,
};
use cairn_transparency::Hash;

/// The synthetic leaf hash of leaf `i`.
fn leaf(i: u64) -> Hash {
    hash_leaf(&i.to_le_bytes())
}

/// Chunks made anew from the synthetic leaves.
struct Synthetic;

impl ChunkSource for Synthetic {
    fn chunk(&self, index: u64) -> Option<Vec<Hash>> {
        let start = index * CHUNK_LEAVES;
        Some((start..start + CHUNK_LEAVES).map(leaf).collect())
    }
}

/// A small deterministic generator (xorshift), so runs compare.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

const PROOFS: u64 = 2_000;

/// Every node of a `VecLog`, by reference.
struct Ref<'a>(&'a VecLog);

impl LogData for Ref<'_> {
    fn hash_for(&self, node: Node) -> Option<Hash> {
        self.0.hash_for(node)
    }
}

/// Mean time of one inclusion proof of a random leaf, and of one
/// consistency proof from a random length, both to `length`, each bundled
/// and encoded on a fresh `data` (so a chunk's leaves are made anew for
/// every proof).
fn prove<D: LogData>(length: u64, data: impl Fn() -> D) -> (Duration, Duration) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut inclusion = Duration::ZERO;
    let mut consistency = Duration::ZERO;
    for _ in 0..PROOFS {
        let leaf = rng.below(length);
        let old = 1 + rng.below(length - 1);
        let t = Instant::now();
        let proof = InclusionProof::for_leaf(leaf, length);
        let bundle = LogProofBundle::bundle(&[], &[proof], &data())
            .and_then(|b| b.encode())
            .expect("inclusion");
        inclusion += t.elapsed();
        std::hint::black_box(bundle);
        let t = Instant::now();
        let proof = ConsistencyProof {
            old_length: old,
            new_length: length,
        };
        let bundle = LogProofBundle::bundle(&[proof], &[], &data())
            .and_then(|b| b.encode())
            .expect("consistency");
        consistency += t.elapsed();
        std::hint::black_box(bundle);
    }
    (inclusion / PROOFS as u32, consistency / PROOFS as u32)
}

fn main() {
    let smoke = std::env::var_os("CAIRN_BENCH_SMOKE").is_some();
    let sizes: &[u64] = if smoke {
        &[100_000, 1_000_000]
    } else {
        &[1_000_000, 10_000_000]
    };
    println!("registry log in memory: TiledLog (chunks of {CHUNK_LEAVES} leaves) against VecLog");
    for &n in sizes {
        let started = Instant::now();
        let mut tiled = TiledLog::new();
        for i in 0..n {
            tiled.push(leaf(i));
        }
        let tiled_push = started.elapsed();
        let started = Instant::now();
        let mut vec = VecLog::new();
        for i in 0..n {
            vec.push(leaf(i));
        }
        let vec_push = started.elapsed();
        assert_eq!(tiled.root(), vec.root());
        println!("{n} leaves:");
        println!(
            "  heap: TiledLog {} bytes ({:.3} bytes per leaf), VecLog {} bytes ({:.1} bytes per leaf)",
            tiled.heap_bytes(),
            tiled.heap_bytes() as f64 / n as f64,
            vec.heap_bytes(),
            vec.heap_bytes() as f64 / n as f64
        );
        println!(
            "  appending every leaf (hashing included): TiledLog {tiled_push:.2?}, VecLog {vec_push:.2?}"
        );
        let (tiled_inclusion, tiled_consistency) = prove(n, || tiled.with_source(&Synthetic));
        let (vec_inclusion, vec_consistency) = prove(n, || Ref(&vec));
        println!(
            "  inclusion proof (mean of {PROOFS}): TiledLog {tiled_inclusion:.2?}, VecLog {vec_inclusion:.2?}"
        );
        println!(
            "  consistency proof (mean of {PROOFS}): TiledLog {tiled_consistency:.2?}, VecLog {vec_consistency:.2?}"
        );
        drop(vec);
    }
}
