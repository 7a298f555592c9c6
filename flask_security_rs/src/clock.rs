//! Time source: the system clock, shiftable in tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// The library's clock: system time plus an offset that tests can move, so
/// expiry is tested without sleeping.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// The system clock.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves this clock (and every copy of it) forward by `secs`.
    pub fn advance(&self, secs: i64) {
        self.offset_ms
            .fetch_add(secs.saturating_mul(1000), Ordering::SeqCst);
    }

    /// Seconds since the epoch, with fractions.
    pub fn now(&self) -> f64 {
        let sys = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        sys + self.offset_ms.load(Ordering::SeqCst) as f64 / 1000.0
    }

    /// Whole seconds since the epoch.
    pub fn now_secs(&self) -> i64 {
        self.now().floor() as i64
    }

    /// Naive UTC now (what Flask-Security stores in DateTime columns).
    pub fn naive_utc(&self) -> chrono::NaiveDateTime {
        let ms = (self.now() * 1000.0) as i64;
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|d| d.naive_utc())
            .unwrap_or_default()
    }
}
