//! Address derivation, signature verification and address matching
//! (`AddressDerivation`, `SignatureVerify`, `AddressMatch`).

use serde_json::{json, Value};
use sha3::{Digest, Sha3_256};

use super::{group, nibble_off, Cases, World, SECP256K1_N};
use crate::protocol::encoding::hex_encode_0x;
use crate::protocol::identity::{
    domain_digest, keccak256, to_high_s, AgentIdentity, CHANNEL_PREFIX, OTHER_PREFIXES,
};
use crate::vectors::upstream::seeded_agent_secret;

pub(super) fn address_derivation(w: &mut World, c: &mut Cases) -> Value {
    let mut keys: Vec<(String, [u8; 32])> = vec![
        ("the upstream fixture's agent key".into(), {
            let mut k = [0u8; 32];
            hex::decode_to_slice(
                "c2ddba76f071d8115d12d4a8e4d9df7c460aa6ae4f4a59b6c9d1f740a88146f9",
                &mut k,
            )
            .expect("static hex");
            k
        }),
        ("private key 1 (the generator point)".into(), {
            let mut k = [0u8; 32];
            k[31] = 1;
            k
        }),
        ("the seeded agent key".into(), w.identity.secret_bytes()),
    ];
    for i in 0..2 {
        keys.push((format!("seeded key {i}"), seeded_agent_secret(&mut w.rng)));
    }
    let tests = keys
        .into_iter()
        .map(|(comment, key)| {
            let id = AgentIdentity::from_bytes(&key).expect("valid keys");
            c.case(
                &comment,
                &["Valid"],
                &["ID-1"],
                json!({"privateKeyHex": hex::encode(key), "address": id.address().to_checksum()}),
            )
        })
        .collect();
    group(
        "AddressDerivation",
        "EIP-55 address of a secp256k1 key: Keccak-256 of the uncompressed point.",
        json!({}),
        tests,
    )
}

