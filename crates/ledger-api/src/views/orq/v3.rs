//! orq-ai-sdk 3.x routes, `/v2/traces/sessions/…`: query and count with
//! orq's JSON body (pagination by page, `lastId` or `firstId`; sorting;
//! filters), a session by id, and writes answered read-only.

use axum::extract::Path;
use axum::routing::{get, post};
use axum::{Json, Router};
use ledger_core::Session;
use ledger_store::{encode_cursor, Filter, Order};
use serde::Deserialize;
use serde_json::Value;

use super::filter::{Criteria, FilterSpec, QueryBody};
use super::json::session_json;
use super::{count, page, read_only, whole, Orq, Selection, Walk, WithBody};
use super::{DEFAULT_LIMIT, MAX_LIMIT};
use crate::ctx::Ctx;
use crate::error::ApiError;
use crate::state::AppState;
use crate::views::stream::{stream, StreamSpec};
use axum::http::HeaderMap;

/// The 3.x routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/traces/sessions", post(read_only::<Orq>))
        .route("/v2/traces/sessions/query", post(query))
        .route("/v2/traces/sessions/count", post(count_sessions))
        .route(
            "/v2/traces/sessions/stream",
            get(|ctx: Ctx<Orq>, h: HeaderMap| stream(ctx, h, &STREAM)),
        )
        .route(
            "/v2/traces/sessions/{id}",
            get(get_one)
                .patch(read_only::<Orq>)
                .delete(read_only::<Orq>),
        )
}

/// `GET /v2/traces/sessions/stream`: the change feed in orq's session shape
/// (`views::stream`).
static STREAM: StreamSpec = StreamSpec {
    render: session_json,
    user: "user_id",
    client: "client_id",
    agent: "agent_id",
    workspace: "workspace_id",
    status: "status",
    session_type: None,
};

/// The body of `query` and `count`.
#[derive(Debug, Default, Deserialize)]
struct Body {
    /// Filters that always apply (3.x SDK: `ListSessionsFilters`).
    #[serde(default)]
    filters: Vec<FilterSpec>,
    #[serde(default)]
    pagination: Option<Pagination>,
    #[serde(default, rename = "sortingProps")]
    sorting: Option<Vec<SortProp>>,
    #[serde(default)]
    query: Option<QueryBody>,
}

/// The SDK sends numbers as floats (`"limit": 50.0`).
#[derive(Debug, Default, Deserialize)]
struct Pagination {
    page: Option<f64>,
    limit: Option<f64>,
    #[serde(rename = "lastId")]
    last_id: Option<String>,
    #[serde(rename = "firstId")]
    first_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SortProp {
    key: String,
    direction: Option<String>,
}

/// A 3.x body's filters, compiled.
struct TraceSelection {
    filter: Filter,
    criteria: Criteria,
    /// The request's time, Unix ms (statuses are read as of it).
    now: i64,
}

impl TraceSelection {
    /// Compiles the body's filters (400 when invalid), narrowed to the
    /// scope (403 when they ask outside it).
    fn new(ctx: &Ctx<Orq>, filters: Vec<FilterSpec>, q: QueryBody) -> Result<Self, ApiError> {
        let mut filter = Filter::default();
        let criteria = Criteria::compile(filters, q, &mut filter).map_err(|m| ctx.bad(m))?;
        ctx.apply_scope(&mut filter)?;
        Ok(Self {
            filter,
            criteria,
            now: ctx.now,
        })
    }
}

impl Selection for TraceSelection {
    fn filter(&self) -> &Filter {
        &self.filter
    }

    fn is_plain(&self) -> bool {
        self.criteria.is_empty()
    }

    fn keep(&self, s: &Session) -> bool {
        self.criteria.matches(s, self.now)
    }
}

/// The order `sortingProps` asks for: by `started_at`, newest first unless
/// `asc`.
fn sort_order(sorting: Option<&Vec<SortProp>>) -> Result<Order, String> {
    let Some(sort) = sorting.and_then(|s| s.first()) else {
        return Ok(Order::NewestFirst);
    };
    let key = sort.key.trim_start_matches('/');
    if !matches!(key, "started_at" | "created_at") {
        return Err(format!(
            "unsupported sort key `{}`; sessions sort by `started_at`",
            sort.key
        ));
    }
    match sort.direction.as_deref() {
        None | Some("desc") => Ok(Order::NewestFirst),
        Some("asc") => Ok(Order::OldestFirst),
        Some(d) => Err(format!("sort direction must be asc or desc, got `{d}`")),
    }
}

/// `POST /v2/traces/sessions/query`
async fn query(WithBody { ctx, body }: WithBody<Orq, Body>) -> Result<Json<Value>, ApiError> {
    let pg = body.pagination.unwrap_or_default();
    let limit = whole(pg.limit, "pagination.limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        .map_err(|m| ctx.bad(m))? as usize;
    let page_no =
        whole(pg.page, "pagination.page", 1, 0, u32::MAX.into()).map_err(|m| ctx.bad(m))?;
    let order = sort_order(body.sorting.as_ref()).map_err(|m| ctx.bad(m))?;
    let sel = TraceSelection::new(&ctx, body.filters, body.query.unwrap_or_default())?;
    // Where the page starts: after lastId, before firstId (walk backwards),
    // or a page number. A session the key may not see is as unknown as one
    // that does not exist (no existence or position oracle).
    let cursor_of = |id: &str| -> Result<Option<String>, ApiError> {
        let s = ctx
            .session(id)?
            .filter(|s| ctx.may_see(s))
            .ok_or_else(|| ctx.bad(format!("unknown session id `{id}` in pagination")))?;
        Ok(Some(encode_cursor(s.sort_at(), &s.id)))
    };
    let walk = match (&pg.last_id, &pg.first_id) {
        (Some(l), _) => Walk {
            order,
            after: cursor_of(l)?,
            skip: 0,
            backwards: false,
        },
        (None, Some(f)) => Walk {
            order: match order {
                Order::NewestFirst => Order::OldestFirst,
                Order::OldestFirst => Order::NewestFirst,
            },
            after: cursor_of(f)?,
            skip: 0,
            backwards: true,
        },
        (None, None) => Walk {
            order,
            after: None,
            skip: (page_no as usize).saturating_sub(1).saturating_mul(limit),
            backwards: false,
        },
    };
    page(&ctx, &sel, walk, limit, session_json)
}

/// `POST /v2/traces/sessions/count`: how many sessions the same body's
/// filters select (pagination and sorting do not change the count).
async fn count_sessions(
    WithBody { ctx, body }: WithBody<Orq, Body>,
) -> Result<Json<Value>, ApiError> {
    sort_order(body.sorting.as_ref()).map_err(|m| ctx.bad(m))?;
    let sel = TraceSelection::new(&ctx, body.filters, body.query.unwrap_or_default())?;
    count(&ctx, &sel)
}

/// `GET /v2/traces/sessions/{id}`
async fn get_one(Path(id): Path<String>, ctx: Ctx<Orq>) -> Result<Json<Value>, ApiError> {
    Ok(Json(session_json(&ctx.load_visible(&id)?, ctx.now)))
}
