//! orq.ai sessions view, in the wire shapes of both SDK generations.
//!
//! * orq-ai-sdk 3.x, `/v2/traces/sessions/…`: `POST …/query` and `POST
//!   …/count` with orq's JSON body (pagination, sorting, top-level `filters`
//!   and `query.filters`), `GET …/{id}`; errors `{code, message}` with a
//!   string code.
//! * orq-ai-sdk 4.x, `/v2/sessions/…` ("threads"): `POST …/query` and `POST
//!   …/count` with `{filters: {interval, …}, limit, page}`, `GET …/tags`,
//!   `GET …/{id}`; errors `{code, message, details}` with a gRPC code.
//!
//! Writes (create, update, delete) answer 405: sessions are written by
//! publishing events to the Kafka topic. Snake_case keys, `duration` in ms.
//!
//! Filters of the form `is`/`equals`/`in` (one value) on `/user_id`,
//! `/client_id`, `/agent_id`, `/workspace_id` or `/status` (under `and`)
//! drive an index; every other filter is evaluated on the candidates the
//! index yields.

use std::collections::BTreeSet;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ledger_core::time::{format_iso_ms, parse_rfc3339_ms};
use ledger_core::{Session, Status};
use ledger_store::{encode_cursor, Filter, Order};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{apply_scope, authorize, load_visible, store_error};
use crate::auth::Scope;
use crate::error::{ApiError, View};
use crate::state::AppState;

const V: View = View::Orq;
/// Page size bounds.
const DEFAULT_LIMIT: u64 = 50;
const MAX_LIMIT: u64 = 200;

/// Every orq route, both SDK generations.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/traces/sessions", post(read_only))
        .route("/v2/traces/sessions/query", post(query))
        .route("/v2/traces/sessions/count", post(count))
        .route(
            "/v2/traces/sessions/{id}",
            get(get_one).patch(read_only).delete(read_only),
        )
        .route("/v2/sessions", post(read_only_threads))
        .route("/v2/sessions/query", post(list_threads))
        .route("/v2/sessions/count", post(count_threads))
        .route("/v2/sessions/tags", get(thread_tags))
        .route(
            "/v2/sessions/{id}",
            get(get_thread)
                .patch(read_only_threads)
                .delete(read_only_threads),
        )
}

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

#[derive(Debug, Default, Deserialize)]
struct QueryBody {
    search: Option<String>,
    operator: Option<String>,
    #[serde(default)]
    filters: Vec<FilterSpec>,
}

#[derive(Debug, Deserialize)]
struct FilterSpec {
    #[serde(rename = "type")]
    _kind: Option<String>,
    operator: Option<String>,
    value: Option<Value>,
    values: Option<Vec<Value>>,
    path: Option<String>,
    id: Option<String>,
    #[serde(rename = "searchPaths")]
    search_paths: Option<Vec<String>>,
}

/// The `Data` object of orq's session list.
pub fn session_json(s: &Session, now: i64) -> Value {
    let started = s.sort_at();
    let end = s.ended_at_as_of(now).unwrap_or(s.last_active_at);
    json!({
        "_id": s.id,
        "external_id": s.external_id.clone().unwrap_or_else(|| s.id.clone()),
        "duration": (end - started).max(0),
        "contact_ids": s.contact_ids,
        "billing": {"input_cost": s.billing.input_cost, "output_cost": s.billing.output_cost, "total_cost": s.total_cost()},
        "usage": {"prompt_tokens": s.usage.prompt_tokens, "completion_tokens": s.usage.completion_tokens, "total_tokens": s.total_tokens()},
        "traces_count": s.traces_count,
        "tags": s.tags,
        "workspace_id": s.workspace_id.clone().unwrap_or_default(),
        "project_id": s.project_id,
        "started_at": format_iso_ms(started),
        "updated_at": format_iso_ms(s.updated_at),
    })
}

/// The 4.x SDK's `Thread`: the same fields without `workspace_id` (the
/// key's workspace is implied), `project_id` only when set.
pub fn thread_json(s: &Session, now: i64) -> Value {
    let mut v = session_json(s, now);
    if let Value::Object(m) = &mut v {
        m.remove("workspace_id");
        if m.get("project_id").is_some_and(Value::is_null) {
            m.remove("project_id");
        }
    }
    v
}

