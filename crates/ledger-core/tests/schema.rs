//! The JSON Schema in `schemas/` is the contract: every sample validates and
//! decodes with the Rust types; invalid events fail both.

use std::path::PathBuf;

use ledger_core::{decode_structured, EventKind};
use serde_json::Value;

fn schemas() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas")
}

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
    let mutations: Vec<(&str, Box<dyn Fn(&mut Value)>)> = vec![
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
