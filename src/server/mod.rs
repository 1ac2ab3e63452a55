//! The reference server: SPEC §4–§10 over real HTTP (hyper, http1), with
//! a small demo inner app and the `--bug` fault knobs of [`Bug`].
//!
//! Start one in-process with [`spawn`]; `osc-harness serve` is the same
//! server behind a command line ([`cli`]).
//!
//! How it is cut:
//! - `http`: accepts connections (at most 512), one request each, body
//!   limits and deadlines, the handshake rate limit, and routing of the
//!   outer request to the channel endpoints or the plaintext app;
//! - `head`: a look at the request head before hyper, for upstream's exact
//!   431 and `Bad Request` bodies;
//! - `secure`: `/secure/session` and `/secure/call`, and the sealing of
//!   buffered and streamed inner responses;
//! - `app`: the inner application, one function shared by plaintext and
//!   decrypted requests; `gate`: normalisation, loopback versus remote, the
//!   access-key gate and the 426 gate it calls;
//! - `store`, `ratelimit`: the bounded session store and the per-source
//!   handshake limiter; `config`: [`ServerConfig`] and generated secrets;
//! - `bugs`: every knob, read where the honest step is.

mod app;
mod body;
mod bugs;
pub mod cli;
mod config;
mod gate;
mod head;
mod http;
mod ratelimit;
mod secure;
mod stand_in;
mod store;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::protocol::identity::Address;
use crate::rng::{RandomSource, SystemRandom};

pub use bugs::Bug;
pub use config::{
    generate_access_key, generate_identity, parse_duration_secs, parse_rate, ServerConfig,
    DEFAULT_HANDSHAKE_RATE, DEFAULT_MAX_SESSIONS, MAX_CONNECTIONS,
};
pub use gate::normalize;
pub use http::{MAX_HEADER_BYTES, MAX_HEADER_FIELDS};

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's reason.
        source: std::io::Error,
    },
}

/// A server running in this process. Dropping it stops the server.
pub struct RunningServer {
    /// Base URL, e.g. `http://127.0.0.1:41234` (`https://` with TLS).
    pub url: String,
    /// The CA file clients should trust, when the listener has TLS and
    /// one was written.
    pub ca_cert: Option<std::path::PathBuf>,
    /// The socket address bound.
    pub local_addr: SocketAddr,
    /// The agent's address (what clients pin).
    pub agent_address: Address,
    /// The agent's id in routes.
    pub agent_id: String,
    /// The full access key.
    pub access_key: String,
    /// The agent-scoped key, if any.
    pub scoped_key: Option<String>,
    /// The agent the scoped key is for.
    pub scoped_agent_id: String,
    /// Session lifetime in seconds.
    pub session_ttl_secs: i64,
    /// The active knobs.
    pub bugs: Vec<Bug>,
    shared: Arc<http::Shared>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl RunningServer {
    /// The JSON ready line `serve` prints: url, agentAddress, agentId,
    /// accessKey, sessionTtl, bugs, scopedKey, scopedAgentId, and caCert
    /// when there is one.
    pub fn ready_line(&self) -> String {
        let mut line = serde_json::json!({
            "url": self.url,
            "agentAddress": self.agent_address.to_checksum(),
            "agentId": self.agent_id,
            "accessKey": self.access_key,
            "sessionTtl": self.session_ttl_secs,
            "bugs": self.bugs.iter().map(|b| b.name()).collect::<Vec<_>>(),
            "scopedKey": self.scoped_key,
            "scopedAgentId": self.scoped_agent_id,
        });
        if let Some(ca) = &self.ca_cert {
            line["caCert"] = serde_json::Value::String(ca.display().to_string());
        }
        line.to_string()
    }

    /// How many sessions the store holds now (for diagnostics; tests of
    /// the bound should prefer what the wire shows).
    pub fn sessions_held(&self) -> usize {
        self.shared.store.len()
    }

    /// How many agent runs have executed (the demo app's side effect).
    pub fn executions(&self) -> u64 {
        self.shared.app.executions()
    }

    /// How many requests inside the channel carried the access key and
    /// got a 2xx answer.
    pub fn keyed_answers(&self) -> u64 {
        self.shared.app.keyed_answers()
    }

    /// Stops accepting, ends open connections and waits for the server task.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Binds `config.listen` and serves until the returned handle is shut
/// down or dropped. Must be called inside a tokio runtime.
pub async fn spawn(config: ServerConfig) -> Result<RunningServer, ServerError> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: config.listen,
        source,
    })?;
    let shown = if local_addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], local_addr.port()))
    } else {
        local_addr
    };
    let knobs = bugs::Knobs::new(
        config.bugs.clone(),
        generate_identity(),
        SystemRandom.bytes::<32>(),
    );
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let ca_cert = config.tls_ca_file.clone();
    let running_fields = (
        knobs.agent_address(&config.identity),
        config.agent_id.clone(),
        config.access_key.clone(),
        config.scoped_key.clone(),
        config.scoped_agent_id.clone(),
        config.session_ttl_secs,
        config.bugs.iter().copied().collect::<Vec<_>>(),
    );
    let shared = Arc::new(http::shared_state(config, knobs));
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(http::accept_loop(listener, shared.clone(), stop_rx));
    let (agent_address, agent_id, access_key, scoped_key, scoped_agent_id, session_ttl_secs, bugs) =
        running_fields;
    tracing::info!("reference server listening on {scheme}://{shown}");
    Ok(RunningServer {
        url: format!("{scheme}://{shown}"),
        ca_cert,
        local_addr,
        agent_address,
        agent_id,
        access_key,
        scoped_key,
        scoped_agent_id,
        session_ttl_secs,
        bugs,
        shared,
        stop,
        task: Some(task),
    })
}
