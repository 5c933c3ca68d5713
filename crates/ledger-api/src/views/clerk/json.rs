//! Clerk's `Session` object.

use ledger_core::Session;
use serde_json::{json, Map, Value};

/// Clerk's `Session` object, with its status as of `now` (Unix ms).
pub fn session_json(s: &Session, now: i64) -> Value {
    let activity = s.latest_activity.as_ref().map(|a| {
        let mut m = Map::new();
        m.insert("object".into(), "session_activity".into());
        m.insert("id".into(), a.event_id.clone().into());
        m.insert("is_mobile".into(), a.device.is_mobile.into());
        for (k, v) in [
            ("device_type", &a.device.device_type),
            ("browser_name", &a.device.browser_name),
            ("browser_version", &a.device.browser_version),
            ("ip_address", &a.device.ip_address),
            ("city", &a.device.city),
            ("country", &a.device.country),
        ] {
            if let Some(v) = v {
                m.insert(k.into(), v.clone().into());
            }
        }
        Value::Object(m)
    });
    json!({
        "object": "session",
        "id": s.id,
        "user_id": s.user_id.clone().unwrap_or_default(),
        "client_id": s.client_id.clone().unwrap_or_default(),
        "status": s.status_at(now).as_str(),
        "last_active_at": s.last_active_at,
        "expire_at": s.expires_at,
        "abandon_at": s.abandon_at,
        "updated_at": s.updated_at,
        "created_at": s.sort_at(),
        "actor": s.actor,
        "last_active_organization_id": s.last_active_organization_id,
        "latest_activity": activity,
        "tasks": Value::Null,
    })
}
