"""orq.ai's Python SDK 3.x (orq-ai-sdk 3.4.0rc37) reading trace sessions.

Usage: python orq3_sdk_test.py BASE_URL ADMIN_KEY USER_KEY USER_ID
(USER_KEY is an API key scoped to the user USER_ID.)

Drives, unchanged: `sessions.list` (POST /v2/traces/sessions/query),
`post_v2_traces_sessions_count` (POST /v2/traces/sessions/count),
`sessions.get` (GET /v2/traces/sessions/{id}) and the write methods
(`create`, `update`, `delete`: 405, the ledger is read-only). The SDK
validates every body against its pydantic models; the values are compared
with the raw JSON of the same request, with the Clerk view of the same
store, and with what the filters promise.
"""

import sys
from collections import Counter

from checks import Checks, Raw, all_refused, orq_by_id, orq_raw_fields, orq_sdk_fields, ts
from orq_ai_sdk import Orq, models

BASE, ADMIN, USER_KEY, USER = sys.argv[1:5]
check = Checks("orq-ai-sdk 3.x")
raw = Raw(BASE, ADMIN)
orq = Orq(api_key=ADMIN, server_url=BASE)



def fields(d):
    """An SDK session's values, keyed by wire name."""
    return orq_sdk_fields(d, workspace=True)


def raw_fields(r):
    """The same values read from raw JSON."""
    return orq_raw_fields(r, workspace=True)


def walk(client, filters=(), query=None, sort=None, limit=200):
    """Every session the body selects, paged with `lastId` through the SDK."""
    items, last = [], None
    while True:
        pg = {"limit": limit}
        if last:
            pg["lastId"] = last
        req = {"filters": list(filters), "pagination": pg}
        if query:
            req["query"] = query
        if sort:
            req["sortingProps"] = sort
        res = client.sessions.list(request=req)
        check(len(res.data) <= limit and res.object == "list", "page size")
        items += res.data
        if not res.has_more:
            return items
        last = res.data[-1].id


def count(client, filters=(), query=None):
    req = {"filters": list(filters)}
    if query:
        req["query"] = query
    return client.post_v2_traces_sessions_count(request=req).count


def ids(items):
    return [d.id for d in items]


# The first page through the SDK equals the raw JSON of the same request, and
# the SDK's own model accepts that JSON.
body = {"filters": [], "pagination": {"limit": 100}}
check.same(
    "first page equals the raw JSON",
    lambda: (
        [fields(d) for d in orq.sessions.list(request=body).data],
        [raw_fields(r) for r in raw.post("/v2/traces/sessions/query", body)["data"]],
    ),
)
models.ListSessionsResponseBody.model_validate(raw.post("/v2/traces/sessions/query", body))
check(True, "raw page validates against ListSessionsResponseBody")

everything = walk(orq)
all_ids = ids(everything)
total = len(all_ids)
check(total >= 1000 and len(set(all_ids)) == total, f"{total} distinct sessions")
for d in everything:
    check(abs(d.billing.total_cost - d.billing.input_cost - d.billing.output_cost) < 1e-6, "total_cost")
    check(d.usage.total_tokens == d.usage.prompt_tokens + d.usage.completion_tokens, "total_tokens")
    check(d.duration >= 0 and d.started_at <= d.updated_at, "duration and times")
started = [d.started_at for d in everything]
check(started == sorted(started, reverse=True), "newest first")

# The count is the list's length and Clerk's total over the same store; the
# order is Clerk's (newest first by creation).
check(count(orq) == total, "count equals the listed total")
check(raw.get("/v1/sessions?paginated=true&limit=1")["total_count"] == total, "Clerk's total_count")
clerk_ids = []
for off in range(0, total, 500):
    clerk_ids += [s["id"] for s in raw.get(f"/v1/sessions?limit=500&offset={off}")]
check(clerk_ids == all_ids, "same sessions, same order as Clerk's list")

# Sorting and the three ways to page.
asc = walk(orq, sort=[{"key": "started_at", "direction": "asc"}])
check(ids(asc) == all_ids[::-1], "started_at asc is the reverse order")
page3 = orq.sessions.list(request={"filters": [], "pagination": {"page": 3, "limit": 50}})
check(ids(page3.data) == all_ids[100:150] and page3.has_more, "page 3 of 50")
after = orq.sessions.list(request={"filters": [], "pagination": {"limit": 50, "lastId": all_ids[49]}})
check(ids(after.data) == all_ids[50:100], "lastId continues after the id")
before = orq.sessions.list(request={"filters": [], "pagination": {"limit": 50, "firstId": all_ids[50]}})
check(ids(before.data) == all_ids[0:50], "firstId gives the page before")

