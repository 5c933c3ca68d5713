//! Table-driven tests pinning every timing rule of DESIGN.md §4 with
//! concrete numbers. Times are minutes after T0 unless stated.

use ledger_core::config::TimeoutPatch;
use ledger_core::event::{ActivityData, CreatedData, TerminalData, Usage};
use ledger_core::{apply, Defaults, Event, EventData, EventKind, Outcome, Session, Status};

const T0: i64 = 1_795_000_000_000;
const MIN: i64 = 60_000;

fn at(min: i64) -> i64 {
    T0 + min * MIN
}

fn ev(id: &str, kind: EventKind, min: i64, data: EventData) -> Event {
    Event {
        id: id.into(),
        source: "/test".into(),
        kind,
        session_id: "s1".into(),
        time_ms: at(min),
        created_expires_at_ms: None,
        data,
    }
}

fn created(min: i64, timeout: Option<TimeoutPatch>) -> Event {
    ev(
        "c",
        EventKind::Created,
        min,
        EventData::Created(Box::new(CreatedData {
            user_id: "u1".into(),
            timeout,
            ..Default::default()
        })),
    )
}

fn activity(id: &str, min: i64) -> Event {
    ev(
        id,
        EventKind::Activity,
        min,
        EventData::Activity(Box::new(ActivityData {
            usage: Some(Usage {
                prompt_tokens: 10,
                completion_tokens: 1,
            }),
            trace_id: Some(format!("tr-{id}")),
            ..Default::default()
        })),
    )
}

fn renewed(id: &str, min: i64, timeout: Option<TimeoutPatch>) -> Event {
    ev(
        id,
        EventKind::Renewed,
        min,
        EventData::Renewed {
            timeout,
            expires_at_ms: None,
        },
    )
}

fn terminal(id: &str, kind: EventKind, min: i64) -> Event {
    ev(id, kind, min, EventData::Terminal(TerminalData::default()))
}

fn fold(events: &[Event]) -> (Session, Vec<Outcome>) {
    let d = Defaults::default();
    let mut s = None;
    let mut out = vec![];
    for e in events {
        let (n, o) = apply(s, e, &d);
        s = Some(n);
        out.push(o);
    }
    (s.unwrap(), out)
}

fn timeout(t: u32, max: u32, auto: bool) -> Option<TimeoutPatch> {
    Some(TimeoutPatch {
        timeout_minutes: Some(t),
        max_duration_minutes: Some(max),
        auto_renew: Some(auto),
        ..Default::default()
    })
}

#[test]
fn expiry_rule_table() {
    // (timeout, max, auto_renew, renewal minute, expected expires_at minute, expected outcome)
    let cases: &[(u32, u32, bool, i64, i64, Outcome)] = &[
        (30, 720, false, 10, 40, Outcome::Applied),
        (30, 720, false, 689, 719, Outcome::Applied),
        (30, 720, false, 690, 720, Outcome::Applied), // 690+30 = 720, not > 720
        (30, 720, false, 700, 720, Outcome::Applied), // capped at created + max
        (30, 720, false, 719, 720, Outcome::Applied),
        (60, 90, false, 45, 90, Outcome::Applied),
    ];
    for &(t, max, auto, renew_at, want, want_outcome) in cases {
        // Keep the session alive up to the renewal with renewals every 20 min.
        let mut events = vec![created(0, timeout(t, max, auto))];
        let mut m = 20;
        let mut i = 0;
        while m < renew_at {
            events.push(renewed(&format!("k{i}"), m, None));
            m += 20;
            i += 1;
        }
        events.push(renewed("last", renew_at, None));
        let (s, out) = fold(&events);
        assert_eq!(
            *out.last().unwrap(),
            want_outcome,
            "case {t}/{max} at {renew_at}"
        );
        assert_eq!(s.expires_at, at(want), "case {t}/{max} at {renew_at}");
        assert_eq!(s.status, Status::Active);
    }
}

