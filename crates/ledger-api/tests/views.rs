//! The four views over HTTP against a real sled store: golden files (fixed
//! events, fixed `now`), error envelopes and statuses, auth scopes, and a
//! fuzz-style sweep of random queries and bodies (never a 5xx).

use std::path::PathBuf;

mod support;

use ledger_api::{Auth, Scope};
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
        support::key("admin", ADMIN, Scope::Admin),
        support::key("user", USER, Scope::User(SCOPED_USER.into())),
    ]);
    Fixture {
        server: support::serve_at(store, "session-events", auth, NOW),
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
    let mut req = match method {
        "POST" => c.post(url),
        "PATCH" => c.patch(url),
        "DELETE" => c.delete(url),
        _ => c.get(url),
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
    // Scoped key: its own user works; another user's session is an unknown
    // id (404), asking to list another user is 403.
    let (s, b) = call(&f, "GET", "/v1/sessions?limit=500", Some(USER), None);
    assert_eq!(s, 200);
    let list: Vec<Value> = serde_json::from_str(&b).unwrap();
    assert!(!list.is_empty() && list.iter().all(|x| x["user_id"] == SCOPED_USER));
    let other = format!("/v1/sessions/{}", list_ids(&f, "user_1")[0]);
    let big = format!("{{\"x\":\"{}\"}}", "a".repeat(100_000));
    let filter = r#"{"query":{"filters":[{"operator":"sounds_like","path":"/tags","value":"x"}]}}"#;
    // (method, path, key, body, status): another user's session, then bad
    // parameters and bodies.
    let cases: [(&str, &str, &str, Option<&str>, u16); 11] = [
        ("GET", &other, USER, None, 404),
        ("GET", "/v1/sessions?limit=501", ADMIN, None, 422),
        ("GET", "/v1/sessions?offset=-1", ADMIN, None, 422),
        ("GET", "/v1/sessions?status=sleeping", ADMIN, None, 422),
        ("GET", "/v1/sessions?cursor=zz", ADMIN, None, 400),
        ("GET", "/v1/sessions/unknown", ADMIN, None, 404),
        (
            "POST",
            "/v2/traces/sessions/query",
            ADMIN,
            Some("{\"pagination\":"),
            400,
        ),
        (
            "POST",
            "/v2/traces/sessions/query",
            ADMIN,
            Some(filter),
            400,
        ),
        ("POST", "/v2/traces/sessions/query", ADMIN, Some(&big), 413),
        ("GET", "/api/messaging/sessions/unknown", ADMIN, None, 404),
        ("GET", "/v1/sessions?user_id=user_1", USER, None, 403),
    ];
    for (method, path, key, body, status) in cases {
        let short = &path[..path.len().min(60)];
        assert_eq!(
            call(&f, method, path, Some(key), body).0,
            status,
            "{method} {short}"
        );
    }
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

/// A conformance case: (method, path template, path, body, key).
type Case<'a> = (&'a str, &'a str, String, Option<&'a str>, Option<&'a str>);

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
    const ALL_TIME: &str =
        "{\"filters\":{\"interval\":\"SESSION_INTERVAL_ALL_TIME\"},\"limit\":10}";
    let other = list_ids(&f, "user_1").remove(0);
    let mut cases: Vec<Case> = vec![
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
            "post",
            "/v2/traces/sessions/count",
            "/v2/traces/sessions/count".into(),
            Some(ws),
            Some(ADMIN),
        ),
        (
            "post",
            "/v2/traces/sessions/count",
            "/v2/traces/sessions/count".into(),
            Some("{\"filters\":[{\"type\":\"string_array\",\"operator\":\"in\",\"values\":[\"user_1\"],\"path\":\"/user_id\"}]}"),
            Some(USER),
        ),
        (
            "post",
            "/v2/traces/sessions/count",
            "/v2/traces/sessions/count".into(),
            Some("{\"pagination\":{\"limit\":2.5}}"),
            Some(ADMIN),
        ),
        (
            "post",
            "/v2/traces/sessions/count",
            "/v2/traces/sessions/count".into(),
            Some("{}"),
            None,
        ),
        (
            "post",
            "/v2/traces/sessions",
            "/v2/traces/sessions".into(),
            Some("{}"),
            Some(ADMIN),
        ),
        (
            "post",
            "/v2/traces/sessions",
            "/v2/traces/sessions".into(),
            Some("{}"),
            None,
        ),
        (
            "post",
            "/v2/sessions/query",
            "/v2/sessions/query".into(),
            Some(ALL_TIME),
            Some(ADMIN),
        ),
        (
            "post",
            "/v2/sessions/query",
            "/v2/sessions/query".into(),
            Some(ALL_TIME),
            Some(USER),
        ),
        (
            "post",
            "/v2/sessions/query",
            "/v2/sessions/query".into(),
            Some("{\"filters\":{}}"),
            Some(ADMIN),
        ),
        (
            "post",
            "/v2/sessions/query",
            "/v2/sessions/query".into(),
            Some(ALL_TIME),
            None,
        ),
        (
            "post",
            "/v2/sessions/count",
            "/v2/sessions/count".into(),
            Some(ALL_TIME),
            Some(ADMIN),
        ),
        (
            "post",
            "/v2/sessions/count",
            "/v2/sessions/count".into(),
            Some("{\"filters\":{\"interval\":\"SESSION_INTERVAL_FOREVER\"}}"),
            Some(ADMIN),
        ),
        (
            "post",
            "/v2/sessions/count",
            "/v2/sessions/count".into(),
            Some(ALL_TIME),
            None,
        ),
        (
            "get",
            "/v2/sessions/tags",
            "/v2/sessions/tags".into(),
            None,
            Some(ADMIN),
        ),
        (
            "get",
            "/v2/sessions/tags",
            "/v2/sessions/tags".into(),
            None,
            None,
        ),
        (
            "get",
            "/v2/sessions/{id}",
            "/v2/sessions/nope".into(),
            None,
            Some(ADMIN),
        ),
        ("get", "/v2/sessions/{id}", "/v2/sessions/nope".into(), None, None),
        (
            "get",
            "/v2/sessions/{id}",
            format!("/v2/sessions/{other}"),
            None,
            Some(USER),
        ),
        (
            "post",
            "/v2/sessions",
            "/v2/sessions".into(),
            Some("{}"),
            Some(ADMIN),
        ),
        ("post", "/v2/sessions", "/v2/sessions".into(), Some("{}"), None),
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
        // Erasures: admin only, one subject; this server has no broker to
        // publish to (the end-to-end test publishes for real).
        ("post", "/admin/erasures", "/admin/erasures".into(), Some(r#"{"user_id":"u"}"#), None),
        ("post", "/admin/erasures", "/admin/erasures".into(), Some(r#"{"user_id":"u"}"#), Some(USER)),
        ("post", "/admin/erasures", "/admin/erasures".into(), Some(r#"{"user_id":"u","workspace_id":"w"}"#), Some(ADMIN)),
        ("post", "/admin/erasures", "/admin/erasures".into(), Some(r#"{"workspace_id":"w"}"#), Some(ADMIN)),
        ("post", "/admin/rebuild", "/admin/rebuild".into(), None, None),
        ("post", "/admin/rebuild", "/admin/rebuild".into(), None, Some(USER)),
        ("post", "/admin/rebuild", "/admin/rebuild?from=tape".into(), None, Some(ADMIN)),
        ("post", "/admin/rebuild", "/admin/rebuild?from=store".into(), None, Some(ADMIN)),
        ("get", "/admin/rebuild", "/admin/rebuild".into(), None, Some(ADMIN)),
    ];
    for id in ids.iter().take(12) {
        for (t, p) in [
            ("/v1/sessions/{id}", "/v1/sessions/"),
            ("/v2/traces/sessions/{id}", "/v2/traces/sessions/"),
            ("/v2/sessions/{id}", "/v2/sessions/"),
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
    // `as_of`: the past state of each session on every by-id route, and a
    // time that is none, in the view's envelope.
    for id in ids.iter().take(6) {
        for (t, p) in [
            ("/v1/sessions/{id}", "/v1/sessions/"),
            ("/v2/traces/sessions/{id}", "/v2/traces/sessions/"),
            ("/v2/sessions/{id}", "/v2/sessions/"),
            ("/users/session/api/{id}", "/users/session/api/"),
            ("/users/session/token/{id}", "/users/session/token/"),
            ("/api/messaging/sessions/{id}", "/api/messaging/sessions/"),
        ] {
            let at = NOW - 5 * 60_000;
            cases.push(("get", t, format!("{p}{id}?as_of={at}"), None, Some(ADMIN)));
            cases.push(("get", t, format!("{p}{id}?as_of=soon"), None, Some(ADMIN)));
        }
    }
    // The change feeds answer errors as JSON at once (a 200 streams: the
    // end-to-end tests read those).
    for t in [
        "/v1/sessions/stream",
        "/v2/traces/sessions/stream",
        "/users/session/api/stream",
        "/api/messaging/sessions/stream",
    ] {
        cases.push(("get", t, t.to_string(), None, None));
        cases.push((
            "get",
            t,
            format!("{t}?since=not-a-token"),
            None,
            Some(ADMIN),
        ));
        let who = if t.contains("/users/") || t.contains("/messaging/") {
            "userId"
        } else {
            "user_id"
        };
        cases.push(("get", t, format!("{t}?{who}=user_2"), None, Some(USER)));
    }
    // The console's page and routes.
    cases.push(("get", "/ui", "/ui".into(), None, None));
    cases.push((
        "get",
        "/ledger/summary",
        "/ledger/summary".into(),
        None,
        Some(USER),
    ));
    cases.push((
        "get",
        "/ledger/summary",
        "/ledger/summary".into(),
        None,
        None,
    ));
    for (id, key) in [
        (ids[0].as_str(), ADMIN),
        ("nope", ADMIN),
        (ids[0].as_str(), ""),
    ] {
        let key = (!key.is_empty()).then_some(key);
        cases.push((
            "get",
            "/ledger/sessions/{id}/timeline",
            format!("/ledger/sessions/{id}/timeline"),
            None,
            key,
        ));
    }

    // Writes on a session are refused in both orq generations.
    for (t, p) in [
        ("/v2/traces/sessions/{id}", "/v2/traces/sessions/"),
        ("/v2/sessions/{id}", "/v2/sessions/"),
    ] {
        for m in ["patch", "delete"] {
            cases.push((m, t, format!("{p}{}", ids[0]), Some("{}"), Some(ADMIN)));
            cases.push((m, t, format!("{p}{}", ids[0]), None, None));
        }
    }
    let mut covered = std::collections::BTreeSet::new();
    let mut statuses = std::collections::BTreeSet::new();
    for (method, template, path, body, key) in &cases {
        let m = &method.to_uppercase();
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

/// A JSON call: status and parsed body.
fn json_call(
    f: &Fixture,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let body = body.map(|b| b.to_string());
    let (status, text) = call(f, method, path, key, body.as_deref());
    let v = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: not JSON: {text}"));
    (status, v)
}

/// Every session in orq's list, newest first (the fixture has 40).
fn orq_all(f: &Fixture) -> Vec<Value> {
    let (s, v) = json_call(
        f,
        "POST",
        "/v2/traces/sessions/query",
        Some(ADMIN),
        Some(serde_json::json!({"pagination": {"limit": 200}})),
    );
    assert_eq!(s, 200);
    assert_eq!(v["has_more"], false);
    v["data"].as_array().unwrap().clone()
}

fn ids_of(data: &Value) -> Vec<String> {
    data.as_array()
        .unwrap()
        .iter()
        .map(|s| s["_id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn orq_v3_count_and_top_level_filters() {
    use serde_json::json;
    let f = fixture();
    let all = orq_all(&f);
    assert_eq!(all.len(), 40);
    let count = |body: Value, key: &str| {
        let (s, v) = json_call(
            &f,
            "POST",
            "/v2/traces/sessions/count",
            Some(key),
            Some(body),
        );
        assert_eq!(s, 200, "{v}");
        v["count"].as_u64().unwrap()
    };
    // Pages through the 3.x SDK's body (floats for numbers, as it sends them).
    let query_all = |mut body: Value| {
        let mut got: Vec<String> = vec![];
        loop {
            let mut pg = json!({"limit": 7.0});
            if let Some(l) = got.last() {
                pg["lastId"] = json!(l);
            }
            body["pagination"] = pg;
            let (s, v) = json_call(
                &f,
                "POST",
                "/v2/traces/sessions/query",
                Some(ADMIN),
                Some(body.clone()),
            );
            assert_eq!(s, 200, "{v}");
            got.extend(ids_of(&v["data"]));
            if v["has_more"] == false {
                return got;
            }
        }
    };
    assert_eq!(count(json!({}), ADMIN), 40);
    assert_eq!(count(json!({"filters": []}), ADMIN), 40);
    let where_ = |p: &dyn Fn(&Value) -> bool| -> Vec<String> {
        all.iter()
            .filter(|s| p(s))
            .map(|s| s["_id"].as_str().unwrap().to_string())
            .collect()
    };
    let tag = all.iter().find_map(|s| s["tags"][0].as_str()).unwrap();
    let cases: Vec<(Value, Vec<String>)> = vec![
        (
            json!([{"type": "string", "operator": "equals", "value": "ws_1", "path": "/workspace_id"}]),
            where_(&|s| s["workspace_id"] == "ws_1"),
        ),
        (
            json!([{"type": "string", "operator": "contains", "value": "ext-1", "path": "/external_id"}]),
            where_(&|s| s["external_id"].as_str().unwrap().contains("ext-1")),
        ),
        (
            json!([{"type": "string_array", "operator": "in", "values": ["ws_1", "ws_2"], "path": "/workspace_id"}]),
            where_(&|s| s["workspace_id"] == "ws_1" || s["workspace_id"] == "ws_2"),
        ),
        (
            json!([{"type": "search", "value": tag.to_uppercase(), "searchPaths": ["/tags"]}]),
            where_(&|s| s["tags"].as_array().unwrap().iter().any(|t| t == tag)),
        ),
        (
            json!([{"type": "id", "id": all[5]["_id"], "path": "/_id"}]),
            vec![all[5]["_id"].as_str().unwrap().to_string()],
        ),
        (
            json!([
                {"type": "string", "operator": "equals", "value": "ws_1", "path": "/workspace_id"},
                {"type": "string_array", "operator": "in", "values": [tag], "path": "/tags"}
            ]),
            where_(&|s| {
                s["workspace_id"] == "ws_1"
                    && s["tags"].as_array().unwrap().iter().any(|t| t == tag)
            }),
        ),
    ];
    for (filters, want) in cases {
        assert!(!want.is_empty() && want.len() < 40, "{filters}: {want:?}");
        let body = json!({"filters": filters});
        assert_eq!(query_all(body.clone()), want, "query {filters}");
        assert_eq!(count(body, ADMIN), want.len() as u64, "count {filters}");
    }
    // Top-level filters and `query.filters` both apply.
    let both = json!({
        "filters": [{"type": "string", "operator": "equals", "value": "ws_1", "path": "/workspace_id"}],
        "query": {"operator": "or", "filters": [{"operator": "is", "path": "/tags", "value": tag}]}
    });
    let want = where_(&|s| {
        s["workspace_id"] == "ws_1" && s["tags"].as_array().unwrap().iter().any(|t| t == tag)
    });
    assert_eq!(query_all(both.clone()), want);
    assert_eq!(count(both, ADMIN), want.len() as u64);
    // A scoped key counts its own sessions only.
    assert_eq!(
        count(json!({}), USER),
        list_ids(&f, SCOPED_USER).len() as u64
    );
    // Numbers that are not whole are refused.
    let (s, v) = json_call(
        &f,
        "POST",
        "/v2/traces/sessions/query",
        Some(ADMIN),
        Some(json!({"pagination": {"limit": 2.5}})),
    );
    assert_eq!(s, 400);
    assert!(v["message"].as_str().unwrap().contains("pagination.limit"));
}

#[test]
fn orq_pagination_ids_outside_the_keys_scope_are_unknown() {
    use serde_json::json;
    let f = fixture();
    let own = list_ids(&f, SCOPED_USER);
    let other = list_ids(&f, "user_1");
    let page = |key: &str, pagination: Value| {
        json_call(
            &f,
            "POST",
            "/v2/traces/sessions/query",
            Some(key),
            Some(json!({"pagination": pagination})),
        )
    };
    for field in ["lastId", "firstId"] {
        // The admin key may page from the other user's session, the scoped key
        // from its own.
        assert_eq!(page(ADMIN, json!({ field: other[0] })).0, 200);
        assert_eq!(page(USER, json!({ field: own[0] })).0, 200);
        // Another tenant's id answers exactly what an id that does not exist does.
        let (s_other, v_other) = page(USER, json!({ field: other[0] }));
        let (s_none, v_none) = page(USER, json!({ field: "sess_does_not_exist" }));
        assert_eq!(s_other, 400, "{field}: {v_other}");
        assert_eq!(s_other, s_none);
        assert_eq!(v_other["code"], v_none["code"]);
        assert_eq!(
            v_other["message"]
                .as_str()
                .unwrap()
                .replace(&other[0], "ID"),
            v_none["message"]
                .as_str()
                .unwrap()
                .replace("sess_does_not_exist", "ID"),
        );
    }
}

#[test]
fn orq_v4_threads_read_the_same_sessions() {
    use serde_json::json;
    let f = fixture();
    let all = orq_all(&f);
    let threads = |filters: Value, limit: u64, key: &str| {
        let mut got: Vec<Value> = vec![];
        for page in 1.. {
            let (s, v) = json_call(
                &f,
                "POST",
                "/v2/sessions/query",
                Some(key),
                Some(json!({"filters": filters, "limit": limit, "page": page})),
            );
            assert_eq!(s, 200, "{v}");
            assert_eq!(v["object"], "list");
            let data = v["data"].as_array().unwrap();
            assert!(data.len() as u64 <= limit);
            got.extend(data.iter().cloned());
            if v["has_more"] == false {
                return got;
            }
        }
        unreachable!()
    };
    let count = |filters: Value, key: &str| {
        let (s, v) = json_call(
            &f,
            "POST",
            "/v2/sessions/count",
            Some(key),
            Some(json!({ "filters": filters })),
        );
        assert_eq!(s, 200, "{v}");
        v["count"].as_u64().unwrap()
    };
    // All time: the 3.x list, newest first, without `workspace_id`.
    let every = threads(json!({"interval": "SESSION_INTERVAL_ALL_TIME"}), 9, ADMIN);
    let want: Vec<Value> = all
        .iter()
        .map(|s| {
            let mut s = s.clone();
            s.as_object_mut().unwrap().remove("workspace_id");
            if s["project_id"].is_null() {
                s.as_object_mut().unwrap().remove("project_id");
            }
            s
        })
        .collect();
    assert_eq!(every, want);
    assert_eq!(
        count(json!({"interval": "SESSION_INTERVAL_ALL_TIME"}), ADMIN),
        40
    );
    // An activity window: updated at or after its start, started by its end.
    let ms =
        |s: &Value, k: &str| ledger_core::time::parse_rfc3339_ms(s[k].as_str().unwrap()).unwrap();
    let mut updated: Vec<i64> = all.iter().map(|s| ms(s, "updated_at")).collect();
    updated.sort();
    let (lo, hi) = (updated[10], updated[30]);
    let window = json!({"interval": "SESSION_INTERVAL_ALL_TIME", "start_date": lo.to_string(), "end_date": hi.to_string()});
    let want: Vec<&str> = all
        .iter()
        .filter(|s| ms(s, "updated_at") >= lo && ms(s, "started_at") <= hi)
        .map(|s| s["_id"].as_str().unwrap())
        .collect();
    assert!(!want.is_empty() && want.len() < 40);
    let got = threads(window.clone(), 4, ADMIN);
    assert_eq!(
        got.iter()
            .map(|s| s["_id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        want
    );
    assert_eq!(count(window, ADMIN), want.len() as u64);
    // A relative interval counts back from now.
    let recent = threads(
        json!({"interval": "SESSION_INTERVAL_LAST_30_MINUTES"}),
        50,
        ADMIN,
    );
    let want = all
        .iter()
        .filter(|s| ms(s, "updated_at") >= NOW - 30 * 60_000)
        .count();
    assert_eq!(recent.len(), want);
    // Tags: every listed tag; the tag route is the union of all tags.
    let (s, tags) = json_call(&f, "GET", "/v2/sessions/tags", Some(ADMIN), None);
    assert_eq!(s, 200);
    let mut union: Vec<String> = all
        .iter()
        .flat_map(|s| s["tags"].as_array().unwrap().iter())
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    union.sort();
    union.dedup();
    assert_eq!(tags, json!(union));
    let (a, b) = (&union[0], &union[1]);
    let tagged = threads(
        json!({"interval": "SESSION_INTERVAL_ALL_TIME", "tags": [a, b]}),
        50,
        ADMIN,
    );
    let want = all
        .iter()
        .filter(|s| {
            let t = s["tags"].as_array().unwrap();
            t.iter().any(|x| x == a.as_str()) && t.iter().any(|x| x == b.as_str())
        })
        .count();
    assert_eq!(tagged.len(), want);
    assert_eq!(
        count(
            json!({"interval": "SESSION_INTERVAL_ALL_TIME", "tags": [a, b]}),
            ADMIN
        ),
        want as u64
    );
    for (k, v) in [
        ("project_id", "proj_nope"),
        ("client", "cursor"),
        ("repo", "r"),
    ] {
        let mut filters = json!({"interval": "SESSION_INTERVAL_ALL_TIME"});
        filters[k] = json!(v);
        assert_eq!(count(filters, ADMIN), 0, "{k}");
    }
    // A scoped key sees its user's threads only.
    let mine = threads(json!({"interval": "SESSION_INTERVAL_ALL_TIME"}), 3, USER);
    assert_eq!(
        mine.iter()
            .map(|s| s["_id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        list_ids(&f, SCOPED_USER)
    );
    // One thread equals its list item.
    let (s, one) = json_call(
        &f,
        "GET",
        &format!("/v2/sessions/{}", every[7]["_id"].as_str().unwrap()),
        Some(ADMIN),
        None,
    );
    assert_eq!((s, &one), (200, &every[7]));
    // Errors carry gRPC codes, as the 4.x SDK's ErrorResponse reads them.
    for (method, path, key, body, status, code) in [
        ("GET", "/v2/sessions/nope", Some(ADMIN), None, 404, 5),
        ("GET", "/v2/sessions/nope", None, None, 401, 16),
        (
            "POST",
            "/v2/sessions/query",
            Some(ADMIN),
            Some(json!({"limit": 5})),
            400,
            3,
        ),
        (
            "POST",
            "/v2/sessions/query",
            Some(ADMIN),
            Some(json!({"filters": {"interval": "SESSION_INTERVAL_LAST_1_HOUR"}, "limit": 0})),
            400,
            3,
        ),
        (
            "POST",
            "/v2/sessions/count",
            Some(ADMIN),
            Some(
                json!({"filters": {"interval": "SESSION_INTERVAL_ALL_TIME", "start_date": "yesterday"}}),
            ),
            400,
            3,
        ),
    ] {
        let (s, v) = json_call(&f, method, path, key, body);
        assert_eq!(
            (s, &v["code"]),
            (status, &json!(code)),
            "{method} {path}: {v}"
        );
        assert!(v["message"].is_string() && v["details"].is_array());
    }
    // Malformed bodies are a 400 in the envelope, never a 5xx.
    for body in [
        "[]",
        "\"x\"",
        r#"{"filters":null}"#,
        r#"{"filters":{"interval":5}}"#,
        r#"{"filters":{"interval":"SESSION_INTERVAL_ALL_TIME"},"page":1e30}"#,
        r#"{"filters":{"interval":"SESSION_INTERVAL_ALL_TIME"},"limit":-1}"#,
        r#"{"filters":{"interval":"SESSION_INTERVAL_ALL_TIME","start_date":{}}}"#,
        r#"{"filters":{"interval":"SESSION_INTERVAL_ALL_TIME","tags":"a"}}"#,
    ] {
        for path in ["/v2/sessions/query", "/v2/sessions/count"] {
            let (s, text) = call(&f, "POST", path, Some(ADMIN), Some(body));
            let v: Value = serde_json::from_str(&text).unwrap();
            assert_eq!((s, &v["code"]), (400, &json!(3)), "{path} {body}: {v}");
        }
    }
}

#[test]
fn orq_writes_answer_read_only_in_both_generations() {
    let f = fixture();
    let id = list_ids(&f, SCOPED_USER).remove(0);
    let one3 = format!("/v2/traces/sessions/{id}");
    let one4 = format!("/v2/sessions/{id}");
    let c = reqwest::blocking::Client::new();
    for (method, path, allow, grpc) in [
        ("POST", "/v2/traces/sessions", "", false),
        ("PATCH", one3.as_str(), "GET", false),
        ("DELETE", one3.as_str(), "GET", false),
        ("POST", "/v2/sessions", "", true),
        ("PATCH", one4.as_str(), "GET", true),
        ("DELETE", one4.as_str(), "GET", true),
    ] {
        let url = format!("http://{}{path}", f.server.addr);
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = c
            .request(m.clone(), &url)
            .bearer_auth(ADMIN)
            .json(&serde_json::json!({"tags": ["x"]}))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 405, "{method} {path}");
        assert_eq!(r.headers()["allow"], allow, "{method} {path}");
        let v: Value = r.json().unwrap();
        let msg = v["message"].as_str().unwrap();
        assert!(
            msg.contains("read-only") && msg.contains("Kafka topic `session-events`"),
            "{msg}"
        );
        if grpc {
            assert_eq!(v["code"], 12, "{method} {path}");
        } else {
            assert_eq!(v["code"], "method_not_allowed", "{method} {path}");
        }
        // Without a key: 401 first.
        let r = c.request(m, &url).send().unwrap();
        assert_eq!(r.status().as_u16(), 401, "{method} {path}");
    }
    // Nothing changed.
    let (s, v) = json_call(&f, "GET", &one4, Some(ADMIN), None);
    assert_eq!(s, 200);
    assert!(!v["tags"].as_array().unwrap().iter().any(|t| t == "x"));
}
