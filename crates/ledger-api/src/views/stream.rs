//! The change feed over Server-Sent Events, shared by every view's
//! `…/stream` route: one SSE event per change of a session, in the view's
//! wire shape, with the view's list filters and the key's scope.
//!
//! - `id` of each event is a resume token ([`ledger_store::Token`]);
//!   `Last-Event-ID` (or `?since=`) resumes after it with no gap and no
//!   duplicate, on any replica, across restarts. Without one the stream
//!   starts at the head (changes from now on).
//! - `event` is the change's type: `session.created`, `session.updated`, or
//!   the terminal status reached (`session.ended`, `session.expired`, …);
//!   read-time transitions are sent when their deadline passes.
//! - `event: heartbeat` (data `{}`) every `heartbeat` carries the current
//!   token, so a reader whose filter matches nothing still moves on.
//! - `event: reset` when the reader is behind what the change log keeps:
//!   changes were missed; its `id` (and data `token`) is the head to resume
//!   from after re-reading the lists.
//!
//! Memory per reader is bounded: the feed is read from the store in pages
//! as the reader takes them ([`PAGE`] items, a channel of [`QUEUE`]), never
//! buffered for it.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::http::HeaderMap;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use ledger_core::{Session, Status};
use ledger_store::{FeedItem, Filter, Token};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::ctx::Ctx;
use crate::dialect::Dialect;
use crate::error::ApiError;
use crate::state::AppState;

/// Feed items read from the store at a time.
const PAGE: usize = 256;
/// SSE events queued per reader (a slow reader holds back the reading).
const QUEUE: usize = 64;
/// How often a reader with nothing to read looks for passed deadlines.
const DEADLINE_POLL: Duration = Duration::from_millis(500);

/// A view's stream: how it shows a session and names its filters.
pub(crate) struct StreamSpec {
    pub render: fn(&Session, i64) -> Value,
    /// Query parameter names of user, client, agent and workspace filters
    /// (`""`: not offered by this view) and of the status filter.
    pub user: &'static str,
    pub client: &'static str,
    pub agent: &'static str,
    pub workspace: &'static str,
    pub status: &'static str,
    /// The one session type this view serves (Wingspan: API sessions).
    pub session_type: Option<ledger_core::event::SessionType>,
}

/// What a reader asked for: the view's filter narrowed to its scope.
struct Wanted {
    filter: Filter,
    scope: crate::auth::Scope,
}

impl Wanted {
    fn matches(&self, s: &Session, at: i64) -> bool {
        self.scope
            .allows(s.user_id.as_deref(), s.workspace_id.as_deref())
            && self.filter.matches(s, at)
    }
}

/// `GET …/stream`: see the module docs.
pub(crate) async fn stream<D: Dialect + Default>(
    ctx: Ctx<D>,
    headers: HeaderMap,
    spec: &'static StreamSpec,
) -> Result<Response, ApiError> {
    let p = ctx.params()?;
    let mut filter = Filter {
        session_type: spec.session_type,
        ..Filter::default()
    };
    for (name, slot) in [
        (spec.user, &mut filter.user_id),
        (spec.client, &mut filter.client_id),
        (spec.agent, &mut filter.agent_id),
        (spec.workspace, &mut filter.workspace_id),
    ] {
        if !name.is_empty() {
            *slot = p.get(name).cloned();
        }
    }
    if let Some(v) = p.get(spec.status) {
        filter.status = Some(Status::parse(v).filter(|s| *s != Status::Pending).ok_or_else(|| {
            ctx.invalid(format!(
                "`{}` must be one of abandoned, active, ended, expired, removed, replaced, revoked; got `{v}`",
                spec.status
            ))
        })?);
    }
    ctx.apply_scope(&mut filter)?;
    let wanted = Wanted {
        filter,
        scope: ctx.scope.clone(),
    };
    let from = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| p.get("since").cloned());
    let bad_token = |t: &str| {
        ctx.invalid(format!(
            "`Last-Event-ID` (or `since`) must be an event id this feed sent, got `{t}`"
        ))
    };
    if let Some(sh) = ctx.shards.clone() {
        let tokens = match &from {
            None => BTreeMap::new(),
            Some(t) => sharded_tokens(t, (sh.partitions)()).ok_or_else(|| bad_token(t))?,
        };
        let (tx, rx) = mpsc::channel::<Event>(QUEUE);
        let (state, caller) = (ctx.state.clone(), ctx.caller.clone());
        tokio::spawn(sharded_feed(state, sh, caller, tokens, wanted, spec, tx));
        let events = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
        });
        return Ok(Sse::new(events).into_response());
    }
    let token = match from {
        Some(t) => Token::decode(&t).ok_or_else(|| {
            ctx.invalid(format!(
                "`Last-Event-ID` (or `since`) must be an event id this feed sent, got `{t}`"
            ))
        })?,
        None => ctx
            .store
            .feed_head(&ctx.state.topic, ctx.now)
            .map_err(|e| ctx.store_error(e))?,
    };
    let (tx, rx) = mpsc::channel::<Event>(QUEUE);
    tokio::spawn(feed(ctx.state.clone(), token, wanted, spec, tx));
    let events = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
    });
    Ok(Sse::new(events).into_response())
}

