//! Offline proofs of inclusion (`c2sp.org/tlog-proof@v1`): a text that
//! carries an entry's index, its RFC 9162 inclusion path and a checkpoint
//! note (with whatever cosignatures it gathered), plus opaque extra data
//! from which the verifier rebuilds the entry. Pure: parsing is bounded,
//! and checking needs only the leaf hash and a trust policy.
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! extra <base64>
//! index <n>
//! <base64 hash, the leaf's sibling first>
//! …
//!
//! <the checkpoint note, verbatim>
//! ```

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use thiserror::Error;

use crate::hash::Hash;
use crate::log::rfc9162::{self, RfcProofError};
use crate::note::{Checkpoint, Note, NoteError, MAX_NOTE_BYTES};
use crate::witness::{Policy, PolicyError};

/// The first line of every proof.
pub const HEADER: &str = "c2sp.org/tlog-proof@v1";
/// The largest extra data parsed, in bytes (before base64).
pub const MAX_EXTRA_BYTES: usize = 1 << 20;
/// The most inclusion-path hashes a proof may carry (a tree of 2^63 leaves).
pub const MAX_PATH: usize = 63;
/// The largest proof text parsed, in bytes.
pub const MAX_PROOF_BYTES: usize = MAX_NOTE_BYTES + MAX_EXTRA_BYTES * 4 / 3 + (8 << 10);

