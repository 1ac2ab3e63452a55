//! The knob registry: every deliberate fault the harness can switch on, as
//! one row each. A row names the knob, the side that plays it, the
//! requirements it breaks, what it does, and which check must catch it.
//! The server's knobs (`serve --bug`), the reference client's
//! (`call --bug`) and the relay's attacks (`mitm --attack`, and the
//! adversary of client scenarios) are all declared with [`knobs!`], so a
//! knob's class lives in its row and nowhere else: the self-test matrix,
//! `docs/SELFTEST.md` and `--list-bugs` all read it from there. The same
//! macro declares the judge's checks (`judge::check`): one registry macro
//! for every table of requirement rows.
//!
//! A fault that several sides play (a response cut in the middle, the
//! first two frames swapped) is written here once and used by each.

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

/// The one registry macro: declares an enum whose every variant is one
/// row (name, requirement, class, description). Two forms:
///
/// - `pub enum Bug: Server { Row = "name", "REQ-1", Suite, "what"; … }`
///   declares a knob table of that side; the class is the check that must
///   catch the knob ([`CaughtBy`]), and `ROLE` and `info` come with it;
/// - `pub enum Check by level: Level { Row = "name", "REQ-1", Must,
///   "what"; … }` declares any other table of requirement rows (the judge's
///   checks); the class is a variant of the type after `by NAME:`, read
///   back by the method `NAME`.
///
/// Both generate `ALL`, `name`, `requirement`, `description`, `from_name`
/// and `Display`.
#[macro_export]
macro_rules! knobs {
    (
        $(#[$enum_doc:meta])*
        pub enum $ty:ident by $class_fn:ident: $class_ty:ty {
            $( $(#[$doc:meta])* $variant:ident = $name:literal, $req:literal, $class:ident, $desc:literal; )*
        }
    ) => {
        $(#[$enum_doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $ty {
            $( $(#[$doc])* $variant, )*
        }

        impl $ty {
            /// Every row, in listing order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),*];

            /// The kebab-case name (on the command line, in findings).
            pub fn name(self) -> &'static str {
                match self { $($ty::$variant => $name,)* }
            }

            /// The requirement IDs (docs/PROTOCOL.md) of the row.
            pub fn requirement(self) -> &'static str {
                match self { $($ty::$variant => $req,)* }
            }

            /// The row's class: for a knob, the check that must catch it;
            /// for a check, the level of its requirement.
            pub fn $class_fn(self) -> $class_ty {
                match self { $($ty::$variant => <$class_ty>::$class,)* }
            }

            /// What the row does (a knob) or fires on (a check), in a sentence.
            pub fn description(self) -> &'static str {
                match self { $($ty::$variant => $desc,)* }
            }

            /// The row named `name`, if any.
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
    (
        $(#[$enum_doc:meta])*
        pub enum $ty:ident: $role:ident {
            $($rows:tt)*
        }
    ) => {
        $crate::knobs! {
            $(#[$enum_doc])*
            pub enum $ty by caught_by: $crate::knobs::CaughtBy {
                $($rows)*
            }
        }

        impl $ty {
            /// The side that plays these knobs.
            pub const ROLE: $crate::knobs::Role = $crate::knobs::Role::$role;

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
        }
    };
}

/// A response, or its last event, cut in the middle: the first half of
/// `bytes`. The one definition of the cut-mid-frame fault, which the
/// server's `stream-cut-mid-frame` and the relay's `cut-mid-frame` play.
pub fn cut_in_half(bytes: &[u8]) -> &[u8] {
    &bytes[..bytes.len() / 2]
}

/// The first two items of a stream swapped as they pass: the one
/// definition of the reorder fault (the server's `frames-reordered`, the
/// relay's `reorder`). The first item is held back and sent right after
/// the second; an item that may not be held (a `fin` frame) passes as it
/// is, and whatever is still held comes out of [`SwapFirstTwo::flush`].
#[derive(Debug)]
pub struct SwapFirstTwo<T> {
    on: bool,
    seen: u64,
    held: Option<T>,
}

impl<T> SwapFirstTwo<T> {
    /// A swap that acts only when `on` (off: every item passes in order).
    pub fn new(on: bool) -> Self {
        SwapFirstTwo {
            on,
            seen: 0,
            held: None,
        }
    }

    /// The items to send now that `item` arrived, in order.
    pub fn pass(&mut self, item: T, holdable: bool) -> Vec<T> {
        let first = self.seen == 0;
        self.seen += 1;
        if self.on && first && holdable {
            self.held = Some(item);
            return Vec::new();
        }
        let mut out = vec![item];
        out.extend(self.held.take());
        out
    }

    /// The item still held when the stream ends early, if any.
    pub fn flush(&mut self) -> Option<T> {
        self.held.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_two_items_swap_and_the_rest_pass() {
        let mut swap = SwapFirstTwo::new(true);
        let out: Vec<u8> = [1, 2, 3]
            .into_iter()
            .flat_map(|i| swap.pass(i, true))
            .collect();
        assert_eq!(out, vec![2, 1, 3]);
        let mut off = SwapFirstTwo::new(false);
        let out: Vec<u8> = [1, 2].into_iter().flat_map(|i| off.pass(i, true)).collect();
        assert_eq!(out, vec![1, 2]);
        let mut lone = SwapFirstTwo::new(true);
        assert!(lone.pass(1, true).is_empty());
        assert_eq!(lone.flush(), Some(1));
        let mut fin_first = SwapFirstTwo::new(true);
        assert_eq!(fin_first.pass(9, false), vec![9]);
        assert_eq!(cut_in_half(b"abcd"), b"ab");
    }
}
