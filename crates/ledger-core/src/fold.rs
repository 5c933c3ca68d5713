//! The lifecycle fold: `apply(state, event) -> (state, outcome)`, implementing
//! the rules of DESIGN.md §4.
//!
//! Deterministic: the result depends only on the prior state, the event and
//! the configured defaults. Time comes from the event's `time`.

use std::collections::BTreeSet;

use crate::config::{Defaults, TimeoutPatch};
use crate::event::{ActivityData, CreatedData, Event, EventData};
use crate::limits::{is_secret_key, redact_object, Limit, MAX_CONTACT_IDS, MAX_PENDING, MAX_TAGS};
use crate::session::{
    deadline, id_hash, LatestActivity, PendingStep, Session, Status, RECENT_IDS,
    UNLIMITED_EXPIRY_MS,
};

/// What an event did to its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The event changed the session as its type says.
    Applied,
    /// The event came at or after a deadline: the session was closed with that
    /// status at the deadline, and the event itself was ignored.
    ClosedAtDeadline(Status),
    /// The id is among the session's recent ids: nothing changed.
    Duplicate,
    /// A second `created` for a created session.
    IgnoredSecondCreated,
    /// Activity, renewal or terminal event on a session already terminal.
    IgnoredTerminal,
    /// A renewal at or past `created_at + max_duration`.
    RejectedRenewal,
    /// The event would have pushed the session past a per-session bound
    /// (`crate::limits`): nothing changed.
    RejectedLimit(Limit),
}

impl Outcome {
    /// Whether the session's lifecycle or aggregates changed.
    pub fn changed_state(self) -> bool {
        matches!(self, Outcome::Applied | Outcome::ClosedAtDeadline(_))
    }

    /// The counter an outcome is counted in (the store's event counts and
    /// the `ledger_events{outcome}` metric).
    pub fn bucket(self) -> Bucket {
        match self {
            Outcome::Applied | Outcome::ClosedAtDeadline(_) => Bucket::Applied,
            Outcome::Duplicate => Bucket::Duplicate,
            Outcome::IgnoredSecondCreated | Outcome::IgnoredTerminal => Bucket::Ignored,
            Outcome::RejectedRenewal => Bucket::Rejected,
            Outcome::RejectedLimit(_) => Bucket::Limited,
        }
    }

    /// A short stable name, used in metrics and the event history.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::ClosedAtDeadline(_) => "closed_at_deadline",
            Outcome::Duplicate => "duplicate",
            Outcome::IgnoredSecondCreated => "ignored_second_created",
            Outcome::IgnoredTerminal => "ignored_terminal",
            Outcome::RejectedRenewal => "rejected_renewal",
            Outcome::RejectedLimit(_) => "rejected_limit",
        }
    }
}

/// The counters consumed records are counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bucket {
    /// Changed a session (including closes at a deadline).
    Applied,
    /// A recent duplicate id.
    Duplicate,
    /// A second `created`, or an event on a terminal session.
    Ignored,
    /// A renewal past the maximum duration.
    Rejected,
    /// Over a per-session bound.
    Limited,
}

impl Bucket {
    pub const ALL: [Bucket; 5] = [
        Bucket::Applied,
        Bucket::Duplicate,
        Bucket::Ignored,
        Bucket::Rejected,
        Bucket::Limited,
    ];

    /// Its name in metrics: `ledger_events{outcome="…"}`.
    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Applied => "applied",
            Bucket::Duplicate => "duplicate",
            Bucket::Ignored => "ignored",
            Bucket::Rejected => "rejected",
            Bucket::Limited => "limited",
        }
    }
}

/// Folds events, in order, into the sessions they make (by session id): the
/// reference every projection of the same sequence must equal.
pub fn replay<'a>(
    events: impl IntoIterator<Item = &'a Event>,
    defaults: &Defaults,
) -> std::collections::BTreeMap<String, Session> {
    let mut sessions = std::collections::BTreeMap::new();
    for e in events {
        let prior = sessions.remove(&e.session_id);
        sessions.insert(e.session_id.clone(), apply(prior, e, defaults).0);
    }
    sessions
}

