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

use cairn_protocol::Hash;
use cairn_transparency::map::Map;

const MAGIC: &[u8] = b"CAIRN-SNAPSHOT";
const VERSION: u16 = 1;
const HASH: usize = 32;

/// The snapshot's bytes: `map` (what [`Map::snapshot`] wrote) with the
/// log's `chunk_roots` before it. Takes the map's bytes to move them, not
/// copy them.
pub(crate) fn encode(map: Vec<u8>, chunk_roots: &[Hash]) -> Vec<u8> {
    let mut header = Vec::with_capacity(MAGIC.len() + 2 + 8 + chunk_roots.len() * HASH);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&VERSION.to_le_bytes());
    header.extend_from_slice(&(chunk_roots.len() as u64).to_le_bytes());
    for root in chunk_roots {
        header.extend_from_slice(root.as_bytes());
    }
    let mut bytes = map;
    bytes.splice(0..0, header);
    bytes
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

/// Reads a snapshot [`encode`] wrote, or an older map-only one.
pub(crate) fn decode(bytes: &[u8]) -> Result<Decoded, String> {
    let Some(rest) = bytes.strip_prefix(MAGIC) else {
        let map = Map::from_snapshot(bytes).map_err(|e| e.to_string())?;
        return Ok(Decoded {
            map,
            chunk_roots: None,
        });
    };
    let (version, rest) = split::<2>(rest)?;
    let version = u16::from_le_bytes(version);
    if version != VERSION {
        return Err(format!("snapshot version {version} is not known"));
    }
    let (count, rest) = split::<8>(rest)?;
    let count = u64::from_le_bytes(count);
    let size = usize::try_from(count)
        .ok()
        .and_then(|c| c.checked_mul(HASH))
        .filter(|size| *size <= rest.len())
        .ok_or_else(|| format!("snapshot cut short: {count} chunk hashes announced"))?;
    let (roots, map) = rest.split_at(size);
    let chunk_roots = roots
        .chunks_exact(HASH)
        .map(|h| Hash::try_from(h).map_err(|_| "a chunk hash is not 32 bytes".to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Decoded {
        map: Map::from_snapshot(map).map_err(|e| e.to_string())?,
        chunk_roots: Some(chunk_roots),
    })
}

fn split<const N: usize>(bytes: &[u8]) -> Result<([u8; N], &[u8]), String> {
    let (head, rest) = bytes
        .split_first_chunk::<N>()
        .ok_or_else(|| "snapshot cut short".to_string())?;
    Ok((*head, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> Map {
        Map::new().apply((0u8..5).map(|i| (Hash::of([i]), Hash::of([i, i]))))
    }

    #[test]
    fn snapshots_round_trip_and_old_ones_still_read() {
        let roots: Vec<Hash> = (0u8..3).map(|i| Hash::of([i])).collect();
        let bytes = encode(map().snapshot(), &roots);
        let decoded = decode(&bytes).expect("decodes");
        assert_eq!(decoded.map.root(), map().root());
        assert_eq!(decoded.chunk_roots, Some(roots));

        let empty = decode(&encode(Map::new().snapshot(), &[])).expect("decodes");
        assert_eq!(empty.map.root(), Map::new().root());
        assert_eq!(empty.chunk_roots, Some(Vec::new()));

        let old = decode(&map().snapshot()).expect("a map-only snapshot");
        assert_eq!(old.map.root(), map().root());
        assert_eq!(old.chunk_roots, None);
    }

    #[test]
    fn damaged_snapshots_are_refused() {
        let bytes = encode(map().snapshot(), &[Hash::of(b"a"), Hash::of(b"b")]);
        for cut in [
            3,
            MAGIC.len() + 1,
            MAGIC.len() + 9,
            MAGIC.len() + 10 + 40,
            bytes.len() - 1,
        ] {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut future = bytes.clone();
        future[MAGIC.len()] = 9;
        assert!(decode(&future).unwrap_err().contains("version 9"));
        let mut huge = bytes;
        huge[MAGIC.len() + 2..MAGIC.len() + 10].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode(&huge).is_err());
        assert!(decode(b"neither").is_err());
    }
}
