//! Witnessing, pure: the `add-checkpoint` exchange of a C2SP witness
//! (`c2sp.org/tlog-witness`) and trust policies (`c2sp.org/tlog-policy`).
//!
//! A witness keeps, per log it knows, the size and root of the latest
//! checkpoint it cosigned. It cosigns a newer checkpoint only if the log
//! signed it and a consistency proof leads from what it kept to it;
//! [`add_checkpoint`] decides that, given what it kept and the time, and
//! the caller persists the new state before answering. A [`Policy`] says
//! which logs and witnesses a reader trusts and how many cosignatures make
//! a checkpoint believable.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use thiserror::Error;

use crate::hash::Hash;
use crate::log::rfc9162::verify_consistency;
use crate::note::{
    Checkpoint, Note, NoteError, NoteSignature, Signer, Verifier, COSIGNATURE, ED25519,
};

/// The most consistency proof lines a request may carry.
pub const MAX_PROOF_LINES: usize = 63;

/// The root of the empty tree (SHA-256 of nothing).
fn empty_root() -> Hash {
    Hash::of([])
}

/// An `add-checkpoint` request: the size the sender believes the witness
/// holds, a consistency proof from there, and the signed checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddCheckpoint {
    /// The size of the witness's latest cosigned checkpoint, as the sender
    /// believes it (0 for none).
    pub old: u64,
    /// A consistency proof from `old` to the checkpoint's size.
    pub proof: Vec<Hash>,
    /// The checkpoint, signed by the log.
    pub note: Note,
}

/// Why a witness refused a checkpoint; each is one HTTP status of the
/// protocol.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The request does not parse (400).
    #[error("malformed request: {0}")]
    Malformed(String),
    /// The witness knows no log of this origin (404).
    #[error("no log of origin `{0}` is known here")]
    UnknownLog(String),
    /// No trusted signature, or a bad one (403).
    #[error("the checkpoint is not signed by the log: {0}")]
    Unsigned(String),
    /// The witness holds another size (409, with that size).
    #[error("the witness holds size {0}")]
    Conflict(u64),
    /// The checkpoint is not consistent with what the witness holds (422).
    #[error("the checkpoint is not consistent with the witness's: {0}")]
    Inconsistent(String),
}

impl AddCheckpoint {
    /// Parses a request body: `old <size>`, up to 63 base64 hashes, a
    /// blank line, the checkpoint note.
    pub fn parse(body: &[u8]) -> Result<AddCheckpoint, Refusal> {
        let malformed = |what: &str| Refusal::Malformed(what.to_owned());
        let text = std::str::from_utf8(body).map_err(|_| malformed("the body is not UTF-8"))?;
        let (head, note) = text
            .split_once("\n\n")
            .ok_or_else(|| malformed("no blank line before the checkpoint"))?;
        let mut lines = head.split('\n');
        let old = lines
            .next()
            .and_then(|l| l.strip_prefix("old "))
            .filter(|n| *n == "0" || (!n.starts_with('0') && n.bytes().all(|b| b.is_ascii_digit())))
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| malformed("the first line is not `old <size>`"))?;
        let mut proof = Vec::new();
        for line in lines {
            if proof.len() == MAX_PROOF_LINES {
                return Err(malformed("more than 63 proof lines"));
            }
            let hash = STANDARD
                .decode(line)
                .ok()
                .and_then(|h| <[u8; 32]>::try_from(h).ok())
                .ok_or_else(|| malformed("a proof line is not a base64 hash"))?;
            proof.push(Hash::from_bytes(hash));
        }
        let note = Note::parse(note.as_bytes()).map_err(|e| Refusal::Malformed(e.to_string()))?;
        Ok(AddCheckpoint { old, proof, note })
    }

    /// The request body.
    pub fn body(&self) -> String {
        let mut body = format!("old {}\n", self.old);
        for hash in &self.proof {
            body.push_str(&STANDARD.encode(hash.as_bytes()));
            body.push('\n');
        }
        body.push('\n');
        body.push_str(&self.note.to_string());
        body
    }
}

/// What a witness keeps of a log: its latest cosigned size and root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Witnessed {
    /// Tree size.
    pub size: u64,
    /// Root hash at that size.
    pub root: Hash,
}

