//! The receiving half of the WebSocket protocol, without I/O: frames in, message
//! pieces and control frames out, every rule of RFC 6455 §5 checked.
//!
//! The caller keeps the received bytes in its own buffer and hands them in; the
//! decoder unmasks payload in place and says how many bytes it consumed. Data
//! payload comes out as it arrives (a frame need not be complete), control frames
//! whole. Nothing is allocated here, so no length from the wire sizes an allocation.

use super::{
    frame::{self, BadLength, Header},
    utf8::Utf8Validator,
};

/// Which end of the connection we are: a server receives masked frames, a client
/// unmasked ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// The connecting side; masks what it sends.
    Client,
    /// The accepting side.
    Server,
}

/// A broken rule, with the close code to send for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation {
    /// 1002 (protocol error), 1007 (invalid UTF-8) or 1009 (too big).
    pub(crate) code: u16,
    /// What was wrong, for `xs_last_error()` and the close reason.
    pub(crate) what: &'static str,
}

impl Violation {
    fn protocol(what: &'static str) -> Self {
        Self { code: 1002, what }
    }

    fn utf8() -> Self {
        Self { code: 1007, what: "invalid UTF-8 in a text message" }
    }
}

/// What one decoding step found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Nothing can be decoded from the bytes given; more are needed.
    NeedMore,
    /// Payload bytes of the current data message (unmasked in place): `input[start..end]`.
    Data {
        /// Bytes of input consumed by this step (a header and/or payload).
        consumed: usize,
        /// Where the payload bytes are in the input.
        start: usize,
        /// The end of the payload bytes.
        end: usize,
        /// Whether the message is text.
        text: bool,
        /// Whether these bytes end the message.
        last: bool,
        /// With [`Decoder::keep_binary_masked`]: the masking key and the position of
        /// the first byte, when binary payload is still masked (unmask while copying).
        mask: Option<([u8; 4], usize)>,
    },
    /// A whole control frame; its payload is `input[start..end]`.
    Control {
        /// Bytes of input consumed.
        consumed: usize,
        /// The opcode: close, ping or pong.
        opcode: u8,
        /// Where the payload is in the input.
        start: usize,
        /// The end of the payload.
        end: usize,
    },
}

/// The data frame being received.
#[derive(Debug, Clone, Copy)]
struct FrameInProgress {
    fin: bool,
    mask: Option<[u8; 4]>,
    /// Payload bytes still to come.
    remaining: u64,
    /// Payload bytes already decoded (for the masking key's position).
    done: u64,
}

/// The data message being received.
#[derive(Debug, Clone, Copy)]
struct MessageInProgress {
    text: bool,
    utf8: Utf8Validator,
    /// Payload bytes of the message so far, including the current frame's declared length.
    size: u64,
}

/// Decodes frames for one connection.
#[derive(Debug, Clone)]
pub(crate) struct Decoder {
    role: Role,
    max_message: u64,
    frame: Option<FrameInProgress>,
    message: Option<MessageInProgress>,
    /// Leave binary payload masked (see [`Step::Data`]'s `mask`).
    keep_masked: bool,
}

