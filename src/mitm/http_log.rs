//! The relay's HTTP log: one [`Exchange`] per request the client made,
//! with what the relay (as an adversary) changed in it. Bounded in count
//! and in size, and never holding a canary (the access key), so it can go
//! into a report as it is.

use crate::report::Exchange;

use super::State;

/// The most exchanges kept; later ones are counted, not stored, so a
/// client that loops cannot grow the relay's memory.
pub const MAX_EXCHANGES: usize = 64;

/// The most bytes of a request or response body kept in an exchange.
pub const MAX_BODY_CHARS: usize = 300;

/// The most notes kept on one exchange.
const MAX_NOTES: usize = 8;

/// The exchanges so far.
#[derive(Debug, Default)]
pub struct HttpLog {
    entries: Vec<Exchange>,
    /// Per entry: its notes, and whether its response has ended.
    notes: Vec<(Vec<String>, bool)>,
    open: usize,
    dropped: u64,
}

/// `body` as text for the HTTP log: canaries replaced by `<redacted>`,
/// then cut to [`MAX_BODY_CHARS`] with the full size said.
pub fn body_text(body: &[u8], canaries: &[String]) -> String {
    let mut text = String::from_utf8_lossy(body).into_owned();
    for c in canaries.iter().filter(|c| !c.is_empty()) {
        text = text.replace(c.as_str(), "<redacted>");
    }
    if text.len() <= MAX_BODY_CHARS {
        return text;
    }
    let cut = crate::text::char_prefix(&text, MAX_BODY_CHARS);
    format!("{cut}…({} bytes)", body.len())
}

/// The start of a session id, enough to tell sessions apart in a report.
pub fn short_sid(sid: &str) -> String {
    let cut: String = sid.chars().take(8).collect();
    if cut.len() < sid.len() {
        format!("{cut}…")
    } else {
        cut
    }
}

impl State {
    /// Starts an exchange; the returned slot names it for [`State::note`]
    /// and [`State::close`] (`None` once the log is full).
    pub(super) fn open_exchange(
        &self,
        action: &str,
        request_line: String,
        body: &[u8],
    ) -> Option<usize> {
        let request_body = body_text(body, &self.config.canaries);
        let mut t = self.http_log.lock().unwrap_or_else(|e| e.into_inner());
        if t.entries.len() >= MAX_EXCHANGES {
            t.dropped += 1;
            return None;
        }
        let step = t.entries.len();
        t.entries.push(Exchange {
            step,
            action: action.to_string(),
            request_line,
            request_body,
            response_body: "(no response yet)".into(),
            ..Default::default()
        });
        t.notes.push((Vec::new(), false));
        t.open += 1;
        Some(step)
    }

    /// Adds a sentence about what happened in the exchange `slot`.
    pub(super) fn note(&self, slot: Option<usize>, text: String) {
        let Some(i) = slot else { return };
        let mut t = self.http_log.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((notes, _)) = t.notes.get_mut(i) {
            if notes.len() < MAX_NOTES {
                notes.push(text);
            }
        }
    }

    /// Ends the exchange `slot` with the status and a description of the
    /// response the client got (already redacted and bounded).
    pub(super) fn close(&self, slot: Option<usize>, status: u16, response: String) {
        let Some(i) = slot else { return };
        let mut t = self.http_log.lock().unwrap_or_else(|e| e.into_inner());
        match t.notes.get_mut(i) {
            Some((_, closed)) if !*closed => *closed = true,
            _ => return,
        }
        if let Some(x) = t.entries.get_mut(i) {
            x.status = status;
            x.response_body = response;
        }
        t.open = t.open.saturating_sub(1);
    }

    /// Exchanges opened and not yet closed.
    pub(super) fn open_exchanges(&self) -> usize {
        self.http_log.lock().unwrap_or_else(|e| e.into_inner()).open
    }

    /// A copy of the log, notes joined into each exchange's note.
    pub(super) fn log_snapshot(&self) -> Vec<Exchange> {
        let t = self.http_log.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<Exchange> = t
            .entries
            .iter()
            .zip(&t.notes)
            .map(|(x, (notes, _))| {
                let mut x = x.clone();
                let note = notes
                    .iter()
                    .map(|n| body_text(n.as_bytes(), &self.config.canaries))
                    .collect::<Vec<_>>()
                    .join("; ");
                x.note = (!note.is_empty()).then_some(note);
                x
            })
            .collect();
        if t.dropped > 0 {
            out.push(Exchange {
                step: out.len(),
                action: "(more)".into(),
                request_line: format!("{} further request(s) not kept", t.dropped),
                ..Default::default()
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_redacted_then_bounded() {
        let key = "osk-secret".to_string();
        let text = body_text(b"Bearer osk-secret!", std::slice::from_ref(&key));
        assert_eq!(text, "Bearer <redacted>!");
        let long = vec![b'a'; 1000];
        let cut = body_text(&long, &[]);
        assert!(cut.starts_with(&"a".repeat(MAX_BODY_CHARS)));
        assert!(cut.ends_with("…(1000 bytes)"), "{cut}");
        // A key cut in half by the bound is never half shown: redaction runs first.
        let mut edge = vec![b'a'; MAX_BODY_CHARS - 4];
        edge.extend_from_slice(key.as_bytes());
        assert!(!body_text(&edge, std::slice::from_ref(&key)).contains("osk-"));
    }

    #[test]
    fn short_sids() {
        assert_eq!(short_sid("abc"), "abc");
        assert_eq!(short_sid("abcdefghijk"), "abcdefgh…");
    }
}
