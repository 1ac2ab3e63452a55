//! The network fuzzer: structure-aware inputs against any endpoint by URL,
//! oracles that know what the protocol allows, and findings that replay
//! with one command.
//!
//! A case is a few [`case::Step`]s (an honest action plus named
//! mutations: JSON, base64url, crypto-level over a valid tag, raw bytes,
//! HTTP framing, stateful sequences). [`exec`] runs them through the one
//! engine ([`crate::peer::Conversation`]), [`oracle`] maps each answer to
//! the one judge's checks ([`crate::judge`]), [`runner`] confirms each hit on a fresh
//! session, buckets it by [`case::Signature`] and response shape
//! ([`dedup`]), minimises it ([`shrink`]) and saves it.
//! Everything random comes from `--seed`.

pub mod case;
pub mod cli;
pub mod dedup;
pub mod exec;
pub mod gen;
pub mod html;
pub mod oracle;
pub mod runner;
pub mod scenario;
pub mod shrink;
