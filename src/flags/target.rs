//! Which server a command talks to: the flags every server-reaching command
//! shares (`call`, `bench`, `test`, `fuzz`, `replay`), and the one function
//! that turns them into something to connect to.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::Args;
use thiserror::Error;

use crate::peer;
use crate::protocol::identity::Address;
use crate::server::{self, RunningServer, ServerConfig, ServerError};
use crate::transport::tls::TrustSettings;
use crate::transport::{
    HttpVersion, Limits, Net, NetSettings, ProxyAddr, ProxyChoice, Target, TransportError,
};

/// How connections are made: certificate trust, HTTP version and proxy.
/// Shared by every command that reaches a server (and by `mitm` for its
/// upstream).
#[derive(Debug, Clone, Default, Args)]
pub struct NetArgs {
    /// A PEM file of CA certificates to trust for an https:// target, on
    /// top of the platform's roots; repeatable.
    #[arg(long = "ca-cert", value_name = "FILE")]
    pub ca_certs: Vec<PathBuf>,
    /// Do not verify the https:// target's certificate (name, issuer,
    /// dates). Never the default: a warning goes to stderr and every
    /// report records it.
    #[arg(long)]
    pub insecure: bool,
    /// Speak HTTP/1.1 only (no ALPN h2).
    #[arg(long, conflicts_with = "http2")]
    pub http1: bool,
    /// Speak HTTP/2 only: ALPN h2 over TLS, prior knowledge over http://.
    /// Raw-byte attacks (HTTP framing, length lies, cut streams) need
    /// HTTP/1.1 and are reported as not run.
    #[arg(long)]
    pub http2: bool,
    /// Tunnel connections through this HTTP proxy with CONNECT
    /// (http://host:port) [default: HTTPS_PROXY for https:// targets,
    /// minus the hosts in NO_PROXY]; `none` connects directly.
    #[arg(long, value_name = "URL|none")]
    pub proxy: Option<String>,
}

impl NetArgs {
    /// The connection settings, with TLS configurations checked now so a
    /// bad `--ca-cert` is a usage error; warns on stderr for `--insecure`.
    pub fn net(&self) -> Result<Net, TargetError> {
        let proxy = match self.proxy.as_deref() {
            None => ProxyChoice::FromEnv,
            Some("none") => ProxyChoice::Direct,
            Some(url) => ProxyChoice::Url(ProxyAddr::parse(url).map_err(TargetError::BadProxy)?),
        };
        let http = if self.http1 {
            HttpVersion::Http1
        } else if self.http2 {
            HttpVersion::Http2
        } else {
            HttpVersion::Auto
        };
        let net = Net::new(NetSettings {
            trust: TrustSettings {
                ca_certs: self.ca_certs.clone(),
                insecure: self.insecure,
            },
            http,
            proxy,
        });
        if !self.ca_certs.is_empty() || self.insecure {
            net.check()
                .map_err(|e| TargetError::BadTls(e.to_string()))?;
        }
        if self.insecure {
            eprintln!(
                "warning: --insecure: the target's TLS certificate is not verified; \
                 anyone on the path can read and change the traffic"
            );
        }
        Ok(net)
    }
}

impl TargetArgs {
    /// The target flags as given, as a command line reproduces them (the
    /// access key as `<redacted>`): a rerun line built from them reaches
    /// the same target the same way (`--via-relay`, `--relay-origin` only
    /// when given, the timeout, TLS, HTTP version and proxy).
    pub fn rerun_flags(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut flag = |name: &str, value: Option<String>| {
            out.push(format!("--{name}"));
            out.extend(value);
        };
        if let Some(t) = &self.target {
            flag("target", Some(t.clone()));
        }
        if let Some(a) = &self.agent_address {
            flag("agent-address", Some(a.clone()));
        }
        if self.access_key.is_some() {
            flag("access-key", Some("<redacted>".into()));
        }
        if let Some(a) = &self.agent_id {
            flag("agent-id", Some(a.clone()));
        }
        if let Some(r) = self.relay_origin {
            flag("relay-origin", Some(if r { "on" } else { "off" }.into()));
        }
        if let Some(t) = self.timeout {
            flag("timeout", Some(t.to_string()));
        }
        if self.via_relay {
            flag("via-relay", None);
        }
        if let Some(b) = &self.relay_budget {
            flag("relay-budget", Some(b.clone()));
        }
        for c in &self.net.ca_certs {
            flag("ca-cert", Some(c.display().to_string()));
        }
        if self.net.insecure {
            flag("insecure", None);
        }
        if self.net.http1 {
            flag("http1", None);
        }
        if self.net.http2 {
            flag("http2", None);
        }
        if let Some(p) = &self.net.proxy {
            flag("proxy", Some(p.clone()));
        }
        out
    }
}

