//! Text helpers every layer shares.

/// The longest prefix of `text` that is at most `max` bytes and ends on a
/// character boundary: the one way a message, a body or a generated input
/// is cut short without splitting a multi-byte character.
pub fn char_prefix(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::char_prefix;

    #[test]
    fn cuts_on_a_character_boundary() {
        assert_eq!(char_prefix("abc", 5), "abc");
        assert_eq!(char_prefix("abc", 2), "ab");
        // "é" is two bytes: a cut inside it backs off before it.
        assert_eq!(char_prefix("aé", 2), "a");
        assert_eq!(char_prefix("aé", 3), "aé");
        assert_eq!(char_prefix("é", 0), "");
    }
}