/// Why a proof did not parse or did not verify.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ProofError {
    /// The text is not a proof.
    #[error("not a tlog-proof: {0}")]
    Malformed(&'static str),
    /// The checkpoint note inside is malformed.
    #[error("the proof's checkpoint: {0}")]
    Note(#[from] NoteError),
    /// The checkpoint does not meet the trust policy (the log's key, or
    /// the witnesses' quorum).
    #[error("the proof's checkpoint is not trusted: {0}")]
    Untrusted(#[from] PolicyError),
    /// The inclusion path does not bind the entry to the checkpoint.
    #[error("the entry is not in the checkpointed log: {0}")]
    Inclusion(#[from] RfcProofError),
}

/// An offline proof that an entry is in a log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlogProof {
    /// Opaque data from which the entry is rebuilt (not authenticated by
    /// itself: only the entry's inclusion is).
    pub extra: Option<Vec<u8>>,
    /// The entry's index in the log.
    pub index: u64,
    /// The inclusion path, from the leaf's sibling up.
    pub path: Vec<Hash>,
    /// The checkpoint the path leads to, signed by the log and possibly
    /// cosigned by witnesses.
    pub checkpoint: Note,
}

impl TlogProof {
    /// The proof's text.
    pub fn text(&self) -> String {
        let mut out = format!("{HEADER}\n");
        if let Some(extra) = &self.extra {
            out.push_str(&format!("extra {}\n", STANDARD.encode(extra)));
        }
        out.push_str(&format!("index {}\n", self.index));
        for hash in &self.path {
            out.push_str(&format!("{}\n", STANDARD.encode(hash.as_ref())));
        }
        out.push('\n');
        out.push_str(&self.checkpoint.to_string());
        out
    }

    /// Parses a proof, within [`MAX_PROOF_BYTES`].
    pub fn parse(bytes: &[u8]) -> Result<TlogProof, ProofError> {
        let malformed = ProofError::Malformed;
        if bytes.len() > MAX_PROOF_BYTES {
            return Err(malformed("the proof is too large"));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| malformed("the proof is not UTF-8"))?;
        let (head, note) = text
            .split_once("\n\n")
            .ok_or(malformed("no blank line before the checkpoint"))?;
        let mut lines = head.split('\n');
        if lines.next() != Some(HEADER) {
            return Err(malformed("the first line is not c2sp.org/tlog-proof@v1"));
        }
        let mut line = lines.next();
        let mut extra = None;
        if let Some(encoded) = line.and_then(|l| l.strip_prefix("extra ")) {
            if encoded.len() > MAX_EXTRA_BYTES * 4 / 3 + 4 {
                return Err(malformed("the extra data is too large"));
            }
            extra = Some(
                STANDARD
                    .decode(encoded)
                    .map_err(|_| malformed("the extra data is not base64"))?,
            );
            line = lines.next();
        }
        let index = line
            .and_then(|l| l.strip_prefix("index "))
            .ok_or(malformed("no index line"))?;
        if index.is_empty()
            || !index.bytes().all(|b| b.is_ascii_digit())
            || (index.len() > 1 && index.starts_with('0'))
        {
            return Err(malformed(
                "the index is not a decimal without leading zeroes",
            ));
        }
        let index: u64 = index
            .parse()
            .map_err(|_| malformed("the index is too large"))?;
        let mut path = Vec::new();
        for line in lines {
            if path.len() == MAX_PATH {
                return Err(malformed("the inclusion path is too long"));
            }
            let bytes = STANDARD
                .decode(line)
                .map_err(|_| malformed("an inclusion path line is not base64"))?;
            let hash = Hash::try_from(bytes.as_slice())
                .map_err(|_| malformed("an inclusion path line is not a SHA-256 hash"))?;
            path.push(hash);
        }
        let checkpoint = Note::parse(note.as_bytes())?;
        Checkpoint::parse(&checkpoint.text)?;
        Ok(TlogProof {
            extra,
            index,
            path,
            checkpoint,
        })
    }

    /// Checks that the entry whose leaf hash is `leaf` is in a log that
    /// `policy` trusts: the checkpoint is signed by a log of the policy and
    /// cosigned by its quorum, and the path leads from the leaf at the
    /// proof's index to the checkpoint's root. Returns the checkpoint and
    /// the witnesses that cosigned it.
    pub fn verify(
        &self,
        leaf: &Hash,
        policy: &Policy,
    ) -> Result<(Checkpoint, Vec<String>), ProofError> {
        let (checkpoint, witnesses) = policy.check(&self.checkpoint)?;
        rfc9162::verify_inclusion(
            self.index,
            checkpoint.size,
            leaf,
            &checkpoint.root,
            &self.path,
        )?;
        Ok((checkpoint, witnesses))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::hash_leaf;
    use crate::log::VecLog;
    use crate::note::{Signer, ED25519};

    fn policy(signer: &Signer) -> Policy {
        Policy::parse(&format!("log {}\nquorum none\n", signer.verifier())).unwrap()
    }

    fn proof_of(entries: &[&[u8]], index: u64) -> (TlogProof, Signer) {
        let mut log = VecLog::new();
        for e in entries {
            log.push(hash_leaf(e));
        }
        let size = entries.len() as u64;
        let path = rfc9162::inclusion_proof(&log, index, size).unwrap();
        let signer = Signer::from_seed("example.com/log", ED25519, [7; 32]).unwrap();
        let text = Checkpoint {
            origin: "example.com/log".into(),
            size,
            root: log.root(),
            extensions: Vec::new(),
        }
        .text();
        let signature = signer.sign(&text);
        let proof = TlogProof {
            extra: Some(b"some context".to_vec()),
            index,
            path,
            checkpoint: Note {
                text,
                signatures: vec![signature],
            },
        };
        (proof, signer)
    }

    #[test]
    fn a_proof_round_trips_and_verifies() {
        let entries: Vec<Vec<u8>> = (0..13u8).map(|i| vec![i; 3]).collect();
        let refs: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
        for index in [0, 5, 12] {
            let (proof, signer) = proof_of(&refs, index);
            let text = proof.text();
            assert!(text.starts_with("c2sp.org/tlog-proof@v1\nextra c29tZSBjb250ZXh0\nindex "));
            let parsed = TlogProof::parse(text.as_bytes()).unwrap();
            assert_eq!(parsed, proof);
            let leaf = hash_leaf(&entries[index as usize]);
            let (cp, witnesses) = parsed.verify(&leaf, &policy(&signer)).unwrap();
            assert_eq!((cp.size, witnesses.len()), (13, 0));
            // Another entry, or another index, is refused.
            let other = hash_leaf(b"not logged");
            assert!(matches!(
                parsed.verify(&other, &policy(&signer)),
                Err(ProofError::Inclusion(_))
            ));
            let mut moved = parsed.clone();
            moved.index = (index + 1) % 13;
            assert!(moved.verify(&leaf, &policy(&signer)).is_err());
        }
    }

    #[test]
    fn an_untrusted_checkpoint_is_refused() {
        let (proof, _) = proof_of(&[b"a", b"b", b"c"], 1);
        let stranger = Signer::from_seed("example.com/log", ED25519, [9; 32]).unwrap();
        assert!(matches!(
            proof.verify(&hash_leaf(b"b"), &policy(&stranger)),
            Err(ProofError::Untrusted(_))
        ));
    }

    #[test]
    fn malformed_proofs_are_refused() {
        let (proof, _) = proof_of(&[b"a", b"b", b"c"], 2);
        let good = proof.text();
        let cases = [
            good.replacen("c2sp.org/tlog-proof@v1", "c2sp.org/tlog-proof@v2", 1),
            good.replacen("index 2", "index 02", 1),
            good.replacen("index 2", "index -2", 1),
            good.replacen("index 2\n", "", 1),
            good.replacen("extra c29tZSBjb250ZXh0", "extra !!", 1),
            good.replacen("\n\n", "\n", 1),
            good.replacen("index 2\n", "index 2\nAAAA\n", 1),
            format!(
                "{HEADER}\nindex 0\n{}\n{}",
                vec![STANDARD.encode([0u8; 32]); 64].join("\n"),
                good.split_once("\n\n").unwrap().1
            ),
            "x".repeat(MAX_PROOF_BYTES + 1),
        ];
        for case in cases {
            assert!(
                TlogProof::parse(case.as_bytes()).is_err(),
                "accepted:\n{case}"
            );
        }
        // Without extra data it still parses.
        let mut bare = proof.clone();
        bare.extra = None;
        assert_eq!(TlogProof::parse(bare.text().as_bytes()).unwrap(), bare);
    }
}
