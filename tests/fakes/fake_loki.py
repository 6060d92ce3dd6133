#!/usr/bin/env python3
"""A protocol-faithful fake of Loki's push API (no Loki server can be
installed here).

POST /loki/api/v1/push is validated strictly:
- Content-Type application/x-protobuf: the body is snappy's block format
  (not the framed format), decompressed by cramjam, holding a
  logproto.PushRequest parsed by the protobuf library with the classes
  protoc compiled from Loki's own pkg/push/push.proto (tests/loki/proto.py
  fetches and compiles them into a cache); a field push.proto does not
  have, or one of the wrong wire type (which the library keeps aside as an
  unknown field), at any depth, is a violation, and so is bad UTF-8;
- Content-Type application/json (Content-Encoding gzip allowed):
  {"streams":[{"stream":{..},"values":[["<ns>","<line>",{..}?],..]}]};
- labels in Prometheus syntax {name="value", ...}: valid names, escaped
  values, no name twice, at most 15;
- within a push, each stream's entries in time order;
- X-Scope-OrgID equal to --tenant when it is given.
Answers 204. Entries are kept (labels, ns, line, structured metadata).

Faults (POST /loki/api/v1/fake/faults, a JSON object merged; {} clears):
  request_status: [status, count]   the next `count` pushes answer status
  reject_containing: text           entries whose line holds `text` are
                                    refused as Loki does: the others are
                                    stored, and the push answers 400 with
                                    Loki's message for the refused ones
  down: true                        every push is reset
GET /loki/api/v1/fake/stats and /loki/api/v1/fake/entries (one JSON per line).

With --minimal (for benchmarks) a push is answered 204 unread.

Unless --minimal, it runs in the venv tests/loki/proto.py prepares
(proto.python() names its interpreter): started by another python, it
starts itself again with that one, and exits with status 2 if the
preparation was never done. --minimal reads no body and needs neither.

Usage: fake_loki.py --port-file PATH [--tenant T] [--secrets FILE] [--minimal]
"""
import argparse
import gzip
import http.server
import json
import os
import re
import socketserver
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "loki"))
import proto  # noqa: E402  (standard library only)

cramjam = push_pb2 = PbDecodeError = Message = UnknownFieldSet = None


def load_decoders():
    """Imports cramjam, protobuf and push_pb2 from the prepared venv,
    starting this script again with the venv's python when another one
    runs it; exits with status 2 when nothing was prepared."""
    global cramjam, push_pb2, PbDecodeError, Message, UnknownFieldSet
    if os.path.realpath(sys.prefix) != os.path.realpath(proto.venv_dir()):
        if not proto.ready():
            sys.stderr.write("fake_loki.py: Loki's push.proto and the decoders are not "
                             "prepared: run tests/loki/proto.py --prepare\n")
            sys.exit(2)
        os.execv(proto.venv_python(), [proto.venv_python(), os.path.abspath(__file__),
                                       *sys.argv[1:]])
    sys.path.insert(0, proto.gen_dir())
    import cramjam
    import push_pb2  # compiled from Loki's push.proto
    from google.protobuf.message import DecodeError as PbDecodeError, Message
    from google.protobuf.unknown_fields import UnknownFieldSet

class DecodeError(Exception):
    pass


WIRE = {0: "varint", 1: "64-bit", 2: "length-delimited", 3: "group start", 4: "group end",
        5: "32-bit"}


def strict(msg, path):
    """Raises DecodeError if msg, or a message in it, holds a field that
    the schema does not have or that came with the wrong wire type."""
    for f in UnknownFieldSet(msg):
        known = msg.DESCRIPTOR.fields_by_number.get(f.field_number)
        wire = WIRE.get(f.wire_type, f.wire_type)
        if known is None:
            raise DecodeError(f"{path}: unknown field {f.field_number} ({wire})")
        raise DecodeError(f"{path}.{known.name}: wrong wire type {wire}")
    for fd, v in msg.ListFields():
        if fd.message_type is None:
            continue
        for i, sub in enumerate([v] if isinstance(v, Message) else v):
            strict(sub, f"{path}.{fd.name}[{i}]" if not isinstance(v, Message)
                   else f"{path}.{fd.name}")


def decode_push(body):
    """A logproto.PushRequest from a snappy-compressed body; raises
    DecodeError."""
    if body[:1] == b"\xff":
        raise DecodeError("framed snappy stream, expected the block format")
    try:
        raw = bytes(cramjam.snappy.decompress_raw(body))
    except cramjam.DecompressionError as e:
        raise DecodeError(f"snappy block format: {e}") from None
    req = push_pb2.PushRequest()
    try:
        req.ParseFromString(raw)
    except PbDecodeError as e:
        raise DecodeError(f"protobuf: {e}") from None
    strict(req, "PushRequest")
    return req


LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|})')


def parse_labels(text):
    """{name: value} from Prometheus label text; raises ValueError."""
    if not text.startswith("{") or not text.endswith("}"):
        raise ValueError(f"labels not in braces: {text[:80]}")
    out, i = {}, 1
    if text == "{}":
        return out
    while i < len(text):
        m = LABEL.match(text, i)
        if not m:
            raise ValueError(f"bad label syntax at {i}: {text[:120]}")
        name, value = m.group(1), re.sub(r"\\(.)", lambda x: "\n" if x.group(1) == "n"
                                         else x.group(1), m.group(2))
        if name in out:
            raise ValueError(f"label {name} twice")
        out[name] = value
        i = m.end()
        if m.group(3) == "}":
            if i != len(text):
                raise ValueError("text after the labels")
            break
    if len(out) > 15:
        raise ValueError(f"{len(out)} labels, over 15")
    return out


