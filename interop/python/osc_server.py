"""An Osaurus Secure Channel v1 server with a tiny demo agent behind it.

`--break NAME` bends exactly one honest step so the harness can show that it
notices; BREAKS maps each name to the requirement it violates.

`--lenient-base64` behaves as upstream does where the protocol leaves room
(no bug): base64url is decoded as upstream decodes it (padding re-added,
whatever standard base64 accepts; ENC-1), an inner `body` that does not
decode is run as an empty body instead of refused (CALL-9 is a SHOULD),
and the run route answers `400 Invalid request format` to a body that is
not a JSON object, as upstream's app does.
"""

from __future__ import annotations

import ipaddress
import json
import os
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import osc_crypto as c

BREAKS = {
    "no-replay-check": "CALL-3",
    "no-426": "GATE-1",
    "relay-marker-ignored": "GATE-3",
    "static-ephemeral": "HS-3",
    "sign-other-key": "HS-1",
    "drop-stream-fin": "RESP-5",
    "status-outside": "RESP-2",
    "no-expiry": "SES-1",
    "session-key-responses": "KS-2",
    "mark-before-decrypt": "CALL-4",
    "no-inner-auth": "CALL-6",
    "nested-secure": "CALL-8",
}

MAX_SESSION_BODY = 64 * 1024
MAX_CALL_BODY = 32 * 1024 * 1024
MAX_PLAIN_BODY = 1024 * 1024
MAX_SESSIONS = 256
BODY_DEADLINE = 5.0
RELAY_MARKER = "x-osaurus-relay-origin"
RESERVED_INNER = {
    "host", "content-length", "connection", "authorization", "accept",
    "content-type", RELAY_MARKER,
}
UPGRADE_BODY = {
    "error": {
        "code": "secure_channel_required",
        "message": "This peer requires end-to-end encryption for agent requests. "
        "Upgrade Osaurus to a version that supports the secure channel.",
        "type": "upgrade_required",
    }
}
CALL_ERRORS = {
    "malformed": (400, "secure_malformed", "Malformed secure call"),
    "unknown": (401, "secure_session_unknown", "Unknown or expired secure session"),
    "decrypt": (400, "secure_decrypt_failed", "Decryption failed"),
    "replay": (409, "secure_replay", "Replayed secure call rejected"),
    "inner": (400, "secure_malformed", "Malformed inner request"),
}
JSON_TYPE = "application/json; charset=utf-8"


class ReplayWindow:
    """CALL-3: 64-wide sliding window over request sequence numbers."""

    def __init__(self) -> None:
        self.highest = 0
        self.bits = 0

    def accept(self, seq: int) -> bool:
        if seq == 0:
            return False
        if seq > self.highest:
            shift = seq - self.highest
            self.bits = ((self.bits << shift) | 1) & ((1 << 64) - 1) if shift < 64 else 1
            self.highest = seq
            return True
        back = self.highest - seq
        if back >= 64 or (self.bits >> back) & 1:
            return False
        self.bits |= 1 << back
        return True


@dataclass
class Session:
    c2s: bytes
    s2c: bytes
    expires_at: int
    window: ReplayWindow = field(default_factory=ReplayWindow)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Config:
    agent_secret: bytes
    agent_id: str
    access_key: str
    session_ttl: int
    trust_loopback: bool
    breaks: set[str]
    scoped_key: str | None = None
    scoped_agent_id: str | None = None
    lenient_base64: bool = False
    # No body deadline: incomplete requests are held until the client goes.
    hold_incomplete: bool = False

    def b64_decode(self, text: str) -> bytes:
        """The base64url decoder of this mode."""
        return c.b64u_decode_upstream(text) if self.lenient_base64 else c.b64u_decode(text)

    @property
    def address(self) -> str:
        return c.address_of_secret(self.agent_secret)


