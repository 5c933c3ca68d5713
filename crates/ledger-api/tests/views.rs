//! The four views over HTTP against a real sled store: golden files (fixed
//! events, fixed `now`), error envelopes and statuses, auth scopes, and a
//! fuzz-style sweep of random queries and bodies (never a 5xx).

use std::path::PathBuf;
use std::sync::Arc;

mod support;

use ledger_api::{hash_key, ApiKey, AppState, Auth, Scope};
use ledger_core::Defaults;
use ledger_gen::{generate, GenConfig};
use ledger_store::Store;
use rand::Rng;
use serde_json::Value;

const START: i64 = 1_795_000_000_000;
const NOW: i64 = START + 25 * 60_000;
const ADMIN: &str = "admin-secret";
const USER: &str = "user-secret";
const SCOPED_USER: &str = "user_3";

struct Fixture {
    server: support::Served,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Defaults::default()).unwrap();
    let events = generate(GenConfig {
        seed: 5,
        sessions: 40,
        events: 300,
        users: 6,
        start_ms: START,
        block: 40,
        ..Default::default()
    });
    support::load(&store, "session-events", events);
    let auth = Auth::new(vec![
        ApiKey {
            name: "admin".into(),
            sha256: hash_key(ADMIN),
            scope: Scope::Admin,
        },
        ApiKey {
            name: "user".into(),
            sha256: hash_key(USER),
            scope: Scope::User(SCOPED_USER.into()),
        },
    ]);
    let state = AppState::new(
        store,
        "session-events",
        auth,
        Arc::new(|| NOW),
        Default::default(),
    );
    Fixture {
        server: support::serve(state),
        _dir: dir,
    }
}

