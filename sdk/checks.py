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