/// Decides `request` for a witness that trusts `log_keys` for the
/// checkpoint's origin (`None`: an unknown origin) and holds `held` for it
/// (`None`: never cosigned one). On success: what to hold from now on
/// (persist it before answering) and the cosignature, made at `now`
/// (seconds since the epoch) with `cosigner`.
pub fn add_checkpoint(
    request: &AddCheckpoint,
    log_keys: Option<&[Verifier]>,
    held: Option<Witnessed>,
    cosigner: &Signer,
    now: u64,
) -> Result<(Witnessed, NoteSignature), Refusal> {
    let checkpoint =
        Checkpoint::parse(&request.note.text).map_err(|e| Refusal::Malformed(e.to_string()))?;
    let keys = log_keys.ok_or_else(|| Refusal::UnknownLog(checkpoint.origin.clone()))?;
    let keys: Vec<Verifier> = keys
        .iter()
        .filter(|k| k.kind() == ED25519 && k.name() == checkpoint.origin)
        .cloned()
        .collect();
    request
        .note
        .verify(&keys)
        .map_err(|e| Refusal::Unsigned(e.to_string()))?;
    if request.old > checkpoint.size {
        return Err(Refusal::Malformed(format!(
            "old size {} is past the checkpoint's size {}",
            request.old, checkpoint.size
        )));
    }
    let held_size = held.map_or(0, |h| h.size);
    if request.old != held_size {
        return Err(Refusal::Conflict(held_size));
    }
    if checkpoint.size == 0 && checkpoint.root != empty_root() {
        return Err(Refusal::Inconsistent(
            "an empty tree has the empty root".into(),
        ));
    }
    match held {
        None => {
            if !request.proof.is_empty() {
                return Err(Refusal::Inconsistent(
                    "no proof is needed from size 0".into(),
                ));
            }
        }
        Some(held) if held.size == 0 => {
            if !request.proof.is_empty() {
                return Err(Refusal::Inconsistent(
                    "no proof is needed from size 0".into(),
                ));
            }
        }
        Some(held) => verify_consistency(
            held.size,
            checkpoint.size,
            &held.root,
            &checkpoint.root,
            &request.proof,
        )
        .map_err(|e| Refusal::Inconsistent(e.to_string()))?,
    }
    let cosignature = cosigner.cosign(&request.note.text, now);
    Ok((
        Witnessed {
            size: checkpoint.size,
            root: checkpoint.root,
        },
        cosignature,
    ))
}

/// Why a policy did not parse, or a checkpoint did not satisfy it.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PolicyError {
    /// A line of the policy is wrong.
    #[error("policy line {line}: {why}")]
    Syntax {
        /// The line's number (from 1).
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// No log of the policy signed the checkpoint.
    #[error("no log of the policy signed the checkpoint: {0}")]
    Log(NoteError),
    /// The checkpoint's text is not a checkpoint.
    #[error("{0}")]
    Checkpoint(NoteError),
    /// Too few witnesses cosigned.
    #[error("the witnesses' quorum is not met: {0} cosigned")]
    Quorum(String),
}

/// A member of a group: a witness or another group, by index.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Member {
    Witness(usize),
    Group(usize),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Group {
    name: String,
    threshold: usize,
    members: Vec<Member>,
}

/// A policy (`c2sp.org/tlog-policy`): logs, witnesses, groups, a quorum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The logs, with their URLs.
    pub logs: Vec<(Verifier, Option<String>)>,
    /// The witnesses: name, key, URL (their submission prefix).
    pub witnesses: Vec<(String, Verifier, Option<String>)>,
    groups: Vec<Group>,
    /// `None` for `quorum none`.
    quorum: Option<Member>,
}

