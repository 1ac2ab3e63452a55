//! The canary scan shared by both directions of the relay.

/// Looks for canary strings in a byte stream that arrives in pieces; a
/// canary split across two pieces is still found, because the scan keeps
/// the tail of the previous piece.
#[derive(Debug, Clone)]
pub struct CanaryScan {
    canaries: Vec<Vec<u8>>,
    tail: Vec<u8>,
    keep: usize,
}

impl CanaryScan {
    /// A scan for `canaries` (empty strings are ignored).
    pub fn new(canaries: &[String]) -> Self {
        let canaries: Vec<Vec<u8>> = canaries
            .iter()
            .filter(|c| !c.is_empty())
            .map(|c| c.as_bytes().to_vec())
            .collect();
        let keep = canaries.iter().map(Vec::len).max().unwrap_or(1) - 1;
        CanaryScan {
            canaries,
            tail: Vec::new(),
            keep,
        }
    }

    /// Feeds one piece; returns the canaries seen (each index once per call).
    pub fn feed(&mut self, piece: &[u8]) -> Vec<usize> {
        if self.canaries.is_empty() {
            return Vec::new();
        }
        let mut window = std::mem::take(&mut self.tail);
        window.extend_from_slice(piece);
        let found = self
            .canaries
            .iter()
            .enumerate()
            .filter(|(_, c)| window.windows(c.len()).any(|w| w == c.as_slice()))
            .map(|(i, _)| i)
            .collect();
        let start = window.len().saturating_sub(self.keep);
        self.tail = window[start..].to_vec();
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canary_split_across_pieces_is_found() {
        let mut scan = CanaryScan::new(&["secret-key".into()]);
        assert!(scan.feed(b"xx secr").is_empty());
        assert_eq!(scan.feed(b"et-key yy"), vec![0]);
        assert!(scan.feed(b"nothing here").is_empty());
    }
}
