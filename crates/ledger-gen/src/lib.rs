//! A seeded, realistic synthetic stream of session events: many users,
//! clients, agents and workspaces; created/activity/renewed/terminal events
//! with usage, billing, traces and devices; optional producer-retry
//! duplicates and sessions whose first events arrive before `created`.
//!
//! The same [`GenConfig`] always yields the same events (ChaCha8, seeded).
//! Events come in blocks of concurrently live sessions, so memory stays
//! bounded however long the stream.

use std::collections::BTreeMap;

use ledger_core::config::TimeoutPatch;
use ledger_core::event::{
    ActivityData, Billing, CreatedData, Device, SessionType, TerminalData, Usage,
};
use ledger_core::{Event, EventData, EventKind};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenConfig {
    pub seed: u64,
    /// Number of sessions.
    pub sessions: usize,
    /// Approximate number of events (before duplicates), at least one per session.
    pub events: usize,
    pub users: usize,
    pub clients: usize,
    pub agents: usize,
    pub workspaces: usize,
    /// Time of the first event, Unix ms.
    pub start_ms: i64,
    /// Probability that an event is followed by a duplicate (same id).
    pub duplicate_rate: f64,
    /// Probability that a session's `created` arrives after its first events.
    pub out_of_order_rate: f64,
    /// Probability that a session ends with a terminal event.
    pub terminal_rate: f64,
    /// Sessions live at once (one block); bounds memory.
    pub block: usize,
}

impl Default for GenConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            sessions: 1_000,
            events: 10_000,
            users: 200,
            clients: 50,
            agents: 20,
            workspaces: 10,
            start_ms: 1_795_000_000_000,
            duplicate_rate: 0.0,
            out_of_order_rate: 0.0,
            terminal_rate: 0.3,
            block: 2_000,
        }
    }
}

const BROWSERS: &[(&str, &str)] = &[
    ("Chrome", "131.0"),
    ("Firefox", "133.0"),
    ("Safari", "18.1"),
    ("Edge", "131.0"),
];
const CITIES: &[(&str, &str)] = &[
    ("Lisbon", "PT"),
    ("Berlin", "DE"),
    ("Austin", "US"),
    ("Osaka", "JP"),
    ("Lagos", "NG"),
];
const TAGS: &[&str] = &[
    "checkout",
    "support",
    "search",
    "onboarding",
    "billing",
    "gpt-4o",
    "claude",
    "beta",
];
const TERMINALS: &[EventKind] = &[
    EventKind::Ended,
    EventKind::Ended,
    EventKind::Revoked,
    EventKind::Removed,
    EventKind::Replaced,
];

/// Moves every time in `events` (event times and explicit expiries) by
/// `by_ms`, so a generated stream can end at a chosen instant.
pub fn shift(events: &mut [Event], by_ms: i64) {
    for e in events {
        e.time_ms += by_ms;
        if let Some(x) = e.created_expires_at_ms.as_mut() {
            *x += by_ms;
        }
        if let EventData::Renewed {
            expires_at_ms: Some(x),
            ..
        } = &mut e.data
        {
            *x += by_ms;
        }
    }
}

/// The event stream described by a config.
pub struct Generator {
    cfg: GenConfig,
    rng: ChaCha8Rng,
    agents: Vec<String>,
    next_session: usize,
    clock_ms: i64,
    buffer: std::vec::IntoIter<Event>,
}

