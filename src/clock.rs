//! Time as a parameter: production reads the system clock, tests set it.

use std::sync::Mutex;

use chrono::{DateTime, SecondsFormat, Utc};

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The real time.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to.
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock(Mutex::new(start))
    }

    pub fn advance(&self, by: chrono::Duration) {
        if let Ok(mut now) = self.0.lock() {
            *now += by;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        self.0.lock().map(|now| *now).unwrap_or_else(|e| *e.into_inner())
    }
}

/// The timestamp format of `meta.created`, `meta.lastModified` and activity entries.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Whole seconds from a [`timestamp`] to `now` (never negative); `None` for text that is no timestamp.
pub fn seconds_since(now: DateTime<Utc>, text: &str) -> Option<i64> {
    let then = DateTime::parse_from_rfc3339(text).ok()?;
    Some((now - then.with_timezone(&Utc)).num_seconds().max(0))
}
