//! WebSocket frame headers and masking (RFC 6455 §5.2, §5.3), without I/O.

/// Continuation frame.
pub(crate) const OP_CONTINUATION: u8 = 0x0;
/// Text data frame.
pub(crate) const OP_TEXT: u8 = 0x1;
/// Binary data frame.
pub(crate) const OP_BINARY: u8 = 0x2;
/// Close control frame.
pub(crate) const OP_CLOSE: u8 = 0x8;
/// Ping control frame.
pub(crate) const OP_PING: u8 = 0x9;
/// Pong control frame.
pub(crate) const OP_PONG: u8 = 0xA;

/// The longest header: 2 bytes, an 8-byte length and a 4-byte masking key.
pub(crate) const MAX_HEADER: usize = 14;

/// The most payload a control frame may carry.
pub(crate) const MAX_CONTROL_PAYLOAD: usize = 125;

/// A frame header as it was on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// The final fragment of a message.
    pub(crate) fin: bool,
    /// RSV1..RSV3, in the low three bits.
    pub(crate) rsv: u8,
    /// The opcode (low four bits).
    pub(crate) opcode: u8,
    /// The masking key, when the frame is masked.
    pub(crate) mask: Option<[u8; 4]>,
    /// The payload length.
    pub(crate) len: u64,
}

/// Why a header cannot be valid, whatever follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BadLength {
    /// A 16- or 64-bit length that would have fit a shorter form.
    NotMinimal,
    /// A 64-bit length with its most significant bit set.
    TopBitSet,
}

impl Header {
    /// Whether the opcode is a control frame's (close, ping, pong and the reserved 0xB-0xF).
    pub(crate) fn is_control(&self) -> bool {
        self.opcode & 0x8 != 0
    }

    /// Parses the header at the start of `bytes`: the header and its size, or `None`
    /// when more bytes are needed.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Option<(Self, usize)>, BadLength> {
        let [b0, b1, ..] = *bytes else { return Ok(None) };
        let masked = b1 & 0x80 != 0;
        let (len, at) = match b1 & 0x7f {
            126 => {
                let Some(raw) = bytes.get(2..4) else { return Ok(None) };
                let len = u16::from_be_bytes([raw[0], raw[1]]);
                if len < 126 {
                    return Err(BadLength::NotMinimal);
                }
                (u64::from(len), 4)
            }
            127 => {
                let Some(raw) = bytes.get(2..10) else { return Ok(None) };
                let len = u64::from_be_bytes(raw.try_into().expect("8 bytes"));
                if len >> 63 != 0 {
                    return Err(BadLength::TopBitSet);
                }
                if len <= 0xffff {
                    return Err(BadLength::NotMinimal);
                }
                (len, 10)
            }
            short => (u64::from(short), 2),
        };
        let (mask, size) = if masked {
            let Some(key) = bytes.get(at..at + 4) else { return Ok(None) };
            (Some(key.try_into().expect("4 bytes")), at + 4)
        } else {
            (None, at)
        };
        let header =
            Self { fin: b0 & 0x80 != 0, rsv: (b0 >> 4) & 0x7, opcode: b0 & 0xf, mask, len };
        Ok(Some((header, size)))
    }

    /// Writes the header (RSV bits clear, shortest length form) into `out`; returns its size.
    pub(crate) fn encode(&self, out: &mut [u8; MAX_HEADER]) -> usize {
        out[0] = (u8::from(self.fin) << 7) | (self.rsv & 0x7) << 4 | (self.opcode & 0xf);
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut at = match self.len {
            len @ 0..=125 => {
                out[1] = mask_bit | len as u8;
                2
            }
            len @ 126..=0xffff => {
                out[1] = mask_bit | 126;
                out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
                4
            }
            len => {
                out[1] = mask_bit | 127;
                out[2..10].copy_from_slice(&len.to_be_bytes());
                10
            }
        };
        if let Some(key) = self.mask {
            out[at..at + 4].copy_from_slice(&key);
            at += 4;
        }
        at
    }
}

/// The masking key as a 64-bit word, rotated so that its first byte masks payload
/// byte `offset` (the position within the frame's payload).
fn key_word(key: [u8; 4], offset: usize) -> u64 {
    let k = u32::from_ne_bytes(key);
    // In memory order, byte i of the word masks payload byte offset + i.
    let rotated = if cfg!(target_endian = "little") {
        k.rotate_right(8 * (offset % 4) as u32)
    } else {
        k.rotate_left(8 * (offset % 4) as u32)
    };
    let bytes = rotated.to_ne_bytes();
    u64::from_ne_bytes([
        bytes[0], bytes[1], bytes[2], bytes[3], bytes[0], bytes[1], bytes[2], bytes[3],
    ])
}

/// Masks (or unmasks: the same operation) `data` in place, which starts at payload
/// position `offset`. Works a 64-bit word at a time.
pub(crate) fn apply_mask(data: &mut [u8], key: [u8; 4], offset: usize) {
    let word = key_word(key, offset);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let value = u64::from_ne_bytes((&*chunk).try_into().expect("8 bytes")) ^ word;
        chunk.copy_from_slice(&value.to_ne_bytes());
    }
    let tail = chunks.into_remainder();
    let key_bytes = word.to_ne_bytes();
    for (byte, k) in tail.iter_mut().zip(key_bytes) {
        *byte ^= k;
    }
}

