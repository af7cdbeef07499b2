//! The content door: the one way bytes become release content. Whatever
//! face they came from (a Warg upload, an OCI blob being released), they
//! stream through an [`Admission`], which enforces the size limit, hashes
//! them and validates them as WebAssembly as they pass, and commits them to
//! the [`ContentStore`] only if all three hold. Nothing is read back: a
//! 100 MiB upload never sits in memory.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cairn_protocol::Hash;
use sha2::{Digest, Sha256};

use crate::error::ContentError;
use crate::storage::{ContentStore, PendingContent};
use crate::wasm::WasmStream;

/// Bytes on their way to becoming the release content `expected`. Feed it
/// with [`Admission::write`]; dropping it discards everything written.
pub struct Admission {
    expected: Hash,
    limit: u64,
    written: u64,
    hasher: Sha256,
    wasm: WasmStream,
    /// Why the bytes are not Wasm, once known: from then on they are only
    /// hashed (not stored), so that [`Admission::finish`] can tell bytes
    /// that are the expected content and invalid (the record that names
    /// them can never be completed) from mere wrong bytes.
    invalid: Option<crate::wasm::WasmError>,
    /// Where the bytes go (taken by [`Admission::finish`]).
    pending: Option<Box<dyn PendingContent>>,
    budget: Budget,
    /// What this admission holds of the budget.
    held: u64,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.budget.release(&mut self.held);
    }
}

/// Bytes read from a source per write into an admission.
const COPY_CHUNK: usize = 256 * 1024;

/// What an admission may buffer whatever the budget says.
const BUDGET_FLOOR: u64 = 1 << 20;

/// The memory all admissions at once may hold while validating: a
/// section is validated whole, so one admission may buffer a large one,
/// and many at once would otherwise cost their sum.
#[derive(Clone, Debug)]
pub(crate) struct Budget {
    used: Arc<AtomicU64>,
    limit: u64,
}

impl Budget {
    pub(crate) fn new(limit: u64) -> Budget {
        Budget {
            used: Arc::new(AtomicU64::new(0)),
            limit,
        }
    }

    /// Moves an admission's holding from `held` to `now` bytes; refuses
    /// (holding nothing) when that passes the limit and `now` passes the
    /// floor.
    fn hold(&self, held: &mut u64, now: u64) -> Result<(), ContentError> {
        if now <= *held {
            self.used.fetch_sub(*held - now, Ordering::Relaxed);
            *held = now;
            return Ok(());
        }
        let total = self.used.fetch_add(now - *held, Ordering::Relaxed) + (now - *held);
        *held = now;
        if total > self.limit && now > BUDGET_FLOOR {
            self.release(held);
            return Err(ContentError::Busy { budget: self.limit });
        }
        Ok(())
    }

    fn release(&self, held: &mut u64) {
        self.used.fetch_sub(*held, Ordering::Relaxed);
        *held = 0;
    }

    /// Holds `bytes` of the budget until the answer is dropped (the
    /// release bytes the publish policy reads); refuses as an admission
    /// does when that passes the limit.
    pub(crate) fn reserve(&self, bytes: u64) -> Result<Held, ContentError> {
        let mut held = 0;
        self.hold(&mut held, bytes)?;
        Ok(Held {
            budget: self.clone(),
            bytes: held,
        })
    }
}

/// Memory held of a [`Budget`], given back when dropped.
pub(crate) struct Held {
    budget: Budget,
    bytes: u64,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.budget.release(&mut self.bytes);
    }
}

impl Admission {
    /// Starts admitting content that must hash to `expected` and be at most
    /// `limit` bytes.
    pub(crate) fn begin(
        store: &dyn ContentStore,
        expected: Hash,
        limit: u64,
        budget: &Budget,
    ) -> Result<Admission, ContentError> {
        Ok(Admission {
            expected,
            limit,
            written: 0,
            hasher: Sha256::new(),
            wasm: WasmStream::new(),
            invalid: None,
            pending: Some(store.begin()?),
            budget: budget.clone(),
            held: 0,
        })
    }

