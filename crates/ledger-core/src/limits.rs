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
