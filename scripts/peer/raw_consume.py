"""Raw consume of the event topic (the limit both systems share): every
record read and dropped, through librdkafka (confluent-kafka). Prints one
JSON line like quix_sessions.py's.

Usage: raw_consume.py BROKER TOPIC RECORDS
"""

import json
import os
import resource
import sys
import time

from confluent_kafka import Consumer

broker, topic, want = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = Consumer({
    "bootstrap.servers": broker,
    "group.id": f"raw-peer-{os.getpid()}",
    "auto.offset.reset": "earliest",
    "enable.auto.commit": False,
})
c.subscribe([topic])
started = time.monotonic()
n = 0
while n < want:
    batch = c.consume(num_messages=10_000, timeout=1.0)
    n += sum(1 for m in batch if m.error() is None)
secs = time.monotonic() - started
c.close()
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({
    "records": n,
    "seconds": secs,
    "cpu_seconds": ru.ru_utime + ru.ru_stime,
    "max_rss_bytes": ru.ru_maxrss * 1024,
    "state_bytes": 0,
}))