/// The wire object plus the extra fields filters may name.
fn filterable(s: &Session, now: i64) -> Value {
    let mut v = session_json(s, now);
    if let Value::Object(m) = &mut v {
        m.insert("user_id".into(), s.user_id.clone().into());
        m.insert("client_id".into(), s.client_id.clone().into());
        m.insert("agent_id".into(), s.agent_id.clone().into());
        m.insert("status".into(), s.status_at(now).as_str().into());
    }
    v
}

fn bad(msg: impl Into<String>, now: i64) -> ApiError {
    ApiError::new(V, StatusCode::BAD_REQUEST, "bad_request", msg, now)
}

/// A validated filter.
enum Pred {
    Op {
        path: String,
        op: String,
        values: Vec<Value>,
    },
    Search {
        text: String,
        paths: Vec<String>,
    },
    /// `{type: "id", id, path}`: the value at `path` (default `/_id`) is `id`.
    Id {
        id: String,
        path: String,
    },
}

const OPERATORS: &[&str] = &[
    "is",
    "is_not",
    "equals",
    "is_not_equal",
    "in",
    "contains",
    "does_not_contain",
    "starts_with",
    "ends_with",
    "is_greater_than",
    "is_greater_than_or_equal_to",
    "is_less_than",
    "is_less_than_or_equal_to",
    "is_between",
    "is_before",
    "is_on_or_before",
    "is_after",
    "is_on_or_after",
    "is_empty",
    "is_not_empty",
];

fn compile(f: FilterSpec, now: i64) -> Result<Pred, ApiError> {
    if let (Some(text), Some(paths)) = (&f.value, &f.search_paths) {
        let text = text
            .as_str()
            .ok_or_else(|| bad("search filter `value` must be a string", now))?;
        return Ok(Pred::Search {
            text: text.to_lowercase(),
            paths: paths.clone(),
        });
    }
    if let (Some(id), None) = (&f.id, &f.operator) {
        return Ok(Pred::Id {
            id: id.clone(),
            path: f.path.unwrap_or_else(|| "/_id".into()),
        });
    }
    let path = f.path.ok_or_else(|| bad("filter needs a `path`", now))?;
    if !path.starts_with('/') {
        return Err(bad(
            format!("filter path `{path}` must start with `/`"),
            now,
        ));
    }
    let op = f
        .operator
        .ok_or_else(|| bad("filter needs an `operator`", now))?;
    if !OPERATORS.contains(&op.as_str()) {
        return Err(bad(
            format!(
                "unknown operator `{op}`; expected one of {}",
                OPERATORS.join(", ")
            ),
            now,
        ));
    }
    let values = match (f.value, f.values) {
        (_, Some(vs)) => vs,
        // A list in `value` (`is_between`'s bounds, `in`'s set) is the values.
        (Some(Value::Array(vs)), None) => vs,
        (Some(v), None) => vec![v],
        (None, None) if matches!(op.as_str(), "is_empty" | "is_not_empty") => vec![],
        (None, None) => {
            return Err(bad(
                format!("operator `{op}` needs a `value` or `values`"),
                now,
            ))
        }
    };
    if op == "is_between" && values.len() != 2 {
        return Err(bad("`is_between` needs exactly two values", now));
    }
    Ok(Pred::Op { path, op, values })
}

/// Numeric view of a value: numbers, and date-time strings as Unix ms.
fn num(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => parse_rfc3339_ms(s)
            .map(|ms| ms as f64)
            .or_else(|| s.parse().ok()),
        _ => None,
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn scalar_matches(target: &Value, op: &str, values: &[Value]) -> bool {
    let t = text(target);
    let any = |f: &dyn Fn(&str, &str) -> bool| {
        t.as_deref()
            .is_some_and(|t| values.iter().filter_map(text).any(|v| f(t, &v)))
    };
    match op {
        "is" | "equals" | "in" => values
            .iter()
            .any(|v| v == target || text(v) == t && t.is_some()),
        "contains" => any(&|t, v| t.contains(v)),
        "starts_with" => any(&|t, v| t.starts_with(v)),
        "ends_with" => any(&|t, v| t.ends_with(v)),
        "is_greater_than" | "is_after" => cmp(target, values, |a, b| a > b),
        "is_on_or_after" | "is_greater_than_or_equal_to" => cmp(target, values, |a, b| a >= b),
        "is_less_than" | "is_before" => cmp(target, values, |a, b| a < b),
        "is_on_or_before" | "is_less_than_or_equal_to" => cmp(target, values, |a, b| a <= b),
        "is_between" => match (num(target), num(&values[0]), num(&values[1])) {
            (Some(x), Some(lo), Some(hi)) => lo <= x && x <= hi,
            _ => false,
        },
        _ => false,
    }
}

fn cmp(target: &Value, values: &[Value], f: fn(f64, f64) -> bool) -> bool {
    match (num(target), values.first().and_then(num)) {
        (Some(a), Some(b)) => f(a, b),
        _ => false,
    }
}

fn empty(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
        _ => false,
    }
}