    /// Appends bytes; refuses as soon as the limit is passed. Bytes that
    /// cannot be valid Wasm are refused when the admission finishes, once
    /// their digest is known.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), ContentError> {
        self.written = self.written.saturating_add(bytes.len() as u64);
        if self.written > self.limit {
            return Err(ContentError::TooLarge { limit: self.limit });
        }
        self.hasher.update(bytes);
        if self.invalid.is_some() {
            return Ok(());
        }
        if let Err(e) = self.wasm.feed(bytes) {
            self.invalid = Some(e);
            self.budget.release(&mut self.held);
            return Ok(());
        }
        self.budget
            .hold(&mut self.held, self.wasm.buffered() as u64)?;
        if let Some(pending) = &mut self.pending {
            pending.write(bytes)?;
        }
        Ok(())
    }

    /// The digest the bytes must have.
    pub(crate) fn expected(&self) -> Hash {
        self.expected
    }

    /// Streams everything `source` holds into the admission.
    pub(crate) fn copy_from(&mut self, source: &mut dyn Read) -> Result<(), ContentError> {
        let mut buffer = vec![0u8; COPY_CHUNK];
        loop {
            let n = source.read(&mut buffer).map_err(|e| {
                crate::StoreError::Backend(format!("cannot read content source: {e}"))
            })?;
            if n == 0 {
                return Ok(());
            }
            self.write(&buffer[..n])?;
        }
    }

    /// Checks the digest and that the Wasm is complete, then stores the
    /// bytes durably as release content. [`ContentError::NotWasm`] means
    /// the bytes are the expected content and are not valid Wasm.
    pub(crate) fn finish(mut self) -> Result<Hash, ContentError> {
        self.budget.release(&mut self.held);
        let found = Hash::from_bytes(self.hasher.clone().finalize().into());
        if found != self.expected {
            return Err(ContentError::DigestMismatch {
                expected: self.expected,
                found,
            });
        }
        if let Some(e) = self.invalid.take() {
            return Err(e.into());
        }
        std::mem::take(&mut self.wasm).finish()?;
        let pending = self
            .pending
            .take()
            .ok_or_else(|| crate::StoreError::Backend("content admitted twice".into()))?;
        pending.commit(&self.expected)?;
        Ok(self.expected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_share_the_budget_and_give_it_back() {
        let budget = Budget::new(10 << 20);
        let first = budget.reserve(6 << 20).expect("within the budget");
        assert!(matches!(
            budget.reserve(6 << 20),
            Err(ContentError::Busy { .. })
        ));
        // Small ones always pass (the floor).
        let _small = budget.reserve(1 << 20).expect("the floor");
        drop(first);
        budget.reserve(6 << 20).expect("given back when dropped");
    }
    use crate::memory::MemoryContent;

    #[test]
    fn only_wasm_of_the_right_digest_within_the_limit_is_admitted() {
        let store = MemoryContent::default();
        let wasm = b"\0asm\x01\0\0\0";
        let admit = |bytes: &[u8], expected: Hash, limit: u64| {
            let mut admission = Admission::begin(&store, expected, limit, &Budget::new(1 << 30))?;
            for piece in bytes.chunks(3) {
                admission.write(piece)?;
            }
            admission.finish()
        };
        assert!(matches!(
            admit(wasm, Hash::of(wasm), 7),
            Err(ContentError::TooLarge { limit: 7 })
        ));
        assert!(matches!(
            admit(wasm, Hash::of(b"other"), 8),
            Err(ContentError::DigestMismatch { .. })
        ));
        assert!(matches!(
            admit(b"not wasm at all", Hash::of(b"not wasm at all"), 100),
            Err(ContentError::NotWasm(_))
        ));
        assert_eq!(store.size(&Hash::of(b"not wasm at all")).ok(), Some(None));
        assert_eq!(admit(wasm, Hash::of(wasm), 8).ok(), Some(Hash::of(wasm)));
        assert_eq!(store.size(&Hash::of(wasm)).ok(), Some(Some(8)));
    }

    /// The start of a module whose one custom section has `len` bytes.
    fn big_section_start(len: usize) -> Vec<u8> {
        let mut bytes = b"\0asm\x01\0\0\0\0".to_vec();
        let mut size = len;
        loop {
            let byte = (size & 0x7f) as u8;
            size >>= 7;
            if size == 0 {
                bytes.push(byte);
                break;
            }
            bytes.push(byte | 0x80);
        }
        bytes.extend_from_slice(&[1, b'x']);
        bytes
    }

    #[test]
    fn uploads_at_once_share_one_memory_budget() {
        let store = MemoryContent::default();
        let budget = Budget::new(3 << 20);
        let section = 4 << 20;
        let start = big_section_start(section);
        let piece = vec![0u8; 256 * 1024];
        let feed = |admission: &mut Admission, bytes: usize| -> Result<(), ContentError> {
            admission.write(&start)?;
            for _ in 0..bytes / piece.len() {
                admission.write(&piece)?;
            }
            Ok(())
        };
        let mut first = Admission::begin(&store, Hash::of(b"a"), 1 << 30, &budget).expect("begin");
        feed(&mut first, 2 << 20).expect("within the budget");
        let mut second = Admission::begin(&store, Hash::of(b"b"), 1 << 30, &budget).expect("begin");
        let refused = feed(&mut second, 2 << 20).expect_err("past the budget");
        assert!(matches!(refused, ContentError::Busy { budget: b } if b == 3 << 20));
        // Small sections never wait on the budget.
        let mut small = Admission::begin(&store, Hash::of(b"c"), 1 << 30, &budget).expect("begin");
        small.write(b"\0asm\x01\0\0\0").expect("small");
        // Once the first is gone, its memory is free again.
        drop(first);
        drop(second);
        assert_eq!(budget.used.load(Ordering::Relaxed), 0);
        let mut third = Admission::begin(&store, Hash::of(b"d"), 1 << 30, &budget).expect("begin");
        feed(&mut third, 2 << 20).expect("room again");
    }
}
