//! Sharded mode's reads: any instance answers any request.
//!
//! Every read a view makes goes through [`Ctx`](crate::ctx::Ctx) as one of a
//! few store operations ([`Op`]). In sharded mode [`Shards`] runs each on the
//! instances that own the partitions it needs:
//!
//! * a by-id read goes to the owner of the partition the producers'
//!   partitioner picks for the id (answered locally when that is this
//!   instance); if that owner does not have it, every other owner is asked
//!   (a producer keyed differently costs a scatter, never a wrong 404);
//! * a list is scattered to every owner, each restricted to the partitions
//!   it owns, and merged by the list order (creation time, then id). A page
//!   ends at one position of that order, so one cursor holds every shard's
//!   position: each continues strictly after it;
//! * counts are summed.
//!
//! Owners are found on the membership topic ([`Route`]); an owner checks on
//! every request that it answers for every partition asked (`NotOwner`
//! otherwise). While a partition has no owner answering for it, the request
//! is retried for at most `wait`, then answered 503 in the view's envelope:
//! never a missing session or a short list presented as complete.
//!
//! Instances call each other at `POST /internal/shard` (postcard bodies),
//! forwarding the caller's key: the owner applies the key's scope too.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ledger_core::partition::Partitioner;
use ledger_core::Session;
use ledger_store::{Filter, HistoryEntry, Order, Past, Step, Store, StoreError};
use serde::{Deserialize, Serialize};

use crate::auth::Scope;
use crate::state::AppState;

/// One store operation, run by an owner over some of its partitions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Op {
    /// A session (as of a time).
    Get {
        id: String,
        as_of: Option<i64>,
    },
    /// A session's kept history.
    History {
        id: String,
    },
    /// A session's timeline (its history with the state after each event).
    Timeline {
        id: String,
    },
    /// Up to `limit` sessions matching `filter`, in `order`, strictly after
    /// the cursor `after`.
    Matching {
        filter: Filter,
        order: Order,
        after: Option<String>,
        limit: usize,
    },
    Count {
        filter: Filter,
    },
    /// Active sessions near their expiry matching `filter`.
    NearExpiration {
        filter: Filter,
    },
    /// Created (not pending) sessions.
    Created,
    /// Sessions ended (or past a deadline) in `(from, to]`, at most `limit`.
    EndedBetween {
        from: i64,
        to: i64,
        limit: usize,
    },
    /// The change feed of one partition after `token` (encoded; `None`:
    /// only the partition's head token), at most about `limit` items.
    Feed {
        partition: i32,
        token: Option<String>,
        limit: usize,
    },
}

/// One change-feed item as an owner sends it: the partition's token after
/// it, and the session (`None`: not one the key may see, or a reset).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeedWire {
    pub token: String,
    pub reset: bool,
    pub event_type: String,
    pub session: Option<Session>,
    /// Time to show the session at, Unix ms.
    pub at: i64,
}

/// An operation over `partitions`, at the caller's `now` (Unix ms).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardRequest {
    pub op: Op,
    pub partitions: Vec<i32>,
    pub now: i64,
}

/// An owner's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[allow(clippy::large_enum_variant)]
pub enum Answer {
    Past(Past),
    History(Option<Vec<HistoryEntry>>),
    Timeline(Option<(Option<ledger_store::HistoryBase>, Vec<Step>)>),
    Page {
        items: Vec<Session>,
        more: bool,
    },
    Count(u64),
    Ended(Vec<(String, i64)>),
    /// Feed items and the partition's token after them.
    Feed {
        items: Vec<FeedWire>,
        token: String,
    },
    /// It does not answer for these partitions (now).
    NotOwner(Vec<i32>),
    /// The key may not ask this.
    Forbidden,
    /// A cursor no instance issued.
    BadCursor,
    Failed(String),
}

/// Why a sharded read has no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardError {
    /// No instance answered for these partitions within the wait.
    Unavailable(Vec<i32>),
    Forbidden,
    BadCursor,
    Failed(String),
}