/// Reads the feed for one reader until it goes away.
async fn feed(
    state: AppState,
    mut token: Token,
    wanted: Wanted,
    spec: &'static StreamSpec,
    tx: mpsc::Sender<Event>,
) {
    let metrics = state.feed.clone();
    let _gone = subscribed(&metrics);
    let mut store = state.store();
    let mut woken = store.watch();
    let mut heartbeat = tokio::time::Instant::now() + state.heartbeat;
    loop {
        // A rebuild switched stores: read (and watch) the live one.
        if state.live.get().dir() != store.dir() {
            store = state.store();
            woken = store.watch();
        }
        let now = state.now();
        let (items, next) = {
            let (store, topic, mut token) = (store.clone(), state.topic.clone(), token.clone());
            match tokio::task::spawn_blocking(move || {
                store
                    .feed_read(&topic, &mut token, now, PAGE)
                    .map(|items| (items, token))
            })
            .await
            {
                Ok(Ok(read)) => read,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "reading the change feed");
                    return;
                }
                Err(_) => return,
            }
        };
        token = next;
        let idle = items.is_empty();
        for item in items {
            let event = match item {
                FeedItem::Reset { token } => {
                    metrics.resets.inc();
                    reset_event(token.encode())
                }
                FeedItem::Change {
                    token,
                    event_type,
                    session,
                    at,
                    ..
                } => {
                    if !wanted.matches(&session, at) {
                        continue;
                    }
                    metrics.events.inc();
                    Event::default()
                        .event(event_type)
                        .id(token.encode())
                        .data((spec.render)(&session, at).to_string())
                }
            };
            if tx.send(event).await.is_err() {
                return;
            }
            heartbeat = tokio::time::Instant::now() + state.heartbeat;
        }
        if !idle {
            continue;
        }
        tokio::select! {
            r = woken.changed() => {
                if r.is_err() {
                    // The store closed (replaced): the next turn takes the live one.
                    tokio::time::sleep(DEADLINE_POLL).await;
                }
            }
            _ = tokio::time::sleep(DEADLINE_POLL) => {}
            _ = tokio::time::sleep_until(heartbeat) => {
                let beat = Event::default().event("heartbeat").id(token.encode()).data("{}");
                if tx.send(beat).await.is_err() {
                    return;
                }
                heartbeat = tokio::time::Instant::now() + state.heartbeat;
            }
            _ = tx.closed() => return,
        }
    }
}

/// A sharded feed's token: each partition's own feed token, `s~<token of
/// partition 0>~<token of partition 1>…` (each a [`Token`] of one
/// partition). A replica's token splits exactly into these: its watermark
/// holds for every partition.
fn sharded_tokens(t: &str, partitions: i32) -> Option<BTreeMap<i32, Token>> {
    let mut out = BTreeMap::new();
    if let Some(rest) = t.strip_prefix("s~") {
        for (p, part) in rest.split('~').enumerate() {
            let tok = Token::decode(part)?;
            if tok.next.keys().any(|&q| q != p as i32) {
                return None;
            }
            out.insert(p as i32, tok);
        }
        return Some(out);
    }
    let whole = Token::decode(t)?;
    for p in 0..partitions.max(whole.next.keys().max().map_or(0, |m| m + 1)) {
        let mut tok = whole.clone();
        tok.next.retain(|&q, _| q == p);
        out.insert(p, tok);
    }
    Some(out)
}

