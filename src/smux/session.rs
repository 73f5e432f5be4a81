//! One smux session, without I/O: frames in, stream data and events out, frames to
//! send out. Streams are addressed by a [`StreamKey`] that outlives their wire id,
//! so an id can be recycled as soon as FIN went both ways even while the
//! application still holds the stream.
//!
//! What the Go library does and this does not (see `shared/smux-wire.md` §3–§6):
//! the receive window is enforced (PSH beyond it fails the session), PSH payloads
//! over 64 KiB fail the session before anything is stored, a CFM for more than
//! was sent fails the session, ids are recycled on passive close too, no PSH is
//! sent after our FIN and no CFM after the peer's, and the answer to our own VRM
//! probe is never answered.
//!
//! Close is a half-close, as `shutdown(SHUT_WR)` on TCP: our FIN says we send no
//! more; we still read (and confirm) until the peer's FIN, which it sends when its
//! application closes. The Go library answers a FIN at once, so against it a FIN
//! ends both directions, as the wire notes say.

use std::collections::{HashMap, VecDeque};

use super::{
    frame::{self, Header},
    ids::IdBitmap,
};

/// A stream, for as long as the application holds it.
pub(crate) type StreamKey = u64;

/// Settings of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionConfig {
    /// Per-stream window, both ways: bytes sent before the peer confirms them, and
    /// bytes accepted before we confirm them (the Go library's 512 KiB).
    pub(crate) window: u32,
    /// Streams open at once (at most 65,535).
    pub(crate) max_streams: usize,
    /// Streams the peer opened that wait for `accept`.
    pub(crate) accept_backlog: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self { window: 512 * 1024, max_streams: 65_535, accept_backlog: 1024 }
    }
}

/// A broken rule that fails the whole session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Violation(pub(crate) &'static str);

/// Why a stream call cannot go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamError {
    /// No such stream (closed by the application).
    Unknown,
    /// The stream is closed for writing (FIN sent or received).
    Closed,
    /// Every id is in use, or the stream limit is reached.
    NoIds,
}

/// What a read gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Read {
    /// This many bytes were copied.
    Data(usize),
    /// Nothing yet.
    Empty,
    /// The peer closed the stream and every byte was read.
    End,
}

#[derive(Debug, Default)]
struct Stream {
    /// The wire id, until FIN has gone both ways.
    id: Option<u16>,
    /// Bytes received and not yet read.
    recv: VecDeque<u8>,
    /// Bytes the peer sent that we have not confirmed (received minus confirmed).
    in_flight: u32,
    /// Bytes the application read that we have not confirmed yet.
    read_unconfirmed: u32,
    /// Bytes we sent that the peer has not confirmed.
    sent_unconfirmed: u32,
    fin_sent: bool,
    fin_received: bool,
    /// The application let go of the stream.
    released: bool,
    /// Listed in `changed`.
    flagged: bool,
}

/// One session.
#[derive(Debug)]
pub(crate) struct Session {
    config: SessionConfig,
    ids: IdBitmap,
    streams: HashMap<StreamKey, Stream>,
    by_id: HashMap<u16, StreamKey>,
    next_key: StreamKey,
    accept_queue: VecDeque<StreamKey>,
    /// Received bytes of a frame not complete yet (at most a header and 64 KiB).
    input: Vec<u8>,
    /// Frames to send.
    output: Vec<u8>,
    /// Streams whose state changed since the last [`Session::take_changed`].
    changed: Vec<StreamKey>,
    /// Whether the peer sent PIN (a v2 peer, which wants PIN back).
    peer_pins: bool,
    /// The answer we expect to our VRM probe.
    probe: Option<(u16, u32)>,
    /// Whether the answer came.
    probe_answered: bool,
}

