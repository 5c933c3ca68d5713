//! The event contract: CloudEvents 1.0 envelopes (structured and binary mode)
//! carrying one typed `data` shape per session event type.
//!
//! Decoding validates everything the fold relies on; unknown fields are
//! ignored for forward compatibility. Every failure is a [`DecodeError`] whose
//! `Display` is the reason written to the dead-letter topic.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::config::TimeoutPatch;
use crate::time::parse_rfc3339_ms;

/// Largest accepted encoded event, in bytes. Larger records are dead-lettered.
pub const MAX_EVENT_BYTES: usize = 256 * 1024;

/// Why a record is not a valid session event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("oversize: {0} bytes exceeds the {MAX_EVENT_BYTES}-byte limit")]
    Oversize(usize),
    #[error("invalid UTF-8 in {0}")]
    Utf8(&'static str),
    #[error("bad JSON: {0}")]
    Json(String),
    #[error("missing attribute `{0}`")]
    Missing(&'static str),
    #[error("unsupported specversion `{0}` (expected 1.0)")]
    SpecVersion(String),
    #[error("unknown event type `{0}`")]
    UnknownType(String),
    #[error("unparseable time `{0}` (expected RFC 3339)")]
    BadTime(String),
    #[error("invalid data for {kind}: {reason}")]
    BadData { kind: &'static str, reason: String },
    #[error("record key `{key}` does not match subject `{subject}`")]
    KeyMismatch { key: String, subject: String },
    #[error("over a limit: {0}")]
    OverLimit(String),
    #[error("unsupported content-type `{content_type}`: {reason}")]
    ContentType {
        content_type: String,
        reason: &'static str,
    },
}

/// The nine session event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    Created,
    Activity,
    Renewed,
    Expired,
    Abandoned,
    Ended,
    Revoked,
    Removed,
    Replaced,
}

impl EventKind {
    pub const ALL: [EventKind; 9] = [
        EventKind::Created,
        EventKind::Activity,
        EventKind::Renewed,
        EventKind::Expired,
        EventKind::Abandoned,
        EventKind::Ended,
        EventKind::Revoked,
        EventKind::Removed,
        EventKind::Replaced,
    ];

    /// The CloudEvents `type` string, e.g. `session.created`.
    pub fn type_name(self) -> &'static str {
        match self {
            EventKind::Created => "session.created",
            EventKind::Activity => "session.activity",
            EventKind::Renewed => "session.renewed",
            EventKind::Expired => "session.expired",
            EventKind::Abandoned => "session.abandoned",
            EventKind::Ended => "session.ended",
            EventKind::Revoked => "session.revoked",
            EventKind::Removed => "session.removed",
            EventKind::Replaced => "session.replaced",
        }
    }

    pub fn from_type_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.type_name() == s)
    }

    pub fn is_terminal(self) -> bool {
        self.terminal_status().is_some()
    }

    /// The status a terminal event sets; `None` for the others.
    pub fn terminal_status(self) -> Option<crate::session::Status> {
        use crate::session::Status;
        match self {
            EventKind::Expired => Some(Status::Expired),
            EventKind::Abandoned => Some(Status::Abandoned),
            EventKind::Ended => Some(Status::Ended),
            EventKind::Revoked => Some(Status::Revoked),
            EventKind::Removed => Some(Status::Removed),
            EventKind::Replaced => Some(Status::Replaced),
            EventKind::Created | EventKind::Activity | EventKind::Renewed => None,
        }
    }
}

/// Token usage carried by an activity event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
}

/// Cost carried by an activity event (currency units, as sent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Billing {
    #[serde(default)]
    pub input_cost: f64,
    #[serde(default)]
    pub output_cost: f64,
}

/// The device behind an activity (Clerk's `SessionActivity`, minus its id).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    #[serde(default)]
    pub device_type: Option<String>,
    #[serde(default)]
    pub is_mobile: bool,
    #[serde(default)]
    pub browser_name: Option<String>,
    #[serde(default)]
    pub browser_version: Option<String>,
    #[serde(default)]
    pub ip_address: Option<String>,
    #[serde(default)]
    pub city: Option<String>,
    #[serde(default)]
    pub country: Option<String>,
}

