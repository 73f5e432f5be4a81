//! Entry points for the fuzz targets in `fuzz/` (built only with `--cfg fuzzing`, which
//! `cargo fuzz` sets): they run the WebSocket parsers and the smux session over
//! arbitrary bytes, cut into pieces chosen by the input itself, and panic when an
//! invariant breaks. Not API.

use std::time::Instant;

use crate::ws::{
    conn::{Conn, ConnConfig, Received},
    decoder::{Decoder, Role, Step, Violation},
    frame::{self, Header, MAX_HEADER},
    handshake::{self, ClientRequest, ServerPolicy},
};

/// Reads the fuzz input's leading bytes as parameters.
struct Params<'a> {
    bytes: &'a [u8],
}

impl<'a> Params<'a> {
    fn byte(&mut self) -> u8 {
        match self.bytes.split_first() {
            Some((&b, rest)) => {
                self.bytes = rest;
                b
            }
            None => 0,
        }
    }

    /// Piece sizes for splitting `len` bytes: 1..=max from the parameters, then the rest.
    fn cuts(&mut self, len: usize, count: usize, max: usize) -> Vec<usize> {
        let mut cuts = Vec::new();
        let mut at = 0;
        for _ in 0..count {
            if at >= len {
                break;
            }
            at = (at + 1 + usize::from(self.byte()) % max).min(len);
            cuts.push(at);
        }
        cuts.push(len);
        cuts
    }
}

/// What a decoder gave for a byte stream: whole messages and control frames, in order,
/// then the first violation's close code, if any.
#[derive(Debug, PartialEq, Eq)]
enum Out {
    Message(bool, Vec<u8>),
    Control(u8, Vec<u8>),
    Violation(u16),
}

/// Decodes `bytes` delivered in pieces ending at `cuts` (the last is `bytes.len()`),
/// taking at most `max_data` payload bytes a step, and checks every step's numbers.
fn decode(role: Role, max_message: u64, bytes: &[u8], cuts: &[usize], max_data: usize) -> Vec<Out> {
    let mut decoder = Decoder::new(role, max_message);
    let mut buf: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    let mut message = Vec::new();
    let mut at = 0;
    for &cut in cuts {
        buf.extend_from_slice(&bytes[at..cut]);
        at = cut;
        loop {
            let before = buf.len();
            match decoder.step(&mut buf, max_data) {
                Ok(Step::NeedMore) => break,
                Ok(Step::Data { consumed, start, end, text, last, .. }) => {
                    assert!(start <= end && end <= consumed && consumed <= before, "data step");
                    assert!(consumed > 0, "a data step must consume something");
                    assert!(end - start <= max_data.max(1), "more payload than asked for");
                    message.extend_from_slice(&buf[start..end]);
                    if last {
                        if text {
                            assert!(std::str::from_utf8(&message).is_ok(), "text not UTF-8");
                        }
                        assert!(message.len() as u64 <= max_message, "message over the limit");
                        out.push(Out::Message(text, std::mem::take(&mut message)));
                    }
                    buf.drain(..consumed);
                }
                Ok(Step::Control { consumed, opcode, start, end }) => {
                    assert!(start <= end && end == consumed && consumed <= before, "control step");
                    assert!(end - start <= frame::MAX_CONTROL_PAYLOAD, "control payload");
                    assert!(matches!(opcode, frame::OP_CLOSE | frame::OP_PING | frame::OP_PONG));
                    out.push(Out::Control(opcode, buf[start..end].to_vec()));
                    buf.drain(..consumed);
                }
                Err(Violation { code, .. }) => {
                    assert!(matches!(code, 1002 | 1007 | 1009), "close code {code}");
                    out.push(Out::Violation(code));
                    return out;
                }
            }
        }
    }
    out
}

/// The frame decoder over arbitrary bytes. The same stream decoded whole and in the
/// pieces the input chooses must give the same messages, control frames and first
/// violation.
pub fn ws_decode(role_server: bool, data: &[u8]) {
    let mut params = Params { bytes: data };
    let role = if role_server { Role::Server } else { Role::Client };
    let max_message = 1u64 << (4 + params.byte() % 20);
    let max_data = 1 + usize::from(params.byte()) * 17;
    let cut_count = usize::from(params.byte() % 32);
    let max_piece = 1 + usize::from(params.byte() % 64);
    let stream = params.bytes;
    let cuts = {
        // The piece sizes come from the stream's own bytes, read a second time.
        let mut from = Params { bytes: stream };
        from.cuts(stream.len(), cut_count, max_piece)
    };
    let whole = decode(role, max_message, stream, &[stream.len()], usize::MAX);
    let pieces = decode(role, max_message, stream, &cuts, max_data);
    assert_eq!(whole, pieces, "split decoding differs from whole decoding");
}

