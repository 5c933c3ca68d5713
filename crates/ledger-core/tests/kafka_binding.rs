//! The CloudEvents Kafka protocol binding: the content mode comes from the
//! `content-type` header (structured when it names `application/cloudevents`,
//! even with `ce_*` headers present), else from `ce_specversion` (binary), else
//! structured. Covers the records the pinned producer SDKs actually write and
//! every malformed variant (a `DecodeError`, never a panic).

use ledger_core::event::{content_mode, ContentMode};
use ledger_core::{decode_record, DecodeError, EventData, EventKind};
use proptest::prelude::*;

/// A record's headers as (name, value); `None` is a null header value (what
/// kafkajs writes for an `undefined` one).
type Headers<'a> = &'a [(&'a str, Option<&'a [u8]>)];

/// An owned list of headers.
type HeaderList<'a> = Vec<(&'a str, Option<&'a [u8]>)>;

/// Looks a header up the way the consumer does: first header of that name.
fn lookup<'a>(h: Headers<'a>) -> impl Fn(&str) -> Option<&'a [u8]> + 'a {
    move |name| h.iter().find(|(k, _)| *k == name).and_then(|(_, v)| *v)
}

fn decode(
    key: Option<&str>,
    h: Headers<'_>,
    value: &str,
) -> Result<ledger_core::Event, DecodeError> {
    decode_record(key.map(str::as_bytes), Some(value.as_bytes()), lookup(h))
}

const ENVELOPE: &str = r#"{"specversion":"1.0","id":"env-1","source":"/structured","type":"session.created","subject":"s1","time":"2026-11-22T10:00:00.250Z","datacontenttype":"application/json","data":{"user_id":"u1","client_id":"c1"}}"#;
const DATA: &str = r#"{"user_id":"u2","client_id":"c2"}"#;

/// `ce_*` headers naming a different event: a structured record must ignore them.
fn stray_ce(ct: &[u8]) -> HeaderList<'_> {
    vec![
        ("content-type", Some(ct)),
        ("ce_specversion", Some(b"1.0".as_slice())),
        ("ce_id", Some(b"hdr-1".as_slice())),
        ("ce_source", Some(b"/headers".as_slice())),
        ("ce_type", Some(b"session.ended".as_slice())),
        ("ce_subject", Some(b"s1".as_slice())),
        ("ce_time", Some(b"2026-11-22T11:00:00Z".as_slice())),
    ]
}

fn binary(ct: Option<&[u8]>) -> HeaderList<'_> {
    let mut h = vec![
        ("ce_specversion", Some(b"1.0".as_slice())),
        ("ce_id", Some(b"bin-1".as_slice())),
        ("ce_source", Some(b"/binary".as_slice())),
        ("ce_type", Some(b"session.created".as_slice())),
        ("ce_subject", Some(b"s2".as_slice())),
        ("ce_time", Some(b"2026-11-22T10:00:00.5Z".as_slice())),
    ];
    if let Some(ct) = ct {
        h.push(("content-type", Some(ct)));
    }
    h
}

fn user_client(e: &ledger_core::Event) -> (String, Option<String>) {
    match &e.data {
        EventData::Created(d) => (d.user_id.clone(), d.client_id.clone()),
        other => panic!("not created: {other:?}"),
    }
}

/// The old decoder chose binary mode whenever `ce_specversion` was present and
/// so read the envelope as `data` (see also `schema.rs`).
#[test]
fn structured_content_type_wins_over_ce_headers() {
    for ct in [
        "application/cloudevents+json",
        "application/cloudevents+json; charset=utf-8",
        "Application/CloudEvents+JSON ; charset=UTF-8",
        "application/cloudevents",
    ] {
        let h = stray_ce(ct.as_bytes());
        assert_eq!(
            content_mode(lookup(&h)),
            Ok(ContentMode::Structured),
            "{ct}"
        );
        let e = decode(Some("s1"), &h, ENVELOPE).unwrap_or_else(|err| panic!("{ct}: {err}"));
        assert_eq!(e.id, "env-1", "{ct}: attributes come from the value");
        assert_eq!(e.source, "/structured");
        assert_eq!(e.kind, EventKind::Created);
        assert_eq!(e.time_ms % 1000, 250);
        assert_eq!(user_client(&e), ("u1".into(), Some("c1".into())));
    }
}

