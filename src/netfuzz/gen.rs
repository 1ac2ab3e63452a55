//! The input generator: structure-aware mutations drawn from a seeded
//! stream, so one `--seed` always yields the same cases in the same order.

use crate::rng::{RandomSource, SeededRandom};

use super::case::{Auth, ByteEdit, CallStep, EnvelopeEdit, Framing, Inner, SeqAt, Step};

/// Which endpoints the generator may aim at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoints {
    /// `POST /secure/session`.
    pub session: bool,
    /// `POST /secure/call`.
    pub call: bool,
    /// Plaintext agent routes.
    pub plaintext: bool,
}

impl Endpoints {
    /// Parses `session,call,plaintext` (any subset).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut e = Endpoints {
            session: false,
            call: false,
            plaintext: false,
        };
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "session" => e.session = true,
                "call" => e.call = true,
                "plaintext" => e.plaintext = true,
                other => {
                    return Err(format!(
                        "unknown endpoint {other:?} (session, call, plaintext)"
                    ))
                }
            }
        }
        if !(e.session || e.call || e.plaintext) {
            return Err("no endpoint selected".into());
        }
        Ok(e)
    }
}

/// Generates cases.
#[derive(Debug, Clone)]
pub struct Generator {
    rng: SeededRandom,
    endpoints: Endpoints,
    thrifty: bool,
}

const RUN: &str = "/agents/{agent}/run";
const DISPATCH: &str = "/agents/{agent}/dispatch";

/// Honest inner JSON bodies (base64url of `{"input":"fuzz"}`).
const RUN_BODY: &str = "eyJpbnB1dCI6ImZ1enoifQ";

/// Paths that reach the channel endpoints under some spelling (CALL-8).
const NESTED: &[&str] = &[
    "/secure/session",
    "/secure/call",
    "/v1/secure/session",
    "/api/secure/call",
    "/v1/api/secure/session",
    "/secure",
];

/// JSON values of every shape, for wrong types and edges.
const ODD_JSON: &[&str] = &[
    "null",
    "true",
    "[]",
    "{}",
    "\"\"",
    "\"1\"",
    "-1",
    "1.5",
    "1e3",
    "18446744073709551616",
    "9007199254740993",
    "-0",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\"é☃\"",
];

impl Generator {
    /// A generator for `seed`; `worker` separates concurrent streams.
    pub fn new(seed: u64, worker: u64, endpoints: Endpoints) -> Self {
        Generator {
            rng: SeededRandom::new(seed, &format!("netfuzz-worker-{worker}")),
            endpoints,
            thrifty: false,
        }
    }

    /// Spare handshakes (a budgeted target): no inputs that use up a
    /// session's seq space, and hello mutations one time in four.
    pub fn thrifty(mut self, on: bool) -> Self {
        self.thrifty = on;
        self
    }

