//! Request middleware: latency metrics, and the consistency token.
//!
//! Every API response carries `x-ledger-offsets: <partition>=<next offset>,…`
//! — the positions the store has applied AND flushed to disk, so a crash
//! never takes an announced position back. A request with
//! `x-ledger-wait-for: <partition>=<offset>,…` waits (at most
//! `x-ledger-wait-ms`, default and cap 5000 ms) until the store has applied
//! those offsets; the response says `x-ledger-caught-up: true|false`. A
//! malformed `x-ledger-wait-for` is a 400 `bad_consistency_token` in the
//! dialect of the view the path belongs to.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::Checked;
use crate::error::ApiError;
use crate::state::{AppState, RouteLabels};
use crate::views;

/// The store a request is answered from, chosen once by [`consistency`].
#[derive(Clone)]
pub(crate) struct Pinned(pub ledger_store::Store);

/// Longest consistency wait, ms.
pub const MAX_WAIT_MS: u64 = 5_000;

/// Counts a request in `state.reads` while its handler answers it (not
/// while it waits for a consistency token, nor while its body streams).
/// First, while ingestion is starved of the CPU, the request waits for its
/// write turn (`ledger_store::pace`: at most `TURN`, 5 ms).
pub async fn count_read(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(reads) = &state.reads else {
        return next.run(req).await;
    };
    if let Some(first) = reads.writer_turn() {
        let started = Instant::now();
        let mut wait = first;
        loop {
            // Checked again each millisecond: the turn ends early once the
            // writer has no work.
            tokio::time::sleep(wait.min(Duration::from_millis(1))).await;
            match reads.writer_turn() {
                Some(w) => wait = w,
                None => break,
            }
        }
        state
            .http
            .write_turn_wait
            .inc_by(started.elapsed().as_secs_f64());
    }
    let _read = reads.enter();
    next.run(req).await
}

/// Times each request into `ledger_http_request_seconds`.
pub async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let resp = next.run(req).await;
    state
        .http
        .latency
        .get_or_create(&RouteLabels {
            method,
            route,
            status: resp.status().as_u16().to_string(),
        })
        .observe(started.elapsed().as_secs_f64());
    resp
}

fn parse_offsets(v: &str) -> Option<BTreeMap<i32, i64>> {
    v.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|pair| {
            let (p, o) = pair.trim().split_once('=')?;
            Some((p.parse().ok()?, o.parse().ok()?))
        })
        .collect()
}

/// The offsets a response announces: the store's durable ones, or in
/// sharded mode every partition's from its owner.
fn announced(state: &AppState, store: &ledger_store::Store) -> Result<BTreeMap<i32, i64>, ()> {
    match &state.shards {
        Some(sh) => Ok(sh.offsets(store)),
        None => store.durable_offsets(&state.topic).map_err(|_| ()),
    }
}

fn reached(state: &AppState, want: &BTreeMap<i32, i64>) -> bool {
    match announced(state, &state.store()) {
        Ok(have) => want
            .iter()
            .all(|(p, o)| have.get(p).is_some_and(|h| h >= o)),
        Err(_) => false,
    }
}

/// The consistency token, for authenticated callers only: an anonymous or
/// wrongly keyed request is answered (its 401, by the handler, in the view's
/// envelope) at once, without waiting and without `x-ledger-offsets`.
pub async fn consistency(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let checked = state.auth.check(req.headers());
    let authenticated = checked.is_ok();
    req.extensions_mut().insert(Checked(checked));
    if !authenticated {
        return next.run(req).await;
    }
    let wait_for = req
        .headers()
        .get("x-ledger-wait-for")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.to_string());
    let mut caught_up = None;
    if let Some(w) = wait_for {
        let Some(want) = parse_offsets(&w) else {
            return ApiError::new(
                views::dialect_for(req.uri().path()),
                StatusCode::BAD_REQUEST,
                "bad_consistency_token",
                "x-ledger-wait-for must look like `0=123,1=45`",
                state.now(),
            )
            .into_response();
        };
        let ms = req
            .headers()
            .get("x-ledger-wait-ms")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(MAX_WAIT_MS)
            .min(MAX_WAIT_MS);
        let deadline = tokio::time::Instant::now() + Duration::from_millis(ms);
        let mut rx = state.applied.clone();
        let mut ok = reached(&state, &want);
        while !ok {
            if state.shards.is_some() {
                // Other owners' progress arrives with their announcements.
                if tokio::time::Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                ok = reached(&state, &want);
                continue;
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => ok = reached(&state, &want),
                Ok(Err(_)) => {
                    // No ingestion attached: poll until the deadline.
                    if tokio::time::Instant::now() >= deadline {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    ok = reached(&state, &want);
                }
                Err(_) => break,
            }
        }
        caught_up = Some(ok);
    }
    // One store answers the request and announces its offsets, even if an
    // online rebuild switches stores meanwhile.
    let pinned = state.store();
    req.extensions_mut().insert(Pinned(pinned.clone()));
    let mut resp = next.run(req).await;
    if let Ok(offsets) = announced(&state, &pinned) {
        let token: Vec<String> = offsets.iter().map(|(p, o)| format!("{p}={o}")).collect();
        if let Ok(v) = HeaderValue::from_str(&token.join(",")) {
            resp.headers_mut().insert("x-ledger-offsets", v);
        }
    }
    if let Some(ok) = caught_up {
        resp.headers_mut().insert(
            "x-ledger-caught-up",
            HeaderValue::from_static(if ok { "true" } else { "false" }),
        );
    }
    resp
}
