//! A cursor over the fuzzer's bytes that structure-aware targets draw their
//! choices from (which key signs, which entry comes next, ...).
//!
//! It plays the part of `arbitrary::Unstructured`, kept to a few lines of
//! std so that `crates/interop/tests/fuzz_regressions.rs` replays every
//! input through exactly the same decisions on the stable toolchain
//! without depending on anything the workspace does not already have.
//! Reading past the end gives zeros, so every byte string is an input.

/// The bytes not yet drawn.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// A cursor at the start of `data`.
    pub fn new(data: &'a [u8]) -> Input<'a> {
        Input { data }
    }

    /// Whether every byte has been drawn.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte (0 past the end).
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// The next byte as a signed number.
    pub fn i8(&mut self) -> i8 {
        self.u8() as i8
    }

    /// The next two bytes, little-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// The next eight bytes, little-endian.
    pub fn u64(&mut self) -> u64 {
        let mut bytes = [0u8; 8];
        for b in &mut bytes {
            *b = self.u8();
        }
        u64::from_le_bytes(bytes)
    }

    /// A number below `n` (`n` > 0), from one byte.
    pub fn below(&mut self, n: usize) -> usize {
        usize::from(self.u8()) % n
    }

    /// True with probability about `percent`/100 (from one byte).
    pub fn chance(&mut self, percent: u8) -> bool {
        u32::from(self.u8()) * 100 < u32::from(percent) * 256
    }

    /// One element of `items` (not empty).
    pub fn pick<'t, T>(&mut self, items: &'t [T]) -> &'t T {
        &items[self.below(items.len())]
    }

    /// Up to `n` bytes.
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    /// Every byte not drawn yet.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
}
