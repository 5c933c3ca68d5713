//! Every list filter and page boundary, over HTTP, against an in-memory
//! recomputation (fold + filter + sort) over 12,000 generated sessions:
//! no item missing, duplicated or out of order across pages, for offset,
//! cursor and orq's `lastId` paging alike.

use std::collections::BTreeMap;

mod support;

use ledger_api::Auth;
use ledger_core::event::SessionType;
use ledger_core::{Defaults, Session, Status};
use ledger_gen::{generate, GenConfig};
use ledger_store::Store;
use serde_json::{json, Value};

const START: i64 = 1_795_000_000_000;
/// Late enough that many sessions are expired or abandoned by read-time
/// status alone (no terminal event), which the lists must merge in.
const NOW: i64 = START + 90 * 60_000;
const SESSIONS: usize = 12_000;

struct World {
    server: support::Served,
    /// Every session, newest first (creation time, then id, descending).
    sessions: Vec<Session>,
    _dir: tempfile::TempDir,
}

fn world() -> World {
    let events = generate(GenConfig {
        seed: 77,
        sessions: SESSIONS,
        events: 60_000,
        users: 400,
        clients: 40,
        agents: 12,
        workspaces: 6,
        start_ms: START,
        duplicate_rate: 0.02,
        out_of_order_rate: 0.05,
        block: 2_000,
        ..Default::default()
    });
    let d = Defaults::default();
    let folded = ledger_testkit::fold(&events);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), d).unwrap();
    support::load(&store, "t", events);
    let mut sessions: Vec<Session> = folded.into_values().collect();
    sessions.sort_by(|a, b| (b.sort_at(), &b.id).cmp(&(a.sort_at(), &a.id)));
    assert_eq!(sessions.len(), SESSIONS);
    World {
        server: support::serve_at(store, "t", Auth::disabled(), NOW),
        sessions,
        _dir: dir,
    }
}

/// Query parameters of a filter, in each view's own names.
#[derive(Clone, Default, Debug)]
struct F {
    user: Option<String>,
    client: Option<String>,
    agent: Option<String>,
    workspace: Option<String>,
    status: Option<Status>,
}

impl F {
    fn user(u: impl Into<String>) -> Self {
        Self {
            user: Some(u.into()),
            ..Default::default()
        }
    }

    fn client(c: String) -> Self {
        Self {
            client: Some(c),
            ..Default::default()
        }
    }

    fn agent(a: String) -> Self {
        Self {
            agent: Some(a),
            ..Default::default()
        }
    }

    fn workspace(w: String) -> Self {
        Self {
            workspace: Some(w),
            ..Default::default()
        }
    }

    fn status(self, st: Status) -> Self {
        Self {
            status: Some(st),
            ..self
        }
    }

    /// The recomputation: the same filter applied in memory.
    fn expect<'a>(&self, all: &'a [Session]) -> Vec<&'a str> {
        let eq = |w: &Option<String>, h: &Option<String>| w.is_none() || w == h;
        all.iter()
            .filter(|s| {
                eq(&self.user, &s.user_id)
                    && eq(&self.client, &s.client_id)
                    && eq(&self.agent, &s.agent_id)
                    && eq(&self.workspace, &s.workspace_id)
                    && self.status.is_none_or(|st| s.status_at(NOW) == st)
            })
            .map(|s| s.id.as_str())
            .collect()
    }

    fn clerk_query(&self) -> String {
        let mut q = vec![];
        for (k, v) in [
            ("user_id", &self.user),
            ("client_id", &self.client),
            ("agent_id", &self.agent),
            ("workspace_id", &self.workspace),
        ] {
            if let Some(v) = v {
                q.push(format!("{k}={v}"));
            }
        }
        if let Some(s) = self.status {
            q.push(format!("status={}", s.as_str()));
        }
        q.join("&")
    }

    fn orq_filters(&self) -> Vec<Value> {
        let mut out = vec![];
        for (path, v) in [
            ("/user_id", &self.user),
            ("/client_id", &self.client),
            ("/agent_id", &self.agent),
            ("/workspace_id", &self.workspace),
        ] {
            if let Some(v) = v {
                out.push(json!({"path": path, "operator": "is", "value": v}));
            }
        }
        if let Some(s) = self.status {
            out.push(json!({"path": "/status", "operator": "is", "value": s.as_str()}));
        }
        out
    }
}

fn get(url: &str) -> (Value, Option<String>) {
    let r = reqwest::blocking::get(url).unwrap();
    assert_eq!(r.status().as_u16(), 200, "{url}");
    let cursor = r
        .headers()
        .get("x-next-cursor")
        .map(|v| v.to_str().unwrap().to_string());
    (r.json().unwrap(), cursor)
}

fn ids(items: &Value, key: &str) -> Vec<String> {
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s[key].as_str().unwrap().to_string())
        .collect()
}

/// Follows a list's `x-next-cursor` from `url` (which has a query string) to
/// its end: the ids `items` reads off each page, and the pages read.
fn walk_cursor(url: &str, items: impl Fn(&Value) -> Vec<String>) -> (Vec<String>, Vec<Value>) {
    let (mut got, mut pages) = (vec![], vec![]);
    let mut cursor: Option<String> = None;
    loop {
        let c = cursor
            .as_ref()
            .map(|c| format!("&cursor={c}"))
            .unwrap_or_default();
        let (body, next) = get(&format!("{url}{c}"));
        got.extend(items(&body));
        pages.push(body);
        match next {
            Some(n) => cursor = Some(n),
            None => return (got, pages),
        }
    }
}

