//! Timeout configuration: ledger-wide defaults and per-session overrides.

use serde::{Deserialize, Serialize};

use crate::time::MINUTE_MS;

/// A session's effective timeout rules. All durations are in minutes.
///
/// Invariant: `max_duration_minutes >= timeout_minutes` (raised on merge).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeoutConfig {
    /// Inactivity timeout: how long a renewal keeps the session alive.
    pub timeout_minutes: u32,
    /// Whether `activity` events renew the session.
    pub auto_renew: bool,
    /// Hard cap on the session's life, counted from `created_at`.
    pub max_duration_minutes: u32,
    /// How close to expiry a session counts as "near expiration".
    pub warning_threshold_minutes: u32,
    /// Inactivity after which a session is abandoned.
    pub abandon_after_minutes: u32,
}

/// The ledger-wide defaults (elizaOS's defaults, plus Clerk's abandonment).
pub type Defaults = TimeoutConfig;

impl Default for TimeoutConfig {
    fn default() -> Self {
        Self {
            timeout_minutes: 30,
            auto_renew: true,
            max_duration_minutes: 720,
            warning_threshold_minutes: 5,
            abandon_after_minutes: 10_080,
        }
    }
}

/// A partial timeout update, as carried by `created` and `renewed` events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeoutPatch {
    #[serde(default)]
    pub timeout_minutes: Option<u32>,
    #[serde(default)]
    pub auto_renew: Option<bool>,
    #[serde(default)]
    pub max_duration_minutes: Option<u32>,
    #[serde(default)]
    pub warning_threshold_minutes: Option<u32>,
    #[serde(default)]
    pub abandon_after_minutes: Option<u32>,
}

impl TimeoutConfig {
    /// Applies a partial update, then restores the invariant
    /// `max_duration_minutes >= timeout_minutes`.
    pub fn merged(mut self, p: &TimeoutPatch) -> Self {
        if let Some(v) = p.timeout_minutes {
            self.timeout_minutes = v;
        }
        if let Some(v) = p.auto_renew {
            self.auto_renew = v;
        }
        if let Some(v) = p.max_duration_minutes {
            self.max_duration_minutes = v;
        }
        if let Some(v) = p.warning_threshold_minutes {
            self.warning_threshold_minutes = v;
        }
        if let Some(v) = p.abandon_after_minutes {
            self.abandon_after_minutes = v;
        }
        self.max_duration_minutes = self.max_duration_minutes.max(self.timeout_minutes);
        self
    }

    /// Inactivity timeout in ms.
    pub fn timeout_ms(&self) -> i64 {
        i64::from(self.timeout_minutes) * MINUTE_MS
    }

    /// Maximum duration in ms.
    pub fn max_duration_ms(&self) -> i64 {
        i64::from(self.max_duration_minutes) * MINUTE_MS
    }

    /// Abandonment delay in ms.
    pub fn abandon_after_ms(&self) -> i64 {
        i64::from(self.abandon_after_minutes) * MINUTE_MS
    }

    /// Warning threshold in ms.
    pub fn warning_threshold_ms(&self) -> i64 {
        i64::from(self.warning_threshold_minutes) * MINUTE_MS
    }
}