fn eval(p: &Pred, doc: &Value) -> bool {
    match p {
        Pred::Id { id, path } => positive(doc.pointer(path), "is", &[Value::String(id.clone())]),
        Pred::Search {
            text: needle,
            paths,
        } => paths.iter().any(|path| {
            let hit =
                |v: &Value| text(v).is_some_and(|t| t.to_lowercase().contains(needle.as_str()));
            match doc.pointer(path) {
                Some(Value::Array(items)) => items.iter().any(hit),
                Some(v) => hit(v),
                None => false,
            }
        }),
        Pred::Op { path, op, values } => {
            let target = doc.pointer(path);
            match op.as_str() {
                "is_empty" => empty(target),
                "is_not_empty" => !empty(target),
                "is_not" | "is_not_equal" => !positive(target, "is", values),
                "does_not_contain" => !positive(target, "contains", values),
                _ => positive(target, op, values),
            }
        }
    }
}

fn positive(target: Option<&Value>, op: &str, values: &[Value]) -> bool {
    match target {
        None | Some(Value::Null) => false,
        Some(Value::Array(items)) => items
            .iter()
            .any(|t| scalar_matches(t, if op == "contains" { "is" } else { op }, values)),
        Some(t) => scalar_matches(t, op, values),
    }
}

/// Moves `is`/`equals`/`in` filters of one value on indexed paths into the
/// store filter.
fn push_down(preds: &[Pred], f: &mut Filter, now: i64) -> Result<(), ApiError> {
    for p in preds {
        if let Pred::Op { path, op, values } = p {
            if !matches!(op.as_str(), "is" | "equals" | "in") || values.len() != 1 {
                continue;
            }
            let Some(v) = values[0].as_str() else {
                continue;
            };
            let slot = match path.as_str() {
                "/user_id" => &mut f.user_id,
                "/client_id" => &mut f.client_id,
                "/agent_id" => &mut f.agent_id,
                "/workspace_id" => &mut f.workspace_id,
                "/status" => {
                    f.status = Some(
                        Status::parse(v)
                            .ok_or_else(|| bad(format!("unknown status `{v}`"), now))?,
                    );
                    continue;
                }
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(v.to_string());
            }
        }
    }
    Ok(())
}

/// A whole number within `lo..=hi` (the SDKs send `50.0`), or `default`.
fn whole(v: Option<f64>, name: &str, default: u64, lo: u64, hi: u64) -> Result<u64, String> {
    match v {
        None => Ok(default),
        Some(x) if x.fract() == 0.0 && x >= lo as f64 && x <= hi as f64 => Ok(x as u64),
        Some(x) => Err(format!(
            "{name} must be a whole number between {lo} and {hi}, got {x}"
        )),
    }
}

/// Parses a JSON body; an empty one is the default.
fn parse_body<T: Default + serde::de::DeserializeOwned>(
    body: &Bytes,
    now: i64,
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        serde_json::from_slice(body).map_err(|e| bad(format!("malformed body: {e}"), now))
    }
}

/// A 3.x body's filters, compiled: the store filter (index and scope) and
/// the predicates evaluated on what it yields.
struct Selection {
    filter: Filter,
    /// Top-level `filters` and `query.search`: always all of them.
    all: Vec<Pred>,
    /// `query.filters`, combined by `query.operator`.
    preds: Vec<Pred>,
    any: bool,
}

