//! The session state the fold produces, and its read-time status.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{TimeoutConfig, TimeoutPatch};
use crate::event::{Billing, Device, EventKind, SessionType, Usage};

/// Expiry shown for `unlimited` sessions: 9999-12-31T23:59:59Z, in Unix ms.
pub const UNLIMITED_EXPIRY_MS: i64 = 253_402_300_799_000;

/// How many recent event ids a session remembers for de-duplication.
pub const RECENT_IDS: usize = 64;

/// Lifecycle status. `Pending` = events seen, `created` not yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    Active,
    Expired,
    Abandoned,
    Ended,
    Revoked,
    Removed,
    Replaced,
}

impl Status {
    pub const ALL: [Status; 8] = [
        Status::Pending,
        Status::Active,
        Status::Expired,
        Status::Abandoned,
        Status::Ended,
        Status::Revoked,
        Status::Removed,
        Status::Replaced,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Active => "active",
            Status::Expired => "expired",
            Status::Abandoned => "abandoned",
            Status::Ended => "ended",
            Status::Revoked => "revoked",
            Status::Removed => "removed",
            Status::Replaced => "replaced",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Stable one-byte code, used in store keys.
    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn is_terminal(self) -> bool {
        !matches!(self, Status::Pending | Status::Active)
    }

    /// The terminal event type that sets this status; `None` for the live
    /// ones (the inverse of [`EventKind::terminal_status`]).
    pub fn terminal_kind(self) -> Option<EventKind> {
        match self {
            Status::Expired => Some(EventKind::Expired),
            Status::Abandoned => Some(EventKind::Abandoned),
            Status::Ended => Some(EventKind::Ended),
            Status::Revoked => Some(EventKind::Revoked),
            Status::Removed => Some(EventKind::Removed),
            Status::Replaced => Some(EventKind::Replaced),
            Status::Pending | Status::Active => None,
        }
    }

    /// The end reason of a session closed by a time deadline with this
    /// status: `timeout` (expired), `inactivity` (abandoned).
    pub fn deadline_reason(self) -> Option<&'static str> {
        match self {
            Status::Expired => Some("timeout"),
            Status::Abandoned => Some("inactivity"),
            _ => None,
        }
    }
}

/// The latest device activity (Clerk's `latest_activity`), with the id of the
/// event that carried it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatestActivity {
    pub event_id: String,
    /// Time of that event, Unix ms.
    pub at_ms: i64,
    pub device: Device,
}

/// A lifecycle event received before `created`, kept for replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PendingStep {
    /// An `activity` at this time (Unix ms).
    Activity(i64),
    /// A `renewed` at this time, with its partial timeout and explicit expiry.
    Renewed {
        at_ms: i64,
        timeout: Option<TimeoutPatch>,
        expires_at_ms: Option<i64>,
    },
    /// A terminal event.
    Terminal {
        status: Status,
        at_ms: i64,
        reason: Option<String>,
    },
}

/// One session's state. Every field is a function of the session's event
/// sequence only; all times are Unix ms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub id: String,
    pub status: Status,
    /// Set by the first `created`; `None` while pending.
    pub created_at: Option<i64>,
    /// Time of the first event seen (equals `created_at` once created if
    /// `created` came first). Used to order pending shells.
    pub first_seen_at: i64,
    pub user_id: Option<String>,
    pub client_id: Option<String>,
    pub agent_id: Option<String>,
    pub channel_id: Option<String>,
    pub workspace_id: Option<String>,
    pub project_id: Option<String>,
    pub external_id: Option<String>,
    pub session_type: SessionType,
    pub labels: BTreeMap<String, String>,
    #[serde(with = "json_text")]
    pub metadata: serde_json::Map<String, Value>,
    #[serde(with = "json_text")]
    pub actor: Option<serde_json::Map<String, Value>>,
    pub organization_id: Option<String>,
    pub last_active_organization_id: Option<String>,
    pub timeout: TimeoutConfig,
    pub unlimited: bool,
    pub last_active_at: i64,
    /// Effective expiry; [`UNLIMITED_EXPIRY_MS`] for unlimited sessions.
    pub expires_at: i64,
    /// `last_active_at + abandon_after`.
    pub abandon_at: i64,
    /// Latest event time applied.
    pub updated_at: i64,
    pub ended_at: Option<i64>,
    pub end_reason: Option<String>,
    pub renewal_count: u64,
    pub usage: Usage,
    pub billing: Billing,
    pub traces_count: u64,
    pub tags: BTreeSet<String>,
    pub contact_ids: BTreeSet<String>,
    pub latest_activity: Option<LatestActivity>,
    /// Lifecycle events received while pending, in receive order.
    pub pending: Vec<PendingStep>,
    /// [`id_hash`]es of the last [`RECENT_IDS`] event ids, oldest first.
    pub recent_ids: VecDeque<u64>,
}

