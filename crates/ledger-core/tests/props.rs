//! Property tests of the fold (1,000+ cases each): replay, duplicates,
//! interleaving across sessions, pending shells, terminal finality.

use std::collections::BTreeMap;

use ledger_core::config::TimeoutPatch;
use ledger_core::event::{ActivityData, Billing, CreatedData, Device, TerminalData, Usage};
use ledger_core::{apply, Defaults, Event, EventData, EventKind, Session, Status};
use proptest::prelude::*;

const T0: i64 = 1_795_000_000_000;
const MIN: i64 = 60_000;

/// A compact event description the strategies generate.
#[derive(Debug, Clone)]
struct Spec {
    session: u8,
    kind: EventKind,
    minute: i64,
    n: u64,
    timeout: Option<(u32, u32, bool, u32)>,
}

fn kind() -> impl Strategy<Value = EventKind> {
    prop_oneof![
        2 => Just(EventKind::Created),
        8 => Just(EventKind::Activity),
        3 => Just(EventKind::Renewed),
        1 => Just(EventKind::Expired),
        1 => Just(EventKind::Abandoned),
        1 => Just(EventKind::Ended),
        1 => Just(EventKind::Revoked),
        1 => Just(EventKind::Removed),
        1 => Just(EventKind::Replaced),
    ]
}

fn spec(sessions: u8) -> impl Strategy<Value = Spec> {
    (
        0..sessions,
        kind(),
        0i64..1500,
        0u64..1000,
        proptest::option::of((1u32..120, 1u32..900, any::<bool>(), 1u32..400)),
    )
        .prop_map(|(session, kind, minute, n, timeout)| Spec {
            session,
            kind,
            minute,
            n,
            timeout,
        })
}

fn build(i: usize, s: &Spec) -> Event {
    let patch = s.timeout.map(|(t, m, a, ab)| TimeoutPatch {
        timeout_minutes: Some(t),
        max_duration_minutes: Some(m),
        auto_renew: Some(a),
        abandon_after_minutes: Some(ab),
        warning_threshold_minutes: None,
    });
    let data = match s.kind {
        EventKind::Created => EventData::Created(Box::new(CreatedData {
            user_id: format!("u{}", s.n % 7),
            client_id: Some(format!("c{}", s.n % 3)),
            tags: vec![format!("t{}", s.n % 5)],
            timeout: patch,
            ..Default::default()
        })),
        EventKind::Activity => EventData::Activity(Box::new(ActivityData {
            usage: Some(Usage {
                prompt_tokens: s.n,
                completion_tokens: s.n / 2,
            }),
            billing: Some(Billing {
                input_cost: s.n as f64 * 0.001,
                output_cost: 0.25,
            }),
            trace_id: (s.n % 2 == 0).then(|| format!("tr{}", s.n)),
            tags: vec![format!("t{}", s.n % 11)],
            contact_ids: vec![format!("k{}", s.n % 13)],
            device: (s.n % 3 == 0).then(|| Device {
                device_type: Some("phone".into()),
                is_mobile: true,
                ..Default::default()
            }),
            organization_id: (s.n % 4 == 0).then(|| format!("org{}", s.n % 2)),
        })),
        EventKind::Renewed => EventData::Renewed {
            timeout: patch,
            expires_at_ms: None,
        },
        _ => EventData::Terminal(TerminalData {
            reason: Some("r".into()),
        }),
    };
    Event {
        id: format!("e{i}"),
        source: "/prop".into(),
        kind: s.kind,
        session_id: format!("s{}", s.session),
        time_ms: T0 + s.minute * MIN,
        created_expires_at_ms: None,
        data,
    }
}

fn events(specs: &[Spec]) -> Vec<Event> {
    specs.iter().enumerate().map(|(i, s)| build(i, s)).collect()
}