impl Generator {
    pub fn new(cfg: GenConfig) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let agents = (0..cfg.agents.max(1))
            .map(|_| uuid_from(&mut rng))
            .collect();
        let clock_ms = cfg.start_ms;
        Self {
            cfg,
            rng,
            agents,
            next_session: 0,
            clock_ms,
            buffer: Vec::new().into_iter(),
        }
    }

    fn fill(&mut self) -> bool {
        let remaining = self.cfg.sessions - self.next_session;
        if remaining == 0 {
            return false;
        }
        let n = remaining.min(self.cfg.block.max(1));
        let per = (self.cfg.events.max(self.cfg.sessions) as f64 / self.cfg.sessions.max(1) as f64)
            .max(1.0);
        // (delivery time, sequence, event); sorted by time, ties by sequence.
        let mut timed: Vec<(i64, usize, Event)> = Vec::new();
        let mut seq = 0usize;
        for _ in 0..n {
            let i = self.next_session;
            self.next_session += 1;
            // Uniform on 1..=2·per−1: mean `per` events a session.
            let max = ((2.0 * per - 1.0).round() as usize).max(1);
            let count = self.rng.random_range(1..=max);
            let start = self.clock_ms + self.rng.random_range(0..600_000);
            for (t, e) in self.session_events(i, count, start) {
                timed.push((t, seq, e));
                seq += 1;
            }
        }
        self.clock_ms += 600_000;
        timed.sort_by_key(|(t, s, _)| (*t, *s));
        let mut out = Vec::with_capacity(timed.len());
        for (_, _, e) in timed {
            let dup = self.cfg.duplicate_rate > 0.0
                && self.rng.random_bool(self.cfg.duplicate_rate.min(1.0));
            if dup {
                out.push(e.clone());
            }
            out.push(e);
        }
        self.buffer = out.into_iter();
        true
    }

    /// One session's events as (delivery time, event); `count` ≥ 1.
    fn session_events(&mut self, i: usize, count: usize, start: i64) -> Vec<(i64, Event)> {
        let rng = &mut self.rng;
        let sid = format!("sess_{:08}_{:06x}", i, rng.random_range(0..0xff_ffffu32));
        let user = format!("user_{}", rng.random_range(0..self.cfg.users.max(1)));
        let timeout = [15u32, 30, 30, 60, 120][rng.random_range(0..5)];
        let created = CreatedData {
            user_id: user,
            client_id: Some(format!(
                "client_{}",
                rng.random_range(0..self.cfg.clients.max(1))
            )),
            agent_id: Some(self.agents.choose(rng).cloned().unwrap_or_default()),
            channel_id: Some(format!("chan_{}", rng.random_range(0..1000))),
            workspace_id: Some(format!(
                "ws_{}",
                rng.random_range(0..self.cfg.workspaces.max(1))
            )),
            project_id: rng
                .random_bool(0.5)
                .then(|| format!("proj_{}", rng.random_range(0..40))),
            external_id: Some(format!("ext-{i}")),
            session_type: Some(
                [SessionType::User, SessionType::API, SessionType::Guest][rng.random_range(0..3)],
            ),
            labels: BTreeMap::from([(
                "plan".to_string(),
                ["free", "pro", "team"][rng.random_range(0..3)].to_string(),
            )]),
            metadata: Some(serde_json::Map::from_iter([(
                "origin".to_string(),
                serde_json::Value::from("generator"),
            )])),
            tags: vec![TAGS.choose(rng).copied().unwrap_or("beta").to_string()],
            contact_ids: vec![],
            actor: None,
            organization_id: rng
                .random_bool(0.4)
                .then(|| format!("org_{}", rng.random_range(0..30))),
            timeout: Some(TimeoutPatch {
                timeout_minutes: Some(timeout),
                ..Default::default()
            }),
            expires_at: None,
            unlimited: rng.random_bool(0.01),
        };
        let mut t = start;
        let mut events = vec![(
            t,
            self.event(
                &sid,
                EventKind::Created,
                t,
                EventData::Created(Box::new(created)),
            ),
        )];
        let terminal = count > 1 && self.rng.random_bool(self.cfg.terminal_rate);
        let body = count - 1 - usize::from(terminal);
        for _ in 0..body {
            // Mostly within the timeout; sometimes a long gap that lets it expire.
            let gap = if self.rng.random_bool(0.03) {
                self.rng.random_range(0..(timeout as i64 * 2 * 60_000))
            } else {
                self.rng.random_range(1_000..(timeout as i64 * 60_000 / 3))
            };
            t += gap;
            let e = if self.rng.random_bool(0.1) {
                let data = EventData::Renewed {
                    timeout: self.rng.random_bool(0.2).then(|| TimeoutPatch {
                        timeout_minutes: Some(timeout * 2),
                        ..Default::default()
                    }),
                    expires_at_ms: None,
                };
                self.event(&sid, EventKind::Renewed, t, data)
            } else {
                let data = self.activity();
                self.event(
                    &sid,
                    EventKind::Activity,
                    t,
                    EventData::Activity(Box::new(data)),
                )
            };
            events.push((t, e));
        }
        if terminal {
            t += self.rng.random_range(1_000..600_000);
            let kind = *TERMINALS.choose(&mut self.rng).unwrap_or(&EventKind::Ended);
            let data = EventData::Terminal(TerminalData {
                reason: Some("user signed out".into()),
            });
            events.push((t, self.event(&sid, kind, t, data)));
        }
        if events.len() > 1 && self.rng.random_bool(self.cfg.out_of_order_rate) {
            // `created` is delivered after the session's next events.
            let k = self.rng.random_range(1..events.len());
            let (ct, c) = events.remove(0);
            let deliver = events[k - 1].0;
            events.insert(k, (deliver.max(ct), c));
        }
        events
    }

    fn activity(&mut self) -> ActivityData {
        let rng = &mut self.rng;
        let (browser, version) = *BROWSERS.choose(rng).unwrap_or(&("Chrome", "131.0"));
        let (city, country) = *CITIES.choose(rng).unwrap_or(&("Lisbon", "PT"));
        let prompt = rng.random_range(0..4_000u64);
        let completion = rng.random_range(0..1_000u64);
        ActivityData {
            organization_id: rng
                .random_bool(0.2)
                .then(|| format!("org_{}", rng.random_range(0..30))),
            device: rng.random_bool(0.5).then(|| Device {
                device_type: Some(["desktop", "mobile", "tablet"][rng.random_range(0..3)].into()),
                is_mobile: rng.random_bool(0.4),
                browser_name: Some(browser.into()),
                browser_version: Some(version.into()),
                ip_address: Some(format!("203.0.113.{}", rng.random_range(1..255))),
                city: Some(city.into()),
                country: Some(country.into()),
            }),
            trace_id: rng
                .random_bool(0.7)
                .then(|| format!("trace_{:016x}", rng.random::<u64>())),
            usage: Some(Usage {
                prompt_tokens: prompt,
                completion_tokens: completion,
            }),
            // Costs in whole micro-units so sums are exact and order-independent.
            billing: Some(Billing {
                input_cost: (prompt as f64) * 0.000_25,
                output_cost: (completion as f64) * 0.001,
            }),
            tags: if rng.random_bool(0.3) {
                vec![TAGS.choose(rng).copied().unwrap_or("beta").to_string()]
            } else {
                vec![]
            },
            contact_ids: if rng.random_bool(0.1) {
                vec![format!("contact_{}", rng.random_range(0..500))]
            } else {
                vec![]
            },
        }
    }

    fn event(&mut self, sid: &str, kind: EventKind, t: i64, data: EventData) -> Event {
        Event {
            id: uuid_from(&mut self.rng),
            source: "/generator".into(),
            kind,
            session_id: sid.to_string(),
            time_ms: t,
            created_expires_at_ms: None,
            data,
        }
    }
}

