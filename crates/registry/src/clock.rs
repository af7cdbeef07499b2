//! The one source of time. The engine and the faces read time only through
//! a [`Clock`] handed to them in [`crate::Config`]; tests move a
//! [`ManualClock`] instead of sleeping.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cairn_protocol::Timestamp;

/// Wall-clock time, as the engine sees it.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;

    /// The current time in whole seconds since the Unix epoch (0 before it).
    fn now_seconds(&self) -> u64 {
        self.now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    /// The current time as a record timestamp.
    fn timestamp(&self) -> Timestamp {
        Timestamp::from_system_time(self.now())
    }
}

/// The system's clock: the only place in the engine that reads it.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)]
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that moves only when told to (for tests).
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<SystemTime>,
}

impl ManualClock {
    /// A clock standing at `seconds` after the Unix epoch.
    pub fn at(seconds: u64) -> ManualClock {
        ManualClock {
            now: Mutex::new(UNIX_EPOCH + Duration::from_secs(seconds)),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}
