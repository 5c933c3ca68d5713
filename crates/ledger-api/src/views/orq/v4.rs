//! orq-ai-sdk 4.x routes, `/v2/sessions/…` ("threads"): query and count
//! with `{filters: {interval, …}, limit, page}`, every tag, a thread by id,
//! and writes answered read-only.

use std::collections::BTreeSet;

use axum::extract::Path;
use axum::routing::{get, post};
use axum::{Json, Router};
use ledger_core::Session;
use ledger_store::{Filter, Order};
use serde::Deserialize;
use serde_json::Value;

use super::json::thread_json;
use super::{count, page, read_only, whole, Selection, Threads, Walk, WithBody};
use super::{DEFAULT_LIMIT, MAX_LIMIT};
use crate::ctx::Ctx;
use crate::error::ApiError;
use crate::state::AppState;

/// The 4.x routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/sessions", post(read_only::<Threads>))
        .route("/v2/sessions/query", post(list_threads))
        .route("/v2/sessions/count", post(count_threads))
        .route("/v2/sessions/tags", get(thread_tags))
        .route(
            "/v2/sessions/{id}",
            get(get_thread)
                .patch(read_only::<Threads>)
                .delete(read_only::<Threads>),
        )
}

/// The request body of `query` and `count`.
#[derive(Debug, Default, Deserialize)]
struct ThreadQuery {
    filters: Option<ThreadFilters>,
    limit: Option<f64>,
    page: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
struct ThreadFilters {
    interval: Option<String>,
    project_id: Option<String>,
    tags: Option<Vec<String>>,
    start_date: Option<Value>,
    end_date: Option<Value>,
    client: Option<String>,
    repo: Option<String>,
    kind: Option<String>,
}

impl ThreadQuery {
    /// `limit` (1..=200, default 50) and `page` (from 1), validated.
    fn paging(&self) -> Result<(usize, u64), String> {
        let limit = whole(self.limit, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)? as usize;
        let page = whole(self.page, "page", 1, 1, u32::MAX.into())?;
        Ok((limit, page))
    }
}

/// The 4.x filters, validated: an activity window and attribute matches.
struct ThreadSelection {
    filter: Filter,
    /// A session is in the window when it was updated at or after `from`
    /// and started at or before `to` (Unix ms).
    from: Option<i64>,
    to: Option<i64>,
    project_id: Option<String>,
    tags: Vec<String>,
    /// `client`/`repo`/`kind` were asked for: the ledger records none of
    /// them, so no session matches.
    unrecorded: bool,
}

/// `SESSION_INTERVAL_*` → its length in ms (`None`: all time).
fn interval_ms(name: &str) -> Option<Option<i64>> {
    const MIN: i64 = 60_000;
    const DAY: i64 = 24 * 60 * MIN;
    Some(match name.strip_prefix("SESSION_INTERVAL_")? {
        "ALL_TIME" => None,
        "LAST_30_MINUTES" => Some(30 * MIN),
        "LAST_1_HOUR" => Some(60 * MIN),
        "LAST_6_HOURS" => Some(6 * 60 * MIN),
        "LAST_24_HOURS" => Some(DAY),
        "LAST_3_DAYS" => Some(3 * DAY),
        "LAST_7_DAYS" => Some(7 * DAY),
        "LAST_14_DAYS" => Some(14 * DAY),
        "LAST_1_MONTH" => Some(30 * DAY),
        "LAST_3_MONTHS" => Some(90 * DAY),
        _ => return None,
    })
}

/// A Unix-ms bound sent as a string (as the SDK types it) or a number.
fn unix_ms(v: &Option<Value>, name: &str) -> Result<Option<i64>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.as_i64().is_some() => Ok(n.as_i64()),
        Some(Value::String(s)) if s.parse::<i64>().is_ok() => Ok(s.parse().ok()),
        Some(other) => Err(format!(
            "filters.{name} must be Unix milliseconds, got {other}"
        )),
    }
}