/// Clerk's list by offset pages and by cursor pages, checked against `want`.
fn clerk_sweep(w: &World, f: &F, limit: usize, want: &[&str]) -> usize {
    let q = f.clerk_query();
    let mut requests = 0;
    // Offset paging, with the total of `paginated=true`.
    let mut got = vec![];
    loop {
        let url = format!(
            "{}/v1/sessions?{q}&limit={limit}&offset={}&paginated=true",
            w.server.base,
            got.len()
        );
        let (body, _) = get(&url);
        requests += 1;
        assert_eq!(body["total_count"], want.len(), "{url}");
        let page = ids(&body["data"], "id");
        assert!(page.len() <= limit);
        let done = page.len() < limit;
        got.extend(page);
        if done {
            break;
        }
    }
    assert_eq!(got, want, "offset paging of {f:?} by {limit}");
    // Cursor paging.
    let url = format!("{}/v1/sessions?{q}&limit={limit}", w.server.base);
    let (got, pages) = walk_cursor(&url, |b| ids(b, "id"));
    requests += pages.len();
    assert_eq!(got, want, "cursor paging of {f:?} by {limit}");
    requests
}

fn pick<'a>(
    w: &'a World,
    field: impl Fn(&'a Session) -> &'a Option<String>,
    n: usize,
) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    for s in &w.sessions {
        if let Some(v) = field(s) {
            seen.insert(v.clone());
        }
    }
    seen.into_iter().take(n).collect()
}

#[test]
fn every_filter_and_page_boundary_matches_an_in_memory_recomputation() {
    let w = world();
    let mut filters = vec![(F::default(), 500)];
    for st in Status::ALL.into_iter().filter(|s| *s != Status::Pending) {
        filters.push((F::default().status(st), 97));
    }
    for u in pick(&w, |s| &s.user_id, 3) {
        filters.push((F::user(u.clone()), 3));
        filters.push((F::user(u).status(Status::Expired), 2));
    }
    for c in pick(&w, |s| &s.client_id, 2) {
        filters.push((F::client(c), 50));
    }
    for a in pick(&w, |s| &s.agent_id, 2) {
        filters.push((F::agent(a).status(Status::Active), 40));
    }
    for ws in pick(&w, |s| &s.workspace_id, 2) {
        filters.push((F::workspace(ws), 211));
    }
    let mut statuses = BTreeMap::new();
    for s in &w.sessions {
        *statuses.entry(s.status_at(NOW).as_str()).or_insert(0) += 1;
    }
    eprintln!("read-time statuses of the {SESSIONS} sessions: {statuses:?}");
    assert!(statuses.len() >= 4, "a mix of statuses: {statuses:?}");
    let mut requests = 0;
    for (f, limit) in &filters {
        let want = f.expect(&w.sessions);
        requests += clerk_sweep(&w, f, *limit, &want);
    }
    eprintln!("{} filters, {requests} Clerk requests", filters.len());
}

#[test]
fn orq_last_id_paging_matches_the_recomputation() {
    let w = world();
    let client = reqwest::blocking::Client::new();
    let users = pick(&w, |s| &s.user_id, 2);
    let filters = [
        F::default(),
        F::default().status(Status::Active),
        F::default().status(Status::Abandoned),
        F::user(users[0].clone()),
        F::user(users[1].clone()).status(Status::Expired),
    ];
    for f in &filters {
        let want = f.expect(&w.sessions);
        let mut got: Vec<String> = vec![];
        loop {
            let mut pagination = json!({"limit": 200});
            if let Some(last) = got.last() {
                pagination["lastId"] = json!(last);
            }
            let body = json!({"pagination": pagination, "query": {"operator": "and", "filters": f.orq_filters()}});
            let r = client
                .post(format!("{}/v2/traces/sessions/query", w.server.base))
                .json(&body)
                .send()
                .unwrap();
            assert_eq!(r.status().as_u16(), 200, "{body}");
            let v: Value = r.json().unwrap();
            let page = ids(&v["data"], "_id");
            let more = v["has_more"].as_bool().unwrap();
            assert_eq!(
                more,
                got.len() + page.len() < want.len(),
                "has_more of {f:?}"
            );
            got.extend(page);
            if !more {
                break;
            }
        }
        assert_eq!(got, want, "orq paging of {f:?}");
    }
}

#[test]
fn wingspan_and_eliza_lists_match_the_recomputation() {
    let w = world();
    let mut wingspan_sessions = 0;
    for u in pick(&w, |s| &s.user_id, 6) {
        let f = F::user(u.clone());
        // Wingspan's API-session list holds API sessions only.
        let want: Vec<&str> = f
            .expect(&w.sessions)
            .into_iter()
            .filter(|id| {
                w.sessions
                    .iter()
                    .any(|s| s.id == *id && s.session_type == SessionType::API)
            })
            .collect();
        wingspan_sessions += want.len();
        let url = format!("{}/users/session/api?userId={u}&limit=4", w.server.base);
        let (got, _) = walk_cursor(&url, |b| ids(b, "sessionId"));
        assert_eq!(got, want, "Wingspan list of {u}");
    }
    assert!(
        wingspan_sessions > 8,
        "API sessions to page through: {wingspan_sessions}"
    );
    // elizaOS lists live sessions only.
    let live = F::default().status(Status::Active);
    let want = live.expect(&w.sessions);
    let url = format!("{}/api/messaging/sessions?limit=333", w.server.base);
    let (got, pages) = walk_cursor(&url, |b| ids(&b["sessions"], "sessionId"));
    let total = pages.first().map(|b| b["total"].clone());
    assert_eq!(got, want, "elizaOS live sessions");
    assert_eq!(total, Some(json!(want.len())), "elizaOS total");
}