impl Session {
    /// A session with `config`.
    pub(crate) fn new(config: SessionConfig) -> Self {
        Self {
            config,
            ids: IdBitmap::default(),
            streams: HashMap::new(),
            by_id: HashMap::new(),
            next_key: 1,
            accept_queue: VecDeque::new(),
            input: Vec::new(),
            output: Vec::new(),
            changed: Vec::new(),
            peer_pins: false,
            probe: None,
            probe_answered: false,
        }
    }

    /// Frames waiting to be sent.
    pub(crate) fn output(&self) -> &[u8] {
        &self.output
    }

    /// Drops `n` sent bytes from the front of the output.
    pub(crate) fn consume_output(&mut self, n: usize) {
        self.output.drain(..n);
    }

    /// Whether the peer sends PIN keepalives (and so expects them).
    pub(crate) fn peer_pins(&self) -> bool {
        self.peer_pins
    }

    /// Queues a PIN keepalive.
    pub(crate) fn ping(&mut self) {
        self.push_header(Header::new(frame::PIN, 0, 0));
    }

    /// Queues a VRM probe with random values `(v1, v2)`.
    pub(crate) fn probe(&mut self, v1: u16, v2: u32) {
        self.probe = Some(frame::verify_code(v1, v2));
        self.probe_answered = false;
        self.push_header(Header::new(frame::VRM, v1, v2));
    }

    /// Whether the peer answered our VRM probe correctly.
    pub(crate) fn probe_answered(&self) -> bool {
        self.probe_answered
    }

    /// Streams whose state changed (readable, writable, closed, or a stream to
    /// accept: key 0), since the last call.
    pub(crate) fn take_changed(&mut self) -> Vec<StreamKey> {
        let changed = std::mem::take(&mut self.changed);
        for key in &changed {
            if let Some(stream) = self.streams.get_mut(key) {
                stream.flagged = false;
            }
        }
        changed
    }

    fn flag(&mut self, key: StreamKey) {
        if let Some(stream) = self.streams.get_mut(&key) {
            if !stream.flagged {
                stream.flagged = true;
                self.changed.push(key);
            }
        }
    }

    fn push_header(&mut self, header: Header) {
        self.output.extend_from_slice(&header.encode());
    }

    /// Takes received bytes: every complete frame is acted on; a partial one is kept.
    pub(crate) fn receive(&mut self, mut bytes: &[u8]) -> Result<(), Violation> {
        if !self.input.is_empty() {
            // Complete the partial frame first, then go on from `bytes`.
            let need = self.frame_len(&self.input)?.unwrap_or(frame::HEADER);
            let take = need.saturating_sub(self.input.len()).min(bytes.len());
            self.input.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            match self.frame_len(&self.input)? {
                Some(len) if self.input.len() >= len => {
                    let whole = std::mem::take(&mut self.input);
                    self.act(&whole)?;
                }
                _ => {
                    if !bytes.is_empty() {
                        // Only the header was missing: now its length is known.
                        return self.receive(bytes);
                    }
                    return Ok(());
                }
            }
        }
        while let Some(len) = self.frame_len(bytes)? {
            if bytes.len() < len {
                break;
            }
            self.act(&bytes[..len])?;
            bytes = &bytes[len..];
        }
        self.input.extend_from_slice(bytes);
        Ok(())
    }

    /// The length of the frame at the start of `bytes` (header and payload), once
    /// the header is there; a bad header fails before its payload arrives.
    fn frame_len(&self, bytes: &[u8]) -> Result<Option<usize>, Violation> {
        let Some(header) = Header::parse(bytes) else { return Ok(None) };
        match header.cmd {
            frame::PSH if header.len as usize > frame::MAX_PAYLOAD => {
                Err(Violation("PSH payload over 65536 bytes"))
            }
            frame::PSH => Ok(Some(frame::HEADER + header.len as usize)),
            frame::SYN | frame::FIN | frame::CFM | frame::VRM | frame::PIN => {
                Ok(Some(frame::HEADER))
            }
            _ => Err(Violation("unknown command")),
        }
    }