/// Folds one event into its session's state (`None` = never seen).
///
/// `defaults` fill in the timeout rules a `created` event does not override.
pub fn apply(state: Option<Session>, ev: &Event, defaults: &Defaults) -> (Session, Outcome) {
    let mut s = state.unwrap_or_else(|| Session::shell(&ev.session_id, ev.time_ms, defaults));
    let h = id_hash(&ev.id);
    if s.recent_ids.contains(&h) {
        return (s, Outcome::Duplicate);
    }
    s.recent_ids.push_back(h);
    if s.recent_ids.len() > RECENT_IDS {
        s.recent_ids.pop_front();
    }
    let t = ev.time_ms;
    let outcome = match &ev.data {
        EventData::Created(d) => created(&mut s, ev, d, defaults),
        EventData::Activity(d) => match (s.status, over_limit(&s, d)) {
            (Status::Pending | Status::Active, Some(limit)) => Outcome::RejectedLimit(limit),
            (Status::Pending, None) => {
                aggregate(&mut s, ev, d);
                s.pending.push(PendingStep::Activity(t));
                Outcome::Applied
            }
            (Status::Active, None) => {
                let o = activity(&mut s, t);
                if o == Outcome::Applied {
                    aggregate(&mut s, ev, d);
                }
                o
            }
            _ => Outcome::IgnoredTerminal,
        },
        EventData::Renewed {
            timeout,
            expires_at_ms,
        } => match s.status {
            Status::Pending if pending_full(&s) => Outcome::RejectedLimit(Limit::PendingEvents),
            Status::Pending => {
                s.last_active_at = s.last_active_at.max(t);
                s.pending.push(PendingStep::Renewed {
                    at_ms: t,
                    timeout: *timeout,
                    expires_at_ms: *expires_at_ms,
                });
                Outcome::Applied
            }
            Status::Active => renewed(&mut s, t, timeout.as_ref(), *expires_at_ms),
            _ => Outcome::IgnoredTerminal,
        },
        EventData::Terminal(d) => {
            // Terminal data comes with a terminal type (the decoder's rule).
            let status = ev.kind.terminal_status().unwrap_or(Status::Ended);
            match s.status {
                Status::Pending => {
                    if !s
                        .pending
                        .iter()
                        .any(|p| matches!(p, PendingStep::Terminal { .. }))
                    {
                        s.pending.push(PendingStep::Terminal {
                            status,
                            at_ms: t,
                            reason: d.reason.clone(),
                        });
                    }
                    Outcome::Applied
                }
                Status::Active => terminal(&mut s, status, t, d.reason.clone()),
                _ => Outcome::IgnoredTerminal,
            }
        }
    };
    match outcome {
        Outcome::Applied => s.updated_at = s.updated_at.max(t),
        Outcome::ClosedAtDeadline(_) => {
            s.updated_at = s.updated_at.max(s.ended_at.unwrap_or(t));
        }
        _ => {}
    }
    (s, outcome)
}

/// Whether a pending shell holds as many queued events as it may.
fn pending_full(s: &Session) -> bool {
    s.status == Status::Pending && s.pending.len() >= MAX_PENDING
}

/// The per-session bound an activity would exceed, if any: the pending queue
/// of a shell, or the distinct tags or contact ids.
fn over_limit(s: &Session, d: &ActivityData) -> Option<Limit> {
    fn grows_past(have: &BTreeSet<String>, add: &[String], max: usize) -> bool {
        if have.len() + add.len() <= max {
            return false;
        }
        let new: BTreeSet<&String> = add.iter().filter(|v| !have.contains(*v)).collect();
        have.len() + new.len() > max
    }
    if pending_full(s) {
        Some(Limit::PendingEvents)
    } else if grows_past(&s.tags, &d.tags, MAX_TAGS) {
        Some(Limit::Tags)
    } else if grows_past(&s.contact_ids, &d.contact_ids, MAX_CONTACT_IDS) {
        Some(Limit::ContactIds)
    } else {
        None
    }
}

