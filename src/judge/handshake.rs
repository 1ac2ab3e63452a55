//! The handshake: the ServerHello's status, encodings, signature (HS-1,
//! ID-2, ID-4), expiry (SES-1), the freshness of its values across
//! sessions (HS-3), and what a transcript signature binds (HS-4).

use super::encoding::{self, hello_low_s};
use super::refusal::check_status;
use super::{Checked, Claim, Expect, Finding};
use crate::peer::Answer;

/// An honest handshake (a step with no expectation): a usable ServerHello
/// that recovers to the pinned address and has not already expired.
/// `usable` says whether the engine could derive the session from it.
pub fn honest_hello(claim: &Claim, a: &Answer, usable: bool, now: i64) -> Checked {
    if let Some(exp) = a.expires_at.filter(|e| *e <= now) {
        // An honest client never seals with a session whose expiry has
        // passed (SES-3), so nothing after this can run.
        return Err(claim.unmet(
            format!("the ServerHello's expiresAt {exp} has already passed"),
            "a session that expires in the future",
        ));
    }
    if a.status != 200 || !usable {
        return Err(claim.unmet(
            format!(
                "honest handshake got {} {}",
                a.status,
                String::from_utf8_lossy(&a.body)
            ),
            "200 with a usable ServerHello",
        ));
    }
    if a.verified == Some(false) {
        // An honest client never uses a session whose hello does not
        // recover to the pinned address (HS-1).
        return Err(claim.unmet(
            "the ServerHello signature does not recover to the pinned address",
            "a ServerHello signed by the pinned agent",
        ));
    }
    Ok(())
}

/// Holds a handshake's answer against the step's expectations: status and
/// body, then the ServerHello's encodings, signature and expiry.
/// `ttl` is the target's session lifetime when known; `now` the clock.
pub fn check_hello(claim: &Claim, e: &Expect, a: &Answer, ttl: Option<i64>, now: i64) -> Checked {
    check_status(claim, e, a.status, &a.headers, &a.body)?;
    let signature = serde_json::from_slice::<serde_json::Value>(&a.body)
        .ok()
        .and_then(|v| {
            v.get("signature")
                .and_then(|s| s.as_str().map(str::to_owned))
        })
        .unwrap_or_default();
    if let Some(want) = e.lowercase_hex {
        let got = signature.strip_prefix("0x").is_some_and(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
        if got != want {
            return Err(claim.miss(
                format!("the ServerHello signature is {signature:?}"),
                format!("0x + lowercase hex = {want}"),
            ));
        }
    }
    if let Some(want) = e.canonical {
        let problems = if serde_json::from_slice::<serde_json::Value>(&a.body).is_ok() {
            encoding::problems(&a.emitted)
                .into_iter()
                .map(|p| p.what)
                .collect::<Vec<_>>()
        } else {
            vec!["the ServerHello is not JSON".to_string()]
        };
        if problems.is_empty() != want {
            return Err(claim.miss(
                format!(
                    "the ServerHello: {}",
                    if problems.is_empty() {
                        "canonical".into()
                    } else {
                        problems.join("; ")
                    }
                ),
                format!("canonical encodings = {want}"),
            ));
        }
    }
    if let Some(want) = e.low_s {
        let got = hello_low_s(&a.body);
        if got != Some(want) {
            return Err(claim.miss(
                format!(
                    "the ServerHello signature's s is {}",
                    match got {
                        Some(true) => "low",
                        Some(false) => "high",
                        None => "unreadable",
                    }
                ),
                format!("low-S = {want}"),
            ));
        }
    }
    if let Some(want) = e.verifies {
        let got = a.verified.unwrap_or(false);
        if got != want {
            return Err(claim.miss(
                if got {
                    "the ServerHello signature verifies".to_string()
                } else {
                    "the ServerHello signature does not recover to the pinned address".to_string()
                },
                format!("signature verifies = {want}"),
            ));
        }
    }
    if e.expiry_near_ttl == Some(true) {
        let exp = a.expires_at.unwrap_or(0);
        if exp <= now {
            return Err(claim.miss(
                format!("expiresAt {exp} is not in the future (now {now})"),
                "expiresAt > now",
            ));
        }
        if let Some(ttl) = ttl {
            if (exp - (now + ttl)).abs() > 5 {
                return Err(claim.miss(
                    format!(
                        "expiresAt {exp} is {}s from now, the TTL is {ttl}s",
                        exp - now
                    ),
                    format!("expiresAt within 5 s of now + {ttl}"),
                ));
            }
        }
    }
    Ok(())
}

/// The values of one ServerHello that must never repeat across sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fresh {
    /// The server's ephemeral `encPub`.
    pub enc_pub: String,
    /// The `sid`.
    pub sid: String,
    /// The signature's `r` (its first 32 bytes, as written).
    pub r: String,
}