impl Selection {
    fn new(
        filters: Vec<FilterSpec>,
        q: QueryBody,
        scope: &Scope,
        now: i64,
    ) -> Result<Self, ApiError> {
        let any = match q.operator.as_deref() {
            None | Some("and") => false,
            Some("or") => true,
            Some(o) => {
                return Err(bad(
                    format!("query.operator must be and/or, got `{o}`"),
                    now,
                ))
            }
        };
        let mut all = filters
            .into_iter()
            .map(|f| compile(f, now))
            .collect::<Result<Vec<_>, _>>()?;
        let preds = q
            .filters
            .into_iter()
            .map(|f| compile(f, now))
            .collect::<Result<Vec<_>, _>>()?;
        let mut filter = Filter::default();
        push_down(&all, &mut filter, now)?;
        if !any {
            push_down(&preds, &mut filter, now)?;
        }
        apply_scope(scope, &mut filter, V, now)?;
        // `search` narrows the result whatever the operator.
        if let Some(s) = q.search.filter(|s| !s.is_empty()) {
            all.push(Pred::Search {
                text: s.to_lowercase(),
                paths: vec!["/_id".into(), "/external_id".into(), "/tags".into()],
            });
        }
        Ok(Self {
            filter,
            all,
            preds,
            any,
        })
    }

    fn is_plain(&self) -> bool {
        self.all.is_empty() && self.preds.is_empty()
    }

    fn keep(&self, doc: &Value) -> bool {
        if !self.all.iter().all(|p| eval(p, doc)) {
            false
        } else if self.preds.is_empty() {
            true
        } else if self.any {
            self.preds.iter().any(|p| eval(p, doc))
        } else {
            self.preds.iter().all(|p| eval(p, doc))
        }
    }
}

fn sort_order(sorting: Option<&Vec<SortProp>>, now: i64) -> Result<Order, ApiError> {
    let Some(sort) = sorting.and_then(|s| s.first()) else {
        return Ok(Order::NewestFirst);
    };
    let key = sort.key.trim_start_matches('/');
    if !matches!(key, "started_at" | "created_at") {
        return Err(bad(
            format!(
                "unsupported sort key `{}`; sessions sort by `started_at`",
                sort.key
            ),
            now,
        ));
    }
    match sort.direction.as_deref() {
        None | Some("desc") => Ok(Order::NewestFirst),
        Some("asc") => Ok(Order::OldestFirst),
        Some(d) => Err(bad(
            format!("sort direction must be asc or desc, got `{d}`"),
            now,
        )),
    }
}

/// `POST /v2/traces/sessions/query`
pub async fn query(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let now = state.now();
    let scope = authorize(&state, &headers, V)?;
    let body: Body = parse_body(&body, now)?;
    let pg = body.pagination.unwrap_or_default();
    let limit = whole(pg.limit, "pagination.limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        .map_err(|m| bad(m, now))? as usize;
    let page = whole(pg.page, "pagination.page", 1, 0, u32::MAX.into()).map_err(|m| bad(m, now))?;
    let order = sort_order(body.sorting.as_ref(), now)?;
    let sel = Selection::new(body.filters, body.query.unwrap_or_default(), &scope, now)?;
    // Where the page starts: after lastId, before firstId (walk backwards),
    // or a page number. A session the key may not see is as unknown as one
    // that does not exist (no existence or position oracle).
    let cursor_of = |id: &str| -> Result<String, ApiError> {
        let s = state
            .store
            .get(id)
            .map_err(|e| store_error(e, V, now))?
            .filter(|s| scope.allows(s.user_id.as_deref(), s.workspace_id.as_deref()))
            .ok_or_else(|| bad(format!("unknown session id `{id}` in pagination"), now))?;
        Ok(encode_cursor(s.sort_at(), &s.id))
    };
    let (walk, after, skip, backwards) = match (&pg.last_id, &pg.first_id) {
        (Some(l), _) => (order, Some(cursor_of(l)?), 0, false),
        (None, Some(fid)) => {
            let rev = if order == Order::NewestFirst {
                Order::OldestFirst
            } else {
                Order::NewestFirst
            };
            (rev, Some(cursor_of(fid)?), 0, true)
        }
        (None, None) => (
            order,
            None,
            (page as usize).saturating_sub(1).saturating_mul(limit),
            false,
        ),
    };
    let mut data = Vec::with_capacity(limit);
    let mut has_more = false;
    let iter = state
        .store
        .matching(&sel.filter, walk, after.as_deref(), now)
        .map_err(|e| store_error(e, V, now))?;
    let mut skipped = 0;
    for s in iter {
        let s = s.map_err(|e| store_error(e, V, now))?;
        if !sel.keep(&filterable(&s, now)) {
            continue;
        }
        if skipped < skip {
            skipped += 1;
            continue;
        }
        if data.len() == limit {
            has_more = true;
            break;
        }
        data.push(session_json(&s, now));
    }
    if backwards {
        data.reverse();
    }
    Ok(Json(
        json!({"object": "list", "data": data, "has_more": has_more}),
    ))
}

/// `POST /v2/traces/sessions/count`: how many sessions the same body's
/// filters select (pagination and sorting do not change the count).
pub async fn count(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let now = state.now();
    let scope = authorize(&state, &headers, V)?;
    let body: Body = parse_body(&body, now)?;
    sort_order(body.sorting.as_ref(), now)?;
    let sel = Selection::new(body.filters, body.query.unwrap_or_default(), &scope, now)?;
    let n = count_where(&state, &sel.filter, sel.is_plain(), now, |s| {
        sel.keep(&filterable(s, now))
    })
    .map_err(|e| store_error(e, V, now))?;
    Ok(Json(json!({ "count": n })))
}

/// Sessions matching `f` and `keep`; from the store's counters when `plain`
/// (no predicate beyond `f`).
fn count_where(
    state: &AppState,
    f: &Filter,
    plain: bool,
    now: i64,
    keep: impl Fn(&Session) -> bool,
) -> Result<u64, ledger_store::StoreError> {
    if plain {
        return state.store.count(f, now);
    }
    let mut n = 0;
    for s in state.store.matching(f, Order::NewestFirst, None, now)? {
        if keep(&s?) {
            n += 1;
        }
    }
    Ok(n)
}

/// `GET /v2/traces/sessions/{id}`
pub async fn get_one(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let s = load_visible(&state, &headers, &id, V, "not_found")?;
    Ok(Json(session_json(&s, state.now())))
}

/// 405 for a write: the ledger is a projection of the topic.
fn read_only_error(state: &AppState, now: i64) -> ApiError {
    ApiError::new(
        V,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "The session ledger is read-only: sessions are written by publishing \
             session events to the Kafka topic `{}`",
            state.topic
        ),
        now,
    )
}