    /// Acts on one whole frame.
    fn act(&mut self, frame_bytes: &[u8]) -> Result<(), Violation> {
        let header = Header::parse(frame_bytes).expect("a whole frame has a header");
        let id = header.id;
        match header.cmd {
            frame::SYN => self.on_syn(id),
            frame::FIN => self.on_fin(id),
            frame::PSH => return self.on_push(id, &frame_bytes[frame::HEADER..]),
            frame::CFM => return self.on_confirm(id, header.len),
            frame::VRM => {
                if self.probe == Some((id, header.len)) {
                    // The answer to our own probe: never answered back.
                    self.probe = None;
                    self.probe_answered = true;
                    self.changed.push(0);
                } else {
                    let (v1, v2) = frame::verify_code(id, header.len);
                    self.push_header(Header::new(frame::VRM, v1, v2));
                }
            }
            _ => self.peer_pins = true, // PIN
        }
        Ok(())
    }

    fn on_syn(&mut self, id: u16) {
        if self.by_id.contains_key(&id) {
            // Our own open of the same id crossed it: one stream (as the seed says).
            return;
        }
        let full = self.ids.len() >= self.config.max_streams
            || self.accept_queue.len() >= self.config.accept_backlog;
        if full {
            // Refused: the peer sees its stream closed at once.
            self.push_header(Header::new(frame::FIN, id, 0));
            return;
        }
        self.ids.insert(id);
        let key = self.add_stream(id);
        self.accept_queue.push_back(key);
        self.changed.push(0);
    }

    fn on_fin(&mut self, id: u16) {
        let Some(&key) = self.by_id.get(&id) else { return };
        let stream = self.streams.get_mut(&key).expect("ids map to streams");
        stream.fin_received = true;
        self.detach(key);
        self.flag(key);
    }

    fn on_push(&mut self, id: u16, payload: &[u8]) -> Result<(), Violation> {
        let window = self.config.window;
        let Some(&key) = self.by_id.get(&id) else { return Ok(()) };
        let stream = self.streams.get_mut(&key).expect("ids map to streams");
        if stream.released || stream.fin_received {
            return Ok(()); // late data for a stream we closed: dropped
        }
        let len = payload.len() as u32;
        if stream.in_flight.saturating_add(len) > window {
            return Err(Violation("PSH beyond the stream's window"));
        }
        stream.in_flight += len;
        stream.recv.extend(payload);
        self.flag(key);
        Ok(())
    }

    fn on_confirm(&mut self, id: u16, count: u32) -> Result<(), Violation> {
        let Some(&key) = self.by_id.get(&id) else { return Ok(()) };
        let stream = self.streams.get_mut(&key).expect("ids map to streams");
        if count > stream.sent_unconfirmed {
            return Err(Violation("CFM for more than was sent"));
        }
        stream.sent_unconfirmed -= count;
        self.flag(key);
        Ok(())
    }

    fn add_stream(&mut self, id: u16) -> StreamKey {
        let key = self.next_key;
        self.next_key += 1;
        self.streams.insert(key, Stream { id: Some(id), ..Stream::default() });
        self.by_id.insert(id, key);
        key
    }

    /// Once FIN went both ways the id is free again; the stream lives on (for its
    /// unread bytes) until the application lets go of it.
    fn detach(&mut self, key: StreamKey) {
        let Some(stream) = self.streams.get_mut(&key) else { return };
        if !(stream.fin_sent && stream.fin_received) {
            return;
        }
        if let Some(id) = stream.id.take() {
            self.by_id.remove(&id);
            self.ids.remove(id);
        }
        if stream.released {
            self.streams.remove(&key);
        }
    }

    /// Opens a stream: SYN goes out.
    pub(crate) fn open(&mut self) -> Result<StreamKey, StreamError> {
        if self.ids.len() >= self.config.max_streams {
            return Err(StreamError::NoIds);
        }
        let id = self.ids.allocate().ok_or(StreamError::NoIds)?;
        let key = self.add_stream(id);
        self.push_header(Header::new(frame::SYN, id, 0));
        Ok(key)
    }

