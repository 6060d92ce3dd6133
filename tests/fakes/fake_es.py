#!/usr/bin/env python3
"""A protocol-faithful fake of Elasticsearch's _bulk API, for what a real
node will not do on demand (standard library only, loopback only).

It validates every request strictly and keeps what it stored:
- POST /_bulk (query string allowed), Content-Type application/x-ndjson,
  Content-Encoding gzip when given (the body must then be valid gzip);
- NDJSON: every line ends with "\\n"; lines alternate action and source;
  an action line is {"create"|"index": {"_index": str, "_id"?: str}} and
  nothing else; a source line is one JSON object;
- an Authorization header equal to --auth when it is given (401 otherwise);
- `create` of an _id already stored answers 409
  version_conflict_engine_exception, as Elasticsearch does.

Faults, set with POST /_fake/faults (a JSON object, merged into the
current ones) and cleared with {} :
  request_status: [status, count]  the next `count` requests answer status
                                   (429 es_rejected_execution_exception, 503 ...)
  reset: count                     the next `count` requests are read, then
                                   the connection is closed with no answer
  slow: seconds                    every answer waits this long first
  item_429_every: n                each n-th item of a request answers 429
                                   (first attempt of that _id only)
  reject_field: name               a document with this top-level field answers
                                   400 mapper_parsing_exception
  pad_response: bytes              answers carry a padding field this large
  down: true                       every request is reset (until cleared)
GET /_fake/stats answers {"requests", "docs", "attempts", "violations",
"secrets", "bodies", "connections", "max_in_flight", "conflicts"}
(conflicts: creates answered 409; connections: TCP
connections accepted; max_in_flight: the most requests answered at once); GET /_fake/docs answers every stored source, one per
line as {"_index","_id","source"}.

With --minimal (for benchmarks) it only decompresses and counts the action
lines, and answers every item 201 without parsing or storing anything.

Usage: fake_es.py --port-file PATH [--auth VALUE] [--secrets FILE]
       [--tls-cert CERT --tls-key KEY] [--minimal]
It prints nothing; it writes its port to --port-file once it listens.
"""
import argparse
import gzip
import http.server
import json
import socketserver
import ssl
import sys
import threading
import time


class State:
    def __init__(self, auth, secrets):
        self.lock = threading.Lock()
        self.auth = auth
        self.secrets = secrets
        self.faults = {}
        self.docs = {}          # (index, _id) -> source text
        self.requests = 0
        self.attempts = {}      # _id -> create attempts
        self.violations = []
        self.secret_hits = 0
        self.bodies = 0
        self.connections = 0    # TCP connections accepted
        self.in_flight = 0      # _bulk requests being answered now
        self.max_in_flight = 0
        self.conflicts = 0      # creates of an _id already stored (409)


def violation(st, what):
    with st.lock:
        if len(st.violations) < 100:
            st.violations.append(what)


def parse_ndjson(st, body):
    """[(action, meta, source_text)] or None after recording a violation."""
    if not body.endswith(b"\n"):
        violation(st, "body does not end with a newline")
        return None
    lines = body[:-1].split(b"\n")
    if len(lines) % 2:
        violation(st, f"odd number of lines ({len(lines)})")
        return None
    out = []
    for i in range(0, len(lines), 2):
        try:
            action = json.loads(lines[i])
            source = json.loads(lines[i + 1])
        except ValueError as e:
            violation(st, f"line {i} or {i + 1} is not JSON: {e}")
            return None
        if not isinstance(action, dict) or len(action) != 1:
            violation(st, f"bad action line {lines[i][:100]!r}")
            return None
        (name, meta), = action.items()
        if name not in ("create", "index") or not isinstance(meta, dict) or \
                not isinstance(meta.get("_index"), str) or \
                set(meta) - {"_index", "_id"} or \
                ("_id" in meta and not isinstance(meta["_id"], str)):
            violation(st, f"bad action line {lines[i][:100]!r}")
            return None
        if not isinstance(source, dict):
            violation(st, f"source line {i + 1} is not an object")
            return None
        out.append((name, meta, lines[i + 1].decode(), source))
    return out