/// Frames made from the input (sizes, opcodes, fragmentation, masking keys), encoded
/// with `Header::encode` + `copy_masked` as a client sends them, then decoded by a
/// server in pieces: the messages must come back as sent.
pub fn ws_roundtrip(data: &[u8]) {
    let mut params = Params { bytes: data };
    let mut wire = Vec::new();
    let mut sent = Vec::new();
    let count = params.byte() % 8;
    for _ in 0..count {
        let text = params.byte() & 1 == 1;
        let len = usize::from(params.byte()) * usize::from(params.byte() % 8 + 1);
        let fragment = 1 + usize::from(params.byte());
        let payload: Vec<u8> = if text {
            // Valid UTF-8 of about `len` bytes, with multi-byte characters.
            "aé€😀".chars().cycle().take(len / 3).collect::<String>().into_bytes()
        } else {
            (0..len).map(|i| (i as u8) ^ params.byte()).collect()
        };
        let mut opcode = if text { frame::OP_TEXT } else { frame::OP_BINARY };
        let mut pieces = payload.chunks(fragment).peekable();
        if pieces.peek().is_none() {
            encode_frame(&mut wire, true, opcode, &[], key(&mut params));
        }
        while let Some(piece) = pieces.next() {
            if params.byte() % 4 == 0 {
                encode_frame(&mut wire, true, frame::OP_PING, b"ping", key(&mut params));
            }
            encode_frame(&mut wire, pieces.peek().is_none(), opcode, piece, key(&mut params));
            opcode = frame::OP_CONTINUATION;
        }
        sent.push(Out::Message(text, payload));
    }
    let cut_count = usize::from(params.byte() % 32);
    let max_data = 1 + usize::from(params.byte()) * 7;
    let cuts = params.cuts(wire.len(), cut_count, 256);
    let got: Vec<Out> = decode(Role::Server, 1 << 24, &wire, &cuts, max_data)
        .into_iter()
        .filter(|o| !matches!(o, Out::Control(frame::OP_PING, _)))
        .collect();
    assert_eq!(got, sent, "messages changed on the way");
}

fn key(params: &mut Params<'_>) -> [u8; 4] {
    [params.byte(), params.byte(), params.byte(), params.byte()]
}

fn encode_frame(wire: &mut Vec<u8>, fin: bool, opcode: u8, payload: &[u8], key: [u8; 4]) {
    let header = Header { fin, rsv: 0, opcode, mask: Some(key), len: payload.len() as u64 };
    let mut head = [0u8; MAX_HEADER];
    let n = header.encode(&mut head);
    wire.extend_from_slice(&head[..n]);
    let at = wire.len();
    wire.resize(at + payload.len(), 0);
    frame::copy_masked(&mut wire[at..], payload, key, 0);
}

/// Accumulates `data` in pieces until `head_len` finds the end of an HTTP head (or
/// refuses it): the head's length, checked against a one-piece search.
fn head_in_pieces(params: &mut Params<'_>, data: &[u8]) -> Option<usize> {
    let cut_count = usize::from(params.byte() % 16);
    let cuts = params.cuts(data.len(), cut_count, 512);
    let mut found = None;
    for &cut in &cuts {
        match handshake::head_len(&data[..cut]) {
            Ok(Some(len)) => {
                assert!(len <= cut && data[..len].ends_with(b"\r\n\r\n"), "head_len");
                found = Some(len);
                break;
            }
            Ok(None) => {}
            Err(_) => {
                assert!(cut >= handshake::MAX_HEAD, "refused below the limit");
                return None;
            }
        }
    }
    if let Some(len) = found {
        // Any longer prefix finds the same end.
        assert_eq!(handshake::head_len(data).ok().flatten(), Some(len), "head_len differs");
    }
    found
}

/// The server's check of an HTTP Upgrade request: arbitrary bytes as the request
/// head, in pieces, against a policy chosen by the input. An accepted request gets a
/// 101 that is one whole HTTP head, a refused one an HTTP error that is one too.
pub fn ws_handshake_request(data: &[u8]) {
    let mut params = Params { bytes: data };
    let choice = params.byte();
    let policy = ServerPolicy {
        path: (choice & 1 != 0).then(|| "/chat".to_string()),
        origins: if choice & 2 != 0 { vec!["http://ok.example".into()] } else { vec![] },
        protocols: if choice & 4 != 0 { vec!["chat".into(), "superchat".into()] } else { vec![] },
    };
    let rest = params.bytes;
    let Some(len) = head_in_pieces(&mut params, rest) else { return };
    let head = &rest[..len];
    match policy.answer(head) {
        Ok((answer, accepted)) => {
            assert_eq!(handshake::head_len(&answer), Ok(Some(answer.len())), "101 not one head");
            assert!(answer.starts_with(b"HTTP/1.1 101 "), "not a 101");
            if let Some(protocol) = &accepted.protocol {
                assert!(policy.protocols.contains(protocol), "subprotocol not spoken");
            }
        }
        Err(refused) => {
            assert!(matches!(refused.status, 400 | 403 | 404 | 405 | 426 | 431));
            let bytes = refused.to_bytes();
            let head = handshake::head_len(&bytes).ok().flatten().expect("refusal is HTTP");
            assert!(head <= bytes.len());
        }
    }
    // The same head through a server connection: never a panic, and a failure stays.
    let config = ConnConfig {
        role: Role::Server,
        messages: true,
        max_message: 1 << 16,
        fragment_size: 0,
        heartbeat: None,
    };
    let mut conn = Conn::server_handshake(config, policy, Instant::now());
    feed(&mut conn, rest);
    let _ = conn.drive_handshake();
    drain(&mut conn, 4);
}