#[test]
fn renewal_at_max_duration_is_rejected() {
    // timeout 30, max 720: renewal at 700 → 720; renewal at 720 rejected.
    let mut events = vec![created(0, timeout(30, 720, false))];
    for (i, m) in (20..=700).step_by(20).enumerate() {
        events.push(renewed(&format!("r{i}"), m, None));
    }
    let (s, out) = fold(&events);
    assert_eq!(*out.last().unwrap(), Outcome::Applied);
    assert_eq!(s.expires_at, at(720));
    let d = Defaults::default();
    // At minute 720 the renewal is rejected and the state is unchanged.
    let (s2, o) = apply(Some(s.clone()), &renewed("late", 720, None), &d);
    assert_eq!(o, Outcome::RejectedRenewal);
    let mut without_id = s2.clone();
    without_id.recent_ids = s.recent_ids.clone();
    assert_eq!(without_id, s);
    // Past the cap too (minute 721), and a partial timeout cannot sneak in.
    let (s3, o3) = apply(
        Some(s.clone()),
        &renewed("later", 721, timeout(5, 5, true)),
        &d,
    );
    assert_eq!(o3, Outcome::RejectedRenewal);
    assert_eq!(s3.timeout, s.timeout);
    // Raising max_duration in the renewal itself makes it acceptable.
    let (s4, o4) = apply(
        Some(s.clone()),
        &renewed("raise", 720, timeout(30, 900, false)),
        &d,
    );
    assert_eq!(
        o4,
        Outcome::ClosedAtDeadline(Status::Expired),
        "expiry at 720 came first"
    );
    assert_eq!(s4.ended_at, Some(at(720)));
}

#[test]
fn creation_defaults_and_overrides() {
    let (s, _) = fold(&[created(0, None)]);
    assert_eq!(s.timeout, Defaults::default());
    assert_eq!(s.expires_at, at(30));
    assert_eq!(s.abandon_at, at(10_080));
    assert_eq!(s.last_active_at, at(0));
    // max raised to at least the timeout
    let (s, _) = fold(&[created(0, timeout(800, 720, true))]);
    assert_eq!(s.timeout.max_duration_minutes, 800);
    assert_eq!(s.expires_at, at(800));
    // explicit expiry in created
    let mut c = created(0, None);
    c.created_expires_at_ms = Some(at(5));
    let (s, _) = fold(&[c]);
    assert_eq!(s.expires_at, at(5));
    // unlimited
    let mut c = created(0, None);
    if let EventData::Created(d) = &mut c.data {
        d.unlimited = true;
    }
    let (s, out) = fold(&[c, activity("a", 5000)]);
    assert_eq!(s.expires_at, ledger_core::UNLIMITED_EXPIRY_MS);
    assert_eq!(out[1], Outcome::Applied);
    assert_eq!(s.status_at(at(100_000)), Status::Abandoned);
}

#[test]
fn activity_auto_renews_until_max_duration() {
    // (activity minute, expected expiry minute, renewal count)
    let cases: &[(i64, i64, u64)] = &[(10, 40, 1), (25, 55, 1), (700, 720, 1)];
    for &(m, want, count) in cases {
        let mut events = vec![created(0, timeout(30, 720, true))];
        let mut k = 20;
        while k < m {
            events.push(activity(&format!("k{k}"), k));
            k += 20;
        }
        let base = events.len() as u64 - 1;
        events.push(activity("last", m));
        let (s, _) = fold(&events);
        assert_eq!(s.expires_at, at(want), "activity at {m}");
        assert_eq!(s.renewal_count, base + count, "activity at {m}");
        assert_eq!(s.abandon_at, at(m + 10_080));
    }
    // auto_renew false: activity is no renewal.
    let (s, _) = fold(&[created(0, timeout(30, 720, false)), activity("a", 10)]);
    assert_eq!((s.expires_at, s.renewal_count), (at(30), 0));
    assert_eq!(s.last_active_at, at(10));
}

