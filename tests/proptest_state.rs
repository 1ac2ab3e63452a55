//! Property tests of the two state machines: the replay window against a
//! set of accepted seqs, and the response opener against in-order delivery.

use std::collections::BTreeSet;

use osc_harness::protocol::framing::{ResponseOpener, ResponseSealer};
use osc_harness::protocol::session::ReplayWindow;
use osc_harness::protocol::REPLAY_WINDOW;
use proptest::prelude::*;

/// The window's rule, stated over every seq ever accepted.
struct WindowModel {
    seen: BTreeSet<u64>,
    highest: u64,
}

impl WindowModel {
    fn mark(&mut self, seq: u64) -> bool {
        let ok = seq != 0
            && !self.seen.contains(&seq)
            && (seq > self.highest || self.highest - seq < REPLAY_WINDOW);
        if ok {
            self.seen.insert(seq);
            self.highest = self.highest.max(seq);
        }
        ok
    }
}

fn check_window(seqs: &[u64]) -> Result<(), TestCaseError> {
    let mut window = ReplayWindow::new();
    let mut model = WindowModel {
        seen: BTreeSet::new(),
        highest: 0,
    };
    for (i, &seq) in seqs.iter().enumerate() {
        let before = window.would_accept(seq);
        let expected = model.mark(seq);
        prop_assert_eq!(before, expected, "would_accept at step {} seq {}", i, seq);
        prop_assert_eq!(window.mark(seq), expected, "mark at step {} seq {}", i, seq);
        prop_assert_eq!(window.highest(), model.highest);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Dense small seqs: many repeats and many just-in/just-out cases.
    #[test]
    fn window_equals_set_model_dense(seqs in prop::collection::vec(0u64..200, 0..300)) {
        check_window(&seqs)?;
    }

    /// A walk around the highest seq, with jumps, so offsets 63 and 64 and
    /// the far end of u64 come up.
    #[test]
    fn window_equals_set_model_walk(
        start in prop_oneof![Just(0u64), Just(u64::MAX - 200), any::<u64>()],
        steps in prop::collection::vec(prop_oneof![-70i64..=70, Just(64), Just(-64), Just(63), Just(-63)], 0..200),
    ) {
        let mut at = start;
        let mut seqs = Vec::with_capacity(steps.len());
        for step in steps {
            at = at.saturating_add_signed(step);
            seqs.push(at);
        }
        check_window(&seqs)?;
    }

    /// Any delivery order of a sealed response: a frame opens iff it is the
    /// next in order and fin has not been opened; `finish` holds iff fin opened.
    #[test]
    fn opener_accepts_only_the_in_order_sequence(
        count in 1usize..8,
        order in prop::collection::vec(0usize..8, 0..24),
        request_seq in 1u64..100,
    ) {
        let key = [7u8; 32];
        let sid = "c2lkLXByb3AtdGVzdA".to_owned();
        let mut sealer = ResponseSealer::new(key, sid.clone(), request_seq);
        let frames: Vec<_> = (0..count)
            .map(|i| sealer.seal(format!("part {i}").as_bytes(), i + 1 == count).unwrap())
            .collect();
        let mut opener = ResponseOpener::new(key, sid, request_seq);
        let mut next = 0usize;
        for pick in order {
            let pick = pick % count;
            let result = opener.open(&frames[pick]);
            if pick == next {
                prop_assert_eq!(result.unwrap(), format!("part {pick}").into_bytes());
                next += 1;
            } else {
                prop_assert!(result.is_err(), "frame {} opened when {} was due", pick, next);
            }
            prop_assert_eq!(opener.frames_opened(), next as u64);
        }
        prop_assert_eq!(opener.finish().is_ok(), next == count);
        prop_assert_eq!(opener.is_finished(), next == count);
    }
}