/// The client's check of the server's answer: arbitrary bytes as the response head.
pub fn ws_handshake_response(data: &[u8]) {
    let mut params = Params { bytes: data };
    let choice = params.byte();
    let request = ClientRequest {
        host: "h".into(),
        path: "/chat".into(),
        origin: None,
        protocols: if choice & 1 != 0 { vec!["chat".into(), "superchat".into()] } else { vec![] },
        key: "dGhlIHNhbXBsZSBub25jZQ==".into(),
    };
    let rest = params.bytes;
    let Some(len) = head_in_pieces(&mut params, rest) else { return };
    if let Ok(Some(chosen)) = request.check_response(&rest[..len]) {
        assert!(request.protocols.contains(&chosen), "a subprotocol not offered was taken");
    }
    // The same bytes through a client connection, then frames after the head.
    let config = ConnConfig {
        role: Role::Client,
        messages: choice & 2 != 0,
        max_message: 1 << 16,
        fragment_size: 0,
        heartbeat: None,
    };
    let mut conn = Conn::client_handshake(config, request, Instant::now());
    feed(&mut conn, rest);
    let _ = conn.drive_handshake();
    drain(&mut conn, 4);
}

/// A whole connection (Raw-WS, either role and delivery mode) over arbitrary bytes in
/// pieces: never a panic, never more bytes than the buffer, and once failed it stays
/// failed.
pub fn ws_conn(data: &[u8]) {
    let mut params = Params { bytes: data };
    let choice = params.byte();
    let role = if choice & 1 != 0 { Role::Server } else { Role::Client };
    let config = ConnConfig {
        role,
        messages: choice & 2 != 0,
        max_message: 1 << (6 + (choice >> 4)),
        fragment_size: 0,
        heartbeat: None,
    };
    let buf_size = 1 + usize::from(params.byte()) * 3;
    let cut_count = usize::from(params.byte() % 32);
    let stream = params.bytes;
    let cuts = Params { bytes: stream }.cuts(stream.len(), cut_count, 300);
    let mut conn = Conn::new(config, Instant::now());
    let mut at = 0;
    for &cut in &cuts {
        feed(&mut conn, &stream[at..cut]);
        at = cut;
        if drain(&mut conn, buf_size) {
            assert!(conn.failure().is_some() || conn.peer_close().is_some());
            break;
        }
    }
    if choice & 8 != 0 {
        conn.transport_ended();
        drain(&mut conn, buf_size);
    }
}

/// Messages from the input sent by a client connection (`Conn::send`, with a fragment
/// size and pings chosen by the input), the bytes delivered to a server connection in
/// pieces through `read_room` / `filled` as the layer's reads do, received with a
/// buffer of the input's size between pieces: the messages must come back as sent
/// (byte mode: the pieces of each message, joined).
pub fn ws_conn_roundtrip(data: &[u8]) {
    let mut params = Params { bytes: data };
    let choice = params.byte();
    let messages = choice & 1 != 0;
    let config = |role| ConnConfig {
        role,
        messages,
        max_message: 1 << 20,
        fragment_size: usize::from(params_fragment(choice)),
        heartbeat: None,
    };
    let now = Instant::now();
    let mut client = Conn::new(config(Role::Client), now);
    let mut server = Conn::new(config(Role::Server), now);
    let mut sent = Vec::new();
    for _ in 0..params.byte() % 8 {
        let text = params.byte() & 1 == 1;
        let len = usize::from(params.byte()) * (1 + usize::from(params.byte() % 64));
        let payload: Vec<u8> = if text {
            "aé€😀".chars().cycle().take(len / 3).collect::<String>().into_bytes()
        } else {
            let seed = params.byte();
            (0..len).map(|i| (i as u8).wrapping_mul(seed)).collect()
        };
        client.send(&payload, text).expect("a valid message");
        // Byte mode gives nothing for an empty message.
        if messages || !payload.is_empty() {
            sent.push((text, payload));
        }
    }
    let wire = client.output.pending().to_vec();
    let cut_count = usize::from(params.byte() % 32);
    let buf_size = if messages { 1 << 20 } else { 1 + usize::from(params.byte()) * 13 };
    let cuts = params.cuts(wire.len(), cut_count, 70_000);
    let mut buf = vec![0u8; buf_size];
    let (mut got, mut current, mut at) = (Vec::new(), Vec::new(), 0);
    for &cut in &cuts {
        feed(&mut server, &wire[at..cut]);
        at = cut;
        loop {
            match server.receive(&mut buf, false) {
                Ok(None) => break,
                Ok(Some(Received::Bytes { copied, full, text, last })) => {
                    assert!(copied == full || !messages, "a message was truncated");
                    current.extend_from_slice(&buf[..copied]);
                    if last {
                        got.push((text, std::mem::take(&mut current)));
                    }
                }
                Ok(Some(Received::End)) => panic!("no close was sent"),
                Err(err) => panic!("a valid stream failed: {err}"),
            }
        }
    }
    assert_eq!(got, sent, "messages changed on the way");
}

