"""The ledger's job in Quix Streams: the latest state of every session.

Consumes the event topic (structured-mode CloudEvents, keyed by session id)
with RocksDB state, keeps per session its status, first/last event time and
event count, commits every second, and stops once it has processed N
records. Prints one JSON line: records, seconds, CPU seconds (user + sys),
peak RSS and the state directory's bytes.

Usage: quix_sessions.py BROKER TOPIC RECORDS STATE_DIR
"""

import json
import os
import resource
import sys
import time

from quixstreams import Application
from quixstreams.models.topics import manager as topic_manager

# The dev broker reports no default retention.ms (nor retention.bytes),
# which Quix's derivation of a state store's topic config reads: the
# broker's defaults (7 days, unbounded) are filled in.
_derive = topic_manager.TopicManager.derive_topic_config


def _derive_with_defaults(topics):
    for t in topics:
        t.broker_config.extra_config.setdefault("retention.ms", "604800000")
        t.broker_config.extra_config.setdefault("retention.bytes", "-1")
    return _derive(topics)


topic_manager.TopicManager.derive_topic_config = staticmethod(_derive_with_defaults)

broker, topic_name, want, state_dir = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]

app = Application(
    broker_address=broker,
    consumer_group=f"quix-peer-{os.getpid()}",
    auto_offset_reset="earliest",
    commit_interval=1.0,
    state_dir=state_dir,
    use_changelog_topics=False,
    auto_create_topics=False,
    loglevel="WARNING",
)
topic = app.topic(topic_name, value_deserializer="json")
seen = {"n": 0}
started = time.monotonic()

TERMINAL = {
    "session.expired": "expired", "session.abandoned": "abandoned",
    "session.ended": "ended", "session.revoked": "revoked",
    "session.removed": "removed", "session.replaced": "replaced",
}


def fold(event, state):
    s = state.get("s") or {"status": "pending", "events": 0}
    kind = event.get("type", "")
    t = event.get("time")
    if kind == "session.created" and s["status"] == "pending":
        s["status"] = "active"
        s["created_at"] = t
        s["user_id"] = (event.get("data") or {}).get("user_id")
    elif kind in TERMINAL and s["status"] in ("pending", "active"):
        s["status"] = TERMINAL[kind]
        s["ended_at"] = t
    s.setdefault("first_seen", t)
    s["last"] = t
    s["events"] += 1
    state.set("s", s)
    seen["n"] += 1
    if seen["n"] >= want:
        app.stop()
    return s


sdf = app.dataframe(topic)
sdf = sdf.apply(fold, stateful=True)
app.run()
secs = time.monotonic() - started
ru = resource.getrusage(resource.RUSAGE_SELF)
size = 0
for root, _, files in os.walk(state_dir):
    for f in files:
        size += os.path.getsize(os.path.join(root, f))
print(json.dumps({
    "records": seen["n"],
    "seconds": secs,
    "cpu_seconds": ru.ru_utime + ru.ru_stime,
    "max_rss_bytes": ru.ru_maxrss * 1024,
    "state_bytes": size,
}))