impl Fresh {
    /// The fresh values of a ServerHello as the target wrote it (`r` as
    /// the first 64 hex digits of the signature, lowercase); `None` when
    /// the body is not JSON.
    pub fn of_hello(body: &[u8]) -> Option<Fresh> {
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        let text = |k: &str| {
            v.get(k)
                .and_then(serde_json::Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let signature = text("signature");
        Some(Fresh {
            enc_pub: text("encPub"),
            sid: text("sid"),
            r: Self::r_of(&signature),
        })
    }

    /// The signature's `r` as written: its first 64 hex digits, lowercase.
    pub fn r_of(signature: &str) -> String {
        signature
            .strip_prefix("0x")
            .unwrap_or(signature)
            .get(..64)
            .unwrap_or("")
            .to_ascii_lowercase()
    }
}

/// Which value of a ServerHello repeated an earlier session's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeated {
    /// The signature's `r`: the ECDSA nonce repeats.
    R,
    /// The server's ephemeral `encPub`.
    EncPub,
    /// The `sid`.
    Sid,
}

/// The values seen so far across the sessions opened, checked as each
/// new session comes (HS-3). The one freshness check: the suite's
/// [`check_freshness`] and the fuzzer's run both use it.
#[derive(Debug, Default)]
pub struct Freshness {
    seen: std::collections::HashSet<(u8, String)>,
    count: usize,
}

impl Freshness {
    /// Takes note of one session's values; the first that repeats an
    /// earlier session's (the `r`, then the key, then the sid), if any.
    pub fn admit(&mut self, f: &Fresh) -> Option<Repeated> {
        self.count += 1;
        let mut repeated = None;
        for (tag, kind, value) in [
            (0u8, Repeated::R, &f.r),
            (1, Repeated::EncPub, &f.enc_pub),
            (2, Repeated::Sid, &f.sid),
        ] {
            if value.is_empty() {
                continue;
            }
            if !self.seen.insert((tag, value.clone())) && repeated.is_none() {
                repeated = Some(kind);
            }
        }
        repeated
    }

    /// A repeat as a finding under `claim`.
    pub fn finding(&self, claim: &Claim, repeated: Repeated) -> Finding {
        let count = self.count;
        match repeated {
            Repeated::R => claim.miss(
                "two ServerHello signatures over different transcripts share the same r value: the ECDSA nonce repeats, which leaks the agent's private key",
                "a fresh r in every signature (RFC 6979)",
            ),
            Repeated::EncPub => claim.miss(
                format!(
                    "the server's ephemeral key repeats across {count} handshakes: no forward secrecy"
                ),
                "a new server encPub per session (HS-3)",
            ),
            Repeated::Sid => claim.miss(
                format!("a sid repeats across {count} handshakes"),
                "a new sid per session",
            ),
        }
    }
}

/// Ephemeral keys, sids and signature `r` values never repeat across the
/// sessions opened (HS-3; a repeated `r` leaks the agent's key).
pub fn check_freshness(claim: &Claim, seen: &[Fresh]) -> Checked {
    let mut fresh = Freshness::default();
    for f in seen {
        if let Some(repeated) = fresh.admit(f) {
            return Err(fresh.finding(claim, repeated));
        }
    }
    Ok(())
}

/// What a transcript signature binds: after a man in the middle `edit`ed
/// a field, or over the transcript `without` a field, the signature must
/// not verify; unedited, it must. `got` is whether it verified.
pub fn check_binding(
    claim: &Claim,
    expect: Option<&Expect>,
    edit: Option<&str>,
    without: Option<&str>,
    got: bool,
) -> Checked {
    let want = expect
        .and_then(|e| e.verifies)
        .unwrap_or(edit.is_none() && without.is_none());
    if got == want {
        return Ok(());
    }
    let what = match (edit, without) {
        (Some(f), _) => format!("after a man in the middle edited `{f}`, the signature still recovers to the pinned address: `{f}` is not bound"),
        (None, Some(f)) => format!("the signature also verifies over the transcript without `{f}`: `{f}` is not signed"),
        (None, None) => "the ServerHello signature does not recover to the pinned address".into(),
    };
    Err(claim.miss(what, format!("signature verifies = {want}")))
}