pub(super) fn signatures(w: &mut World, c: &mut Cases) -> Value {
    let payload = w.transcript.clone();
    let sig = w.identity.sign_channel(payload.as_bytes());
    let recid = sig[64] - 27;
    let reqs = ["ID-2", "ID-3", "HS-2"];
    let mut tests = Vec::new();
    let mut push = |c: &mut Cases, comment: &str, flag: &str, reqs: &[&str], signature: String| {
        tests.push(c.case(comment, &[flag], reqs, json!({ "signature": signature })));
    };
    push(
        c,
        "honest signature (RFC 6979, low-S)",
        "Valid",
        &reqs,
        hex_encode_0x(&sig),
    );
    push(
        c,
        "a valid signature by another key",
        "OtherKey",
        &reqs,
        hex_encode_0x(&w.other_identity.sign_channel(payload.as_bytes())),
    );
    for v in [0u8, 1, 2, 3, 27, 28, 29, 30, 26, 31, 35, 36, 37, 38, 255] {
        let (flag, reqs_v): (&str, &[&str]) = if v == 27 + recid {
            continue;
        } else if v == 27 + (1 - recid) {
            ("WrongRecoveryId", &["ID-3", "ID-4"])
        } else if v == recid {
            ("RawRecoveryId", &["ID-3", "ID-4"])
        } else if v == 1 - recid {
            ("RawWrongRecoveryId", &["ID-3", "ID-4"])
        } else if matches!(v, 2 | 3) {
            ("RawReducedXRecoveryId", &["ID-3", "ID-4"])
        } else if matches!(v, 29 | 30) {
            ("ReducedXRecoveryId", &["ID-3", "ID-4"])
        } else {
            ("InvalidRecoveryByte", &["ID-3", "ID-4"])
        };
        let mut s = sig;
        s[64] = v;
        push(
            c,
            &format!("v = {v} (honest recovery id {recid})"),
            flag,
            reqs_v,
            hex_encode_0x(&s),
        );
    }
    let high = to_high_s(&sig).expect("the core signs with v 27/28 and scalars in range");
    push(
        c,
        "high-S twin with v flipped",
        "HighS",
        &["ID-3", "ID-4"],
        hex_encode_0x(&high),
    );
    let mut high_same_v = high;
    high_same_v[64] = sig[64];
    push(
        c,
        "high-S s with the original v",
        "HighSWrongRecoveryId",
        &["ID-3", "ID-4"],
        hex_encode_0x(&high_same_v),
    );
    let with = |r: Option<[u8; 32]>, s: Option<[u8; 32]>| {
        let mut out = sig;
        if let Some(r) = r {
            out[..32].copy_from_slice(&r);
        }
        if let Some(s) = s {
            out[32..64].copy_from_slice(&s);
        }
        hex_encode_0x(&out)
    };
    let n_plus_1 = {
        let mut v = SECP256K1_N;
        v[31] += 1;
        v
    };
    for (comment, r, s) in [
        ("r = 0", Some([0u8; 32]), None),
        ("s = 0", None, Some([0u8; 32])),
        ("r = n", Some(SECP256K1_N), None),
        ("s = n", None, Some(SECP256K1_N)),
        ("r = n + 1", Some(n_plus_1), None),
        ("s = 2^256 - 1", None, Some([0xff; 32])),
    ] {
        push(c, comment, "ScalarOutOfRange", &["ID-3"], with(r, s));
    }
    push(
        c,
        "truncated to 64 bytes",
        "SignatureLength",
        &["ID-3"],
        hex_encode_0x(&sig[..64]),
    );
    push(c, "empty", "SignatureLength", &["ID-3"], "0x".into());
    let mut long = sig.to_vec();
    long.push(0);
    push(
        c,
        "66 bytes (a trailing zero)",
        "SignatureLength",
        &["ID-3"],
        hex_encode_0x(&long),
    );
    push(
        c,
        "0X prefix (upper case)",
        "SignatureEncoding",
        &["ENC-2"],
        format!("0X{}", hex::encode(sig)),
    );
    push(
        c,
        "odd number of hex digits",
        "SignatureEncoding",
        &["ENC-2"],
        format!("0x{}", &hex::encode(sig)[1..]),
    );
    let mut domains: Vec<&str> = OTHER_PREFIXES.to_vec();
    domains.push("Ethereum Signed Message");
    for prefix in domains {
        let digest = domain_digest(prefix, payload.as_bytes());
        push(
            c,
            &format!("valid signature by the agent under \"{prefix}\""),
            "WrongDomain",
            &["ID-2"],
            hex_encode_0x(&w.identity.sign_digest(&digest)),
        );
    }
    let sha3: [u8; 32] = {
        let mut h = Sha3_256::new();
        h.update(b"\x19");
        h.update(CHANNEL_PREFIX.as_bytes());
        h.update(b":\n");
        h.update(payload.len().to_string().as_bytes());
        h.update(payload.as_bytes());
        h.finalize().into()
    };
    push(
        c,
        "SHA3-256 of the channel message instead of Keccak-256",
        "Sha3InsteadOfKeccak",
        &["ID-1", "ID-2"],
        hex_encode_0x(&w.identity.sign_digest(&sha3)),
    );
    push(
        c,
        "Keccak-256 of the bare transcript, no domain prefix",
        "NoDomainPrefix",
        &["ID-2"],
        hex_encode_0x(&w.identity.sign_digest(&keccak256(payload.as_bytes()))),
    );
    group(
        "SignatureVerify",
        "Recover the signer of a channel signature over `payload` and compare with `address`.",
        json!({
            "address": w.identity.address().to_checksum(),
            "payload": payload,
            "digestHex": hex::encode(crate::protocol::identity::channel_digest(payload.as_bytes())),
        }),
        tests,
    )
}

pub(super) fn address_match(w: &World, c: &mut Cases) -> Value {
    let address = w.identity.address();
    let lower = address.to_lower();
    let upper = format!("0x{}", lower[2..].to_uppercase());
    let checksum = address.to_checksum();
    let mut tests = Vec::new();
    for (comment, pinned, flag) in [
        ("lower case", lower.clone(), "AddressCase"),
        ("upper case", upper, "AddressCase"),
        ("EIP-55 case", checksum.clone(), "AddressCase"),
        ("without 0x", lower[2..].to_owned(), "AddressWithout0x"),
        (
            "one nibble off (lower case)",
            nibble_off(&lower),
            "AddressNibbleOff",
        ),
        (
            "one nibble off (EIP-55 case)",
            nibble_off(&checksum),
            "AddressNibbleOff",
        ),
    ] {
        tests.push(c.case(
            comment,
            &[flag],
            &["ID-1", "HS-2"],
            json!({ "pinned": pinned }),
        ));
    }
    let signature = w.identity.sign_channel(w.transcript.as_bytes());
    group(
        "AddressMatch",
        "Recover the signer of `signature` over `payload` and compare with the pinned address.",
        json!({"payload": w.transcript, "signature": hex_encode_0x(&signature)}),
        tests,
    )
}
