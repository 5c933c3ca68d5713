"""Clerk's official Python SDK (clerk-backend-api 7.0.0) reading sessions.

Usage: python clerk_sdk_test.py BASE_URL ADMIN_KEY USER_KEY USER_ID
(USER_KEY is an API key scoped to the user USER_ID.)

Drives, unchanged: `sessions.list` (GET /v1/sessions) and `sessions.get`
(GET /v1/sessions/{id}). The SDK validates every body against its pydantic
models; the values are compared with the raw JSON of the same request and
with what the filters promise.
"""

import json
import sys

from checks import Checks, Raw
from clerk_backend_api import Clerk, models
from clerk_backend_api.models import ClerkErrors, QueryParamStatus, ResponseValidationError

BASE, ADMIN, USER_KEY, USER = sys.argv[1:5]
check = Checks("clerk-backend-api")
raw = Raw(BASE, ADMIN)


def trim(r):
    """A Session in wire form without its null fields."""
    out = {k: v for k, v in r.items() if v is not None}
    if "latest_activity" in out:
        out["latest_activity"] = {k: v for k, v in out["latest_activity"].items() if v is not None}
    return out


def wire(s):
    """An SDK Session back in wire form (what the raw JSON holds), nulls left out."""
    return trim(s.model_dump(mode="json", by_alias=True))


with Clerk(bearer_auth=ADMIN, server_url=BASE + "/v1") as clerk:
    # The SDK's sessions equal the raw JSON of the same request, field by field.
    first = check.same(
        "a page of 500 equals the raw JSON",
        lambda: ([wire(s) for s in clerk.sessions.list(limit=500)], [trim(s) for s in raw.get("/v1/sessions?limit=500")]),
    )
    check(len(first) == 500, "a full first page of 500")
    created = [s["created_at"] for s in first]
    check(created == sorted(created, reverse=True), "newest first")
    for s in first:
        check(s["created_at"] > 10**12 and s["last_active_at"] >= s["created_at"], "times in Unix ms, in order")
        check(s["abandon_at"] > s["last_active_at"], "abandon_at after the last activity")

    user = first[0]["user_id"]
    by_user = clerk.sessions.list(user_id=user, limit=500)
    check(by_user and all(s.user_id == user for s in by_user), f"user_id filter ({len(by_user)})")
    newest = [s["id"] for s in first if s["user_id"] == user]
    check([s.id for s in by_user][: len(newest)] == newest, "user_id: the user's sessions of the newest 500 come first")
    check([s.id for s in by_user] == [s["id"] for s in raw.get(f"/v1/sessions?user_id={user}&limit=500")], "user_id ids")

    client = first[0]["client_id"]
    by_client = clerk.sessions.list(client_id=client, limit=500)
    check(by_client and all(s.client_id == client for s in by_client), "client_id filter")

    seen = set()
    for st in QueryParamStatus:
        got = check.same(
            f"status={st.value} equals the raw JSON",
            lambda: (
                [s.id for s in clerk.sessions.list(status=st, limit=200)],
                [s["id"] for s in raw.get(f"/v1/sessions?status={st.value}&limit=200")],
            ),
        )
        statuses = {s.status.value for s in clerk.sessions.list(status=st, limit=200)}
        check(statuses <= {st.value}, f"status={st.value} filter")
        if got:
            seen.add(st.value)
    check(len(seen) >= 3, f"several statuses present: {seen}")

    both = clerk.sessions.list(user_id=user, status=QueryParamStatus.ACTIVE, limit=100)
    check(all(s.user_id == user and s.status.value == "active" for s in both), "user_id+status")

    # Offset paging through the SDK equals one long page.
    paged = []
    for off in range(0, 500, 70):
        paged += clerk.sessions.list(limit=70, offset=off)
    check([s.id for s in paged[:500]] == [s["id"] for s in first], "offset paging")

    # paginated=true answers Clerk's documented {data, total_count}. SDK 7.0.0
    # types this operation as a bare list, so it rejects the envelope; its own
    # Session model still reads every item unchanged.
    try:
        clerk.sessions.list(paginated=True, limit=25)
        check(False, "the SDK would have typed the paginated envelope as a list")
    except ResponseValidationError as e:
        body = json.loads(e.body)
        check(set(body) == {"data", "total_count"}, "paginated envelope")
        items = [models.Session.model_validate(s) for s in body["data"]]
        check([s.id for s in items] == [s["id"] for s in first[:25]], "paginated data")
        check(body["total_count"] >= 1000, "total_count")

    one = check.same(
        "get equals the raw JSON",
        lambda: (wire(clerk.sessions.get(session_id=first[3]["id"])), trim(raw.get(f"/v1/sessions/{first[3]['id']}"))),
    )
    check(one["id"] == first[3]["id"] and one["created_at"] == first[3]["created_at"], "get equals the listed session")
    check("latest_activity" not in one or one["latest_activity"]["object"] == "session_activity", "latest_activity")

    try:
        clerk.sessions.get(session_id="sess_does_not_exist")
        check(False, "unknown id must fail")
    except (ClerkErrors, models.SDKError) as e:
        check(e.status_code == 404, f"404 for an unknown id, got {e.status_code}")

    try:
        clerk.sessions.list(limit=501)
        check(False, "limit 501 must fail")
    except ClerkErrors as e:
        check(e.status_code == 422 and e.data.errors[0].code == "form_param_value_invalid", "422 envelope")

with Clerk(bearer_auth="wrong-key", server_url=BASE + "/v1") as bad:
    try:
        bad.sessions.list()
        check(False, "a wrong key must fail")
    except ClerkErrors as e:
        check(e.status_code == 401 and e.data.errors[0].message, "401 in Clerk's envelope")

# A key scoped to one user lists that user's sessions; another user's
# session is an unknown id (404, the same body as an id that never existed).
with Clerk(bearer_auth=USER_KEY, server_url=BASE + "/v1") as mine:
    own = mine.sessions.list(limit=500)
    check(own and [s.id for s in own] == [s["id"] for s in raw.get(f"/v1/sessions?user_id={USER}&limit=500")], "scoped list")
    other = next(s for s in first if s["user_id"] != USER)
    try:
        mine.sessions.get(session_id=other["id"])
        check(False, "another user's session must fail")
    except (ClerkErrors, models.SDKError) as e:
        check(e.status_code == 404, "another user's session is an unknown id (404)")

check.done(f"{len(by_user)} sessions of {user}, statuses {sorted(seen)}")
