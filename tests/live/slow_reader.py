"""A change-feed reader that stops reading (httpx-sse).

    slow_reader.py URL KEY OUT GO

Reads one event, then reads nothing until the file GO exists (the server
keeps writing meanwhile), then reads on until a `reset` event arrives and
the first event after it; writes every event's `event` and `id` to OUT as
JSON lines.
"""

import json
import os
import sys
import time

import httpx
from httpx_sse import connect_sse

url, key, out_path, go = sys.argv[1:5]
events = []
with httpx.Client(timeout=httpx.Timeout(60.0)) as client:
    with connect_sse(client, "GET", url, headers={"Authorization": f"Bearer {key}"}) as es:
        es.response.raise_for_status()
        reset = False
        for ev in es.iter_sse():
            if ev.event == "heartbeat":
                continue
            events.append({"event": ev.event, "id": ev.id})
            if len(events) == 1:
                while not os.path.exists(go):
                    time.sleep(0.1)
            if reset and ev.event != "reset":
                break
            reset = reset or ev.event == "reset"
with open(out_path, "w", encoding="utf-8") as out:
    for e in events:
        out.write(json.dumps(e) + "\n")