#[test]
fn deadlines_are_facts_of_event_time() {
    // Activity at exactly the expiry does not revive: closed at 30.
    let (s, out) = fold(&[created(0, None), activity("a", 30)]);
    assert_eq!(out[1], Outcome::ClosedAtDeadline(Status::Expired));
    assert_eq!((s.status, s.ended_at), (Status::Expired, Some(at(30))));
    assert_eq!(s.traces_count, 0, "ignored event adds no aggregates");
    // Abandonment first: abandon after 20, timeout 30.
    let p = Some(TimeoutPatch {
        abandon_after_minutes: Some(20),
        ..Default::default()
    });
    let (s, out) = fold(&[created(0, p), activity("a", 25)]);
    assert_eq!(out[1], Outcome::ClosedAtDeadline(Status::Abandoned));
    assert_eq!(s.ended_at, Some(at(20)));
    // A reaper's expired event at the deadline: ended_at = deadline.
    let (s, _) = fold(&[created(0, None), terminal("x", EventKind::Expired, 30)]);
    assert_eq!((s.status, s.ended_at), (Status::Expired, Some(at(30))));
    // An ended event after the deadline: the expiry came first and wins.
    let (s, _) = fold(&[created(0, None), terminal("x", EventKind::Ended, 45)]);
    assert_eq!((s.status, s.ended_at), (Status::Expired, Some(at(30))));
}

#[test]
fn read_time_status() {
    let (s, _) = fold(&[created(0, None)]);
    assert_eq!(s.status_at(at(29)), Status::Active);
    assert_eq!(s.status_at(at(30)), Status::Expired);
    let p = Some(TimeoutPatch {
        abandon_after_minutes: Some(20),
        ..Default::default()
    });
    let (s, _) = fold(&[created(0, p)]);
    assert_eq!(s.status_at(at(19)), Status::Active);
    assert_eq!(s.status_at(at(20)), Status::Abandoned);
}

#[test]
fn first_terminal_wins_and_later_events_are_ignored() {
    let (s, out) = fold(&[
        created(0, None),
        terminal("r", EventKind::Revoked, 5),
        terminal("e", EventKind::Ended, 6),
        activity("a", 7),
        renewed("n", 8, None),
    ]);
    assert_eq!((s.status, s.ended_at), (Status::Revoked, Some(at(5))));
    assert_eq!(
        &out[2..],
        &[
            Outcome::IgnoredTerminal,
            Outcome::IgnoredTerminal,
            Outcome::IgnoredTerminal
        ]
    );
    assert_eq!(s.updated_at, at(5));
}

#[test]
fn pending_shell_counts_aggregates_and_replays_renewals() {
    let (s, out) = fold(&[
        activity("a1", 10),
        renewed("r1", 12, timeout(60, 720, false)),
        activity("a2", 15),
    ]);
    assert!(out.iter().all(|o| *o == Outcome::Applied));
    assert_eq!(s.status, Status::Pending);
    assert_eq!((s.traces_count, s.usage.prompt_tokens), (2, 20));
    assert_eq!(s.last_active_at, at(15));
    let d = Defaults::default();
    let (s, o) = apply(Some(s), &created(5, None), &d);
    assert_eq!(o, Outcome::Applied);
    assert_eq!(s.status, Status::Active);
    assert_eq!(s.created_at, Some(at(5)));
    // a1 (auto-renew default) renews, r1 renews and sets timeout 60 and
    // auto_renew false, a2 is then no renewal.
    assert_eq!(s.renewal_count, 2);
    assert_eq!(s.timeout.timeout_minutes, 60);
    assert_eq!(s.expires_at, at(12 + 60));
    assert_eq!(s.last_active_at, at(15));
    assert!(s.pending.is_empty());
    // A terminal before created stays terminal once created arrives.
    let (s, _) = fold(&[terminal("x", EventKind::Ended, 9), created(5, None)]);
    assert_eq!((s.status, s.ended_at), (Status::Ended, Some(at(9))));
    // Second created ignored.
    let mut second = created(1, None);
    second.id = "c2".into();
    let (_, out) = fold(&[created(0, None), second]);
    assert_eq!(out[1], Outcome::IgnoredSecondCreated);
}

#[test]
fn duplicates_and_aggregates() {
    let (s, out) = fold(&[
        created(0, None),
        activity("a", 1),
        activity("a", 1),
        activity("b", 2),
    ]);
    assert_eq!(out[2], Outcome::Duplicate);
    assert_eq!(s.usage.prompt_tokens, 20);
    assert_eq!(s.total_tokens(), 22);
    assert_eq!(s.traces_count, 2);
    assert_eq!(s.renewal_count, 2);
    assert_eq!(s.updated_at, at(2));
}
