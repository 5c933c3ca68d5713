"""Helpers shared by the Python SDK tests: raw HTTP next to the client,
counted checks, and comparisons of two reads that may straddle a deadline.

A session's read-time status (and what follows from it: lists by status,
durations) changes when its deadline passes, and the test stream's sessions
reach theirs every few seconds. Two reads compared for equality are retried
a few times (`same`); a real mismatch repeats and fails.
"""

import json
import sys
import time
from datetime import datetime
import urllib.error
import urllib.request


class Checks:
    """Counts passed checks; exits non-zero with the reason on the first failure."""

    def __init__(self, name):
        self.name = name
        self.count = 0

    def __call__(self, cond, what):
        if not cond:
            sys.exit(f"{self.name}: FAILED: {what}")
        self.count += 1

    def same(self, what, produce, tries=5):
        """Checks that `produce()` returns two equal values; returns the first."""
        for _ in range(tries):
            a, b = produce()
            if a == b:
                self.count += 1
                return a
            time.sleep(0.2)
        sys.exit(f"{self.name}: FAILED: {what}:\n  {first_difference(a, b)}")

    def done(self, facts=""):
        print(f"{self.name}: {self.count} checks passed" + (f" ({facts})" if facts else ""))


def first_difference(a, b):
    """Where two values first differ, briefly."""
    if isinstance(a, list) and isinstance(b, list):
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return f"item {i}: {first_difference(x, y)}"
        return f"lengths {len(a)} != {len(b)}"
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if a.get(k, "<absent>") != b.get(k, "<absent>"):
                return f"[{k!r}]: {a.get(k, '<absent>')!r} != {b.get(k, '<absent>')!r}"
    return f"{a!r} != {b!r}"


class Raw:
    """Plain HTTP to the ledger with a bearer key: (status, parsed JSON body)."""

    def __init__(self, base, key):
        self.base, self.key = base, key

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.key}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def get(self, path):
        status, body = self.call("GET", path)
        if status != 200:
            sys.exit(f"raw GET {path}: {status} {body}")
        return body

    def post(self, path, body):
        status, out = self.call("POST", path, body)
        if status != 200:
            sys.exit(f"raw POST {path}: {status} {out}")
        return out


def ts(s):
    """An RFC 3339 time as a datetime (what the orq.ai SDKs parse it to)."""
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def orq_raw_fields(r, workspace):
    """An orq.ai session's values from raw JSON, keyed by wire name, as the
    SDKs' models hold them: 3.x's shape (`workspace=True`) or 4.x's thread
    (no `workspace_id`)."""
    b, u = r["billing"], r["usage"]
    out = {
        "_id": r["_id"],
        "external_id": r["external_id"],
        "duration": r["duration"],
        "contact_ids": r["contact_ids"],
        "billing": [b["input_cost"], b["output_cost"], b["total_cost"]],
        "usage": [u["prompt_tokens"], u["completion_tokens"], u["total_tokens"]],
        "traces_count": r["traces_count"],
        "tags": r["tags"],
        "project_id": r.get("project_id"),
        "started_at": ts(r["started_at"]),
        "updated_at": ts(r["updated_at"]),
    }
    if workspace:
        out["workspace_id"] = r["workspace_id"]
    return out


def orq_by_id(check, items, get, raw_get, fields, raw_fields):
    """Every 250th list item, read by id through the SDK (`get(id)`), equals
    the raw JSON of the same route (`raw_get(id)`) and the list item (but for
    `duration`, which grows with time)."""

    def but_duration(x):
        return {k: v for k, v in x.items() if k != "duration"}

    for d in items[::250]:
        check.same(
            f"get {d.id} equals the raw JSON",
            lambda: (fields(get(d.id)), raw_fields(raw_get(d.id))),
        )
        check(but_duration(fields(get(d.id))) == but_duration(fields(d)), "get equals the list item")


def orq_sdk_fields(d, workspace):
    """An orq.ai SDK session (3.x, `workspace=True`) or thread (4.x) as the
    same dict `orq_raw_fields` makes of raw JSON."""
    out = {
        "_id": d.id,
        "external_id": d.external_id,
        "duration": d.duration,
        "contact_ids": d.contact_ids,
        "billing": [d.billing.input_cost, d.billing.output_cost, d.billing.total_cost],
        "usage": [d.usage.prompt_tokens, d.usage.completion_tokens, d.usage.total_tokens],
        "traces_count": d.traces_count,
        "tags": d.tags,
        "project_id": d.project_id or None,
        "started_at": d.started_at,
        "updated_at": d.updated_at,
    }
    if workspace:
        out["workspace_id"] = d.workspace_id
    return out


def all_refused(check, writes, error, refusal, what):
    """Each call in `writes` raises `error`, and `refusal(e)` holds for it."""
    for write in writes:
        try:
            write()
            check(False, "a write must raise")
        except error as e:
            check(refusal(e), f"{what}: {getattr(e, 'body', e)}")

