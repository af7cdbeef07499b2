//! The content door: the one way bytes become release content. Whatever
//! face they came from (a Warg upload, an OCI blob being released), they
//! stream through an [`Admission`], which enforces the size limit, hashes
//! them and validates them as WebAssembly as they pass, and commits them to
//! the [`ContentStore`] only if all three hold. Nothing is read back: a
//! 100 MiB upload never sits in memory.

use std::io::Read;

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
    pending: Box<dyn PendingContent>,
}

/// Bytes read from a source per write into an admission.
const COPY_CHUNK: usize = 256 * 1024;

impl Admission {
    /// Starts admitting content that must hash to `expected` and be at most
    /// `limit` bytes.
    pub(crate) fn begin(
        store: &dyn ContentStore,
        expected: Hash,
        limit: u64,
    ) -> Result<Admission, ContentError> {
        Ok(Admission {
            expected,
            limit,
            written: 0,
            hasher: Sha256::new(),
            wasm: WasmStream::new(),
            invalid: None,
            pending: store.begin()?,
        })
    }

    /// Appends bytes; refuses as soon as the limit is passed. Bytes that
    /// cannot be valid Wasm are refused by [`Admission::finish`], once
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
            return Ok(());
        }
        self.pending.write(bytes)?;
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
    pub(crate) fn finish(self) -> Result<Hash, ContentError> {
        let found = Hash::from_bytes(self.hasher.finalize().into());
        if found != self.expected {
            return Err(ContentError::DigestMismatch {
                expected: self.expected,
                found,
            });
        }
        if let Some(e) = self.invalid {
            return Err(e.into());
        }
        self.wasm.finish()?;
        self.pending.commit(&self.expected)?;
        Ok(self.expected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryContent;

    #[test]
    fn only_wasm_of_the_right_digest_within_the_limit_is_admitted() {
        let store = MemoryContent::default();
        let wasm = b"\0asm\x01\0\0\0";
        let admit = |bytes: &[u8], expected: Hash, limit: u64| {
            let mut admission = Admission::begin(&store, expected, limit)?;
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
}
