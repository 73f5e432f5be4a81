//! smux frames as the Go library yddeng/smux puts them on the wire (see
//! `shared/smux-wire.md`): a 7-byte little-endian header, cmd u8 + stream id u16 +
//! length u32, then `length` payload bytes for PSH only.

/// Opens a stream.
pub(crate) const SYN: u8 = 0;
/// Closes a stream (there is no half-close).
pub(crate) const FIN: u8 = 1;
/// Data: `length` payload bytes follow.
pub(crate) const PSH: u8 = 2;
/// Confirms `length` bytes read by the application (reopens the sender's window).
pub(crate) const CFM: u8 = 3;
/// Peer detection: id and length are random; the answer is [`verify_code`] of them.
pub(crate) const VRM: u8 = 4;
/// Keepalive (the Go library's v2): id and length 0.
pub(crate) const PIN: u8 = 5;

/// The size of a header.
pub(crate) const HEADER: usize = 7;

/// The most payload a PSH frame may carry (the Go library's `frameSize`).
pub(crate) const MAX_PAYLOAD: usize = 64 * 1024;

/// A frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// The command.
    pub(crate) cmd: u8,
    /// The stream id (VRM: the first random value).
    pub(crate) id: u16,
    /// PSH: payload bytes; CFM: bytes confirmed; VRM: the second random value.
    pub(crate) len: u32,
}

impl Header {
    /// A header.
    pub(crate) fn new(cmd: u8, id: u16, len: u32) -> Self {
        Self { cmd, id, len }
    }

    /// Parses the header at the start of `bytes`, if all 7 bytes are there.
    pub(crate) fn parse(bytes: &[u8]) -> Option<Self> {
        let raw: &[u8; HEADER] = bytes.get(..HEADER)?.try_into().ok()?;
        Some(Self {
            cmd: raw[0],
            id: u16::from_le_bytes([raw[1], raw[2]]),
            len: u32::from_le_bytes([raw[3], raw[4], raw[5], raw[6]]),
        })
    }

    /// The header's 7 bytes.
    pub(crate) fn encode(&self) -> [u8; HEADER] {
        let [i0, i1] = self.id.to_le_bytes();
        let [l0, l1, l2, l3] = self.len.to_le_bytes();
        [self.cmd, i0, i1, l0, l1, l2, l3]
    }
}

/// The answer to a VRM probe `(v1, v2)`, bit for bit as the Go library computes it,
/// including its dropped nibble: `(v1 & 0xF000) >> 16` is always 0 for a uint16.
pub(crate) fn verify_code(v1: u16, v2: u32) -> (u16, u32) {
    let v11 = ((v1 & 0xFF) << 8) | ((v1 & 0xF00) >> 4);
    let v22 =
        (v2 & 0xFF00_0000) | ((v2 & 0xFF_0000) >> 8) | ((v2 & 0xFF00) >> 8) | ((v2 & 0xFF) << 16);
    (v11, v22)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_little_endian_as_in_the_wire_notes() {
        // "PSH on stream 1 with 5 bytes is 02 01 00 05 00 00 00".
        assert_eq!(Header::new(PSH, 1, 5).encode(), [0x02, 0x01, 0x00, 0x05, 0, 0, 0]);
        // "CFM on stream 3 for 262144 bytes is 03 03 00 00 00 04 00".
        assert_eq!(Header::new(CFM, 3, 262_144).encode(), [0x03, 0x03, 0, 0, 0, 0x04, 0]);
        let header = Header::new(VRM, 0xBEEF, 0xDEAD_BEEF);
        assert_eq!(Header::parse(&header.encode()), Some(header));
        assert_eq!(Header::parse(&header.encode()[..6]), None);
    }

    #[test]
    fn verify_code_matches_the_go_vectors() {
        // The test vectors of smux-wire.md §7, checked against the Go function.
        assert_eq!(verify_code(0x1234, 0x1122_3344), (0x3420, 0x1144_2233));
        assert_eq!(verify_code(0xFFFF, 0xFFFF_FFFF), (0xFFF0, 0xFFFF_FFFF));
        assert_eq!(verify_code(0, 0), (0, 0));
        assert_eq!(verify_code(0x00F0, 0x0000_00FF), (0xF000, 0x00FF_0000));
    }
}