def item(st, name, meta, text, source, n):
    f = st.faults
    _id = meta.get("_id")
    key = (meta["_index"], _id)
    with st.lock:
        if _id is not None:
            st.attempts[_id] = st.attempts.get(_id, 0) + 1
            first = st.attempts[_id] == 1
        else:
            first = True
        every = f.get("item_429_every")
        if every and first and n % every == every - 1:
            return {"status": 429, "error": {"type": "es_rejected_execution_exception",
                                             "reason": "rejected execution of coordinating operation"}}
        field = f.get("reject_field")
        if field and field in source:
            return {"status": 400, "error": {
                "type": "mapper_parsing_exception",
                "reason": f"failed to parse field [{field}] of type [long] in document "
                          f"with id '{_id}'. Preview of field's value: 'not-a-number'"}}
        if _id is None:
            _id = f"auto-{len(st.docs)}"
            key = (meta["_index"], _id)
        if name == "create" and key in st.docs:
            st.conflicts += 1
            return {"status": 409, "error": {"type": "version_conflict_engine_exception",
                                             "reason": f"[{_id}]: version conflict, document "
                                                       "already exists"}}
        st.docs[key] = text
        return {"status": 201, "result": "created", "_index": meta["_index"], "_id": _id}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms stall

    def log_message(self, *a):
        pass

    def setup(self):
        super().setup()
        with self.server.st.lock:
            self.server.st.connections += 1

    def answer(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        st = self.server.st
        if self.path == "/_fake/stats":
            with st.lock:
                self.answer(200, {"requests": st.requests, "docs": len(st.docs),
                                  "attempts": sum(st.attempts.values()),
                                  "violations": st.violations, "secrets": st.secret_hits,
                                  "bodies": st.bodies, "connections": st.connections,
                                  "max_in_flight": st.max_in_flight,
                                  "conflicts": st.conflicts})
        elif self.path == "/_fake/docs":
            with st.lock:
                lines = [json.dumps({"_index": k[0], "_id": k[1], "source": v})
                         for k, v in st.docs.items()]
            body = ("\n".join(lines) + "\n").encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.answer(200, {"version": {"number": "8.11.0"}, "tagline": "fake"})

    def read_body(self):
        n = int(self.headers.get("Content-Length", "0"))
        return self.rfile.read(n)

    def do_POST(self):
        st = self.server.st
        with st.lock:
            st.in_flight += 1
            st.max_in_flight = max(st.max_in_flight, st.in_flight)
        try:
            self.post()
        finally:
            with st.lock:
                st.in_flight -= 1

    def post(self):
        st = self.server.st
        raw = self.read_body()
        if self.path == "/_fake/faults":
            faults = json.loads(raw or b"{}")
            with st.lock:
                st.faults = {} if not faults else {**st.faults, **faults}
            self.answer(200, st.faults)
            return
        with st.lock:
            st.requests += 1
            f = st.faults
            reset = f.get("down") or f.get("reset", 0) > 0
            if f.get("reset", 0) > 0:
                f["reset"] -= 1
            status = None
            if f.get("request_status") and f["request_status"][1] > 0:
                status = f["request_status"][0]
                f["request_status"][1] -= 1
            slow = f.get("slow", 0)
        if reset:
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if slow:
            time.sleep(slow)
        if st.auth and self.headers.get("Authorization") != st.auth:
            self.answer(401, {"error": {"type": "security_exception",
                                        "reason": "missing authentication credentials"},
                              "status": 401})
            return
        if not self.path.split("?")[0].endswith("/_bulk"):
            violation(st, f"POST to {self.path}")
            self.answer(404, {"error": "not found"})
            return
        if self.headers.get("Content-Type") != "application/x-ndjson":
            violation(st, f"Content-Type {self.headers.get('Content-Type')}")
        body = raw
        if self.headers.get("Content-Encoding") == "gzip":
            try:
                body = gzip.decompress(raw)
            except OSError as e:
                violation(st, f"bad gzip: {e}")
                self.answer(400, {"error": {"type": "parse_exception", "reason": "bad gzip"}})
                return
        if self.server.minimal:
            n = body.count(b"\n") // 2
            with st.lock:
                st.bodies += 1
                st.attempts[0] = st.attempts.get(0, 0) + n
            created = b'{"create":{"status":201}}'
            self.send_response(200)
            out = b'{"took":1,"errors":false,"items":[' + b",".join([created] * n) + b"]}"
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)
            return
        with st.lock:
            st.bodies += 1
            st.secret_hits += sum(body.count(s) for s in st.secrets)
        if status:
            types = {429: "es_rejected_execution_exception", 503: "unavailable_shards_exception"}
            self.answer(status, {"error": {"type": types.get(status, "exception"),
                                           "reason": "injected"}, "status": status})
            return
        ops = parse_ndjson(st, body)
        if ops is None:
            self.answer(400, {"error": {"type": "illegal_argument_exception",
                                        "reason": "Malformed action/metadata line"}, "status": 400})
            return
        items = [{name: item(st, name, meta, text, src, n)}
                 for n, (name, meta, text, src) in enumerate(ops)]
        resp = {"took": 3, "errors": any(list(i.values())[0]["status"] >= 300 for i in items)}
        pad = f.get("pad_response")
        if pad:
            resp["pad"] = "x" * pad
        resp["items"] = items
        self.answer(200, resp)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass  # a client that timed out and went away: nothing to report


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--auth")
    ap.add_argument("--secrets")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--minimal", action="store_true")
    a = ap.parse_args()
    secrets = []
    if a.secrets:
        secrets = [s.encode() for s in open(a.secrets).read().split("\n") if s]
    srv = Server(("127.0.0.1", 0), Handler)
    srv.st = State(a.auth, secrets)
    srv.minimal = a.minimal
    if a.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.tls_cert, a.tls_key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    with open(a.port_file + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    import os
    os.rename(a.port_file + ".tmp", a.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
