"""Cryptographic building blocks of Osaurus Secure Channel v1.

Written from the protocol text alone (SPEC.md / docs/PROTOCOL.md), so that it
can check the Rust harness as an independent second implementation.
"""

from __future__ import annotations

import base64
import hashlib
import re

import coincurve
from Crypto.Hash import keccak
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey,
    X25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

DOMAIN = "osaurus-sc1"
SIGNING_PREFIX = "Osaurus Secure Channel"
TAG_LEN = 16


class ProtocolError(Exception):
    """Any violation of the wire format or a failed cryptographic check."""


_B64_CHARS = re.compile(r"^[A-Za-z0-9_\-+/]*={0,2}$")


def b64u(data: bytes) -> str:
    """base64url without padding (ENC-1)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64u_decode(text: str) -> bytes:
    """Lenient like upstream: padding and the standard alphabet are accepted."""
    if not isinstance(text, str) or not _B64_CHARS.match(text):
        raise ProtocolError("not base64url")
    core = text.rstrip("=").replace("+", "-").replace("/", "_")
    if len(core) % 4 == 1:
        raise ProtocolError("base64url length is 1 mod 4")
    try:
        return base64.urlsafe_b64decode(core + "=" * (-len(core) % 4))
    except (ValueError, TypeError) as exc:
        raise ProtocolError(f"bad base64url: {exc}") from exc


def b64u_decode_upstream(text: str) -> bytes:
    """As upstream decodes (ENC-1): map `-_` to `+/`, re-add `=` until the
    length is a multiple of 4, then whatever standard base64 accepts."""
    if not isinstance(text, str):
        raise ProtocolError("not base64url")
    std = text.replace("-", "+").replace("_", "/")
    std += "=" * (-len(std) % 4)
    try:
        return base64.b64decode(std.encode("ascii"), validate=True)
    except (ValueError, TypeError, UnicodeEncodeError) as exc:
        raise ProtocolError(f"bad base64: {exc}") from exc


def keccak256(data: bytes) -> bytes:
    """Original Keccak-256 (padding byte 0x01), not SHA3-256."""
    h = keccak.new(digest_bits=256)
    h.update(data)
    return h.digest()


def checksum_address(raw20: bytes) -> str:
    """EIP-55 mixed-case address."""
    hexaddr = raw20.hex()
    digest = keccak256(hexaddr.encode("ascii")).hex()
    out = "".join(
        c.upper() if c.isalpha() and int(digest[i], 16) >= 8 else c
        for i, c in enumerate(hexaddr)
    )
    return "0x" + out


def address_of_pubkey(pub: coincurve.PublicKey) -> str:
    """ID-1: last 20 bytes of Keccak-256 over the 64-byte point."""
    point = pub.format(compressed=False)[1:]
    return checksum_address(keccak256(point)[-20:])


def address_of_secret(secret: bytes) -> str:
    """Address of a secp256k1 secret key."""
    return address_of_pubkey(coincurve.PrivateKey(secret).public_key)


def signing_digest(payload: bytes, prefix: str = SIGNING_PREFIX) -> bytes:
    """ID-2: the domain-separated digest that is actually signed."""
    head = b"\x19" + prefix.encode() + b":\n" + str(len(payload)).encode()
    return keccak256(head + payload)


def sign(secret: bytes, payload: bytes) -> bytes:
    """ID-3: 65 bytes r||s||v with v = recid + 27 (RFC 6979, low-S)."""
    sig = coincurve.PrivateKey(secret).sign_recoverable(
        signing_digest(payload), hasher=None
    )
    return sig[:64] + bytes([sig[64] + 27])


def recover_address(signature: bytes, payload: bytes) -> str:
    """Recovers the signer's address; refuses anything not 65 bytes, v 27/28."""
    if len(signature) != 65:
        raise ProtocolError(f"signature is {len(signature)} bytes, not 65")
    v = signature[64]
    if v not in (27, 28):
        raise ProtocolError(f"signature v={v} is not 27 or 28")
    try:
        pub = coincurve.PublicKey.from_signature_and_message(
            signature[:64] + bytes([v - 27]), signing_digest(payload), hasher=None
        )
    except Exception as exc:  # coincurve raises plain Exception subclasses
        raise ProtocolError(f"signature does not recover: {exc}") from exc
    return address_of_pubkey(pub)


def transcript(agent_address: str, e_c: str, n_c: str, sid: str, e_s: str, exp: int) -> bytes:
    """The handshake transcript, built from the strings seen on the wire."""
    return (
        f"{DOMAIN}|v=1|aA={agent_address.lower()}|eC={e_c}|nC={n_c}"
        f"|sid={sid}|eS={e_s}|exp={exp}"
    ).encode("utf-8")


def x25519_public(secret: bytes) -> bytes:
    """Public key of an X25519 secret."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    key = X25519PrivateKey.from_private_bytes(secret)
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def x25519_shared(secret: bytes, peer_public: bytes) -> bytes:
    """Key agreement; an all-zero result (low-order peer key) is refused (HS-7)."""
    if len(peer_public) != 32:
        raise ProtocolError("X25519 public key is not 32 bytes")
    try:
        shared = X25519PrivateKey.from_private_bytes(secret).exchange(
            X25519PublicKey.from_public_bytes(peer_public)
        )
    except ValueError as exc:
        raise ProtocolError(f"key agreement failed: {exc}") from exc
    if shared == bytes(32):
        raise ProtocolError("key agreement gave the all-zero secret")
    return shared


def hkdf(ikm: bytes, salt: bytes | None, info: str) -> bytes:
    """HKDF-SHA256 with 32 bytes of output."""
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=salt or None, info=info.encode()
    ).derive(ikm)


def session_keys(shared: bytes, transcript_bytes: bytes) -> tuple[bytes, bytes]:
    """KS-1: (c2s, s2c)."""
    salt = hashlib.sha256(transcript_bytes).digest()
    return hkdf(shared, salt, f"{DOMAIN}:c2s"), hkdf(shared, salt, f"{DOMAIN}:s2c")


def response_key(s2c: bytes, request_seq: int) -> bytes:
    """KS-2: the per-call response key."""
    return hkdf(s2c, None, f"{DOMAIN}:respkey:{request_seq}")


def nonce(seq: int) -> bytes:
    """KS-3: four zero bytes then the big-endian u64 sequence number."""
    return bytes(4) + seq.to_bytes(8, "big")


def request_aad(sid: str, seq: int) -> str:
    """AAD of a CallRequest."""
    return f"{DOMAIN}:req:{sid}:{seq}"


def response_aad(sid: str, request_seq: int, frame_seq: int, fin: bool) -> str:
    """AAD of a response frame (RESP-1)."""
    return f"{DOMAIN}:resp:{sid}:{request_seq}:{frame_seq}:{1 if fin else 0}"


def seal(key: bytes, seq: int, plaintext: bytes, aad: str) -> bytes:
    """ChaCha20-Poly1305; ciphertext with the tag appended."""
    return ChaCha20Poly1305(key).encrypt(nonce(seq), plaintext, aad.encode())


def open_sealed(key: bytes, seq: int, sealed: bytes, aad: str) -> bytes:
    """Opens a sealed value or raises ProtocolError."""
    if len(sealed) < TAG_LEN:
        raise ProtocolError("ciphertext shorter than the tag")
    try:
        return ChaCha20Poly1305(key).decrypt(nonce(seq), sealed, aad.encode())
    except Exception as exc:  # InvalidTag
        raise ProtocolError("authentication failed") from exc
