//! Minimisation candidates: smaller versions of a case, by removing steps,
//! an explicit seq and edits, and by shortening long values (JSON strings
//! stay valid JSON) and lowering large numbers. Pure: the runner decides
//! which candidates still fire, on the network.

use super::case::{Auth, ByteEdit, EnvelopeEdit, Inner, Step};
use super::gen::Generator;

/// Tries a minimisation may spend by default; each try costs a handshake.
pub const MAX_TRIES: usize = 24;

/// Values of at most this many characters (string tokens) are left alone:
/// shortening them buys little and spends tries.
pub const LONG_TEXT: usize = 16;

/// Numbers at or below this are left alone.
pub const LARGE_NUMBER: u64 = 1000;

/// How big a case is. Ordered field by field (structure first), so every
/// candidate is strictly smaller than the case it came from and a chain of
/// accepted candidates is finite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Size {
    /// Steps, explicit seqs, envelope edits and byte edits.
    pub parts: usize,
    /// Bytes of every value the minimiser may shorten.
    pub text: usize,
    /// Sum of the numbers it may lower (seqs, integer JSON edit values).
    pub numbers: u128,
}

/// Measures `steps`.
pub fn size(steps: &[Step]) -> Size {
    let mut s = Size {
        parts: steps.len(),
        text: 0,
        numbers: 0,
    };
    for step in steps {
        let mut step = step.clone();
        for site in sites(&step) {
            match value_mut(&mut step, site) {
                Some(Value::Text(t, kind)) => {
                    s.text += t.len();
                    if kind == TextKind::Json {
                        s.numbers += u128::from(json_integer(t).unwrap_or(0));
                    }
                }
                Some(Value::Seq(n)) => s.numbers += u128::from(*n),
                None => {}
            }
        }
        if let Step::Call(c) = &step {
            s.parts += usize::from(c.seq.is_some()) + c.envelope.len() + c.bytes.len();
        }
    }
    s
}

/// Every smaller version of `steps` worth a try, most promising first:
/// removals (a step other than the firing last one, an explicit seq, an
/// envelope or byte edit), then for each long value a cut to
/// [`LONG_TEXT`] and a cut to half, and for each large number a drop to
/// [`LARGE_NUMBER`] and a halving. Each is strictly smaller by [`size`];
/// a JSON value that was valid stays valid.
pub fn candidates(steps: &[Step]) -> Vec<Vec<Step>> {
    let mut out = Vec::new();
    for i in 0..steps.len().saturating_sub(1) {
        let mut c = steps.to_vec();
        c.remove(i);
        out.push(c);
    }
    for (i, step) in steps.iter().enumerate() {
        let Step::Call(call) = step else { continue };
        let mut with = |edit: &dyn Fn(&mut super::case::CallStep)| {
            let mut c = steps.to_vec();
            if let Step::Call(call) = &mut c[i] {
                edit(call);
            }
            out.push(c);
        };
        if call.seq.is_some() {
            with(&|c| c.seq = None);
        }
        for e in 0..call.envelope.len() {
            with(&|c| {
                c.envelope.remove(e);
            });
        }
        for b in 0..call.bytes.len() {
            with(&|c| {
                c.bytes.remove(b);
            });
        }
    }
    for (i, step) in steps.iter().enumerate() {
        for site in sites(step) {
            let mut probe = step.clone();
            let shorter = match value_mut(&mut probe, site) {
                Some(Value::Text(t, kind)) => shorter_texts(t, kind),
                Some(Value::Seq(n)) => smaller_numbers(*n)
                    .into_iter()
                    .map(|n| n.to_string())
                    .collect(),
                None => Vec::new(),
            };
            for value in shorter {
                let mut c = steps.to_vec();
                match value_mut(&mut c[i], site) {
                    Some(Value::Text(t, _)) => *t = value,
                    Some(Value::Seq(n)) => match value.parse() {
                        Ok(v) => *n = v,
                        Err(_) => continue,
                    },
                    None => continue,
                }
                out.push(c);
            }
        }
    }
    out
}