#[test]
fn mode_selection_table() {
    use ContentMode::*;
    let s = |v: &'static str| Some(v.as_bytes());
    let cases: Vec<(&str, HeaderList, ContentMode)> = vec![
        ("no headers", vec![], Structured),
        (
            "plain JSON content-type",
            vec![("content-type", s("application/json"))],
            Structured,
        ),
        (
            "ce content-type alone",
            vec![("content-type", s("application/cloudevents+json"))],
            Structured,
        ),
        (
            "ce_specversion alone",
            vec![("ce_specversion", s("1.0"))],
            Binary,
        ),
        (
            "binary with JSON data",
            binary(s("application/json")),
            Binary,
        ),
        ("binary without content-type", binary(None), Binary),
        (
            "structured + ce headers",
            stray_ce(b"application/cloudevents+json"),
            Structured,
        ),
        (
            "null content-type",
            vec![("content-type", None), ("ce_specversion", s("1.0"))],
            Binary,
        ),
        (
            "null ce_specversion",
            vec![("ce_specversion", None)],
            Structured,
        ),
        // Header names are case-sensitive per the binding.
        (
            "uppercase CE_SPECVERSION",
            vec![("CE_SPECVERSION", s("1.0"))],
            Structured,
        ),
        (
            "Content-Type is not content-type",
            vec![
                ("Content-Type", s("application/cloudevents+json")),
                ("ce_specversion", s("1.0")),
            ],
            Binary,
        ),
    ];
    for (name, h, want) in cases {
        assert_eq!(content_mode(lookup(&h)), Ok(want), "{name}");
    }
}

#[test]
fn binary_mode_accepts_json_data_types() {
    for ct in [
        None,
        Some("application/json"),
        Some("application/json; charset=utf-8"),
        Some("APPLICATION/JSON"),
        Some("text/json"),
        Some("application/vnd.session+json"),
    ] {
        let h = binary(ct.map(str::as_bytes));
        let e = decode(Some("s2"), &h, DATA).unwrap_or_else(|err| panic!("{ct:?}: {err}"));
        assert_eq!(e.id, "bin-1");
        assert_eq!(e.session_id, "s2");
        assert_eq!(e.time_ms % 1000, 500);
        assert_eq!(user_client(&e), ("u2".into(), Some("c2".into())));
    }
}

