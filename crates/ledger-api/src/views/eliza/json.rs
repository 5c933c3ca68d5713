//! elizaOS's `SessionInfo`, the list body, and the audit trail's entries.

use ledger_core::time::format_iso_ms;
use ledger_core::Session;
use ledger_store::HistoryEntry;
use serde::Serialize;
use serde_json::{json, Map, Value};

/// elizaOS's `SessionInfo`, serialized straight from the session (no
/// intermediate JSON tree; lists carry up to 500). Fields in sorted order,
/// as every other view's JSON objects.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo<'a> {
    agent_id: &'a str,
    channel_id: &'a str,
    created_at: String,
    expires_at: String,
    is_near_expiration: bool,
    last_activity: String,
    metadata: &'a Map<String, Value>,
    renewal_count: u64,
    session_id: &'a str,
    /// ms until expiry at `now`, 0 once past.
    time_remaining: i64,
    timeout_config: TimeoutConfigInfo,
    user_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TimeoutConfigInfo {
    auto_renew: bool,
    max_duration_minutes: u32,
    timeout_minutes: u32,
    warning_threshold_minutes: u32,
}

/// elizaOS's `SessionInfo`, as of `now` (Unix ms).
pub fn session_info(s: &Session, now: i64) -> SessionInfo<'_> {
    SessionInfo {
        agent_id: s.agent_id.as_deref().unwrap_or_default(),
        channel_id: s.channel_id.as_deref().unwrap_or_default(),
        created_at: format_iso_ms(s.sort_at()),
        expires_at: format_iso_ms(s.expires_at),
        is_near_expiration: s.is_near_expiration(now),
        last_activity: format_iso_ms(s.last_active_at),
        metadata: &s.metadata,
        renewal_count: s.renewal_count,
        session_id: &s.id,
        time_remaining: s.time_remaining(now),
        timeout_config: TimeoutConfigInfo {
            auto_renew: s.timeout.auto_renew,
            max_duration_minutes: s.timeout.max_duration_minutes,
            timeout_minutes: s.timeout.timeout_minutes,
            warning_threshold_minutes: s.timeout.warning_threshold_minutes,
        },
        user_id: s.user_id.as_deref().unwrap_or_default(),
    }
}

/// The list body: `{sessions, stats, total}`.
#[derive(Serialize)]
pub(super) struct ListBody<'a> {
    pub sessions: Vec<SessionInfo<'a>>,
    pub stats: ListStats,
    pub total: u64,
}

/// The scope's aggregates: created sessions, live and not.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ListStats {
    pub active_sessions: u64,
    pub expired_sessions: u64,
    pub total_sessions: u64,
}

/// One audit-trail entry: the event, its outcome and where it was read.
pub(super) fn event_json(e: &HistoryEntry) -> Value {
    json!({"seq": e.seq, "id": e.id(), "type": e.kind(), "time": format_iso_ms(e.time()), "outcome": e.outcome, "partition": e.partition, "offset": e.offset})
}
