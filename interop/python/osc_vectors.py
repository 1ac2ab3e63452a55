"""Known-answer vectors in the shape of the upstream fixture: make and check."""

from __future__ import annotations

import json

import osc_crypto as c


def _frame(key: bytes, sid: str, request_seq: int, seq: int, plaintext: str, fin: bool) -> dict:
    aad = c.response_aad(sid, request_seq, seq, fin)
    return {
        "aad": aad,
        "ct": c.b64u(c.seal(key, seq, plaintext.encode(), aad)),
        "fin": fin,
        "plaintext": plaintext,
        "seq": seq,
    }


def build(
    agent_secret: bytes,
    client_eph: bytes,
    server_eph: bytes,
    hello_nonce: bytes,
    sid_bytes: bytes,
    expires_at: int,
    inner_request: str,
    buffered_plaintext: str,
    stream_inner_request: str,
    stream_writes: list[str],
) -> dict:
    """Computes every field of a vector set from its inputs."""
    address = c.address_of_secret(agent_secret)
    e_c = c.b64u(c.x25519_public(client_eph))
    e_s = c.b64u(c.x25519_public(server_eph))
    n_c = c.b64u(hello_nonce)
    sid = c.b64u(sid_bytes)
    tr = c.transcript(address, e_c, n_c, sid, e_s, expires_at)
    shared = c.x25519_shared(client_eph, c.x25519_public(server_eph))
    c2s, s2c = c.session_keys(shared, tr)
    call_aad = c.request_aad(sid, 1)
    call_ct = c.b64u(c.seal(c2s, 1, inner_request.encode(), call_aad))
    k1 = c.response_key(s2c, 1)
    k2 = c.response_key(s2c, 2)
    stream_ct = c.b64u(c.seal(c2s, 2, stream_inner_request.encode(), c.request_aad(sid, 2)))
    frames = [_frame(k2, sid, 2, i, w, False) for i, w in enumerate(stream_writes)]
    frames.append(_frame(k2, sid, 2, len(stream_writes), "", True))
    return {
        "agent": {"address": address, "privateKeyHex": agent_secret.hex()},
        "bufferedResponse": {
            "frame": _frame(k1, sid, 1, 0, buffered_plaintext, True),
            "requestSeq": 1,
            "responseKeyHex": k1.hex(),
        },
        "call": {
            "aad": call_aad,
            "body": {"ct": call_ct, "seq": 1, "sid": sid, "v": 1},
            "ct": call_ct,
            "innerRequest": inner_request,
            "nonceHex": c.nonce(1).hex(),
            "requestSeq": 1,
        },
        "domain": c.DOMAIN,
        "handshake": {
            "clientEphemeralPrivateHex": client_eph.hex(),
            "clientHello": {"agentAddress": address.lower(), "encPub": e_c, "nonce": n_c, "v": 1},
            "clientToServerKeyHex": c2s.hex(),
            "domainHashHex": c.signing_digest(tr).hex(),
            "serverEphemeralPrivateHex": server_eph.hex(),
            "serverHello": {
                "encPub": e_s,
                "expiresAt": expires_at,
                "sid": sid,
                "signature": "0x" + c.sign(agent_secret, tr).hex(),
                "v": 1,
            },
            "serverToClientKeyHex": s2c.hex(),
            "sharedSecretHex": shared.hex(),
            "transcript": tr.decode(),
        },
        "signingDomainPrefix": c.SIGNING_PREFIX,
        "streamResponse": {
            "callCt": stream_ct,
            "frames": frames,
            "requestSeq": 2,
            "responseKeyHex": k2.hex(),
        },
        "version": 1,
    }