/// Whether a close code may appear in a close frame (RFC 6455 §7.4).
pub(crate) fn close_code_allowed(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

impl Decoder {
    /// A decoder for `role` that refuses messages over `max_message` bytes.
    pub(crate) fn new(role: Role, max_message: u64) -> Self {
        Self { role, max_message, frame: None, message: None, keep_masked: false }
    }

    /// Whether a frame's payload is partly taken (the input then starts with
    /// payload, not a header).
    pub(crate) fn in_frame(&self) -> bool {
        self.frame.is_some()
    }

    /// Leaves binary payload masked, for a caller that unmasks while it copies (one
    /// pass over the bytes instead of two). Text is still unmasked in place, to be
    /// checked as UTF-8.
    pub(crate) fn keep_binary_masked(&mut self) {
        self.keep_masked = true;
    }

    /// Decodes the next step from `input`, returning at most `max_data` payload bytes
    /// of a data frame (at least 1 when any are there, so progress is always made).
    pub(crate) fn step(&mut self, input: &mut [u8], max_data: usize) -> Result<Step, Violation> {
        if let Some(frame) = self.frame {
            return self.payload(input, 0, frame, max_data);
        }
        let (header, size) = match Header::parse(input) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => return Ok(Step::NeedMore),
            Err(BadLength::NotMinimal) => {
                return Err(Violation::protocol("frame length not in its shortest form"));
            }
            Err(BadLength::TopBitSet) => {
                return Err(Violation::protocol("64-bit frame length with the top bit set"));
            }
        };
        self.check(&header)?;
        if header.is_control() {
            let len = header.len as usize; // at most 125, checked above
            let Some(payload) = input.get_mut(size..size + len) else {
                return Ok(Step::NeedMore);
            };
            if let Some(key) = header.mask {
                frame::apply_mask(payload, key, 0);
            }
            if header.opcode == frame::OP_CLOSE {
                check_close_payload(payload)?;
            }
            let (start, end) = (size, size + len);
            return Ok(Step::Control { consumed: end, opcode: header.opcode, start, end });
        }
        let message = match self.message.take() {
            Some(message) => message,
            None => MessageInProgress {
                text: header.opcode == frame::OP_TEXT,
                utf8: Utf8Validator::default(),
                size: 0,
            },
        };
        let size_after = message.size.saturating_add(header.len);
        if size_after > self.max_message {
            return Err(Violation { code: 1009, what: "message larger than the limit" });
        }
        self.message = Some(MessageInProgress { size: size_after, ..message });
        let frame =
            FrameInProgress { fin: header.fin, mask: header.mask, remaining: header.len, done: 0 };
        self.payload(input, size, frame, max_data)
    }

    /// Between the frames of a message: if `input` starts with an empty final
    /// continuation frame, takes it, so the message is known to end with the bytes
    /// already returned. Returns the bytes taken.
    pub(crate) fn end_if_empty_final(&mut self, input: &[u8]) -> Result<Option<usize>, Violation> {
        if self.frame.is_some() {
            return Ok(None);
        }
        let Some(message) = self.message else { return Ok(None) };
        let Ok(Some((header, size))) = Header::parse(input) else { return Ok(None) };
        if header.opcode != frame::OP_CONTINUATION || !header.fin || header.len != 0 {
            return Ok(None);
        }
        self.check(&header)?;
        message.utf8.finish().map_err(|_| Violation::utf8())?;
        self.message = None;
        Ok(Some(size))
    }

    /// Checks a header against the rules that do not need its payload.
    fn check(&self, header: &Header) -> Result<(), Violation> {
        if header.rsv != 0 {
            return Err(Violation::protocol("reserved bits set without an extension"));
        }
        match (self.role, header.mask.is_some()) {
            (Role::Server, false) => return Err(Violation::protocol("client frame not masked")),
            (Role::Client, true) => return Err(Violation::protocol("server frame masked")),
            _ => {}
        }
        match header.opcode {
            frame::OP_CLOSE | frame::OP_PING | frame::OP_PONG => {
                if !header.fin {
                    return Err(Violation::protocol("control frame fragmented"));
                }
                if header.len > frame::MAX_CONTROL_PAYLOAD as u64 {
                    return Err(Violation::protocol("control frame over 125 bytes"));
                }
            }
            frame::OP_TEXT | frame::OP_BINARY if self.message.is_some() => {
                return Err(Violation::protocol("new data frame inside a fragmented message"));
            }
            frame::OP_CONTINUATION if self.message.is_none() => {
                return Err(Violation::protocol("continuation frame without a message"));
            }
            frame::OP_TEXT | frame::OP_BINARY | frame::OP_CONTINUATION => {}
            _ => return Err(Violation::protocol("reserved opcode")),
        }
        Ok(())
    }

    /// Takes what payload of the current data frame `input[at..]` holds.
    fn payload(
        &mut self,
        input: &mut [u8],
        at: usize,
        mut frame: FrameInProgress,
        max_data: usize,
    ) -> Result<Step, Violation> {
        let available = input.len() - at;
        let n = frame.remaining.min(available as u64).min(max_data.max(1) as u64) as usize;
        if n == 0 && frame.remaining > 0 {
            self.frame = Some(frame);
            // A header alone still moves the decoder on.
            return Ok(if at > 0 {
                Step::Data {
                    consumed: at,
                    start: at,
                    end: at,
                    text: self.text(),
                    last: false,
                    mask: None,
                }
            } else {
                Step::NeedMore
            });
        }
        let payload = &mut input[at..at + n];
        let text = self.text();
        let offset = (frame.done % 4) as usize;
        let mut left_masked = None;
        if let Some(key) = frame.mask {
            if self.keep_masked && !text {
                left_masked = Some((key, offset));
            } else {
                frame::apply_mask(payload, key, offset);
            }
        }
        frame.remaining -= n as u64;
        frame.done += n as u64;
        let message = self.message.as_mut().expect("a data frame belongs to a message");
        if message.text {
            message.utf8.feed(payload).map_err(|_| Violation::utf8())?;
        }
        let last = frame.remaining == 0 && frame.fin;
        if last {
            message.utf8.finish().map_err(|_| Violation::utf8())?;
            self.message = None;
        }
        self.frame = (frame.remaining > 0).then_some(frame);
        Ok(Step::Data { consumed: at + n, start: at, end: at + n, text, last, mask: left_masked })
    }

    fn text(&self) -> bool {
        self.message.is_some_and(|m| m.text)
    }
}