/// `data` of `session.created`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CreatedData {
    pub user_id: String,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub agent_id: Option<String>,
    #[serde(default)]
    pub channel_id: Option<String>,
    #[serde(default)]
    pub workspace_id: Option<String>,
    #[serde(default)]
    pub project_id: Option<String>,
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(default)]
    pub session_type: Option<SessionType>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default, with = "crate::session::json_native_or_text")]
    pub metadata: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub contact_ids: Vec<String>,
    #[serde(default, with = "crate::session::json_native_or_text")]
    pub actor: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    pub organization_id: Option<String>,
    #[serde(default)]
    pub timeout: Option<TimeoutPatch>,
    /// Explicit absolute expiry (RFC 3339), overriding the rule for this event.
    #[serde(default)]
    pub expires_at: Option<String>,
    #[serde(default)]
    pub unlimited: bool,
}

/// Wingspan's session types.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionType {
    #[default]
    User,
    API,
    Guest,
}

/// `data` of `session.activity`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ActivityData {
    #[serde(default)]
    pub organization_id: Option<String>,
    #[serde(default)]
    pub device: Option<Device>,
    #[serde(default)]
    pub trace_id: Option<String>,
    #[serde(default)]
    pub usage: Option<Usage>,
    #[serde(default)]
    pub billing: Option<Billing>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub contact_ids: Vec<String>,
}

/// `data` of `session.renewed`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RenewedData {
    #[serde(default)]
    pub expires_at: Option<String>,
    #[serde(default)]
    pub timeout: Option<TimeoutPatch>,
}

/// `data` of the terminal types.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TerminalData {
    #[serde(default)]
    pub reason: Option<String>,
}

/// Typed `data`, one variant per shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EventData {
    Created(Box<CreatedData>),
    Activity(Box<ActivityData>),
    /// Renewal; `expires_at_ms` is the parsed explicit expiry, if any.
    Renewed {
        timeout: Option<TimeoutPatch>,
        expires_at_ms: Option<i64>,
    },
    Terminal(TerminalData),
}

/// A decoded, validated session event. A session's history keeps it
/// (postcard), so the fold can be replayed from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// CloudEvents `id`; unique per event, used for de-duplication.
    pub id: String,
    /// CloudEvents `source`.
    pub source: String,
    pub kind: EventKind,
    /// The session id (CloudEvents `subject`, also the Kafka key).
    pub session_id: String,
    /// Event time, Unix ms.
    pub time_ms: i64,
    /// Explicit expiry of a `created` event, Unix ms (parsed from `data`).
    pub created_expires_at_ms: Option<i64>,
    pub data: EventData,
}

/// The structured-mode envelope as it appears on the wire. Attributes borrow
/// from the payload unless they hold escapes; `data` stays raw JSON text and
/// is read straight into its typed shape (no `Value` tree in between).
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    specversion: Option<Text<'a>>,
    #[serde(borrow)]
    id: Option<Text<'a>>,
    #[serde(borrow)]
    source: Option<Text<'a>>,
    #[serde(borrow, rename = "type")]
    kind: Option<Text<'a>>,
    #[serde(borrow)]
    subject: Option<Text<'a>>,
    #[serde(borrow)]
    time: Option<Text<'a>>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

/// A JSON string borrowed from the input when it has no escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