# Filters filter: each selects exactly the sessions whose values satisfy it.
ws = Counter(d.workspace_id for d in everything).most_common(2)
tags = [t for t, _ in Counter(t for d in everything for t in d.tags).most_common(2)]
one = everything[17]
cases = [
    (
        "workspace_id equals",
        [{"type": "string", "operator": "equals", "value": ws[0][0], "path": "/workspace_id"}],
        None,
        lambda d: d.workspace_id == ws[0][0],
    ),
    (
        "external_id contains",
        [{"type": "string", "operator": "contains", "value": "ext-1", "path": "/external_id"}],
        None,
        lambda d: "ext-1" in d.external_id,
    ),
    (
        "tags in",
        [{"type": "string_array", "operator": "in", "values": tags, "path": "/tags"}],
        None,
        lambda d: any(t in d.tags for t in tags),
    ),
    (
        "search",
        [{"type": "search", "value": one.external_id.upper(), "searchPaths": ["/external_id"]}],
        None,
        lambda d: one.external_id.lower() in d.external_id.lower(),
    ),
    (
        "id",
        [{"type": "id", "id": one.id, "path": "/_id"}],
        None,
        lambda d: d.id == one.id,
    ),
    (
        "query.filters is_not (or) with a top-level filter",
        [{"type": "string", "operator": "equals", "value": ws[1][0], "path": "/workspace_id"}],
        {
            "operator": "or",
            "filters": [
                {"operator": "is_not", "type": "string", "options": [], "name": "Tags", "path": "/tags", "value": tags[0]}
            ],
        },
        lambda d: d.workspace_id == ws[1][0] and tags[0] not in d.tags,
    ),
    (
        "query.search",
        [],
        {"operator": "and", "search": tags[1].upper()},
        lambda d: any(tags[1].lower() in x.lower() for x in [d.id, d.external_id, *d.tags]),
    ),
]
for what, filters, query, pred in cases:
    want = [d.id for d in everything if pred(d)]
    check(0 < len(want) < total, f"{what} is a real selection ({len(want)})")
    got = walk(orq, filters, query, limit=150)
    check(ids(got) == want, f"{what}: the matching sessions, in order")
    check(count(orq, filters, query) == len(want), f"{what}: count")

# One session equals its list item and the raw JSON.
get_one = lambda i: orq.sessions.get(session_id=i)  # noqa: E731
orq_by_id(check, everything, get_one, lambda i: raw.get(f"/v2/traces/sessions/{i}"), fields, raw_fields)

# Errors raise the SDK's own types.
try:
    orq.sessions.get(session_id="sess_does_not_exist")
    check(False, "an unknown id must raise")
except models.HonoAPIError as e:
    status, body = raw.call("GET", "/v2/traces/sessions/sess_does_not_exist")
    check(status == 404 and e.data.code == body["code"] == "not_found", "404 HonoAPIError")
    check("sess_does_not_exist" in e.data.message, "404 message names the id")
# (An SDK object closes its HTTP client when collected: keep a reference.)
wrong = Orq(api_key="wrong-key", server_url=BASE)
try:
    wrong.sessions.list(request={"filters": []})
    check(False, "a wrong key must raise")
except models.APIError as e:
    check(e.status_code == 401 and '"code"' in e.body, "401 APIError in orq's envelope")
try:
    orq.sessions.list(request={"filters": [{"type": "string", "operator": "equals", "value": "x", "path": "nope"}]})
    check(False, "a bad filter path must raise")
except models.APIError as e:
    check(e.status_code == 400 and "must start with" in e.body, "400 for a bad filter path")

# A key scoped to one user: its sessions only, and other tenants' ids are unknown.
mine = Orq(api_key=USER_KEY, server_url=BASE)
own = walk(mine, limit=5)
clerk_own = [s["id"] for s in raw.get(f"/v1/sessions?user_id={USER}&limit=500")]
check(own and ids(own) == clerk_own, "scoped key lists exactly its user's sessions")
check(count(mine) == len(own), "scoped count")
foreign = next(i for i in all_ids if i not in set(clerk_own))
for field in ["lastId", "firstId"]:
    errors = []
    for pid in [foreign, "sess_does_not_exist"]:
        try:
            mine.sessions.list(request={"filters": [], "pagination": {"limit": 5, field: pid}})
            errors.append(None)
        except models.APIError as e:
            errors.append((e.status_code, e.body.replace(pid, "ID")))
    check(errors[0] is not None and errors[0] == errors[1], f"{field} of another tenant is an unknown id: {errors}")
try:
    count(mine, [{"type": "string", "operator": "equals", "value": "user_other", "path": "/user_id"}])
    check(False, "asking for another user must raise")
except models.APIError as e:
    check(e.status_code == 403, "403 outside the key's scope")

# Writes are refused: 405, the message says where writes go, nothing changes.
before_tags = orq.sessions.get(session_id=one.id).tags
writes = [
    lambda: orq.sessions.create(
        request={
            "external_id": "x",
            "duration": 1,
            "contact_ids": [],
            "billing": {"input_cost": 0, "output_cost": 0, "total_cost": 0},
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
            "traces_count": 0,
            "tags": [],
        }
    ),
    lambda: orq.sessions.update(session_id=one.id, tags=["written"]),
    lambda: orq.sessions.delete(session_id=one.id),
]
all_refused(
    check, writes, models.APIError,
    lambda e: e.status_code == 405 and "read-only" in e.body and "Kafka topic" in e.body, "405 read-only",
)
check(orq.sessions.get(session_id=one.id).tags == before_tags, "nothing was written")

check.done(f"{total} sessions, {len(own)} of the scoped user")
