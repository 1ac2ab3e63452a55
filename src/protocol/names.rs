//! The channel's wire names, each defined once: the HTTP header names and
//! the endpoint paths every side of the harness (server, clients, relay,
//! fuzzer) uses. Error codes live with their meaning in [`super::error`].

/// The header a relay adds to every request it carries (GATE-3): presence
/// counts, any value. Header names compare case-insensitively; this is the
/// spelling the harness sends.
pub const RELAY_ORIGIN_HEADER: &str = "X-Osaurus-Relay-Origin";

/// The marker header of every sealed response (value `1`).
pub const SECURE_CHANNEL_HEADER: &str = "x-osaurus-secure-channel";

/// The handshake endpoint: `POST` a ClientHello, get a ServerHello.
pub const SESSION_PATH: &str = "/secure/session";

/// The sealed-call endpoint: `POST` a call envelope, get sealed frames.
pub const CALL_PATH: &str = "/secure/call";

/// The prefix of every channel endpoint; an inner request may not reach
/// one (CALL-8).
pub const SECURE_PREFIX: &str = "/secure/";

/// The first value of header `name` in `headers`, names compared
/// case-insensitively (RFC 9110 §5.1): the one header lookup every side
/// of the harness uses on a header list.
pub fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}