/// A live instance as the membership topic announces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub url: String,
    /// Partitions it answers for.
    pub ready: Vec<i32>,
    /// Durable next offset of each partition it stores.
    pub offsets: BTreeMap<i32, i64>,
}

/// Who answers for which partitions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Owner {
    Local,
    Remote(String),
}

/// Every partition's owner; `Err`: partitions nobody answers for now.
pub type Route = Result<BTreeMap<Owner, Vec<i32>>, Vec<i32>>;

/// The partition → owner map: this instance for what it has ready, else
/// the first live peer (by URL) announcing the partition ready.
pub fn route(partitions: i32, local: &BTreeSet<i32>, me: &str, peers: &[Peer]) -> Route {
    if partitions <= 0 {
        return Err(vec![]);
    }
    let mut out: BTreeMap<Owner, Vec<i32>> = BTreeMap::new();
    let mut missing = vec![];
    for p in 0..partitions {
        let owner = if local.contains(&p) {
            Some(Owner::Local)
        } else {
            peers
                .iter()
                .find(|m| m.url != me && m.ready.contains(&p))
                .map(|m| Owner::Remote(m.url.clone()))
        };
        match owner {
            Some(o) => out.entry(o).or_default().push(p),
            None => missing.push(p),
        }
    }
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(missing)
    }
}

/// Runs `req` on this instance's store for a caller with `scope`, if it
/// answers for every partition asked (`ready`).
pub fn answer(
    store: &Store,
    topic: &str,
    req: &ShardRequest,
    scope: &Scope,
    ready: &BTreeSet<i32>,
) -> Answer {
    let not_owned = not_in(&req.partitions, ready);
    if !not_owned.is_empty() {
        return Answer::NotOwner(not_owned);
    }
    match run(store, topic, req, scope) {
        Ok(a) => a,
        Err(StoreError::BadCursor) => Answer::BadCursor,
        Err(e) => Answer::Failed(e.to_string()),
    }
}

/// The partitions of `asked` not in `ready`.
fn not_in(asked: &[i32], ready: &BTreeSet<i32>) -> Vec<i32> {
    asked
        .iter()
        .filter(|p| !ready.contains(p))
        .copied()
        .collect()
}

/// [`answer`], then a second look at the partitions this instance answers
/// for: one it lost while reading makes the answer `NotOwner`, so a read
/// that overlapped a hand-over is asked again of the new owner.
pub fn answer_owned(
    store: &Store,
    topic: &str,
    req: &ShardRequest,
    scope: &Scope,
    ready: &(dyn Fn() -> BTreeSet<i32> + Send + Sync),
) -> Answer {
    let a = answer(store, topic, req, scope, &ready());
    let lost = not_in(&req.partitions, &ready());
    if lost.is_empty() {
        a
    } else {
        Answer::NotOwner(lost)
    }
}