/// The target flags. Every command that reaches a server flattens this
/// struct, so the names and help are the same everywhere; what a command
/// assumes when a flag is absent is its [`TargetPolicy`].
#[derive(Debug, Clone, Default, Args)]
pub struct TargetArgs {
    /// The server's base URL (http[s]://host[:port][/base][?query]; see
    /// --ca-cert, --insecure, --http1/--http2, --proxy), or `self` for the
    /// reference server started inside this process [default: self for
    /// bench, fuzz and replay; test and call need it; call takes no `self`].
    #[arg(long, value_name = "URL|self")]
    pub target: Option<String>,
    /// The agent address to pin (0x + 40 hex digits); the handshake fails
    /// unless the server proves it holds this identity. Required with a URL.
    #[arg(long, value_name = "0x…")]
    pub agent_address: Option<String>,
    /// The access key, sent inside the channel as `Authorization: Bearer
    /// KEY` (with a URL: required by test, fuzz and replay).
    #[arg(long, value_name = "KEY")]
    pub access_key: Option<String>,
    /// The agent id in `/agents/{id}/…` routes [default: the agent address;
    /// with `self`, the reference server's id] (call takes its whole path
    /// from --path).
    #[arg(long, value_name = "ID")]
    pub agent_id: Option<String>,
    /// Send `X-Osaurus-Relay-Origin: 1` on outer requests, so a loopback
    /// server treats the caller as remote: on/off (or true/false); the bare
    /// flag means on [default: off for call and bench; with test, fuzz,
    /// replay and diff, on for `self` and loopback URLs (a URL whose address
    /// is not loopback is a remote caller as it is)].
    #[arg(
        long,
        value_name = "on|off",
        num_args = 0..=1,
        default_missing_value = "on",
        value_parser = BoolishValueParser::new()
    )]
    pub relay_origin: Option<bool>,
    /// Seconds allowed for the connection and for each answer [default: 30
    /// for call and bench, 10 for test; fuzz and replay: 3 for `self`, 15
    /// for a URL].
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// The target is an agent reached through a relay that stamps
    /// `X-Osaurus-Relay-Origin` itself (the `relayBaseURL` of a pairing
    /// invite): scenarios about unmarked loopback callers (GATE-2) are
    /// skipped, and the handshake budget is the relay origin's bucket
    /// (5 per 60 s); every request stays under the relay's per-agent
    /// budget (100 per minute), and the relay's own answers (its 429, 502,
    /// 504) are recognised and never judged as the agent's.
    #[arg(long)]
    pub via_relay: bool,
    /// With --via-relay: every request to the agent, handshakes and calls
    /// alike, is paced to at most N per SECS, shared by the whole run
    /// (SECS also as `90s`, `5m`); `none` sends unpaced, for a relay with
    /// its rate limits off [default: 100/60, the relay's per-agent budget].
    #[arg(long, value_name = "N/SECS|none", requires = "via_relay")]
    pub relay_budget: Option<String>,
    /// TLS, HTTP version and proxy.
    #[command(flatten)]
    pub net: NetArgs,
}

/// The handshake limit an agent applies to requests through its relay: one
/// bucket of 5 per 60 s per relay origin (per the first `X-Forwarded-For`
/// hop in newer agents; all relayed callers share one in older ones).
pub const RELAY_HANDSHAKE_BUCKET: (u32, u64) = (5, 60);

