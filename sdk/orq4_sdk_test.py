"""orq.ai's Python SDK 4.x (orq-ai-sdk 4.17.13) reading sessions ("threads").

Usage: python orq4_sdk_test.py BASE_URL ADMIN_KEY USER_KEY USER_ID
(USER_KEY is an API key scoped to the user USER_ID.)

Drives, unchanged: `sessions.list` (POST /v2/sessions/query),
`sessions.get_count` (POST /v2/sessions/count), `sessions.list_tags`
(GET /v2/sessions/tags), `sessions.get` (GET /v2/sessions/{id}) and the
write methods (`create`, `update`, `delete`: 405). The SDK validates every
body against its pydantic models (`Thread`, `ListThreadsResponse`,
`GetThreadCountResponse`, `ErrorResponseData`); the values are compared with
the raw JSON of the same request, with the 3.x routes over the same store,
and with what the filters promise.
"""

import sys
from collections import Counter
from datetime import datetime, timedelta, timezone

from checks import Checks, Raw, all_refused, orq_by_id, orq_raw_fields, orq_sdk_fields, ts
from orq_ai_sdk import Orq, models

BASE, ADMIN, USER_KEY, USER = sys.argv[1:5]
check = Checks("orq-ai-sdk 4.x")
raw = Raw(BASE, ADMIN)
orq = Orq(api_key=ADMIN, server_url=BASE)
ALL = {"interval": "SESSION_INTERVAL_ALL_TIME"}



def fields(t):
    """An SDK thread's values, keyed by wire name."""
    return orq_sdk_fields(t, workspace=False)


def raw_fields(r):
    """The same values read from raw JSON."""
    return orq_raw_fields(r, workspace=False)


def walk(client, filters, limit=200):
    """Every thread the filters select, page by page through the SDK."""
    items = []
    for page in range(1, 10_000):
        res = client.sessions.list(filters=filters, limit=limit, page=page)
        check(len(res.data) <= limit and res.object == "list", "page size")
        items += res.data
        if not res.has_more:
            return items
    raise AssertionError("unbounded paging")


def ids(items):
    return [t.id for t in items]


# The first page through the SDK equals the raw JSON of the same request and
# the 3.x route's page over the same store (without `workspace_id`).
body = {"filters": ALL, "limit": 100}
check.same(
    "first page equals the raw JSON",
    lambda: (
        [fields(t) for t in orq.sessions.list(filters=ALL, limit=100).data],
        [raw_fields(r) for r in raw.post("/v2/sessions/query", body)["data"]],
    ),
)
check.same(
    "first page equals the 3.x route's",
    lambda: (
        [raw_fields(r) for r in raw.post("/v2/sessions/query", body)["data"]],
        [raw_fields(r) for r in raw.post("/v2/traces/sessions/query", {"pagination": {"limit": 100}})["data"]],
    ),
)
page = raw.post("/v2/sessions/query", body)
models.ListThreadsResponse.model_validate(page)
check(all("workspace_id" not in t for t in page["data"]), "threads carry no workspace_id")

everything = walk(orq, ALL)
all_ids = ids(everything)
total = len(all_ids)
check(total >= 1000 and len(set(all_ids)) == total, f"{total} distinct threads")
started = [t.started_at for t in everything]
check(started == sorted(started, reverse=True), "newest first")
for t in everything:
    check(t.usage.total_tokens == t.usage.prompt_tokens + t.usage.completion_tokens, "total_tokens")
    check(t.duration >= 0 and t.started_at <= t.updated_at, "duration and times")
check(orq.sessions.get_count(filters=ALL).count == total, "count equals the listed total")
check(raw.post("/v2/traces/sessions/count", {})["count"] == total, "equals the 3.x count")
v3 = []
while True:
    pg = {"limit": 200, **({"lastId": v3[-1]} if v3 else {})}
    res = raw.post("/v2/traces/sessions/query", {"pagination": pg})
    v3 += [r["_id"] for r in res["data"]]
    if not res["has_more"]:
        break
check(v3 == all_ids, "same threads, same order as the 3.x list")
paged = []
for p in range(1, 100):
    res = orq.sessions.list(filters=ALL, limit=37, page=p)
    paged += ids(res.data)
    if not res.has_more:
        break
check(paged == all_ids, "page numbers walk the same list")