fn uuid_from(rng: &mut ChaCha8Rng) -> String {
    uuid::Builder::from_random_bytes(rng.random())
        .into_uuid()
        .to_string()
}

impl Iterator for Generator {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.buffer.next() {
                return Some(e);
            }
            if !self.fill() {
                return None;
            }
        }
    }
}

/// Shorthand: every event of a config, in delivery order.
pub fn generate(cfg: GenConfig) -> Vec<Event> {
    Generator::new(cfg).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn seeded_and_shaped_as_asked() {
        let cfg = GenConfig {
            sessions: 500,
            events: 5_000,
            duplicate_rate: 0.05,
            out_of_order_rate: 0.1,
            block: 100,
            ..Default::default()
        };
        let a = generate(cfg.clone());
        let b = generate(cfg);
        assert_eq!(a, b);
        let sessions: HashSet<_> = a.iter().map(|e| e.session_id.clone()).collect();
        assert_eq!(sessions.len(), 500);
        assert!(a.len() > 4_000 && a.len() < 7_000, "{}", a.len());
        let ids: HashSet<_> = a.iter().map(|e| e.id.clone()).collect();
        assert!(ids.len() < a.len(), "has duplicates");
        let kinds: HashSet<_> = a.iter().map(|e| e.kind).collect();
        assert!(kinds.len() >= 5, "{kinds:?}");
        // Some session's first delivered event is not its `created`.
        let mut first: BTreeMap<&str, EventKind> = BTreeMap::new();
        for e in &a {
            first.entry(&e.session_id).or_insert(e.kind);
        }
        assert!(first.values().any(|k| *k != EventKind::Created));
    }
}