/// Copies `src` into `dst` (of the same length) masked with `key` from payload
/// position `offset`: one pass, a 64-bit word at a time.
pub(crate) fn copy_masked(dst: &mut [u8], src: &[u8], key: [u8; 4], offset: usize) {
    debug_assert_eq!(dst.len(), src.len());
    let word = key_word(key, offset);
    let mut out = dst.chunks_exact_mut(8);
    let mut input = src.chunks_exact(8);
    for (d, s) in (&mut out).zip(&mut input) {
        let value = u64::from_ne_bytes(s.try_into().expect("8 bytes")) ^ word;
        d.copy_from_slice(&value.to_ne_bytes());
    }
    let key_bytes = word.to_ne_bytes();
    for ((d, s), k) in out.into_remainder().iter_mut().zip(input.remainder()).zip(key_bytes) {
        *d = s ^ k;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask_bytewise(data: &mut [u8], key: [u8; 4], offset: usize) {
        for (i, byte) in data.iter_mut().enumerate() {
            *byte ^= key[(offset + i) % 4];
        }
    }

    #[test]
    fn lengths_use_the_shortest_form_and_parse_back() {
        for (len, size) in [(0, 2), (125, 2), (126, 4), (0xffff, 4), (0x10000, 10), (1 << 40, 10)] {
            for mask in [None, Some([1, 2, 3, 4])] {
                let header = Header { fin: true, rsv: 0, opcode: OP_BINARY, mask, len };
                let mut out = [0u8; MAX_HEADER];
                let n = header.encode(&mut out);
                assert_eq!(n, size + if mask.is_some() { 4 } else { 0 });
                assert_eq!(Header::parse(&out[..n]), Ok(Some((header, n))));
                // Any prefix asks for more bytes.
                for cut in 0..n {
                    assert_eq!(Header::parse(&out[..cut]), Ok(None), "len {len} cut {cut}");
                }
            }
        }
    }

    #[test]
    fn rfc_examples_parse() {
        // RFC 6455 §5.7: a single-frame masked text "Hello".
        let frame = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
        let (header, n) = Header::parse(&frame).expect("valid").expect("complete");
        assert_eq!((header.fin, header.opcode, header.len, n), (true, OP_TEXT, 5, 6));
        let mut payload = frame[6..].to_vec();
        apply_mask(&mut payload, header.mask.expect("masked"), 0);
        assert_eq!(payload, b"Hello");
        // 256 bytes binary, unmasked: 16-bit length.
        let (header, n) = Header::parse(&[0x82, 0x7E, 0x01, 0x00]).expect("valid").expect("all");
        assert_eq!((header.len, n, header.mask), (256, 4, None));
    }

    #[test]
    fn non_minimal_and_top_bit_lengths_are_refused() {
        assert_eq!(Header::parse(&[0x82, 126, 0, 125]), Err(BadLength::NotMinimal));
        let mut long = vec![0x82, 127];
        long.extend_from_slice(&0xffffu64.to_be_bytes());
        assert_eq!(Header::parse(&long), Err(BadLength::NotMinimal));
        let mut top = vec![0x82, 127];
        top.extend_from_slice(&(1u64 << 63).to_be_bytes());
        assert_eq!(Header::parse(&top), Err(BadLength::TopBitSet));
    }

    #[test]
    fn flags_and_opcode_bits_are_read() {
        let (h, _) = Header::parse(&[0x7A, 0x00]).expect("valid").expect("complete");
        assert_eq!((h.fin, h.rsv, h.opcode), (false, 7, 0xA));
        assert!(h.is_control());
    }

    #[test]
    fn word_masking_matches_bytewise_at_every_offset_and_length() {
        let key = [0xde, 0xad, 0xbe, 0xef];
        let data: Vec<u8> = (0..100u8).collect();
        for offset in 0..8 {
            for len in 0..data.len() {
                let mut fast = data[..len].to_vec();
                let mut slow = fast.clone();
                apply_mask(&mut fast, key, offset);
                mask_bytewise(&mut slow, key, offset);
                assert_eq!(fast, slow, "offset {offset} len {len}");
                let mut copied = vec![0u8; len];
                copy_masked(&mut copied, &data[..len], key, offset);
                assert_eq!(copied, slow);
            }
        }
    }

    #[test]
    fn masking_in_pieces_equals_masking_at_once() {
        let key = [1, 2, 3, 4];
        let data: Vec<u8> = (0..64u8).collect();
        let mut whole = data.clone();
        apply_mask(&mut whole, key, 0);
        let mut pieces = data;
        let (a, rest) = pieces.split_at_mut(7);
        let (b, c) = rest.split_at_mut(13);
        apply_mask(a, key, 0);
        apply_mask(b, key, 7);
        apply_mask(c, key, 20);
        assert_eq!(pieces, whole);
    }
}