fn text(t: Option<Text<'_>>) -> Option<Cow<'_, str>> {
    t.map(|t| t.0)
}

/// Decodes a structured-mode CloudEvent (the whole event is the JSON payload).
pub fn decode_structured(payload: &[u8]) -> Result<Event, DecodeError> {
    if payload.len() > MAX_EVENT_BYTES {
        return Err(DecodeError::Oversize(payload.len()));
    }
    let env: Envelope<'_> =
        serde_json::from_slice(payload).map_err(|e| DecodeError::Json(e.to_string()))?;
    build(
        env.specversion.as_ref().map(|t| &*t.0),
        text(env.id),
        text(env.source),
        text(env.kind),
        text(env.subject),
        text(env.time),
        env.data,
    )
}

/// Decodes a binary-mode CloudEvent: attributes in `ce_*` headers, `data` as
/// the payload. `header` looks up a header's value by name.
pub fn decode_binary<'a>(
    header: impl Fn(&str) -> Option<&'a [u8]>,
    payload: &[u8],
) -> Result<Event, DecodeError> {
    if payload.len() > MAX_EVENT_BYTES {
        return Err(DecodeError::Oversize(payload.len()));
    }
    let text = |name: &'static str| -> Result<Option<Cow<'a, str>>, DecodeError> {
        match header(name) {
            None => Ok(None),
            Some(v) => std::str::from_utf8(v)
                .map(|s| Some(Cow::Borrowed(s)))
                .map_err(|_| DecodeError::Utf8(name)),
        }
    };
    let data: Option<&RawValue> = if payload.is_empty() {
        None
    } else {
        serde_json::from_slice(payload).map_err(|e| DecodeError::Json(e.to_string()))?
    };
    let spec = text("ce_specversion")?;
    build(
        spec.as_deref(),
        text("ce_id")?,
        text("ce_source")?,
        text("ce_type")?,
        text("ce_subject")?,
        text("ce_time")?,
        data,
    )
}

/// How a Kafka record carries its CloudEvent (the CloudEvents Kafka protocol
/// binding, §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentMode {
    /// The value is the whole event (JSON event format).
    Structured,
    /// Attributes in `ce_*` headers, `datacontenttype` in `content-type`, the
    /// value is `data`.
    Binary,
}

/// The media type of a `content-type` value: its part before any parameter,
/// trimmed and lowercased (media types are case-insensitive).
fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Whether a media type is JSON: `application/json`, `text/json` or any
/// `…/…+json`.
fn is_json_media_type(media: &str) -> bool {
    matches!(media, "application/json" | "text/json") || media.ends_with("+json")
}

/// The content mode of a record, from its headers, per the Kafka protocol
/// binding: *structured* when `content-type` starts with
/// `application/cloudevents` (then any `ce_*` headers are ignored), else
/// *binary* when `ce_specversion` is present (its `content-type`, when
/// present, must then be a JSON media type: the data is decoded as JSON),
/// else structured (a JSON envelope without headers, as most producers write
/// it). Header names are the binding's, lowercase and case-sensitive. Event
/// formats other than JSON and batches are rejected.
pub fn content_mode<'a>(
    header: impl Fn(&str) -> Option<&'a [u8]>,
) -> Result<ContentMode, DecodeError> {
    let content_type = header("content-type")
        .map(|ct| std::str::from_utf8(ct).map_err(|_| DecodeError::Utf8("content-type")))
        .transpose()?;
    let media = content_type.map(media_type).unwrap_or_default();
    let refuse = |reason| {
        Err(DecodeError::ContentType {
            content_type: content_type.unwrap_or_default().to_string(),
            reason,
        })
    };
    if media.starts_with("application/cloudevents") {
        return match media.as_str() {
            "application/cloudevents+json" | "application/cloudevents" => {
                Ok(ContentMode::Structured)
            }
            m if m.starts_with("application/cloudevents-batch") => {
                refuse("batched content mode is not supported on Kafka")
            }
            _ => refuse("structured mode supports only the JSON event format"),
        };
    }
    if header("ce_specversion").is_none() {
        return Ok(ContentMode::Structured);
    }
    if content_type.is_some() && !is_json_media_type(&media) {
        return refuse("binary-mode data must be JSON");
    }
    Ok(ContentMode::Binary)
}