/// Walks the candidates of a case one try at a time, keeping each one
/// that still fires and moving on from where the last success was. Stops
/// after a full pass without success or after its try budget, so it always
/// ends.
#[derive(Debug)]
pub struct Shrinker {
    best: Vec<Step>,
    best_size: Size,
    pass: Vec<Vec<Step>>,
    from: usize,
    looked: usize,
    current: Option<usize>,
    rejected: Vec<Vec<Step>>,
    tries: usize,
    max_tries: usize,
}

impl Shrinker {
    /// Starts from `steps` (which fire), spending at most `max_tries`.
    pub fn new(steps: Vec<Step>, max_tries: usize) -> Self {
        Shrinker {
            best_size: size(&steps),
            pass: candidates(&steps),
            best: steps,
            from: 0,
            looked: 0,
            current: None,
            rejected: Vec::new(),
            tries: 0,
            max_tries,
        }
    }

    /// The next candidate to run, or `None` when done. Answer each with
    /// [`Shrinker::record`]; an unanswered one counts as not firing.
    pub fn next_candidate(&mut self) -> Option<Vec<Step>> {
        if let Some(i) = self.current.take() {
            self.rejected.push(self.pass[i].clone());
        }
        while self.tries < self.max_tries && self.looked < self.pass.len() {
            let i = (self.from + self.looked) % self.pass.len();
            self.looked += 1;
            let c = &self.pass[i];
            // A candidate seen failing before would fail again.
            if self.rejected.contains(c) || size(c) >= self.best_size {
                continue;
            }
            self.tries += 1;
            self.current = Some(i);
            return Some(c.clone());
        }
        None
    }

    /// Whether the last candidate still fired the same way.
    pub fn record(&mut self, fired: bool) {
        let Some(i) = self.current.take() else { return };
        if !fired {
            self.rejected.push(self.pass[i].clone());
            return;
        }
        self.best = self.pass.swap_remove(i);
        self.best_size = size(&self.best);
        self.pass = candidates(&self.best);
        // Start the next pass where this success was: after a removal that
        // is the next part; after a cut, the same value cut again.
        self.from = i;
        self.looked = 0;
    }

    /// Tries spent so far.
    pub fn tries(&self) -> usize {
        self.tries
    }

    /// The smallest case that fired.
    pub fn best(&self) -> &[Step] {
        &self.best
    }

    /// Ends the walk with the smallest case that fired.
    pub fn into_best(self) -> Vec<Step> {
        self.best
    }
}

/// Where a value sits inside one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Site {
    HandshakeBody,
    PlainBody,
    InnerText,
    InnerBody,
    AuthText,
    Seq,
    EnvelopeJson(usize),
    InsertText(usize),
}

/// How a text value may be shortened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextKind {
    /// Raw JSON of an envelope edit: only string contents and integers
    /// change, so it stays JSON.
    Json,
    /// Free text: JSON stays JSON, anything else is cut as text.
    Free,
}

enum Value<'a> {
    Text(&'a mut String, TextKind),
    Seq(&'a mut u64),
}

fn sites(step: &Step) -> Vec<Site> {
    match step {
        Step::Handshake { .. } => vec![Site::HandshakeBody],
        Step::Plain { .. } => vec![Site::PlainBody],
        Step::Call(call) => {
            let mut out = match &call.inner {
                Inner::Plaintext { .. } => vec![Site::InnerText],
                Inner::Custom(_) => Vec::new(),
                Inner::Request { auth, .. } => {
                    let mut v = vec![Site::InnerBody];
                    if matches!(auth, Auth::Text(_)) {
                        v.push(Site::AuthText);
                    }
                    v
                }
            };
            out.push(Site::Seq);
            out.extend((0..call.envelope.len()).map(Site::EnvelopeJson));
            out.extend((0..call.bytes.len()).map(Site::InsertText));
            out
        }
        _ => Vec::new(),
    }
}

fn free(text: &mut String) -> Option<Value<'_>> {
    Some(Value::Text(text, TextKind::Free))
}