fn run(
    store: &Store,
    topic: &str,
    req: &ShardRequest,
    scope: &Scope,
) -> Result<Answer, StoreError> {
    let parts = Some(req.partitions.as_slice());
    let visible = |s: &Session| scope.allows(s.user_id.as_deref(), s.workspace_id.as_deref());
    // The filter narrowed to the partitions and the scope (`None`: the
    // filter asks outside the scope, nothing matches).
    let narrow = |f: &Filter| -> Option<Filter> {
        let mut f = f.clone();
        f.partitions = Some(req.partitions.clone());
        scope.narrow(&mut f).then_some(f)
    };
    let visible_here = |id: &str| -> Result<bool, StoreError> {
        Ok(store.get_in(id, parts)?.is_some_and(|s| visible(&s)))
    };
    Ok(match &req.op {
        Op::Get { id, as_of } => {
            if !visible_here(id)? {
                return Ok(Answer::Past(Past::Missing));
            }
            Answer::Past(match as_of {
                None => store.get(id)?.map_or(Past::Missing, Past::Found),
                Some(t) => store.as_of(id, *t)?,
            })
        }
        Op::History { id } => Answer::History(if visible_here(id)? {
            Some(store.history(id)?)
        } else {
            None
        }),
        Op::Timeline { id } => Answer::Timeline(if visible_here(id)? {
            store.timeline(id)?
        } else {
            None
        }),
        Op::Matching {
            filter,
            order,
            after,
            limit,
        } => {
            let Some(f) = narrow(filter) else {
                return Ok(Answer::Page {
                    items: vec![],
                    more: false,
                });
            };
            let mut items = vec![];
            let mut more = false;
            for s in store.matching(&f, *order, after.as_deref(), req.now)? {
                if items.len() == *limit {
                    more = true;
                    break;
                }
                items.push(s?);
            }
            Answer::Page { items, more }
        }
        Op::Count { filter } => match narrow(filter) {
            None => Answer::Count(0),
            Some(f) => Answer::Count(store.count_in(&f, req.now, topic)?),
        },
        Op::NearExpiration { filter } => match narrow(filter) {
            None => Answer::Count(0),
            Some(f) => Answer::Count(store.count_near_expiration(&f, req.now)?),
        },
        Op::Created => {
            if *scope != Scope::Admin {
                return Ok(Answer::Forbidden);
            }
            let all = store.count_in(
                &Filter {
                    partitions: Some(req.partitions.clone()),
                    ..Filter::default()
                },
                req.now,
                topic,
            )?;
            let pending = store.count_in(
                &Filter {
                    status: Some(ledger_core::Status::Pending),
                    partitions: Some(req.partitions.clone()),
                    ..Filter::default()
                },
                req.now,
                topic,
            )?;
            Answer::Count(all.saturating_sub(pending))
        }
        Op::Feed {
            partition,
            token,
            limit,
        } => {
            let p = *partition;
            let mut tok = match token {
                Some(t) => match ledger_store::Token::decode(t) {
                    Some(t) => t,
                    None => return Ok(Answer::Failed(format!("not a feed token: {t}"))),
                },
                None => {
                    let mut head = store.feed_head(topic, req.now)?;
                    head.next.retain(|&q, _| q == p);
                    return Ok(Answer::Feed {
                        items: vec![],
                        token: head.encode(),
                    });
                }
            };
            let items = store
                .feed_read_in(topic, &mut tok, req.now, *limit, Some(p))?
                .into_iter()
                .map(|item| match item {
                    ledger_store::FeedItem::Reset { token } => FeedWire {
                        token: token.encode(),
                        reset: true,
                        event_type: String::new(),
                        session: None,
                        at: req.now,
                    },
                    ledger_store::FeedItem::Change {
                        token,
                        event_type,
                        session,
                        at,
                        ..
                    } => FeedWire {
                        token: token.encode(),
                        reset: false,
                        event_type: event_type.to_string(),
                        session: visible(&session).then_some(session),
                        at,
                    },
                })
                .collect();
            Answer::Feed {
                items,
                token: tok.encode(),
            }
        }
        Op::EndedBetween { from, to, limit } => {
            let mut out = vec![];
            for (id, at) in store.ended_between(*from, *to, usize::MAX)? {
                if out.len() >= *limit {
                    break;
                }
                if visible_here(&id)? {
                    out.push((id, at));
                }
            }
            Answer::Ended(out)
        }
    })
}

