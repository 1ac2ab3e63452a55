//! Scenario model, loader and runner.

pub mod cli;
