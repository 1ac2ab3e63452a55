//! The async runtime every subcommand runs its work on (a bottom layer:
//! the reference server's command needs it as much as the commands above).

use thiserror::Error;

/// The runtime could not be built (the OS refused threads or an I/O driver).
#[derive(Debug, Error)]
#[error("cannot start the async runtime: {0}")]
pub struct RuntimeError(#[from] std::io::Error);

/// A multi-threaded runtime with I/O and timers enabled: what every
/// subcommand needs, built one way so they all behave alike.
pub fn runtime() -> Result<tokio::runtime::Runtime, RuntimeError> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
