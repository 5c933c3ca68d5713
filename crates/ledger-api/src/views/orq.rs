//! orq.ai trace-sessions view: `POST /v2/traces/sessions/query` with orq's
//! JSON body (pagination, sorting, filters), `GET /v2/traces/sessions/{id}`.
//! Snake_case wire keys, `duration` in ms, `{code?, message}` errors.
//!
//! Filters of the form `is`/`equals` on `/user_id`, `/client_id`,
//! `/agent_id`, `/workspace_id` or `/status` (under `and`) drive an index;
//! every other filter is evaluated on the candidates the index yields.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use ledger_core::time::{format_iso_ms, parse_rfc3339_ms};
use ledger_core::{Session, Status};
use ledger_store::{encode_cursor, Filter, Order};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{apply_scope, authorize, load_visible, store_error};
use crate::error::{ApiError, View};
use crate::state::AppState;

const V: View = View::Orq;
/// Page size bounds.
const DEFAULT_LIMIT: u64 = 50;
const MAX_LIMIT: u64 = 200;

#[derive(Debug, Default, Deserialize)]
struct Body {
    #[serde(default)]
    pagination: Option<Pagination>,
    #[serde(default, rename = "sortingProps")]
    sorting: Option<Vec<SortProp>>,
    #[serde(default)]
    query: Option<QueryBody>,
}

#[derive(Debug, Default, Deserialize)]
struct Pagination {
    page: Option<u64>,
    limit: Option<u64>,
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
    Id(String),
}

const OPERATORS: &[&str] = &[
    "is",
    "is_not",
    "equals",
    "contains",
    "does_not_contain",
    "starts_with",
    "ends_with",
    "is_greater_than",
    "is_less_than",
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
        return Ok(Pred::Id(id.clone()));
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
        "is" | "equals" => values
            .iter()
            .any(|v| v == target || text(v) == t && t.is_some()),
        "contains" => any(&|t, v| t.contains(v)),
        "starts_with" => any(&|t, v| t.starts_with(v)),
        "ends_with" => any(&|t, v| t.ends_with(v)),
        "is_greater_than" | "is_after" => cmp(target, values, |a, b| a > b),
        "is_on_or_after" => cmp(target, values, |a, b| a >= b),
        "is_less_than" | "is_before" => cmp(target, values, |a, b| a < b),
        "is_on_or_before" => cmp(target, values, |a, b| a <= b),
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
        Pred::Id(id) => doc["_id"] == Value::String(id.clone()),
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
                "is_not" => !positive(target, "is", values),
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

/// Moves `is`/`equals` filters on indexed paths into the store filter.
fn push_down(preds: &[Pred], f: &mut Filter, now: i64) -> Result<(), ApiError> {
    for p in preds {
        if let Pred::Op { path, op, values } = p {
            if !(op == "is" || op == "equals") || values.len() != 1 {
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

/// `POST /v2/traces/sessions/query`
pub async fn query(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let now = state.now();
    let scope = authorize(&state, &headers, V)?;
    let body: Body = if body.iter().all(u8::is_ascii_whitespace) {
        Body::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| bad(format!("malformed body: {e}"), now))?
    };
    let pg = body.pagination.unwrap_or_default();
    let limit = pg.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(bad(
            format!("pagination.limit must be between 1 and {MAX_LIMIT}"),
            now,
        ));
    }
    let limit = limit as usize;
    let mut order = Order::NewestFirst;
    if let Some(sort) = body.sorting.as_ref().and_then(|s| s.first()) {
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
        order = match sort.direction.as_deref() {
            None | Some("desc") => Order::NewestFirst,
            Some("asc") => Order::OldestFirst,
            Some(d) => {
                return Err(bad(
                    format!("sort direction must be asc or desc, got `{d}`"),
                    now,
                ))
            }
        };
    }
    let q = body.query.unwrap_or_default();
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
    let preds = q
        .filters
        .into_iter()
        .map(|f| compile(f, now))
        .collect::<Result<Vec<_>, _>>()?;
    let mut f = Filter::default();
    if !any {
        push_down(&preds, &mut f, now)?;
    }
    apply_scope(&scope, &mut f, V, now)?;
    // `search` narrows the result whatever the operator.
    let search = q.search.filter(|s| !s.is_empty()).map(|s| Pred::Search {
        text: s.to_lowercase(),
        paths: vec!["/_id".into(), "/external_id".into(), "/tags".into()],
    });
    let keep = |doc: &Value| {
        if search.as_ref().is_some_and(|p| !eval(p, doc)) {
            false
        } else if preds.is_empty() {
            true
        } else if any {
            preds.iter().any(|p| eval(p, doc))
        } else {
            preds.iter().all(|p| eval(p, doc))
        }
    };
    // Where the page starts: after lastId, before firstId (walk backwards), or a page number.
    let cursor_of = |id: &str| -> Result<String, ApiError> {
        let s = state
            .store
            .get(id)
            .map_err(|e| store_error(e, V, now))?
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
            pg.page.unwrap_or(1).saturating_sub(1) as usize * limit,
            false,
        ),
    };
    let mut data = Vec::with_capacity(limit);
    let mut has_more = false;
    let iter = state
        .store
        .matching(&f, walk, after.as_deref(), now)
        .map_err(|e| store_error(e, V, now))?;
    let mut skipped = 0;
    for s in iter {
        let s = s.map_err(|e| store_error(e, V, now))?;
        let doc = filterable(&s, now);
        if !keep(&doc) {
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

/// `GET /v2/traces/sessions/{id}`
pub async fn get_one(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let s = load_visible(&state, &headers, &id, V, "not_found")?;
    Ok(Json(session_json(&s, state.now())))
}
