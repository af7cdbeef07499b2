//! Branch hashes computed [`LANES`] at a time.
//!
//! One SHA-256 compression is a chain of dependent rounds, so a single hash
//! leaves the CPU's SHA unit idle half the time. Independent hashes (the
//! paths of different leaves, different proofs) can share it: on x86-64
//! with the SHA extensions, [`hash_branches`] runs two compressions
//! interleaved round by round (two lanes keep all state in the 16 SSE
//! registers; four spill and run slower than one). Elsewhere it falls back
//! to one [`hash_branch`] call per lane.

use crate::hash::{hash_branch, Hash};

/// Number of hashes computed together.
pub const LANES: usize = 2;

/// `hash_branch(left[i], right[i])` for each lane.
#[inline]
pub fn hash_branches(left: [&Hash; LANES], right: [&Hash; LANES]) -> [Hash; LANES] {
    #[cfg(target_arch = "x86_64")]
    {
        if x86::available() {
            // SAFETY: the CPU has the SHA, SSE2, SSSE3 and SSE4.1 features
            // (checked at run time just above).
            return unsafe { x86::branches(left, right) };
        }
    }
    std::array::from_fn(|i| hash_branch(left[i], right[i]))
}

/// `hash_with_sibling` for each lane: the parents of `nodes`.
#[inline]
pub(crate) fn hash_with_siblings(
    nodes: &[Hash; LANES],
    siblings: [&Hash; LANES],
    node_is_right: [bool; LANES],
) -> [Hash; LANES] {
    let left = std::array::from_fn(|i| {
        if node_is_right[i] {
            siblings[i]
        } else {
            &nodes[i]
        }
    });
    let right = std::array::from_fn(|i| {
        if node_is_right[i] {
            &nodes[i]
        } else {
            siblings[i]
        }
    });
    hash_branches(left, right)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;
    use std::sync::OnceLock;

    use super::LANES;
    use crate::hash::{branch_blocks, from_state, Hash, IV};

    pub(super) fn available() -> bool {
        static AVAILABLE: OnceLock<bool> = OnceLock::new();
        *AVAILABLE.get_or_init(|| {
            is_x86_feature_detected!("sha")
                && is_x86_feature_detected!("sse2")
                && is_x86_feature_detected!("ssse3")
                && is_x86_feature_detected!("sse4.1")
        })
    }

    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];

    /// Compresses block `block` of each lane's message into the lane's
    /// (ABEF, CDGH) state.
    #[inline(always)]
    unsafe fn compress(
        state: &mut [(__m128i, __m128i); LANES],
        blocks: &[[[u8; 64]; 2]; LANES],
        block: usize,
    ) {
        let swap = _mm_set_epi64x(0x0c0d0e0f_08090a0b, 0x04050607_00010203);
        let mut w = [[_mm_setzero_si128(); 4]; LANES];
        for lane in 0..LANES {
            for (g, chunk) in blocks[lane][block].chunks_exact(16).enumerate() {
                let bytes = _mm_loadu_si128(chunk.as_ptr().cast());
                w[lane][g] = _mm_shuffle_epi8(bytes, swap);
            }
        }
        let saved = *state;
        for g in 0..16 {
            let k = _mm_loadu_si128(K[4 * g..].as_ptr().cast());
            for lane in 0..LANES {
                let words = if g < 4 {
                    w[lane][g]
                } else {
                    let [w0, w1, w2, w3] = w[lane];
                    let next = _mm_sha256msg2_epu32(
                        _mm_add_epi32(_mm_sha256msg1_epu32(w0, w1), _mm_alignr_epi8(w3, w2, 4)),
                        w3,
                    );
                    w[lane] = [w1, w2, w3, next];
                    next
                };
                let msg = _mm_add_epi32(words, k);
                let (abef, cdgh) = state[lane];
                let cdgh = _mm_sha256rnds2_epu32(cdgh, abef, msg);
                let abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(msg, 0x0e));
                state[lane] = (abef, cdgh);
            }
        }
        for lane in 0..LANES {
            state[lane].0 = _mm_add_epi32(state[lane].0, saved[lane].0);
            state[lane].1 = _mm_add_epi32(state[lane].1, saved[lane].1);
        }
    }

    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    pub(super) unsafe fn branches(left: [&Hash; LANES], right: [&Hash; LANES]) -> [Hash; LANES] {
        let blocks: [[[u8; 64]; 2]; LANES] =
            std::array::from_fn(|lane| branch_blocks(left[lane], right[lane]));
        // The IV in the (ABEF, CDGH) lane order the SHA instructions use.
        let dcba = _mm_loadu_si128(IV.as_ptr().cast());
        let hgfe = _mm_loadu_si128(IV[4..].as_ptr().cast());
        let cdab = _mm_shuffle_epi32(dcba, 0xb1);
        let efgh = _mm_shuffle_epi32(hgfe, 0x1b);
        let abef = _mm_alignr_epi8(cdab, efgh, 8);
        let cdgh = _mm_blend_epi16(efgh, cdab, 0xf0);
        let mut state = [(abef, cdgh); LANES];
        compress(&mut state, &blocks, 0);
        compress(&mut state, &blocks, 1);
        std::array::from_fn(|lane| {
            let (abef, cdgh) = state[lane];
            let feba = _mm_shuffle_epi32(abef, 0x1b);
            let dchg = _mm_shuffle_epi32(cdgh, 0xb1);
            let dcba = _mm_blend_epi16(feba, dchg, 0xf0);
            let hgfe = _mm_alignr_epi8(dchg, feba, 8);
            let mut words = [0u32; 8];
            _mm_storeu_si128(words.as_mut_ptr().cast(), dcba);
            _mm_storeu_si128(words[4..].as_mut_ptr().cast(), hgfe);
            from_state(words)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_match_one_at_a_time() {
        for round in 0u32..200 {
            let hashes: Vec<Hash> = (0..2 * LANES as u32)
                .map(|i| Hash::of((round * 8 + i).to_le_bytes()))
                .collect();
            let left: [&Hash; LANES] = std::array::from_fn(|i| &hashes[i]);
            let right: [&Hash; LANES] = std::array::from_fn(|i| &hashes[LANES + i]);
            let got = hash_branches(left, right);
            for lane in 0..LANES {
                assert_eq!(
                    got[lane],
                    hash_branch(left[lane], right[lane]),
                    "lane {lane}"
                );
            }
        }
    }
}
