//! Incremental UTF-8 validation for text messages that arrive in pieces.
//!
//! A piece may end inside a character; its first bytes are kept until the rest
//! arrives. A piece fails as soon as it holds bytes that no continuation could make
//! valid, so a bad text message is refused at its first bad fragment.

/// Validates one text message fed in pieces.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Utf8Validator {
    /// The start of a character cut off at the end of the last piece.
    partial: [u8; 4],
    partial_len: u8,
}

/// The bytes are not UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InvalidUtf8;

/// How many bytes a character starting with `first` has (1 for invalid leads; the
/// decoder reports those).
fn width(first: u8) -> usize {
    match first {
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        _ => 1,
    }
}

/// Checks `bytes`: `Ok(n)` when all is valid but the last `n` bytes (at most 3),
/// which begin a character that may still complete.
fn check(bytes: &[u8]) -> Result<usize, InvalidUtf8> {
    match std::str::from_utf8(bytes) {
        Ok(_) => Ok(0),
        Err(err) if err.error_len().is_none() => Ok(bytes.len() - err.valid_up_to()),
        Err(_) => Err(InvalidUtf8),
    }
}

impl Utf8Validator {
    /// Checks the next piece of the message.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) -> Result<(), InvalidUtf8> {
        if self.partial_len > 0 {
            let have = usize::from(self.partial_len);
            let need = width(self.partial[0]) - have;
            let take = need.min(bytes.len());
            let mut char_bytes = self.partial;
            char_bytes[have..have + take].copy_from_slice(&bytes[..take]);
            let total = have + take;
            let cut = check(&char_bytes[..total])?;
            if cut > 0 {
                // Still incomplete (the piece was too short to finish it).
                self.partial = char_bytes;
                self.partial_len = total as u8;
                return Ok(());
            }
            self.partial_len = 0;
            bytes = &bytes[take..];
        }
        let cut = check(bytes)?;
        if cut > 0 {
            self.partial[..cut].copy_from_slice(&bytes[bytes.len() - cut..]);
            self.partial_len = cut as u8;
        }
        Ok(())
    }

    /// Checks that the message did not end inside a character.
    pub(crate) fn finish(&self) -> Result<(), InvalidUtf8> {
        if self.partial_len == 0 { Ok(()) } else { Err(InvalidUtf8) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid_in_pieces(bytes: &[u8], cuts: &[usize]) -> bool {
        let mut v = Utf8Validator::default();
        let mut at = 0;
        for &cut in cuts.iter().chain(std::iter::once(&bytes.len())) {
            if v.feed(&bytes[at..cut]).is_err() {
                return false;
            }
            at = cut;
        }
        v.finish().is_ok()
    }

    #[test]
    fn agrees_with_std_for_every_split() {
        let samples: [&[u8]; 8] = [
            "κόσμε".as_bytes(),
            "Hello-µ@ßöäüàá-UTF-8!!".as_bytes(),
            "\u{10ffff}\u{fffd}a€".as_bytes(),
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
            b"\xf4\x90\x80\x80",
            b"\xc0\xaf",
            b"abc\xe2\x82",
            b"\xed\x9f\xbf\xee\x80\x80",
        ];
        for sample in samples {
            let expected = std::str::from_utf8(sample).is_ok();
            for a in 0..=sample.len() {
                for b in a..=sample.len() {
                    assert_eq!(
                        valid_in_pieces(sample, &[a, b]),
                        expected,
                        "{sample:x?} cut at {a},{b}"
                    );
                }
            }
        }
    }

    #[test]
    fn fails_on_the_first_bad_piece() {
        let mut v = Utf8Validator::default();
        assert!(v.feed("ok ".as_bytes()).is_ok());
        // 0xF4 0x90 is beyond U+10FFFF: invalid however the message goes on.
        assert_eq!(v.feed(b"\xf4\x90"), Err(InvalidUtf8));
        let mut v = Utf8Validator::default();
        assert!(v.feed(b"\xf0").is_ok());
        assert_eq!(v.feed(b"\x28"), Err(InvalidUtf8));
    }

    #[test]
    fn a_message_ending_inside_a_character_is_invalid() {
        let mut v = Utf8Validator::default();
        assert!(v.feed(b"\xe2\x82").is_ok());
        assert_eq!(v.finish(), Err(InvalidUtf8));
    }
}
