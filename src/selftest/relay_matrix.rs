//! The relay attacks in the self-test: every attack of
//! [`RelayAttack`] is played on real traffic on loopback (two reference
//! agents behind their tunnels, `relay --attack` in front, the reference
//! client calling through it: [`crate::relay::matrix`]) and must be caught
//! as its row says, with the blind-pipe check holding. `selftest` prints a
//! row per attack and fails on one not caught; `docs/SELFTEST.md` carries
//! the table.

use std::fmt::Write as _;

use crate::relay::matrix::{self, Row};
use crate::relay::RelayAttack;

/// Plays every relay attack, one relay each, and returns a row per attack
/// in [`RelayAttack::ALL`] order.
pub async fn run_matrix() -> Vec<Row> {
    matrix::run_matrix().await
}

/// Whether every attack was caught.
pub fn all_caught(rows: &[Row]) -> bool {
    rows.len() == RelayAttack::ALL.len() && rows.iter().all(|r| r.caught)
}

/// The text table `selftest` prints: one line per attack.
pub fn render(rows: &[Row]) -> String {
    let mut out = String::from("relay attacks (relay --attack, reference client through it)\n");
    for r in rows {
        let _ = writeln!(
            out,
            "  {:<18} {:<10} {}",
            r.attack.name(),
            if r.caught { "caught" } else { "NOT CAUGHT" },
            r.detail
        );
    }
    let caught = rows.iter().filter(|r| r.caught).count();
    let _ = writeln!(
        out,
        "  {caught} of {} relay attacks caught",
        RelayAttack::ALL.len()
    );
    out
}

/// The section of `docs/SELFTEST.md`: what each attack does and what
/// catches it, the rows `run_matrix` must reproduce.
pub fn doc_section() -> String {
    let mut out = String::from(
        "\n## The relay's attacks (`osc-harness relay --attack`)\n\n\
         `osc-harness selftest` plays each attack on loopback: two reference agents\n\
         behind their tunnels (`serve --tunnel`), the relay with the attack on, and\n\
         the reference client making a buffered and a streamed call through it. Each\n\
         must be caught as its row says, and no canary (the access keys, the prompt)\n\
         may appear in any tunnel frame; an attack not caught fails the self-test.\n\n",
    );
    out.push_str(&matrix::doc_table());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_per_attack_and_a_missing_one_is_not_all_caught() {
        let doc = doc_section();
        for a in RelayAttack::ALL {
            assert!(doc.contains(&format!("| `{}` |", a.name())), "{doc}");
        }
        let rows: Vec<Row> = RelayAttack::ALL
            .iter()
            .map(|a| Row {
                attack: *a,
                caught: true,
                detail: String::new(),
            })
            .collect();
        assert!(all_caught(&rows));
        assert!(!all_caught(&rows[1..]));
        let mut missed = rows.clone();
        missed[0].caught = false;
        assert!(!all_caught(&missed));
        assert!(render(&missed).contains("NOT CAUGHT"));
    }
}
