//! Property tests of the SSE codec: encoded frames come back unchanged,
//! whatever the split of the byte stream.

use osc_harness::protocol::sse::{encode_event, SseDecoder, DEFAULT_MAX_EVENT_BYTES};
use osc_harness::protocol::wire::Frame;
use proptest::prelude::*;

fn frame() -> impl Strategy<Value = Frame> {
    (
        any::<u64>(),
        "[A-Za-z0-9_-]{0,200}",
        prop_oneof![Just(None), Just(Some(true)), Just(Some(false))],
    )
        .prop_map(|(seq, ct, fin)| Frame { seq, ct, fin })
}

/// Noise a server may interleave: comments and data-less events.
fn noise() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b": ping\n\n".to_vec()),
        Just(b"event: x\nid: 3\n\n".to_vec()),
        Just(b"retry: 100\n\n".to_vec()),
    ]
}

fn stream() -> impl Strategy<Value = (Vec<Frame>, Vec<u8>)> {
    prop::collection::vec((frame(), prop::option::of(noise())), 0..8).prop_map(|items| {
        let mut bytes = Vec::new();
        let mut frames = Vec::new();
        for (f, noise) in items {
            if let Some(n) = noise {
                bytes.extend(n);
            }
            bytes.extend(encode_event(&f));
            frames.push(f);
        }
        (frames, bytes)
    })
}

fn decode(bytes: &[u8], cuts: &[usize]) -> (Vec<Vec<u8>>, Vec<u8>) {
    let mut d = SseDecoder::new(DEFAULT_MAX_EVENT_BYTES);
    let mut out = Vec::new();
    let mut from = 0;
    for &cut in cuts.iter().chain(std::iter::once(&bytes.len())) {
        out.extend(d.feed(&bytes[from..cut]).unwrap());
        from = cut;
    }
    (out, d.leftover().to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn decoding_is_independent_of_chunking(
        (frames, bytes) in stream(),
        tail in prop::collection::vec(any::<u8>(), 0..20),
        raw_cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..16),
    ) {
        let mut stream = bytes;
        let tail: Vec<u8> = tail.into_iter().filter(|&b| b != b'\n').collect();
        stream.extend_from_slice(&tail);
        let mut cuts: Vec<usize> = raw_cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        cuts.sort_unstable();

        let (whole, left) = decode(&stream, &[]);
        prop_assert_eq!(&left, &tail, "leftover is the unterminated tail");
        let decoded: Vec<Frame> = whole.iter().map(|e| Frame::parse(e).unwrap()).collect();
        prop_assert_eq!(&decoded, &frames);

        prop_assert_eq!(decode(&stream, &cuts), (whole.clone(), left.clone()), "cuts {:?}", cuts);
        let every: Vec<usize> = (0..stream.len()).collect();
        prop_assert_eq!(decode(&stream, &every), (whole, left), "byte at a time");
    }

    #[test]
    fn the_bound_holds_under_any_split(
        bytes in prop::collection::vec(prop_oneof![Just(b'\n'), Just(b'x'), Just(b'd')], 0..200),
        bound in 0usize..40,
        raw_cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let mut cuts: Vec<usize> = raw_cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        cuts.sort_unstable();
        let run = |cuts: &[usize]| -> bool {
            let mut d = SseDecoder::new(bound);
            let mut from = 0;
            for &cut in cuts.iter().chain(std::iter::once(&bytes.len())) {
                if d.feed(&bytes[from..cut]).is_err() {
                    return false;
                }
                from = cut;
            }
            true
        };
        prop_assert_eq!(run(&[]), run(&cuts), "cuts {:?}", cuts);
    }
}