def own_vectors() -> dict:
    """This implementation's own vector set: fixed inputs unlike the fixture's."""
    seed = lambda label: c.keccak256(b"osc-peer-python:" + label.encode())  # noqa: E731
    inner = json.dumps(
        {"method": "POST", "path": "/agents/default/run", "accept": "application/json",
         "contentType": "application/json", "body": c.b64u(b'{"prompt":"hi"}')},
        separators=(",", ":"),
    )
    buffered = json.dumps(
        {"status": 200, "contentType": "application/json; charset=utf-8",
         "body": c.b64u(b'{"reply":"hello"}')},
        separators=(",", ":"),
    )
    # The fixture has no field for a second inner request: its stream call
    # seals the same innerRequest under seq 2, and so does this one.
    stream_inner = inner
    return build(
        agent_secret=seed("agent"),
        client_eph=seed("client-ephemeral"),
        server_eph=seed("server-ephemeral"),
        hello_nonce=seed("nonce")[:16],
        sid_bytes=seed("sid")[:16],
        expires_at=1900000000,
        inner_request=inner,
        buffered_plaintext=buffered,
        stream_inner_request=stream_inner,
        stream_writes=['data: {"token":"a"}\n\n', ": keep-alive\n\n", "data: [DONE]\n\n"],
    )


def dump(vectors: dict) -> str:
    """Pretty JSON with sorted keys, like the fixture."""
    return json.dumps(vectors, indent=2, sort_keys=True, separators=(",", " : ")) + "\n"


def verify(doc: dict) -> list[str]:
    """Recomputes every field of a vector set; returns the mismatches."""
    errors: list[str] = []

    def check(name: str, got, want) -> None:
        if got != want:
            errors.append(f"{name}: file has {got!r}, recomputed {want!r}")

    try:
        hs = doc["handshake"]
        agent_secret = bytes.fromhex(doc["agent"]["privateKeyHex"])
        client_eph = bytes.fromhex(hs["clientEphemeralPrivateHex"])
        server_eph = bytes.fromhex(hs["serverEphemeralPrivateHex"])
        ch, sh = hs["clientHello"], hs["serverHello"]
        call = doc["call"]
        stream = doc["streamResponse"]
        sid = sh["sid"]

        # The stream's inner request is not in the file; it must open under c2s.
        shared = c.x25519_shared(client_eph, c.x25519_public(server_eph))
        tr = c.transcript(ch["agentAddress"], ch["encPub"], ch["nonce"], sid, sh["encPub"], sh["expiresAt"])
        c2s, _ = c.session_keys(shared, tr)
        rs = stream["requestSeq"]
        stream_inner = c.open_sealed(
            c2s, rs, c.b64u_decode(stream["callCt"]), c.request_aad(sid, rs)
        ).decode()
        writes = [f["plaintext"] for f in stream["frames"] if not f["fin"]]
        want = build(
            agent_secret=agent_secret,
            client_eph=client_eph,
            server_eph=server_eph,
            hello_nonce=c.b64u_decode(ch["nonce"]),
            sid_bytes=c.b64u_decode(sid),
            expires_at=sh["expiresAt"],
            inner_request=call["innerRequest"],
            buffered_plaintext=doc["bufferedResponse"]["frame"]["plaintext"],
            stream_inner_request=stream_inner,
            stream_writes=writes,
        )
        if call["requestSeq"] != 1 or doc["bufferedResponse"]["requestSeq"] != 1 or rs != 2:
            errors.append("requestSeq values differ from the fixture's 1/1/2 layout")
        _compare("", doc, want, errors)
        recovered = c.recover_address(bytes.fromhex(sh["signature"].removeprefix("0x")), tr)
        check("signature recovers to", recovered.lower(), doc["agent"]["address"].lower())
    except (KeyError, TypeError, ValueError, c.ProtocolError) as exc:
        errors.append(f"cannot recompute: {type(exc).__name__}: {exc}")
    return errors


def _compare(path: str, got, want, errors: list[str]) -> None:
    if isinstance(want, dict):
        if not isinstance(got, dict):
            errors.append(f"{path or '/'}: not an object")
            return
        for key, value in want.items():
            if key not in got:
                errors.append(f"{path}/{key}: missing")
            else:
                _compare(f"{path}/{key}", got[key], value, errors)
    elif isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            errors.append(f"{path}: list length differs")
            return
        for i, (g, w) in enumerate(zip(got, want)):
            _compare(f"{path}/{i}", g, w, errors)
    elif got != want:
        errors.append(f"{path}: file has {got!r}, recomputed {want!r}")