fn value_mut(step: &mut Step, site: Site) -> Option<Value<'_>> {
    match (step, site) {
        (Step::Handshake { body }, Site::HandshakeBody) => free(body),
        (Step::Plain { body, .. }, Site::PlainBody) => free(body),
        (Step::Call(call), site) => match site {
            Site::InnerText => match &mut call.inner {
                Inner::Plaintext { text } => free(text),
                Inner::Request { .. } | Inner::Custom(_) => None,
            },
            // The honest run body is the baseline, not part of a mutation.
            Site::InnerBody => match &mut call.inner {
                Inner::Request { body: Some(b), .. } if !is_honest_body(b) => free(b),
                _ => None,
            },
            Site::AuthText => match &mut call.inner {
                Inner::Request {
                    auth: Auth::Text(t),
                    ..
                } => free(t),
                _ => None,
            },
            Site::Seq => call.seq.as_mut().map(Value::Seq),
            Site::EnvelopeJson(i) => match call.envelope.get_mut(i) {
                Some(EnvelopeEdit::Set { json, .. } | EnvelopeEdit::Duplicate { json, .. }) => {
                    Some(Value::Text(json, TextKind::Json))
                }
                _ => None,
            },
            Site::InsertText(i) => match call.bytes.get_mut(i) {
                Some(ByteEdit::Insert { text, .. }) => free(text),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    }
}

fn is_honest_body(body: &str) -> bool {
    matches!(
        Generator::valid_call().inner,
        Inner::Request { body: Some(b), .. } if b == body
    )
}

/// Shorter versions of one text value, each strictly shorter.
fn shorter_texts(text: &str, kind: TextKind) -> Vec<String> {
    if kind == TextKind::Json {
        if let Some(n) = json_integer(text) {
            return smaller_numbers(n)
                .into_iter()
                .map(|n| n.to_string())
                .collect();
        }
        return shorter_literal(text);
    }
    if serde_json::from_str::<serde_json::Value>(text).is_ok() {
        return shorter_literal(text);
    }
    let chars = text.chars().count();
    keep_counts(chars)
        .into_iter()
        .map(|keep| text.chars().take(keep).collect())
        .collect()
}

/// How many of `n` units a cut keeps: [`LONG_TEXT`] when far above it,
/// and half.
fn keep_counts(n: usize) -> Vec<usize> {
    let mut out = Vec::new();
    if n > 2 * LONG_TEXT {
        out.push(LONG_TEXT);
    }
    if n > LONG_TEXT {
        out.push(n / 2);
    }
    out
}

fn smaller_numbers(n: u64) -> Vec<u64> {
    let mut out = Vec::new();
    if n > 2 * LARGE_NUMBER {
        out.push(LARGE_NUMBER);
    }
    if n > LARGE_NUMBER {
        out.push(n / 2);
    }
    out
}

/// A JSON text that is one plain non-negative integer fitting u64.
fn json_integer(text: &str) -> Option<u64> {
    let t = text.trim();
    let plain =
        !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) && (t == "0" || !t.starts_with('0'));
    if plain {
        t.parse().ok()
    } else {
        None
    }
}

/// One string literal in JSON text: byte offsets of its content's tokens
/// (a character or a whole escape) and of its closing quote.
struct Literal {
    tokens: Vec<usize>,
    end: usize,
}

/// The string literals of JSON-like text, found by scanning (so texts
/// serde cannot hold, such as a lone surrogate escape, still work).
fn literals(text: &str) -> Vec<Literal> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'"' {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        let mut tokens = Vec::new();
        loop {
            let Some(&c) = b.get(j) else {
                // Unterminated: not a literal, and nothing after it is.
                return out;
            };
            if c == b'"' {
                break;
            }
            tokens.push(j);
            j += if c == b'\\' {
                escape_len(&b[j..])
            } else {
                text[j..].chars().next().map_or(1, char::len_utf8)
            };
        }
        out.push(Literal { tokens, end: j });
        i = j + 1;
    }
    out
}

/// Bytes of the escape at the start of `b` (which starts with `\`); a
/// surrogate pair counts as one, so a cut never splits it.
fn escape_len(b: &[u8]) -> usize {
    let unicode = |s: &[u8]| -> Option<u16> {
        if s.len() < 6 || s[0] != b'\\' || s[1] != b'u' {
            return None;
        }
        let hex = std::str::from_utf8(&s[2..6]).ok()?;
        u16::from_str_radix(hex, 16).ok()
    };
    match unicode(b) {
        Some(hi) if (0xD800..0xDC00).contains(&hi) => match unicode(&b[6..]) {
            Some(lo) if (0xDC00..0xE000).contains(&lo) => 12,
            _ => 6,
        },
        Some(_) => 6,
        None => 2.min(b.len()),
    }
}

