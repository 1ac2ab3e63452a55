"""An Osaurus Secure Channel v1 client: one connection per request."""

from __future__ import annotations

import http.client
import json
import os
import sys
import time
import urllib.parse
from dataclasses import dataclass

import osc_crypto as c

MAX_RESPONSE = 16 * 1024 * 1024
TIMEOUT = 30
# A cached session is reused only while it has more than this many seconds
# left (SES-3, as the upstream clients do).
SESSION_REUSE_MARGIN = 60

# Client breakages for `call --break`, each with the requirement it violates.
CLIENT_BREAKS = {"identity-unchecked": "HS-2", "missing-fin-ignored": "RESP-5"}

# Exit codes, chosen to match `osc-harness call` so both clients read alike.
EXIT_INNER_NOT_2XX = 3
EXIT_IDENTITY = 4
EXIT_TRUNCATED = 5
EXIT_PROTOCOL = 6
EXIT_TRANSPORT = 7
EXIT_REFUSED = 8


class ClientFailure(Exception):
    """Ends the call with an exit code and a reason."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


@dataclass
class ClientSession:
    sid: str
    c2s: bytes
    s2c: bytes
    expires_at: int
    next_seq: int = 1


class Client:
    def __init__(self, target: str, pinned: str, relay_origin: bool, total_secs: float = 600,
                 breaks: frozenset[str] = frozenset()) -> None:
        self.breaks = breaks
        # One deadline for the whole call: a server that drips bytes must not
        # keep the client busy forever even though every single read is quick.
        self.deadline = time.monotonic() + total_secs
        url = urllib.parse.urlsplit(target)
        if url.scheme != "http" or not url.hostname:
            raise ClientFailure(2, f"target must be http://host:port, got {target!r}")
        self.host, self.port = url.hostname, url.port or 80
        self.base = url.path.rstrip("/")
        self.pinned = pinned
        self.relay_origin = relay_origin
        # The session of the last handshake, reused by later calls (CALL-1:
        # their seqs go on rising on it).
        self.session: ClientSession | None = None

    def _post(self, path: str, body: bytes, accept: str):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT)
        headers = {"Content-Type": "application/json", "Accept": accept, "Connection": "close"}
        if self.relay_origin:
            headers["X-Osaurus-Relay-Origin"] = "1"
        try:
            conn.request("POST", self.base + path, body=body, headers=headers)
            return conn, conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise ClientFailure(EXIT_TRANSPORT, f"transport error on {path}: {exc}") from exc

    def _read_all(self, resp) -> bytes:
        try:
            data = resp.read(MAX_RESPONSE + 1)
        except (OSError, http.client.HTTPException) as exc:
            raise ClientFailure(EXIT_TRANSPORT, f"reading the response failed: {exc}") from exc
        if len(data) > MAX_RESPONSE:
            raise ClientFailure(EXIT_TRANSPORT, "response larger than the limit")
        return data

    def handshake(self) -> ClientSession:
        eph = os.urandom(32)
        e_c = c.b64u(c.x25519_public(eph))
        n_c = c.b64u(os.urandom(16))
        address = self.pinned.lower()
        hello = {"v": 1, "agentAddress": address, "encPub": e_c, "nonce": n_c}
        conn, resp = self._post("/secure/session", json.dumps(hello).encode(), "application/json")
        try:
            body = self._read_all(resp)
        finally:
            conn.close()
        if resp.status != 200:
            raise ClientFailure(EXIT_REFUSED, f"handshake refused: {resp.status} {body[:300]!r}")
        try:
            sh = json.loads(body)
            if not isinstance(sh, dict):
                raise ValueError("not an object")
            v, e_s, sid, exp, sig = (sh["v"], sh["encPub"], sh["sid"], sh["expiresAt"], sh["signature"])
            if not (type(v) is int and type(exp) is int and isinstance(e_s, str)
                    and isinstance(sid, str) and isinstance(sig, str)):
                raise ValueError("wrong field types")
        except (ValueError, KeyError, UnicodeDecodeError, RecursionError) as exc:
            raise ClientFailure(EXIT_PROTOCOL, f"malformed ServerHello: {exc}") from exc
        if v != 1:
            raise ClientFailure(EXIT_PROTOCOL, f"ServerHello v={v} is not 1")
        if not sid:
            raise ClientFailure(EXIT_PROTOCOL, "ServerHello sid is empty")
        try:
            server_pub = c.b64u_decode(e_s)
        except c.ProtocolError as exc:
            raise ClientFailure(EXIT_PROTOCOL, f"ServerHello encPub: {exc}") from exc
        tr = c.transcript(address, e_c, n_c, sid, e_s, exp)
        try:
            signer = c.recover_address(bytes.fromhex(sig.removeprefix("0x")), tr)
        except (ValueError, c.ProtocolError) as exc:
            raise ClientFailure(EXIT_IDENTITY, f"ServerHello signature unusable: {exc}") from exc
        if signer.lower() != address and "identity-unchecked" not in self.breaks:
            raise ClientFailure(EXIT_IDENTITY, f"identity mismatch: signed by {signer}, pinned {self.pinned}")
        if exp <= time.time():
            raise ClientFailure(EXIT_PROTOCOL, "ServerHello is already expired")
        try:
            shared = c.x25519_shared(eph, server_pub)
        except c.ProtocolError as exc:
            raise ClientFailure(EXIT_PROTOCOL, f"ServerHello encPub refused: {exc}") from exc
        c2s, s2c = c.session_keys(shared, tr)
        return ClientSession(sid, c2s, s2c, exp)

    def call(self, inner: dict, stream: bool, out) -> int:
        """Sends one call on the cached session (or a new one); on 401
        secure_session_unknown handshakes again and retries once (SES-2)."""
        for attempt in (1, 2):
            sess = self.session
            if attempt == 2 or sess is None or sess.expires_at - SESSION_REUSE_MARGIN <= time.time():
                self.session = None
                sess = self.session = self.handshake()
            result = self._call_once(sess, inner, stream, out)
            if result is not None:
                return result
            self.session = None
            if attempt == 2:
                raise ClientFailure(EXIT_REFUSED, "session unknown again after a fresh handshake")
        raise AssertionError("unreachable")

    def _call_once(self, sess: ClientSession, inner: dict, stream: bool, out) -> int | None:
        if sess.expires_at <= time.time():
            raise ClientFailure(EXIT_PROTOCOL, "session expired before use")
        seq = sess.next_seq
        sess.next_seq += 1
        plain = json.dumps(inner, separators=(",", ":")).encode()
        ct = c.b64u(c.seal(sess.c2s, seq, plain, c.request_aad(sess.sid, seq)))
        env = {"v": 1, "sid": sess.sid, "seq": seq, "ct": ct}
        conn, resp = self._post("/secure/call", json.dumps(env).encode(),
                                inner.get("accept", "application/json"))
        try:
            ctype = (resp.getheader("Content-Type") or "").lower()
            key = c.response_key(sess.s2c, seq)
            if ctype.startswith("text/event-stream"):
                return self._stream(resp, key, sess.sid, seq, out)
            body = self._read_all(resp)
        finally:
            conn.close()
        if resp.status == 401 and b"secure_session_unknown" in body:
            return None
        if resp.status != 200:
            raise ClientFailure(EXIT_REFUSED, f"call refused: {resp.status} {body[:300]!r}")
        try:
            frame = json.loads(body)
            self._check_frame(frame, 0)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise ClientFailure(EXIT_PROTOCOL, f"malformed frame: {exc}") from exc
        if frame.get("fin") is not True:
            raise ClientFailure(EXIT_TRUNCATED, "buffered response has no fin frame")
        opened = self._open(key, sess.sid, seq, frame)
        try:
            ir = json.loads(opened)
            status = ir["status"]
            if type(status) is not int:
                raise ValueError("status is not an integer")
            inner_body = c.b64u_decode(ir["body"]) if ir.get("body") is not None else b""
        except (ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError, c.ProtocolError) as exc:
            raise ClientFailure(EXIT_PROTOCOL, f"malformed inner response: {exc}") from exc
        out.write(inner_body)
        out.flush()
        print(f"inner status {status} {ir.get('contentType')}", file=sys.stderr)
        return 0 if 200 <= status < 300 else EXIT_INNER_NOT_2XX

    @staticmethod
    def _check_frame(frame, expected: int) -> None:
        if not (isinstance(frame, dict) and type(frame.get("seq")) is int and isinstance(frame.get("ct"), str)):
            raise ClientFailure(EXIT_PROTOCOL, "frame lacks seq/ct")
        if "fin" in frame and type(frame["fin"]) is not bool:
            raise ClientFailure(EXIT_PROTOCOL, "frame fin is not a boolean")
        if frame["seq"] != expected:
            raise ClientFailure(EXIT_PROTOCOL, f"frame seq {frame['seq']} out of order (expected {expected})")

    @staticmethod
    def _open(key: bytes, sid: str, rseq: int, frame: dict) -> bytes:
        fin = frame.get("fin") is True
        try:
            return c.open_sealed(key, frame["seq"], c.b64u_decode(frame["ct"]),
                                 c.response_aad(sid, rseq, frame["seq"], fin))
        except c.ProtocolError as exc:
            raise ClientFailure(EXIT_PROTOCOL, f"frame {frame['seq']} does not open: {exc}") from exc

    def _stream(self, resp, key: bytes, sid: str, rseq: int, out) -> int:
        # A bytearray and a resumed search keep one huge event linear: the
        # old bytes concatenation and full rescan made it quadratic, slow
        # enough that a 64 MiB event outlasted test-client's timeout.
        expected, finished, total, buf, scanned = 0, False, 0, bytearray(), 0
        while True:
            try:
                chunk = resp.read1(65536)
            except (OSError, http.client.HTTPException) as exc:
                # A broken connection is a truncation unless fin already arrived.
                if finished:
                    break
                raise ClientFailure(EXIT_TRUNCATED, f"stream broke before fin: {exc}") from exc
            if not chunk:
                break
            if time.monotonic() > self.deadline:
                raise ClientFailure(EXIT_TRANSPORT, "the response took longer than the call's time limit")
            total += len(chunk)
            if total > MAX_RESPONSE:
                raise ClientFailure(EXIT_TRANSPORT, "stream larger than the limit")
            buf += chunk
            while True:
                end = buf.find(b"\n\n", scanned)
                if end < 0:
                    scanned = max(0, len(buf) - 1)
                    break
                event = bytes(buf[:end])
                del buf[:end + 2]
                scanned = 0
                data = [ln[5:].removeprefix(b" ") for ln in event.split(b"\n") if ln.startswith(b"data:")]
                if not data:
                    continue
                if finished:
                    raise ClientFailure(EXIT_PROTOCOL, "frame after fin")
                try:
                    frame = json.loads(b"\n".join(data))
                except (ValueError, UnicodeDecodeError, RecursionError) as exc:
                    raise ClientFailure(EXIT_PROTOCOL, f"malformed stream frame: {exc}") from exc
                self._check_frame(frame, expected)
                plain = self._open(key, sid, rseq, frame)
                expected += 1
                if frame.get("fin") is True:
                    finished = True
                out.write(plain)
                out.flush()
        if not finished and "missing-fin-ignored" not in self.breaks:
            raise ClientFailure(EXIT_TRUNCATED, "stream ended without an authenticated fin frame")
        status = resp.status
        return 0 if 200 <= status < 300 else EXIT_INNER_NOT_2XX
