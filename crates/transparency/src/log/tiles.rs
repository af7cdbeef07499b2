//! The registry log as C2SP tiles (`c2sp.org/tlog-tiles`): the same tree,
//! hashed as RFC 6962 does, served as immutable files of up to 256 hashes.
//!
//! A tile at level `l` and index `n` holds, for `i` in `0..256`, the hash
//! of the subtree over leaves `(256n + i)·256^l` to `(256n + i + 1)·256^l`;
//! at level 0 those are the leaf hashes themselves. A tile of fewer hashes
//! (`.p/<W>`) is the partial tile of a tree whose size ends inside it.
//! Entry bundles (`tile/entries/<n>`) hold the leaves' bytes, each
//! prefixed by its length as a big-endian `u16`.
//!
//! [`TiledLog`] keeps every node of height 8 and above, which are the
//! hashes of every tile of level 1 and above; level 0 tiles and entry
//! bundles need a chunk's leaves, from the store.

use thiserror::Error;

use super::tiled::{TiledLog, CHUNK_HEIGHT, CHUNK_LEAVES};
use super::{LogData, Node};
use crate::hash::Hash;

/// Hashes in a full tile.
pub const TILE_WIDTH: u16 = 256;

/// The highest tile level a path may name.
pub const MAX_LEVEL: u8 = 63;

/// What a tile holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TileKind {
    /// Hashes at this level.
    Hashes(u8),
    /// The leaves' bytes (entry bundle), alongside level 0.
    Entries,
}

/// A tile: its kind, index and width (256 for a full tile).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tile {
    /// Level of hashes, or entries.
    pub kind: TileKind,
    /// Index within its level.
    pub index: u64,
    /// Number of hashes or entries (1 to 256).
    pub width: u16,
}

/// Why a tile path was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TileError {
    /// Not a tile path.
    #[error("not a tile path: {0}")]
    Path(&'static str),
}

