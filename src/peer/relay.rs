//! The relay in front of an agent reached at its relay URL
//! (`--via-relay`): which answers are the relay's own, and what it adds to
//! the agent's. An answer the relay gave in the agent's place is never
//! judged as the agent's.

use std::time::Duration;

use serde_json::Value;

use super::RelayFacts;
use crate::protocol::names::header;

/// The relay's documented error codes (each sent as `{"error":"<code>"}`).
pub const RELAY_ERRORS: &[(u16, &str)] = &[
    (400, "invalid_subdomain"),
    (413, "body_too_large"),
    (429, "rate_limited"),
    (429, "too_many_connections"),
    (502, "agent_offline"),
    (502, "bad_host_response"),
    (502, "tunnel_send_failed"),
    (502, "tunnel_closed"),
    (503, "relay_restarting"),
    (504, "gateway_timeout"),
];

/// The relay's per-agent request budget: 100 requests per minute.
pub const RELAY_AGENT_BUDGET: (u32, u64) = (100, 60);

/// What the relay said on its own behalf in an answer: its own error (the
/// documented body with the relay's headers; `tunnel_closed` comes as
/// plain text), and its region, machine and `server-timing`.
pub fn relay_facts(status: u16, headers: &[(String, String)], body: &[u8]) -> RelayFacts {
    let region = header(headers, "x-relay-region").map(str::to_owned);
    let machine = header(headers, "x-relay-machine").map(str::to_owned);
    let server_timing = header(headers, "server-timing").map(str::to_owned);
    let stamped = region.is_some() || machine.is_some();
    let code = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            let obj = v.as_object()?;
            // Exactly the relay's shape: one `error` string, nothing else.
            (obj.len() == 1)
                .then(|| obj.get("error")?.as_str().map(str::to_owned))
                .flatten()
        })
        .filter(|c| RELAY_ERRORS.contains(&(status, c.as_str())));
    // `tunnel_closed` is documented as text/plain, where the relay's
    // headers may be missing; every other code needs them, so an agent
    // that happens to write `{"error":"rate_limited"}` is still judged.
    let own_error = code.filter(|c| stamped || c == "tunnel_closed");
    RelayFacts {
        own_error,
        region,
        machine,
        server_timing,
    }
}

impl RelayFacts {
    /// Whether the answer is the relay's own (the agent never gave it).
    pub fn is_own(&self) -> bool {
        self.own_error.is_some()
    }

    /// Whether the relay refused for its rate limit: paced and retried.
    pub fn rate_limited(&self) -> bool {
        matches!(
            self.own_error.as_deref(),
            Some("rate_limited" | "too_many_connections")
        )
    }

    /// The reason a step cannot be judged when the relay answered in the
    /// agent's place (a 502, 503, 504 or 413 of its own).
    pub fn inconclusive(&self, status: u16) -> Option<String> {
        let code = self.own_error.as_deref()?;
        (!self.rate_limited()).then(|| {
            format!("inconclusive: the relay answered {status} {code} in the agent's place")
        })
    }

    /// The relay's information as one line for a report (`None` when the
    /// relay added none).
    pub fn info(&self) -> Option<String> {
        let parts: Vec<String> = [
            ("region", &self.region),
            ("machine", &self.machine),
            ("server-timing", &self.server_timing),
        ]
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k} {v}")))
        .collect();
        (!parts.is_empty()).then(|| format!("relay: {}", parts.join(", ")))
    }
}

/// How long to wait before retrying after the relay's own 429: its
/// Retry-After, else the per-agent budget's share of a minute, doubling.
pub fn relay_retry_wait(headers: &[(String, String)], attempt: u32) -> Duration {
    header(headers, "retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or_else(|| Duration::from_millis(600u64 << attempt.min(6)))
        .min(Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay_headers() -> Vec<(String, String)> {
        vec![
            ("content-type".into(), "application/json".into()),
            ("x-relay-region".into(), "ams".into()),
            ("x-relay-machine".into(), "m1".into()),
            ("server-timing".into(), "relay;dur=1".into()),
        ]
    }

    #[test]
    fn the_relays_own_answers_are_told_from_the_agents() {
        let f = relay_facts(429, &relay_headers(), br#"{"error":"rate_limited"}"#);
        assert!(f.rate_limited() && f.is_own());
        let f = relay_facts(504, &relay_headers(), br#"{"error":"gateway_timeout"}"#);
        assert!(f.inconclusive(504).unwrap().contains("gateway_timeout"));
        let closed = relay_facts(502, &[], br#"{"error":"tunnel_closed"}"#);
        assert!(closed.is_own());
        // The agent's own 429 and a channel error through the relay.
        let agent = relay_facts(429, &[], br#"{"error":"rate_limited"}"#);
        assert!(!agent.is_own());
        let channel = relay_facts(
            400,
            &relay_headers(),
            br#"{"error":{"code":"secure_malformed"}}"#,
        );
        assert!(!channel.is_own());
        assert_eq!(
            channel.info().unwrap(),
            "relay: region ams, machine m1, server-timing relay;dur=1"
        );
    }
}
