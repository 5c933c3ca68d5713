"""Clerk's official Python SDK (clerk-backend-api) reading from the ledger.

Usage: python clerk_sdk_test.py BASE_URL API_KEY

Every call goes through the SDK, which validates the body against its own
pydantic models; the results are compared with the raw JSON of the same
request. Exits non-zero on the first mismatch.
"""

import json
import sys
import urllib.request

from clerk_backend_api import Clerk, models
from clerk_backend_api.models import ClerkErrors, QueryParamStatus, ResponseValidationError

BASE, KEY = sys.argv[1], sys.argv[2]


def raw(path):
    req = urllib.request.Request(BASE + path, headers={"Authorization": f"Bearer {KEY}"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)


checks = 0


def check(cond, what):
    global checks
    if not cond:
        sys.exit(f"FAILED: {what}")
    checks += 1


with Clerk(bearer_auth=KEY, server_url=BASE + "/v1") as clerk:
    first = clerk.sessions.list(limit=500)
    check(len(first) == 500, "a full first page of 500")
    check([s.id for s in first] == [s["id"] for s in raw("/v1/sessions?limit=500")], "list ids")
    created = [s.created_at for s in first]
    check(created == sorted(created, reverse=True), "newest first")

    user = first[0].user_id
    by_user = clerk.sessions.list(user_id=user, limit=500)
    check(by_user and all(s.user_id == user for s in by_user), f"user_id filter ({len(by_user)})")
    check([s.id for s in by_user] == [s["id"] for s in raw(f"/v1/sessions?user_id={user}&limit=500")], "user_id ids")

    client = first[0].client_id
    by_client = clerk.sessions.list(client_id=client, limit=500)
    check(by_client and all(s.client_id == client for s in by_client), "client_id filter")

    seen = set()
    for st in QueryParamStatus:
        got = clerk.sessions.list(status=st, limit=200)
        check(all(s.status.value == st.value for s in got), f"status={st.value} filter")
        check(len(got) == len(raw(f"/v1/sessions?status={st.value}&limit=200")), f"status={st.value} count")
        if got:
            seen.add(st.value)
    check(len(seen) >= 3, f"several statuses present: {seen}")

    both = clerk.sessions.list(user_id=user, status=QueryParamStatus.ACTIVE, limit=100)
    check(all(s.user_id == user and s.status.value == "active" for s in both), "user_id+status")

    # Offset paging through the SDK equals one long page.
    paged = []
    for off in range(0, 500, 70):
        paged += clerk.sessions.list(limit=70, offset=off)
    check([s.id for s in paged[:500]] == [s.id for s in first], "offset paging")

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
        check([s.id for s in items] == [s.id for s in first[:25]], "paginated data")
        check(body["total_count"] >= 500, "total_count")

    one = clerk.sessions.get(session_id=first[3].id)
    check(one == first[3], "get equals the listed session")
    check(one.latest_activity is None or one.latest_activity.object == "session_activity", "latest_activity")

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

print(f"clerk-backend-api: {checks} checks passed")