impl Tile {
    /// Parses a path below the log's prefix: `tile/<L>/<N>[.p/<W>]` or
    /// `tile/entries/<N>[.p/<W>]`, with `<N>` in 3-digit elements, all but
    /// the last prefixed by `x`.
    pub fn parse(path: &str) -> Result<Tile, TileError> {
        let rest = path
            .strip_prefix("tile/")
            .ok_or(TileError::Path("it starts with tile/"))?;
        let (kind, rest) = rest
            .split_once('/')
            .ok_or(TileError::Path("a level, then an index"))?;
        let kind = match kind {
            "entries" => TileKind::Entries,
            level => {
                let ok = level == "0" || !level.starts_with('0');
                let level = level
                    .parse::<u8>()
                    .ok()
                    .filter(|l| ok && *l <= MAX_LEVEL && level.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or(TileError::Path("the level is a number from 0 to 63"))?;
                TileKind::Hashes(level)
            }
        };
        let (index, width) = match rest.split_once(".p/") {
            Some((index, width)) => {
                let ok = !width.starts_with('0') && width.bytes().all(|b| b.is_ascii_digit());
                let width = width
                    .parse::<u16>()
                    .ok()
                    .filter(|w| ok && (1..TILE_WIDTH).contains(w))
                    .ok_or(TileError::Path("a partial width is a number from 1 to 255"))?;
                (index, width)
            }
            None => (rest, TILE_WIDTH),
        };
        Ok(Tile {
            kind,
            index: parse_index(index)?,
            width,
        })
    }

    /// The tile's path below the log's prefix.
    pub fn path(&self) -> String {
        let kind = match self.kind {
            TileKind::Hashes(level) => level.to_string(),
            TileKind::Entries => "entries".to_string(),
        };
        let mut path = format!("tile/{kind}/{}", format_index(self.index));
        if self.width < TILE_WIDTH {
            path.push_str(&format!(".p/{}", self.width));
        }
        path
    }

    /// Whether this is a full tile (256 wide).
    pub fn is_full(&self) -> bool {
        self.width == TILE_WIDTH
    }

    /// The level of its hashes (entries sit at level 0).
    pub fn level(&self) -> u8 {
        match self.kind {
            TileKind::Hashes(level) => level,
            TileKind::Entries => 0,
        }
    }

    /// The log size the tile needs: the leaves its hashes (or entries)
    /// cover, `None` past `u64`.
    pub fn needs_length(&self) -> Option<u64> {
        let span = 1u64.checked_shl(CHUNK_HEIGHT * u32::from(self.level()))?;
        self.index
            .checked_mul(u64::from(TILE_WIDTH))?
            .checked_add(u64::from(self.width))?
            .checked_mul(span)
    }

    /// The level-0 tile of leaf `index`'s chunk, as wide as a log of
    /// `length` leaves has it.
    pub fn of_leaf(index: u64, length: u64) -> Tile {
        let chunk = index / CHUNK_LEAVES;
        Tile {
            kind: TileKind::Hashes(0),
            index: chunk,
            width: width_at(chunk, 0, length),
        }
    }
}

/// The width of tile `index` at `level` in a log of `length` leaves (0
/// when it has none yet; at most 256).
pub fn width_at(index: u64, level: u8, length: u64) -> u16 {
    let span = CHUNK_HEIGHT * u32::from(level);
    let covered = length.checked_shr(span).unwrap_or(0);
    let start = index.saturating_mul(u64::from(TILE_WIDTH));
    covered.saturating_sub(start).min(u64::from(TILE_WIDTH)) as u16
}

/// `1234067` as `x001/x234/067`.
pub fn format_index(index: u64) -> String {
    let mut groups = Vec::new();
    let mut n = index;
    loop {
        groups.push(n % 1000);
        n /= 1000;
        if n == 0 {
            break;
        }
    }
    let last = groups.len() - 1;
    groups
        .iter()
        .rev()
        .enumerate()
        .map(|(i, g)| {
            if i == last {
                format!("{g:03}")
            } else {
                format!("x{g:03}")
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn parse_index(text: &str) -> Result<u64, TileError> {
    let groups: Vec<&str> = text.split('/').collect();
    let mut index: u64 = 0;
    for (i, group) in groups.iter().enumerate() {
        let digits = if i + 1 == groups.len() {
            *group
        } else {
            group
                .strip_prefix('x')
                .ok_or(TileError::Path("index elements but the last start with x"))?
        };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(TileError::Path("index elements are three digits"));
        }
        let value: u64 = digits
            .parse()
            .map_err(|_| TileError::Path("index elements are three digits"))?;
        index = index
            .checked_mul(1000)
            .and_then(|n| n.checked_add(value))
            .ok_or(TileError::Path("the index is too large"))?;
    }
    // A leading `x000` would give a second path for the same tile.
    if groups.len() > 1 && groups[0] == "x000" {
        return Err(TileError::Path("the index has a leading zero element"));
    }
    Ok(index)
}

impl TiledLog {
    /// The hashes of a tile of level 1 or above, from memory; `None` for
    /// level 0 (its hashes are leaves: see [`TiledLog::tile_leaves`]) or
    /// when the log is too short for it.
    pub fn tile_hashes(&self, tile: &Tile) -> Option<Vec<Hash>> {
        let TileKind::Hashes(level) = tile.kind else {
            return None;
        };
        if level == 0 || tile.needs_length()? > self.len() {
            return None;
        }
        // Level l's hashes are nodes of height 8l: leaves 256^l wide.
        let height = CHUNK_HEIGHT * u32::from(level);
        let first = tile.index.checked_mul(u64::from(TILE_WIDTH))?;
        (first..first + u64::from(tile.width))
            .map(|k| {
                let index = k
                    .checked_shl(height + 1)?
                    .checked_add((1u64 << height) - 1)?;
                self.hash_for(Node(index))
            })
            .collect()
    }

    /// The leaves a level-0 tile or entry bundle covers: `(first, count)`,
    /// if the log has them.
    pub fn tile_leaves(&self, tile: &Tile) -> Option<(u64, u64)> {
        if tile.level() != 0 || tile.needs_length()? > self.len() {
            return None;
        }
        Some((tile.index * CHUNK_LEAVES, u64::from(tile.width)))
    }
}

/// A tile's bytes: its hashes, one after the other.
pub fn tile_bytes(hashes: &[Hash]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hashes.len() * 32);
    for hash in hashes {
        out.extend_from_slice(hash.as_bytes());
    }
    out
}

/// An entry bundle's bytes: each entry prefixed by its length (`u16`,
/// big-endian); `None` if an entry is longer than 65,535 bytes.
pub fn bundle_bytes<'a>(entries: impl IntoIterator<Item = &'a [u8]>) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for entry in entries {
        out.extend_from_slice(&u16::try_from(entry.len()).ok()?.to_be_bytes());
        out.extend_from_slice(entry);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::{hash_branch, hash_leaf};
    use crate::log::fold_broots;

    #[test]
    fn paths_follow_the_specification() {
        assert_eq!(format_index(1234067), "x001/x234/067");
        assert_eq!(format_index(0), "000");
        assert_eq!(format_index(1000), "x001/000");
        for (path, tile) in [
            (
                "tile/0/x001/x234/067",
                Tile {
                    kind: TileKind::Hashes(0),
                    index: 1234067,
                    width: 256,
                },
            ),
            (
                "tile/3/005.p/17",
                Tile {
                    kind: TileKind::Hashes(3),
                    index: 5,
                    width: 17,
                },
            ),
            (
                "tile/entries/x001/000.p/255",
                Tile {
                    kind: TileKind::Entries,
                    index: 1000,
                    width: 255,
                },
            ),
        ] {
            assert_eq!(Tile::parse(path), Ok(tile), "{path}");
            assert_eq!(tile.path(), path);
        }
        for bad in [
            "tile/0/1",
            "tile/00/000",
            "tile/64/000",
            "tile/0/001/002",
            "tile/0/x000/001",
            "tile/0/000.p/0",
            "tile/0/000.p/256",
            "tile/0/000.p/017",
            "tile/0/000.p/",
            "tile/x/000",
            "tiles/0/000",
            "tile/0/-01",
        ] {
            assert!(Tile::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn widths_follow_the_specification_example() {
        // A tree of 70,000: 273 full level-0 tiles and one of 112, one full
        // level-1 tile and one of 17, one level-2 tile of 1.
        let length = 70_000;
        assert_eq!(width_at(272, 0, length), 256);
        assert_eq!(width_at(273, 0, length), 112);
        assert_eq!(width_at(274, 0, length), 0);
        assert_eq!(width_at(0, 1, length), 256);
        assert_eq!(width_at(1, 1, length), 17);
        assert_eq!(width_at(0, 2, length), 1);
        assert_eq!(width_at(0, 3, length), 0);
    }

    /// A client's view: the root of a log of `length` leaves from its
    /// tiles alone. Each balanced subtree of the root is `2^j` leaves; the
    /// tiles of level `j / 8` hold its pieces, which fold into it.
    fn root_from_tiles(log: &TiledLog, leaves: &[Hash], length: u64) -> Hash {
        let subtree = |node: Node| {
            let height = node.height();
            let level = (height / 8) as u8;
            let span = 8 * u32::from(level);
            let first = (node.leftmost_leaf().index() / 2) >> span;
            let mut hashes: Vec<Hash> = (0..1u64 << (height - span))
                .map(|t| {
                    let at = first + t;
                    let tile = Tile {
                        kind: TileKind::Hashes(level),
                        index: at / 256,
                        width: width_at(at / 256, level, length),
                    };
                    let hashes = if level == 0 {
                        let (start, count) = log.tile_leaves(&tile).expect("level 0");
                        leaves[start as usize..(start + count) as usize].to_vec()
                    } else {
                        log.tile_hashes(&tile).expect("in memory")
                    };
                    hashes[(at % 256) as usize]
                })
                .collect();
            while hashes.len() > 1 {
                hashes = hashes
                    .chunks(2)
                    .map(|pair| hash_branch(&pair[0], &pair[1]))
                    .collect();
            }
            hashes[0]
        };
        fold_broots(Node::broots(length).into_iter().map(subtree))
    }

    #[test]
    fn tiles_give_the_logs_root_at_every_size_around_their_edges() {
        let mut log = TiledLog::new();
        let mut leaves = Vec::new();
        let mut next = 0u64;
        for length in [
            1u64, 255, 256, 257, 511, 512, 65_535, 65_536, 65_537, 70_000,
        ] {
            while next < length {
                let leaf = hash_leaf(&next.to_le_bytes());
                log.push(leaf);
                leaves.push(leaf);
                next += 1;
            }
            assert_eq!(
                root_from_tiles(&log, &leaves, length),
                log.root(),
                "length {length}"
            );
        }
        // Past the log: no tile.
        let beyond = Tile {
            kind: TileKind::Hashes(1),
            index: 2,
            width: 1,
        };
        assert_eq!(log.tile_hashes(&beyond), None);
        assert_eq!(
            log.tile_leaves(&Tile {
                kind: TileKind::Entries,
                index: 274,
                width: 1
            }),
            None
        );
    }

    #[test]
    fn bundles_prefix_each_entry_with_its_length() {
        assert_eq!(
            bundle_bytes([&b"ab"[..], &b""[..]]),
            Some(vec![0, 2, b'a', b'b', 0, 0])
        );
        assert_eq!(bundle_bytes([&vec![0u8; 70_000][..]]), None);
    }
}