class State:
    """Everything the handlers share; one lock guards the session store."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.address = cfg.address
        self.sessions: dict[str, Session] = {}
        self.lock = threading.Lock()
        self.executions = 0
        self.static_ephemeral = os.urandom(32)
        self.other_key = os.urandom(32)

    def store(self, sid: str, sess: Session) -> None:
        now = time.time()
        with self.lock:
            if "no-expiry" not in self.cfg.breaks:
                for k in [k for k, s in self.sessions.items() if s.expires_at <= now]:
                    del self.sessions[k]
            if len(self.sessions) >= MAX_SESSIONS:
                del self.sessions[min(self.sessions, key=lambda k: self.sessions[k].expires_at)]
            self.sessions[sid] = sess

    def lookup(self, sid: str) -> Session | None:
        with self.lock:
            sess = self.sessions.get(sid)
            if sess is None:
                return None
            if time.time() >= sess.expires_at and "no-expiry" not in self.cfg.breaks:
                del self.sessions[sid]
                return None
            return sess

    def count_execution(self) -> int:
        with self.lock:
            self.executions += 1
            return self.executions


def normalise(path: str) -> str:
    """GATE-7: drop the query, then the first matching prefix."""
    path = path.split("?", 1)[0]
    for prefix in ("/v1/api", "/api", "/v1"):
        if path == prefix or path.startswith(prefix + "/"):
            return path[len(prefix):] or "/"
    return path


@dataclass
class Inner:
    """A request as the demo app sees it, plaintext or decrypted."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    remote: bool
    loopback_peer: bool
    secure: bool


@dataclass
class Reply:
    status: int
    content_type: str | None
    body: bytes = b""
    stream: list[bytes] | None = None


def json_reply(status: int, obj) -> Reply:
    return Reply(status, JSON_TYPE, json.dumps(obj, separators=(",", ":")).encode())


def route(state: State, req: Inner) -> Reply:
    """The demo app: auth gate, 426 gate, then the routes."""
    cfg = state.cfg
    path = normalise(req.path)
    public = path in ("/", "/health")
    trusted_loopback = req.loopback_peer and not req.remote and cfg.trust_loopback
    skip_auth = public or trusted_loopback or (req.secure and "no-inner-auth" in cfg.breaks)
    parts = path.strip("/").split("/")
    if not skip_auth:
        auth = req.headers.get("authorization", "")
        key = auth[7:] if auth.startswith("Bearer ") else None
        scoped = key is not None and cfg.scoped_key is not None and key == cfg.scoped_key
        if key != cfg.access_key and not scoped:
            return json_reply(401, {"error": {"message": "Invalid access key: not recognised",
                                              "type": "authentication_error"}})
        if scoped and len(parts) >= 2 and parts[0] == "agents" and parts[1] != cfg.scoped_agent_id:
            return json_reply(403, {"error": {"code": "agent_scope_denied",
                                              "message": "This access key is not scoped to the requested agent.",
                                              "type": "permission_error"}})
    is_exec = (len(parts) == 3 and parts[0] == "agents" and parts[2] in ("run", "dispatch")
               and req.method == "POST")
    if is_exec and not req.secure and not trusted_loopback and "no-426" not in cfg.breaks:
        return json_reply(426, UPGRADE_BODY)
    if req.method == "GET" and path == "/health":
        return json_reply(200, {"status": "ok"})
    if req.method == "GET" and path == "/models":
        return json_reply(200, {"object": "list", "data": [{"id": "echo", "object": "model"}]})
    if len(parts) >= 2 and parts[0] == "agents":
        agent = parts[1]
        known = (agent in (cfg.agent_id, cfg.scoped_agent_id)
                 or agent.lower() == state.address.lower())
        if len(parts) == 2 and req.method == "GET" and known:
            return json_reply(200, {"id": cfg.agent_id, "address": state.address})
        if is_exec and (known or (agent == "default" and parts[2] == "run")):
            return run(state, req, parts[2], path)
    return Reply(404, "text/plain; charset=utf-8", b"Not Found")