/// Decodes one Kafka record in the content mode its headers select (see
/// [`content_mode`]) and checks the event-level bounds
/// ([`crate::limits::check_event`]). A key, when present, must be UTF-8 and
/// equal the event's subject (the session id), which keeps a session's events
/// on one partition.
pub fn decode_record<'a>(
    key: Option<&[u8]>,
    payload: Option<&[u8]>,
    header: impl Fn(&str) -> Option<&'a [u8]>,
) -> Result<Event, DecodeError> {
    let payload = payload.unwrap_or_default();
    let event = match content_mode(&header)? {
        ContentMode::Structured => decode_structured(payload)?,
        ContentMode::Binary => decode_binary(header, payload)?,
    };
    crate::limits::check_event(&event).map_err(DecodeError::OverLimit)?;
    if let Some(k) = key {
        let k = std::str::from_utf8(k).map_err(|_| DecodeError::Utf8("key"))?;
        if k != event.session_id {
            return Err(DecodeError::KeyMismatch {
                key: k.to_string(),
                subject: event.session_id,
            });
        }
    }
    Ok(event)
}

fn non_empty<'a>(v: Option<Cow<'a, str>>, name: &'static str) -> Result<Cow<'a, str>, DecodeError> {
    match v {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(DecodeError::Missing(name)),
    }
}

/// Reads `data` (raw JSON text; `None` when absent or `null`) as `T`.
///
/// The text is read straight into `T`. Only when that fails is it read again
/// through a `Value`, the way every earlier version read it, so that what is
/// accepted and each rejection's reason are unchanged (a `Value` keeps the
/// last of duplicate keys, where a direct read rejects them).
fn typed<T: serde::de::DeserializeOwned + Default>(
    data: Option<&RawValue>,
    kind: &'static str,
) -> Result<T, DecodeError> {
    // Absent data reads as `{}`: every field of these shapes has a default.
    let Some(raw) = data else {
        return Ok(T::default());
    };
    serde_json::from_str(raw.get())
        .or_else(|_| serde_json::from_value(serde_json::from_str::<Value>(raw.get())?))
        .map_err(|e| DecodeError::BadData {
            kind,
            reason: e.to_string(),
        })
}

fn build(
    spec: Option<&str>,
    id: Option<Cow<'_, str>>,
    source: Option<Cow<'_, str>>,
    kind: Option<Cow<'_, str>>,
    subject: Option<Cow<'_, str>>,
    time: Option<Cow<'_, str>>,
    data: Option<&RawValue>,
) -> Result<Event, DecodeError> {
    match spec {
        Some("1.0") => {}
        Some(other) => return Err(DecodeError::SpecVersion(other.to_string())),
        None => return Err(DecodeError::Missing("specversion")),
    }
    let id = non_empty(id, "id")?.into_owned();
    let source = non_empty(source, "source")?.into_owned();
    let kind_name = non_empty(kind, "type")?;
    let kind = EventKind::from_type_name(&kind_name)
        .ok_or_else(|| DecodeError::UnknownType(kind_name.into_owned()))?;
    let session_id = non_empty(subject, "subject")?.into_owned();
    let time = non_empty(time, "time")?;
    let time_ms = parse_rfc3339_ms(&time).ok_or_else(|| DecodeError::BadTime(time.into_owned()))?;
    // `null` data reads as absent data.
    let data = data.filter(|raw| raw.get() != "null");
    let name = kind.type_name();
    let explicit = |s: Option<String>| -> Result<Option<i64>, DecodeError> {
        match s {
            None => Ok(None),
            Some(s) => parse_rfc3339_ms(&s).map(Some).ok_or(DecodeError::BadData {
                kind: name,
                reason: format!("unparseable expires_at `{s}`"),
            }),
        }
    };
    let mut created_expires_at_ms = None;
    let data = match kind {
        EventKind::Created => {
            if data.is_none() {
                return Err(DecodeError::BadData {
                    kind: name,
                    reason: "missing field `user_id`".into(),
                });
            }
            let mut d: CreatedData = typed(data, name)?;
            if d.user_id.is_empty() {
                return Err(DecodeError::BadData {
                    kind: name,
                    reason: "empty `user_id`".into(),
                });
            }
            created_expires_at_ms = explicit(d.expires_at.take())?;
            EventData::Created(Box::new(d))
        }
        EventKind::Activity => EventData::Activity(Box::new(typed(data, name)?)),
        EventKind::Renewed => {
            let d: RenewedData = typed(data, name)?;
            EventData::Renewed {
                timeout: d.timeout,
                expires_at_ms: explicit(d.expires_at)?,
            }
        }
        _ => EventData::Terminal(typed(data, name)?),
    };
    Ok(Event {
        id,
        source,
        kind,
        session_id,
        time_ms,
        created_expires_at_ms,
        data,
    })
}

