//! In-order numbering of the nodes of a Merkle log.
//!
//! Leaf `i` is node `2i`; a node of height `h` has exactly `h` trailing one
//! bits. Node `2^h - 1` is the root of the first `2^h` leaves:
//!
//! ```text
//! 0   1   2   3   4   5   6    <- node index
//! L       L       L       L    <- leaves 0..4
//!   \   /   \   /   \   /
//!     1       \       5
//!       \_____ 3 _____/
//! ```

/// The longest log whose nodes all have an index (2^62 leaves).
pub const MAX_LOG_LENGTH: u64 = 1 << 62;

/// A node of the log, by in-order index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Node(pub u64);

impl Node {
    /// The node of leaf number `i`.
    pub const fn leaf(i: u64) -> Node {
        Node(2 * i)
    }

    /// The in-order index.
    pub const fn index(self) -> u64 {
        self.0
    }

    /// Height above the leaves (leaves are 0).
    pub const fn height(self) -> u32 {
        self.0.trailing_ones()
    }

    /// True for leaves.
    pub const fn is_leaf(self) -> bool {
        self.0 & 1 == 0
    }

    /// True when this node is the left child of its parent.
    pub const fn is_left(self) -> bool {
        (self.0 >> (self.height() + 1)) & 1 == 0
    }

    /// The other child of this node's parent.
    pub const fn sibling(self) -> Node {
        let step = 1u64 << (self.height() + 1);
        if self.is_left() {
            Node(self.0 + step)
        } else {
            Node(self.0 - step)
        }
    }

    /// This node's parent.
    pub const fn parent(self) -> Node {
        let step = 1u64 << self.height();
        if self.is_left() {
            Node(self.0 + step)
        } else {
            Node(self.0 - step)
        }
    }

    /// The left and right children (a leaf has none).
    pub const fn children(self) -> Option<(Node, Node)> {
        let h = self.height();
        if h == 0 {
            return None;
        }
        let step = 1u64 << (h - 1);
        Some((Node(self.0 - step), Node(self.0 + step)))
    }

    /// `2^height - 1`: the distance from this node to its outermost leaves.
    const fn reach(self) -> u64 {
        match self.height() {
            0 => 0,
            h => u64::MAX >> (64 - h),
        }
    }

    /// The last leaf below this node.
    pub const fn rightmost_leaf(self) -> Node {
        Node(self.0.saturating_add(self.reach()))
    }

    /// The first leaf below this node.
    pub const fn leftmost_leaf(self) -> Node {
        Node(self.0 - self.reach())
    }

    /// Whether the node is complete in a log of `length` leaves.
    pub const fn exists_at_length(self, length: u64) -> bool {
        self.height() < 63 && self.rightmost_leaf().0 / 2 < length
    }

    /// The roots of the balanced subtrees of a log of `length` leaves, left
    /// to right (one per one bit of `length`, largest first). Lengths are at
    /// most [`MAX_LOG_LENGTH`] (larger ones are cut to it).
    pub fn broots(length: u64) -> Vec<Node> {
        let length = length.min(MAX_LOG_LENGTH);
        let mut roots = Vec::with_capacity(length.count_ones() as usize);
        let mut start = 0u64;
        for height in (0..64).rev() {
            let size = 1u64 << height;
            if length & size != 0 {
                roots.push(Node(2 * start + size - 1));
                start += size;
            }
        }
        roots
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic() {
        assert_eq!(Node(0).parent(), Node(1));
        assert_eq!(Node(2).parent(), Node(1));
        assert_eq!(Node(1).parent(), Node(3));
        assert_eq!(Node(5).parent(), Node(3));
        assert_eq!(Node(3).sibling(), Node(11));
        assert_eq!(Node(11).sibling(), Node(3));
        assert_eq!(Node(3).children(), Some((Node(1), Node(5))));
        assert_eq!(Node(4).children(), None);
        assert_eq!(Node(7).leftmost_leaf(), Node(0));
        assert_eq!(Node(7).rightmost_leaf(), Node(14));
        assert!(Node(5).exists_at_length(4));
        assert!(!Node(5).exists_at_length(3));
    }

    #[test]
    fn broots() {
        let cases: &[(u64, &[u64])] = &[
            (0, &[]),
            (1, &[0]),
            (2, &[1]),
            (3, &[1, 4]),
            (5, &[3, 8]),
            (6, &[3, 9]),
            (7, &[3, 9, 12]),
            (8, &[7]),
        ];
        for (len, want) in cases {
            let got: Vec<u64> = Node::broots(*len).into_iter().map(Node::index).collect();
            assert_eq!(&got, want, "length {len}");
        }
    }
}