/// `Allow` of a 405: a session may be read, a collection only queried.
fn with_allow(mut resp: Response, uri: &Uri) -> Response {
    let allow = if uri.path().trim_end_matches('/').ends_with("/sessions") {
        ""
    } else {
        "GET"
    };
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    resp
}

/// `POST /v2/traces/sessions`, `PATCH`/`DELETE /v2/traces/sessions/{id}`: 405.
pub async fn read_only(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let now = state.now();
    match authorize(&state, &headers, V) {
        Err(e) => e.into_response(),
        Ok(_) => with_allow(read_only_error(&state, now).into_response(), &uri),
    }
}

// ---- orq-ai-sdk 4.x: /v2/sessions ("threads") ----

/// An error in the `/v2/sessions` envelope: `{code, message, details}` with
/// the gRPC status code the 4.x SDK's `ErrorResponseData` reads.
pub struct ThreadError(ApiError);

impl From<ApiError> for ThreadError {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl IntoResponse for ThreadError {
    fn into_response(self) -> Response {
        let code = match self.0.status {
            StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE => 3, // INVALID_ARGUMENT
            StatusCode::UNAUTHORIZED => 16,                               // UNAUTHENTICATED
            StatusCode::FORBIDDEN => 7,                                   // PERMISSION_DENIED
            StatusCode::NOT_FOUND => 5,                                   // NOT_FOUND
            StatusCode::METHOD_NOT_ALLOWED => 12,                         // UNIMPLEMENTED
            StatusCode::SERVICE_UNAVAILABLE => 14,                        // UNAVAILABLE
            _ => 13,                                                      // INTERNAL
        };
        let body = json!({"code": code, "message": self.0.message, "details": []});
        (self.0.status, Json(body)).into_response()
    }
}

/// The 4.x request body of `query` and `count`.
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
fn unix_ms(v: &Option<Value>, name: &str, now: i64) -> Result<Option<i64>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.as_i64().is_some() => Ok(n.as_i64()),
        Some(Value::String(s)) if s.parse::<i64>().is_ok() => Ok(s.parse().ok()),
        Some(other) => Err(bad(
            format!("filters.{name} must be Unix milliseconds, got {other}"),
            now,
        )),
    }
}

