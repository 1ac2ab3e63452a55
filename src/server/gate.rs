//! Who is calling and what they may reach: path normalisation (GATE-7),
//! loopback versus remote (GATE-2, GATE-3), the access-key gate (GATE-6,
//! CALL-6) and the 426 gate (GATE-1, GATE-4). Shared by plaintext and
//! sealed requests, so both go through exactly the same checks.

use std::net::IpAddr;

use crate::protocol::error::UPGRADE_REQUIRED_BODY;
use crate::protocol::names::SESSION_PATH;

use super::app::AppResponse;
use super::bugs::Knobs;

/// Paths that need no access key (upstream's public paths).
const PUBLIC_PATHS: [&str; 6] = [
    "/",
    "/health",
    "/pair",
    "/pair/challenge",
    "/pair-invite",
    SESSION_PATH,
];

/// The routing path: query dropped, then the first of `/v1/api`, `/api`,
/// `/v1` stripped when it is a whole leading segment (GATE-7).
pub fn normalize(path: &str) -> String {
    let path = path.split(['?', '#']).next().unwrap_or("");
    for prefix in ["/v1/api", "/api", "/v1"] {
        if let Some(rest) = path.strip_prefix(prefix) {
            if rest.is_empty() {
                return "/".to_owned();
            }
            if rest.starts_with('/') {
                return rest.to_owned();
            }
        }
    }
    path.to_owned()
}

/// Whether a request counts as remote: anything but a trusted loopback
/// peer without the relay marker.
pub fn is_remote(peer: IpAddr, relay_marker: bool, trust_loopback: bool, knobs: &Knobs) -> bool {
    let loopback = peer.to_canonical().is_loopback();
    let marker_counts = relay_marker && knobs.relay_marker_counts();
    !(trust_loopback && loopback && !marker_counts)
}

/// What the access-key gate granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// A trusted loopback caller: no key needed.
    Loopback,
    /// A public path: no key needed.
    Public,
    /// The full access key (or an unchecked key under a knob).
    Full,
    /// The agent-scoped key.
    Scoped,
}

/// The keys a server accepts.
pub struct Keys<'a> {
    /// The full access key.
    pub access_key: &'a str,
    /// The agent-scoped key, if any.
    pub scoped_key: Option<&'a str>,
}

/// The access-key gate: public paths and trusted loopback pass; anything
/// else needs `Authorization: Bearer <key>` (GATE-6, CALL-6).
pub fn access_gate(
    routed: &str,
    authorization: Option<&str>,
    remote: bool,
    inside_channel: bool,
    keys: &Keys<'_>,
    knobs: &Knobs,
) -> Result<Grant, AppResponse> {
    if PUBLIC_PATHS.contains(&routed) {
        return Ok(Grant::Public);
    }
    if !remote {
        return Ok(Grant::Loopback);
    }
    if !knobs.check_access_key(inside_channel) {
        return Ok(Grant::Full);
    }
    let token = authorization.and_then(|v| {
        let (scheme, rest) = v.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
    });
    match token {
        None => Err(auth_error("missing Authorization: Bearer header")),
        Some(t) if t == keys.access_key => Ok(Grant::Full),
        Some(t) if Some(t) == keys.scoped_key => Ok(Grant::Scoped),
        Some(t) if !t.starts_with("osk-v1") => Err(auth_error("malformed key")),
        Some(_) => Err(auth_error("unknown key")),
    }
}

fn auth_error(reason: &str) -> AppResponse {
    let body = serde_json::json!({
        "error": {
            "message": format!("Invalid access key: {reason}"),
            "type": "authentication_error",
        }
    });
    AppResponse::json(401, body.to_string())
}

/// The 426 gate of agent execution routes: passes inside the channel or
/// for a trusted loopback caller (GATE-1, GATE-2, GATE-4).
pub fn upgrade_gate(inside_channel: bool, remote: bool, knobs: &Knobs) -> Result<(), AppResponse> {
    let exempt = (inside_channel && !knobs.gate_channel()) || (!remote && !knobs.gate_loopback());
    if exempt || !knobs.gate_426() {
        return Ok(());
    }
    Err(AppResponse::json(426, UPGRADE_REQUIRED_BODY.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation() {
        assert_eq!(normalize("/v1/agents/a/run?x=1"), "/agents/a/run");
        assert_eq!(normalize("/v1/api/secure/call"), "/secure/call");
        assert_eq!(normalize("/api/secure/session"), "/secure/session");
        assert_eq!(normalize("/v1"), "/");
        assert_eq!(normalize("/v1x/models"), "/v1x/models");
        assert_eq!(normalize("/health"), "/health");
    }
}
