//! Defects found at the edges by an outside acceptance run, each pinned over
//! real HTTP against a real sled store: elizaOS's `expiringSoon` and scoped
//! aggregates, authentication before the consistency wait, exact key
//! comparison, a malformed consistency token in each view's envelope, finite
//! cost sums, RFC 3339 times past year 9999, secret-named keys, and
//! elizaOS's parameterless list.

mod support;

use ledger_api::{Auth, Scope};
use ledger_core::time::format_iso_ms;
use ledger_core::{decode_structured, Defaults, Event};
use ledger_store::Store;
use serde_json::{json, Value};

const NOW: i64 = 1_795_000_000_000;
const MIN: i64 = 60_000;
const ADMIN: &str = "admin-secret";
const U1: &str = "u1-secret";
const LONELY: &str = "lonely-secret";
const WS: &str = "ws-secret";

fn ev(id: &str, kind: &str, subject: &str, at: i64, data: Value) -> Event {
    let v = json!({"specversion":"1.0","id":id,"source":"/t","type":format!("session.{kind}"),
        "subject":subject,"time":format_iso_ms(at),"data":data});
    decode_structured(v.to_string().as_bytes()).unwrap()
}

fn created(sid: &str, user: &str, at: i64, timeout: Value) -> Event {
    ev(
        &format!("{sid}-c"),
        "created",
        sid,
        at,
        json!({"user_id":user,"agent_id":"agent-1","workspace_id":"ws-1","timeout":timeout}),
    )
}

struct Fixture {
    server: support::Served,
    _dir: tempfile::TempDir,
}

fn fixture(events: Vec<Event>) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Defaults::default()).unwrap();
    support::load(&store, "session-events", events);
    let key = support::key;
    let auth = Auth::new(vec![
        key("admin", ADMIN, Scope::Admin),
        key("u1", U1, Scope::User("u1".into())),
        key("lonely", LONELY, Scope::User("nobody".into())),
        key("ws", WS, Scope::Workspace("ws-2".into())),
    ]);
    Fixture {
        server: support::serve_at(store, "session-events", auth, NOW),
        _dir: dir,
    }
}

fn get(f: &Fixture, path: &str, headers: &[(&str, &str)]) -> reqwest::blocking::Response {
    let mut req = reqwest::blocking::Client::new().get(format!("{}{path}", f.server.base));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().unwrap()
}

fn json_as(f: &Fixture, path: &str, key: &str) -> Value {
    let r = get(f, path, &[("x-api-key", key)]);
    assert_eq!(r.status(), 200, "{path}");
    r.json().unwrap()
}

/// Sessions around NOW: two near their expiry by their own warning threshold
/// (one only by a per-session threshold of 60 min), two whose abandonment
/// (not expiry) is minutes away, one far from both.
fn deadline_mix() -> Vec<Event> {
    let t = NOW - MIN;
    vec![
        created("near-default", "u1", t, json!({"timeout_minutes":4})),
        created(
            "near-own",
            "u1",
            t,
            json!({"timeout_minutes":31,"warning_threshold_minutes":60}),
        ),
        created(
            "abandons-a",
            "u2",
            t,
            json!({"timeout_minutes":600,"abandon_after_minutes":3}),
        ),
        created(
            "abandons-b",
            "u2",
            t,
            json!({"timeout_minutes":600,"abandon_after_minutes":4}),
        ),
        created("far", "u2", t, json!({"timeout_minutes":11})),
    ]
}

/// Fold bug D: `expiringSoon` counts the live sessions whose own
/// `isNearExpiration` is true — per-session thresholds, expiry only.
#[test]
fn expiring_soon_equals_the_sessions_near_their_own_expiry() {
    let f = fixture(deadline_mix());
    let list = json_as(&f, "/api/messaging/sessions", ADMIN);
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 5);
    let mut near: Vec<&str> = sessions
        .iter()
        .filter(|s| s["isNearExpiration"] == true)
        .map(|s| s["sessionId"].as_str().unwrap())
        .collect();
    near.sort();
    assert_eq!(near, ["near-default", "near-own"]);
    let health = json_as(&f, "/api/messaging/sessions/health", ADMIN);
    assert_eq!(health["expiringSoon"], 2, "{health}");
    assert_eq!(health["activeSessions"], 5);
}

