//! Warg's "prefix encoding": the byte strings that are hashed and signed for
//! checkpoints, log leaves, map leaves and package ids.
//!
//! A value is a fixed ASCII tag followed by fields; integers are unsigned
//! LEB128 and strings are their LEB128 byte length followed by their UTF-8.

/// Builds a prefix-encoded byte string.
#[derive(Debug, Default)]
pub(crate) struct PrefixEncoder {
    bytes: Vec<u8>,
}

impl PrefixEncoder {
    pub(crate) fn new(tag: &str) -> Self {
        let mut encoder = Self::default();
        encoder.bytes.extend_from_slice(tag.as_bytes());
        encoder
    }

    pub(crate) fn unsigned(mut self, mut value: u64) -> Self {
        loop {
            let low = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                self.bytes.push(low);
                return self;
            }
            self.bytes.push(low | 0x80);
        }
    }

    pub(crate) fn str(self, value: &str) -> Self {
        let mut this = self.unsigned(value.len() as u64);
        this.bytes.extend_from_slice(value.as_bytes());
        this
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leb128_matches_known_values() {
        let cases: [(u64, &[u8]); 5] = [
            (0, &[0x00]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (624_485, &[0xe5, 0x8e, 0x26]),
            (
                u64::MAX,
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            ),
        ];
        for (value, expected) in cases {
            assert_eq!(PrefixEncoder::new("").unsigned(value).finish(), expected);
        }
    }

    #[test]
    fn strings_carry_their_length() {
        let bytes = PrefixEncoder::new("T").str("ab").finish();
        assert_eq!(bytes, b"T\x02ab");
    }
}
