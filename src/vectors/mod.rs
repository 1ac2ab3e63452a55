//! Known-answer vectors: the upstream fixture and the suite format.

pub mod cli;