impl Policy {
    /// Parses a policy file.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let mut policy = Policy {
            logs: Vec::new(),
            witnesses: Vec::new(),
            groups: Vec::new(),
            quorum: None,
        };
        let mut quorum_seen = false;
        for (n, line) in text.lines().enumerate() {
            let error = |why: &str| PolicyError::Syntax {
                line: n + 1,
                why: why.to_owned(),
            };
            let words: Vec<&str> = line.split([' ', '\t']).filter(|w| !w.is_empty()).collect();
            let Some((&keyword, args)) = words.split_first() else {
                continue;
            };
            if keyword.starts_with('#') {
                continue;
            }
            let name_taken = |policy: &Policy, name: &str| {
                name == "none"
                    || policy.witnesses.iter().any(|(n, _, _)| n == name)
                    || policy.groups.iter().any(|g| g.name == name)
            };
            match (keyword, args) {
                ("log", [vkey, rest @ ..]) if rest.len() <= 1 => {
                    let key = Verifier::parse(vkey).map_err(|e| error(&e.to_string()))?;
                    if key.kind() != ED25519 {
                        return Err(error("a log's key signs notes (type 0x01)"));
                    }
                    if policy.logs.iter().any(|(k, _)| k.public() == key.public()) {
                        return Err(error("a log is listed twice"));
                    }
                    policy.logs.push((key, rest.first().map(|u| u.to_string())));
                }
                ("witness", [name, vkey, rest @ ..]) if rest.len() <= 1 => {
                    if name_taken(&policy, name) {
                        return Err(error("the name is already used"));
                    }
                    let key = Verifier::parse(vkey).map_err(|e| error(&e.to_string()))?;
                    if key.kind() != COSIGNATURE {
                        return Err(error("a witness's key cosigns (type 0x04)"));
                    }
                    if policy
                        .witnesses
                        .iter()
                        .any(|(_, k, _)| k.public() == key.public())
                    {
                        return Err(error("a witness is listed twice"));
                    }
                    policy.witnesses.push((
                        name.to_string(),
                        key,
                        rest.first().map(|u| u.to_string()),
                    ));
                }
                ("group", [name, threshold, members @ ..]) if !members.is_empty() => {
                    if name_taken(&policy, name) {
                        return Err(error("the name is already used"));
                    }
                    let members = members
                        .iter()
                        .map(|m| {
                            policy
                                .member(m)
                                .ok_or_else(|| error(&format!("`{m}` is not defined above")))
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    let threshold = match *threshold {
                        "all" => members.len(),
                        "any" => 1,
                        n => n
                            .parse::<usize>()
                            .ok()
                            .filter(|t| (1..=members.len()).contains(t))
                            .ok_or_else(|| {
                                error("the threshold is all, any or 1 to the members")
                            })?,
                    };
                    policy.groups.push(Group {
                        name: name.to_string(),
                        threshold,
                        members,
                    });
                }
                ("quorum", [name]) => {
                    if quorum_seen {
                        return Err(error("a second quorum line"));
                    }
                    quorum_seen = true;
                    policy.quorum = match *name {
                        "none" => None,
                        name => Some(
                            policy
                                .member(name)
                                .ok_or_else(|| error(&format!("`{name}` is not defined above")))?,
                        ),
                    };
                }
                _ => return Err(error("not a log, witness, group or quorum line")),
            }
        }
        if !quorum_seen {
            return Err(PolicyError::Syntax {
                line: text.lines().count(),
                why: "no quorum line".into(),
            });
        }
        Ok(policy)
    }

    fn member(&self, name: &str) -> Option<Member> {
        self.witnesses
            .iter()
            .position(|(n, _, _)| n == name)
            .map(Member::Witness)
            .or_else(|| {
                self.groups
                    .iter()
                    .position(|g| g.name == name)
                    .map(Member::Group)
            })
    }

    fn satisfied(&self, member: &Member, cosigned: &[bool]) -> bool {
        match member {
            Member::Witness(i) => cosigned[*i],
            Member::Group(g) => {
                let group = &self.groups[*g];
                group
                    .members
                    .iter()
                    .filter(|m| self.satisfied(m, cosigned))
                    .count()
                    >= group.threshold
            }
        }
    }

    /// Whether the policy asks for cosignatures at all.
    pub fn needs_witnesses(&self) -> bool {
        self.quorum.is_some()
    }

    /// The checkpoint of `note` if a log of the policy signed it and the
    /// quorum of witnesses cosigned it; with the witnesses that did.
    pub fn check(&self, note: &Note) -> Result<(Checkpoint, Vec<String>), PolicyError> {
        let checkpoint = Checkpoint::parse(&note.text).map_err(PolicyError::Checkpoint)?;
        let logs: Vec<Verifier> = self
            .logs
            .iter()
            .map(|(k, _)| k.clone())
            .filter(|k| k.name() == checkpoint.origin)
            .collect();
        note.verify(&logs).map_err(PolicyError::Log)?;
        let keys: Vec<Verifier> = self.witnesses.iter().map(|(_, k, _)| k.clone()).collect();
        let cosigned_by = match note.verify(&keys) {
            Ok(verified) => verified.by,
            Err(NoteError::Unverified) => Vec::new(),
            Err(e) => return Err(PolicyError::Quorum(e.to_string())),
        };
        let cosigned: Vec<bool> = self
            .witnesses
            .iter()
            .map(|(_, k, _)| cosigned_by.iter().any(|(by, _)| by == k))
            .collect();
        let names: Vec<String> = self
            .witnesses
            .iter()
            .zip(&cosigned)
            .filter(|(_, c)| **c)
            .map(|((n, _, _), _)| n.clone())
            .collect();
        if let Some(quorum) = &self.quorum {
            if !self.satisfied(quorum, &cosigned) {
                let who = if names.is_empty() {
                    "none".into()
                } else {
                    names.join(", ")
                };
                return Err(PolicyError::Quorum(who));
            }
        }
        Ok((checkpoint, names))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::hash_leaf;
    use crate::log::rfc9162::consistency_proof;
    use crate::log::VecLog;

    fn log_of(n: u64) -> VecLog {
        let mut log = VecLog::new();
        for i in 0..n {
            log.push(hash_leaf(&i.to_le_bytes()));
        }
        log
    }

    fn signed(key: &Signer, size: u64, root: Hash) -> Note {
        let text = Checkpoint {
            origin: key.verifier().name().to_owned(),
            size,
            root,
            extensions: Vec::new(),
        }
        .text();
        let mut note = Note::new(text).expect("note");
        let signature = key.sign(&note.text);
        note.signatures.push(signature);
        note
    }

    #[test]
    fn a_witness_cosigns_consistent_checkpoints_and_refuses_the_rest() {
        let log_key = Signer::from_seed("example.com/log", ED25519, [1; 32]).expect("key");
        let keys = [log_key.verifier().clone()];
        let witness = Signer::from_seed("example.com/w", COSIGNATURE, [2; 32]).expect("key");
        let log = log_of(40);
        let root = |n| log.root_at(n).expect("root");
        let request = |old, new: u64, proof: Vec<Hash>| AddCheckpoint {
            old,
            proof,
            note: signed(&log_key, new, root(new)),
        };
        // First sight: from 0, no proof.
        let first = request(0, 10, Vec::new());
        let parsed = AddCheckpoint::parse(first.body().as_bytes()).expect("parses");
        assert_eq!(parsed, first);
        let (held, cosignature) =
            add_checkpoint(&parsed, Some(&keys), None, &witness, 1_800_000_000).expect("cosigned");
        assert_eq!(
            held,
            Witnessed {
                size: 10,
                root: root(10)
            }
        );
        let mut note = first.note.clone();
        note.signatures.push(cosignature);
        let verified = note
            .verify(&[witness.verifier().clone()])
            .expect("a cosignature");
        assert_eq!(verified.by[0].1, Some(1_800_000_000));
        // On: a proof from 10 to 30.
        let proof = consistency_proof(&log, 10, 30).expect("proof");
        let next = request(10, 30, proof.clone());
        let (held, _) =
            add_checkpoint(&next, Some(&keys), Some(held), &witness, 1).expect("cosigned");
        assert_eq!(held.size, 30);
        // A stale old size: 409 with what is held.
        assert_eq!(
            add_checkpoint(&next, Some(&keys), Some(held), &witness, 1),
            Err(Refusal::Conflict(30))
        );
        // A fork: same size, another root.
        let fork = AddCheckpoint {
            old: 30,
            proof: Vec::new(),
            note: signed(&log_key, 30, hash_leaf(b"fork")),
        };
        assert!(matches!(
            add_checkpoint(&fork, Some(&keys), Some(held), &witness, 1),
            Err(Refusal::Inconsistent(_))
        ));
        // A bad proof, an unknown log, a bad signature, old past new.
        let bent = request(30, 40, vec![hash_leaf(b"x")]);
        assert!(matches!(
            add_checkpoint(&bent, Some(&keys), Some(held), &witness, 1),
            Err(Refusal::Inconsistent(_))
        ));
        assert!(matches!(
            add_checkpoint(&bent, None, Some(held), &witness, 1),
            Err(Refusal::UnknownLog(_))
        ));
        let impostor = Signer::from_seed("example.com/log", ED25519, [9; 32]).expect("key");
        let forged = AddCheckpoint {
            old: 30,
            proof: consistency_proof(&log, 30, 40).expect("proof"),
            note: signed(&impostor, 40, root(40)),
        };
        assert!(matches!(
            add_checkpoint(&forged, Some(&keys), Some(held), &witness, 1),
            Err(Refusal::Unsigned(_))
        ));
        assert!(matches!(
            add_checkpoint(
                &request(35, 30, Vec::new()),
                Some(&keys),
                Some(held),
                &witness,
                1
            ),
            Err(Refusal::Malformed(_))
        ));
        for body in [
            "old 01\n\nx",
            "new 1\n\nx",
            "old 1\n!!\n\nx",
            "old 1\nAAAA\n\nx",
        ] {
            assert!(AddCheckpoint::parse(body.as_bytes()).is_err(), "{body}");
        }
        let many = format!(
            "old 1\n{}\n{}",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n".repeat(64),
            first.note
        );
        assert!(AddCheckpoint::parse(many.as_bytes()).is_err());
    }

    #[test]
    fn policies_count_cosignatures_in_groups() {
        let log_key = Signer::from_seed("example.com/log", ED25519, [1; 32]).expect("key");
        let witnesses: Vec<Signer> = (0..3u8)
            .map(|i| {
                Signer::from_seed(&format!("example.com/w{i}"), COSIGNATURE, [10 + i; 32])
                    .expect("key")
            })
            .collect();
        let text = format!(
            "# three witnesses, two of them\nlog {} https://log.example\n{}\ngroup some 2 w0 w1 w2\nquorum some\n",
            log_key.verifier(),
            witnesses
                .iter()
                .enumerate()
                .map(|(i, w)| format!("witness w{i} {}", w.verifier()))
                .collect::<Vec<_>>()
                .join("\n")
        );
        let policy = Policy::parse(&text).expect("policy");
        assert!(policy.needs_witnesses());
        let mut note = signed(&log_key, 5, hash_leaf(b"r"));
        assert!(matches!(policy.check(&note), Err(PolicyError::Quorum(_))));
        note.signatures.push(witnesses[0].cosign(&note.text, 7));
        assert!(matches!(policy.check(&note), Err(PolicyError::Quorum(_))));
        note.signatures.push(witnesses[2].cosign(&note.text, 7));
        let (checkpoint, by) = policy.check(&note).expect("quorum");
        assert_eq!(checkpoint.size, 5);
        assert_eq!(by, vec!["w0".to_owned(), "w2".to_owned()]);
        // Another log's checkpoint is refused whatever its cosignatures.
        let other = Signer::from_seed("example.com/log", ED25519, [3; 32]).expect("key");
        let mut forged = signed(&other, 5, hash_leaf(b"r"));
        forged
            .signatures
            .extend(note.signatures[1..].iter().cloned());
        assert!(matches!(policy.check(&forged), Err(PolicyError::Log(_))));
        // `quorum none` needs none; bad policies are refused.
        let none =
            Policy::parse(&format!("log {}\nquorum none\n", log_key.verifier())).expect("policy");
        none.check(&signed(&log_key, 1, hash_leaf(b"r")))
            .expect("no quorum needed");
        for bad in [
            "quorum w0\n",
            "log x\nquorum none\n",
            "group g 1 nobody\nquorum g\n",
            "quorum none\nquorum none\n",
            "",
        ] {
            assert!(Policy::parse(bad).is_err(), "{bad:?}");
        }
        let twice = format!(
            "witness a {}\nwitness b {}\nquorum a\n",
            witnesses[0].verifier(),
            witnesses[0].verifier()
        );
        assert!(Policy::parse(&twice).is_err());
    }
}