def run(state: State, req: Inner, kind: str, path: str) -> Reply:
    if kind == "run" and state.cfg.lenient_base64:
        try:
            ok = isinstance(json.loads(req.body), dict)
        except (ValueError, RecursionError):
            ok = False
        if not ok:
            return Reply(400, "text/plain; charset=utf-8", b"Invalid request format")
    count = state.count_execution()
    if kind == "run":
        try:
            parsed = json.loads(req.body) if req.body else None
        except (ValueError, RecursionError):
            parsed = req.body.decode("utf-8", "replace")
        return json_reply(200, {"agentId": state.cfg.agent_id, "path": path, "input": parsed,
                                "secure": req.secure, "headers": req.headers,
                                "executions": count})
    try:
        spec = json.loads(req.body) if req.body else {}
        events = int(spec.get("events", 3)) if isinstance(spec, dict) else 3
        size = int(spec.get("size", 16)) if isinstance(spec, dict) else 16
    except (ValueError, TypeError, RecursionError):
        return Reply(400, "text/plain; charset=utf-8", b"Invalid request format")
    events = max(0, min(events, 1000))
    size = max(0, min(size, 64 * 1024))
    writes = [
        b"data: " + json.dumps({"n": i + 1, "pad": "x" * size, "executions": count},
                               separators=(",", ":")).encode() + b"\n\n"
        for i in range(events)
    ]
    writes.append(b"data: [DONE]\n\n")
    return Reply(200, "text/event-stream", stream=writes)