/// What a command assumes where a target flag is absent.
#[derive(Debug, Clone, Copy)]
pub struct TargetPolicy {
    /// `--target` when none is given; `None` makes the flag required.
    pub default_target: Option<&'static str>,
    /// Whether `--target self` is accepted.
    pub allows_self: bool,
    /// Whether a URL target needs `--access-key`.
    pub key_required: bool,
    /// `--relay-origin` when the flag is absent.
    pub relay: RelayDefault,
    /// `--timeout` seconds for `self` when the flag is absent.
    pub self_timeout_secs: u64,
    /// `--timeout` seconds for a URL when the flag is absent.
    pub url_timeout_secs: u64,
}

/// Whether outer requests carry the relay marker when `--relay-origin` is
/// absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayDefault {
    /// Never: the caller is whatever the network says it is (`call`,
    /// `bench`: a plain client of the server).
    Off,
    /// Whenever the target is on this machine (`self` included), where an
    /// unmarked caller would be trusted as local: every command that judges
    /// a target (`test`, `fuzz`, `replay`, `diff`).
    OnForLoopback,
}

/// Whether outer requests carry the relay marker: the one rule every
/// command follows. `--relay-origin` decides when given; else a judging
/// command ([`RelayDefault::OnForLoopback`]) marks its requests to `self`
/// and to a loopback URL, so a server that trusts loopback callers (as the
/// reference and upstream do by default) judges the harness as the remote
/// caller the checks are written for, and never as a trusted local one.
/// A URL off this machine is remote as it is, and a target reached
/// `--via-relay` is marked by its relay.
pub fn relay_marker(
    policy: RelayDefault,
    flag: Option<bool>,
    is_self: bool,
    target: &Target,
) -> bool {
    flag.unwrap_or(policy == RelayDefault::OnForLoopback && (is_self || is_loopback(target)))
}

/// A target ready to connect to. For `self` it owns the reference server,
/// which stops when this is dropped or shut down.
pub struct ResolvedTarget {
    /// The target: for `self`, the server's own address, key and id (a
    /// flag cannot change what it accepts, only `--agent-id`); else the
    /// flags, the key present when the policy requires it. Its limits are
    /// [`limits_for`] the resolved `--timeout`; it has no handshake budget
    /// (each command sets its own).
    pub target: peer::Target,
    /// The in-process reference server behind `--target self`.
    pub server: Option<RunningServer>,
}

impl ResolvedTarget {
    /// Whether this is the in-process reference server.
    pub fn is_self(&self) -> bool {
        self.server.is_some()
    }

    /// The resolved `--timeout`: the longest wait for each answer.
    pub fn timeout(&self) -> Duration {
        self.target.limits.response_timeout
    }
}

/// The request limits for a per-answer `timeout`: the answer and idle
/// timeouts are it, the connection timeout the default one unless that is
/// longer. Commands change the rest (body size, say) on the result.
pub fn limits_for(timeout: Duration) -> Limits {
    let defaults = Limits::default();
    Limits {
        connect_timeout: defaults.connect_timeout.min(timeout),
        response_timeout: timeout,
        idle_timeout: timeout,
        ..defaults
    }
}