/// `POST /internal/shard`: an operation another instance routes here.
pub async fn handle(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let scope = match state.auth.check(&headers) {
        Ok(s) => s,
        Err(_) => return (StatusCode::UNAUTHORIZED, "invalid API key").into_response(),
    };
    let Ok(req) = postcard::from_bytes::<ShardRequest>(&body) else {
        return (StatusCode::BAD_REQUEST, "not a shard request").into_response();
    };
    let Some(shards) = state.shards.clone() else {
        return (StatusCode::NOT_FOUND, "not in sharded mode").into_response();
    };
    let store = state.store();
    let topic = state.topic.clone();
    let a = tokio::task::spawn_blocking(move || {
        answer_owned(&store, &topic, &req, &scope, shards.ready.as_ref())
    })
    .await
    .unwrap_or_else(|e| Answer::Failed(e.to_string()));
    match postcard::to_stdvec(&a) {
        Ok(b) => b.into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// The router and client of sharded reads.
pub struct Shards {
    /// This instance's advertised URL.
    pub me: String,
    pub topic: String,
    pub partitioner: Partitioner,
    /// Partitions this instance answers for.
    pub ready: Arc<dyn Fn() -> BTreeSet<i32> + Send + Sync>,
    /// The topic's partition count (0 while unknown).
    pub partitions: Arc<dyn Fn() -> i32 + Send + Sync>,
    /// Live peers (this instance may be among them).
    pub peers: Arc<dyn Fn() -> Vec<Peer> + Send + Sync>,
    /// Longest a request waits for partitions without an owner.
    pub wait: Duration,
    pub client: reqwest::Client,
}

/// How a request reaches the owners: the caller's key and clock.
#[derive(Clone)]
pub struct Caller {
    pub auth: Option<HeaderValue>,
    pub api_key: Option<HeaderValue>,
    pub scope: Scope,
    pub now: i64,
}

impl Shards {
    /// The current route.
    pub fn route(&self) -> Route {
        route(
            (self.partitions)(),
            &(self.ready)(),
            &self.me,
            &(self.peers)(),
        )
    }

    /// Every partition's next offset: this instance's durable ones for what
    /// it answers for, the owners' announced ones for the rest.
    pub fn offsets(&self, store: &Store) -> BTreeMap<i32, i64> {
        let mut out = BTreeMap::new();
        let ready = (self.ready)();
        for m in (self.peers)() {
            for (p, o) in &m.offsets {
                if m.ready.contains(p) && !ready.contains(p) {
                    out.insert(*p, *o);
                }
            }
        }
        if let Ok(local) = store.durable_offsets(&self.topic) {
            for (p, o) in local {
                if ready.contains(&p) {
                    out.insert(p, o);
                }
            }
        }
        out
    }

    /// Runs `req` on `owner`.
    async fn call(
        &self,
        store: &Store,
        owner: &Owner,
        req: ShardRequest,
        caller: &Caller,
    ) -> Answer {
        match owner {
            Owner::Local => {
                answer_owned(store, &self.topic, &req, &caller.scope, self.ready.as_ref())
            }
            Owner::Remote(url) => {
                let Ok(body) = postcard::to_stdvec(&req) else {
                    return Answer::Failed("encoding a shard request".into());
                };
                let mut r = self.client.post(format!("{url}/internal/shard")).body(body);
                if let Some(a) = &caller.auth {
                    r = r.header("authorization", a.clone());
                }
                if let Some(k) = &caller.api_key {
                    r = r.header("x-api-key", k.clone());
                }
                match r.send().await {
                    Ok(resp) if resp.status().is_success() => match resp.bytes().await {
                        Ok(b) => postcard::from_bytes(&b)
                            .unwrap_or_else(|e| Answer::Failed(format!("{url}: {e}"))),
                        Err(e) => Answer::NotOwner(req.partitions.clone()).tap(url, &e),
                    },
                    Ok(resp) => Answer::Failed(format!("{url} answered {}", resp.status())),
                    // Gone or unreachable: its partitions wait for a new owner.
                    Err(e) => Answer::NotOwner(req.partitions.clone()).tap(url, &e),
                }
            }
        }
    }

    /// Runs `op` once over every partition, on each owner over its own,
    /// waiting (bounded) for partitions without one; answers in route
    /// order.
    pub fn scatter(
        &self,
        store: &Store,
        op: Op,
        caller: &Caller,
    ) -> Result<Vec<Answer>, ShardError> {
        block(async {
            let deadline = Instant::now() + self.wait;
            loop {
                let missing = match self.route() {
                    Ok(route) => {
                        let calls = route.iter().map(|(owner, parts)| {
                            let req = ShardRequest {
                                op: op.clone(),
                                partitions: parts.clone(),
                                now: caller.now,
                            };
                            self.call(store, owner, req, caller)
                        });
                        let answers = futures_util::future::join_all(calls).await;
                        match settle(answers) {
                            Ok(a) => return Ok(a),
                            Err(Retry(missing)) => missing,
                        }
                    }
                    Err(missing) => missing,
                };
                if Instant::now() >= deadline {
                    return Err(ShardError::Unavailable(missing));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    }

    /// A by-id operation: the owner of the id's partition first; if it has
    /// no such session, every other owner.
    pub fn by_id(
        &self,
        store: &Store,
        id: &str,
        op: Op,
        caller: &Caller,
    ) -> Result<Answer, ShardError> {
        let home = self
            .partitioner
            .partition(id.as_bytes(), (self.partitions)().max(1));
        let first = block(async {
            let deadline = Instant::now() + self.wait;
            loop {
                let owner = self
                    .route_partial()
                    .into_iter()
                    .find(|(_, ps)| ps.contains(&home))
                    .map(|(o, _)| o);
                if let Some(owner) = owner {
                    let req = ShardRequest {
                        op: op.clone(),
                        partitions: vec![home],
                        now: caller.now,
                    };
                    match self.call(store, &owner, req, caller).await {
                        Answer::NotOwner(_) => {}
                        a => return Ok(a),
                    }
                }
                if Instant::now() >= deadline {
                    return Err(ShardError::Unavailable(vec![home]));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })?;
        if !absent(&first) {
            return check(first);
        }
        // Not where the partitioner says: any other partition's owner.
        let rest = self.scatter(store, op, caller)?;
        Ok(rest.into_iter().find(|a| !absent(a)).unwrap_or(first))
    }

    /// Runs `op` once on the owner of `partition` now (`NotOwner` when it
    /// has none).
    pub async fn on_partition(
        &self,
        store: &Store,
        partition: i32,
        op: Op,
        caller: &Caller,
    ) -> Answer {
        let owner = self
            .route_partial()
            .into_iter()
            .find(|(_, ps)| ps.contains(&partition))
            .map(|(o, _)| o);
        let req = ShardRequest {
            op,
            partitions: vec![partition],
            now: caller.now,
        };
        match owner {
            Some(o) => self.call(store, &o, req, caller).await,
            None => Answer::NotOwner(vec![partition]),
        }
    }

    /// The owners of the partitions that have one.
    fn route_partial(&self) -> BTreeMap<Owner, Vec<i32>> {
        let (ready, peers) = ((self.ready)(), (self.peers)());
        let mut out: BTreeMap<Owner, Vec<i32>> = BTreeMap::new();
        for p in 0..(self.partitions)() {
            if ready.contains(&p) {
                out.entry(Owner::Local).or_default().push(p);
            } else if let Some(m) = peers
                .iter()
                .find(|m| m.url != self.me && m.ready.contains(&p))
            {
                out.entry(Owner::Remote(m.url.clone())).or_default().push(p);
            }
        }
        out
    }

    /// Runs `req` on `owner`, and while it does not answer for the
    /// partitions, on whichever one owner holds them all now, until
    /// `deadline`.
    async fn call_until(
        &self,
        store: &Store,
        mut owner: Owner,
        req: ShardRequest,
        caller: &Caller,
        deadline: Instant,
    ) -> Result<Answer, ShardError> {
        loop {
            let a = self.call(store, &owner, req.clone(), caller).await;
            let Answer::NotOwner(_) = a else {
                return Ok(a);
            };
            if Instant::now() >= deadline {
                return Err(ShardError::Unavailable(req.partitions.clone()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            // The partitions may have moved to one other owner.
            if let Some((o, _)) = self
                .route_partial()
                .into_iter()
                .find(|(_, ps)| req.partitions.iter().all(|p| ps.contains(p)))
            {
                owner = o;
            }
        }
    }

    /// Sessions matching `filter` in `order` after `after`, merged from
    /// every owner, fetched `first` at a time at first.
    pub fn matching(
        self: &Arc<Self>,
        store: &Store,
        filter: &Filter,
        order: Order,
        after: Option<&str>,
        first: usize,
        caller: &Caller,
    ) -> Result<Merged, ShardError> {
        let route = self.wait_route()?;
        let sources = route
            .into_iter()
            .map(|(owner, partitions)| Source {
                owner,
                partitions,
                buf: VecDeque::new(),
                more: true,
                after: after.map(str::to_string),
                page: first.clamp(1, 2_000),
            })
            .collect();
        Ok(Merged {
            shards: self.clone(),
            store: store.clone(),
            filter: filter.clone(),
            order,
            caller: caller.clone(),
            sources,
            failed: false,
        })
    }

    /// A full route, waiting (bounded) for partitions without an owner.
    fn wait_route(&self) -> Result<BTreeMap<Owner, Vec<i32>>, ShardError> {
        block(async {
            let deadline = Instant::now() + self.wait;
            loop {
                match self.route() {
                    Ok(r) => return Ok(r),
                    Err(missing) if Instant::now() >= deadline => {
                        return Err(ShardError::Unavailable(missing))
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        })
    }
}

trait Tap {
    fn tap(self, url: &str, e: &dyn std::fmt::Display) -> Self;
}

impl Tap for Answer {
    fn tap(self, url: &str, e: &dyn std::fmt::Display) -> Self {
        tracing::debug!(%url, error = %e, "shard request failed");
        self
    }
}

/// Partitions to ask again for.
struct Retry(Vec<i32>);

/// Answers, unless an owner did not answer for its partitions.
fn settle(answers: Vec<Answer>) -> Result<Vec<Answer>, Retry> {
    let missing: Vec<i32> = answers
        .iter()
        .flat_map(|a| match a {
            Answer::NotOwner(ps) => ps.clone(),
            _ => vec![],
        })
        .collect();
    if missing.is_empty() {
        Ok(answers)
    } else {
        Err(Retry(missing))
    }
}

/// Whether a by-id answer says "not here".
fn absent(a: &Answer) -> bool {
    matches!(
        a,
        Answer::Past(Past::Missing) | Answer::History(None) | Answer::Timeline(None)
    )
}

/// An answer, or the error it carries.
pub fn check(a: Answer) -> Result<Answer, ShardError> {
    match a {
        Answer::Forbidden => Err(ShardError::Forbidden),
        Answer::BadCursor => Err(ShardError::BadCursor),
        Answer::Failed(e) => Err(ShardError::Failed(e)),
        Answer::NotOwner(ps) => Err(ShardError::Unavailable(ps)),
        a => Ok(a),
    }
}

/// Runs a future to completion from a request handler's synchronous code.
fn block<F: std::future::Future>(f: F) -> F::Output {
    let handle = tokio::runtime::Handle::current();
    tokio::task::block_in_place(|| handle.block_on(f))
}

/// One owner's part of a merged list.
struct Source {
    owner: Owner,
    partitions: Vec<i32>,
    buf: VecDeque<Session>,
    more: bool,
    /// Cursor after the last session fetched from it.
    after: Option<String>,
    page: usize,
}

/// A list merged from every owner, in order.
pub struct Merged {
    shards: Arc<Shards>,
    store: Store,
    filter: Filter,
    order: Order,
    caller: Caller,
    sources: Vec<Source>,
    failed: bool,
}

impl Merged {
    /// Fills every empty source that has more.
    fn fill(&mut self) -> Result<(), ShardError> {
        let need: Vec<usize> = (0..self.sources.len())
            .filter(|&i| self.sources[i].buf.is_empty() && self.sources[i].more)
            .collect();
        if need.is_empty() {
            return Ok(());
        }
        let shards = self.shards.clone();
        let (store, caller) = (self.store.clone(), self.caller.clone());
        let reqs: Vec<(usize, Owner, ShardRequest)> = need
            .iter()
            .map(|&i| {
                let s = &self.sources[i];
                (
                    i,
                    s.owner.clone(),
                    ShardRequest {
                        op: Op::Matching {
                            filter: self.filter.clone(),
                            order: self.order,
                            after: s.after.clone(),
                            limit: s.page,
                        },
                        partitions: s.partitions.clone(),
                        now: caller.now,
                    },
                )
            })
            .collect();
        let answers = block(async {
            let deadline = Instant::now() + shards.wait;
            let calls = reqs.into_iter().map(|(i, owner, req)| {
                let (shards, store, caller) = (&shards, &store, &caller);
                async move {
                    (
                        i,
                        shards.call_until(store, owner, req, caller, deadline).await,
                    )
                }
            });
            futures_util::future::join_all(calls).await
        });
        for (i, a) in answers {
            match check(a?)? {
                Answer::Page { items, more } => {
                    let s = &mut self.sources[i];
                    s.more = more;
                    if let Some(last) = items.last() {
                        s.after = Some(ledger_store::encode_cursor(last.sort_at(), &last.id));
                    }
                    s.buf.extend(items);
                    s.page = (s.page * 2).min(2_000);
                }
                other => return Err(ShardError::Failed(format!("unexpected answer {other:?}"))),
            }
        }
        Ok(())
    }
}

impl Iterator for Merged {
    type Item = Result<Session, ShardError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if let Err(e) = self.fill() {
            self.failed = true;
            return Some(Err(e));
        }
        let key = |s: &Session| (s.sort_at(), s.id.clone());
        let best = self
            .sources
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.buf.front().map(|x| (i, key(x))))
            .reduce(|a, b| {
                let take_b = match self.order {
                    Order::NewestFirst => b.1 > a.1,
                    Order::OldestFirst => b.1 < a.1,
                };
                if take_b {
                    b
                } else {
                    a
                }
            })?;
        self.sources[best.0].buf.pop_front().map(Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(url: &str, ready: &[i32]) -> Peer {
        Peer {
            url: url.into(),
            ready: ready.to_vec(),
            offsets: BTreeMap::new(),
        }
    }

    #[test]
    fn every_partition_gets_one_owner_or_the_route_fails() {
        let local = BTreeSet::from([0, 1]);
        let peers = [peer("http://b", &[2, 3]), peer("http://c", &[3, 4, 5])];
        let r = route(6, &local, "http://a", &peers).unwrap();
        assert_eq!(r[&Owner::Local], vec![0, 1]);
        assert_eq!(r[&Owner::Remote("http://b".into())], vec![2, 3]);
        assert_eq!(r[&Owner::Remote("http://c".into())], vec![4, 5]);
        assert_eq!(route(6, &local, "http://a", &peers[..1]), Err(vec![4, 5]));
        // Its own stale announcement does not make this instance an owner.
        assert_eq!(
            route(
                2,
                &BTreeSet::new(),
                "http://a",
                &[peer("http://a", &[0, 1])]
            ),
            Err(vec![0, 1])
        );
        assert_eq!(route(0, &local, "http://a", &peers), Err(vec![]));
    }

    #[test]
    fn an_owner_refuses_partitions_it_does_not_answer_for() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Default::default()).unwrap();
        let req = ShardRequest {
            op: Op::Count {
                filter: Filter::default(),
            },
            partitions: vec![1, 2],
            now: 0,
        };
        let a = answer(&store, "t", &req, &Scope::Admin, &BTreeSet::from([1]));
        assert!(matches!(a, Answer::NotOwner(ps) if ps == vec![2]));
        let a = answer(&store, "t", &req, &Scope::Admin, &BTreeSet::from([1, 2]));
        assert!(matches!(a, Answer::Count(0)));
    }
}
