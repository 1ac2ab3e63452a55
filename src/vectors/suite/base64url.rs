//! base64url decoding (`Base64url`).

use serde_json::{json, Value};

use super::{group, Cases, World};
use crate::protocol::encoding::b64url_encode;
use crate::rng::RandomSource;

pub(super) fn base64url(w: &mut World, c: &mut Cases) -> Value {
    let random: [u8; 17] = w.rng.bytes();
    let with_specials = {
        // Bytes fb ff bf encode as "-_-_" / "+/+/".
        let mut b = vec![0xfb, 0xff, 0xbf];
        b.extend_from_slice(&random[..4]);
        b
    };
    let cases: Vec<(String, String, Vec<u8>, &str)> = vec![
        ("empty".into(), String::new(), vec![], "Valid"),
        ("one byte".into(), "AA".into(), vec![0], "Valid"),
        (
            "seeded 17 bytes".into(),
            b64url_encode(&random),
            random.to_vec(),
            "Valid",
        ),
        (
            "URL-safe characters".into(),
            b64url_encode(&with_specials),
            with_specials.clone(),
            "Valid",
        ),
        (
            "one byte, padded".into(),
            "AA==".into(),
            vec![0],
            "PaddedBase64",
        ),
        (
            "two bytes, padded".into(),
            "AAE=".into(),
            vec![0, 1],
            "PaddedBase64",
        ),
        (
            "standard alphabet".into(),
            b64url_encode(&with_specials)
                .replace('-', "+")
                .replace('_', "/"),
            with_specials,
            "StandardAlphabet",
        ),
        (
            "non-zero trailing bits".into(),
            "AB".into(),
            vec![0],
            "NonZeroTrailingBits",
        ),
        ("length 1".into(), "A".into(), vec![], "Base64Length"),
        ("length 5".into(), "AAAAA".into(), vec![], "Base64Length"),
        (
            "inner space".into(),
            "AA A".into(),
            vec![],
            "Base64Character",
        ),
        (
            "trailing newline".into(),
            "AAAA\n".into(),
            vec![],
            "Base64Character",
        ),
        ("a dot".into(), "AA.A".into(), vec![], "Base64Character"),
    ];
    let tests = cases
        .into_iter()
        .map(|(comment, encoded, decoded, flag)| {
            c.case(
                &comment,
                &[flag],
                &["ENC-1"],
                json!({"encoded": encoded, "decodedHex": hex::encode(decoded)}),
            )
        })
        .collect();
    group(
        "Base64url",
        "Decode `encoded`; a valid or accepted string gives `decodedHex`.",
        json!({}),
        tests,
    )
}
