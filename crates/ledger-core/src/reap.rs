//! What the reaper publishes: the deterministic terminal event of a session
//! past its deadline. The store finds what is due (its deadline index holds
//! each active session's first deadline and the status it leads to, from
//! [`crate::session::deadline`]); this module says what event closes it.

use crate::event::{Event, EventData, EventKind, TerminalData};
use crate::session::Status;

/// Namespace of reaper event ids (UUIDv5).
pub const REAPER_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6a1f_3c2e_9b7d_4e51_8f0a_2d4c_6b8e_1f37);

/// The `source` of reaper events.
pub const REAPER_SOURCE: &str = "/session-ledger/reaper";

/// The event that closes `session_id` at `deadline_ms` (Unix ms) with the
/// deadline's `status` (`Expired` or `Abandoned`; any other status is taken as
/// `Expired`). Its time is the deadline and its id a UUIDv5 of session id,
/// type and deadline, so two reapers publish the same event and the fold
/// ignores the second as a duplicate.
pub fn reap_event(session_id: &str, status: Status, deadline_ms: i64) -> Event {
    let status = if status == Status::Abandoned {
        Status::Abandoned
    } else {
        Status::Expired
    };
    let kind = status.terminal_kind().unwrap_or(EventKind::Expired);
    let name = format!("{session_id}|{}|{deadline_ms}", kind.type_name());
    Event {
        id: uuid::Uuid::new_v5(&REAPER_NAMESPACE, name.as_bytes()).to_string(),
        source: REAPER_SOURCE.into(),
        kind,
        session_id: session_id.to_string(),
        time_ms: deadline_ms,
        created_expires_at_ms: None,
        data: EventData::Terminal(TerminalData {
            reason: status.deadline_reason().map(str::to_string),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reap_events_are_deterministic_and_closing() {
        let a = reap_event("s1", Status::Abandoned, 1_000);
        assert_eq!(a, reap_event("s1", Status::Abandoned, 1_000));
        assert_eq!(a.kind, EventKind::Abandoned);
        assert_eq!(a.time_ms, 1_000);
        let e = reap_event("s1", Status::Expired, 1_000);
        assert_eq!(e.kind, EventKind::Expired);
        assert_ne!(a.id, e.id);
        assert_ne!(e.id, reap_event("s1", Status::Expired, 1_001).id);
        match e.data {
            EventData::Terminal(TerminalData { reason }) => {
                assert_eq!(reason.as_deref(), Some("timeout"))
            }
            other => panic!("{other:?}"),
        }
    }
}