/// The text with its longest long string literal cut.
fn shorter_literal(text: &str) -> Vec<String> {
    let Some(lit) = literals(text)
        .into_iter()
        .filter(|l| l.tokens.len() > LONG_TEXT)
        .max_by_key(|l| (l.tokens.len(), std::cmp::Reverse(l.end)))
    else {
        return Vec::new();
    };
    keep_counts(lit.tokens.len())
        .into_iter()
        .map(|keep| format!("{}{}", &text[..lit.tokens[keep]], &text[lit.end..]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netfuzz::case::{CallStep, Framing};

    fn call(envelope: Vec<EnvelopeEdit>, seq: Option<u64>) -> Step {
        let mut c = Generator::valid_call();
        c.envelope = envelope;
        c.seq = seq;
        Step::Call(c)
    }

    fn set(field: &str, json: String) -> EnvelopeEdit {
        EnvelopeEdit::Set {
            field: field.into(),
            json,
            invalid: true,
        }
    }

    fn long_case() -> Vec<Step> {
        let mut c = CallStep {
            inner: Inner::Plaintext {
                text: "x".repeat(300),
            },
            seq: Some(u64::MAX - 1),
            at: None,
            envelope: vec![
                set("ct", format!("\"{}\"", "A".repeat(65536))),
                EnvelopeEdit::Duplicate {
                    field: "sid".into(),
                    json: "\"é☃\\u0041\\ud83d\\ude00é☃é☃é☃é☃é☃é☃é☃é☃é☃é☃\"".into(),
                },
                set("seq", "18446744073709551615".into()),
            ],
            bytes: vec![ByteEdit::Insert {
                at: 3,
                text: "\"".repeat(40),
            }],
            framing: Framing::Normal,
            wrong_direction: false,
            seal_with: None,
            relay: None,
            save: None,
        };
        c.bytes.push(ByteEdit::Truncate { keep: 9 });
        vec![
            Step::Handshake {
                body: format!(
                    "{{\"v\":1,\"encPub\":\"{}\",\"nonce\":\"n\"}}",
                    "B".repeat(100)
                ),
            },
            Step::Plain {
                method: "POST".into(),
                path: "/agents/{agent}/run".into(),
                with_key: true,
                body: format!("{{\"input\":\"{}\"", "y".repeat(50)),
                headers: Default::default(),
                authorization: None,
                relay: None,
            },
            Step::Call(c),
        ]
    }

    fn json_texts(steps: &[Step]) -> Vec<String> {
        let mut out = Vec::new();
        for s in steps {
            match s {
                Step::Handshake { body } | Step::Plain { body, .. } => out.push(body.clone()),
                Step::Call(c) => {
                    for e in &c.envelope {
                        if let EnvelopeEdit::Set { json, .. }
                        | EnvelopeEdit::Duplicate { json, .. } = e
                        {
                            out.push(json.clone());
                        }
                    }
                }
                _ => {}
            }
        }
        out
    }

    #[test]
    fn every_candidate_is_strictly_smaller() {
        let case = long_case();
        let all = candidates(&case);
        assert!(all.len() > 10, "{}", all.len());
        for c in &all {
            assert!(size(c) < size(&case), "{c:?}");
        }
    }

    #[test]
    fn json_that_was_valid_stays_valid() {
        let case = long_case();
        let was: Vec<bool> = json_texts(&case)
            .iter()
            .map(|t| serde_json::from_str::<serde_json::Value>(t).is_ok())
            .collect();
        assert!(was.iter().any(|v| *v) && was.iter().any(|v| !*v));
        let mut cuts = 0;
        for c in candidates(&case) {
            let now = json_texts(&c);
            if now.len() != was.len() {
                continue; // an edit or step was removed
            }
            for ((old, new), valid) in json_texts(&case).iter().zip(&now).zip(&was) {
                if old != new {
                    cuts += 1;
                    if *valid {
                        serde_json::from_str::<serde_json::Value>(new)
                            .unwrap_or_else(|e| panic!("{new}: {e}"));
                    }
                }
            }
        }
        assert!(cuts >= 5, "{cuts}");
    }

    #[test]
    fn a_long_string_is_cut_to_a_short_one_and_to_half() {
        let case = vec![call(
            vec![set("sid", format!("\"{}\"", "A".repeat(4096)))],
            None,
        )];
        let values: Vec<String> = candidates(&case)
            .into_iter()
            .filter_map(|c| match c.first() {
                Some(Step::Call(c)) => match c.envelope.first() {
                    Some(EnvelopeEdit::Set { json, .. }) => Some(json.clone()),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        assert_eq!(
            values,
            vec![
                format!("\"{}\"", "A".repeat(LONG_TEXT)),
                format!("\"{}\"", "A".repeat(2048)),
            ]
        );
    }

    #[test]
    fn numbers_go_down_and_escapes_stay_whole() {
        assert_eq!(shorter_texts("18446744073709551615", TextKind::Json), {
            vec![LARGE_NUMBER.to_string(), (u64::MAX / 2).to_string()]
        });
        assert!(shorter_texts("999", TextKind::Json).is_empty());
        assert!(shorter_texts("\"short\"", TextKind::Json).is_empty());
        // 20 tokens, a surrogate pair among them: the half cut keeps 10.
        let text = format!("\"\\ud83d\\ude00{}\"", "\\n".repeat(19));
        assert_eq!(
            shorter_texts(&text, TextKind::Json),
            vec![format!("\"\\ud83d\\ude00{}\"", "\\n".repeat(9))]
        );
        // Free text that is not JSON is cut on character boundaries.
        let cut = shorter_texts(&"é".repeat(40), TextKind::Free);
        assert_eq!(cut, vec!["é".repeat(16), "é".repeat(20)]);
    }

    #[test]
    fn the_honest_body_is_not_shrunk() {
        let case = vec![Step::Call(Generator::valid_call())];
        assert!(candidates(&case).is_empty());
    }

    /// Runs the shrinker with `fires` standing in for the target.
    fn shrink_with(case: Vec<Step>, max: usize, fires: impl Fn(&[Step]) -> bool) -> Shrinker {
        let mut s = Shrinker::new(case, max);
        while let Some(c) = s.next_candidate() {
            let f = fires(&c);
            s.record(f);
        }
        s
    }

    #[test]
    fn the_walk_ends_even_when_everything_fires() {
        let s = shrink_with(long_case(), usize::MAX, |_| true);
        assert!(s.tries() < 500, "{}", s.tries());
        // A fixed point: nothing smaller is left to try.
        assert!(candidates(s.best()).is_empty(), "{:?}", s.best());
        assert_eq!(s.best().len(), 1);
    }

    #[test]
    fn only_firing_candidates_are_kept_and_the_budget_holds() {
        // A stand-in target that fires while the sid is at least 100 long.
        let fires = |steps: &[Step]| {
            steps.iter().any(|s| match s {
                Step::Call(c) => c.envelope.iter().any(|e| {
                    matches!(e, EnvelopeEdit::Set { field, json, .. }
                        if field == "sid" && json.len() >= 102)
                }),
                _ => false,
            })
        };
        let case = vec![
            Step::Call(Generator::valid_call()),
            call(
                vec![
                    EnvelopeEdit::FlipTag,
                    set("sid", format!("\"{}\"", "A".repeat(4096))),
                ],
                Some(1 << 60),
            ),
        ];
        let s = shrink_with(case.clone(), usize::MAX, fires);
        let best = s.into_best();
        assert!(fires(&best));
        assert_eq!(
            best,
            vec![call(
                vec![set("sid", format!("\"{}\"", "A".repeat(128)))],
                None
            )]
        );

        let s = shrink_with(case.clone(), 3, fires);
        assert_eq!(s.tries(), 3);
        assert!(fires(s.best()) && size(s.best()) < size(&case));
    }
}
