"""A webhook endpoint that checks every delivery with the `standardwebhooks`
package (an independent Standard Webhooks implementation).

    webhook_receiver.py SECRET FAIL_FIRST OUT PORT_FILE

Answers the first FAIL_FIRST deliveries 503 (so they are retried), a
delivery whose signature does not verify 400, every other 204; appends one
JSON line per delivery to OUT (`id`, `status`, `verified`, `type`, `data`,
`error`); writes the port it listens on to PORT_FILE.
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

secret, fail_first, out_path, port_file = sys.argv[1:5]
hook = Webhook(secret)
lock = threading.Lock()
state = {"attempts": 0}
out = open(out_path, "a", encoding="utf-8")


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        headers = {k.lower(): v for k, v in self.headers.items()}
        payload, error = None, None
        try:
            payload = hook.verify(body, headers)
        except Exception as e:  # any verification failure is recorded
            error = f"{type(e).__name__}: {e}"
        with lock:
            state["attempts"] += 1
            if payload is None:
                status = 400
            elif state["attempts"] <= int(fail_first):
                status = 503
            else:
                status = 204
            out.write(json.dumps({
                "id": headers.get("webhook-id"),
                "status": status,
                "verified": payload is not None,
                "type": payload and payload.get("type"),
                "data": payload and payload.get("data"),
                "error": error,
            }) + "\n")
            out.flush()
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(port_file, "w", encoding="utf-8") as f:
    f.write(str(server.server_address[1]))
server.serve_forever()
