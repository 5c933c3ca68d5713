//! The JSON Schema in `schemas/` is the contract: every sample validates and
//! decodes with the Rust types; invalid events fail both.

use std::path::PathBuf;

use ledger_core::{decode_record, decode_structured, EventKind};
use serde_json::Value;

fn schemas() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas")
}

/// A named change to a valid event.
type Mutation = Box<dyn Fn(&mut Value)>;

fn validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(schemas().join("session-event.schema.json")).unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap()
}

#[test]
fn every_type_has_a_valid_sample_that_decodes() {
    let v = validator();
    for kind in EventKind::ALL {
        let name = kind.type_name().trim_start_matches("session.");
        let path = schemas().join("samples").join(format!("{name}.json"));
        let text = std::fs::read_to_string(&path).unwrap();
        let json: Value = serde_json::from_str(&text).unwrap();
        let errors: Vec<String> = v.iter_errors(&json).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{name}: {errors:?}");
        let event = decode_structured(text.as_bytes()).unwrap();
        assert_eq!(event.kind, kind);
        // Re-encoding yields a document that still validates and decodes the same.
        let again = event.to_json();
        assert!(v.is_valid(&again), "{name} re-encoded");
        assert_eq!(
            decode_structured(again.to_string().as_bytes()).unwrap(),
            event
        );
    }
}

#[test]
fn invalid_events_fail_schema_and_decoder_alike() {
    let v = validator();
    let base: Value = serde_json::from_str(
        &std::fs::read_to_string(schemas().join("samples/created.json")).unwrap(),
    )
    .unwrap();
    let mutations: Vec<(&str, Mutation)> = vec![
        (
            "no user_id",
            Box::new(|e| {
                e["data"].as_object_mut().unwrap().remove("user_id");
            }),
        ),
        (
            "bad type",
            Box::new(|e| e["type"] = "session.paused".into()),
        ),
        ("bad time", Box::new(|e| e["time"] = "tuesday".into())),
        (
            "wrong type",
            Box::new(|e| e["data"]["timeout"]["timeout_minutes"] = "ten".into()),
        ),
        (
            "negative",
            Box::new(|e| e["data"]["timeout"]["timeout_minutes"] = (-1).into()),
        ),
        (
            "no subject",
            Box::new(|e| {
                e.as_object_mut().unwrap().remove("subject");
            }),
        ),
        ("spec", Box::new(|e| e["specversion"] = "0.3".into())),
    ];
    for (name, m) in mutations {
        let mut e = base.clone();
        m(&mut e);
        assert!(!v.is_valid(&e), "schema accepted: {name}");
        assert!(
            decode_structured(e.to_string().as_bytes()).is_err(),
            "decoder accepted: {name}"
        );
    }
}

/// Kafka protocol binding: a record whose `content-type` is the CloudEvents
/// JSON format is in structured mode even when `ce_*` headers are present
/// (here naming another event): every sample decodes from the value alone.
#[test]
fn structured_content_type_beats_ce_headers() {
    let headers: [(&str, &[u8]); 7] = [
        (
            "content-type",
            b"application/cloudevents+json; charset=utf-8",
        ),
        ("ce_specversion", b"1.0"),
        ("ce_id", b"from-headers"),
        ("ce_source", b"/headers"),
        ("ce_type", b"session.ended"),
        ("ce_subject", b"other-session"),
        ("ce_time", b"2030-01-01T00:00:00Z"),
    ];
    let header = |n: &str| headers.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
    for kind in EventKind::ALL {
        let name = kind.type_name().trim_start_matches("session.");
        let text = std::fs::read_to_string(schemas().join("samples").join(format!("{name}.json")))
            .unwrap();
        let want = decode_structured(text.as_bytes()).unwrap();
        let got = decode_record(
            Some(want.session_id.as_bytes()),
            Some(text.as_bytes()),
            header,
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got, want, "{name}");
    }
}
