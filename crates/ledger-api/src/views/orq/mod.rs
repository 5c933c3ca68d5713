//! orq.ai sessions view, in the wire shapes of both SDK generations.
//!
//! * orq-ai-sdk 3.x, `/v2/traces/sessions/…` ([`v3`]): `POST …/query` and
//!   `POST …/count` with orq's JSON body (pagination, sorting, top-level
//!   `filters` and `query.filters`, see [`filter`]), `GET …/{id}`; errors
//!   `{code, message}` with a string code ([`Orq`]).
//! * orq-ai-sdk 4.x, `/v2/sessions/…` ("threads", [`v4`]): `POST …/query`
//!   and `POST …/count` with `{filters: {interval, …}, limit, page}`,
//!   `GET …/tags`, `GET …/{id}`; errors `{code, message, details}` with a
//!   gRPC code ([`Threads`]).
//!
//! Writes (create, update, delete) answer 405: sessions are written by
//! publishing events to the Kafka topic.

mod dialect;
mod filter;
mod json;
mod v3;
mod v4;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use ledger_core::Session;
use ledger_store::{Filter, Order};
use serde_json::{json, Value};

use crate::ctx::Ctx;
use crate::dialect::Dialect;
use crate::error::ApiError;
use crate::state::AppState;

pub use dialect::{Orq, Threads};

/// The paths each generation's dialect is spoken under.
pub const PREFIXES: &[(&str, &dyn Dialect)] =
    &[("/v2/traces/sessions", &Orq), ("/v2/sessions", &Threads)];

/// Page size bounds.
const DEFAULT_LIMIT: u64 = 50;
const MAX_LIMIT: u64 = 200;

/// Every orq route, both SDK generations.
pub fn routes() -> Router<AppState> {
    Router::new().merge(v3::routes()).merge(v4::routes())
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

/// A query or count request: its context and its JSON body as `T` (an
/// empty body is the default). The body is read before the key is checked,
/// so an oversized body is a 413 whoever sends it; then a 401, then a
/// malformed body's 400.
struct WithBody<D, T> {
    ctx: Ctx<D>,
    body: T,
}

impl<D, T> FromRequest<AppState> for WithBody<D, T>
where
    D: Dialect + Default,
    T: Default + serde::de::DeserializeOwned,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let ctx = Ctx::<D>::from_request_parts(&mut parts, state).await;
        let bytes = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        let ctx = ctx.map_err(IntoResponse::into_response)?;
        let body = if bytes.iter().all(u8::is_ascii_whitespace) {
            T::default()
        } else {
            serde_json::from_slice(&bytes)
                .map_err(|e| ctx.bad(format!("malformed body: {e}")).into_response())?
        };
        Ok(Self { ctx, body })
    }
}

/// A body's filters, validated: the store filter (index and scope) and what
/// the sessions it yields must also satisfy.
trait Selection {
    fn filter(&self) -> &Filter;
    /// Nothing beyond [`Selection::filter`]: the store's counters answer.
    fn is_plain(&self) -> bool;
    fn keep(&self, s: &Session) -> bool;
}

/// Where a page starts in the selected sessions.
struct Walk {
    order: Order,
    /// Strictly after this cursor, when set.
    after: Option<String>,
    /// Selected sessions passed over first.
    skip: usize,
    /// The walk runs against the requested order (a page before `firstId`):
    /// the page is reversed back.
    backwards: bool,
}

/// `{object: "list", data, has_more}`: at most `limit` of the sessions `sel`
/// selects, from where `walk` starts, each rendered by `render`.
fn page<D: Dialect + Default>(
    ctx: &Ctx<D>,
    sel: &impl Selection,
    walk: Walk,
    limit: usize,
    render: fn(&Session, i64) -> Value,
) -> Result<Json<Value>, ApiError> {
    let mut data = Vec::with_capacity(limit);
    let mut has_more = false;
    let mut skipped = 0;
    for s in ctx.matching(sel.filter(), walk.order, walk.after.as_deref())? {
        let s = s?;
        if !sel.keep(&s) {
            continue;
        }
        if skipped < walk.skip {
            skipped += 1;
            continue;
        }
        if data.len() == limit {
            has_more = true;
            break;
        }
        data.push(render(&s, ctx.now));
    }
    if walk.backwards {
        data.reverse();
    }
    Ok(Json(json::list_json(data, has_more)))
}

/// `{count}`: how many sessions `sel` selects; from the store's counters
/// when it is plain.
fn count<D: Dialect + Default>(
    ctx: &Ctx<D>,
    sel: &impl Selection,
) -> Result<Json<Value>, ApiError> {
    let n = if sel.is_plain() {
        ctx.count(sel.filter())?
    } else {
        let mut n = 0;
        for s in ctx.matching(sel.filter(), Order::NewestFirst, None)? {
            if sel.keep(&s?) {
                n += 1;
            }
        }
        n
    };
    Ok(Json(json!({ "count": n })))
}

/// A write (`POST` a collection, `PATCH`/`DELETE` a session), in either
/// generation's dialect: 405, the ledger being a projection of the topic.
/// `Allow`: a session may be read, a collection only queried.
async fn read_only<D: Dialect + Default>(ctx: Ctx<D>, uri: Uri) -> Response {
    let err = ctx.error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "The session ledger is read-only: sessions are written by publishing \
             session events to the Kafka topic `{}`",
            ctx.state.topic
        ),
    );
    let allow = if uri.path().trim_end_matches('/').ends_with("/sessions") {
        ""
    } else {
        "GET"
    };
    let mut resp = err.into_response();
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    resp
}