impl ThreadSelection {
    fn new(f: Option<ThreadFilters>, scope: &Scope, now: i64) -> Result<Self, ApiError> {
        let f = f.ok_or_else(|| bad("`filters` is required (with `filters.interval`)", now))?;
        let name = f
            .interval
            .as_deref()
            .ok_or_else(|| bad("`filters.interval` is required", now))?;
        let span = interval_ms(name).ok_or_else(|| {
            bad(
                format!("unknown interval `{name}`; expected SESSION_INTERVAL_ALL_TIME, SESSION_INTERVAL_LAST_30_MINUTES, …_1_HOUR, …_6_HOURS, …_24_HOURS, …_3_DAYS, …_7_DAYS, …_14_DAYS, …_1_MONTH or …_3_MONTHS"),
                now,
            )
        })?;
        // The interval and the custom window both apply (their intersection).
        let from = [
            span.map(|d| now - d),
            unix_ms(&f.start_date, "start_date", now)?,
        ]
        .into_iter()
        .flatten()
        .max();
        let to = unix_ms(&f.end_date, "end_date", now)?;
        let mut filter = Filter::default();
        apply_scope(scope, &mut filter, V, now)?;
        Ok(Self {
            filter,
            from,
            to,
            project_id: f.project_id,
            tags: f.tags.unwrap_or_default(),
            unrecorded: f.client.is_some() || f.repo.is_some() || f.kind.is_some(),
        })
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
pub async fn list_threads(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ThreadError> {
    let now = state.now();
    let scope = authorize(&state, &headers, V)?;
    let body: ThreadQuery = parse_body(&body, now)?;
    let limit =
        whole(body.limit, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT).map_err(|m| bad(m, now))? as usize;
    let page = whole(body.page, "page", 1, 1, u32::MAX.into()).map_err(|m| bad(m, now))?;
    let sel = ThreadSelection::new(body.filters, &scope, now)?;
    let skip = (page as usize - 1).saturating_mul(limit);
    let mut data = Vec::with_capacity(limit);
    let mut has_more = false;
    let iter = state
        .store
        .matching(&sel.filter, Order::NewestFirst, None, now)
        .map_err(|e| store_error(e, V, now))?;
    let mut skipped = 0;
    for s in iter {
        let s = s.map_err(|e| store_error(e, V, now))?;
        if !sel.keep(&s) {
            continue;
        }
        if skipped < skip {
            skipped += 1;
            continue;
        }
        if data.len() == limit {
            has_more = true;
            break;
        }
        data.push(thread_json(&s, now));
    }
    Ok(Json(
        json!({"object": "list", "data": data, "has_more": has_more}),
    ))
}

/// `POST /v2/sessions/count`: how many threads the filters select (`limit`
/// and `page` do not change it).
pub async fn count_threads(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ThreadError> {
    let now = state.now();
    let scope = authorize(&state, &headers, V)?;
    let body: ThreadQuery = parse_body(&body, now)?;
    whole(body.limit, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT).map_err(|m| bad(m, now))?;
    whole(body.page, "page", 1, 1, u32::MAX.into()).map_err(|m| bad(m, now))?;
    let sel = ThreadSelection::new(body.filters, &scope, now)?;
    let n = count_where(&state, &sel.filter, sel.is_plain(), now, |s| sel.keep(s))
        .map_err(|e| store_error(e, V, now))?;
    Ok(Json(json!({ "count": n })))
}

/// `GET /v2/sessions/tags`: every tag of the key's sessions, sorted. There
/// is no tag index: this walks the sessions in scope.
pub async fn thread_tags(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Vec<String>>, ThreadError> {
    let now = state.now();
    let scope = authorize(&state, &headers, V)?;
    let mut f = Filter::default();
    apply_scope(&scope, &mut f, V, now)?;
    let mut tags = BTreeSet::new();
    let iter = state
        .store
        .matching(&f, Order::NewestFirst, None, now)
        .map_err(|e| store_error(e, V, now))?;
    for s in iter {
        tags.extend(s.map_err(|e| store_error(e, V, now))?.tags);
    }
    Ok(Json(tags.into_iter().collect()))
}

/// `GET /v2/sessions/{id}`
pub async fn get_thread(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ThreadError> {
    let s = load_visible(&state, &headers, &id, V, "not_found")?;
    Ok(Json(thread_json(&s, state.now())))
}

/// `POST /v2/sessions`, `PATCH`/`DELETE /v2/sessions/{id}`: 405.
pub async fn read_only_threads(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let now = state.now();
    match authorize(&state, &headers, V) {
        Err(e) => ThreadError(e).into_response(),
        Ok(_) => with_allow(
            ThreadError(read_only_error(&state, now)).into_response(),
            &uri,
        ),
    }
}
