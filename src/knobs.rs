//! The knob registry: every deliberate fault the harness can switch on, as
//! one row each. A row names the knob, the side that plays it, the
//! requirements it breaks, what it does, and which check must catch it.
//! The server's knobs (`serve --bug`), the reference client's
//! (`call --bug`) and the relay's attacks (`mitm --attack`, and the
//! adversary of client scenarios) are all declared with [`knobs!`], so a
//! knob's class lives in its row and nowhere else: the self-test matrix,
//! `docs/SELFTEST.md` and `--list-bugs` all read it from there.

/// The side of the channel a knob bends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// The reference server (`osc-harness serve --bug`).
    Server,
    /// The reference client (`osc-harness call --bug`).
    Client,
    /// The relay in the middle (`osc-harness mitm --attack`, client scenarios).
    Relay,
}

/// Which check is there to catch a knob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CaughtBy {
    /// The server suite (`osc-harness test`): the self-test runs it against
    /// the knob and exactly the scenarios that declare the knob must fail.
    Suite,
    /// Only the client suite (`test-client`): the knob lies to the client,
    /// so the harness as a client refuses every handshake with it on. A
    /// server knob of this class is the adversary of client scenarios; a
    /// client knob is caught by the client scenarios that declare it.
    ClientSuite,
    /// Only the network fuzzer: a crash or hang on inputs the suite does
    /// not send.
    FuzzerOnly,
    /// An attack of `osc-harness mitm` on real traffic, judged by what the
    /// relay sees; client scenarios may use it too.
    Mitm,
}

/// One row of the registry, as data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnobInfo {
    /// The kebab-case name used on the command line and in scenarios.
    pub name: &'static str,
    /// The side that plays it.
    pub role: Role,
    /// The requirement IDs it breaks (docs/PROTOCOL.md), comma-separated;
    /// empty for a relay attack, which breaks nothing itself but tests
    /// whether the peers notice.
    pub requirement: &'static str,
    /// What it does, in a sentence.
    pub description: &'static str,
    /// Which check must catch it.
    pub caught_by: CaughtBy,
}

/// Declares a knob enum: one row per variant with its name, requirement,
/// class and description. Generates `ALL`, `ROLE`, `name`, `requirement`,
/// `caught_by`, `description`, `info`, `from_name` and `Display`.
#[macro_export]
macro_rules! knobs {
    (
        $(#[$enum_doc:meta])*
        pub enum $ty:ident: $role:ident {
            $( $(#[$doc:meta])* $variant:ident = $name:literal, $req:literal, $caught:ident, $desc:literal; )*
        }
    ) => {
        $(#[$enum_doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $ty {
            $( $(#[$doc])* $variant, )*
        }

        impl $ty {
            /// Every knob, in listing order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),*];

            /// The side that plays these knobs.
            pub const ROLE: $crate::knobs::Role = $crate::knobs::Role::$role;

            /// The kebab-case name used on the command line.
            pub fn name(self) -> &'static str {
                match self { $($ty::$variant => $name,)* }
            }

            /// The requirement IDs the knob breaks.
            pub fn requirement(self) -> &'static str {
                match self { $($ty::$variant => $req,)* }
            }

            /// Which check must catch the knob.
            pub fn caught_by(self) -> $crate::knobs::CaughtBy {
                match self { $($ty::$variant => $crate::knobs::CaughtBy::$caught,)* }
            }

            /// What the knob does, in a sentence.
            pub fn description(self) -> &'static str {
                match self { $($ty::$variant => $desc,)* }
            }

            /// The knob's registry row.
            pub fn info(self) -> $crate::knobs::KnobInfo {
                $crate::knobs::KnobInfo {
                    name: self.name(),
                    role: Self::ROLE,
                    requirement: self.requirement(),
                    description: self.description(),
                    caught_by: self.caught_by(),
                }
            }

            /// The knob named `name`, if any.
            pub fn from_name(name: &str) -> Option<$ty> {
                Self::ALL.iter().copied().find(|k| k.name() == name)
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}