/// The expiry rule (elizaOS's): capped at `created_at + max_duration`,
/// otherwise `base + timeout`. Unlimited sessions never expire by time.
fn rule_expiry(s: &Session, at: i64, base: i64) -> i64 {
    if s.unlimited {
        return UNLIMITED_EXPIRY_MS;
    }
    let created = s.created_at.unwrap_or(at);
    let (timeout, max) = (s.timeout.timeout_ms(), s.timeout.max_duration_ms());
    if (at - created) + timeout > max {
        created + max
    } else {
        base + timeout
    }
}

/// Closes an active session whose first deadline is at or before `t`.
fn close_if_past_deadline(s: &mut Session, t: i64) -> Option<Outcome> {
    let (at, status) = deadline(s.expires_at, s.abandon_at, s.unlimited);
    if t >= at {
        s.status = status;
        s.ended_at = Some(at);
        s.end_reason = status.deadline_reason().map(str::to_string);
        Some(Outcome::ClosedAtDeadline(status))
    } else {
        None
    }
}

fn touch(s: &mut Session, t: i64) {
    s.last_active_at = s.last_active_at.max(t);
    s.abandon_at = s.last_active_at + s.timeout.abandon_after_ms();
}

/// The lifecycle part of an `activity` on an active session.
fn activity(s: &mut Session, t: i64) -> Outcome {
    if let Some(o) = close_if_past_deadline(s, t) {
        return o;
    }
    touch(s, t);
    let created = s.created_at.unwrap_or(t);
    if s.timeout.auto_renew && t - created < s.timeout.max_duration_ms() {
        s.renewal_count += 1;
        s.expires_at = s.expires_at.max(rule_expiry(s, t, t));
    }
    Outcome::Applied
}

/// An explicit renewal on an active session.
fn renewed(
    s: &mut Session,
    t: i64,
    patch: Option<&TimeoutPatch>,
    explicit: Option<i64>,
) -> Outcome {
    // The partial timeout is merged first; a renewal at or past the maximum
    // duration is rejected before any deadline is considered, leaving the
    // state unchanged (the reaper or read-time status closes it).
    let config = match patch {
        Some(p) => s.timeout.merged(p),
        None => s.timeout,
    };
    let created = s.created_at.unwrap_or(t);
    if t - created >= config.max_duration_ms() {
        return Outcome::RejectedRenewal;
    }
    if let Some(o) = close_if_past_deadline(s, t) {
        return o;
    }
    s.timeout = config;
    s.renewal_count += 1;
    s.expires_at = match explicit {
        Some(ms) if !s.unlimited => ms,
        _ => rule_expiry(s, t, t),
    };
    touch(s, t);
    Outcome::Applied
}

/// A terminal event on an active session.
fn terminal(s: &mut Session, status: Status, t: i64, reason: Option<String>) -> Outcome {
    if let Some(o) = close_if_past_deadline(s, t) {
        return o;
    }
    s.status = status;
    s.ended_at = Some(t);
    s.end_reason = reason;
    Outcome::Applied
}

/// Aggregates of an activity event: usage, billing, traces, tags, contacts,
/// organization, device, last activity time.
fn aggregate(s: &mut Session, ev: &Event, d: &ActivityData) {
    let t = ev.time_ms;
    s.last_active_at = s.last_active_at.max(t);
    if let Some(u) = d.usage {
        s.usage.prompt_tokens = s.usage.prompt_tokens.saturating_add(u.prompt_tokens);
        s.usage.completion_tokens = s
            .usage
            .completion_tokens
            .saturating_add(u.completion_tokens);
    }
    if let Some(b) = d.billing {
        s.billing.input_cost = saturating_sum(s.billing.input_cost, b.input_cost);
        s.billing.output_cost = saturating_sum(s.billing.output_cost, b.output_cost);
    }
    if d.trace_id.is_some() {
        s.traces_count += 1;
    }
    s.tags.extend(d.tags.iter().cloned());
    s.contact_ids.extend(d.contact_ids.iter().cloned());
    if let Some(org) = &d.organization_id {
        s.last_active_organization_id = Some(org.clone());
    }
    if let Some(device) = &d.device {
        let newer = s.latest_activity.as_ref().is_none_or(|l| t >= l.at_ms);
        if newer {
            s.latest_activity = Some(LatestActivity {
                event_id: ev.id.clone(),
                at_ms: t,
                device: device.clone(),
            });
        }
    }
}

