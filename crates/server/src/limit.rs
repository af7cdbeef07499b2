//! Rate limits: a token bucket per client address and one per credential.
//!
//! Every request spends from its address's bucket; a request that carries
//! a credential (`Authorization`) also spends from that credential's
//! bucket, keyed by a hash of the header so no secret is kept. An empty
//! bucket answers 429 with `Retry-After`. The buckets live in a map with a
//! fixed capacity: when it is full, buckets that have refilled (clients
//! that went quiet) are dropped; if none has, the new client is let
//! through untracked rather than growing the map.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::Mutex;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

use crate::AppState;

/// A sustained rate and a burst.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    /// Requests per second, sustained. `0` turns the limit off.
    pub per_second: f64,
    /// Requests allowed at once after a quiet period.
    pub burst: f64,
}

impl Rate {
    /// No limit.
    pub const OFF: Rate = Rate {
        per_second: 0.0,
        burst: 0.0,
    };

    /// `per_second` sustained with a burst of twice that; [`Rate::OFF`]
    /// when `per_second` is not a positive number.
    pub fn per_second(per_second: f64) -> Rate {
        if !(per_second.is_finite() && per_second > 0.0) {
            return Rate::OFF;
        }
        Rate {
            per_second,
            burst: (per_second * 2.0).max(1.0),
        }
    }

    fn is_off(&self) -> bool {
        self.per_second <= 0.0
    }
}

/// Rate limits (see the module docs).
#[derive(Clone, Debug)]
pub struct RateLimits {
    /// Per client IP address, for every request.
    pub per_ip: Rate,
    /// Per credential, for requests that carry one.
    pub per_token: Rate,
    /// Most clients tracked at once (each limit keeps its own map).
    pub max_tracked: usize,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            per_ip: Rate::per_second(2000.0),
            per_token: Rate::per_second(1000.0),
            max_tracked: 100_000,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Ip(IpAddr),
    Token(u64),
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets of one limit.
pub(crate) struct Limiter {
    rate: Rate,
    max_tracked: usize,
    buckets: Mutex<HashMap<Key, Bucket>>,
}

impl Limiter {
    fn new(rate: Rate, max_tracked: usize) -> Limiter {
        Limiter {
            rate,
            max_tracked: max_tracked.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Spends one request of `key`'s bucket at `now`; `Err(wait)` is how
    /// long until the next would be allowed.
    fn take(&self, key: Key, now: Instant) -> Result<(), std::time::Duration> {
        if self.rate.is_off() {
            return Ok(());
        }
        let rate = self.rate;
        let refill = |bucket: &mut Bucket| {
            let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
            bucket.tokens = (bucket.tokens + elapsed * rate.per_second).min(rate.burst);
            bucket.at = now;
        };
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if !buckets.contains_key(&key) && buckets.len() >= self.max_tracked {
            buckets.retain(|_, bucket| {
                refill(bucket);
                bucket.tokens < rate.burst
            });
            if buckets.len() >= self.max_tracked {
                return Ok(());
            }
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: rate.burst,
            at: now,
        });
        refill(bucket);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / rate.per_second;
            Err(std::time::Duration::from_secs_f64(wait))
        }
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.buckets.lock().map_or(0, |b| b.len())
    }
}

/// The limits a server applies.
pub(crate) struct Limiters {
    ip: Limiter,
    token: Limiter,
    hasher: std::collections::hash_map::RandomState,
}

impl Limiters {
    pub(crate) fn new(limits: &RateLimits) -> Limiters {
        Limiters {
            ip: Limiter::new(limits.per_ip, limits.max_tracked),
            token: Limiter::new(limits.per_token, limits.max_tracked),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    fn credential_key(&self, value: &HeaderValue) -> Key {
        let mut hasher = self.hasher.build_hasher();
        hasher.write(value.as_bytes());
        Key::Token(hasher.finish())
    }
}

/// Middleware: applies the rate limits before anything else runs.
pub(crate) async fn rate_limit(
    State(app): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if crate::forward::from_replica(&app, &request) {
        // The replica that forwarded it counted it already.
        return next.run(request).await;
    }
    let now = Instant::now();
    let limits = &app.limits;
    let ip = crate::forward::client_ip(&app, &request);
    let refused = ip
        .and_then(|ip| limits.ip.take(Key::Ip(ip), now).err().map(|w| ("ip", w)))
        .or_else(|| {
            let credential = request.headers().get(header::AUTHORIZATION)?;
            let key = limits.credential_key(credential);
            limits.token.take(key, now).err().map(|w| ("token", w))
        });
    match refused {
        None => next.run(request).await,
        Some((kind, wait)) => {
            app.metrics.limited(kind);
            too_many(request.uri().path(), kind, wait)
        }
    }
}

/// 429 with `Retry-After` (whole seconds, at least 1), in the error shape
/// of the face the path belongs to.
fn too_many(path: &str, kind: &str, wait: std::time::Duration) -> Response {
    let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
    let message = format!(
        "too many requests from this {}; retry in {seconds} s",
        if kind == "ip" { "address" } else { "token" }
    );
    let body = if path.starts_with("/v2") {
        serde_json::json!({ "errors": [{ "code": "TOOMANYREQUESTS", "message": message }] })
    } else {
        serde_json::json!({ "status": 429, "message": message })
    };
    let mut response = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let limiter = Limiter::new(
            Rate {
                per_second: 10.0,
                burst: 3.0,
            },
            100,
        );
        let t0 = Instant::now();
        let key = Key::Token(1);
        for _ in 0..3 {
            assert!(limiter.take(key, t0).is_ok());
        }
        let wait = limiter.take(key, t0).expect_err("over the burst");
        assert!(wait <= Duration::from_millis(100) && wait > Duration::ZERO);
        // A tenth of a second later, one more.
        assert!(limiter.take(key, t0 + Duration::from_millis(100)).is_ok());
        assert!(limiter.take(key, t0 + Duration::from_millis(100)).is_err());
        // Another client is not affected.
        assert!(limiter.take(Key::Token(2), t0).is_ok());
    }

    #[test]
    fn off_allows_everything() {
        let limiter = Limiter::new(Rate::OFF, 1);
        let t0 = Instant::now();
        for i in 0..1000 {
            assert!(limiter.take(Key::Token(i), t0).is_ok());
        }
        assert_eq!(limiter.tracked(), 0);
    }

    #[test]
    fn the_map_is_bounded() {
        let limiter = Limiter::new(Rate::per_second(1.0), 10);
        let t0 = Instant::now();
        for i in 0..1000 {
            let _ = limiter.take(Key::Token(i), t0);
        }
        assert_eq!(limiter.tracked(), 10);
        // Once the tracked clients have refilled, new ones take their place.
        let later = t0 + Duration::from_secs(10);
        assert!(limiter.take(Key::Token(5000), later).is_ok());
        assert_eq!(limiter.tracked(), 1);
    }
}