fn call(
    f: &Fixture,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let c = reqwest::blocking::Client::new();
    let url = format!("http://{}{path}", f.server.addr);
    let mut req = if method == "POST" {
        c.post(url)
    } else {
        c.get(url)
    };
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let r = req.send().unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

#[test]
fn responses_match_golden_files() {
    let f = fixture();
    let cases: &[(&str, &str, &str, Option<&str>)] = &[
        ("clerk_list", "GET", "/v1/sessions?limit=3", None),
        (
            "clerk_list_paginated",
            "GET",
            "/v1/sessions?user_id=user_3&paginated=true&limit=2",
            None,
        ),
        ("clerk_get", "GET", "/v1/sessions/{ID}", None),
        (
            "orq_query",
            "POST",
            "/v2/traces/sessions/query",
            Some(
                r#"{"pagination":{"limit":2},"query":{"operator":"and","filters":[{"type":"string","operator":"is","value":"ws_1","path":"/workspace_id"}]}}"#,
            ),
        ),
        (
            "wingspan_list",
            "GET",
            "/users/session/api?userId=user_1&limit=3",
            None,
        ),
        ("wingspan_token", "GET", "/users/session/token/{ID}", None),
        ("eliza_list", "GET", "/api/messaging/sessions?limit=2", None),
        (
            "eliza_health",
            "GET",
            "/api/messaging/sessions/health",
            None,
        ),
        (
            "eliza_not_found",
            "GET",
            "/api/messaging/sessions/nope",
            None,
        ),
        ("clerk_bad_limit", "GET", "/v1/sessions?limit=0", None),
    ];
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let id = list_ids(&f, "user_3").remove(0);
    for (name, method, path, body) in cases {
        let path = path.replace("{ID}", &id);
        let (status, text) = call(&f, method, &path, Some(ADMIN), *body);
        let v: Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{name}: not JSON: {text}"));
        let got = format!("{status}\n{}\n", serde_json::to_string_pretty(&v).unwrap());
        let file = golden_dir().join(format!("{name}.json"));
        if update {
            std::fs::write(&file, &got).unwrap();
        }
        let want = std::fs::read_to_string(&file)
            .unwrap_or_else(|_| panic!("missing golden file {}", file.display()));
        assert_eq!(got, want, "{name} differs from {}", file.display());
        assert!(!text.contains("token\""), "{name} must never carry a token");
    }
}

#[test]
fn errors_use_each_views_envelope_and_status() {
    let f = fixture();
    // Missing and wrong keys: 401 in each view's own envelope.
    let (s, b) = call(&f, "GET", "/v1/sessions", None, None);
    assert_eq!(s, 401);
    assert!(
        b.contains("\"errors\"") && b.contains("long_message"),
        "{b}"
    );
    let (s, b) = call(
        &f,
        "POST",
        "/v2/traces/sessions/query",
        Some("wrong"),
        Some("{}"),
    );
    assert_eq!(s, 401);
    let v: Value = serde_json::from_str(&b).unwrap();
    assert!(v["code"].is_string() && v["message"].is_string());
    let (s, b) = call(&f, "GET", "/users/session/api", None, None);
    assert_eq!(s, 401);
    assert!(serde_json::from_str::<Value>(&b).unwrap()["error"]["code"].is_string());
    let (s, b) = call(&f, "GET", "/api/messaging/sessions", None, None);
    assert_eq!(s, 401);
    assert!(serde_json::from_str::<Value>(&b).unwrap()["error"]["timestamp"].is_string());
    // Scoped key: its own user works, another user is 403.
    let (s, b) = call(&f, "GET", "/v1/sessions?limit=500", Some(USER), None);
    assert_eq!(s, 200);
    let list: Vec<Value> = serde_json::from_str(&b).unwrap();
    assert!(!list.is_empty() && list.iter().all(|x| x["user_id"] == SCOPED_USER));
    assert_eq!(
        call(&f, "GET", "/v1/sessions?user_id=user_1", Some(USER), None).0,
        403
    );
    let other = list_ids(&f, "user_1");
    assert_eq!(
        call(
            &f,
            "GET",
            &format!("/v1/sessions/{}", other[0]),
            Some(USER),
            None
        )
        .0,
        403
    );
    // Bad parameters and bodies.
    assert_eq!(
        call(&f, "GET", "/v1/sessions?limit=501", Some(ADMIN), None).0,
        422
    );
    assert_eq!(
        call(&f, "GET", "/v1/sessions?offset=-1", Some(ADMIN), None).0,
        422
    );
    assert_eq!(
        call(&f, "GET", "/v1/sessions?status=sleeping", Some(ADMIN), None).0,
        422
    );
    assert_eq!(
        call(&f, "GET", "/v1/sessions?cursor=zz", Some(ADMIN), None).0,
        400
    );
    assert_eq!(
        call(&f, "GET", "/v1/sessions/unknown", Some(ADMIN), None).0,
        404
    );
    assert_eq!(
        call(
            &f,
            "POST",
            "/v2/traces/sessions/query",
            Some(ADMIN),
            Some("{\"pagination\":")
        )
        .0,
        400
    );
    assert_eq!(
        call(
            &f,
            "POST",
            "/v2/traces/sessions/query",
            Some(ADMIN),
            Some(
                r#"{"query":{"filters":[{"operator":"sounds_like","path":"/tags","value":"x"}]}}"#
            )
        )
        .0,
        400
    );
    let big = format!("{{\"x\":\"{}\"}}", "a".repeat(100_000));
    assert_eq!(
        call(
            &f,
            "POST",
            "/v2/traces/sessions/query",
            Some(ADMIN),
            Some(&big)
        )
        .0,
        413
    );
    assert_eq!(
        call(
            &f,
            "GET",
            "/api/messaging/sessions/unknown",
            Some(ADMIN),
            None
        )
        .0,
        404
    );
}

fn list_ids(f: &Fixture, user: &str) -> Vec<String> {
    let (_, b) = call(
        f,
        "GET",
        &format!("/v1/sessions?user_id={user}&limit=500"),
        Some(ADMIN),
        None,
    );
    serde_json::from_str::<Vec<Value>>(&b)
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn random_queries_and_bodies_never_get_a_5xx() {
    let f = fixture();
    let mut rng = rand::rng();
    let alphabet: Vec<char> = "abc=&%?/_-.:{}[]\",0123456789 limit offset status user_id paginated cursor true false -1 é\u{0}".chars().collect();
    let paths = [
        "/v1/sessions?",
        "/users/session/api?",
        "/api/messaging/sessions?",
        "/v1/sessions/",
    ];
    for i in 0..1_200 {
        let junk: String = (0..rng.random_range(0..40))
            .map(|_| alphabet[rng.random_range(0..alphabet.len())])
            .collect();
        let (status, _) = if i % 2 == 0 {
            let path = format!("{}{}", paths[i % paths.len()], urlish(&junk));
            call(&f, "GET", &path, Some(ADMIN), None)
        } else {
            let body = if i % 3 == 0 {
                format!(
                    r#"{{"pagination":{{"limit":{}}},"query":{{"operator":"{}","filters":[{{"operator":"{}","path":"/{}","value":{}}}]}}}}"#,
                    rng.random_range(-5..300),
                    ["and", "or", "xor"][i % 3],
                    ["is", "contains", "is_between", "is_empty", "nope"][i % 5],
                    junk.replace('"', ""),
                    ["1", "\"x\"", "[1,2]", "null", "{}"][i % 5]
                )
            } else {
                junk.clone()
            };
            call(
                &f,
                "POST",
                "/v2/traces/sessions/query",
                Some(ADMIN),
                Some(&body),
            )
        };
        assert!(status < 500, "request {i} got {status}");
    }
}

/// Percent-encodes what a URL cannot carry raw.
fn urlish(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "=&_-.:,".contains(c) {
                c.to_string()
            } else {
                c.to_string().bytes().map(|b| format!("%{b:02X}")).collect()
            }
        })
        .collect()
}