/// Checks a close frame's payload: empty, or a valid code and a UTF-8 reason.
fn check_close_payload(payload: &[u8]) -> Result<(), Violation> {
    match payload {
        [] => Ok(()),
        [_] => Err(Violation::protocol("close frame with a 1-byte payload")),
        [hi, lo, reason @ ..] => {
            if !close_code_allowed(u16::from_be_bytes([*hi, *lo])) {
                return Err(Violation::protocol("invalid close code"));
            }
            std::str::from_utf8(reason).map(drop).map_err(|_| Violation::utf8())
        }
    }
}

/// The code and reason of a checked close frame payload (1005 when it has no code).
pub(crate) fn parse_close(payload: &[u8]) -> (u16, String) {
    match payload {
        [hi, lo, reason @ ..] => {
            (u16::from_be_bytes([*hi, *lo]), String::from_utf8_lossy(reason).into_owned())
        }
        _ => (1005, String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::frame::{OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_TEXT};

    /// Encodes one frame as a client would (masked) or a server (not).
    pub(crate) fn frame(fin: bool, opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
        let mask = masked.then_some([0x11, 0x22, 0x33, 0x44]);
        let header = Header { fin, rsv: 0, opcode, mask, len: payload.len() as u64 };
        let mut head = [0u8; frame::MAX_HEADER];
        let n = header.encode(&mut head);
        let mut out = head[..n].to_vec();
        let mut body = payload.to_vec();
        if let Some(key) = mask {
            frame::apply_mask(&mut body, key, 0);
        }
        out.extend_from_slice(&body);
        out
    }

    /// What a stream of steps amounts to.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Out {
        Message(bool, Vec<u8>),
        Control(u8, Vec<u8>),
    }

    /// Feeds `bytes` in pieces of `chunk` bytes through a decoder; returns what came
    /// out, or the first violation.
    fn decode(role: Role, bytes: &[u8], chunk: usize) -> Result<Vec<Out>, Violation> {
        let mut decoder = Decoder::new(role, 1 << 20);
        let mut buf: Vec<u8> = Vec::new();
        let mut out = Vec::new();
        let mut message = Vec::new();
        for piece in bytes.chunks(chunk.max(1)) {
            buf.extend_from_slice(piece);
            loop {
                match decoder.step(&mut buf, 3)? {
                    Step::NeedMore => break,
                    Step::Data { consumed, start, end, text, last, .. } => {
                        message.extend_from_slice(&buf[start..end]);
                        if last {
                            out.push(Out::Message(text, std::mem::take(&mut message)));
                        }
                        buf.drain(..consumed);
                    }
                    Step::Control { consumed, opcode, start, end } => {
                        out.push(Out::Control(opcode, buf[start..end].to_vec()));
                        buf.drain(..consumed);
                    }
                }
            }
        }
        Ok(out)
    }

    #[test]
    fn messages_and_controls_come_out_whatever_the_split() {
        let mut stream = frame(true, OP_TEXT, "héllo".as_bytes(), true);
        stream.extend(frame(false, OP_BINARY, &[1, 2, 3], true));
        stream.extend(frame(true, OP_PING, b"ping!", true));
        stream.extend(frame(false, OP_CONTINUATION, &[], true));
        stream.extend(frame(true, OP_CONTINUATION, &[4, 5], true));
        stream.extend(frame(true, OP_BINARY, &vec![7; 300], true));
        stream.extend(frame(true, OP_CLOSE, &[0x03, 0xe8, b'o', b'k'], true));
        let expected = vec![
            Out::Message(true, "héllo".as_bytes().to_vec()),
            Out::Control(OP_PING, b"ping!".to_vec()),
            Out::Message(false, vec![1, 2, 3, 4, 5]),
            Out::Message(false, vec![7; 300]),
            Out::Control(OP_CLOSE, vec![0x03, 0xe8, b'o', b'k']),
        ];
        for chunk in [1, 2, 3, 7, 64, stream.len()] {
            assert_eq!(decode(Role::Server, &stream, chunk), Ok(expected.clone()), "{chunk}");
        }
    }

    fn violation(role: Role, bytes: &[u8]) -> u16 {
        decode(role, bytes, bytes.len()).expect_err("must be refused").code
    }

    #[test]
    fn protocol_violations_get_1002() {
        let mut rsv = frame(true, OP_TEXT, b"x", true);
        rsv[0] |= 0x40;
        assert_eq!(violation(Role::Server, &rsv), 1002);
        for opcode in [3, 7, 0xB, 0xF] {
            assert_eq!(violation(Role::Server, &frame(true, opcode, b"", true)), 1002);
        }
        assert_eq!(violation(Role::Server, &frame(true, OP_TEXT, b"x", false)), 1002);
        assert_eq!(violation(Role::Client, &frame(true, OP_TEXT, b"x", true)), 1002);
        assert_eq!(violation(Role::Server, &frame(false, OP_PING, b"", true)), 1002);
        assert_eq!(violation(Role::Server, &frame(true, OP_PING, &[0; 126], true)), 1002);
        assert_eq!(violation(Role::Server, &frame(true, OP_CONTINUATION, b"x", true)), 1002);
        let mut nested = frame(false, OP_TEXT, b"a", true);
        nested.extend(frame(true, OP_BINARY, b"b", true));
        assert_eq!(violation(Role::Server, &nested), 1002);
        assert_eq!(violation(Role::Server, &frame(true, OP_CLOSE, &[3], true)), 1002);
        for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000] {
            let close = frame(true, OP_CLOSE, &code.to_be_bytes(), true);
            assert_eq!(violation(Role::Server, &close), 1002, "code {code}");
        }
    }

    #[test]
    fn valid_close_codes_pass() {
        for code in [1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999] {
            let close = frame(true, OP_CLOSE, &code.to_be_bytes(), true);
            assert!(decode(Role::Server, &close, 100).is_ok(), "code {code}");
        }
        assert_eq!(parse_close(&[0x03, 0xe8, b'b', b'y', b'e']), (1000, "bye".into()));
        assert_eq!(parse_close(&[]), (1005, String::new()));
    }

    #[test]
    fn bad_utf8_fails_fast_with_1007() {
        // The first fragment is already invalid: refused before the message ends.
        let first = frame(
            false,
            OP_TEXT,
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80",
            true,
        );
        assert_eq!(violation(Role::Server, &first), 1007);
        // A character split across fragments is fine.
        let mut split = frame(false, OP_TEXT, b"\xe2\x82", true);
        split.extend(frame(true, OP_CONTINUATION, b"\xac", true));
        assert_eq!(decode(Role::Server, &split, 1), Ok(vec![Out::Message(true, "€".into())]));
        // Ending inside a character is not.
        assert_eq!(violation(Role::Server, &frame(true, OP_TEXT, b"\xe2\x82", true)), 1007);
        let close = frame(true, OP_CLOSE, b"\x03\xe8\xff", true);
        assert_eq!(violation(Role::Server, &close), 1007);
    }

    #[test]
    fn size_limit_is_checked_from_the_header() {
        let mut decoder = Decoder::new(Role::Client, 1000);
        // Only the header of a 1 GiB frame: refused at once, nothing stored.
        let mut header = [0u8; frame::MAX_HEADER];
        let n = Header { fin: true, rsv: 0, opcode: OP_BINARY, mask: None, len: 1 << 30 }
            .encode(&mut header);
        let err = decoder.step(&mut header[..n], usize::MAX).expect_err("too big");
        assert_eq!(err.code, 1009);
        // Fragments add up.
        let mut decoder = Decoder::new(Role::Client, 1000);
        let mut first = frame(false, OP_BINARY, &[0; 600], false);
        assert!(matches!(decoder.step(&mut first, usize::MAX), Ok(Step::Data { .. })));
        let mut second = frame(true, OP_CONTINUATION, &[0; 600], false);
        assert_eq!(decoder.step(&mut second, usize::MAX).expect_err("sum too big").code, 1009);
    }

    #[test]
    fn payload_comes_out_in_pieces_no_larger_than_asked() {
        let mut decoder = Decoder::new(Role::Client, 1 << 20);
        let mut bytes = frame(true, OP_BINARY, &[9; 10], false);
        let Ok(Step::Data { consumed, start, end, last, .. }) = decoder.step(&mut bytes, 4) else {
            panic!("data expected");
        };
        assert_eq!((consumed, end - start, last), (6, 4, false));
        bytes.drain(..consumed);
        let Ok(Step::Data { end, start, last, .. }) = decoder.step(&mut bytes, 100) else {
            panic!("data expected");
        };
        assert_eq!((end - start, last), (6, true));
    }
}