class State:
    def __init__(self, tenant, secrets):
        self.lock = threading.Lock()
        self.tenant = tenant
        self.secrets = secrets
        self.faults = {}
        self.entries = []
        self.pushes = 0
        self.violations = []
        self.secret_hits = 0
        self.formats = set()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms stall

    def log_message(self, *a):
        pass

    def answer(self, status, text=b""):
        self.send_response(status)
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    def violation(self, what):
        st = self.server.st
        with st.lock:
            if len(st.violations) < 100:
                st.violations.append(what)
        self.answer(400, f"fake: {what}\n".encode())

    def do_GET(self):
        st = self.server.st
        with st.lock:
            if self.path.endswith("/fake/stats"):
                self.answer(200, json.dumps({
                    "pushes": st.pushes, "entries": len(st.entries),
                    "violations": st.violations, "secrets": st.secret_hits,
                    "formats": sorted(st.formats)}).encode())
            else:
                self.answer(200, "".join(json.dumps(e) + "\n" for e in st.entries).encode())

    def streams_of(self, body, ctype):
        """[(labels text, [(ns, line, {meta})])] of a push."""
        if ctype == "application/x-protobuf":
            out = []
            for st in decode_push(body).streams:
                ents = [(e.timestamp.seconds * 10**9 + e.timestamp.nanos, e.line,
                         {p.name: p.value for p in e.structuredMetadata}) for e in st.entries]
                out.append((st.labels, ents))
            return out
        doc = json.loads(body)
        out = []
        for s in doc["streams"]:
            labels = "{" + ", ".join(f'{k}="{v}"' for k, v in s["stream"].items()) + "}"
            ents = []
            for v in s["values"]:
                if not isinstance(v[0], str) or not v[0].isdigit():
                    raise ValueError(f"timestamp {v[0]!r} is not a decimal string")
                ents.append((int(v[0]), v[1], v[2] if len(v) > 2 else {}))
            out.append((labels, ents))
        return out

    def do_POST(self):
        st = self.server.st
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path.endswith("/fake/faults"):
            f = json.loads(body or b"{}")
            with st.lock:
                st.faults = {} if not f else {**st.faults, **f}
            self.answer(200, json.dumps(st.faults).encode())
            return
        with st.lock:
            st.pushes += 1
            f = st.faults
            status = None
            if f.get("request_status") and f["request_status"][1] > 0:
                status = f["request_status"][0]
                f["request_status"][1] -= 1
            down, reject = f.get("down"), f.get("reject_containing")
        if down:
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if self.server.minimal:
            self.answer(204)
            return
        if self.path != "/loki/api/v1/push":
            return self.violation(f"POST to {self.path}")
        if st.tenant and self.headers.get("X-Scope-OrgID") != st.tenant:
            return self.violation(f"X-Scope-OrgID {self.headers.get('X-Scope-OrgID')}")
        ctype = self.headers.get("Content-Type")
        try:
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            with st.lock:
                st.secret_hits += sum(body.count(s) for s in st.secrets)  # JSON bodies
                st.formats.add(ctype)
            streams = self.streams_of(body, ctype)
            parsed = [(parse_labels(lt), ents) for lt, ents in streams]
        except (DecodeError, ValueError, KeyError, OSError, TypeError, IndexError) as e:
            return self.violation(f"undecodable push ({ctype}): {e}")
        for labels, ents in parsed:
            times = [e[0] for e in ents]
            if times != sorted(times):
                return self.violation(f"stream {labels} not in time order")
        if status:
            self.answer(status, b"injected\n")
            return
        refused = []
        with st.lock:
            for labels, ents in parsed:
                for ns, line, meta in ents:
                    st.secret_hits += sum(line.count(s.decode()) for s in st.secrets)
                    st.secret_hits += sum(v.count(s.decode()) for v in meta.values()
                                          for s in st.secrets)
                    if reject and reject in line:
                        refused.append((ns, labels))
                        continue
                    st.entries.append({"labels": labels, "ns": ns, "line": line, "meta": meta})
        if refused:
            ns, labels = refused[0]
            lt = "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
            msg = (f"entry with timestamp {ns} ignored, reason: 'entry too far behind, oldest "
                   f"acceptable timestamp is: 2025-11-21T00:00:00Z', for stream: {lt},\n"
                   f"user 'fake', total ignored: {len(refused)} out of "
                   f"{sum(len(e) for _, e in parsed)}\n")
            self.answer(400, msg.encode())
            return
        self.answer(204)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--tenant")
    ap.add_argument("--secrets")
    ap.add_argument("--minimal", action="store_true")
    a = ap.parse_args()
    if not a.minimal:  # --minimal answers unread: it needs no decoder
        load_decoders()
    secrets = [s.encode() for s in open(a.secrets).read().split("\n") if s] if a.secrets else []
    srv = Server(("127.0.0.1", 0), Handler)
    srv.st = State(a.tenant, secrets)
    srv.minimal = a.minimal
    with open(a.port_file + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(a.port_file + ".tmp", a.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