    /// A stream the peer opened, if one waits.
    pub(crate) fn accept(&mut self) -> Option<StreamKey> {
        self.accept_queue.pop_front()
    }

    /// Whether a stream waits to be accepted.
    pub(crate) fn can_accept(&self) -> bool {
        !self.accept_queue.is_empty()
    }

    /// The wire id of a stream, while it has one.
    pub(crate) fn stream_id(&self, key: StreamKey) -> Option<u16> {
        self.streams.get(&key).and_then(|s| s.id)
    }

    /// Sends what the stream's window allows of `data`, in frames of at most 64 KiB;
    /// returns how much (0: the window is closed, wait for CFM).
    pub(crate) fn write(&mut self, key: StreamKey, data: &[u8]) -> Result<usize, StreamError> {
        let window = self.config.window;
        let stream = self.streams.get_mut(&key).ok_or(StreamError::Unknown)?;
        let id = match stream.id {
            Some(id) if !stream.fin_sent => id,
            _ => return Err(StreamError::Closed),
        };
        let room = window.saturating_sub(stream.sent_unconfirmed) as usize;
        let n = room.min(data.len());
        stream.sent_unconfirmed += n as u32;
        for chunk in data[..n].chunks(frame::MAX_PAYLOAD) {
            self.output
                .extend_from_slice(&Header::new(frame::PSH, id, chunk.len() as u32).encode());
            self.output.extend_from_slice(chunk);
        }
        Ok(n)
    }

    /// How many bytes the stream's window lets us send now.
    pub(crate) fn send_room(&self, key: StreamKey) -> usize {
        self.streams
            .get(&key)
            .filter(|s| s.id.is_some() && !s.fin_sent)
            .map_or(0, |s| self.config.window.saturating_sub(s.sent_unconfirmed) as usize)
    }

    /// Copies received bytes into `buf`; `peek` leaves them. Reading confirms bytes to
    /// the peer once half a window has been read (as the Go library does).
    pub(crate) fn read(
        &mut self,
        key: StreamKey,
        buf: &mut [u8],
        peek: bool,
    ) -> Result<Read, StreamError> {
        let half_window = self.config.window / 2;
        let stream = self.streams.get_mut(&key).ok_or(StreamError::Unknown)?;
        if stream.recv.is_empty() {
            return Ok(if stream.fin_received { Read::End } else { Read::Empty });
        }
        let n = stream.recv.len().min(buf.len());
        let (a, b) = stream.recv.as_slices();
        let from_a = n.min(a.len());
        buf[..from_a].copy_from_slice(&a[..from_a]);
        buf[from_a..n].copy_from_slice(&b[..n - from_a]);
        if !peek {
            stream.recv.drain(..n);
            stream.read_unconfirmed += n as u32;
            // Nothing more comes after the peer's FIN: nothing to confirm then.
            if stream.read_unconfirmed >= half_window && !stream.fin_received {
                if let Some(id) = stream.id {
                    let count = stream.read_unconfirmed;
                    stream.in_flight -= count;
                    stream.read_unconfirmed = 0;
                    self.push_header(Header::new(frame::CFM, id, count));
                }
            }
        }
        Ok(Read::Data(n))
    }

    /// Whether a read would return at once (bytes, or the end).
    pub(crate) fn readable(&self, key: StreamKey) -> bool {
        self.streams.get(&key).is_none_or(|s| !s.recv.is_empty() || s.fin_received)
    }

    /// Whether the peer closed the stream.
    pub(crate) fn peer_closed(&self, key: StreamKey) -> bool {
        self.streams.get(&key).is_none_or(|s| s.fin_received)
    }

    /// Ends our sending side of the stream: FIN goes out; reading goes on until the
    /// peer's FIN.
    pub(crate) fn finish(&mut self, key: StreamKey) {
        let Some(stream) = self.streams.get_mut(&key) else { return };
        if stream.fin_sent {
            return;
        }
        stream.fin_sent = true;
        if let Some(id) = stream.id {
            self.push_header(Header::new(frame::FIN, id, 0));
        }
        self.detach(key);
    }