/// Defect 4: a scoped key's aggregates count only its scope — even a key
/// whose user has no session sees zeros, not the fleet's totals.
#[test]
fn aggregates_are_scoped_to_the_key() {
    let mut events = deadline_mix();
    events.push(ev(
        "far-end",
        "ended",
        "far",
        NOW - MIN / 2,
        json!({"reason":"logout"}),
    ));
    let f = fixture(events);

    let admin = json_as(&f, "/api/messaging/sessions", ADMIN);
    assert_eq!(
        admin["stats"],
        json!({"totalSessions":5,"activeSessions":4,"expiredSessions":1})
    );

    let lonely = json_as(&f, "/api/messaging/sessions", LONELY);
    assert_eq!(lonely["sessions"], json!([]));
    assert_eq!(lonely["total"], 0);
    assert_eq!(
        lonely["stats"],
        json!({"totalSessions":0,"activeSessions":0,"expiredSessions":0})
    );
    let health = json_as(&f, "/api/messaging/sessions/health", LONELY);
    assert_eq!(health["activeSessions"], 0);
    assert_eq!(health["expiringSoon"], 0);

    let u1 = json_as(&f, "/api/messaging/sessions", U1);
    assert_eq!(u1["total"], 2);
    assert_eq!(
        u1["stats"],
        json!({"totalSessions":2,"activeSessions":2,"expiredSessions":0})
    );
    let health = json_as(&f, "/api/messaging/sessions/health", U1);
    assert_eq!(health["activeSessions"], 2);
    assert_eq!(health["expiringSoon"], 2);

    let ws = json_as(&f, "/api/messaging/sessions/health", WS);
    assert_eq!(ws["activeSessions"], 0, "workspace ws-2 has no session");
}

/// Defect 5: authentication comes before the consistency wait; no offsets
/// reach an anonymous or wrongly keyed caller.
#[test]
fn the_consistency_wait_and_offsets_are_for_authenticated_callers_only() {
    let f = fixture(deadline_mix());
    let far_ahead = [
        ("x-ledger-wait-for", "0=999999999"),
        ("x-ledger-wait-ms", "5000"),
    ];
    for key in [None, Some("wrong-key")] {
        let mut h = far_ahead.to_vec();
        if let Some(k) = key {
            h.push(("x-api-key", k));
        }
        for path in [
            "/api/messaging/sessions",
            "/v1/sessions",
            "/users/session/api",
        ] {
            let r = get(&f, path, &h);
            assert_eq!(r.status(), 401, "{path} {key:?}");
            assert!(r.headers().get("x-ledger-offsets").is_none(), "{path}");
            assert!(
                r.headers().get("x-ledger-caught-up").is_none(),
                "{path}: an unauthenticated request must not wait"
            );
        }
    }
    let r = get(
        &f,
        "/api/messaging/sessions",
        &[("x-api-key", ADMIN), ("x-ledger-wait-for", "0=5")],
    );
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-ledger-offsets"], "0=5");
    assert_eq!(r.headers()["x-ledger-caught-up"], "true");
}