/// The fragment size for `ws_conn_roundtrip`: none, or 1 to 127 bytes.
fn params_fragment(choice: u8) -> u8 {
    if choice & 2 != 0 { choice >> 1 } else { 0 }
}

/// Puts `bytes` into the connection's input as the layer's reads do.
fn feed(conn: &mut Conn, bytes: &[u8]) {
    let mut rest = bytes;
    while !rest.is_empty() {
        let room = conn.read_room();
        let n = room.len().min(rest.len());
        room[..n].copy_from_slice(&rest[..n]);
        conn.input.filled(n);
        conn.received(n);
        rest = &rest[n..];
    }
}

/// Receives until more input is needed (false) or the connection ended or failed
/// (true); checks each result against the buffer.
fn drain(conn: &mut Conn, buf_size: usize) -> bool {
    let mut buf = vec![0u8; buf_size];
    loop {
        match conn.receive(&mut buf, false) {
            Ok(None) => return false,
            Ok(Some(Received::Bytes { copied, full, .. })) => {
                assert!(copied <= buf.len() && copied <= full, "receive overran the buffer");
            }
            Ok(Some(Received::End)) => return true,
            Err(_) => {
                assert!(conn.failure().is_some(), "an error without a failure recorded");
                assert!(conn.receive(&mut buf, false).is_err(), "a failure did not stay");
                return true;
            }
        }
    }
}

/// smux: arbitrary bytes from the peer, cut into pieces the input chooses, into a
/// session that also opens, writes, reads and closes streams in between. Nothing may
/// panic; a session that refused input stays refused; queued output stays bounded by
/// the windows (plus answers); every read respects the buffer.
pub fn smux_session(data: &[u8]) {
    use crate::smux::session::{Read, Session, SessionConfig};
    let mut params = Params { bytes: data };
    let config = SessionConfig {
        window: 65_536 * (1 + u32::from(params.byte() % 8)),
        max_streams: 1 + usize::from(params.byte()),
        accept_backlog: 1 + usize::from(params.byte() % 16),
    };
    let mut session = Session::new(config);
    let mut keys = Vec::new();
    let mut buf = [0u8; 4096];
    let mut failed = false;
    while !params.bytes.is_empty() {
        let op = params.byte();
        match op % 6 {
            0 => {
                if let Ok(key) = session.open() {
                    keys.push(key);
                }
            }
            1 => {
                if let Some(&key) = keys.get(usize::from(params.byte()) % keys.len().max(1)) {
                    let len = usize::from(params.byte()) * 97;
                    let before = session.output().len();
                    if let Ok(n) = session.write(key, &vec![op; len]) {
                        assert!(n <= len, "wrote more than given");
                        assert!(session.output().len() >= before + n, "bytes lost on write");
                    }
                }
            }
            2 => {
                if let Some(&key) = keys.get(usize::from(params.byte()) % keys.len().max(1)) {
                    let size = usize::from(params.byte()) * 16 % buf.len();
                    if let Ok(Read::Data(n)) = session.read(key, &mut buf[..size], op & 8 != 0) {
                        assert!(n <= size, "read more than the buffer");
                    }
                }
            }
            3 => {
                if let Some(&key) = keys.get(usize::from(params.byte()) % keys.len().max(1)) {
                    session.release(key);
                }
            }
            4 => {
                while let Some(key) = session.accept() {
                    keys.push(key);
                }
                let out = session.output().len();
                session.consume_output(out);
            }
            _ => {
                let len = usize::from(params.byte()).min(params.bytes.len());
                let (piece, rest) = params.bytes.split_at(len);
                params.bytes = rest;
                if failed {
                    continue;
                }
                failed = session.receive(piece).is_err();
            }
        }
    }
}