#[test]
fn malformed_records_are_decode_errors() {
    let s = |v: &'static str| Some(v.as_bytes());
    let with = |mut h: HeaderList<'static>, name: &'static str, v: Option<&'static [u8]>| {
        h.retain(|(k, _)| *k != name);
        if let Some(v) = v {
            h.push((name, Some(v)));
        }
        h
    };
    type Check = fn(&DecodeError) -> bool;
    let cases: Vec<(&str, HeaderList, &str, Check)> = vec![
        (
            "batch content type",
            vec![("content-type", s("application/cloudevents-batch+json"))],
            ENVELOPE,
            |e| matches!(e, DecodeError::ContentType { reason, .. } if reason.contains("batch")),
        ),
        (
            "non-JSON event format",
            stray_ce(b"application/cloudevents+avro"),
            ENVELOPE,
            |e| matches!(e, DecodeError::ContentType { reason, .. } if reason.contains("JSON event format")),
        ),
        (
            "binary with text data",
            binary(s("text/plain")),
            DATA,
            |e| matches!(e, DecodeError::ContentType { content_type, .. } if content_type == "text/plain"),
        ),
        (
            "binary with octet-stream data",
            binary(s("application/octet-stream")),
            DATA,
            |e| matches!(e, DecodeError::ContentType { .. }),
        ),
        (
            "content-type not UTF-8",
            vec![("content-type", Some(&[0xff, 0xfe][..]))],
            ENVELOPE,
            |e| *e == DecodeError::Utf8("content-type"),
        ),
        (
            "binary content-type not UTF-8",
            binary(Some(&[0xc3, 0x28][..])),
            DATA,
            |e| *e == DecodeError::Utf8("content-type"),
        ),
        (
            "structured value not JSON",
            vec![("content-type", s("application/cloudevents+json"))],
            "{\"specversion\":",
            |e| matches!(e, DecodeError::Json(_)),
        ),
        (
            "structured value is the data only",
            vec![("content-type", s("application/cloudevents+json"))],
            DATA,
            |e| *e == DecodeError::Missing("specversion"),
        ),
        (
            "binary data not JSON",
            binary(s("application/json")),
            "user_id=u2",
            |e| matches!(e, DecodeError::Json(_)),
        ),
        (
            "binary without ce_id",
            with(binary(None), "ce_id", None),
            DATA,
            |e| *e == DecodeError::Missing("id"),
        ),
        (
            "binary without ce_type",
            with(binary(None), "ce_type", None),
            DATA,
            |e| *e == DecodeError::Missing("type"),
        ),
        (
            "binary ce_specversion 0.3",
            with(binary(None), "ce_specversion", Some(b"0.3".as_slice())),
            DATA,
            |e| matches!(e, DecodeError::SpecVersion(v) if v == "0.3"),
        ),
        (
            "binary bad ce_time",
            with(binary(None), "ce_time", Some(b"noon".as_slice())),
            DATA,
            |e| matches!(e, DecodeError::BadTime(_)),
        ),
        (
            "binary ce_subject not UTF-8",
            with(binary(None), "ce_subject", Some(&[0xff][..])),
            DATA,
            |e| *e == DecodeError::Utf8("ce_subject"),
        ),
        (
            "binary unknown type",
            with(
                binary(None),
                "ce_type",
                Some(b"com.example.other".as_slice()),
            ),
            DATA,
            |e| matches!(e, DecodeError::UnknownType(_)),
        ),
        ("binary data without user_id", binary(None), "{}", |e| {
            matches!(e, DecodeError::BadData { .. })
        }),
        // Uppercase attribute headers are not the binding's: the value is then
        // read as a structured envelope, which the bare data is not.
        (
            "uppercase CE_ headers",
            vec![("CE_SPECVERSION", s("1.0")), ("CE_ID", s("x"))],
            DATA,
            |e| *e == DecodeError::Missing("specversion"),
        ),
    ];
    for (name, h, value, ok) in cases {
        let key = if value == ENVELOPE { "s1" } else { "s2" };
        let err = decode(Some(key), &h, value).expect_err(name);
        assert!(ok(&err), "{name}: unexpected error {err:?}");
        assert!(!err.to_string().is_empty());
    }
}

#[test]
fn key_must_match_subject_in_both_modes() {
    let h = stray_ce(b"application/cloudevents+json");
    assert!(matches!(
        decode(Some("s2"), &h, ENVELOPE),
        Err(DecodeError::KeyMismatch { .. })
    ));
    let h = binary(None);
    assert!(matches!(
        decode(Some("s1"), &h, DATA),
        Err(DecodeError::KeyMismatch { .. })
    ));
    assert!(decode(None, &h, DATA).is_ok(), "a record without a key");
}