/// `schemas/openapi.yaml` as JSON, with OpenAPI 3.0's `nullable: true`
/// rewritten to JSON Schema's `type: [T, "null"]`.
fn openapi() -> Value {
    fn nullable(v: &mut Value) {
        match v {
            Value::Object(m) => {
                if m.remove("nullable") == Some(Value::Bool(true)) {
                    if let Some(Value::String(t)) = m.get("type").cloned() {
                        m.insert("type".into(), serde_json::json!([t, "null"]));
                    }
                }
                m.values_mut().for_each(nullable);
            }
            Value::Array(a) => a.iter_mut().for_each(nullable),
            _ => {}
        }
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas/openapi.yaml");
    let mut v: Value = serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    nullable(&mut v);
    v
}

#[test]
fn real_responses_validate_against_the_openapi_document() {
    let f = fixture();
    let spec = openapi();
    let ids: Vec<String> = {
        let (_, b) = call(&f, "GET", "/v1/sessions?limit=500", Some(ADMIN), None);
        let v: Vec<Value> = serde_json::from_str(&b).unwrap();
        v.iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, b) = call(
        &f,
        "GET",
        "/api/messaging/sessions?limit=1",
        Some(ADMIN),
        None,
    );
    let live = serde_json::from_str::<Value>(&b).unwrap()["sessions"][0]["sessionId"]
        .as_str()
        .unwrap()
        .to_string();
    let ws = "{\"query\":{\"filters\":[{\"path\":\"/workspace_id\",\"operator\":\"is\",\"value\":\"ws_1\"}]}}";
    // (method, template, path, body, key)
    let mut cases: Vec<(&str, &str, String, Option<&str>, Option<&str>)> = vec![
        (
            "get",
            "/v1/sessions",
            "/v1/sessions?limit=50".into(),
            None,
            Some(ADMIN),
        ),
        (
            "get",
            "/v1/sessions",
            "/v1/sessions?paginated=true&status=active".into(),
            None,
            Some(ADMIN),
        ),
        (
            "get",
            "/v1/sessions",
            "/v1/sessions?limit=0".into(),
            None,
            Some(ADMIN),
        ),
        (
            "get",
            "/v1/sessions",
            "/v1/sessions?cursor=zz".into(),
            None,
            Some(ADMIN),
        ),
        ("get", "/v1/sessions", "/v1/sessions".into(), None, None),
        (
            "get",
            "/v1/sessions",
            "/v1/sessions?user_id=user_1".into(),
            None,
            Some(USER),
        ),
        (
            "get",
            "/v1/sessions/{id}",
            "/v1/sessions/nope".into(),
            None,
            Some(ADMIN),
        ),
        (
            "post",
            "/v2/traces/sessions/query",
            "/v2/traces/sessions/query".into(),
            Some("{}"),
            Some(ADMIN),
        ),
        (
            "post",
            "/v2/traces/sessions/query",
            "/v2/traces/sessions/query".into(),
            Some(ws),
            Some(ADMIN),
        ),
        (
            "post",
            "/v2/traces/sessions/query",
            "/v2/traces/sessions/query".into(),
            Some("{\"query\":"),
            Some(ADMIN),
        ),
        (
            "post",
            "/v2/traces/sessions/query",
            "/v2/traces/sessions/query".into(),
            Some("{}"),
            None,
        ),
        (
            "get",
            "/v2/traces/sessions/{id}",
            "/v2/traces/sessions/nope".into(),
            None,
            Some(ADMIN),
        ),
        (
            "get",
            "/users/session/api",
            "/users/session/api?userId=user_3".into(),
            None,
            Some(ADMIN),
        ),
        (
            "get",
            "/users/session/api",
            "/users/session/api".into(),
            None,
            Some(USER),
        ),
        (
            "get",
            "/users/session/api",
            "/users/session/api".into(),
            None,
            Some(ADMIN),
        ),
        (
            "get",
            "/users/session/api/{id}",
            "/users/session/api/nope".into(),
            None,
            Some(ADMIN),
        ),
        (
            "get",
            "/users/session/token/{id}",
            "/users/session/token/nope".into(),
            None,
            Some(ADMIN),
        ),
        (
            "get",
            "/api/messaging/sessions",
            "/api/messaging/sessions?limit=5".into(),
            None,
            Some(ADMIN),
        ),
        (
            "get",
            "/api/messaging/sessions",
            "/api/messaging/sessions?limit=x".into(),
            None,
            Some(ADMIN),
        ),
        (
            "get",
            "/api/messaging/sessions/health",
            "/api/messaging/sessions/health".into(),
            None,
            Some(ADMIN),
        ),
        (
            "get",
            "/api/messaging/sessions/{id}",
            "/api/messaging/sessions/nope".into(),
            None,
            Some(ADMIN),
        ),
        (
            "get",
            "/api/messaging/sessions/{id}",
            format!("/api/messaging/sessions/{live}"),
            None,
            Some(ADMIN),
        ),
        ("get", "/healthz", "/healthz".into(), None, None),
        ("get", "/readyz", "/readyz".into(), None, None),
        ("get", "/metrics", "/metrics".into(), None, None),
        ("get", "/openapi.yaml", "/openapi.yaml".into(), None, None),
    ];
    for id in ids.iter().take(12) {
        for (t, p) in [
            ("/v1/sessions/{id}", "/v1/sessions/"),
            ("/v2/traces/sessions/{id}", "/v2/traces/sessions/"),
            ("/users/session/api/{id}", "/users/session/api/"),
            ("/users/session/token/{id}", "/users/session/token/"),
            ("/api/messaging/sessions/{id}", "/api/messaging/sessions/"),
            (
                "/api/messaging/sessions/{id}/events",
                "/api/messaging/sessions/",
            ),
        ] {
            let suffix = if t.ends_with("/events") {
                "/events"
            } else {
                ""
            };
            cases.push(("get", t, format!("{p}{id}{suffix}"), None, Some(ADMIN)));
        }
    }
    let mut covered = std::collections::BTreeSet::new();
    let mut statuses = std::collections::BTreeSet::new();
    for (method, template, path, body, key) in &cases {
        let m = if *method == "post" { "POST" } else { "GET" };
        let (status, text) = call(&f, m, path, *key, *body);
        let op = &spec["paths"][template][method];
        assert!(
            op.is_object(),
            "{method} {template} is not in the OpenAPI document"
        );
        let resp = &op["responses"][status.to_string()];
        assert!(
            resp.is_object(),
            "{m} {path} answered {status}, which {template} does not document: {text}"
        );
        covered.insert((*method, *template));
        statuses.insert(status);
        let schema = &resp["content"]["application/json"]["schema"];
        if schema.is_null() {
            continue;
        }
        let root = serde_json::json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "allOf": [schema],
            "components": spec["components"],
        });
        let validator = jsonschema::validator_for(&root).unwrap();
        let v: Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{m} {path}: not JSON: {text}"));
        let errors: Vec<String> = validator
            .iter_errors(&v)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{m} {path} ({status}) does not match the document: {errors:#?}\n{text}"
        );
    }
    // Every documented operation was exercised.
    for (template, item) in spec["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            assert!(
                covered.contains(&(method.as_str(), template.as_str())),
                "{method} {template} was not exercised"
            );
        }
    }
    for s in [200, 400, 401, 403, 404, 422] {
        assert!(statuses.contains(&s), "status {s} exercised: {statuses:?}");
    }
}