/// A malformed `x-ledger-wait-for` is a 400 `bad_consistency_token` in the
/// envelope of the view the path belongs to, answered at once and without
/// `x-ledger-offsets`.
#[test]
fn a_malformed_consistency_token_is_answered_in_the_views_envelope() {
    let f = fixture(deadline_mix());
    let c = reqwest::blocking::Client::new();
    let message = "x-ledger-wait-for must look like `0=123,1=45`";
    let bad = |method: &str, path: &str| -> Value {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = c
            .request(m, format!("{}{path}", f.server.base))
            .header("x-api-key", ADMIN)
            .header("x-ledger-wait-for", "0=5,zero")
            .send()
            .unwrap();
        assert_eq!(r.status(), 400, "{path}");
        assert!(r.headers().get("x-ledger-offsets").is_none(), "{path}");
        assert!(r.headers().get("x-ledger-caught-up").is_none(), "{path}");
        r.json().unwrap()
    };
    let clerk = bad("GET", "/v1/sessions");
    assert_eq!(clerk["errors"][0]["code"], "bad_consistency_token");
    assert_eq!(clerk["errors"][0]["long_message"], message);
    assert_eq!(
        bad("POST", "/v2/traces/sessions/query"),
        json!({"code": "bad_consistency_token", "message": message})
    );
    assert_eq!(
        bad("POST", "/v2/sessions/count"),
        json!({"code": 3, "message": message, "details": []})
    );
    assert_eq!(
        bad("GET", "/users/session/token/far"),
        json!({"error": {"code": "bad_consistency_token", "message": message}})
    );
    assert_eq!(
        bad("GET", "/api/messaging/sessions/health"),
        json!({"error": {"code": "bad_consistency_token", "message": message,
                         "timestamp": format_iso_ms(NOW)}})
    );
}

/// Defect 11: the presented key is compared exactly, not trimmed.
#[test]
fn api_keys_are_compared_exactly() {
    let f = fixture(deadline_mix());
    let ok = get(
        &f,
        "/v1/sessions",
        &[("authorization", &format!("Bearer {ADMIN}"))],
    );
    assert_eq!(ok.status(), 200);
    for presented in [format!("Bearer  {ADMIN}"), format!("Bearer {ADMIN}\t.")] {
        let r = get(&f, "/v1/sessions", &[("authorization", &presented)]);
        assert_eq!(r.status(), 401, "`{presented}` is not the key");
    }
}

/// Defects 8 and 10: cost sums stay finite (never `null`), times past year
/// 9999 clamp to 9999-12-31T23:59:59.999Z, and secret-named keys of free-form
/// maps are neither stored nor served.
#[test]
fn sums_stay_finite_times_stay_rfc3339_and_secrets_stay_out() {
    let far = ledger_core::time::parse_rfc3339_ms("9999-12-31T23:00:00Z").unwrap();
    let f = fixture(vec![
        ev(
            "big-c",
            "created",
            "big",
            NOW - MIN,
            json!({"user_id":"u1","external_id":"x","metadata":{"plan":"pro","password":"hunter2"},
                   "labels":{"team":"a","Authorization":"Bearer abc"},"actor":{"sub":"a","token":"t"}}),
        ),
        ev(
            "big-a1",
            "activity",
            "big",
            NOW - MIN / 2,
            json!({"billing":{"input_cost":1.0e308,"output_cost":1.0e308}}),
        ),
        ev(
            "big-a2",
            "activity",
            "big",
            NOW - MIN / 3,
            json!({"billing":{"input_cost":1.0e308,"output_cost":-1.0}}),
        ),
        ev(
            "late-c",
            "created",
            "late",
            far,
            json!({"user_id":"u1","timeout":{"timeout_minutes":120}}),
        ),
    ]);
    let orq: Value = reqwest::blocking::Client::new()
        .get(format!("{}/v2/traces/sessions/big", f.server.base))
        .bearer_auth(ADMIN)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let billing = &orq["billing"];
    for k in ["input_cost", "output_cost", "total_cost"] {
        assert!(billing[k].is_f64(), "{k} is a number, got {billing}");
    }
    assert_eq!(billing["input_cost"].as_f64(), Some(f64::MAX));
    assert_eq!(billing["total_cost"].as_f64(), Some(f64::MAX));

    let late = json_as(&f, "/api/messaging/sessions/late", ADMIN);
    assert_eq!(late["expiresAt"], "9999-12-31T23:59:59.999Z");
    assert_eq!(late["createdAt"], "9999-12-31T23:00:00.000Z");
    let wing: Value = json_as(&f, "/users/session/token/late", ADMIN);
    assert_eq!(wing["expiration"], "9999-12-31T23:59:59.999Z");

    let big = json_as(&f, "/api/messaging/sessions/big", ADMIN);
    assert_eq!(big["metadata"], json!({"plan":"pro"}));
    let clerk = json_as(&f, "/v1/sessions/big", ADMIN);
    assert_eq!(clerk["actor"], json!({"sub":"a"}));
    let wing = json_as(&f, "/users/session/token/big", ADMIN);
    assert_eq!(wing["labels"], json!({"team":"a"}));
    for body in [big.to_string(), clerk.to_string(), wing.to_string()] {
        for secret in ["hunter2", "Bearer abc", "password", "token\""] {
            assert!(!body.contains(secret), "{secret} served in {body}");
        }
    }
}