/// The records as the pinned SDKs build them (captured from their
/// `to_binary`/`to_structured` and `Kafka.binary`/`Kafka.structured` with the
/// attributes below): each decodes to the same event.
#[test]
fn records_as_the_sdks_write_them() {
    let s = |v: &'static str| Some(v.as_bytes());
    let data = r#"{"user_id": "u1"}"#;
    let cases: Vec<(&str, HeaderList, String, i64)> = vec![
        (
            // cloudevents (PyPI) 2.2.0, cloudevents.core.bindings.kafka.to_binary
            "python core binary",
            vec![
                ("ce_id", s("ev-1")), ("ce_type", s("session.created")), ("ce_source", s("/sdk")),
                ("ce_subject", s("s-sdk")), ("ce_time", s("2026-11-22T10:00:00.123456Z")),
                ("content-type", s("application/json")), ("ce_specversion", s("1.0")),
            ],
            data.to_string(),
            123,
        ),
        (
            // ... to_structured: content-type names the JSON event format.
            "python core structured",
            vec![("content-type", s("application/cloudevents+json"))],
            r#"{"id": "ev-1", "type": "session.created", "source": "/sdk", "subject": "s-sdk", "time": "2026-11-22T10:00:00.123456Z", "datacontenttype": "application/json", "specversion": "1.0", "data": {"user_id": "u1"}}"#.to_string(),
            123,
        ),
        (
            // cloudevents.v1.kafka.to_binary (the 1.x `cloudevents.kafka`): time
            // as Python's isoformat with +00:00.
            "python v1 binary",
            vec![
                ("content-type", s("application/json")), ("ce_id", s("ev-1")), ("ce_type", s("session.created")),
                ("ce_source", s("/sdk")), ("ce_subject", s("s-sdk")),
                ("ce_time", s("2026-11-22T10:00:00.123456+00:00")), ("ce_specversion", s("1.0")),
            ],
            data.to_string(),
            123,
        ),
        (
            // cloudevents.v1.kafka.to_structured moves `datacontenttype` into the
            // content-type header (so it is `application/json`, not the
            // CloudEvents format) and leaves `partitionkey` in the envelope.
            "python v1 structured",
            vec![("content-type", s("application/json"))],
            r#"{"id": "ev-1", "type": "session.created", "source": "/sdk", "subject": "s-sdk", "time": "2026-11-22T10:00:00.123456+00:00", "partitionkey": "s-sdk", "specversion": "1.0", "data": {"user_id": "u1"}}"#.to_string(),
            123,
        ),
        (
            // cloudevents (npm) 10.0.0, Kafka.binary: also ce_datacontenttype and
            // ce_partitionkey, and null values for unset attributes.
            "js binary",
            vec![
                ("content-type", s("application/json")), ("ce_id", s("ev-1")),
                ("ce_time", s("2026-11-22T10:00:00.123Z")), ("ce_type", s("session.created")),
                ("ce_source", s("/sdk")), ("ce_specversion", s("1.0")),
                ("ce_datacontenttype", s("application/json")), ("ce_subject", s("s-sdk")),
                ("ce_datacontentencoding", None), ("ce_dataschema", None), ("ce_schemaurl", None),
                ("ce_partitionkey", s("s-sdk")),
            ],
            r#"{"user_id":"u1"}"#.to_string(),
            123,
        ),
        (
            "js structured",
            vec![("content-type", s("application/cloudevents+json; charset=utf-8"))],
            r#"{"id":"ev-1","time":"2026-11-22T10:00:00.123Z","type":"session.created","source":"/sdk","specversion":"1.0","datacontenttype":"application/json","subject":"s-sdk","data":{"user_id":"u1"},"partitionkey":"s-sdk"}"#.to_string(),
            123,
        ),
    ];
    let mut events = vec![];
    for (name, h, value, ms) in cases {
        let e = decode(Some("s-sdk"), &h, &value).unwrap_or_else(|err| panic!("{name}: {err}"));
        assert_eq!(
            e.time_ms % 1000,
            ms,
            "{name}: sub-millisecond digits are truncated"
        );
        assert_eq!(user_client(&e), ("u1".into(), None), "{name}");
        events.push(e);
    }
    assert!(
        events.windows(2).all(|w| w[0] == w[1]),
        "all SDK encodings decode alike"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// Any mix of the binding's headers (valid, junk or null) and any value is
    /// decoded or rejected, never a panic.
    #[test]
    fn never_panics(
        picks in proptest::collection::vec((0usize..9, proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40))), 0..8),
        value in prop_oneof![
            Just(ENVELOPE.as_bytes().to_vec()),
            Just(DATA.as_bytes().to_vec()),
            proptest::collection::vec(any::<u8>(), 0..64),
        ],
        key in proptest::option::of(prop_oneof![Just(b"s1".to_vec()), Just(b"s2".to_vec()), proptest::collection::vec(any::<u8>(), 0..4)]),
    ) {
        const NAMES: [&str; 9] = ["content-type", "ce_specversion", "ce_id", "ce_source", "ce_type", "ce_subject", "ce_time", "ce_datacontenttype", "Content-Type"];
        const VALUES: [&str; 9] = ["application/cloudevents+json", "1.0", "id", "/s", "session.created", "s2", "2026-11-22T10:00:00Z", "application/json", "application/cloudevents-batch+json"];
        let owned: Vec<(&str, Option<Vec<u8>>)> = picks
            .into_iter()
            .map(|(i, v)| (NAMES[i], Some(v.unwrap_or_else(|| VALUES[i].as_bytes().to_vec()))))
            .collect();
        let h: Vec<(&str, Option<&[u8]>)> = owned.iter().map(|(k, v)| (*k, v.as_deref())).collect();
        let _ = content_mode(lookup(&h));
        let _ = decode_record(key.as_deref(), Some(&value), lookup(&h));
    }
}