# A custom activity window: updated at or after its start, started by its end.
updated = sorted(t.updated_at for t in everything)
lo, hi = updated[total // 4], updated[3 * total // 4]
ms = lambda d: str(round(d.timestamp() * 1000))  # noqa: E731
window = {**ALL, "start_date": ms(lo), "end_date": ms(hi)}
want = [t.id for t in everything if t.updated_at >= lo and t.started_at <= hi]
check(0 < len(want) < total, f"the window is a real selection ({len(want)})")
check(ids(walk(orq, window, limit=90)) == want, "window: the matching threads, in order")
check(orq.sessions.get_count(filters=window).count == len(want), "window: count")

# A relative interval counts back from the server's now: everything updated
# within it (with a second of slack each side for the requests' own time).
# The count is one request: between what must and what may be in it. A walk
# is one request per page, each with its own now: a thread that leaves the
# window between two pages moves the next page up by one, so the walk may
# pass over as many threads as could leave it (`may` - `must`), and never
# returns one outside it.
for name, minutes in [("SESSION_INTERVAL_LAST_30_MINUTES", 30), ("SESSION_INTERVAL_LAST_1_HOUR", 60)]:
    t0 = datetime.now(timezone.utc)
    got = set(ids(walk(orq, {"interval": name})))
    count = orq.sessions.get_count(filters={"interval": name}).count
    t1 = datetime.now(timezone.utc)
    must = {t.id for t in everything if t.updated_at >= t1 - timedelta(minutes=minutes, seconds=-1)}
    may = {t.id for t in everything if t.updated_at >= t0 - timedelta(minutes=minutes, seconds=1)}
    check(0 < len(must), f"{name}: the window holds threads")
    check(len(must) <= count <= len(may), f"{name} count: {len(must)} <= {count} <= {len(may)}")
    check(got <= may, f"{name}: every thread listed is in the window")
    check(len(must - got) <= len(may - must), f"{name}: {len(must - got)} of {len(must)} passed over")
check(len(walk(orq, {"interval": "SESSION_INTERVAL_LAST_1_HOUR"})) == total, "the stream is an hour old at most")

# Tags: the tag route is the union of every thread's tags; a tag filter keeps
# the threads with every listed tag.
tags = orq.sessions.list_tags()
check(tags == sorted({x for t in everything for x in t.tags}), "list_tags is the union of all tags")
common = [x for x, _ in Counter(x for t in everything for x in t.tags).most_common(2)]
for chosen in ([common[0]], common):
    f = {**ALL, "tags": chosen}
    want = [t.id for t in everything if all(x in t.tags for x in chosen)]
    check(0 < len(want) < total, f"tags {chosen} is a real selection")
    check(ids(walk(orq, f, limit=120)) == want, f"tags {chosen}: the matching threads")
    check(orq.sessions.get_count(filters=f).count == len(want), f"tags {chosen}: count")
for extra in [{"project_id": "proj_none"}, {"client": "cursor"}, {"kind": "THREAD_KIND_CODING_AGENT"}]:
    check(orq.sessions.get_count(filters={**ALL, **extra}).count == 0, f"{extra} selects nothing")

# One thread equals its list item and the raw JSON.
get_one = lambda i: orq.sessions.get(session_id=i)  # noqa: E731
orq_by_id(check, everything, get_one, lambda i: raw.get(f"/v2/sessions/{i}"), fields, raw_fields)

# Errors: the SDK's ErrorResponse with gRPC codes; others APIDefaultError.
try:
    orq.sessions.get(session_id="sess_does_not_exist")
    check(False, "an unknown id must raise")
except models.ErrorResponse as e:
    check(e.status_code == 404 and e.data.code == 5 and "sess_does_not_exist" in e.data.message, "404 ErrorResponse, code 5")
# (An SDK object closes its HTTP client when collected: keep a reference.)
wrong = Orq(api_key="wrong-key", server_url=BASE)
try:
    wrong.sessions.list(filters=ALL)
    check(False, "a wrong key must raise")
except models.ErrorResponse as e:
    check(e.status_code == 401 and e.data.code == 16, "401 ErrorResponse, code 16")
status, err = raw.call("POST", "/v2/sessions/query", {"filters": {}, "limit": 5})
check(status == 400 and err["code"] == 3 and "interval" in err["message"], "interval is required")
models.ErrorResponseData.model_validate(err)

# A key scoped to one user: its threads only.
mine = Orq(api_key=USER_KEY, server_url=BASE)
own = walk(mine, ALL, limit=4)
clerk_own = [s["id"] for s in raw.get(f"/v1/sessions?user_id={USER}&limit=500")]
check(own and ids(own) == clerk_own, "scoped key lists exactly its user's threads")
check(mine.sessions.get_count(filters=ALL).count == len(own), "scoped count")
check(mine.sessions.list_tags() == sorted({x for t in own for x in t.tags}), "scoped tags")
foreign = next(i for i in all_ids if i not in set(clerk_own))
try:
    mine.sessions.get(session_id=foreign)
    check(False, "another user's thread must raise")
except models.ErrorResponse as e:
    check(e.status_code == 404 and e.data.code == 5, "another user's thread is an unknown id (404, code 5)")

# Writes are refused: 405 (gRPC 12), the message says where writes go.
one = everything[17]
writes = [
    lambda: orq.sessions.create(
        external_id="x",
        duration=1,
        contact_ids=[],
        billing={"input_cost": 0, "output_cost": 0, "total_cost": 0},
        usage={"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        traces_count=0,
        tags=[],
    ),
    lambda: orq.sessions.update(session_id=one.id, tags=["written"]),
    lambda: orq.sessions.delete(session_id=one.id),
]
all_refused(
    check, writes, models.APIDefaultError,
    lambda e: e.status_code == 405 and '"code":12' in e.body and "Kafka topic" in e.body, "405 read-only",
)
check(orq.sessions.get(session_id=one.id).tags == one.tags, "nothing was written")

check.done(f"{total} threads, {len(tags)} tags, {len(own)} of the scoped user")