/// Why the target flags do not name a usable target.
#[derive(Debug, Error)]
pub enum TargetError {
    /// No `--target` and the command has no default.
    #[error("--target is required")]
    MissingTarget,
    /// `--target self` where the command cannot start a server.
    #[error("--target self is not available here: give the server's URL")]
    SelfNotAllowed,
    /// A URL without `--agent-address`.
    #[error("--agent-address is required with a URL target")]
    MissingAddress,
    /// `--agent-address` does not parse.
    #[error("--agent-address {text:?} is not an agent address: {reason}")]
    BadAddress {
        /// What was given.
        text: String,
        /// Why it was refused.
        reason: String,
    },
    /// A URL without `--access-key` where the command needs one.
    #[error("--access-key is required with a URL target")]
    MissingKey,
    /// `--ca-cert` cannot be used.
    #[error("--ca-cert: {0}")]
    BadTls(String),
    /// `--relay-budget` does not parse.
    #[error("{0}")]
    BadBudget(String),
    /// `--proxy` is not a usable proxy URL.
    #[error("--proxy: {0}")]
    BadProxy(String),
    /// `--target` is not a usable URL.
    #[error("--target: {0}")]
    BadUrl(#[from] TransportError),
    /// The reference server for `self` did not start.
    #[error("cannot start the reference server: {0}")]
    Spawn(#[from] ServerError),
}

impl TargetArgs {
    /// Resolves the flags under `policy`. For `self`, starts the reference
    /// server from `self_config(timeout)` (the resolved per-answer timeout,
    /// which the server's own deadlines may need to undercut) and takes its
    /// address, key and id; for a
    /// URL, parses it and the pinned address and checks the key is there
    /// when the policy needs it. Nothing is sent to the target.
    pub async fn resolve(
        &self,
        policy: TargetPolicy,
        self_config: impl FnOnce(Duration) -> ServerConfig,
    ) -> Result<ResolvedTarget, TargetError> {
        let name = self
            .target
            .as_deref()
            .or(policy.default_target)
            .ok_or(TargetError::MissingTarget)?;
        if name == "self" {
            if !policy.allows_self {
                return Err(TargetError::SelfNotAllowed);
            }
            let net = self.net.net()?;
            let timeout = self.timeout_or(policy.self_timeout_secs);
            let server = server::spawn(self_config(timeout)).await?;
            let endpoint = Target::parse(&server.url)?.with_net(net);
            let target = peer::Target {
                label: "self".into(),
                access_key: server.access_key.clone(),
                agent_id: Some(self.agent_id.clone().unwrap_or(server.agent_id.clone())),
                relay_origin: relay_marker(policy.relay, self.relay_origin, true, &endpoint),
                via_relay: self.via_relay,
                limits: limits_for(timeout),
                ..peer::Target::new(endpoint, server.agent_address)
            };
            return Ok(ResolvedTarget {
                target,
                server: Some(server),
            });
        }
        let target = Target::parse(name)?;
        let text = self
            .agent_address
            .as_deref()
            .ok_or(TargetError::MissingAddress)?;
        let address = Address::parse(text).map_err(|reason| TargetError::BadAddress {
            text: text.to_owned(),
            reason,
        })?;
        if policy.key_required && self.access_key.is_none() {
            return Err(TargetError::MissingKey);
        }
        let relay_origin = relay_marker(policy.relay, self.relay_origin, false, &target);
        let target = peer::Target {
            label: name.to_owned(),
            access_key: self.access_key.clone().unwrap_or_default(),
            agent_id: self.agent_id.clone(),
            relay_origin,
            via_relay: self.via_relay,
            limits: limits_for(self.timeout_or(policy.url_timeout_secs)),
            ..peer::Target::new(target.with_net(self.net.net()?), address)
        };
        // Every request, not only handshakes, stays under the relay's
        // per-agent budget.
        let target = if self.via_relay {
            target.paced_for_relay(self.relay_budget()?)
        } else {
            target
        };
        Ok(ResolvedTarget {
            target,
            server: None,
        })
    }

    /// The request pacing under `--via-relay`: `--relay-budget` as given,
    /// else the relay's per-agent budget; `None` is unpaced.
    pub fn relay_budget(&self) -> Result<Option<(u32, u64)>, TargetError> {
        match self.relay_budget.as_deref() {
            Some(text) => {
                peer::parse_budget("--relay-budget", text).map_err(TargetError::BadBudget)
            }
            None => Ok(Some(peer::relay::RELAY_AGENT_BUDGET)),
        }
    }

    fn timeout_or(&self, default_secs: u64) -> Duration {
        Duration::from_secs(self.timeout.unwrap_or(default_secs).max(1))
    }
}

/// Whether `target` names this machine.
pub fn is_loopback(target: &Target) -> bool {
    target.socket_addr().is_some_and(|a| a.ip().is_loopback()) || target.host() == "localhost"
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        target: TargetArgs,
    }

    fn parse(args: &[&str]) -> TargetArgs {
        Cli::try_parse_from(std::iter::once("x").chain(args.iter().copied()))
            .expect("parses")
            .target
    }

    const POLICY: TargetPolicy = TargetPolicy {
        default_target: None,
        allows_self: true,
        key_required: true,
        relay: RelayDefault::OnForLoopback,
        self_timeout_secs: 3,
        url_timeout_secs: 15,
    };

    const ADDRESS: &str = "0x90F8bf6A479f320ead074411a4B0e7944Ea8c9C1";

    #[test]
    fn relay_origin_takes_every_spelling_the_docs_use() {
        assert_eq!(parse(&["--relay-origin"]).relay_origin, Some(true));
        assert_eq!(parse(&["--relay-origin", "on"]).relay_origin, Some(true));
        assert_eq!(parse(&["--relay-origin", "true"]).relay_origin, Some(true));
        assert_eq!(parse(&["--relay-origin", "off"]).relay_origin, Some(false));
        assert_eq!(
            parse(&["--relay-origin", "false"]).relay_origin,
            Some(false)
        );
        assert_eq!(parse(&[]).relay_origin, None);
    }

    #[tokio::test]
    async fn a_url_needs_what_the_policy_asks_for() {
        let resolve = |args: &[&str]| {
            let a = parse(args);
            async move { a.resolve(POLICY, |_| ServerConfig::generated()).await }
        };
        let url = "http://127.0.0.1:9";
        assert!(matches!(
            resolve(&[]).await,
            Err(TargetError::MissingTarget)
        ));
        assert!(matches!(
            resolve(&["--target", url]).await,
            Err(TargetError::MissingAddress)
        ));
        assert!(matches!(
            resolve(&["--target", url, "--agent-address", "0x12"]).await,
            Err(TargetError::BadAddress { .. })
        ));
        assert!(matches!(
            resolve(&["--target", url, "--agent-address", ADDRESS]).await,
            Err(TargetError::MissingKey)
        ));
        assert!(matches!(
            resolve(&["--target", "ftp://x", "--agent-address", ADDRESS]).await,
            Err(TargetError::BadUrl(_))
        ));
        let ok = resolve(&[
            "--target",
            url,
            "--agent-address",
            ADDRESS,
            "--access-key",
            "k",
        ])
        .await
        .expect("resolves");
        assert!(
            ok.target.relay_origin,
            "a loopback URL gets the marker by default"
        );
        assert_eq!(ok.timeout(), Duration::from_secs(15));
        assert_eq!(ok.target.agent(), ADDRESS);
        assert_eq!(ok.target.access_key, "k");
        assert!(!ok.is_self());
        let off = parse(&["--target", "http://10.0.0.1:9", "--agent-address", ADDRESS])
            .resolve(
                TargetPolicy {
                    key_required: false,
                    ..POLICY
                },
                |_| ServerConfig::generated(),
            )
            .await
            .expect("no key needed");
        assert!(!off.target.relay_origin);
    }

    #[test]
    fn the_relay_marker_follows_one_rule() {
        let loopback = Target::parse("http://127.0.0.1:9").unwrap();
        let localhost = Target::parse("http://localhost:9").unwrap();
        let remote = Target::parse("http://10.0.0.1:9").unwrap();
        let judge = RelayDefault::OnForLoopback;
        assert!(relay_marker(judge, None, false, &loopback));
        assert!(relay_marker(judge, None, false, &localhost));
        assert!(relay_marker(judge, None, true, &remote));
        assert!(!relay_marker(judge, None, false, &remote));
        assert!(!relay_marker(judge, Some(false), false, &loopback));
        assert!(relay_marker(RelayDefault::Off, Some(true), false, &remote));
        assert!(!relay_marker(RelayDefault::Off, None, true, &loopback));
    }

    #[tokio::test]
    async fn self_takes_the_servers_identity_unless_refused() {
        let args = parse(&["--target", "self", "--timeout", "7"]);
        let resolved = args
            .resolve(POLICY, |_| ServerConfig::generated())
            .await
            .expect("self starts");
        let server = resolved.server.as_ref().expect("a server");
        let target = &resolved.target;
        assert_eq!(target.address, server.agent_address);
        assert_eq!(target.access_key, server.access_key);
        assert_eq!(target.agent_id.as_deref(), Some(server.agent_id.as_str()));
        assert!(target.relay_origin);
        assert_eq!(target.label, "self");
        assert_eq!(resolved.timeout(), Duration::from_secs(7));
        let refused = args
            .resolve(
                TargetPolicy {
                    allows_self: false,
                    ..POLICY
                },
                |_| ServerConfig::generated(),
            )
            .await;
        assert!(matches!(refused, Err(TargetError::SelfNotAllowed)));
    }
}
