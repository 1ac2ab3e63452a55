//! The relay tunnel: the WebSocket an agent's host opens to the Osaurus
//! relay, which carries HTTP to the agent. `frame` reads and writes the
//! frames, `sign` makes and checks the sign-in signatures, and `host` is
//! the agent's side as the Osaurus app plays it (`serve --tunnel`). The
//! relay's side is `crate::relay`.

pub mod frame;
pub mod host;
pub mod sign;

pub use frame::{Frame, FrameError, Headers, Payload};
pub use host::{Backoff, HostConfig, HostState, RunningHost, MAX_IN_FLIGHT};

/// The relay's path for tunnels.
pub const TUNNEL_PATH: &str = "/tunnel/connect";

/// The header the host stamps with the agent's id on every relayed request.
pub const AGENT_ID_HEADER: &str = "X-Osaurus-Agent-Id";

/// The header the relay sets to the agent's address (lower case).
pub const AGENT_ADDRESS_HEADER: &str = "x-agent-address";

/// The window, in seconds, a sign-in timestamp must fall in around the
/// relay's clock.
pub const CLOCK_WINDOW_SECS: i64 = 30;
