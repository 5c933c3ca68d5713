//! The fold defects an outside acceptance run found (pending-shell replays,
//! limits, secret-named keys), each pinned with its example as NDJSON, the
//! way a producer would send it.

use ledger_core::limits::{check_event, MAX_PENDING, MAX_TAGS};
use ledger_core::time::{format_iso_ms, parse_rfc3339_ms};
use ledger_core::{apply, decode_structured, Defaults, Limit, Outcome, Session, Status};

const MIN: i64 = 60_000;

fn ms(t: &str) -> i64 {
    parse_rfc3339_ms(t).unwrap()
}

/// Folds NDJSON lines (CloudEvents without `specversion`/`source`, which are
/// filled in) in order.
fn fold_lines(lines: &[String]) -> (Session, Vec<Outcome>) {
    let d = Defaults::default();
    let mut s = None;
    let mut out = vec![];
    for l in lines {
        let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
        v["specversion"] = "1.0".into();
        v["source"] = "/test".into();
        let ev = decode_structured(v.to_string().as_bytes()).unwrap();
        check_event(&ev).unwrap();
        let (n, o) = apply(s, &ev, &d);
        s = Some(n);
        out.push(o);
    }
    (s.unwrap(), out)
}

fn fold(lines: &[&str]) -> Session {
    fold_lines(&lines.iter().map(|l| l.to_string()).collect::<Vec<_>>()).0
}

/// A: the replay of a pending shell that closes the session still leaves
/// `abandon_at = last_active_at + abandon_after`.
#[test]
fn abandon_at_follows_last_active_at_after_a_replay_that_closes_the_session() {
    let s = fold(&[
        r#"{"id":"a-1","type":"session.activity","subject":"ex-a","time":"2026-01-01T00:10:00.000Z","data":{}}"#,
        r#"{"id":"a-2","type":"session.created","subject":"ex-a","time":"2026-01-01T00:00:00.000Z","data":{"user_id":"u1","timeout":{"timeout_minutes":5}}}"#,
    ]);
    assert_eq!(s.status, Status::Expired);
    assert_eq!(s.ended_at, Some(ms("2026-01-01T00:05:00Z")));
    assert_eq!(s.last_active_at, ms("2026-01-01T00:10:00Z"));
    assert_eq!(
        format_iso_ms(s.abandon_at),
        "2026-01-08T00:10:00.000Z",
        "abandon_at = last_active_at + 7 days"
    );

    let s = fold(&[
        r#"{"id":"a-3","type":"session.activity","subject":"ex-a2","time":"2026-01-01T03:00:00.000Z","data":{}}"#,
        r#"{"id":"a-4","type":"session.created","subject":"ex-a2","time":"2026-01-01T00:00:00.000Z","data":{"user_id":"u1","timeout":{"timeout_minutes":1440,"abandon_after_minutes":120}}}"#,
    ]);
    assert_eq!(s.status, Status::Abandoned);
    assert_eq!(s.ended_at, Some(ms("2026-01-01T02:00:00Z")));
    assert_eq!(s.last_active_at, ms("2026-01-01T03:00:00Z"));
    assert_eq!(format_iso_ms(s.abandon_at), "2026-01-01T05:00:00.000Z");
    assert!(s.abandon_at >= s.last_active_at);
}

/// B: a terminal event that opened the shell does not set `last_active_at`:
/// the result equals the created-first order.
#[test]
fn a_terminal_event_that_opens_a_shell_does_not_set_last_active_at() {
    let revoked = r#"{"id":"b-1","type":"session.revoked","subject":"ex-b","time":"2026-01-01T00:10:00.000Z","data":{"reason":"x"}}"#;
    let created = r#"{"id":"b-2","type":"session.created","subject":"ex-b","time":"2026-01-01T00:00:00.000Z","data":{"user_id":"u1"}}"#;
    let shell_first = fold(&[revoked, created]);
    let created_first = fold(&[created, revoked]);
    assert_eq!(shell_first.status, Status::Revoked);
    assert_eq!(shell_first.last_active_at, ms("2026-01-01T00:00:00Z"));
    assert_eq!(shell_first.ended_at, Some(ms("2026-01-01T00:10:00Z")));
    assert_eq!(shell_first.last_active_at, created_first.last_active_at);
    assert_eq!(shell_first.abandon_at, created_first.abandon_at);
    assert_eq!(shell_first.ended_at, created_first.ended_at);
    assert_eq!(shell_first.end_reason.as_deref(), Some("x"));
}

fn activity_line(i: usize, sid: &str, t: i64, extra: &str) -> String {
    format!(
        r#"{{"id":"c-{i}","type":"session.activity","subject":"{sid}","time":"{}","data":{{{extra}}}}}"#,
        format_iso_ms(t)
    )
}

