//! One WebSocket connection, without I/O: the handshake, message delivery (whole
//! messages or streamed bytes), sending, ping/pong, the close handshake and the
//! heartbeat. The layer above moves bytes between its buffers and the transport.

use std::time::Instant;

use super::{
    decoder::{self, Decoder, Role, Step, Violation},
    frame::{self, Header},
    handshake::{self, Accepted, ClientRequest, Refused, ServerPolicy},
    heartbeat::{Beat, Heartbeat, HeartbeatConfig},
};
use crate::error::Error;

/// How much room the input buffer offers the transport for one read.
const READ_CHUNK: usize = 64 * 1024;

/// Message mode waits for a single-frame message up to this size to be all in the
/// input buffer (which grows to hold it), so it is copied to the caller at once.
const WHOLE_FRAME_LIMIT: u64 = 1 << 20;

/// A byte buffer filled at the back and consumed from the front. Its memory is
/// zeroed once, when it grows; the bytes between `start` and `end` are pending.
#[derive(Debug, Default)]
pub(crate) struct Buffer {
    data: Vec<u8>,
    start: usize,
    end: usize,
}

impl Buffer {
    /// The bytes not yet consumed.
    pub(crate) fn pending(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    fn pending_mut(&mut self) -> &mut [u8] {
        &mut self.data[self.start..self.end]
    }

    /// Whether nothing is pending.
    pub(crate) fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// How many bytes are pending.
    pub(crate) fn len(&self) -> usize {
        self.end - self.start
    }

    /// Drops `n` bytes from the front.
    pub(crate) fn consume(&mut self, n: usize) {
        self.start += n;
        debug_assert!(self.start <= self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Room for at least `min` more bytes at the end, to be filled and then
    /// committed with [`Buffer::filled`].
    pub(crate) fn spare(&mut self, min: usize) -> &mut [u8] {
        if self.data.len() - self.end < min && self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.data.len() - self.end < min {
            self.data.resize(self.end + min, 0);
        }
        &mut self.data[self.end..]
    }

    /// Commits `n` bytes written at the start of the last [`Buffer::spare`].
    pub(crate) fn filled(&mut self, n: usize) {
        debug_assert!(self.end + n <= self.data.len());
        self.end += n;
    }

    /// Appends `len` bytes for the caller to write, and returns them.
    fn append(&mut self, len: usize) -> &mut [u8] {
        self.spare(len);
        let at = self.end;
        self.end += len;
        &mut self.data[at..at + len]
    }

    fn extend(&mut self, bytes: &[u8]) {
        self.append(bytes.len()).copy_from_slice(bytes);
    }
}

/// Settings a connection starts with.
#[derive(Debug, Clone)]
pub(crate) struct ConnConfig {
    /// Client (masks) or server.
    pub(crate) role: Role,
    /// Whole messages per receive (`SOCK_SEQPACKET`) or bytes as they come.
    pub(crate) messages: bool,
    /// Largest message accepted.
    pub(crate) max_message: u64,
    /// Split outgoing messages into frames of this much payload (0: never).
    pub(crate) fragment_size: usize,
    /// The heartbeat, if any.
    pub(crate) heartbeat: Option<HeartbeatConfig>,
}

/// The HTTP handshake still to do.
#[derive(Debug)]
enum Handshake {
    /// The request is sent; the answer is awaited.
    Client(ClientRequest),
    /// A request is awaited.
    Server(ServerPolicy),
}

/// Bytes made ready for the application and not yet taken: a whole message (message
/// mode), or bytes kept by `MSG_PEEK` (byte mode).
#[derive(Debug)]
struct Held {
    data: Vec<u8>,
    text: bool,
    /// Whether the bytes end their message.
    last: bool,
}

/// What a receive gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Received {
    /// `copied` bytes were written (`full` in the message or piece; more means
    /// truncated).
    Bytes {
        /// Bytes written to the caller's buffer.
        copied: usize,
        /// Bytes of the message (message mode) or the piece.
        full: usize,
        /// Whether they are text.
        text: bool,
        /// Whether they end a message.
        last: bool,
    },
    /// The peer closed: every message before its close frame has been taken.
    End,
}

/// One WebSocket connection.
#[derive(Debug)]
pub(crate) struct Conn {
    config: ConnConfig,
    decoder: Decoder,
    /// Received from the transport, not yet decoded.
    pub(crate) input: Buffer,
    /// Encoded for the transport, not yet written.
    pub(crate) output: Buffer,
    handshake: Option<Handshake>,
    /// The subprotocol agreed on.
    protocol: Option<String>,
    /// What the server accepted (its request path and origin).
    accepted: Option<Accepted>,
    /// Message mode: the message being put together.
    assembling: Vec<u8>,
    held: Option<Held>,
    last_text: bool,
    close_sent: bool,
    /// The peer's close code and reason (1006 when the transport ended without one).
    peer_close: Option<(u16, String)>,
    /// The transport has no more bytes to give.
    eof: bool,
    /// Why the connection failed: errno and the detail for `xs_last_error()`.
    failure: Option<(i32, String)>,
    heartbeat: Option<Heartbeat>,
    /// Input bytes the frame being waited for needs (see `wait_for_whole_frame`).
    frame_wanted: usize,
}

fn failed(errno: i32, detail: impl Into<String>) -> Error {
    Error::Failed { errno, detail: detail.into() }
}

impl Conn {
    /// A connection whose frames start at once (Raw-WS, or after the handshake).
    pub(crate) fn new(config: ConnConfig, now: Instant) -> Self {
        let heartbeat = config.heartbeat.map(|c| Heartbeat::new(c, now));
        let mut decoder = Decoder::new(config.role, config.max_message);
        // Binary payload is unmasked as it is copied out.
        decoder.keep_binary_masked();
        Self {
            decoder,
            config,
            input: Buffer::default(),
            output: Buffer::default(),
            handshake: None,
            protocol: None,
            accepted: None,
            assembling: Vec::new(),
            held: None,
            last_text: false,
            close_sent: false,
            peer_close: None,
            eof: false,
            failure: None,
            heartbeat,
            frame_wanted: 0,
        }
    }

    /// A client that starts with the HTTP Upgrade request.
    pub(crate) fn client_handshake(
        config: ConnConfig,
        request: ClientRequest,
        now: Instant,
    ) -> Self {
        let mut conn = Self::new(config, now);
        conn.output.extend(&request.to_bytes());
        conn.handshake = Some(Handshake::Client(request));
        conn
    }

    /// A server that waits for the HTTP Upgrade request.
    pub(crate) fn server_handshake(config: ConnConfig, policy: ServerPolicy, now: Instant) -> Self {
        let mut conn = Self::new(config, now);
        conn.handshake = Some(Handshake::Server(policy));
        conn
    }

    /// Whether the HTTP handshake is still to finish.
    pub(crate) fn handshaking(&self) -> bool {
        self.handshake.is_some()
    }

    /// The subprotocol agreed on.
    pub(crate) fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// What the server accepted.
    pub(crate) fn accepted(&self) -> Option<&Accepted> {
        self.accepted.as_ref()
    }

    /// The peer's close code and reason, once known.
    pub(crate) fn peer_close(&self) -> Option<&(u16, String)> {
        self.peer_close.as_ref()
    }

    /// Whether the last bytes delivered were text.
    pub(crate) fn last_text(&self) -> bool {
        self.last_text
    }

    /// The failure, as an error for every later call.
    pub(crate) fn failure(&self) -> Option<Error> {
        self.failure.as_ref().map(|(errno, detail)| failed(*errno, detail.clone()))
    }

    /// The errno of the failure, if any.
    pub(crate) fn failure_errno(&self) -> Option<i32> {
        self.failure.as_ref().map(|f| f.0)
    }

    /// Whether nothing more will come or go: the close handshake is over (or the
    /// connection failed) and every queued byte is written.
    pub(crate) fn finished(&self) -> bool {
        let closed =
            (self.close_sent && (self.peer_close.is_some() || self.eof)) || self.failure.is_some();
        closed && self.output.is_empty()
    }

    /// Whether the peer is done sending: its close frame came, or the transport ended.
    pub(crate) fn peer_done(&self) -> bool {
        self.eof || self.peer_close.is_some()
    }

    /// Drops undecoded input (after a failure, while waiting for the peer to stop).
    pub(crate) fn discard_input(&mut self) {
        let n = self.input.len();
        self.input.consume(n);
    }

    /// Whether the transport may be read: more input is wanted and can come.
    pub(crate) fn wants_input(&self) -> bool {
        !self.eof && self.failure.is_none() && self.peer_close.is_none()
    }

    /// Records bytes read from the transport (after they were put in `input`).
    pub(crate) fn received(&mut self, n: usize) {
        if n > 0 {
            if let Some(beat) = &mut self.heartbeat {
                beat.alive();
            }
        }
    }

    /// Room in the input buffer for the next read from the transport.
    pub(crate) fn read_room(&mut self) -> &mut [u8] {
        let whole_frame = self.frame_wanted.saturating_sub(self.input.len());
        self.input.spare(READ_CHUNK.max(whole_frame))
    }

    /// Message mode: whether the next frame is a whole message (a final binary frame
    /// that starts one) not yet all here but small enough to wait for, so it can go
    /// to the caller in one copy. Records how much input that takes.
    fn wait_for_whole_frame(&mut self) -> bool {
        self.frame_wanted = 0;
        // Only between frames: inside one, the input starts with payload.
        if !self.config.messages
            || !self.assembling.is_empty()
            || self.eof
            || self.decoder.in_frame()
        {
            return false;
        }
        let Ok(Some((header, size))) = Header::parse(self.input.pending()) else { return false };
        let total = size as u64 + header.len;
        // Text is checked as it arrives, so that bad UTF-8 fails fast: not for text.
        let binary = header.opcode == frame::OP_BINARY;
        if !binary
            || !header.fin
            || total > WHOLE_FRAME_LIMIT
            || header.len > self.config.max_message
        {
            return false;
        }
        if (self.input.len() as u64) < total {
            self.frame_wanted = total as usize;
            return true;
        }
        false
    }

    /// The transport ended (read returned 0).
    pub(crate) fn transport_ended(&mut self) {
        self.eof = true;
    }

    fn fail(&mut self, errno: i32, detail: String) -> Error {
        if self.failure.is_none() {
            self.failure = Some((errno, detail));
        }
        self.failure().expect("just set")
    }

    /// Fails the connection for a broken rule: sends the close code for it.
    fn violated(&mut self, violation: Violation) -> Error {
        if !self.close_sent {
            self.queue_close(violation.code, violation.what);
        }
        let detail = format!("websocket: {}; sent close {}", violation.what, violation.code);
        self.fail(libc::EPROTO, detail)
    }

    /// Moves the HTTP handshake on with the input received; `Ok(true)` once done.
    pub(crate) fn drive_handshake(&mut self) -> Result<bool, Error> {
        if let Some(err) = self.failure() {
            return Err(err);
        }
        let Some(handshake) = &self.handshake else { return Ok(true) };
        let head = match handshake::head_len(self.input.pending()) {
            Ok(Some(len)) => len,
            Ok(None) if self.eof => {
                return Err(self.fail(
                    libc::ECONNRESET,
                    "websocket: the peer closed the connection during the handshake".into(),
                ));
            }
            Ok(None) => return Ok(false),
            Err(why) => match handshake {
                Handshake::Client(_) => {
                    return Err(self.fail(libc::EPROTO, format!("websocket handshake: {why}")));
                }
                Handshake::Server(_) => return Err(self.refuse(Refused { status: 431, why })),
            },
        };
        let outcome = match handshake {
            Handshake::Client(request) => {
                request.check_response(&self.input.pending()[..head]).map(|p| (p, None))
            }
            Handshake::Server(policy) => match policy.answer(&self.input.pending()[..head]) {
                Ok((answer, accepted)) => {
                    self.output.extend(&answer);
                    Ok((accepted.protocol.clone(), Some(accepted)))
                }
                Err(refused) => return Err(self.refuse(refused)),
            },
        };
        match outcome {
            Ok((protocol, accepted)) => {
                self.input.consume(head);
                self.protocol = protocol;
                self.accepted = accepted;
                self.handshake = None;
                Ok(true)
            }
            Err(why) => {
                let errno =
                    if why.contains("answered HTTP") { libc::ECONNREFUSED } else { libc::EPROTO };
                Err(self.fail(errno, format!("websocket handshake: {why}")))
            }
        }
    }

    /// Answers a bad request with its HTTP error and fails the connection.
    fn refuse(&mut self, refused: Refused) -> Error {
        self.output.extend(&refused.to_bytes());
        self.close_sent = true; // nothing more is sent after the answer
        let detail =
            format!("websocket handshake refused with HTTP {}: {}", refused.status, refused.why);
        self.fail(libc::ECONNABORTED, detail)
    }

    /// Takes the next bytes for the application into `buf`: `Ok(None)` when more
    /// input is needed. `peek` leaves them to be taken again.
    pub(crate) fn receive(
        &mut self,
        buf: &mut [u8],
        peek: bool,
    ) -> Result<Option<Received>, Error> {
        loop {
            if let Some(held) = &mut self.held {
                let copied = held.data.len().min(buf.len());
                buf[..copied].copy_from_slice(&held.data[..copied]);
                let full = held.data.len();
                let (text, whole) = (held.text, held.last);
                let mut last = whole;
                if !peek {
                    if self.config.messages || copied == full {
                        self.held = None;
                    } else {
                        held.data.drain(..copied);
                        last = false;
                    }
                }
                self.last_text = text;
                let full = if self.config.messages { full } else { copied };
                return Ok(Some(Received::Bytes { copied, full, text, last }));
            }
            if let Some(err) = self.failure() {
                return Err(err);
            }
            if self.peer_close.is_some() {
                if !peek {
                    self.answer_close();
                }
                return Ok(Some(Received::End));
            }
            if self.wait_for_whole_frame() {
                return Ok(None);
            }
            let max_data = if self.config.messages || peek { usize::MAX } else { buf.len() };
            let step = match self.decoder.step(self.input.pending_mut(), max_data) {
                Ok(step) => step,
                Err(violation) => return Err(self.violated(violation)),
            };
            match step {
                Step::NeedMore if self.eof => {
                    self.peer_close = Some((1006, String::new()));
                    let detail = "websocket: connection lost without a close frame (1006)";
                    return Err(self.fail(libc::ECONNRESET, detail.into()));
                }
                Step::NeedMore => return Ok(None),
                Step::Data { consumed, start, end, text, last, mask } => {
                    let data = &self.input.pending()[start..end];
                    if self.config.messages {
                        if self.assembling.is_empty() && last && !peek {
                            // The whole message is here: straight to the caller.
                            let copied = data.len().min(buf.len());
                            copy_unmasked(&mut buf[..copied], &data[..copied], mask);
                            let full = data.len();
                            self.input.consume(consumed);
                            self.last_text = text;
                            return Ok(Some(Received::Bytes { copied, full, text, last }));
                        }
                        let at = self.assembling.len();
                        self.assembling.resize(at + data.len(), 0);
                        copy_unmasked(&mut self.assembling[at..], data, mask);
                        self.input.consume(consumed);
                        if last {
                            let data = std::mem::take(&mut self.assembling);
                            self.held = Some(Held { data, text, last });
                        }
                    } else if data.is_empty() {
                        self.input.consume(consumed);
                    } else if peek {
                        let mut copy = vec![0; data.len()];
                        copy_unmasked(&mut copy, data, mask);
                        self.held = Some(Held { data: copy, text, last });
                        self.input.consume(consumed);
                    } else {
                        let copied = data.len();
                        copy_unmasked(&mut buf[..copied], data, mask);
                        self.input.consume(consumed);
                        self.last_text = text;
                        // A message may end with an empty final frame: if it is here,
                        // these bytes end the message.
                        let last = last || self.take_empty_final()?;
                        return Ok(Some(Received::Bytes { copied, full: copied, text, last }));
                    }
                }
                Step::Control { consumed, opcode, start, end } => {
                    let payload = self.input.pending()[start..end].to_vec();
                    self.input.consume(consumed);
                    self.control(opcode, &payload);
                }
            }
        }
    }

    /// Takes an empty final frame that follows at once (see
    /// [`Decoder::end_if_empty_final`]); whether there was one.
    fn take_empty_final(&mut self) -> Result<bool, Error> {
        match self.decoder.end_if_empty_final(self.input.pending()) {
            Ok(Some(n)) => {
                self.input.consume(n);
                Ok(true)
            }
            Ok(None) => Ok(false),
            Err(violation) => Err(self.violated(violation)),
        }
    }

    /// Answers the peer's close frame with the same code (once).
    fn answer_close(&mut self) {
        if let Some((code, _)) = &self.peer_close {
            if !self.close_sent {
                let echo = if *code == 1005 { Vec::new() } else { code.to_be_bytes().to_vec() };
                self.queue_frame(frame::OP_CLOSE, &echo);
                self.close_sent = true;
            }
        }
    }

    /// Acts on a control frame.
    fn control(&mut self, opcode: u8, payload: &[u8]) {
        match opcode {
            frame::OP_PING if !self.close_sent => self.queue_frame(frame::OP_PONG, payload),
            frame::OP_CLOSE => {
                // Answered when the application takes the end (see `answer_close`), so
                // what it is still sending goes out first (RFC 6455 §5.5.1 allows it).
                self.peer_close = Some(decoder::parse_close(payload));
            }
            _ => {} // a pong (any frame already counted as an answer), or a ping after our close
        }
    }

    /// Whether bytes are ready for the application without more input: a message
    /// (message mode) or payload bytes, the end, or a failure to report. Decodes
    /// ahead (answering pings) to find out.
    pub(crate) fn readable(&mut self) -> bool {
        if self.held.is_some() || self.failure.is_some() || self.peer_close.is_some() {
            return true;
        }
        if self.handshaking() {
            return false;
        }
        let mut probe = [0u8; 1];
        // A peek makes the next bytes held, so they are not lost.
        match self.receive(&mut probe, true) {
            Ok(Some(_)) | Err(_) => true,
            Ok(None) => false,
        }
    }

    /// Queues one message, split into frames of the fragment size. Text must be UTF-8.
    pub(crate) fn send(&mut self, data: &[u8], text: bool) -> Result<(), Error> {
        if let Some(err) = self.failure() {
            return Err(err);
        }
        if self.close_sent {
            let detail = "websocket: the connection is closing (close frame sent)";
            return Err(failed(libc::EPIPE, detail));
        }
        if text && std::str::from_utf8(data).is_err() {
            return Err(Error::InvalidArgument("XS_MSG_TEXT message is not valid UTF-8".into()));
        }
        let size =
            if self.config.fragment_size == 0 { data.len() } else { self.config.fragment_size };
        let mut opcode = if text { frame::OP_TEXT } else { frame::OP_BINARY };
        let mut chunks = data.chunks(size.max(1)).peekable();
        if chunks.peek().is_none() {
            self.encode(true, opcode, &[]);
        }
        while let Some(chunk) = chunks.next() {
            self.encode(chunks.peek().is_none(), opcode, chunk);
            opcode = frame::OP_CONTINUATION;
        }
        Ok(())
    }

    /// Queues a close frame with `code` and `reason` (once; later calls do nothing).
    pub(crate) fn queue_close(&mut self, code: u16, reason: &str) {
        if self.close_sent || self.handshaking() {
            self.close_sent = true;
            return;
        }
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(truncate_utf8(reason, frame::MAX_CONTROL_PAYLOAD - 2).as_bytes());
        self.queue_frame(frame::OP_CLOSE, &payload);
        self.close_sent = true;
    }

    fn queue_frame(&mut self, opcode: u8, payload: &[u8]) {
        self.encode(true, opcode, payload);
    }

    /// Appends one frame to the output, masked when we are the client.
    fn encode(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        let mask = (self.config.role == Role::Client).then(mask_key);
        let header = Header { fin, rsv: 0, opcode, mask, len: payload.len() as u64 };
        let mut head = [0u8; frame::MAX_HEADER];
        let n = header.encode(&mut head);
        self.output.extend(&head[..n]);
        match mask {
            Some(key) => frame::copy_masked(self.output.append(payload.len()), payload, key, 0),
            None => self.output.extend(payload),
        }
    }

    /// Runs the heartbeat: queues a ping when due; the next time it wants to run, or a
    /// failure (`ETIMEDOUT`) when too many pongs were missed.
    pub(crate) fn tick(&mut self, now: Instant) -> Result<Option<Instant>, Error> {
        if self.failure.is_some() || self.close_sent {
            return Ok(None);
        }
        let handshaking = self.handshaking();
        let Some(beat) = &mut self.heartbeat else { return Ok(None) };
        if handshaking {
            // The heartbeat starts with the connection.
            *beat = Heartbeat::new(beat.config(), now);
            return Ok(Some(now + beat.config().interval));
        }
        match beat.tick(now) {
            Beat::Wait(due) => Ok(Some(due)),
            Beat::Ping(due) => {
                self.queue_frame(frame::OP_PING, b"xsocket");
                Ok(Some(due))
            }
            Beat::Dead => {
                let missed = beat.missed();
                self.queue_close(1011, "no pong");
                let detail = format!("websocket: no answer to {missed} pings in a row");
                Err(self.fail(libc::ETIMEDOUT, detail))
            }
        }
    }
}

/// Copies payload to its destination, unmasking it on the way when it is still
/// masked (one pass instead of two).
fn copy_unmasked(dst: &mut [u8], src: &[u8], mask: Option<([u8; 4], usize)>) {
    match mask {
        Some((key, offset)) => frame::copy_masked(dst, src, key, offset),
        None => dst.copy_from_slice(src),
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character.
fn truncate_utf8(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A masking key from the system's secure random source, drawn in batches per
/// thread (drawn again in a forked child, so parent and child never share keys).
fn mask_key() -> [u8; 4] {
    use std::cell::RefCell;
    /// Keys drawn at once.
    const POOL: usize = 256;
    struct Pool {
        keys: [[u8; 4]; POOL],
        next: usize,
        generation: u64,
    }
    thread_local! {
        static KEYS: RefCell<Pool> = const {
            RefCell::new(Pool { keys: [[0; 4]; POOL], next: POOL, generation: 0 })
        };
    }
    KEYS.with_borrow_mut(|pool| {
        let generation = crate::fork::generation();
        if pool.next == POOL || pool.generation != generation {
            let bytes = pool.keys.as_flattened_mut();
            if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), bytes).is_err() {
                // No system randomness: keys from the clock still mask (RFC 6455 §10.3).
                let seed =
                    Instant::now().elapsed().as_nanos() as u64 ^ u64::from(std::process::id());
                for (i, b) in bytes.iter_mut().enumerate() {
                    *b = (seed.rotate_left(i as u32) >> 3) as u8;
                }
            }
            pool.next = 0;
            pool.generation = generation;
        }
        pool.next += 1;
        pool.keys[pool.next - 1]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn errno(err: &Error) -> Option<i32> {
        match err {
            Error::Failed { errno, .. } => Some(*errno),
            _ => None,
        }
    }

    fn config(role: Role, messages: bool) -> ConnConfig {
        ConnConfig { role, messages, max_message: 1 << 20, fragment_size: 0, heartbeat: None }
    }

    /// Moves everything `from` has written into `to`'s input, in pieces of `chunk`.
    fn pump(from: &mut Conn, to: &mut Conn) {
        let bytes = from.output.pending().to_vec();
        from.output.consume(bytes.len());
        to.input.extend(&bytes);
        to.received(bytes.len());
    }

    fn pair(messages: bool) -> (Conn, Conn) {
        let now = Instant::now();
        (
            Conn::new(config(Role::Client, messages), now),
            Conn::new(config(Role::Server, messages), now),
        )
    }

    fn recv(conn: &mut Conn, size: usize) -> Option<(Vec<u8>, Received)> {
        let mut buf = vec![0u8; size];
        let got = conn.receive(&mut buf, false).expect("no failure")?;
        if let Received::Bytes { copied, .. } = got {
            buf.truncate(copied);
        }
        Some((buf, got))
    }

    #[test]
    fn messages_go_both_ways_whole() {
        let (mut client, mut server) = pair(true);
        client.send(b"hello", false).expect("send");
        client.send("wörld".as_bytes(), true).expect("send");
        pump(&mut client, &mut server);
        let (data, got) = recv(&mut server, 100).expect("message");
        assert_eq!(data, b"hello");
        assert_eq!(got, Received::Bytes { copied: 5, full: 5, text: false, last: true });
        let (data, _) = recv(&mut server, 100).expect("message");
        assert_eq!(data, "wörld".as_bytes());
        assert!(server.last_text());
        assert_eq!(recv(&mut server, 100), None);
        server.send(&[7; 70000], false).expect("send");
        pump(&mut server, &mut client);
        let (data, _) = recv(&mut client, 100_000).expect("message");
        assert_eq!(data, vec![7; 70000]);
    }

    #[test]
    fn fragments_are_joined_in_message_mode_and_short_buffers_truncate() {
        let (mut client, mut server) = pair(true);
        client.config.fragment_size = 3;
        client.send(b"0123456789", false).expect("send");
        pump(&mut client, &mut server);
        let (data, got) = recv(&mut server, 4).expect("message");
        assert_eq!(data, b"0123");
        assert_eq!(got, Received::Bytes { copied: 4, full: 10, text: false, last: true });
        assert_eq!(recv(&mut server, 100), None, "the rest of a truncated message is gone");
    }

    #[test]
    fn byte_mode_streams_pieces_and_stops_at_message_ends() {
        let (mut client, mut server) = pair(false);
        client.config.fragment_size = 4;
        client.send(b"abcdefghij", false).expect("send");
        client.send(b"XY", true).expect("send");
        pump(&mut client, &mut server);
        let mut got = Vec::new();
        loop {
            let (data, r) = recv(&mut server, 3).expect("bytes");
            got.extend(data);
            if let Received::Bytes { last: true, .. } = r {
                break;
            }
        }
        assert_eq!(got, b"abcdefghij");
        let (data, r) = recv(&mut server, 100).expect("bytes");
        assert_eq!(
            (data.as_slice(), r),
            (&b"XY"[..], Received::Bytes { copied: 2, full: 2, text: true, last: true })
        );
    }

    #[test]
    fn byte_mode_sees_a_message_end_in_an_empty_final_frame() {
        let (mut client, mut server) = pair(false);
        client.encode(false, frame::OP_TEXT, b"hel");
        client.queue_frame(frame::OP_PING, b"");
        client.encode(false, frame::OP_CONTINUATION, b"lo");
        client.encode(true, frame::OP_CONTINUATION, b"");
        client.send(b"x", false).expect("send");
        pump(&mut client, &mut server);
        let mut pieces = Vec::new();
        while let Some((data, Received::Bytes { last, text, .. })) = recv(&mut server, 100) {
            pieces.push((data, text, last));
        }
        assert_eq!(
            pieces,
            vec![
                (b"hel".to_vec(), true, false),
                (b"lo".to_vec(), true, true),
                (b"x".to_vec(), false, true)
            ]
        );
    }

    /// Puts `bytes` into the connection as the layer's reads do.
    fn read_in(conn: &mut Conn, bytes: &[u8]) {
        conn.read_room()[..bytes.len()].copy_from_slice(bytes);
        conn.input.filled(bytes.len());
        conn.received(bytes.len());
    }

    #[test]
    fn a_read_after_a_partly_taken_input_keeps_the_stream_intact() {
        let (mut client, mut server) = pair(true);
        client.send(b"first", false).expect("send");
        client.send(b"second", false).expect("send");
        let bytes = client.output.pending().to_vec();
        let cut = 2 + 4 + 5 + 3; // the first read ends inside the second frame's header
        read_in(&mut server, &bytes[..cut]);
        assert_eq!(recv(&mut server, 100).map(|(d, _)| d), Some(b"first".to_vec()));
        assert_eq!(recv(&mut server, 100), None);
        read_in(&mut server, &bytes[cut..]);
        assert_eq!(recv(&mut server, 100).map(|(d, _)| d), Some(b"second".to_vec()));
        assert_eq!(server.input.len(), 0);
        assert_eq!(recv(&mut server, 100), None);
    }

    #[test]
    fn payload_that_looks_like_a_header_is_not_waited_for() {
        // A first fragment whose header came alone: the decoder is inside the frame
        // when its payload arrives, and that payload (as it is on the wire: a final
        // binary header of 65535 bytes) must not be taken for a frame to wait for.
        let key = [0x11, 0x22, 0x33, 0x44];
        let wire = [0x82, 0x7E, 0xFF, 0xFF, 1, 2, 3, 4];
        let mut message = wire.to_vec();
        frame::apply_mask(&mut message, key, 0);
        let header =
            Header { fin: false, rsv: 0, opcode: frame::OP_BINARY, mask: Some(key), len: 8 };
        let mut head = [0u8; frame::MAX_HEADER];
        let n = header.encode(&mut head);
        let mut last = [0u8; frame::MAX_HEADER];
        let tail =
            Header { fin: true, rsv: 0, opcode: frame::OP_CONTINUATION, mask: Some(key), len: 0 };
        let m = tail.encode(&mut last);
        let (_, mut server) = pair(true);
        read_in(&mut server, &head[..n]);
        assert_eq!(recv(&mut server, 100), None);
        read_in(&mut server, &wire);
        read_in(&mut server, &last[..m]);
        let (data, _) = recv(&mut server, 100).expect("the whole message is in");
        assert_eq!(data, message);
    }

    #[test]
    fn peek_leaves_the_message() {
        for messages in [true, false] {
            let (mut client, mut server) = pair(messages);
            client.send(b"peekaboo", false).expect("send");
            pump(&mut client, &mut server);
            let mut buf = [0u8; 4];
            server.receive(&mut buf, true).expect("ok").expect("bytes");
            assert_eq!(&buf, b"peek");
            let (data, _) = recv(&mut server, 100).expect("bytes");
            assert_eq!(data, b"peekaboo");
        }
    }

    #[test]
    fn ping_is_answered_and_close_is_echoed() {
        let (mut client, mut server) = pair(true);
        client.queue_frame(frame::OP_PING, b"are you there");
        client.send(b"data", false).expect("send");
        client.queue_close(4000, "bye");
        pump(&mut client, &mut server);
        assert!(matches!(server.receive(&mut [0; 10], false), Ok(Some(Received::Bytes { .. }))));
        assert_eq!(server.receive(&mut [0; 10], false).ok(), Some(Some(Received::End)));
        assert_eq!(server.peer_close(), Some(&(4000, "bye".to_string())));
        assert!(server.finished() || !server.output.is_empty());
        pump(&mut server, &mut client);
        assert!(server.finished());
        // The client sees the pong (ignored) and the echoed close.
        assert_eq!(client.receive(&mut [0; 10], false).ok(), Some(Some(Received::End)));
        assert_eq!(client.peer_close().map(|c| c.0), Some(4000));
        assert!(client.finished());
        assert!(matches!(
            client.send(b"late", false),
            Err(Error::Failed { errno: libc::EPIPE, .. })
        ));
    }

    #[test]
    fn protocol_errors_send_the_close_code_and_fail() {
        let (mut client, mut server) = pair(true);
        // An unmasked frame from a client.
        server.input.extend(&[0x82, 0x01, 0xff]);
        let err = server.receive(&mut [0; 10], false).expect_err("violation");
        assert_eq!(errno(&err), Some(libc::EPROTO));
        assert!(err.to_string().contains("client frame not masked; sent close 1002"), "{err}");
        pump(&mut server, &mut client);
        assert_eq!(client.receive(&mut [0; 10], false).ok(), Some(Some(Received::End)));
        assert_eq!(client.peer_close().map(|c| c.0), Some(1002));
    }

    #[test]
    fn transport_end_without_close_is_a_reset_after_the_data() {
        let (mut client, mut server) = pair(true);
        client.send(b"last words", false).expect("send");
        pump(&mut client, &mut server);
        server.transport_ended();
        assert!(recv(&mut server, 100).is_some());
        let err = server.receive(&mut [0; 10], false).expect_err("reset");
        assert_eq!(errno(&err), Some(libc::ECONNRESET));
        assert_eq!(server.peer_close().map(|c| c.0), Some(1006));
    }

    #[test]
    fn full_handshake_then_frames_in_the_same_read() {
        let now = Instant::now();
        let request = ClientRequest {
            host: "localhost".into(),
            path: "/".into(),
            origin: None,
            protocols: vec!["chat".into()],
            key: handshake::new_key().expect("random"),
        };
        let mut client = Conn::client_handshake(config(Role::Client, true), request, now);
        let policy = ServerPolicy { protocols: vec!["chat".into()], ..Default::default() };
        let mut server = Conn::server_handshake(config(Role::Server, true), policy, now);
        pump(&mut client, &mut server);
        assert!(server.drive_handshake().expect("server side"));
        server.send(b"welcome", true).expect("send");
        pump(&mut server, &mut client);
        assert!(client.drive_handshake().expect("client side"));
        assert_eq!(client.protocol(), Some("chat"));
        assert_eq!(recv(&mut client, 100).expect("message").0, b"welcome");
    }

    #[test]
    fn a_refused_request_gets_an_http_error() {
        let now = Instant::now();
        let mut server =
            Conn::server_handshake(config(Role::Server, true), ServerPolicy::default(), now);
        server.input.extend(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        let err = server.drive_handshake().expect_err("refused");
        assert_eq!(errno(&err), Some(libc::ECONNABORTED));
        assert!(server.output.pending().starts_with(b"HTTP/1.1 426 "));
    }

    #[test]
    fn heartbeat_pings_then_fails_when_unanswered() {
        let now = Instant::now();
        let beat = HeartbeatConfig {
            interval: Duration::from_millis(10),
            pong_timeout: Duration::from_millis(10),
            missed_allowed: 0,
        };
        let mut client =
            Conn::new(ConnConfig { heartbeat: Some(beat), ..config(Role::Client, true) }, now);
        let due = client.tick(now + Duration::from_millis(10)).expect("ok").expect("due");
        assert!(!client.output.is_empty(), "a ping was queued");
        let err = client.tick(due).expect_err("dead");
        assert_eq!(errno(&err), Some(libc::ETIMEDOUT));
    }

    #[test]
    fn text_must_be_utf8_and_empty_messages_are_messages() {
        let (mut client, mut server) = pair(true);
        assert!(matches!(client.send(b"\xff", true), Err(Error::InvalidArgument(_))));
        client.send(b"", false).expect("empty");
        pump(&mut client, &mut server);
        let (_, got) = recv(&mut server, 10).expect("message");
        assert_eq!(got, Received::Bytes { copied: 0, full: 0, text: false, last: true });
    }

    /// A message to send: text or binary, its bytes, and whether a ping goes first.
    fn message_strategy() -> impl proptest::strategy::Strategy<Value = (bool, Vec<u8>, bool)> {
        use proptest::prelude::*;
        prop_oneof![
            (proptest::collection::vec(any::<u8>(), 0..300), any::<bool>())
                .prop_map(|(v, ping)| (false, v, ping)),
            ("\\PC{0,60}", any::<bool>()).prop_map(|(s, ping)| (true, s.into_bytes(), ping)),
        ]
    }

    /// Feeds `bytes` to `conn` in the pieces `cuts` make, taking every delivery;
    /// returns the messages (joined from pieces in byte mode), or the first error.
    fn deliver_in_pieces(
        conn: &mut Conn,
        bytes: &[u8],
        cuts: &[usize],
    ) -> Result<Vec<(bool, Vec<u8>)>, Error> {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        cuts.push(bytes.len());
        cuts.sort_unstable();
        let (mut at, mut out, mut current) = (0, Vec::new(), Vec::new());
        let mut buf = vec![0u8; 1 << 16];
        for cut in cuts {
            read_in(conn, &bytes[at..cut]);
            at = cut;
            while let Some(got) = conn.receive(&mut buf, false)? {
                match got {
                    Received::Bytes { copied, text, last, .. } => {
                        current.extend_from_slice(&buf[..copied]);
                        if last {
                            out.push((text, std::mem::take(&mut current)));
                        }
                    }
                    Received::End => return Ok(out),
                }
            }
        }
        Ok(out)
    }

    proptest::proptest! {
        /// Any split of a valid byte stream, in either delivery mode and with any
        /// fragment size, gives the messages sent, in order, with their types.
        #[test]
        fn any_split_gives_the_messages_sent(
            sent in proptest::collection::vec(message_strategy(), 1..12),
            cuts in proptest::collection::vec(0usize..100_000, 0..40),
            fragment in 0usize..70,
            messages: bool,
        ) {
            let (mut client, mut server) = pair(messages);
            client.config.fragment_size = fragment;
            for (text, data, ping) in &sent {
                if *ping {
                    client.queue_frame(frame::OP_PING, b"p");
                }
                client.send(data, *text).expect("valid message");
            }
            let bytes = client.output.pending().to_vec();
            let got = deliver_in_pieces(&mut server, &bytes, &cuts).expect("valid stream");
            // Byte mode skips empty messages (they carry no bytes).
            let expected: Vec<(bool, Vec<u8>)> = sent
                .iter()
                .filter(|(_, data, _)| messages || !data.is_empty())
                .map(|(text, data, _)| (*text, data.clone()))
                .collect();
            proptest::prop_assert_eq!(got, expected);
            let pings = sent.iter().filter(|m| m.2).count();
            // Every ping was answered: each pong is 3 bytes (2 of header, "p").
            proptest::prop_assert_eq!(server.output.len(), 3 * pings);
        }

        /// Random bytes never panic, in any role or mode, through the handshake or
        /// not; a failure stays failed.
        #[test]
        fn random_bytes_never_panic(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000),
            cuts in proptest::collection::vec(0usize..3000, 0..10),
            server_role: bool,
            messages: bool,
            handshake: u8,
        ) {
            let role = if server_role { Role::Server } else { Role::Client };
            let now = Instant::now();
            let mut conn = match handshake % 3 {
                0 => Conn::new(config(role, messages), now),
                1 => Conn::server_handshake(config(Role::Server, messages), ServerPolicy::default(), now),
                _ => {
                    let request = ClientRequest {
                        host: "h".into(),
                        path: "/".into(),
                        origin: None,
                        protocols: vec!["p".into()],
                        key: "dGhlIHNhbXBsZSBub25jZQ==".into(),
                    };
                    Conn::client_handshake(config(Role::Client, messages), request, now)
                }
            };
            let outcome = if conn.handshaking() {
                conn.input.extend(&bytes);
                match conn.drive_handshake() {
                    Ok(true) => deliver_in_pieces(&mut conn, &[], &cuts).map(drop),
                    Ok(false) => Ok(()),
                    Err(err) => Err(err),
                }
            } else {
                deliver_in_pieces(&mut conn, &bytes, &cuts).map(drop)
            };
            if outcome.is_err() {
                proptest::prop_assert!(conn.failure().is_some());
                proptest::prop_assert!(conn.receive(&mut [0; 8], false).is_err() || conn.handshaking());
            }
        }
    }
}
