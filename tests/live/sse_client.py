"""A change-feed reader built on httpx-sse (an independent SSE client).

    sse_client.py URL_FILE PATH KEY OUT STOP

Connects to `<url in URL_FILE><PATH>` with `Authorization: Bearer KEY`,
appends every event but heartbeats to OUT as JSON lines
(`{"id", "event", "data"}`), and on any disconnect reconnects — to the URL
the file names then, since a restarted server listens elsewhere — with
`Last-Event-ID` set to the last id received (heartbeats included, as
EventSource does). Exits once the file STOP exists.
"""

import json
import os
import sys
import time

import httpx
from httpx_sse import connect_sse

url_file, path, key, out_path, stop = sys.argv[1:6]
last_id = None
connects = 0
with open(out_path, "a", encoding="utf-8") as out:
    while not os.path.exists(stop):
        try:
            with open(url_file, encoding="utf-8") as f:
                base = f.read().strip()
            headers = {"Authorization": f"Bearer {key}"}
            if last_id is not None:
                headers["Last-Event-ID"] = last_id
            with httpx.Client(timeout=httpx.Timeout(5.0, read=2.0)) as client:
                with connect_sse(client, "GET", base + path, headers=headers) as es:
                    es.response.raise_for_status()
                    connects += 1
                    for ev in es.iter_sse():
                        if ev.id:
                            last_id = ev.id
                        if ev.event != "heartbeat":
                            out.write(json.dumps({"id": ev.id, "event": ev.event, "data": ev.data}) + "\n")
                            out.flush()
                        if os.path.exists(stop):
                            break
        except (httpx.HTTPError, OSError):
            time.sleep(0.2)
print(json.dumps({"connects": connects, "last_id": last_id}))