fn sharded_token(tokens: &BTreeMap<i32, Token>) -> String {
    let parts: Vec<String> = tokens.values().map(Token::encode).collect();
    format!("s~{}", parts.join("~"))
}

/// Sharded mode: reads each partition's feed from its owner, in turns, and
/// sends what the reader wants with the merged token. A partition without
/// an owner is read again once it has one: the stream waits for it, it
/// never skips its changes.
async fn sharded_feed(
    state: AppState,
    sh: std::sync::Arc<crate::shard::Shards>,
    caller: crate::shard::Caller,
    mut tokens: BTreeMap<i32, Token>,
    wanted: Wanted,
    spec: &'static StreamSpec,
    tx: mpsc::Sender<Event>,
) {
    use crate::shard::{Answer, Op};
    let metrics = state.feed.clone();
    let _gone = subscribed(&metrics);
    let mut heartbeat = tokio::time::Instant::now() + state.heartbeat;
    loop {
        let n = (sh.partitions)();
        let mut caller = caller.clone();
        caller.now = state.now();
        let store = state.store();
        // Every partition's head first (a reader without a token starts
        // at the head of each).
        let mut heads_known = n > 0;
        for p in 0..n {
            if tokens.contains_key(&p) {
                continue;
            }
            let op = Op::Feed {
                partition: p,
                token: None,
                limit: 0,
            };
            match sh.on_partition(&store, p, op, &caller).await {
                Answer::Feed { token, .. } => {
                    if let Some(t) = Token::decode(&token) {
                        tokens.insert(p, t);
                    }
                }
                _ => heads_known = false,
            }
        }
        let mut idle = true;
        if heads_known {
            for p in 0..n {
                let op = Op::Feed {
                    partition: p,
                    token: tokens.get(&p).map(Token::encode),
                    limit: PAGE,
                };
                let Answer::Feed { items, token } = sh.on_partition(&store, p, op, &caller).await
                else {
                    // No owner now: read on from the same token later.
                    continue;
                };
                idle &= items.is_empty();
                for item in items {
                    let Some(t) = Token::decode(&item.token) else {
                        continue;
                    };
                    tokens.insert(p, t);
                    let event = if item.reset {
                        metrics.resets.inc();
                        reset_event(sharded_token(&tokens))
                    } else {
                        match item.session {
                            Some(s) if wanted.matches(&s, item.at) => {
                                metrics.events.inc();
                                Event::default()
                                    .event(item.event_type)
                                    .id(sharded_token(&tokens))
                                    .data((spec.render)(&s, item.at).to_string())
                            }
                            _ => continue,
                        }
                    };
                    if tx.send(event).await.is_err() {
                        return;
                    }
                    heartbeat = tokio::time::Instant::now() + state.heartbeat;
                }
                if let Some(t) = Token::decode(&token) {
                    tokens.insert(p, t);
                }
            }
        }
        if !idle {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(DEADLINE_POLL) => {}
            _ = tokio::time::sleep_until(heartbeat) => {
                if heads_known {
                    let beat = Event::default().event("heartbeat").id(sharded_token(&tokens)).data("{}");
                    if tx.send(beat).await.is_err() {
                        return;
                    }
                }
                heartbeat = tokio::time::Instant::now() + state.heartbeat;
            }
            _ = tx.closed() => return,
        }
    }
}

/// `event: reset` with the token to resume from.
fn reset_event(token: String) -> Event {
    Event::default().event("reset").id(token.clone()).data(
        json!({
            "reason": "this reader is behind what the change log keeps; changes were missed",
            "token": token,
        })
        .to_string(),
    )
}

/// Counts a connected reader until the guard drops.
fn subscribed(metrics: &crate::state::FeedMetrics) -> Defer<impl FnMut()> {
    metrics.subscribers.inc();
    let gauge = metrics.subscribers.clone();
    Defer(move || {
        gauge.dec();
    })
}

/// Runs a closure when dropped.
struct Defer<F: FnMut()>(F);

impl<F: FnMut()> Drop for Defer<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}
