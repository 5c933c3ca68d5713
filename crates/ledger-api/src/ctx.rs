//! The request context every view handler starts from.
//!
//! [`Ctx<D>`] is an extractor: it authenticates the request (a 401 in `D`'s
//! envelope otherwise), reads the clock once, and carries the key's scope and
//! the state. What the views share — errors of the shared kinds, scoping,
//! loading a visible session, paging, store reads — are its methods, each
//! answering in `D`'s dialect.

use std::collections::HashMap;
use std::marker::PhantomData;

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::{StatusCode, Uri};
use ledger_core::Session;
use ledger_store::{Filter, HistoryEntry, Order, Page, Past, Start, StoreError};

use crate::auth::{Checked, Scope};
use crate::dialect::{self, Dialect, Failure};
use crate::error::ApiError;
use crate::shard::{Answer, Caller, Op, ShardError, Shards};
use crate::state::AppState;

/// A session's kept history with the state after each event.
pub type Timeline = (Option<ledger_store::HistoryBase>, Vec<ledger_store::Step>);

/// An authenticated request to a view speaking dialect `D`.
pub struct Ctx<D> {
    pub state: AppState,
    /// The store this request is answered from (one for the whole request).
    pub store: ledger_store::Store,
    /// What the request's key may read.
    pub scope: Scope,
    /// The request's clock reading, Unix ms: read once, it is the time of
    /// every read-time status, deadline and error timestamp of the response.
    /// With `as_of`, it is that time.
    pub now: i64,
    /// `as_of` (Unix ms): by-id routes answer the session as it was then;
    /// other routes refuse it.
    pub as_of: Option<i64>,
    /// Sharded mode: the owners of the partitions answer the reads.
    pub(crate) shards: Option<std::sync::Arc<Shards>>,
    /// The caller as the owners see it (its key, scope and clock).
    pub(crate) caller: Caller,
    uri: Uri,
    dialect: PhantomData<fn() -> D>,
}

impl<D: Dialect + Default> FromRequestParts<AppState> for Ctx<D> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let now = state.now();
        // Behind the consistency middleware the key was checked already.
        let checked = match parts.extensions.get::<Checked>() {
            Some(Checked(c)) => c.clone(),
            None => state.auth.check(&parts.headers),
        };
        let as_of = match as_of_param(&parts.uri, now) {
            Ok(t) => t,
            Err(msg) => {
                return Err(ApiError::of(
                    dialect::of::<D>(),
                    Failure::BadParameter,
                    msg,
                    now,
                ))
            }
        };
        match checked {
            Ok(scope) => Ok(Self {
                store: parts
                    .extensions
                    .get::<crate::middleware::Pinned>()
                    .map_or_else(|| state.store(), |p| p.0.clone()),
                state: state.clone(),
                caller: Caller {
                    auth: parts.headers.get("authorization").cloned(),
                    api_key: parts.headers.get("x-api-key").cloned(),
                    scope: scope.clone(),
                    now: as_of.unwrap_or(now),
                },
                shards: state.shards.clone(),
                scope,
                now: as_of.unwrap_or(now),
                as_of,
                uri: parts.uri.clone(),
                dialect: PhantomData,
            }),
            Err(f) => Err(ApiError::fixed(dialect::of::<D>(), f.into(), now)),
        }
    }
}

impl<D: Dialect + Default> Ctx<D> {
    /// An error of this API's own (a status and code no other view shares).
    pub fn error(
        &self,
        status: StatusCode,
        code: &'static str,
        msg: impl Into<String>,
    ) -> ApiError {
        ApiError::new(dialect::of::<D>(), status, code, msg, self.now)
    }

    /// A shared failure `kind`, in this API's code and status.
    pub fn fail(&self, kind: Failure, msg: impl Into<String>) -> ApiError {
        ApiError::of(dialect::of::<D>(), kind, msg, self.now)
    }

    /// A request that does not parse.
    pub fn bad(&self, msg: impl Into<String>) -> ApiError {
        self.fail(Failure::BadRequest, msg)
    }

    /// A parameter outside its range or set.
    pub fn invalid(&self, msg: impl Into<String>) -> ApiError {
        self.fail(Failure::BadParameter, msg)
    }

