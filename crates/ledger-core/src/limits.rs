//! Documented bounds on what one event and one session may hold, and the
//! free-form keys the ledger never stores (names that look like secrets).
//!
//! Event-level bounds are checked at decode time ([`check_event`], called by
//! `decode_record`): a record over them is dead-lettered whole, with the
//! reason. Session-level bounds are
//! checked by the fold: an event that would push a session past one is
//! rejected ([`crate::Outcome::RejectedLimit`]), counted and kept in the
//! session's history — never dropped silently.

use serde_json::{Map, Value};

use crate::event::{Event, EventData};

/// Lifecycle events a pending shell keeps for replay when `created` arrives.
pub const MAX_PENDING: usize = 1_000;
/// Distinct tags per session (and per event).
pub const MAX_TAGS: usize = 256;
/// Distinct contact ids per session (and per event).
pub const MAX_CONTACT_IDS: usize = 256;
/// Labels per session.
pub const MAX_LABELS: usize = 64;
/// Bytes of one tag, contact id, label key or label value.
pub const MAX_VALUE_BYTES: usize = 1_024;
/// Bytes of `metadata` or `actor`, as compact JSON text.
pub const MAX_OBJECT_BYTES: usize = 16 * 1_024;

/// A per-session bound an event would have exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// [`MAX_PENDING`] lifecycle events queued before `created`.
    PendingEvents,
    /// [`MAX_TAGS`] distinct tags.
    Tags,
    /// [`MAX_CONTACT_IDS`] distinct contact ids.
    ContactIds,
}

impl Limit {
    /// A short stable name, used in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::PendingEvents => "pending_events",
            Limit::Tags => "tags",
            Limit::ContactIds => "contact_ids",
        }
    }
}

/// Checks the event-level bounds; the error names the field and the bound.
pub fn check_event(ev: &Event) -> Result<(), String> {
    let (tags, contacts) = match &ev.data {
        EventData::Created(d) => {
            if d.labels.len() > MAX_LABELS {
                return Err(format!(
                    "labels: {} exceed the limit of {MAX_LABELS}",
                    d.labels.len()
                ));
            }
            for (k, v) in &d.labels {
                value("label", k)?;
                value("label value", v)?;
            }
            object("metadata", d.metadata.as_ref())?;
            object("actor", d.actor.as_ref())?;
            (&d.tags, &d.contact_ids)
        }
        EventData::Activity(d) => (&d.tags, &d.contact_ids),
        _ => return Ok(()),
    };
    set("tags", tags, MAX_TAGS)?;
    set("contact_ids", contacts, MAX_CONTACT_IDS)
}

fn set(name: &str, items: &[String], max: usize) -> Result<(), String> {
    if items.len() > max {
        return Err(format!("{name}: {} exceed the limit of {max}", items.len()));
    }
    items.iter().try_for_each(|v| value(name, v))
}

fn value(name: &str, v: &str) -> Result<(), String> {
    if v.len() > MAX_VALUE_BYTES {
        return Err(format!(
            "{name}: a value of {} bytes exceeds the limit of {MAX_VALUE_BYTES}",
            v.len()
        ));
    }
    Ok(())
}

fn object(name: &str, m: Option<&Map<String, Value>>) -> Result<(), String> {
    let Some(m) = m else { return Ok(()) };
    let bytes = serde_json::to_string(m).map_or(usize::MAX, |s| s.len());
    if bytes > MAX_OBJECT_BYTES {
        return Err(format!(
            "{name}: {bytes} bytes exceed the limit of {MAX_OBJECT_BYTES}"
        ));
    }
    Ok(())
}

/// Whether a free-form key names a secret (`token`, `password`,
/// `Authorization`, `api-key`, `client_secret`, …). Case, `-` and `_` are
/// ignored.
pub fn is_secret_key(key: &str) -> bool {
    const WORDS: [&str; 13] = [
        "token",
        "secret",
        "passw",
        "passphrase",
        "authorization",
        "apikey",
        "cookie",
        "privatekey",
        "credential",
        "jwt",
        "bearer",
        "sessionkey",
        "signature",
    ];
    let norm: String = key
        .chars()
        .filter(|c| !matches!(c, '-' | '_' | ' ' | '.'))
        .flat_map(char::to_lowercase)
        .collect();
    WORDS.iter().any(|w| norm.contains(w))
}

/// Whether `ev` has a secret-named key (in `labels`, `metadata`, `actor`, at
/// any depth): whether [`redacted`] would change it.
pub fn has_secret_keys(ev: &crate::Event) -> bool {
    let crate::event::EventData::Created(d) = &ev.data else {
        return false;
    };
    d.labels.keys().any(|k| is_secret_key(k))
        || d.metadata.as_ref().is_some_and(object_has_secret_keys)
        || d.actor.as_ref().is_some_and(object_has_secret_keys)
}

fn object_has_secret_keys(m: &Map<String, Value>) -> bool {
    m.iter()
        .any(|(k, v)| is_secret_key(k) || value_has_secret_keys(v))
}

fn value_has_secret_keys(v: &Value) -> bool {
    match v {
        Value::Object(m) => object_has_secret_keys(m),
        Value::Array(items) => items.iter().any(value_has_secret_keys),
        _ => false,
    }
}

/// `ev` without its secret-named keys (in `labels`, `metadata`, `actor`):
/// what may be stored of it. Folding it gives the state folding `ev` gives.
pub fn redacted(ev: &crate::Event) -> crate::Event {
    let mut ev = ev.clone();
    if let crate::event::EventData::Created(d) = &mut ev.data {
        d.labels.retain(|k, _| !is_secret_key(k));
        if let Some(m) = d.metadata.as_mut() {
            redact_object(m);
        }
        if let Some(m) = d.actor.as_mut() {
            redact_object(m);
        }
    }
    ev
}

/// Removes secret-named keys from a JSON object, at every depth.
pub fn redact_object(m: &mut Map<String, Value>) {
    m.retain(|k, _| !is_secret_key(k));
    for v in m.values_mut() {
        redact_value(v);
    }
}

fn redact_value(v: &mut Value) {
    match v {
        Value::Object(m) => redact_object(m),
        Value::Array(items) => items.iter_mut().for_each(redact_value),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode_structured;

    fn created(data: &str) -> crate::Event {
        decode_structured(
            format!(
                r#"{{"specversion":"1.0","id":"e","source":"s","type":"session.created","subject":"x","time":"2026-01-01T00:00:00Z","data":{data}}}"#
            )
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn an_event_has_secret_keys_exactly_when_redaction_changes_it() {
        let cases = [
            (r#"{"user_id":"u"}"#, false),
            (
                r#"{"user_id":"u","labels":{"team":"a"},"metadata":{"plan":{"tier":1}}}"#,
                false,
            ),
            (r#"{"user_id":"u","labels":{"API-Key":"k"}}"#, true),
            (
                r#"{"user_id":"u","metadata":{"a":[{"b":{"client_secret":"s"}}]}}"#,
                true,
            ),
            (r#"{"user_id":"u","actor":{"auth":{"Password":"p"}}}"#, true),
        ];
        for (data, secret) in cases {
            let ev = created(data);
            assert_eq!(has_secret_keys(&ev), secret, "{data}");
            assert_eq!(redacted(&ev) != ev, secret, "{data}");
            assert!(!has_secret_keys(&redacted(&ev)), "{data}");
        }
    }
}
