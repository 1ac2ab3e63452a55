//! Differential runs: the same inputs (the scenario suite, then seeded
//! fuzz cases) to several implementations at once; each answer reduced to
//! a [`normal::NormalForm`], and every difference classified against SPEC:
//! a target breaks a requirement, SPEC allows either ([`rules`]), or the
//! difference is unexplained.

pub mod cli;
pub mod html;
pub mod normal;
pub mod preflight;
pub mod report;
pub mod rules;
pub mod run;
pub mod targets;
