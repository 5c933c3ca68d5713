//! orq.ai's session (`Data` of the 3.x list) and the 4.x `Thread`.
//! Snake_case keys, `duration` in ms.

use ledger_core::time::format_iso_ms;
use ledger_core::Session;
use serde_json::{json, Value};

/// The `Data` object of orq's session list, as of `now` (Unix ms).
pub fn session_json(s: &Session, now: i64) -> Value {
    let started = s.sort_at();
    let end = s.ended_at_as_of(now).unwrap_or(s.last_active_at);
    json!({
        "_id": s.id,
        "external_id": s.external_id.clone().unwrap_or_else(|| s.id.clone()),
        "duration": (end - started).max(0),
        "contact_ids": s.contact_ids,
        "billing": {"input_cost": s.billing.input_cost, "output_cost": s.billing.output_cost, "total_cost": s.total_cost()},
        "usage": {"prompt_tokens": s.usage.prompt_tokens, "completion_tokens": s.usage.completion_tokens, "total_tokens": s.total_tokens()},
        "traces_count": s.traces_count,
        "tags": s.tags,
        "workspace_id": s.workspace_id.clone().unwrap_or_default(),
        "project_id": s.project_id,
        "started_at": format_iso_ms(started),
        "updated_at": format_iso_ms(s.updated_at),
    })
}

/// The 4.x SDK's `Thread`: the same fields without `workspace_id` (the
/// key's workspace is implied), `project_id` only when set.
pub fn thread_json(s: &Session, now: i64) -> Value {
    let mut v = session_json(s, now);
    if let Value::Object(m) = &mut v {
        m.remove("workspace_id");
        if m.get("project_id").is_some_and(Value::is_null) {
            m.remove("project_id");
        }
    }
    v
}

/// A list page: `{object: "list", data, has_more}`.
pub fn list_json(data: Vec<Value>, has_more: bool) -> Value {
    json!({"object": "list", "data": data, "has_more": has_more})
}
