//! The engine's settings.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};

/// Tuning knobs and the clock. The defaults suit a small registry on one
/// machine.
#[derive(Clone, Debug)]
pub struct Config {
    /// The one source of time for the engine and the faces.
    pub clock: Arc<dyn Clock>,
    /// Largest release content accepted, in bytes.
    pub max_content_bytes: u64,
    /// A checkpoint is made once no record arrived for this long...
    pub checkpoint_quiet: Duration,
    /// ...or once this many records wait for one...
    pub checkpoint_every: usize,
    /// ...or once the oldest waiting record is this old.
    pub checkpoint_max_delay: Duration,
    /// A record whose content is not uploaded within this time is rejected.
    pub content_timeout: Duration,
    /// How many recent checkpoints keep their map for inclusion proofs...
    pub recent_checkpoints: usize,
    /// ...as long as the map nodes the older ones keep alive (the nodes
    /// each newer map replaced, about 100 bytes each) stay within this
    /// many; the latest two are always kept. Under a heavy load, where
    /// each checkpoint changes thousands of logs, this bounds the memory of
    /// old maps instead of the count.
    pub recent_map_nodes: usize,
    /// Most commands the sequencer takes into one batch (one transaction).
    pub batch_max: usize,
    /// Most records per log in one `fetch/logs` answer.
    pub fetch_limit_max: usize,
    /// Most records in one `fetch/logs` answer, all logs together (beyond
    /// it the answer says `more`).
    pub fetch_records_max: usize,
    /// Most items one read request may name: logs to fetch, leaves to
    /// prove, log ids to name. Bounds the work and the answer a request
    /// can cause.
    pub max_request_items: usize,
    /// A snapshot of the map is saved (in the background) whenever the log
    /// grew by this many records since the last one, and at shutdown, so a
    /// restart does not rehash the whole map.
    pub snapshot_every: u64,
    /// Entries per generation of the engine's caches (package states,
    /// record statuses, keys); each cache holds at most twice this many.
    pub cache_generation: usize,
    /// Most bytes all uploads at once may hold while validating Wasm (a
    /// section is validated whole, so a large one is buffered); past it, an
    /// upload holding more than 1 MiB is refused, to be retried.
    pub validation_memory: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            clock: Arc::new(SystemClock),
            max_content_bytes: 100 * 1024 * 1024,
            checkpoint_quiet: Duration::from_millis(10),
            checkpoint_every: 1000,
            checkpoint_max_delay: Duration::from_millis(200),
            content_timeout: Duration::from_secs(600),
            recent_checkpoints: 256,
            recent_map_nodes: 1 << 19,
            batch_max: 2048,
            fetch_limit_max: 1000,
            fetch_records_max: 10_000,
            max_request_items: 10_000,
            snapshot_every: 100_000,
            cache_generation: 1 << 15,
            validation_memory: 256 << 20,
        }
    }
}
