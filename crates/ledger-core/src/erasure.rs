//! Erasure requests (GDPR Art. 17) as records of the event topic.
//!
//! An erasure is a structured-mode CloudEvent of type [`ERASURE_TYPE`] whose
//! `data` names exactly one subject (`{"user_id": …}` or
//! `{"workspace_id": …}`), published to every partition with the
//! [`CONTROL_HEADER`] header set to `erasure`, so that each partition applies
//! it at a definite position in its own order and every replay applies it
//! again. The header tells it from session events without parsing them.

use serde::{Deserialize, Serialize};

use crate::time::{format_iso_ms, parse_rfc3339_ms};

/// The Kafka header naming a ledger control record, and its erasure value.
pub const CONTROL_HEADER: &str = "ledger-control";
pub const CONTROL_ERASURE: &[u8] = b"erasure";
/// The CloudEvents `type` of an erasure.
pub const ERASURE_TYPE: &str = "ledger.erasure.requested";

/// Whose data an erasure removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    User(String),
    Workspace(String),
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subject::User(_) => f.write_str("user"),
            Subject::Workspace(_) => f.write_str("workspace"),
        }
    }
}

/// One erasure request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erasure {
    /// CloudEvents `id`.
    pub id: String,
    /// Request time, Unix ms.
    pub time_ms: i64,
    pub subject: Subject,
}

#[derive(Serialize, Deserialize)]
struct Data {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    workspace_id: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    specversion: String,
    id: String,
    source: String,
    #[serde(rename = "type")]
    kind: String,
    time: String,
    datacontenttype: String,
    data: Data,
}

/// Why a record marked as an erasure is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErasureError {
    #[error("not an erasure CloudEvent: {0}")]
    Json(String),
    #[error("erasure type must be {ERASURE_TYPE}, found {0}")]
    Type(String),
    #[error("erasure time is not RFC 3339: {0}")]
    Time(String),
    #[error("an erasure names exactly one non-empty user_id or workspace_id")]
    Subject,
}

/// The record payload of an erasure (structured-mode CloudEvent JSON).
pub fn encode(e: &Erasure) -> Vec<u8> {
    let (user_id, workspace_id) = match &e.subject {
        Subject::User(u) => (Some(u.clone()), None),
        Subject::Workspace(w) => (None, Some(w.clone())),
    };
    let env = Envelope {
        specversion: "1.0".into(),
        id: e.id.clone(),
        source: "session-ledger".into(),
        kind: ERASURE_TYPE.into(),
        time: format_iso_ms(e.time_ms),
        datacontenttype: "application/json".into(),
        data: Data {
            user_id,
            workspace_id,
        },
    };
    serde_json::to_vec(&env).expect("an erasure serializes")
}

/// Reads an erasure record's payload.
pub fn decode(payload: &[u8]) -> Result<Erasure, ErasureError> {
    let env: Envelope =
        serde_json::from_slice(payload).map_err(|e| ErasureError::Json(e.to_string()))?;
    if env.kind != ERASURE_TYPE {
        return Err(ErasureError::Type(env.kind));
    }
    let time_ms = parse_rfc3339_ms(&env.time).ok_or(ErasureError::Time(env.time))?;
    let subject = match (env.data.user_id, env.data.workspace_id) {
        (Some(u), None) if !u.is_empty() => Subject::User(u),
        (None, Some(w)) if !w.is_empty() => Subject::Workspace(w),
        _ => return Err(ErasureError::Subject),
    };
    Ok(Erasure {
        id: env.id,
        time_ms,
        subject,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_erasure_round_trips_and_bad_ones_are_refused() {
        let e = Erasure {
            id: "e1".into(),
            time_ms: 1_795_000_000_123,
            subject: Subject::Workspace("ws_9".into()),
        };
        assert_eq!(decode(&encode(&e)), Ok(e));
        let both = br#"{"specversion":"1.0","id":"x","source":"s","type":"ledger.erasure.requested","time":"2026-01-01T00:00:00Z","datacontenttype":"application/json","data":{"user_id":"u","workspace_id":"w"}}"#;
        assert_eq!(decode(both), Err(ErasureError::Subject));
        let other =
            String::from_utf8_lossy(both).replace("ledger.erasure.requested", "session.created");
        assert!(matches!(
            decode(other.as_bytes()),
            Err(ErasureError::Type(_))
        ));
        assert!(matches!(decode(b"{"), Err(ErasureError::Json(_))));
    }
}
