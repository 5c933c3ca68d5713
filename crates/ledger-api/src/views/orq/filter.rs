//! orq.ai's filter language (3.x bodies): filters with an operator, a JSON
//! pointer `path` and values; search filters over several paths; id
//! filters; combined by `and`/`or`.
//!
//! Filters of the form `is`/`equals`/`in` (one value) on `/user_id`,
//! `/client_id`, `/agent_id`, `/workspace_id` or `/status` (under `and`)
//! drive an index; every other filter is evaluated on the candidates the
//! index yields, as JSON: the session's wire object plus the fields those
//! paths name ([`document`]). Errors are messages; the caller answers them
//! as a 400.

use ledger_core::time::parse_rfc3339_ms;
use ledger_core::{Session, Status};
use ledger_store::Filter;
use serde::Deserialize;
use serde_json::Value;

use super::json::session_json;

/// One filter as the SDK sends it.
#[derive(Debug, Deserialize)]
pub struct FilterSpec {
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

/// A body's `query`: free-text `search` and `filters` combined by
/// `operator` (`and`, the default, or `or`).
#[derive(Debug, Default, Deserialize)]
pub struct QueryBody {
    search: Option<String>,
    operator: Option<String>,
    #[serde(default)]
    filters: Vec<FilterSpec>,
}

/// A validated filter.
enum Pred {
    Op {
        path: String,
        op: String,
        values: Vec<Value>,
    },
    /// Case-insensitive substring `text` (lowercased) at any of `paths`.
    Search { text: String, paths: Vec<String> },
    /// `{type: "id", id, path}`: the value at `path` (default `/_id`) is `id`.
    Id { id: String, path: String },
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

/// Paths `query.search` looks in.
const SEARCH_PATHS: [&str; 3] = ["/_id", "/external_id", "/tags"];

/// A body's filters, compiled: what a session must satisfy beyond the
/// store filter they narrowed.
pub struct Criteria {
    /// Top-level `filters` and `query.search`: always all of them.
    all: Vec<Pred>,
    /// `query.filters`, combined by `query.operator`.
    preds: Vec<Pred>,
    /// `query.operator` is `or`.
    any: bool,
}

impl Criteria {
    /// Compiles the top-level `filters` and the `query`, and moves what an
    /// index can answer into `index`.
    pub fn compile(
        filters: Vec<FilterSpec>,
        q: QueryBody,
        index: &mut Filter,
    ) -> Result<Self, String> {
        let any = match q.operator.as_deref() {
            None | Some("and") => false,
            Some("or") => true,
            Some(o) => return Err(format!("query.operator must be and/or, got `{o}`")),
        };
        let mut all = filters
            .into_iter()
            .map(compile)
            .collect::<Result<Vec<_>, _>>()?;
        let preds = q
            .filters
            .into_iter()
            .map(compile)
            .collect::<Result<Vec<_>, _>>()?;
        push_down(&all, index)?;
        if !any {
            push_down(&preds, index)?;
        }
        // `search` narrows the result whatever the operator.
        if let Some(s) = q.search.filter(|s| !s.is_empty()) {
            all.push(Pred::Search {
                text: s.to_lowercase(),
                paths: SEARCH_PATHS.map(String::from).to_vec(),
            });
        }
        Ok(Self { all, preds, any })
    }

    /// Nothing beyond the store filter: every candidate matches.
    pub fn is_empty(&self) -> bool {
        self.all.is_empty() && self.preds.is_empty()
    }

    /// Whether `s`, as of `now` (Unix ms), satisfies the filters.
    pub fn matches(&self, s: &Session, now: i64) -> bool {
        if self.is_empty() {
            return true;
        }
        let doc = document(s, now);
        if !self.all.iter().all(|p| eval(p, &doc)) {
            false
        } else if self.preds.is_empty() {
            true
        } else if self.any {
            self.preds.iter().any(|p| eval(p, &doc))
        } else {
            self.preds.iter().all(|p| eval(p, &doc))
        }
    }
}

/// What filter paths address: the wire object plus `user_id`, `client_id`,
/// `agent_id` and `status` (as of `now`).
fn document(s: &Session, now: i64) -> Value {
    let mut v = session_json(s, now);
    if let Value::Object(m) = &mut v {
        m.insert("user_id".into(), s.user_id.clone().into());
        m.insert("client_id".into(), s.client_id.clone().into());
        m.insert("agent_id".into(), s.agent_id.clone().into());
        m.insert("status".into(), s.status_at(now).as_str().into());
    }
    v
}

fn compile(f: FilterSpec) -> Result<Pred, String> {
    if let (Some(text), Some(paths)) = (&f.value, &f.search_paths) {
        let text = text
            .as_str()
            .ok_or("search filter `value` must be a string")?;
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
    let path = f.path.ok_or("filter needs a `path`")?;
    if !path.starts_with('/') {
        return Err(format!("filter path `{path}` must start with `/`"));
    }
    let op = f.operator.ok_or("filter needs an `operator`")?;
    if !OPERATORS.contains(&op.as_str()) {
        return Err(format!(
            "unknown operator `{op}`; expected one of {}",
            OPERATORS.join(", ")
        ));
    }
    let values = match (f.value, f.values) {
        (_, Some(vs)) => vs,
        // A list in `value` (`is_between`'s bounds, `in`'s set) is the values.
        (Some(Value::Array(vs)), None) => vs,
        (Some(v), None) => vec![v],
        (None, None) if matches!(op.as_str(), "is_empty" | "is_not_empty") => vec![],
        (None, None) => return Err(format!("operator `{op}` needs a `value` or `values`")),
    };
    if op == "is_between" && values.len() != 2 {
        return Err("`is_between` needs exactly two values".into());
    }
    Ok(Pred::Op { path, op, values })
}

/// Moves `is`/`equals`/`in` filters of one value on indexed paths into the
/// store filter (the first one of a field wins; the rest are still
/// evaluated).
fn push_down(preds: &[Pred], f: &mut Filter) -> Result<(), String> {
    for p in preds {
        let Pred::Op { path, op, values } = p else {
            continue;
        };
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
                f.status = Some(Status::parse(v).ok_or_else(|| format!("unknown status `{v}`"))?);
                continue;
            }
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(v.to_string());
        }
    }
    Ok(())
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

/// The operator's positive form on `target`; on an array, whether any item
/// matches (`contains` on an array is membership).
fn positive(target: Option<&Value>, op: &str, values: &[Value]) -> bool {
    match target {
        None | Some(Value::Null) => false,
        Some(Value::Array(items)) => items
            .iter()
            .any(|t| scalar_matches(t, if op == "contains" { "is" } else { op }, values)),
        Some(t) => scalar_matches(t, op, values),
    }
}