    /// No session `id` (or not one this route serves).
    pub fn not_found(&self, id: &str) -> ApiError {
        self.fail(Failure::NotFound, format!("Session {id} not found"))
    }

    /// Asking outside the key's scope.
    pub fn forbidden(&self) -> ApiError {
        ApiError::fixed(dialect::of::<D>(), Failure::Forbidden, self.now)
    }

    /// A store failure: a cursor this server did not issue is the caller's
    /// 400; anything else is logged and a 500.
    pub fn store_error(&self, e: StoreError) -> ApiError {
        let kind = match e {
            StoreError::BadCursor => Failure::BadCursor,
            other => {
                tracing::error!(error = %other, "store read failed");
                Failure::Internal
            }
        };
        ApiError::fixed(dialect::of::<D>(), kind, self.now)
    }

    /// A sharded read without an answer: 503 while partitions move, the
    /// kinds the store has otherwise.
    pub fn shard_error(&self, e: ShardError) -> ApiError {
        match e {
            ShardError::Unavailable(ps) => self.fail(
                Failure::Unavailable,
                format!(
                    "partitions {ps:?} are moving between instances (no instance answers for them now); retry shortly"
                ),
            ),
            ShardError::Forbidden => self.forbidden(),
            ShardError::BadCursor => self.store_error(StoreError::BadCursor),
            ShardError::Failed(why) => {
                tracing::error!(error = %why, "a shard read failed");
                ApiError::fixed(dialect::of::<D>(), Failure::Internal, self.now)
            }
        }
    }

    /// Runs a by-id operation on the owner of `id` (sharded mode).
    fn by_id(&self, sh: &Shards, id: &str, op: Op) -> Result<Answer, ApiError> {
        sh.by_id(&self.store, id, op, &self.caller)
            .map_err(|e| self.shard_error(e))
    }

    /// Sums a count over every owner (sharded mode).
    fn sum(&self, sh: &Shards, op: Op) -> Result<u64, ApiError> {
        let answers = sh
            .scatter(&self.store, op, &self.caller)
            .map_err(|e| self.shard_error(e))?;
        let mut n = 0;
        for a in answers {
            match crate::shard::check(a).map_err(|e| self.shard_error(e))? {
                Answer::Count(c) => n += c,
                other => {
                    return Err(self
                        .shard_error(ShardError::Failed(format!("unexpected answer {other:?}"))))
                }
            }
        }
        Ok(n)
    }

    /// The query parameters as a map (the last value of a name wins).
    pub fn params(&self) -> Result<HashMap<String, String>, ApiError> {
        match Query::<Vec<(String, String)>>::try_from_uri(&self.uri) {
            Ok(Query(pairs)) => Ok(pairs.into_iter().collect()),
            Err(e) => Err(self.bad(e.body_text())),
        }
    }