fn fold_all(evs: &[Event]) -> BTreeMap<String, Session> {
    ledger_core::replay(evs, &Defaults::default())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Replaying the same sequence gives the same state (the read models are disposable).
    #[test]
    fn replay_is_deterministic(specs in proptest::collection::vec(spec(4), 0..60)) {
        let evs = events(&specs);
        prop_assert_eq!(fold_all(&evs), fold_all(&evs));
    }

    /// Duplicating events (producer retries: a copy shortly after the
    /// original) changes nothing.
    #[test]
    fn duplicates_are_ignored(
        specs in proptest::collection::vec(spec(3), 1..50),
        dups in proptest::collection::vec((any::<prop::sample::Index>(), 0usize..8), 1..20),
    ) {
        let evs = events(&specs);
        let mut with_dups = evs.clone();
        // Insert each copy a few positions after its original (in the sequence
        // that already contains earlier copies).
        for (idx, gap) in dups {
            let i = idx.index(with_dups.len());
            let copy = with_dups[i].clone();
            let pos = (i + 1 + gap).min(with_dups.len());
            with_dups.insert(pos, copy);
        }
        prop_assert_eq!(fold_all(&evs), fold_all(&with_dups));
    }

    /// Any interleaving of different sessions' events (each session's own
    /// order kept) gives the same per-session state.
    #[test]
    fn interleaving_sessions_is_irrelevant(
        specs in proptest::collection::vec(spec(5), 0..60),
        picks in proptest::collection::vec(0u8..5, 0..200),
    ) {
        let evs = events(&specs);
        let mut queues: Vec<std::collections::VecDeque<Event>> = vec![Default::default(); 5];
        for e in &evs {
            let k: usize = e.session_id[1..].parse().unwrap();
            queues[k].push_back(e.clone());
        }
        let mut shuffled = vec![];
        for p in picks {
            if let Some(e) = queues[p as usize].pop_front() {
                shuffled.push(e);
            }
        }
        for q in &mut queues {
            shuffled.extend(q.drain(..));
        }
        prop_assert_eq!(shuffled.len(), evs.len());
        prop_assert_eq!(fold_all(&evs), fold_all(&shuffled));
    }

    /// Activity and renewals that arrive before `created` are not lost: with
    /// no deadline in reach, every one of them counts, wherever `created` lands.
    #[test]
    fn events_before_created_are_kept(
        specs in proptest::collection::vec(spec(1), 1..60),
        created_at in 0usize..60,
    ) {
        let body: Vec<Spec> = specs
            .into_iter()
            .filter(|s| matches!(s.kind, EventKind::Activity | EventKind::Renewed))
            .map(|mut s| { s.timeout = None; s })
            .collect();
        let mut evs = events(&body);
        let pos = created_at.min(evs.len());
        let mut c = build(10_000, &Spec { session: 0, kind: EventKind::Created, minute: 0, n: 1, timeout: Some((100_000, 100_000, true, 100_000)) });
        c.id = "created".into();
        evs.insert(pos, c);
        let s = fold_all(&evs).remove("s0").unwrap();
        prop_assert_eq!(s.status, Status::Active);
        prop_assert_eq!(s.renewal_count, body.len() as u64);
        let prompt: u64 = body.iter().filter(|b| b.kind == EventKind::Activity).map(|b| b.n).sum();
        prop_assert_eq!(s.usage.prompt_tokens, prompt);
        let traces = body.iter().filter(|b| b.kind == EventKind::Activity && b.n % 2 == 0).count() as u64;
        prop_assert_eq!(s.traces_count, traces);
        let last = body.iter().map(|b| T0 + b.minute * MIN).max().unwrap_or(T0).max(T0);
        prop_assert_eq!(s.last_active_at, last);
        prop_assert!(s.pending.is_empty());
    }

    /// Once a session is terminal its status and end time never change.
    #[test]
    fn terminal_is_final(specs in proptest::collection::vec(spec(1), 1..80)) {
        let d = Defaults::default();
        let mut state: Option<Session> = None;
        let mut closed: Option<(Status, Option<i64>)> = None;
        for e in events(&specs) {
            let (s, _) = apply(state, &e, &d);
            if let Some(c) = closed {
                prop_assert_eq!(c, (s.status, s.ended_at));
            } else if s.status.is_terminal() {
                closed = Some((s.status, s.ended_at));
            }
            state = Some(s);
        }
    }
}