impl Event {
    /// Encodes the event as a structured-mode CloudEvent (JSON).
    pub fn to_json(&self) -> Value {
        let data = match &self.data {
            EventData::Created(d) => {
                let mut v = serde_json::to_value(d).unwrap_or(Value::Null);
                if let (Some(ms), Some(obj)) = (self.created_expires_at_ms, v.as_object_mut()) {
                    obj.insert("expires_at".into(), crate::time::format_iso_ms(ms).into());
                }
                v
            }
            EventData::Activity(d) => serde_json::to_value(d).unwrap_or(Value::Null),
            EventData::Renewed {
                timeout,
                expires_at_ms,
            } => serde_json::to_value(RenewedData {
                timeout: *timeout,
                expires_at: expires_at_ms.map(crate::time::format_iso_ms),
            })
            .unwrap_or(Value::Null),
            EventData::Terminal(d) => serde_json::to_value(d).unwrap_or(Value::Null),
        };
        let mut data = data;
        strip_nulls(&mut data);
        serde_json::json!({
            "specversion": "1.0",
            "id": self.id,
            "source": self.source,
            "type": self.kind.type_name(),
            "subject": self.session_id,
            "time": crate::time::format_iso_ms(self.time_ms),
            "datacontenttype": "application/json",
            "data": data,
        })
    }
}