/// C: every early event of a pending shell is replayed (300 activities → 300
/// renewals); past the documented bound an event is rejected and counted,
/// never dropped silently.
#[test]
fn every_early_event_of_a_shell_is_replayed_and_the_bound_is_an_outcome() {
    let t0 = ms("2026-01-01T00:00:00Z");
    let created = format!(
        r#"{{"id":"c-created","type":"session.created","subject":"ex-c","time":"{}","data":{{"user_id":"u1"}}}}"#,
        format_iso_ms(t0)
    );
    let mut lines: Vec<String> = (1..=300)
        .map(|i| activity_line(i, "ex-c", t0 + i as i64 * 1_000, ""))
        .collect();
    lines.push(created.clone());
    let (s, outcomes) = fold_lines(&lines);
    assert_eq!(s.status, Status::Active);
    assert_eq!(s.renewal_count, 300);
    assert!(outcomes.iter().all(|o| *o == Outcome::Applied));

    let mut lines: Vec<String> = (1..=MAX_PENDING + 5)
        .map(|i| {
            activity_line(
                i,
                "ex-c2",
                t0 + i as i64 * 100,
                r#""usage":{"prompt_tokens":1,"completion_tokens":0}"#,
            )
        })
        .collect();
    lines.push(created.replace("ex-c", "ex-c2"));
    let (s, outcomes) = fold_lines(&lines);
    let limited = outcomes
        .iter()
        .filter(|o| **o == Outcome::RejectedLimit(Limit::PendingEvents))
        .count();
    assert_eq!(
        limited, 5,
        "the events past the bound are rejected, as outcomes"
    );
    assert_eq!(s.renewal_count, MAX_PENDING as u64);
    assert_eq!(
        s.usage.prompt_tokens, MAX_PENDING as u64,
        "a rejected event changes nothing, its aggregates included"
    );
}

/// Defect 9: a session's tags are bounded; an event over the bound is rejected
/// whole (an outcome, counted by the store), one over the per-event bound is
/// refused at decode time.
#[test]
fn tags_and_contact_ids_are_bounded_per_session_and_per_event() {
    let t0 = ms("2026-01-01T00:00:00Z");
    let mut lines = vec![format!(
        r#"{{"id":"t-0","type":"session.created","subject":"ex-t","time":"{}","data":{{"user_id":"u1","timeout":{{"timeout_minutes":600}}}}}}"#,
        format_iso_ms(t0)
    )];
    for i in 0..4 {
        let tags: Vec<String> = (0..100).map(|k| format!("\"tag-{i}-{k}\"")).collect();
        lines.push(activity_line(
            i + 1,
            "ex-t",
            t0 + (i as i64 + 1) * MIN,
            &format!(r#""tags":[{}]"#, tags.join(",")),
        ));
    }
    let (s, outcomes) = fold_lines(&lines);
    assert_eq!(outcomes[1..3], [Outcome::Applied, Outcome::Applied]);
    assert_eq!(outcomes[3], Outcome::RejectedLimit(Limit::Tags));
    assert_eq!(outcomes[4], Outcome::RejectedLimit(Limit::Tags));
    assert_eq!(s.tags.len(), 200);
    assert!(s.tags.len() <= MAX_TAGS);
    assert_eq!(
        s.last_active_at,
        t0 + 2 * MIN,
        "rejected events leave no trace"
    );

    // Repeating known tags never counts against the bound.
    let again: Vec<String> = s.tags.iter().map(|t| format!("\"{t}\"")).collect();
    lines.truncate(3);
    lines.push(activity_line(
        9,
        "ex-t",
        t0 + 9 * MIN,
        &format!(r#""tags":[{}]"#, again.join(",")),
    ));
    let (_, outcomes) = fold_lines(&lines);
    assert_eq!(outcomes[3], Outcome::Applied);

    let many: Vec<String> = (0..MAX_TAGS + 1).map(|k| format!("\"x{k}\"")).collect();
    let line = activity_line(
        1,
        "ex-t",
        t0,
        &format!(r#""contact_ids":[{}]"#, many.join(",")),
    );
    let mut v: serde_json::Value = serde_json::from_str(&line).unwrap();
    v["specversion"] = "1.0".into();
    v["source"] = "/test".into();
    let ev = decode_structured(v.to_string().as_bytes()).unwrap();
    let err = check_event(&ev).unwrap_err();
    assert!(
        err.contains("contact_ids: 257 exceed the limit of 256"),
        "{err}"
    );
}

/// Defect 10: keys named like secrets never reach the stored session.
#[test]
fn secret_named_keys_are_never_stored() {
    let s = fold(&[
        r#"{"id":"k-1","type":"session.created","subject":"ex-k","time":"2026-01-01T00:00:00.000Z","data":{"user_id":"u1",
            "labels":{"team":"a","api_token":"t0k","Password":"p"},
            "metadata":{"plan":"pro","nested":{"client_secret":"s","ok":[{"Authorization":"Bearer x","n":1}]},"session-token":"z"},
            "actor":{"sub":"admin","access_token":"y"}}}"#,
    ]);
    assert_eq!(
        s.labels.keys().collect::<Vec<_>>(),
        ["team"],
        "secret-named labels dropped"
    );
    assert_eq!(
        serde_json::Value::Object(s.metadata.clone()),
        serde_json::json!({"plan":"pro","nested":{"ok":[{"n":1}]}})
    );
    assert_eq!(
        serde_json::Value::Object(s.actor.clone().unwrap()),
        serde_json::json!({"sub":"admin"})
    );
}