    fn below(&mut self, n: usize) -> usize {
        self.rng.below(n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &'a [&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    /// Seeded random bytes.
    pub fn bytes(&mut self, out: &mut [u8]) {
        self.rng.fill(out);
    }

    /// A valid call to the run route.
    pub fn valid_call() -> CallStep {
        CallStep::honest(Inner::honest_run())
    }

    /// A valid call to the streaming route: `events` events of `size`
    /// bytes of padding, answered as sealed frames ending in `fin`.
    pub fn dispatch_call(events: u64, size: u64) -> CallStep {
        let body = format!("{{\"events\":{events},\"size\":{size}}}");
        let mut call = Self::valid_call();
        call.inner = Inner::Request {
            method: "POST".into(),
            path: DISPATCH.into(),
            auth: Auth::Key,
            body: Some(crate::protocol::encoding::b64url_encode(body.as_bytes())),
        };
        call
    }

    /// A valid call, to `/dispatch` one time in four (kept small so a
    /// stream costs about as much as a buffered run).
    fn base_call(&mut self) -> CallStep {
        if self.below(4) == 0 {
            let events = 1 + self.below(5) as u64;
            let size = self.below(65) as u64;
            Self::dispatch_call(events, size)
        } else {
            Self::valid_call()
        }
    }

    /// The next case.
    pub fn case(&mut self) -> Vec<Step> {
        loop {
            let roll = self.below(100);
            let case = match roll {
                0..=7 if self.endpoints.call => vec![Step::Call(self.base_call())],
                8..=32 if self.endpoints.call => vec![Step::Call(self.envelope_case())],
                33..=54 if self.endpoints.call => vec![Step::Call(self.inner_case())],
                55..=64 if self.endpoints.call => vec![Step::Call(self.byte_case())],
                65..=72 if self.endpoints.call => {
                    vec![Step::Call(self.framing_case())]
                }
                73..=86 if self.endpoints.call => self.stateful_case(),
                87..=92 if self.endpoints.session && (!self.thrifty || self.below(4) == 0) => {
                    vec![self.handshake_case()]
                }
                93..=99 if self.endpoints.plaintext => vec![self.plain_case()],
                _ => continue,
            };
            return case;
        }
    }

    /// A further mutation of a corpus case: one more edit on its last call.
    pub fn mutate(&mut self, mut steps: Vec<Step>) -> Vec<Step> {
        if let Some(Step::Call(call)) = steps.last_mut() {
            if call.framing.is_normal() && self.below(2) == 0 {
                let extra = self.envelope_case();
                call.envelope.extend(extra.envelope);
            } else {
                let extra = self.byte_case();
                call.bytes.extend(extra.bytes);
            }
            call.envelope.truncate(4);
            call.bytes.truncate(4);
            return steps;
        }
        self.case()
    }

    fn envelope_case(&mut self) -> CallStep {
        let mut call = self.base_call();
        match self.below(8) {
            0 => {
                // Sealed with the server-to-client key (CALL-5).
                call.wrong_direction = true;
                return call;
            }
            1 => {
                // An unknown sid with a wrong v: the session lookup comes
                // first, so 401 (CALL-2's order).
                let v = self.invalid_value("v");
                let sid = self.invalid_value("sid");
                call.envelope = if self.below(2) == 0 {
                    vec![v, sid]
                } else {
                    vec![sid, v]
                };
                return call;
            }
            _ => {}
        }
        let edits = 1 + self.below(2);
        for _ in 0..edits {
            let edit = self.envelope_edit();
            call.envelope.push(edit);
        }
        call
    }

    fn envelope_edit(&mut self) -> EnvelopeEdit {
        let field = self.pick(&["v", "sid", "seq", "ct"]).to_string();
        match self.below(8) {
            0 => EnvelopeEdit::FlipCt,
            1 => EnvelopeEdit::FlipTag,
            2 => EnvelopeEdit::Remove { field },
            3 => {
                let json = self.pick(ODD_JSON).to_string();
                EnvelopeEdit::Duplicate { field, json }
            }
            4 => {
                // A wrong type or edge value: the target may read some of
                // these leniently, so none of them is required to fail.
                let json = self.pick(ODD_JSON).to_string();
                EnvelopeEdit::Set {
                    field,
                    json,
                    invalid: false,
                }
            }
            _ => self.invalid_value(&field),
        }
    }

    /// A value of the right type that no honest target can accept.
    fn invalid_value(&mut self, field: &str) -> EnvelopeEdit {
        let json = match field {
            "v" => self.pick(&["0", "2", "-1", "100"]).to_string(),
            "sid" => {
                let len = [0usize, 1, 8, 64, 4096][self.below(5)];
                format!("\"{}\"", "A".repeat(len))
            }
            "seq" => {
                // Another seq under a valid tag: the AAD no longer matches.
                format!("{}", 1_000_000 + self.below(1000))
            }
            _ => {
                let kind = self.below(5);
                match kind {
                    0 => "\"\"".to_string(),
                    1 => "\"AAAA\"".to_string(),
                    2 => "\"====\"".to_string(),
                    3 => "\"!!!!!!!!!!!!!!!!!!!!!!!!\"".to_string(),
                    _ => format!("\"{}\"", "A".repeat(64 * 1024)),
                }
            }
        };
        EnvelopeEdit::Set {
            field: field.to_string(),
            json,
            invalid: true,
        }
    }

    fn inner_case(&mut self) -> CallStep {
        let mut call = self.base_call();
        call.inner = match self.below(8) {
            7 => return call,
            0 => Inner::Request {
                method: "POST".into(),
                path: self.pick(NESTED).to_string(),
                auth: Auth::Key,
                body: None,
            },
            1 => Inner::Request {
                method: "POST".into(),
                path: RUN.into(),
                auth: if self.below(2) == 0 {
                    Auth::None
                } else {
                    Auth::Text(
                        self.pick(&["Bearer wrong", "Bearer ", "Basic abc", "bearer x"])
                            .into(),
                    )
                },
                body: Some(RUN_BODY.into()),
            },
            2 => Inner::Request {
                method: self.pick(&["GET", "POST", "DELETE"]).into(),
                path: self
                    .pick(&["/agents/no-such-agent/run", "/nope", "/agents/{agent}/nope"])
                    .into(),
                auth: Auth::Key,
                body: None,
            },
            3 => Inner::Request {
                method: "POST".into(),
                path: RUN.into(),
                auth: Auth::Key,
                body: Some(self.pick(&["!!!", "a b", "eyJ+", "eyJ/"]).into()),
            },
            4 => Inner::Plaintext {
                text: self
                    .pick(&[
                        "",
                        "null",
                        "[]",
                        "{}",
                        "{\"method\":\"GET\"}",
                        "{\"method\":1,\"path\":\"/\"}",
                        "{\"method\":\"GET\",\"path\":2}",
                        "{\"method\":\"GET\",\"path\":\"relative\"}",
                        "not json at all",
                    ])
                    .into(),
            },
            5 => {
                let mut noise = vec![0u8; 1 + self.below(64)];
                self.bytes(&mut noise);
                // Garbage that is certainly not an InnerRequest.
                Inner::Plaintext {
                    text: format!("\u{1}{}", crate::protocol::encoding::b64url_encode(&noise)),
                }
            }
            _ => Inner::Request {
                method: "GET".into(),
                path: "/agents/{agent}".into(),
                auth: Auth::Key,
                body: None,
            },
        };
        call
    }

    fn byte_case(&mut self) -> CallStep {
        let mut call = self.base_call();
        let edits = 1 + self.below(3);
        for _ in 0..edits {
            let at = self.below(512);
            let edit = match self.below(3) {
                0 => ByteEdit::Truncate { keep: at },
                // A fixed byte, not a XOR: the result must not depend on
                // the session's random ciphertext, or a finding would not
                // replay the same way.
                1 => ByteEdit::Set {
                    at,
                    byte: self
                        .pick(&["\"", "{", "}", ",", ":", "=", "A", "_", "-", "0"])
                        .as_bytes()[0],
                },
                _ => ByteEdit::Insert {
                    at,
                    text: self
                        .pick(&[
                            "\"",
                            "{",
                            "}",
                            ",",
                            "\\",
                            "\u{0}",
                            " ",
                            "\u{feff}",
                            "999999999999",
                        ])
                        .into(),
                },
            };
            call.bytes.push(edit);
        }
        call
    }

    fn framing_case(&mut self) -> CallStep {
        let mut call = Self::valid_call();
        call.framing = match self.below(6) {
            0 => Framing::LengthLie {
                extra: 1 + self.below(100),
            },
            1 => Framing::LengthShort {
                short: 1 + self.below(20),
            },
            2 => Framing::Chunked {
                size: 1 + self.below(64),
            },
            3 => Framing::ChunkedBadSize,
            4 => Framing::ChunkedUnterminated,
            _ => Framing::LengthAndChunked,
        };
        call
    }

    fn stateful_case(&mut self) -> Vec<Step> {
        let relative = |at: SeqAt| {
            let mut call = Self::valid_call();
            call.at = Some(at);
            Step::Call(call)
        };
        let window = crate::protocol::REPLAY_WINDOW;
        match self.below(12) {
            0 | 1 => vec![Step::Call(self.base_call()), Step::Resend],
            4 => {
                // An unseen seq inside the window, after a jump (CALL-3).
                let by = 2 + self.below(window as usize - 2) as u64;
                let back = 1 + self.below(by as usize - 1) as u64;
                vec![
                    relative(SeqAt::Ahead { by }),
                    relative(SeqAt::Behind { by: back }),
                ]
            }
            5 => {
                // At or past the window's lower edge, on a never-seen seq:
                // the jump clears the whole old window first.
                let by = window + 1 + self.below(30) as u64;
                let back = if self.below(2) == 0 {
                    window
                } else {
                    window + self.below((by - window) as usize) as u64
                };
                vec![
                    relative(SeqAt::Ahead { by }),
                    relative(SeqAt::Behind { by: back }),
                ]
            }
            6 => {
                // The seq of an accepted call, sealed over another body.
                let mut again = self.base_call();
                again.inner = Inner::Request {
                    method: "POST".into(),
                    path: RUN.into(),
                    auth: Auth::Key,
                    body: Some("eyJpbnB1dCI6ImFnYWluIn0".into()),
                };
                again.at = Some(SeqAt::Same);
                vec![Step::Call(self.base_call()), Step::Call(again)]
            }
            7 => {
                // A forged tag must not burn its seq (CALL-4).
                let mut forged = Self::valid_call();
                forged.envelope.push(EnvelopeEdit::FlipTag);
                vec![Step::Call(forged), relative(SeqAt::Same)]
            }
            8 => {
                // Back onto the first call's seq: a replay by seq alone.
                let by = 1 + self.below(window as usize - 1) as u64;
                vec![
                    Step::Call(Self::valid_call()),
                    relative(SeqAt::Ahead { by }),
                    relative(SeqAt::Behind { by }),
                ]
            }
            9 => vec![Step::CallAfterExpiry],
            11 => {
                // A forged tag on a used seq or on seq 0: the AEAD comes
                // before the replay window, so 400, not 409 (CALL-2).
                let mut forged = Self::valid_call();
                forged.envelope.push(EnvelopeEdit::FlipTag);
                if self.below(2) == 0 {
                    forged.seq = Some(0);
                    vec![Step::Call(forged)]
                } else {
                    forged.at = Some(SeqAt::Same);
                    vec![Step::Call(self.base_call()), Step::Call(forged)]
                }
            }
            n if n == 2 || self.thrifty => {
                let mut call = Self::valid_call();
                call.seq = Some(0);
                vec![Step::Call(call)]
            }
            _ => {
                // Edges of the seq space under a valid tag.
                let mut call = Self::valid_call();
                call.seq = Some([(1u64 << 53) + 1, u64::MAX, u64::MAX - 1, 1 << 63][self.below(4)]);
                if self.below(2) == 0 {
                    call.envelope.push(EnvelopeEdit::Set {
                        field: "ct".into(),
                        json: "\"\"".into(),
                        invalid: true,
                    });
                }
                vec![Step::Call(call)]
            }
        }
    }

    fn handshake_case(&mut self) -> Step {
        if self.below(3) == 0 {
            return self.hello_one_bad_field();
        }
        let fields = ["v", "agentAddress", "encPub", "nonce"];
        let mut obj = serde_json::Map::new();
        obj.insert("v".into(), 1.into());
        obj.insert("agentAddress".into(), "{address}".into());
        let mut key = [0u8; 32];
        self.bytes(&mut key);
        obj.insert(
            "encPub".into(),
            crate::protocol::encoding::b64url_encode(&key).into(),
        );
        let mut nonce = [0u8; 16];
        self.bytes(&mut nonce);
        obj.insert(
            "nonce".into(),
            crate::protocol::encoding::b64url_encode(&nonce).into(),
        );
        let field = fields[self.below(fields.len())];
        match self.below(3) {
            0 => {
                obj.remove(field);
            }
            _ => {
                let odd: serde_json::Value =
                    serde_json::from_str(self.pick(ODD_JSON)).unwrap_or_default();
                obj.insert(field.into(), odd);
            }
        }
        let mut body = serde_json::Value::Object(obj).to_string();
        if self.below(5) == 0 {
            // The body may hold multi-byte characters: cut on a boundary.
            let keep = crate::text::char_prefix(&body, self.below(body.len())).len();
            body.truncate(keep);
        }
        Step::Handshake { body }
    }

    /// An honest ClientHello but for one field whose refusal the handshake
    /// order fixes: `v` other than 1 (HS-4), an agent the server does not
    /// hold (HS-6), a low-order `encPub` (HS-7).
    fn hello_one_bad_field(&mut self) -> Step {
        use crate::protocol::encoding::b64url_encode;
        let mut key = [0u8; 32];
        self.bytes(&mut key);
        let mut nonce = [0u8; 16];
        self.bytes(&mut nonce);
        let mut hello = serde_json::json!({
            "v": 1,
            "agentAddress": "{address}",
            "encPub": b64url_encode(&key),
            "nonce": b64url_encode(&nonce),
        });
        match self.below(3) {
            0 => hello["v"] = [0i64, 2, -1, 100][self.below(4)].into(),
            1 => {
                let mut other = [0u8; 20];
                self.bytes(&mut other);
                hello["agentAddress"] = format!("0x{}", hex::encode(other)).into();
            }
            _ => {
                let points = crate::protocol::handshake::low_order_points();
                let point = points[self.below(points.len())].1;
                hello["encPub"] = b64url_encode(&point).into();
            }
        }
        Step::Handshake {
            body: hello.to_string(),
        }
    }

    fn plain_case(&mut self) -> Step {
        Step::Plain {
            method: self.pick(&["POST", "GET"]).into(),
            path: self
                .pick(&[
                    "/agents/{agent}/run",
                    "/v1/agents/{agent}/run",
                    "/api/agents/{agent}/run",
                    "/agents/{agent}/dispatch",
                ])
                .into(),
            with_key: self.below(3) != 0,
            body: self.pick(&["{\"input\":\"x\"}", "", "{", "[]"]).into(),
            headers: Default::default(),
            authorization: None,
            relay: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_sets_bytes_and_streams_but_never_xors() {
        let all = Endpoints::parse("session,call,plaintext").unwrap();
        let mut gen = Generator::new(7, 0, all);
        let calls: Vec<CallStep> = (0..3000)
            .flat_map(|_| gen.case())
            .filter_map(|s| match s {
                Step::Call(c) => Some(c),
                _ => None,
            })
            .collect();
        let edits = || calls.iter().flat_map(|c| c.bytes.iter());
        assert!(!edits().any(|e| matches!(e, ByteEdit::Xor { .. })));
        assert!(edits().any(|e| matches!(e, ByteEdit::Set { .. })));
        let dispatch = calls
            .iter()
            .filter(|c| matches!(&c.inner, Inner::Request { path, .. } if path == DISPATCH))
            .count();
        assert!(dispatch > calls.len() / 10, "{dispatch} of {}", calls.len());
        assert!(calls.iter().any(|c| c.at == Some(SeqAt::Same)));
        assert!(calls.iter().any(|c| c.wrong_direction));
        assert!(calls
            .iter()
            .any(|c| c.envelope == [EnvelopeEdit::FlipTag] && c.at == Some(SeqAt::Same)));
    }

    #[test]
    fn hellos_with_one_bad_field_have_a_fixed_refusal() {
        let all = Endpoints::parse("session").unwrap();
        let mut gen = Generator::new(3, 0, all);
        let fixed: Vec<&str> = (0..600)
            .flat_map(|_| gen.case())
            .filter_map(|s| match s {
                Step::Handshake { body } => {
                    crate::judge::order::hello_refusal(body.as_bytes(), "{address}")
                        .map(|f| f.requirement)
                }
                _ => None,
            })
            .collect();
        for id in ["HS-4", "HS-6", "HS-7"] {
            assert!(fixed.contains(&id), "{id} in {fixed:?}");
        }
    }
}