/// DESIGN.md §7: elizaOS's `listSessions()` sends no parameters and gets
/// every live session up to 1,000, then a cursor for the rest.
#[test]
fn the_eliza_list_without_parameters_returns_every_live_session_up_to_1000() {
    let events: Vec<Event> = (0..1_050)
        .map(|i| {
            created(
                &format!("live-{i:04}"),
                "u9",
                NOW - MIN - i,
                json!({"timeout_minutes":600}),
            )
        })
        .collect();
    let f = fixture(events);
    let r = get(&f, "/api/messaging/sessions", &[("x-api-key", ADMIN)]);
    assert_eq!(r.status(), 200);
    let cursor = r.headers()["x-next-cursor"].to_str().unwrap().to_string();
    let body: Value = r.json().unwrap();
    assert_eq!(body["sessions"].as_array().unwrap().len(), 1_000);
    assert_eq!(body["total"], 1_050);
    assert_eq!(body["sessions"][0]["sessionId"], "live-0000");
    let rest = json_as(
        &f,
        &format!("/api/messaging/sessions?cursor={cursor}"),
        ADMIN,
    );
    let rest = rest["sessions"].as_array().unwrap();
    assert_eq!(rest.len(), 50);
    assert_eq!(rest[49]["sessionId"], "live-1049");
}

/// A session outside the key's scope is answered exactly like an id that
/// never existed, in every view: a 403 would confirm it exists.
#[test]
fn another_tenants_session_is_an_unknown_id_in_every_view() {
    let f = fixture(deadline_mix());
    // `abandons-a` belongs to u2; the U1 key sees u1's sessions only.
    for route in [
        "/v1/sessions/",
        "/v2/traces/sessions/",
        "/v2/sessions/",
        "/users/session/token/",
        "/users/session/api/",
        "/api/messaging/sessions/",
    ] {
        let answer = |id: &str| {
            let r = get(&f, &format!("{route}{id}"), &[("x-api-key", U1)]);
            let status = r.status().as_u16();
            let mut body: Value = serde_json::from_str(&r.text().unwrap()).unwrap();
            // Clerk's trace id differs per request, as for any two ids.
            if let Some(o) = body.as_object_mut() {
                o.remove("clerk_trace_id");
            }
            (status, body.to_string().replace(id, "ID"))
        };
        let other = answer("abandons-a");
        assert_eq!(other.0, 404, "{route}: {}", other.1);
        assert_eq!(other, answer("never-existed"), "{route}");
        // (Wingspan's API-session route holds `API` sessions only.)
        if route != "/users/session/api/" {
            let own = get(&f, &format!("{route}near-own"), &[("x-api-key", U1)]);
            assert_eq!(own.status(), 200, "{route}: the key's own session is found");
        }
    }
}

