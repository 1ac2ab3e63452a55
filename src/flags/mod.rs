//! The flags the rooms share: the target flags of every command that
//! reaches a server (`--target`, `--agent-address`, `--access-key`, …) and
//! their resolution into one target, or a reference server started for
//! `--target self`. The rooms import this module; the top-level dispatcher
//! (`crate::cli`) only hands each subcommand its parsed arguments.

pub mod target;

pub use target::{
    limits_for, relay_marker, RelayDefault, ResolvedTarget, TargetArgs, TargetError, TargetPolicy,
};