impl ThreadSelection {
    /// Validates `filters` (400 when invalid); the window is as of the
    /// request's time; sessions are the scope's.
    fn new(ctx: &Ctx<Threads>, f: Option<ThreadFilters>) -> Result<Self, ApiError> {
        Self::compile(f, ctx.now, ctx.scope_filter()).map_err(|m| ctx.bad(m))
    }

    /// The selection `f` asks for among `filter`'s sessions, as of `now`
    /// (Unix ms).
    fn compile(f: Option<ThreadFilters>, now: i64, filter: Filter) -> Result<Self, String> {
        let f = f.ok_or("`filters` is required (with `filters.interval`)")?;
        let name = f
            .interval
            .as_deref()
            .ok_or("`filters.interval` is required")?;
        let span = interval_ms(name).ok_or_else(|| {
            format!("unknown interval `{name}`; expected SESSION_INTERVAL_ALL_TIME, SESSION_INTERVAL_LAST_30_MINUTES, …_1_HOUR, …_6_HOURS, …_24_HOURS, …_3_DAYS, …_7_DAYS, …_14_DAYS, …_1_MONTH or …_3_MONTHS")
        })?;
        // The interval and the custom window both apply (their intersection).
        let from = [span.map(|d| now - d), unix_ms(&f.start_date, "start_date")?]
            .into_iter()
            .flatten()
            .max();
        let to = unix_ms(&f.end_date, "end_date")?;
        Ok(Self {
            filter,
            from,
            to,
            project_id: f.project_id,
            tags: f.tags.unwrap_or_default(),
            unrecorded: f.client.is_some() || f.repo.is_some() || f.kind.is_some(),
        })
    }
}

impl Selection for ThreadSelection {
    fn filter(&self) -> &Filter {
        &self.filter
    }

    fn is_plain(&self) -> bool {
        self.from.is_none()
            && self.to.is_none()
            && self.project_id.is_none()
            && self.tags.is_empty()
            && !self.unrecorded
    }

    fn keep(&self, s: &Session) -> bool {
        !self.unrecorded
            && self.from.is_none_or(|t| s.updated_at >= t)
            && self.to.is_none_or(|t| s.sort_at() <= t)
            && self
                .project_id
                .as_ref()
                .is_none_or(|p| s.project_id.as_ref() == Some(p))
            && self.tags.iter().all(|t| s.tags.contains(t))
    }
}

/// `POST /v2/sessions/query`: threads newest first, `limit` (1..200,
/// default 50) per `page` (from 1).
async fn list_threads(
    WithBody { ctx, body }: WithBody<Threads, ThreadQuery>,
) -> Result<Json<Value>, ApiError> {
    let (limit, page_no) = body.paging().map_err(|m| ctx.bad(m))?;
    let sel = ThreadSelection::new(&ctx, body.filters)?;
    let walk = Walk {
        order: Order::NewestFirst,
        after: None,
        skip: (page_no as usize - 1).saturating_mul(limit),
        backwards: false,
    };
    page(&ctx, &sel, walk, limit, thread_json)
}

/// `POST /v2/sessions/count`: how many threads the filters select (`limit`
/// and `page`, still validated, do not change it).
async fn count_threads(
    WithBody { ctx, body }: WithBody<Threads, ThreadQuery>,
) -> Result<Json<Value>, ApiError> {
    body.paging().map_err(|m| ctx.bad(m))?;
    let sel = ThreadSelection::new(&ctx, body.filters)?;
    count(&ctx, &sel)
}

/// `GET /v2/sessions/tags`: every tag of the key's sessions, sorted. There
/// is no tag index: this walks the sessions in scope.
async fn thread_tags(ctx: Ctx<Threads>) -> Result<Json<Vec<String>>, ApiError> {
    let mut tags = BTreeSet::new();
    for s in ctx.matching(&ctx.scope_filter(), Order::NewestFirst, None)? {
        tags.extend(s?.tags);
    }
    Ok(Json(tags.into_iter().collect()))
}

/// `GET /v2/sessions/{id}`
async fn get_thread(Path(id): Path<String>, ctx: Ctx<Threads>) -> Result<Json<Value>, ApiError> {
    Ok(Json(thread_json(&ctx.load_visible(&id)?, ctx.now)))
}