impl Session {
    /// An empty pending shell, first seen at `t` (Unix ms).
    pub fn shell(id: &str, t: i64, defaults: &TimeoutConfig) -> Self {
        Self {
            id: id.to_string(),
            status: Status::Pending,
            created_at: None,
            first_seen_at: t,
            user_id: None,
            client_id: None,
            agent_id: None,
            channel_id: None,
            workspace_id: None,
            project_id: None,
            external_id: None,
            session_type: SessionType::User,
            labels: BTreeMap::new(),
            metadata: serde_json::Map::new(),
            actor: None,
            organization_id: None,
            last_active_organization_id: None,
            timeout: *defaults,
            unlimited: false,
            last_active_at: t,
            expires_at: UNLIMITED_EXPIRY_MS,
            abandon_at: UNLIMITED_EXPIRY_MS,
            updated_at: t,
            ended_at: None,
            end_reason: None,
            renewal_count: 0,
            usage: Usage::default(),
            billing: Billing::default(),
            traces_count: 0,
            tags: BTreeSet::new(),
            contact_ids: BTreeSet::new(),
            latest_activity: None,
            pending: Vec::new(),
            recent_ids: VecDeque::new(),
        }
    }

    /// Creation time, or first-seen time for a pending shell: the list order key.
    pub fn sort_at(&self) -> i64 {
        self.created_at.unwrap_or(self.first_seen_at)
    }

    /// The earliest time-based deadline of an active session, Unix ms.
    pub fn next_deadline(&self) -> Option<(i64, Status)> {
        if self.status != Status::Active {
            return None;
        }
        Some(deadline(self.expires_at, self.abandon_at, self.unlimited))
    }

    /// Status as seen at wall-clock `now` (Unix ms): an active session past a
    /// deadline shows as expired/abandoned before the reaper's event arrives.
    pub fn status_at(&self, now: i64) -> Status {
        match self.next_deadline() {
            Some((at, status)) if at <= now => status,
            _ => self.status,
        }
    }

    /// When the session ended or will end by time, as seen at `now`.
    pub fn ended_at_as_of(&self, now: i64) -> Option<i64> {
        match self.next_deadline() {
            Some((at, _)) if at <= now => Some(at),
            _ => self.ended_at,
        }
    }

    /// ms until expiry at `now` (Unix ms), 0 once past (elizaOS's
    /// `timeRemaining`).
    pub fn time_remaining(&self, now: i64) -> i64 {
        (self.expires_at - now).max(0)
    }

    /// elizaOS's `isNearExpiration`: `0 < timeRemaining ≤` the session's own
    /// warning threshold.
    pub fn is_near_expiration(&self, now: i64) -> bool {
        let remaining = self.time_remaining(now);
        remaining > 0 && remaining <= self.timeout.warning_threshold_ms()
    }

    /// Total tokens (prompt + completion).
    pub fn total_tokens(&self) -> u64 {
        self.usage
            .prompt_tokens
            .saturating_add(self.usage.completion_tokens)
    }

    /// Total cost (input + output), saturated to the finite range.
    pub fn total_cost(&self) -> f64 {
        crate::fold::saturating_sum(self.billing.input_cost, self.billing.output_cost)
    }
}

/// The first deadline among expiry (ignored when unlimited) and abandonment,
/// with the status it leads to. Expiry wins a tie.
pub fn deadline(expires_at: i64, abandon_at: i64, unlimited: bool) -> (i64, Status) {
    if !unlimited && expires_at <= abandon_at {
        (expires_at, Status::Expired)
    } else {
        (abandon_at, Status::Abandoned)
    }
}

/// A stable 64-bit hash (FNV-1a) of an event id, kept for de-duplication.
/// Stable across builds and platforms, so replays match byte for byte.
pub fn id_hash(id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Free-form JSON members as themselves in human-readable formats (the wire's
/// JSON) and as JSON text in compact ones (postcard, which is not
/// self-describing): events keep their JSON shape and still store compactly.
pub(crate) mod json_native_or_text {
    use serde::{de::DeserializeOwned, Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            return v.serialize(s);
        }
        let text = serde_json::to_string(v).map_err(serde::ser::Error::custom)?;
        s.serialize_str(&text)
    }

    pub fn deserialize<'de, T: DeserializeOwned, D: Deserializer<'de>>(
        d: D,
    ) -> Result<T, D::Error> {
        if d.is_human_readable() {
            return T::deserialize(d);
        }
        let text = String::deserialize(d)?;
        serde_json::from_str(&text).map_err(serde::de::Error::custom)
    }
}

/// Serializes free-form JSON members as JSON text, so that sessions also
/// encode in compact formats that are not self-describing.
mod json_text {
    use serde::{de::DeserializeOwned, Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        let text = serde_json::to_string(v).map_err(serde::ser::Error::custom)?;
        s.serialize_str(&text)
    }

    pub fn deserialize<'de, T: DeserializeOwned, D: Deserializer<'de>>(
        d: D,
    ) -> Result<T, D::Error> {
        let text = String::deserialize(d)?;
        serde_json::from_str(&text).map_err(serde::de::Error::custom)
    }
}
