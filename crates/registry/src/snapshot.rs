//! The snapshot the engine saves every `snapshot_every` records and at
//! shutdown ([`crate::MetaStore::save_map_snapshot`]; the bytes are opaque
//! to the store): the map and the log's chunk hashes at one checkpointed
//! length, so a start reads neither every leaf nor rehashes every log.
//!
//! Layout (version 1), integers little-endian:
//!
//! ```text
//! "CAIRN-SNAPSHOT"  version: u16 = 1
//! chunks: u64       chunk hashes: chunks × 32 bytes   (TiledLog::chunk_roots)
//! map: the rest     (Map::snapshot, which starts "CAIRN-MAP-1")
//! ```
//!
//! A snapshot written before chunk hashes were saved is the map's bytes
//! alone; it still reads, with no chunk hashes.

use std::io::{Read, Write};

use cairn_protocol::Hash;
use cairn_transparency::map::Map;

const MAGIC: &[u8] = b"CAIRN-SNAPSHOT";
/// How a map-only snapshot (an older engine's) starts.
const MAP_MAGIC: &[u8] = b"CAIRN-MAP-1";
const VERSION: u16 = 1;
const HASH: usize = 32;

/// Writes the snapshot of `map` with the log's `chunk_roots` to `out`, as
/// it goes (a buffered writer; nothing of the map's size is held).
pub(crate) fn encode(out: &mut dyn Write, map: &Map, chunk_roots: &[Hash]) -> std::io::Result<()> {
    out.write_all(MAGIC)?;
    out.write_all(&VERSION.to_le_bytes())?;
    out.write_all(&(chunk_roots.len() as u64).to_le_bytes())?;
    for root in chunk_roots {
        out.write_all(root.as_bytes())?;
    }
    map.write_snapshot(&mut &mut *out)
}

/// A snapshot read back.
#[derive(Debug)]
pub(crate) struct Decoded {
    /// The map.
    pub map: Map,
    /// The hashes of the log's complete chunks up to the snapshot's length;
    /// `None` for a snapshot of the map alone (an older engine's).
    pub chunk_roots: Option<Vec<Hash>>,
}

fn read_array<const N: usize>(input: &mut dyn Read) -> Result<[u8; N], String> {
    let mut out = [0u8; N];
    input.read_exact(&mut out).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            "snapshot cut short".to_string()
        } else {
            format!("snapshot could not be read: {e}")
        }
    })?;
    Ok(out)
}

/// Reads a snapshot [`encode`] wrote, or an older map-only one, from
/// `input` (a buffered reader) to its end.
pub(crate) fn decode(input: &mut dyn Read) -> Result<Decoded, String> {
    let head: [u8; 11] = read_array(input)?;
    if head == MAP_MAGIC {
        let mut whole = std::io::Cursor::new(head).chain(input);
        return Ok(Decoded {
            map: read_map(&mut whole)?,
            chunk_roots: None,
        });
    }
    let tail: [u8; 3] = read_array(input)?;
    if head[..] != MAGIC[..11] || tail[..] != MAGIC[11..] {
        return Err("not a snapshot".into());
    }
    let version = u16::from_le_bytes(read_array(input)?);
    if version != VERSION {
        return Err(format!("snapshot version {version} is not known"));
    }
    let count = u64::from_le_bytes(read_array(input)?);
    // Every hash is read before it is kept: a damaged count runs out of
    // bytes, never of memory.
    let mut chunk_roots = Vec::with_capacity(usize::try_from(count.min(1 << 20)).unwrap_or(0));
    for _ in 0..count {
        chunk_roots.push(Hash::from_bytes(read_array::<HASH>(input)?));
    }
    Ok(Decoded {
        map: read_map(input)?,
        chunk_roots: Some(chunk_roots),
    })
}

/// The map to the end of `input`, which must end there.
fn read_map(input: &mut dyn Read) -> Result<Map, String> {
    let map = Map::read_snapshot(&mut &mut *input).map_err(|e| e.to_string())?;
    let mut rest = [0u8; 1];
    match input.read(&mut rest) {
        Ok(0) => Ok(map),
        Ok(_) => Err("bytes after the snapshot's map".into()),
        Err(e) => Err(format!("snapshot could not be read: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> Map {
        Map::new().apply((0u8..5).map(|i| (Hash::of([i]), Hash::of([i, i]))))
    }

    fn encoded(map: &Map, roots: &[Hash]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(&mut out, map, roots).expect("encodes");
        out
    }

    fn decode_bytes(mut bytes: &[u8]) -> Result<Decoded, String> {
        decode(&mut bytes)
    }

    #[test]
    fn snapshots_round_trip_and_old_ones_still_read() {
        let roots: Vec<Hash> = (0u8..3).map(|i| Hash::of([i])).collect();
        let bytes = encoded(&map(), &roots);
        let decoded = decode_bytes(&bytes).expect("decodes");
        assert_eq!(decoded.map.root(), map().root());
        assert_eq!(decoded.chunk_roots, Some(roots));

        let empty = decode_bytes(&encoded(&Map::new(), &[])).expect("decodes");
        assert_eq!(empty.map.root(), Map::new().root());
        assert_eq!(empty.chunk_roots, Some(Vec::new()));

        let old = decode_bytes(&map().snapshot()).expect("a map-only snapshot");
        assert_eq!(old.map.root(), map().root());
        assert_eq!(old.chunk_roots, None);
    }

    #[test]
    fn damaged_snapshots_are_refused() {
        let bytes = encoded(&map(), &[Hash::of(b"a"), Hash::of(b"b")]);
        for cut in [
            3,
            MAGIC.len() + 1,
            MAGIC.len() + 9,
            MAGIC.len() + 10 + 40,
            bytes.len() - 1,
        ] {
            assert!(decode_bytes(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut future = bytes.clone();
        future[MAGIC.len()] = 9;
        assert!(decode_bytes(&future).unwrap_err().contains("version 9"));
        let mut huge = bytes;
        huge[MAGIC.len() + 2..MAGIC.len() + 10].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode_bytes(&huge).is_err());
        assert!(decode_bytes(b"neither").is_err());
        let mut longer = encoded(&map(), &[]);
        longer.push(0);
        assert!(decode_bytes(&longer).is_err());
    }
}
