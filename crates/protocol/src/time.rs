//! Record timestamps, with the normalisation protobuf's `Timestamp` defines.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const NANOS_PER_SECOND: i32 = 1_000_000_000;

/// A point in time as carried by a record: seconds and nanoseconds since the
/// Unix epoch, always normalised (`0 <= nanos < 1e9`), ordered chronologically.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    seconds: i64,
    nanos: i32,
}

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp {
        seconds: 0,
        nanos: 0,
    };

    /// Builds a timestamp, normalising out-of-range nanoseconds the way
    /// protobuf's `Timestamp` does (carrying into seconds, saturating at the
    /// ends of the range).
    pub fn new(seconds: i64, nanos: i32) -> Self {
        let mut seconds = seconds;
        let mut nanos = nanos;
        if nanos <= -NANOS_PER_SECOND || nanos >= NANOS_PER_SECOND {
            match seconds.checked_add(i64::from(nanos / NANOS_PER_SECOND)) {
                Some(carried) => {
                    seconds = carried;
                    nanos %= NANOS_PER_SECOND;
                }
                None if nanos < 0 => {
                    seconds = i64::MIN;
                    nanos = 0;
                }
                None => {
                    seconds = i64::MAX;
                    nanos = NANOS_PER_SECOND - 1;
                }
            }
        }
        if nanos < 0 {
            match seconds.checked_sub(1) {
                Some(borrowed) => {
                    seconds = borrowed;
                    nanos += NANOS_PER_SECOND;
                }
                None => nanos = 0,
            }
        }
        Timestamp { seconds, nanos }
    }

    /// Whole seconds since the epoch (negative before it).
    pub fn seconds(&self) -> i64 {
        self.seconds
    }

    /// Nanoseconds within the second, `0..1_000_000_000`.
    pub fn nanos(&self) -> i32 {
        self.nanos
    }

    /// Converts a system time. The caller supplies the clock; this crate never reads it.
    pub fn from_system_time(time: SystemTime) -> Self {
        match time.duration_since(UNIX_EPOCH) {
            Ok(after) => Self::new(after.as_secs() as i64, after.subsec_nanos() as i32),
            Err(before) => {
                let before = before.duration();
                Self::new(-(before.as_secs() as i64), -(before.subsec_nanos() as i32))
            }
        }
    }

    /// Converts to a system time, if representable.
    pub fn to_system_time(&self) -> Option<SystemTime> {
        let base = if self.seconds >= 0 {
            UNIX_EPOCH.checked_add(Duration::from_secs(self.seconds as u64))
        } else {
            UNIX_EPOCH.checked_sub(Duration::from_secs(self.seconds.unsigned_abs()))
        };
        base?.checked_add(Duration::from_nanos(self.nanos as u64))
    }
}

impl From<prost_types::Timestamp> for Timestamp {
    fn from(value: prost_types::Timestamp) -> Self {
        Timestamp::new(value.seconds, value.nanos)
    }
}

impl From<Timestamp> for prost_types::Timestamp {
    fn from(value: Timestamp) -> Self {
        prost_types::Timestamp {
            seconds: value.seconds,
            nanos: value.nanos,
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:09}", self.seconds, self.nanos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_like_protobuf() {
        assert_eq!(
            Timestamp::new(1, 1_500_000_000),
            Timestamp::new(2, 500_000_000)
        );
        assert_eq!(Timestamp::new(1, -1), Timestamp::new(0, 999_999_999));
        assert_eq!(Timestamp::new(i64::MAX, i32::MAX).seconds(), i64::MAX);
        assert_eq!(Timestamp::new(i64::MIN, -1), Timestamp::new(i64::MIN, 0));
    }

    #[test]
    fn round_trips_system_time() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 123);
        assert_eq!(Timestamp::from_system_time(t).to_system_time(), Some(t));
        let before = UNIX_EPOCH - Duration::new(5, 1);
        assert_eq!(
            Timestamp::from_system_time(before).to_system_time(),
            Some(before)
        );
    }
}
