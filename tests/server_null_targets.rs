//! No MUST scenario passes against a server that does nothing real: the
//! null servers of the self-test, each started by the harness itself.

use osc_harness::scenarios::loader;
use osc_harness::scenarios::registry::Registry;
use osc_harness::selftest::null::{render, run_nulls, NullKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_must_scenario_passes_against_a_null_server() {
    let registry = Registry::builtin();
    let scenarios = loader::load(None, &registry).unwrap();
    let rows = run_nulls(&scenarios, &registry).await;
    let table = render(&rows);
    assert_eq!(rows.len(), NullKind::ALL.len());
    for r in &rows {
        assert!(
            r.ok(),
            "{} let MUST scenarios pass:\n{table}",
            r.kind.name()
        );
        assert!(
            !r.failed.is_empty(),
            "{}: nothing failed, so nothing ran:\n{table}",
            r.kind.name()
        );
        for (id, why) in &r.skipped {
            assert!(!why.is_empty(), "{id} skipped without a reason");
        }
    }
}