    /// Ends our sending side of every stream (the session is closing).
    pub(crate) fn finish_all(&mut self) {
        let keys: Vec<StreamKey> = self.streams.keys().copied().collect();
        for key in keys {
            self.finish(key);
        }
    }

    /// The application lets go of the stream: FIN if not sent, unread bytes dropped;
    /// the id is freed once the peer's FIN is in.
    pub(crate) fn release(&mut self, key: StreamKey) {
        self.finish(key);
        self.accept_queue.retain(|k| *k != key);
        let Some(stream) = self.streams.get_mut(&key) else { return };
        stream.released = true;
        stream.recv = VecDeque::new();
        if stream.id.is_none() {
            self.streams.remove(&key);
        }
    }

    /// Streams the application holds or that wait for the peer's FIN.
    pub(crate) fn stream_count(&self) -> usize {
        self.streams.len()
    }

    /// Ids in use.
    #[cfg(test)]
    pub(crate) fn ids_in_use(&self) -> usize {
        self.ids.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Moves `from`'s output into `to`.
    fn pump(from: &mut Session, to: &mut Session) -> Result<(), Violation> {
        let bytes = from.output().to_vec();
        from.consume_output(bytes.len());
        to.receive(&bytes)
    }

    fn pair() -> (Session, Session) {
        (Session::new(SessionConfig::default()), Session::new(SessionConfig::default()))
    }

    fn read_all(session: &mut Session, key: StreamKey) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 1000];
        while let Ok(Read::Data(n)) = session.read(key, &mut buf, false) {
            out.extend_from_slice(&buf[..n]);
        }
        out
    }

    #[test]
    fn open_write_read_close_both_ways() {
        let (mut a, mut b) = pair();
        let sa = a.open().expect("open");
        assert_eq!(a.output()[..3], [frame::SYN, 1, 0], "v1-style first id is 1");
        assert_eq!(a.write(sa, b"hello").expect("write"), 5);
        pump(&mut a, &mut b).expect("valid");
        let sb = b.accept().expect("a stream to accept");
        assert_eq!(read_all(&mut b, sb), b"hello");
        b.write(sb, b"world").expect("write");
        pump(&mut b, &mut a).expect("valid");
        assert_eq!(read_all(&mut a, sa), b"world");
        a.release(sa);
        pump(&mut a, &mut b).expect("valid");
        assert_eq!(b.read(sb, &mut [0; 4], false), Ok(Read::End));
        assert_eq!(a.ids_in_use(), 1, "the id waits for the peer's FIN");
        b.release(sb);
        assert_eq!((b.ids_in_use(), b.stream_count()), (0, 0), "passive side recycles too");
        pump(&mut b, &mut a).expect("the FIN answer");
        assert_eq!((a.ids_in_use(), a.stream_count()), (0, 0), "id recycled after FIN both ways");
        assert!(a.output().is_empty() && b.output().is_empty(), "one FIN each way");
    }

    #[test]
    fn half_close_lets_the_peer_answer() {
        let (mut a, mut b) = pair();
        let sa = a.open().expect("open");
        a.write(sa, b"question").expect("write");
        a.finish(sa);
        assert_eq!(a.write(sa, b"more"), Err(StreamError::Closed));
        pump(&mut a, &mut b).expect("valid");
        let sb = b.accept().expect("stream");
        assert_eq!(read_all(&mut b, sb), b"question");
        assert_eq!(b.read(sb, &mut [0; 4], false), Ok(Read::End));
        b.write(sb, b"answer").expect("the peer may still send");
        b.release(sb);
        pump(&mut b, &mut a).expect("valid");
        assert_eq!(read_all(&mut a, sa), b"answer");
        assert_eq!(a.read(sa, &mut [0; 4], false), Ok(Read::End));
        a.release(sa);
        assert_eq!((a.stream_count(), b.stream_count()), (0, 0));
    }

    #[test]
    fn the_window_stops_the_sender_until_the_reader_confirms() {
        let (mut a, mut b) = pair();
        let sa = a.open().expect("open");
        let big = vec![7u8; 600 * 1024];
        assert_eq!(a.write(sa, &big).expect("write"), 512 * 1024);
        assert_eq!(a.write(sa, &big).expect("write"), 0, "window closed");
        // The SYN, then frames of at most 64 KiB.
        assert_eq!(a.output().len(), frame::HEADER + 512 * 1024 + 8 * frame::HEADER);
        pump(&mut a, &mut b).expect("within the window");
        let sb = b.accept().expect("stream");
        let mut buf = vec![0u8; 300 * 1024];
        assert_eq!(b.read(sb, &mut buf, false), Ok(Read::Data(300 * 1024)));
        assert_eq!(
            b.output(),
            Header::new(frame::CFM, 1, 300 * 1024).encode(),
            "CFM after half a window"
        );
        pump(&mut b, &mut a).expect("valid");
        assert_eq!(a.send_room(sa), 300 * 1024);
    }

    #[test]
    fn bad_input_fails_the_session_without_allocating() {
        let (mut a, mut b) = pair();
        // A PSH length of 4 GiB is refused from its header alone.
        assert!(b.receive(&Header::new(frame::PSH, 1, 0xFFFF_FFF0).encode()).is_err());
        let (_, mut b) = pair();
        assert_eq!(b.receive(&[0xEE, 0, 0, 0, 0, 0, 0]), Err(Violation("unknown command")));
        // PSH beyond the window.
        let (_, mut b) = pair();
        b.receive(&Header::new(frame::SYN, 5, 0).encode()).expect("syn");
        let chunk = [Header::new(frame::PSH, 5, 65536).encode().to_vec(), vec![0; 65536]].concat();
        for _ in 0..8 {
            b.receive(&chunk).expect("within the window");
        }
        assert_eq!(b.receive(&chunk), Err(Violation("PSH beyond the stream's window")));
        // Over-confirming CFM.
        let sa = a.open().expect("open");
        a.write(sa, b"abc").expect("write");
        assert_eq!(
            a.receive(&Header::new(frame::CFM, 1, 4).encode()),
            Err(Violation("CFM for more than was sent"))
        );
    }

    #[test]
    fn unknown_ids_are_ignored_and_syn_floods_are_refused() {
        let mut b = Session::new(SessionConfig { accept_backlog: 2, ..SessionConfig::default() });
        b.receive(&[Header::new(frame::PSH, 9, 2).encode().to_vec(), vec![1, 2]].concat())
            .expect("dropped");
        b.receive(&Header::new(frame::CFM, 9, 100).encode()).expect("ignored");
        b.receive(&Header::new(frame::FIN, 9, 0).encode()).expect("ignored");
        assert!(b.output().is_empty());
        for id in [1u16, 2, 3] {
            b.receive(&Header::new(frame::SYN, id, 0).encode()).expect("syn");
        }
        assert_eq!(b.output(), Header::new(frame::FIN, 3, 0).encode(), "the third is refused");
    }

    #[test]
    fn simultaneous_open_and_close() {
        let (mut a, mut b) = pair();
        let sa = a.open().expect("open");
        let sb = b.open().expect("open");
        pump(&mut a, &mut b).expect("valid");
        pump(&mut b, &mut a).expect("valid");
        assert!(a.accept().is_none() && b.accept().is_none(), "one stream, no accept");
        a.write(sa, b"x").expect("write");
        pump(&mut a, &mut b).expect("valid");
        assert_eq!(read_all(&mut b, sb), b"x");
        a.release(sa);
        b.release(sb);
        pump(&mut a, &mut b).expect("valid");
        pump(&mut b, &mut a).expect("valid");
        assert!(a.output().is_empty() && b.output().is_empty(), "exactly one FIN each way");
        assert_eq!((a.ids_in_use(), b.ids_in_use()), (0, 0));
    }

    #[test]
    fn vrm_probes_are_answered_but_answers_are_not() {
        let (mut a, mut b) = pair();
        a.probe(0x1234, 0x1122_3344);
        pump(&mut a, &mut b).expect("valid");
        assert_eq!(b.output(), Header::new(frame::VRM, 0x3420, 0x1144_2233).encode());
        pump(&mut b, &mut a).expect("valid");
        assert!(a.probe_answered());
        assert!(a.output().is_empty(), "no answer to the answer");
    }

    #[test]
    fn changes_are_reported_once_per_stream() {
        let (mut a, mut b) = pair();
        let sa = a.open().expect("open");
        assert_eq!(a.stream_id(sa), Some(1));
        a.write(sa, b"1").expect("write");
        a.write(sa, b"2").expect("write");
        pump(&mut a, &mut b).expect("valid");
        assert!(b.can_accept());
        let sb = b.accept().expect("stream");
        // Key 0 stands for "a stream to accept"; the stream itself is listed once.
        assert_eq!(b.take_changed(), vec![0, sb]);
        assert!(b.take_changed().is_empty());
        assert!(b.readable(sb) && !b.peer_closed(sb));
        assert_eq!(read_all(&mut b, sb), b"12");
        assert!(!b.readable(sb));
        a.release(sa);
        pump(&mut a, &mut b).expect("valid");
        assert_eq!(b.take_changed(), vec![sb]);
        assert!(b.readable(sb) && b.peer_closed(sb));
        assert_eq!(b.stream_id(sb), Some(1), "the id is held until b's FIN too");
        b.finish(sb);
        assert_eq!(b.stream_id(sb), None, "the id is free once FIN went both ways");
    }

    #[test]
    fn frames_split_anywhere_are_put_back_together() {
        let (mut a, mut b) = pair();
        let sa = a.open().expect("open");
        a.write(sa, &[5u8; 70_000]).expect("write");
        a.ping();
        let bytes = a.output().to_vec();
        for piece in bytes.chunks(3) {
            b.receive(piece).expect("valid");
        }
        let sb = b.accept().expect("stream");
        assert_eq!(read_all(&mut b, sb), vec![5u8; 70_000]);
        assert!(b.peer_pins());
    }

    /// One step of the property test below.
    #[derive(Debug, Clone)]
    enum Op {
        Open,
        Write { from_a: bool, stream: usize, len: usize },
        Read { at_a: bool, stream: usize, size: usize },
        Close { at_a: bool, stream: usize },
        Pump { from_a: bool, bytes: usize },
    }

    fn op_strategy() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            1 => Just(Op::Open),
            4 => (any::<bool>(), 0usize..8, 0usize..200_000).prop_map(|(from_a, stream, len)| Op::Write { from_a, stream, len }),
            4 => (any::<bool>(), 0usize..8, 1usize..300_000).prop_map(|(at_a, stream, size)| Op::Read { at_a, stream, size }),
            1 => (any::<bool>(), 0usize..8).prop_map(|(at_a, stream)| Op::Close { at_a, stream }),
            4 => (any::<bool>(), 0usize..300_000).prop_map(|(from_a, bytes)| Op::Pump { from_a, bytes }),
        ]
    }

    /// Both ends of one stream, as the test's model sees them.
    #[derive(Debug, Default)]
    struct Model {
        key: [Option<StreamKey>; 2],
        written: [Vec<u8>; 2],
        read: [Vec<u8>; 2],
        released: [bool; 2],
    }

    /// Bytes that say which stream and offset they are, so misdelivery shows.
    fn pattern(stream: usize, side: usize, from: usize, len: usize) -> Vec<u8> {
        (from..from + len)
            .map(|i| (i as u8) ^ ((stream * 2 + side) as u8).wrapping_mul(37))
            .collect()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Random interleavings of opens, writes, reads, closes and partial transfers
        /// between two sessions deliver every byte exactly once, in order, per stream.
        #[test]
        fn every_byte_arrives_once_in_order(ops in proptest::collection::vec(op_strategy(), 1..80)) {
            let mut ends = [Session::new(SessionConfig::default()), Session::new(SessionConfig::default())];
            let mut streams: Vec<Model> = Vec::new();
            let mut buf = vec![0u8; 300_000];
            let bind_accepted = |ends: &mut [Session; 2], streams: &mut Vec<Model>| {
                while let Some(key) = ends[1].accept() {
                    let model = streams.iter_mut().find(|m| m.key[1].is_none()).expect("opened by A");
                    model.key[1] = Some(key);
                }
            };
            let pump = |ends: &mut [Session; 2], from: usize, bytes: usize| {
                let n = bytes.min(ends[from].output().len());
                let chunk = ends[from].output()[..n].to_vec();
                ends[from].consume_output(n);
                ends[1 - from].receive(&chunk).expect("a valid peer never violates");
            };
            for op in ops {
                match op {
                    Op::Open => {
                        let key = ends[0].open().expect("ids left");
                        streams.push(Model { key: [Some(key), None], ..Model::default() });
                    }
                    Op::Write { from_a, stream, len } => {
                        let side = usize::from(!from_a);
                        let Some(model) = streams.get_mut(stream) else { continue };
                        let Some(key) = model.key[side].filter(|_| !model.released[side]) else { continue };
                        let data = pattern(stream, side, model.written[side].len(), len);
                        if let Ok(n) = ends[side].write(key, &data) {
                            model.written[side].extend_from_slice(&data[..n]);
                        }
                    }
                    Op::Read { at_a, stream, size } => {
                        let side = usize::from(!at_a);
                        let Some(model) = streams.get_mut(stream) else { continue };
                        let Some(key) = model.key[side].filter(|_| !model.released[side]) else { continue };
                        if let Ok(Read::Data(n)) = ends[side].read(key, &mut buf[..size], false) {
                            model.read[side].extend_from_slice(&buf[..n]);
                        }
                    }
                    Op::Close { at_a, stream } => {
                        let side = usize::from(!at_a);
                        let Some(model) = streams.get_mut(stream) else { continue };
                        let Some(key) = model.key[side].filter(|_| !model.released[side]) else { continue };
                        ends[side].release(key);
                        model.released[side] = true;
                    }
                    Op::Pump { from_a, bytes } => {
                        pump(&mut ends, usize::from(!from_a), bytes);
                        bind_accepted(&mut ends, &mut streams);
                    }
                }
            }
            // Drain: move everything, read everything, until nothing moves.
            loop {
                let moved = ends[0].output().len() + ends[1].output().len();
                pump(&mut ends, 0, usize::MAX);
                pump(&mut ends, 1, usize::MAX);
                bind_accepted(&mut ends, &mut streams);
                for model in streams.iter_mut() {
                    for side in [0, 1] {
                        let Some(key) = model.key[side].filter(|_| !model.released[side]) else { continue };
                        while let Ok(Read::Data(n)) = ends[side].read(key, &mut buf, false) {
                            model.read[side].extend_from_slice(&buf[..n]);
                        }
                    }
                }
                if moved == 0 && ends[0].output().is_empty() && ends[1].output().is_empty() {
                    break;
                }
            }
            for (i, model) in streams.iter().enumerate() {
                for reader in [0, 1] {
                    let written = &model.written[1 - reader];
                    let read = &model.read[reader];
                    proptest::prop_assert!(written.starts_with(read), "stream {} side {}: misdelivered", i, reader);
                    if !model.released[reader] && model.key[reader].is_some() {
                        proptest::prop_assert_eq!(read.len(), written.len(), "stream {} side {}: bytes lost", i, reader);
                    }
                }
            }
        }
    }
}
