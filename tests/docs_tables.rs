//! The tables of `docs/` that are generated from code stay in step with
//! it. `OSC_WRITE_DOCS=1 cargo test --test docs_tables` rewrites them.

use osc_harness::judge::check::{with_table as with_oracle_table, Check as Oracle, REFINED};

fn check_or_write(path: &str, expected: String) {
    let full = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("OSC_WRITE_DOCS").is_some() {
        std::fs::write(&full, &expected).unwrap();
        return;
    }
    let doc = std::fs::read_to_string(&full).unwrap();
    assert!(
        doc == expected,
        "{path} is stale: run `OSC_WRITE_DOCS=1 cargo test --release --test docs_tables`"
    );
}

#[test]
fn fuzzing_oracle_table_is_up_to_date() {
    let path = "docs/FUZZING.md";
    let doc = std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let expected = with_oracle_table(&doc).expect("docs/FUZZING.md keeps the table markers");
    check_or_write(path, expected);
}

#[test]
fn every_oracle_is_a_table_row_with_a_requirement() {
    let doc = with_oracle_table("a\n<!-- oracle table: generated from src/judge/check.rs -->\nSTALE ROW\n<!-- end of oracle table -->\nb\n").unwrap();
    assert!(!doc.contains("STALE ROW"));
    let protocol =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/PROTOCOL.md")).unwrap();
    let mut names = std::collections::BTreeSet::new();
    for o in Oracle::ALL {
        assert!(names.insert(o.name()), "duplicate oracle {o}");
        assert!(
            doc.contains(&format!("| `{}` |", o.name())),
            "{o} has no row"
        );
        for id in o.requirement().split(", ") {
            let (room, n) = id.split_once('-').expect("an ID is ROOM-N");
            assert!(
                !room.is_empty() && n.parse::<u32>().is_ok(),
                "{o}: bad ID {id}"
            );
            assert!(
                protocol.contains(&format!("**{id}**")),
                "{o}: {id} is not in docs/PROTOCOL.md"
            );
        }
    }
    for x in REFINED {
        let sig = format!("| `{}/{}/{}` |", x.check.name(), x.layer, x.field);
        assert!(doc.contains(&sig), "{sig} has no row");
        for id in x.requirement.split(", ") {
            assert!(
                protocol.contains(&format!("**{id}**")),
                "{sig}: {id} is not in docs/PROTOCOL.md"
            );
        }
    }
}

#[test]
fn client_shim_scenario_table_is_up_to_date() {
    let path = "docs/CLIENT-SHIM.md";
    let doc = std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let expected = osc_harness::clientrole::model::with_shim_table(&doc)
        .expect("docs/CLIENT-SHIM.md keeps the table markers");
    check_or_write(path, expected);
}
