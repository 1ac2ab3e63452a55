//! Helpers the tests share, one small module per job, every helper also
//! reachable here under its own name (`support::harness`, …):
//! - `process`: the harness binary, commands run with a deadline, child
//!   processes that announce themselves with a JSON ready line and are
//!   killed when a test lets go of them;
//! - `fixtures`: files of the repository and small edits of test data;
//! - `python`: the Python environment the interop tests run their Python
//!   peers from;
//! - `reports`: hostile reports and HTML pages for the renderer tests;
//! - `server`: an in-process reference server driven over loopback with
//!   the protocol core (the server tests' helpers, also reachable as
//!   `server_common`).

// Each test binary uses a part of the support.
#![allow(dead_code, unused_imports)]

pub mod fixtures;
pub mod process;
pub mod python;
pub mod reports;
pub mod server;

pub use fixtures::*;
pub use process::*;
pub use python::*;
pub use reports::*;
