#!/usr/bin/env python3
"""Independent Osaurus Secure Channel v1 peer: serve, call, vectors.

  osc_peer.py serve [--port 0] [--agent-key-hex HEX] [--access-key KEY]
                    [--session-ttl SECS] [--trust-loopback true|false] [--break NAME]...
                    [--tls-cert PEM --tls-key PEM]
                    [--lenient-base64]
  osc_peer.py call --target URL --agent-address 0x… [--access-key KEY]
                   [--method M] [--path P] [--data TEXT] [--stream] [--relay-origin]
                   [--mode buffered|stream] [--max-secs S] [--break NAME]
  osc_peer.py vectors --out FILE
  osc_peer.py verify-vectors FILE...
  osc_peer.py selfcheck            (reproduces the upstream fixture)
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import secrets
import sys
import uuid

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import osc_crypto as c  # noqa: E402
import osc_vectors  # noqa: E402

UPSTREAM_FIXTURE = (pathlib.Path(__file__).resolve().parents[2]
                    / "vectors" / "upstream" / "secure-channel-v1-vectors.json")


def cmd_serve(args) -> int:
    import osc_server

    unknown = [b for b in args.breaks if b not in osc_server.BREAKS]
    if unknown:
        print(f"unknown --break {unknown}; known: {sorted(osc_server.BREAKS)}", file=sys.stderr)
        return 2
    secret = bytes.fromhex(args.agent_key_hex) if args.agent_key_hex else secrets.token_bytes(32)
    cfg = osc_server.Config(
        agent_secret=secret,
        agent_id=args.agent_id or str(uuid.uuid4()),
        access_key=args.access_key or "osk-v1." + secrets.token_urlsafe(24),
        session_ttl=args.session_ttl,
        trust_loopback=args.trust_loopback == "true",
        breaks=set(args.breaks),
        scoped_key=args.scoped_key or "osk-v1.scoped-" + secrets.token_urlsafe(16),
        scoped_agent_id=args.scoped_agent_id or str(uuid.uuid4()),
        lenient_base64=args.lenient_base64,
        hold_incomplete=args.hold_incomplete,
    )
    server = osc_server.serve(cfg, args.host, args.port)
    host, port = server.server_address[:2]
    scheme = "http"
    if args.tls_cert:
        import ssl

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        ctx.set_alpn_protocols(["http/1.1"])
        # The handshake runs in the handler thread on first read, so a slow
        # client cannot hold up accept().
        server.socket = ctx.wrap_socket(server.socket, server_side=True,
                                        do_handshake_on_connect=False)
        plain_shutdown = server.shutdown_request

        def shutdown_request(request):
            # A close-delimited body ends with TLS close_notify, so the
            # client can tell the end from a cut connection.
            try:
                request.unwrap()
            except (OSError, ValueError):
                pass
            plain_shutdown(request)

        server.shutdown_request = shutdown_request
        scheme = "https"
    print(json.dumps({
        "url": f"{scheme}://{host}:{port}",
        "agentAddress": cfg.address,
        "agentId": cfg.agent_id,
        "accessKey": cfg.access_key,
        "sessionTtl": cfg.session_ttl,
        "scopedKey": cfg.scoped_key,
        "scopedAgentId": cfg.scoped_agent_id,
        "breaks": sorted(cfg.breaks),
        "lenientBase64": cfg.lenient_base64,
        "holdIncomplete": cfg.hold_incomplete,
    }), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


class _LineTracker:
    """A binary writer that remembers whether its output ends a line."""

    def __init__(self, out) -> None:
        self.out, self.at_line_start = out, True

    def write(self, data: bytes) -> None:
        if data:
            self.at_line_start = data.endswith(b"\n")
        self.out.write(data)

    def flush(self) -> None:
        self.out.flush()


def cmd_call(args) -> int:
    import osc_client

    if args.mode == "stream":
        # The client-shim contract: stream mode is POST {path} with body {}.
        args.stream, args.data = True, args.data if args.data is not None else "{}"
    elif args.mode == "buffered":
        args.method = args.method or "GET"
    inner = {"method": args.method or ("POST" if args.data is not None else "GET"), "path": args.path}
    if args.access_key:
        inner["authorization"] = f"Bearer {args.access_key}"
    inner["accept"] = "text/event-stream" if args.stream else "application/json"
    if args.data is not None:
        data = args.data
        if data.startswith("@"):
            data = pathlib.Path(data[1:]).read_text()
        inner["contentType"] = "application/json"
        inner["body"] = c.b64u(data.encode())
    try:
        unknown = set(args.breaks) - set(osc_client.CLIENT_BREAKS)
        if unknown:
            print(f"unknown --break {sorted(unknown)}; known: {sorted(osc_client.CLIENT_BREAKS)}",
                  file=sys.stderr)
            return 2
        client = osc_client.Client(args.target, args.agent_address, args.relay_origin,
                                   args.max_secs, frozenset(args.breaks))
        out = _LineTracker(sys.stdout.buffer)
        for _ in range(args.repeat):
            code = client.call(inner, args.stream, out)
            if code != 0:
                return code
            # Repeated bodies each get their own line, so a reader can count them.
            if args.repeat > 1 and not out.at_line_start:
                out.write(b"\n")
                out.flush()
        return 0
    except osc_client.ClientFailure as failure:
        print(f"osc_peer call: {failure}", file=sys.stderr)
        return failure.code


def cmd_vectors(args) -> int:
    text = osc_vectors.dump(osc_vectors.own_vectors())
    if args.out:
        pathlib.Path(args.out).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def verify_files(files) -> int:
    bad = 0
    for name in files:
        try:
            doc = json.loads(pathlib.Path(name).read_text())
        except (OSError, ValueError) as exc:
            print(f"{name}: unreadable: {exc}")
            bad += 1
            continue
        errors = osc_vectors.verify(doc)
        for err in errors:
            print(f"{name}: {err}")
        print(f"{name}: {'FAIL' if errors else 'ok'} ({len(errors)} mismatches)")
        bad += bool(errors)
    return 1 if bad else 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("serve")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=0)
    s.add_argument("--agent-key-hex")
    s.add_argument("--agent-id")
    s.add_argument("--access-key")
    s.add_argument("--scoped-key", help="a key that reaches only --scoped-agent-id's agent routes")
    s.add_argument("--scoped-agent-id")
    s.add_argument("--session-ttl", type=int, default=3600)
    s.add_argument("--trust-loopback", choices=["true", "false"], default="true")
    s.add_argument("--break", dest="breaks", action="append", default=[])
    s.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate chain")
    s.add_argument("--tls-key", help="the PEM private key of --tls-cert")
    s.add_argument("--lenient-base64", action="store_true",
                   help="decode base64url as upstream does: padding re-added, standard base64 "
                        "accepted, an undecodable inner body run as empty (CALL-9), and the "
                        "run route refusing a body that is not a JSON object")
    s.add_argument("--hold-incomplete", action="store_true",
                   help="wait for promised request bytes without a deadline, as upstream does "
                        "(it has no idle timeout): an incomplete request is held until the "
                        "client gives up (LIM-2 is a SHOULD)")

    k = sub.add_parser("call")
    k.add_argument("--target", required=True)
    k.add_argument("--agent-address", required=True)
    k.add_argument("--access-key")
    k.add_argument("--method")
    k.add_argument("--path", default="/health")
    k.add_argument("--data")
    k.add_argument("--stream", action="store_true")
    k.add_argument("--relay-origin", action="store_true")
    k.add_argument("--break", dest="breaks", action="append", default=[],
                   help="misbehave on purpose: identity-unchecked, missing-fin-ignored")
    k.add_argument("--max-secs", type=float, default=600,
                   help="seconds the whole call may take, streams included")
    k.add_argument("--repeat", type=int, default=1, choices=range(1, 1001), metavar="N",
                   help="make the call N times over one session (the {calls} of test-client)")
    k.add_argument("--mode", choices=["buffered", "stream"],
                   help="the client-shim modes of osc-harness test-client")

    v = sub.add_parser("vectors")
    v.add_argument("--out")
    w = sub.add_parser("verify-vectors")
    w.add_argument("files", nargs="+")
    sub.add_parser("selfcheck")

    args = p.parse_args(argv)
    if args.cmd == "serve":
        return cmd_serve(args)
    if args.cmd == "call":
        return cmd_call(args)
    if args.cmd == "vectors":
        return cmd_vectors(args)
    if args.cmd == "verify-vectors":
        return verify_files(args.files)
    return verify_files([os.fspath(UPSTREAM_FIXTURE)])


if __name__ == "__main__":
    sys.exit(main())