/// A server on a store in `dir` holding `deadline_mix()`, counting its
/// requests in `reads`, one admin key.
fn serve_counting_reads(
    dir: &std::path::Path,
    reads: &std::sync::Arc<ledger_store::ReadLoad>,
) -> support::Served {
    let store = Store::open(dir, Defaults::default()).unwrap();
    support::load(&store, "session-events", deadline_mix());
    let mut state = ledger_api::AppState::new(
        store,
        "session-events",
        Auth::new(vec![support::key("admin", ADMIN, Scope::Admin)]),
        std::sync::Arc::new(|| NOW),
        Default::default(),
    );
    state.reads = Some(reads.clone());
    support::serve(state)
}

/// Ingestion gives way to reads in flight (`[kafka] write_share`); a
/// request waiting for a consistency token waits *for* ingestion, so it is
/// counted only once the wait is over and its handler answers.
#[test]
fn a_request_waiting_for_offsets_is_not_a_read_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let reads = std::sync::Arc::new(ledger_store::ReadLoad::default());
    let server = serve_counting_reads(dir.path(), &reads);
    let url = format!("{}/api/messaging/sessions", server.base);
    let waiting = std::thread::spawn(move || {
        reqwest::blocking::Client::new()
            .get(url)
            .header("x-api-key", ADMIN)
            .header("x-ledger-wait-for", "0=999999999")
            .header("x-ledger-wait-ms", "1500")
            .send()
            .unwrap()
    });
    std::thread::sleep(std::time::Duration::from_millis(700));
    assert_eq!(reads.in_flight(), 0, "counted while waiting for offsets");
    assert!(
        !reads.active_within(std::time::Duration::from_secs(60)),
        "a read was counted before the wait ended"
    );
    let r = waiting.join().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-ledger-caught-up"], "false");
    assert_eq!(reads.in_flight(), 0);
    assert!(
        reads.active_within(std::time::Duration::from_secs(60)),
        "the answer itself counts as a read"
    );
}

/// The write floor (`ledger_store::pace`): a request waits for a write turn
/// only while ingestion has work and has made no progress for the floor's
/// bound (45 ms at 0.1); an idle writer costs requests nothing (one that
/// beats: `ledger-store`'s pace tests).
#[test]
fn a_request_waits_for_a_starved_writers_turn_only() {
    let dir = tempfile::tempdir().unwrap();
    let reads = std::sync::Arc::new(ledger_store::ReadLoad::with_floor(0.1));
    let pace = ledger_store::Pace::new(reads.clone(), 0.25);
    let server = serve_counting_reads(dir.path(), &reads);
    let url = format!("{}/api/messaging/sessions", server.base);
    let client = reqwest::blocking::Client::new();
    let get = || {
        let r = client.get(&url).header("x-api-key", ADMIN).send().unwrap();
        assert_eq!(r.status(), 200);
    };
    // Seconds requests waited for turns, from `/metrics`.
    let waited = || {
        let text = client
            .get(format!("{}/metrics", server.base))
            .send()
            .unwrap()
            .text()
            .unwrap();
        ledger_testkit::metrics::series(&text, "ledger_http_write_turn_wait_seconds_total")
            .expect("the turns' metric")
    };
    let ms = std::time::Duration::from_millis;
    // No writer, then a writer with no work: no turn.
    get();
    pace.working();
    pace.idle();
    std::thread::sleep(ms(60));
    get();
    assert_eq!((reads.turns(), waited()), (0, 0.0));
    // Work but no beat for over 45 ms: the request waits for a turn.
    pace.working();
    std::thread::sleep(ms(60));
    get();
    assert_eq!(reads.turns(), 1);
    let after_turn = waited();
    assert!(after_turn > 0.0, "the request did not wait for the turn");
    // Its writer idle again: requests go straight on.
    pace.idle();
    std::thread::sleep(ms(60));
    get();
    assert_eq!((reads.turns(), waited()), (1, after_turn));
}