/// Removes `null` members from objects, recursively (absent = null on input).
fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(s: &str) -> Result<Event, DecodeError> {
        decode_structured(s.as_bytes())
    }

    #[test]
    fn decodes_created_and_round_trips() {
        let e = ev(r#"{"specversion":"1.0","id":"e1","source":"/t","type":"session.created",
            "subject":"s1","time":"2026-11-22T10:00:00Z","extra":1,
            "data":{"user_id":"u1","timeout":{"timeout_minutes":15},"expires_at":"2026-11-22T11:00:00Z","future":true}}"#)
        .unwrap();
        assert_eq!(e.kind, EventKind::Created);
        assert_eq!(e.created_expires_at_ms, Some(e.time_ms + 3_600_000));
        let again = decode_structured(e.to_json().to_string().as_bytes()).unwrap();
        assert_eq!(again, e);
    }

    #[test]
    fn rejects_bad_input_with_reasons() {
        let cases = [
            ("{", "bad JSON"),
            (
                r#"{"specversion":"0.3","id":"e","source":"s","type":"session.ended","subject":"x","time":"2026-01-01T00:00:00Z"}"#,
                "specversion",
            ),
            (
                r#"{"specversion":"1.0","source":"s","type":"session.ended","subject":"x","time":"2026-01-01T00:00:00Z"}"#,
                "missing attribute `id`",
            ),
            (
                r#"{"specversion":"1.0","id":"e","source":"s","type":"session.nope","subject":"x","time":"2026-01-01T00:00:00Z"}"#,
                "unknown event type",
            ),
            (
                r#"{"specversion":"1.0","id":"e","source":"s","type":"session.ended","subject":"x","time":"noon"}"#,
                "unparseable time",
            ),
            (
                r#"{"specversion":"1.0","id":"e","source":"s","type":"session.created","subject":"x","time":"2026-01-01T00:00:00Z","data":{}}"#,
                "user_id",
            ),
            (
                r#"{"specversion":"1.0","id":"e","source":"s","type":"session.activity","subject":"x","time":"2026-01-01T00:00:00Z","data":{"usage":{"prompt_tokens":"many"}}}"#,
                "invalid data",
            ),
            (
                r#"{"specversion":"1.0","id":"e","source":"s","type":"session.activity","subject":"x","time":"2026-01-01T00:00:00Z","data":[1]}"#,
                "invalid data",
            ),
        ];
        for (input, want) in cases {
            let err = ev(input).unwrap_err().to_string();
            assert!(err.contains(want), "{input}: {err}");
        }
        let big = vec![b' '; MAX_EVENT_BYTES + 1];
        assert!(matches!(
            decode_structured(&big),
            Err(DecodeError::Oversize(_))
        ));
    }

    #[test]
    fn data_is_read_straight_but_judged_as_through_a_value() {
        let head =
            r#""specversion":"1.0","source":"s","subject":"x","time":"2026-01-01T00:00:00Z""#;
        // Escaped attributes are unescaped (they cannot be borrowed).
        let e = ev(&format!(
            r#"{{{head},"id":"e\u0031","type":"session.activity","data":{{"trace_id":"t\n"}}}}"#
        ))
        .unwrap();
        assert_eq!(e.id, "e1");
        let EventData::Activity(d) = &e.data else {
            panic!("{e:?}")
        };
        assert_eq!(d.trace_id.as_deref(), Some("t\n"));
        // A duplicate key keeps its last value, as a `Value` did.
        let e = ev(&format!(
            r#"{{{head},"id":"e","type":"session.activity","data":{{"trace_id":"a","trace_id":"b"}}}}"#
        ))
        .unwrap();
        let EventData::Activity(d) = &e.data else {
            panic!("{e:?}")
        };
        assert_eq!(d.trace_id.as_deref(), Some("b"));
        // `null` data is absent data.
        let e = ev(&format!(
            r#"{{{head},"id":"e","type":"session.ended","data":null}}"#
        ))
        .unwrap();
        assert_eq!(e.data, EventData::Terminal(TerminalData::default()));
        let err = ev(&format!(
            r#"{{{head},"id":"e","type":"session.created","data":null}}"#
        ))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid data for session.created: missing field `user_id`"
        );
        // A rejection's reason names no position in the payload.
        let err = ev(&format!(
            r#"{{{head},"id":"e","type":"session.activity","data":{{"usage":{{"prompt_tokens":-1}}}}}}"#
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("invalid data for session.activity: invalid value"),
            "{err}"
        );
        assert!(!err.contains("line"), "{err}");
    }

    #[test]
    fn decodes_binary_mode() {
        let headers = [
            ("ce_specversion", "1.0"),
            ("ce_id", "e9"),
            ("ce_source", "/b"),
            ("ce_type", "session.activity"),
            ("ce_subject", "s9"),
            ("ce_time", "2026-11-22T10:00:00.5Z"),
        ];
        let e = decode_binary(
            |n| {
                headers
                    .iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, v)| v.as_bytes())
            },
            br#"{"trace_id":"t"}"#,
        )
        .unwrap();
        assert_eq!(e.session_id, "s9");
        assert_eq!(e.time_ms % 1000, 500);
        let rec = decode_record(Some(b"s9"), Some(br#"{"trace_id":"t"}"#), |n| {
            headers
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.as_bytes())
        });
        assert_eq!(rec.unwrap(), e);
        let bad_key = decode_record(Some(&[0xff, 0xfe]), Some(br#"{}"#), |n| {
            headers
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.as_bytes())
        });
        assert_eq!(bad_key.unwrap_err(), DecodeError::Utf8("key"));
        let missing = decode_binary(|_| None, b"{}").unwrap_err();
        assert_eq!(missing, DecodeError::Missing("specversion"));
    }
}