/// `a + b`, saturated to the finite range: running cost sums never become
/// ±infinity (which JSON cannot carry).
pub fn saturating_sum(a: f64, b: f64) -> f64 {
    (a + b).clamp(f64::MIN, f64::MAX)
}

/// `created`: fills the session (or the pending shell) in, then replays the
/// shell's queued lifecycle events in receive order.
fn created(s: &mut Session, ev: &Event, d: &CreatedData, defaults: &Defaults) -> Outcome {
    if s.created_at.is_some() {
        return Outcome::IgnoredSecondCreated;
    }
    let t = ev.time_ms;
    s.user_id = Some(d.user_id.clone());
    s.client_id = d.client_id.clone();
    s.agent_id = d.agent_id.clone();
    s.channel_id = d.channel_id.clone();
    s.workspace_id = d.workspace_id.clone();
    s.project_id = d.project_id.clone();
    s.external_id = d.external_id.clone();
    s.session_type = d.session_type.unwrap_or_default();
    // Free-form maps never keep secret-named keys (`token`, `password`, …).
    s.labels = d.labels.clone();
    s.labels.retain(|k, _| !is_secret_key(k));
    s.metadata = d.metadata.clone().unwrap_or_default();
    redact_object(&mut s.metadata);
    s.actor = d.actor.clone();
    if let Some(actor) = s.actor.as_mut() {
        redact_object(actor);
    }
    s.organization_id = d.organization_id.clone();
    if s.last_active_organization_id.is_none() {
        s.last_active_organization_id = d.organization_id.clone();
    }
    s.tags.extend(d.tags.iter().cloned());
    s.contact_ids.extend(d.contact_ids.iter().cloned());
    s.timeout = match &d.timeout {
        Some(p) => defaults.merged(p),
        None => defaults.merged(&TimeoutPatch::default()),
    };
    s.unlimited = d.unlimited;
    s.created_at = Some(t);
    s.status = Status::Active;
    s.expires_at = match ev.created_expires_at_ms {
        Some(ms) if !s.unlimited => ms,
        _ => rule_expiry(s, t, t),
    };
    // Replay the shell's lifecycle events against a clock that starts at `t`;
    // their aggregates already counted. The shell's own `last_active_at`
    // comes from its activities and renewals only (never from a terminal
    // event, nor from the time a terminal event opened the shell).
    let seen_active_at = s
        .pending
        .iter()
        .filter_map(|p| match p {
            PendingStep::Activity(at) | PendingStep::Renewed { at_ms: at, .. } => Some(*at),
            PendingStep::Terminal { .. } => None,
        })
        .max()
        .unwrap_or(t);
    s.last_active_at = t;
    s.abandon_at = t + s.timeout.abandon_after_ms();
    for step in std::mem::take(&mut s.pending) {
        if s.status != Status::Active {
            break;
        }
        match step {
            PendingStep::Activity(at) => {
                activity(s, at);
            }
            PendingStep::Renewed {
                at_ms,
                timeout,
                expires_at_ms,
            } => {
                renewed(s, at_ms, timeout.as_ref(), expires_at_ms);
            }
            PendingStep::Terminal {
                status,
                at_ms,
                reason,
            } => {
                terminal(s, status, at_ms, reason);
            }
        }
    }
    // `abandon_at = last_active_at + abandon_after` holds for every session,
    // including one the replay closed.
    s.last_active_at = s.last_active_at.max(seen_active_at);
    s.abandon_at = s.last_active_at + s.timeout.abandon_after_ms();
    Outcome::Applied
}