def make_handler(state: State):
    cfg = state.cfg

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Bounds every read from the socket (none when holding, as upstream).
        timeout = None if cfg.hold_incomplete else BODY_DEADLINE

        def log_message(self, *args) -> None:  # quiet: stdout carries the ready line
            pass

        # ---- plumbing -------------------------------------------------
        def send_body(self, status: int, ctype: str | None, body: bytes, extra=()) -> None:
            self.send_response(status)
            if ctype:
                self.send_header("Content-Type", ctype)
            for k, v in extra:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True

        def send_json(self, status: int, obj, extra=()) -> None:
            self.send_body(status, JSON_TYPE, json.dumps(obj, separators=(",", ":")).encode(), extra)

        def read_body(self, limit: int) -> bytes | None:
            if self.headers.get("Transfer-Encoding"):
                self.send_body(411, "text/plain", b"Length Required")
                return None
            raw = self.headers.get("Content-Length", "0").strip()
            if not raw.isdigit():
                self.send_body(400, "text/plain", b"Bad Request")
                return None
            n = int(raw)
            if n > limit:
                self.send_json(413, {"error": {"message": f"Request body too large ({n} > {limit} bytes)",
                                               "type": "payload_too_large"}})
                return None
            # A total deadline, not just a per-recv timeout: a sender that
            # drips one byte at a time must not hold the thread forever.
            deadline = time.monotonic() + (float("inf") if cfg.hold_incomplete else BODY_DEADLINE)
            parts, got = [], 0
            while got < n:
                try:
                    if time.monotonic() > deadline:
                        raise TimeoutError("body deadline passed")
                    chunk = self.rfile.read1(min(n - got, 65536))
                except OSError:  # includes the socket's own timeout
                    self.send_body(408, "text/plain", b"Request Timeout")
                    return None
                if not chunk:
                    self.close_connection = True
                    return None
                parts.append(chunk)
                got += len(chunk)
            return b"".join(parts)

        def loopback_peer(self) -> bool:
            try:
                return ipaddress.ip_address(self.client_address[0]).is_loopback
            except ValueError:
                return False

        def is_remote(self) -> bool:
            marker = self.headers.get(RELAY_MARKER) is not None
            if "relay-marker-ignored" in cfg.breaks:
                marker = False
            return marker or not self.loopback_peer() or not cfg.trust_loopback

        # ---- dispatch -------------------------------------------------
        def handle_any(self) -> None:
            path = normalise(self.path)
            if self.command == "OPTIONS":
                self.send_body(204, None, b"")
            elif self.command == "POST" and path == "/secure/session":
                self.handshake()
            elif self.command == "POST" and path == "/secure/call":
                self.call()
            else:
                body = self.read_body(MAX_PLAIN_BODY)
                if body is None:
                    return
                headers = {k.lower(): v for k, v in self.headers.items()}
                reply = route(state, Inner(self.command, self.path, headers, body,
                                           self.is_remote(), self.loopback_peer(), False))
                if reply.stream is not None:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", reply.content_type)
                    self.send_header("Connection", "close")
                    self.end_headers()
                    for chunk in reply.stream:
                        self.wfile.write(chunk)
                    self.close_connection = True
                else:
                    self.send_body(reply.status, reply.content_type, reply.body)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = handle_any

        # ---- /secure/session -----------------------------------------
        def handshake(self) -> None:
            body = self.read_body(MAX_SESSION_BODY)
            if body is None:
                return
            try:
                hello = json.loads(body)
                ok = (isinstance(hello, dict) and type(hello.get("v")) is int
                      and all(isinstance(hello.get(k), str) for k in ("agentAddress", "encPub", "nonce")))
            except (ValueError, UnicodeDecodeError, RecursionError):
                ok = False
            if not ok:
                return self.send_json(400, {"error": "Invalid handshake request"})
            if hello["v"] != 1:
                return self.send_json(400, {"error": "Unsupported secure channel version"})
            if hello["agentAddress"].lower() != state.address.lower():
                return self.send_json(404, {"error": "Unknown agent address"})
            eph = state.static_ephemeral if "static-ephemeral" in cfg.breaks else os.urandom(32)
            e_s = c.b64u(c.x25519_public(eph))
            sid = c.b64u(os.urandom(16))
            exp = int(time.time()) + cfg.session_ttl
            try:
                client_pub = cfg.b64_decode(hello["encPub"])
                if len(client_pub) != 32 or not cfg.b64_decode(hello["nonce"]):
                    raise c.ProtocolError("bad key or nonce")
                shared = c.x25519_shared(eph, client_pub)
            except c.ProtocolError:
                return self.send_json(400, {"error": "Malformed handshake"})
            tr = c.transcript(hello["agentAddress"], hello["encPub"], hello["nonce"], sid, e_s, exp)
            signer = state.other_key if "sign-other-key" in cfg.breaks else cfg.agent_secret
            c2s, s2c = c.session_keys(shared, tr)
            state.store(sid, Session(c2s, s2c, exp))
            self.send_json(200, {"encPub": e_s, "expiresAt": exp, "sid": sid,
                                 "signature": "0x" + c.sign(signer, tr).hex(), "v": 1})

        # ---- /secure/call ---------------------------------------------
        def call_error(self, kind: str) -> None:
            status, code, message = CALL_ERRORS[kind]
            self.send_json(status, {"error": {"code": code, "message": message,
                                              "type": "secure_channel_error"}})

        def call(self) -> None:
            body = self.read_body(MAX_CALL_BODY)
            if body is None:
                return
            try:
                env = json.loads(body)
            except (ValueError, UnicodeDecodeError, RecursionError):
                env = None
            if not (isinstance(env, dict) and type(env.get("v")) is int and type(env.get("seq")) is int
                    and isinstance(env.get("sid"), str) and isinstance(env.get("ct"), str)
                    and 0 <= env["seq"] < 2**64):
                return self.call_error("malformed")
            sid, seq = env["sid"], env["seq"]
            sess = state.lookup(sid)
            if sess is None:
                return self.call_error("unknown")
            if env["v"] != 1:
                return self.call_error("decrypt")
            with sess.lock:
                if "mark-before-decrypt" in cfg.breaks and not sess.window.accept(seq):
                    return self.call_error("replay")
                try:
                    plain = c.open_sealed(sess.c2s, seq, cfg.b64_decode(env["ct"]), c.request_aad(sid, seq))
                except c.ProtocolError:
                    return self.call_error("decrypt")
                if ("mark-before-decrypt" not in cfg.breaks and "no-replay-check" not in cfg.breaks
                        and not sess.window.accept(seq)):
                    return self.call_error("replay")
            inner = self.parse_inner(plain)
            if inner is None:
                return self.call_error("inner")
            reply = route(state, inner)
            if "session-key-responses" in cfg.breaks:
                key = sess.s2c
            else:
                key = c.response_key(sess.s2c, seq)
            if reply.stream is not None:
                self.send_stream(key, sid, seq, reply)
            else:
                self.send_buffered(key, sid, seq, reply)

        def parse_inner(self, plain: bytes) -> Inner | None:
            try:
                req = json.loads(plain)
            except (ValueError, UnicodeDecodeError, RecursionError):
                return None
            if not (isinstance(req, dict) and isinstance(req.get("method"), str)
                    and isinstance(req.get("path"), str) and req["path"].startswith("/")):
                return None
            path = normalise(req["path"])
            if (path == "/secure" or path.startswith("/secure/")) and "nested-secure" not in cfg.breaks:
                return None
            extra = req.get("headers") or {}
            if not isinstance(extra, dict) or not all(isinstance(v, str) for v in extra.values()):
                return None
            headers = {k.lower(): v for k, v in extra.items() if k.lower() not in RESERVED_INNER}
            for name in ("authorization", "accept", "contentType"):
                value = req.get(name)
                if value is not None:
                    if not isinstance(value, str):
                        return None
                    headers["content-type" if name == "contentType" else name] = value
            body = b""
            if req.get("body") is not None:
                try:
                    body = cfg.b64_decode(req["body"])
                except c.ProtocolError:
                    if not cfg.lenient_base64:
                        return None  # CALL-9: refuse rather than run with an empty body
                    body = b""  # as upstream: an undecodable body is an empty one
            remote = self.is_remote()
            return Inner(req["method"], req["path"], headers, body, remote, self.loopback_peer(), True)

        def frame(self, key: bytes, sid: str, rseq: int, fseq: int, plain: bytes, fin: bool) -> bytes:
            ct = c.b64u(c.seal(key, fseq, plain, c.response_aad(sid, rseq, fseq, fin)))
            obj = {"seq": fseq, "ct": ct}
            if fin:
                obj["fin"] = True
            return json.dumps(obj, separators=(",", ":")).encode()

        def send_buffered(self, key: bytes, sid: str, seq: int, reply: Reply) -> None:
            inner = {"status": reply.status}
            if reply.content_type:
                inner["contentType"] = reply.content_type
            if reply.body:
                inner["body"] = c.b64u(reply.body)
            plain = json.dumps(inner, separators=(",", ":")).encode()
            status = reply.status if "status-outside" in cfg.breaks else 200
            self.send_body(status, JSON_TYPE, self.frame(key, sid, seq, 0, plain, True),
                           [("X-Osaurus-Secure-Channel", "1")])

        def send_stream(self, key: bytes, sid: str, seq: int, reply: Reply) -> None:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Cache-Control", "no-cache")
            self.send_header("X-Osaurus-Secure-Channel", "1")
            self.send_header("Connection", "close")
            self.end_headers()
            for n, chunk in enumerate(reply.stream or []):
                self.wfile.write(b"data: " + self.frame(key, sid, seq, n, chunk, False) + b"\n\n")
                self.wfile.flush()
            if "drop-stream-fin" not in cfg.breaks:
                last = len(reply.stream or [])
                self.wfile.write(b"data: " + self.frame(key, sid, seq, last, b"", True) + b"\n\n")
            self.wfile.flush()
            self.close_connection = True

    return Handler


def serve(cfg: Config, host: str, port: int) -> ThreadingHTTPServer:
    """Binds the server; the caller runs serve_forever()."""
    state = State(cfg)
    server = ThreadingHTTPServer((host, port), make_handler(state))
    server.daemon_threads = True
    server.state = state  # type: ignore[attr-defined]
    return server