    /// The integer parameter `name` within `lo..=hi`, `default` when absent.
    pub fn int_param(
        &self,
        p: &HashMap<String, String>,
        name: &str,
        default: usize,
        lo: usize,
        hi: usize,
    ) -> Result<usize, ApiError> {
        match p.get(name) {
            None => Ok(default),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (lo..=hi).contains(&n) => Ok(n),
                _ => Err(self.invalid(format!(
                    "`{name}` must be an integer between {lo} and {hi}, got `{v}`"
                ))),
            },
        }
    }

    /// Every session the scope may see (an admin's: every session).
    pub fn scope_filter(&self) -> Filter {
        let mut f = Filter::default();
        // An empty filter names no other tenant: narrowing it cannot fail.
        let _ = self.apply_scope(&mut f);
        f
    }

    /// Narrows `f` to the scope; asking for another user or workspace is a
    /// 403.
    pub fn apply_scope(&self, f: &mut Filter) -> Result<(), ApiError> {
        if self.scope.narrow(f) {
            Ok(())
        } else {
            Err(self.forbidden())
        }
    }

    /// Whether the scope may see `s`.
    pub fn may_see(&self, s: &Session) -> bool {
        self.scope
            .allows(s.user_id.as_deref(), s.workspace_id.as_deref())
    }

    /// The session `id`, whoever may see it (as of `as_of` when given: its
    /// history re-folded up to then; a time before the kept history is a
    /// 400).
    pub fn session(&self, id: &str) -> Result<Option<Session>, ApiError> {
        let past = if let Some(sh) = &self.shards {
            let op = Op::Get {
                id: id.to_string(),
                as_of: self.as_of,
            };
            match self.by_id(sh, id, op)? {
                Answer::Past(p) => p,
                a => return Err(self.unexpected(a)),
            }
        } else {
            let Some(at) = self.as_of else {
                return self.store.get(id).map_err(|e| self.store_error(e));
            };
            self.store.as_of(id, at).map_err(|e| self.store_error(e))?
        };
        let at = self.as_of.unwrap_or(self.now);
        match past {
            Past::Found(s) => Ok(Some(s)),
            Past::Missing => Ok(None),
            Past::OutOfHistory { from } => Err(self.invalid(format!(
                "`as_of` {} is older than the history kept for session {id}, which answers from {} on",
                ledger_core::time::format_iso_ms(at),
                ledger_core::time::format_iso_ms(from),
            ))),
        }
    }

    fn unexpected(&self, a: Answer) -> ApiError {
        match crate::shard::check(a) {
            Err(e) => self.shard_error(e),
            Ok(a) => self.shard_error(ShardError::Failed(format!("unexpected answer {a:?}"))),
        }
    }

    /// A visible session's kept history, oldest first.
    pub fn history(&self, id: &str) -> Result<Vec<HistoryEntry>, ApiError> {
        let Some(sh) = &self.shards else {
            return self.store.history(id).map_err(|e| self.store_error(e));
        };
        match self.by_id(sh, id, Op::History { id: id.to_string() })? {
            Answer::History(h) => Ok(h.unwrap_or_default()),
            a => Err(self.unexpected(a)),
        }
    }

    /// A visible session's timeline (`None`: no such session).
    pub fn timeline(&self, id: &str) -> Result<Option<Timeline>, ApiError> {
        let Some(sh) = &self.shards else {
            return self.store.timeline(id).map_err(|e| self.store_error(e));
        };
        match self.by_id(sh, id, Op::Timeline { id: id.to_string() })? {
            Answer::Timeline(t) => Ok(t),
            a => Err(self.unexpected(a)),
        }
    }

    /// Active sessions matching `f` near their expiry now.
    pub fn near_expiration(&self, f: &Filter) -> Result<u64, ApiError> {
        self.present_only()?;
        match &self.shards {
            Some(sh) => self.sum(sh, Op::NearExpiration { filter: f.clone() }),
            None => self
                .store
                .count_near_expiration(f, self.now)
                .map_err(|e| self.store_error(e)),
        }
    }

    /// Created (not pending) sessions: every one (an admin key's count).
    pub fn created(&self) -> Result<u64, ApiError> {
        self.present_only()?;
        match &self.shards {
            Some(sh) => self.sum(sh, Op::Created),
            None => {
                let stats = self.store.stats();
                Ok(stats.sessions - stats.status(ledger_core::Status::Pending))
            }
        }
    }

    /// Sessions ended (or past a deadline) in `(from, to]`, at most `limit`:
    /// (id, when). In sharded mode only those the key may see.
    pub fn ended_between(
        &self,
        from: i64,
        to: i64,
        limit: usize,
    ) -> Result<Vec<(String, i64)>, ApiError> {
        let Some(sh) = &self.shards else {
            return self
                .store
                .ended_between(from, to, limit)
                .map_err(|e| self.store_error(e));
        };
        let answers = sh
            .scatter(
                &self.store,
                Op::EndedBetween { from, to, limit },
                &self.caller,
            )
            .map_err(|e| self.shard_error(e))?;
        let mut out = vec![];
        for a in answers {
            match crate::shard::check(a).map_err(|e| self.shard_error(e))? {
                Answer::Ended(v) => out.extend(v),
                a => return Err(self.unexpected(a)),
            }
        }
        out.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
        out.truncate(limit);
        Ok(out)
    }

    /// Refuses `as_of` on a route that does not answer it (lists, counts).
    fn present_only(&self) -> Result<(), ApiError> {
        match self.as_of {
            None => Ok(()),
            Some(_) => {
                Err(self
                    .invalid("`as_of` is answered by the by-id routes only (`GET …/{id}?as_of=…`)"))
            }
        }
    }

    /// The session `id` as the caller may see it: 404 if unknown or out of
    /// the key's scope (the same answer, so a key learns nothing of other
    /// tenants' ids).
    pub fn load_visible(&self, id: &str) -> Result<Session, ApiError> {
        // A session outside the key's scope is answered exactly like an
        // unknown id: a 403 would confirm that it exists.
        match self.session(id)? {
            Some(s) if self.may_see(&s) => Ok(s),
            _ => Err(self.not_found(id)),
        }
    }

    /// How many sessions match `f` now.
    pub fn count(&self, f: &Filter) -> Result<u64, ApiError> {
        self.present_only()?;
        if let Some(sh) = &self.shards {
            return self.sum(sh, Op::Count { filter: f.clone() });
        }
        self.store
            .count(f, self.now)
            .map_err(|e| self.store_error(e))
    }

    /// Every session matching `f` now, in `order`, strictly after the cursor
    /// `after`.
    pub fn matching<'a>(
        &'a self,
        f: &Filter,
        order: Order,
        after: Option<&str>,
    ) -> Result<Box<dyn Iterator<Item = Result<Session, ApiError>> + 'a>, ApiError> {
        self.present_only()?;
        if let Some(sh) = &self.shards {
            let merged = sh
                .matching(&self.store, f, order, after, 256, &self.caller)
                .map_err(|e| self.shard_error(e))?;
            return Ok(Box::new(merged.map(|s| s.map_err(|e| self.shard_error(e)))));
        }
        let iter = self
            .store
            .matching(f, order, after, self.now)
            .map_err(|e| self.store_error(e))?;
        Ok(Box::new(iter.map(|s| s.map_err(|e| self.store_error(e)))))
    }

    /// A list page, newest first: `f` narrowed to the scope (403 when it asks
    /// outside), at most `limit` sessions from the `cursor` parameter when
    /// given, else `offset` sessions in.
    pub fn page(
        &self,
        f: &mut Filter,
        p: &HashMap<String, String>,
        offset: usize,
        limit: usize,
    ) -> Result<Page, ApiError> {
        self.present_only()?;
        self.apply_scope(f)?;
        let start = match p.get("cursor") {
            Some(c) => Start::After(c.clone()),
            None => Start::Offset(offset),
        };
        if let Some(sh) = &self.shards {
            let (after, skip) = match &start {
                Start::After(c) => (Some(c.as_str()), 0),
                Start::Offset(n) => (None, *n),
            };
            let merged = sh
                .matching(
                    &self.store,
                    f,
                    Order::NewestFirst,
                    after,
                    skip + limit + 1,
                    &self.caller,
                )
                .map_err(|e| self.shard_error(e))?;
            let mut items = Vec::with_capacity(limit.min(1000));
            let mut has_more = false;
            for s in merged.skip(skip) {
                let s = s.map_err(|e| self.shard_error(e))?;
                if items.len() == limit {
                    has_more = true;
                    break;
                }
                items.push(s);
            }
            let next_cursor = match (has_more, items.last()) {
                (true, Some(last)) => Some(ledger_store::encode_cursor(last.sort_at(), &last.id)),
                _ => None,
            };
            return Ok(Page {
                items,
                has_more,
                next_cursor,
            });
        }
        self.store
            .list(f, Order::NewestFirst, &start, limit, self.now)
            .map_err(|e| self.store_error(e))
    }
}

/// The `as_of` query parameter: RFC 3339 or Unix ms, not after `now`.
fn as_of_param(uri: &Uri, now: i64) -> Result<Option<i64>, String> {
    // A query that does not parse is the handler's 400 (`params`).
    let Ok(Query(pairs)) = Query::<Vec<(String, String)>>::try_from_uri(uri) else {
        return Ok(None);
    };
    let Some(v) = pairs
        .into_iter()
        .rev()
        .find(|(k, _)| k == "as_of")
        .map(|(_, v)| v)
    else {
        return Ok(None);
    };
    let t = v
        .parse::<i64>()
        .ok()
        .or_else(|| ledger_core::time::parse_rfc3339_ms(&v))
        .ok_or_else(|| format!("`as_of` must be an RFC 3339 time or Unix ms, got `{v}`"))?;
    if t > now {
        return Err(format!("`as_of` must not be in the future, got `{v}`"));
    }
    Ok(Some(t))
}
