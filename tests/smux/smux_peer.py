"""An independent smux peer in pure Python (standard library only), for interop tests.

Written from the wire notes (../shared/smux-wire.md, "what the Go library yddeng/smux
speaks"), not from xsocket's src/smux: the point is a second implementation that only
agrees with xsocket where the wire format says so.

Wire format (all integers little-endian), one 7-byte header per frame::

    cmd u8 | id u16 | length u32 | payload (PSH only, `length` bytes)

    SYN 0  open stream `id`            FIN 1  close stream `id`
    PSH 2  `length` bytes of data      CFM 3  the reader consumed `length` bytes
    VRM 4  probe (id, length random); answered with VRM verifyCode(id, length)
    PIN 5  keepalive (Go v2 only; a v1 peer treats it as an unknown command)

- Streams: ids from 1 upwards for the side that opens (one id space for both sides;
  a received SYN marks its id as used). A SYN for an id already open is ignored, so
  two sides opening the same id at once share one stream and neither accepts it.
- Flow control: each stream has a window of 512 KiB each way. A sender keeps at most
  ``window - unconfirmed`` bytes in flight and cuts PSH frames at 65536 bytes. The
  reader sends ``CFM(id, n)`` once the application has read ``n >= window/2`` bytes.
- Close: FIN. The side that gets a FIN for an open stream answers with its own FIN at
  once (Go style, ``answer_fin=True``); with ``answer_fin=False`` the stream stays
  half-open until the application closes it. An id is free again once both FINs
  have passed.
- ``Session(sock)`` works over any connected blocking stream socket (TCP, Unix) or
  a ``TLSConnection`` on one: a reader thread parses frames, writers share one
  lock (as Go's: the read loop's FIN and VRM answers wait for it too).

This peer is also a checker: everything the other side does that the notes forbid
(PSH beyond the window or over 65536 bytes, CFM for more than was sent, PSH or CFM
after its FIN, a second FIN, frames of unknown commands, answering the answer to
its own VRM probe, ...) lands in ``Session.violations``; tests assert it stays empty.

API::

    s = Session(sock)                 # starts the reader thread
    st = s.open()                     # SYN; st.id
    st.write(b"...")                  # blocks on the window (bounded by timeout)
    st.read(65536, timeout=5)         # b"" at end of stream
    st.close_write()                  # FIN, keep reading (half-close)
    st.close()                        # FIN, drop what still comes (Go's Close)
    st2 = s.accept(timeout=5)         # a stream the peer opened, or None
    s.probe(timeout=1)                # VRM: True iff the answer is right
    s.send_pin(); s.close()
"""

import os
import socket
import ssl
import struct
import threading
import time

SYN, FIN, PSH, CFM, VRM, PIN = range(6)
CMD_NAMES = {SYN: "SYN", FIN: "FIN", PSH: "PSH", CFM: "CFM", VRM: "VRM", PIN: "PIN"}
HEADER = struct.Struct("<BHI")
WINDOW = 512 * 1024
MAX_FRAME = 64 * 1024
DEFAULT_TIMEOUT = 10.0


def verify_code(v1, v2):
    """The answer to ``VRM v1 v2`` exactly as the Go code computes it (its shift by 16
    of a 16-bit value is 0, so the low nibble of the first value is always 0)."""
    v11 = (((v1 & 0xFF) << 8) | ((v1 & 0xF00) >> 4)) & 0xFFFF
    v22 = ((v2 & 0xFF000000) | ((v2 & 0xFF0000) >> 8) | ((v2 & 0xFF00) >> 8)
           | ((v2 & 0xFF) << 16)) & 0xFFFFFFFF
    return v11, v22


def header(cmd, sid, length=0):
    """The 7 header bytes of one frame."""
    return HEADER.pack(cmd & 0xFF, sid & 0xFFFF, length & 0xFFFFFFFF)


def frame(cmd, sid, payload=b"", length=None):
    """A whole frame; ``length`` defaults to the payload's."""
    return header(cmd, sid, len(payload) if length is None else length) + payload


def recv_exact(sock, n):
    """``n`` bytes from a raw socket, or what came before EOF."""
    parts, have = [], 0
    while have < n:
        chunk = sock.recv(n - have)
        if not chunk:
            break
        parts.append(chunk)
        have += len(chunk)
    return b"".join(parts)


def is_smux(sock, timeout=2.0):
    """Go's ``IsSmux`` on a raw connected socket with no session on it: send one VRM,
    read exactly one header back, compare with verifyCode."""
    v1 = int.from_bytes(os.urandom(2), "little") % 65535
    v2 = int.from_bytes(os.urandom(4), "little")
    old = sock.gettimeout()
    sock.settimeout(timeout)
    try:
        sock.sendall(header(VRM, v1, v2))
        data = recv_exact(sock, 7)
    except socket.timeout:
        return False
    finally:
        sock.settimeout(old)
    if len(data) != 7:
        return False
    return HEADER.unpack(data) == (VRM, *verify_code(v1, v2))


class Stream:
    """One stream of a ``Session``. Thread-safe enough for one reader and one writer."""

    def __init__(self, session, sid):
        self.session = session
        self.id = sid
        self._buf = bytearray()
        self.peer_fin = False       # the peer's FIN arrived
        self.fin_was_answer = False  # ... after our FIN went out (the peer had it then)
        self.local_fin = False      # our FIN went out
        self.closed = False         # close(): incoming data is dropped
        self.released = False       # both FINs passed; the id is free
        self.unconfirmed = 0        # bytes we sent that the peer has not confirmed
        self.recv_pending = 0       # bytes received minus bytes we confirmed
        self.read_count = 0         # bytes read since our last CFM
        self.bytes_in = 0
        self.bytes_out = 0
        self.cfm_in = 0             # CFM frames received
        self.cfm_out = 0
        self.confirmed_in = 0       # bytes the peer confirmed
        self.confirmed_out = 0      # bytes we confirmed

    def __repr__(self):
        return (f"<Stream id={self.id} in={self.bytes_in} out={self.bytes_out} "
                f"peer_fin={self.peer_fin} local_fin={self.local_fin}>")

    # --- reading ---

    def read(self, n=65536, timeout=DEFAULT_TIMEOUT):
        """Up to ``n`` bytes; ``b""`` at the end (the peer's FIN, all data read).
        Raises ``TimeoutError`` after ``timeout`` seconds, ``ConnectionResetError``
        when the session ended without this stream's FIN."""
        s = self.session
        deadline = time.monotonic() + timeout
        with s._cond:
            while not self._buf:
                if self.peer_fin or self.closed:
                    return b""
                if s.dead:
                    raise ConnectionResetError(f"smux session ended: {s.dead}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"stream {self.id}: nothing to read in {timeout} s")
                s._cond.wait(left)
            data = bytes(self._buf[:n])
            del self._buf[:n]
            self.read_count += len(data)
            cfm = 0
            if self.read_count >= s.cfm_threshold and not self.closed and not s.dead:
                cfm, self.read_count = self.read_count, 0
        if cfm:
            s._send_cfm(self, cfm)
        return data

    def read_exact(self, n, timeout=DEFAULT_TIMEOUT):
        """Exactly ``n`` bytes (fewer only at the end of the stream); ``timeout`` bounds
        the whole call."""
        deadline = time.monotonic() + timeout
        parts, have = [], 0
        while have < n:
            chunk = self.read(min(n - have, 1 << 20), max(deadline - time.monotonic(), 0.001))
            if not chunk:
                break
            parts.append(chunk)
            have += len(chunk)
        return b"".join(parts)

    def read_all(self, timeout=DEFAULT_TIMEOUT):
        """Everything up to the end of the stream; ``timeout`` bounds the whole call."""
        deadline = time.monotonic() + timeout
        parts = []
        while True:
            chunk = self.read(1 << 20, max(deadline - time.monotonic(), 0.001))
            if not chunk:
                return b"".join(parts)
            parts.append(chunk)

    def available(self):
        with self.session._cond:
            return len(self._buf)

    # --- writing ---

    def write(self, data, timeout=DEFAULT_TIMEOUT):
        """Send all of ``data`` in PSH frames of at most 65536 bytes, never more than
        the window allows; ``timeout`` bounds each wait for a CFM."""
        s = self.session
        view = memoryview(bytes(data))
        while view:
            with s._cond:
                deadline = time.monotonic() + timeout
                while True:
                    if self.local_fin:
                        raise BrokenPipeError(f"stream {self.id}: closed for writing")
                    if s.dead:
                        raise ConnectionResetError(f"smux session ended: {s.dead}")
                    room = s.window - self.unconfirmed
                    if room > 0:
                        break
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError(f"stream {self.id}: window closed for {timeout} s")
                    s._cond.wait(left)
                n = min(len(view), room, MAX_FRAME)
                self.unconfirmed += n
            with s._wlock:
                if self.local_fin:
                    raise BrokenPipeError(f"stream {self.id}: closed for writing")
                s._sendall(header(PSH, self.id, n) + view[:n].tobytes())
            self.bytes_out += n
            view = view[n:]

    # --- closing ---

    def close_write(self):
        """Send FIN but keep receiving (xsocket's half-close)."""
        self._fin(drop_input=False)

    def close(self):
        """Go's ``Close``: send FIN (unless the stream is done) and drop further data."""
        self._fin(drop_input=True)

    def _fin(self, drop_input):
        s = self.session
        with s._wlock:
            with s._cond:
                if drop_input:
                    self.closed = True
                    self._buf.clear()
                    s._cond.notify_all()
                if self.local_fin or s.dead:
                    return
                self.local_fin = True
                # Counted before it goes out: a test may see the stream released
                # (and the peer act on the FIN) before _sendall returns.
                s.fins_out += 1
                if self.peer_fin:
                    s._release(self)
            s._sendall(header(FIN, self.id))


class Session:
    """An smux session over ``sock`` (connected, blocking).

    Options: ``version`` 2 (PIN understood) or 1 (PIN is an unknown command: the
    reader stops and, as Go v1 does, leaves the connection open); ``answer_fin``
    (Go: answer a FIN at once); ``window``; ``cfm_threshold`` (default window/2);
    ``enforce`` (close the connection on a window or frame-size violation, as
    xsocket does; False only records it); ``answer_vrm`` (Go: answer every VRM that
    is not the answer to our own probe) and ``vrm_answer`` (a function (id, len) ->
    (id, len) to answer with instead of verifyCode, or None not to answer); ``send_timeout`` (SO_SNDTIMEO
    on the socket, so no write can hang); ``start`` (False: start the reader later
    with ``start()``).
    """

    def __init__(self, sock, *, version=2, answer_fin=True, window=WINDOW, cfm_threshold=None,
                 enforce=True, answer_vrm=True, vrm_answer=None, send_timeout=20.0,
                 accept_backlog=1024, start=True):
        self.sock = sock
        self.version = version
        self.answer_fin = answer_fin
        self.window = window
        self.cfm_threshold = cfm_threshold or window // 2
        self.enforce = enforce
        self.answer_vrm = answer_vrm
        self.vrm_answer = vrm_answer
        self.accept_backlog = accept_backlog
        self._cond = threading.Condition()
        self._wlock = threading.Lock()
        self.streams = {}            # id -> Stream (open, or waiting for the peer's FIN)
        self._used = set()           # ids in use (ours and the peer's)
        self._next = 1
        self._accept = []
        self._finished = {}          # id the peer FINed -> whether that FIN answered ours
        self._probes = {}            # (id, length) expected -> event
        self.dead = None             # why the session ended (str), None while it runs
        self.eof = False             # the peer closed the connection (read 0)
        self.violations = []
        self.control = []            # (monotonic time, cmd, id, length) of every non-PSH frame
        self.pins_in = 0
        self.vrm_in = 0
        self.vrm_answered = 0
        self.probe_answers = 0
        self.dup_syns = 0
        self.late_psh = 0
        self.late_cfm = 0            # CFMs after the peer's FIN (fine while it reads on)
        self.fins_out = 0
        self.unknown_cmd = None
        self.reader_stopped = threading.Event()
        self._pinger = None
        if send_timeout:
            raw = sock
            tv = struct.pack("@ll", int(send_timeout), int((send_timeout % 1) * 1e6))
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)
        self._thread = threading.Thread(target=self._reader, daemon=True, name="smux-peer-reader")
        if start:
            self.start()

    def start(self):
        self._thread.start()

    # --- public calls ---

    def open(self):
        """Open a stream with the next free id (from 1 upwards) and send its SYN."""
        with self._cond:
            if self.dead:
                raise ConnectionResetError(f"smux session ended: {self.dead}")
            sid = self._next
            for _ in range(65536):
                if sid not in self._used and sid != 0:
                    break
                sid = (sid + 1) & 0xFFFF
            else:
                raise OSError("no free stream id")
            self._next = (sid + 1) & 0xFFFF or 1
            self._used.add(sid)
            self._finished.pop(sid, None)
            stream = self.streams[sid] = Stream(self, sid)
        self.send_frame(SYN, sid)
        return stream

    def open_id(self, sid):
        """Open a stream with a chosen id (even one the peer uses: for tests)."""
        with self._cond:
            self._used.add(sid)
            self._finished.pop(sid, None)
            stream = self.streams.setdefault(sid, Stream(self, sid))
        self.send_frame(SYN, sid)
        return stream

    def accept(self, timeout=DEFAULT_TIMEOUT):
        """The next stream the peer opened, or None after ``timeout`` seconds or once
        the session has ended."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._accept:
                left = deadline - time.monotonic()
                if self.dead or left <= 0:
                    return None
                self._cond.wait(left)
            return self._accept.pop(0)

    def probe(self, timeout=2.0, v1=None, v2=None):
        """Send VRM with random values; True iff the right answer comes in time. The
        answer is not answered again."""
        v1 = int.from_bytes(os.urandom(2), "little") % 65535 if v1 is None else v1
        v2 = int.from_bytes(os.urandom(4), "little") if v2 is None else v2
        expect = verify_code(v1, v2)
        event = threading.Event()
        with self._cond:
            self._probes[expect] = event
        try:
            self.send_frame(VRM, v1, v2)
            return event.wait(timeout)
        finally:
            with self._cond:
                self._probes.pop(expect, None)

    def send_pin(self):
        self.send_frame(PIN, 0, 0)

    def start_pinger(self, interval):
        """Send PIN every ``interval`` seconds until the session ends."""
        stop = threading.Event()

        def run():
            while not stop.wait(interval) and not self.dead:
                try:
                    self.send_pin()
                except OSError:
                    return
        self._pinger = (stop, threading.Thread(target=run, daemon=True))
        self._pinger[1].start()

    def send_frame(self, cmd, sid, length=0, payload=b""):
        """One frame as given (no checks): for tests that break the rules."""
        with self._wlock:
            self._sendall(header(cmd, sid, length) + payload)

    def send_raw(self, data):
        with self._wlock:
            self._sendall(data)

    def count(self, cmd):
        """How many frames of ``cmd`` (not PSH) came so far."""
        with self._cond:
            return sum(1 for _, c, _, _ in self.control if c == cmd)

    def wait_for(self, predicate, timeout=DEFAULT_TIMEOUT):
        """Wait until ``predicate()`` (called under the session lock) is true."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.1))
            return True

    def wait_closed(self, timeout=DEFAULT_TIMEOUT):
        """True once the reader has stopped (the peer closed the connection, or an error)."""
        return self.reader_stopped.wait(timeout)

    def close(self):
        """End the session as Go does: no FIN frames, just close the connection."""
        if self._pinger:
            self._pinger[0].set()
        with self._cond:
            if not self.dead:
                self.dead = "closed locally"
            self._cond.notify_all()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(5)
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- internals ---

    def _sendall(self, data):
        try:
            self.sock.sendall(data)
        except OSError as exc:
            self._die(f"send failed: {exc!r}")
            raise ConnectionResetError(f"smux send failed: {exc}") from exc

    def _send_cfm(self, stream, n):
        with self._wlock:
            with self._cond:
                if stream.closed or self.dead:
                    return
                stream.recv_pending -= n
                stream.cfm_out += 1
                stream.confirmed_out += n
            try:
                self._sendall(header(CFM, stream.id, n))
            except OSError:
                pass

    def _release(self, stream):
        """Both FINs passed (call with _cond held)."""
        stream.released = True
        if self.streams.get(stream.id) is stream:
            del self.streams[stream.id]
            self._used.discard(stream.id)

    def _violation(self, text):
        with self._cond:
            self.violations.append(text)

    def _die(self, why):
        with self._cond:
            if not self.dead:
                self.dead = why
            self._cond.notify_all()

    def _recv_exact(self, n):
        parts, have = [], 0
        while have < n:
            chunk = self.sock.recv(min(n - have, 1 << 20))
            if not chunk:
                return None
            parts.append(chunk)
            have += len(chunk)
        return b"".join(parts)

    def _reader(self):
        try:
            self._read_loop()
        except OSError as exc:
            self._die(f"read failed: {exc!r}")
        finally:
            self.reader_stopped.set()

    def _read_loop(self):
        while True:
            head = self._recv_exact(HEADER.size)
            if head is None:
                with self._cond:
                    self.eof = True
                self._die("connection closed by the peer")
                return
            cmd, sid, length = HEADER.unpack(head)
            if cmd != PSH:
                with self._cond:
                    self.control.append((time.monotonic(), cmd, sid, length))
            if cmd == PSH:
                if not self._on_psh(sid, length):
                    return
            elif cmd == SYN:
                self._on_syn(sid, length)
            elif cmd == FIN:
                self._on_fin(sid, length)
            elif cmd == CFM:
                self._on_cfm(sid, length)
            elif cmd == VRM:
                self._on_vrm(sid, length)
            elif cmd == PIN and self.version >= 2:
                if sid or length:
                    self._violation(f"PIN with id {sid} length {length} (senders write 0 0)")
                with self._cond:
                    self.pins_in += 1
                    self._cond.notify_all()
            else:
                # Go v1 stops reading and leaves the connection open; v2 closes it.
                with self._cond:
                    self.unknown_cmd = cmd
                self._die(f"unknown command {cmd}")
                if self.version >= 2:
                    try:
                        self.sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                return

    def _on_psh(self, sid, length):
        if length > MAX_FRAME:
            self._violation(f"PSH of {length} bytes on stream {sid} (over {MAX_FRAME})")
            if self.enforce:
                self._die("PSH over 65536 bytes")
                self.sock.shutdown(socket.SHUT_RDWR)
                return False
        payload = self._recv_exact(length) if length else b""
        if payload is None:
            self._die("connection closed inside a PSH")
            return False
        with self._cond:
            stream = self.streams.get(sid)
            if stream is None:
                if sid in self._finished:
                    self.violations.append(f"PSH of {length} bytes on stream {sid} after its FIN")
                    self.late_psh += 1
                return True  # unknown id: dropped, as Go does
            if stream.peer_fin:
                self.violations.append(f"PSH on stream {sid} after its FIN")
                return True
            if length == 0:
                return True
            stream.recv_pending += length
            stream.bytes_in += length
            if stream.recv_pending > self.window:
                self.violations.append(
                    f"stream {sid}: {stream.recv_pending} bytes unconfirmed, window {self.window}")
                if self.enforce:
                    self.dead = "window violation"
                    self._cond.notify_all()
                    self.sock.shutdown(socket.SHUT_RDWR)
                    return False
            if not stream.closed:
                stream._buf += payload
                self._cond.notify_all()
            elif stream.recv_pending:
                # Go's closed stream drops data and confirms nothing; the peer's
                # window to us does not matter any more.
                pass
        return True

    def _on_syn(self, sid, length):
        if length:
            self._violation(f"SYN {sid} with length {length} (senders write 0)")
        with self._cond:
            if sid in self.streams:
                self.dup_syns += 1  # simultaneous open (or a duplicate): ignored
                return
            if len(self._accept) >= self.accept_backlog:
                refuse = True
            else:
                refuse = False
                self._used.add(sid)
                self._finished.pop(sid, None)
                stream = self.streams[sid] = Stream(self, sid)
                self._accept.append(stream)
                self._cond.notify_all()
        if refuse:
            self.send_frame(FIN, sid)

    def _on_fin(self, sid, length):
        if length:
            self._violation(f"FIN {sid} with length {length} (senders write 0)")
        reply = False
        with self._wlock:
            with self._cond:
                stream = self.streams.get(sid)
                if stream is None:
                    if sid in self._finished:
                        self.violations.append(f"second FIN on stream {sid}")
                    return
                if stream.peer_fin:
                    self.violations.append(f"second FIN on stream {sid}")
                    return
                stream.peer_fin = True
                stream.fin_was_answer = stream.local_fin
                self._finished[sid] = stream.local_fin
                if stream.local_fin:
                    self._release(stream)        # the answer to our FIN
                elif self.answer_fin:
                    stream.local_fin = True      # Go: answer at once, from the read loop
                    self.fins_out += 1           # counted before it goes out (see _fin)
                    self._release(stream)
                    reply = True
                self._cond.notify_all()
            if reply:
                try:
                    self._sendall(header(FIN, sid))
                except OSError:
                    pass

    def _on_cfm(self, sid, length):
        with self._cond:
            stream = self.streams.get(sid)
            if stream is None or stream.peer_fin:
                # A peer that closed first may go on reading (half-close) and confirm
                # until our FIN reaches it; once its FIN answered ours it has no
                # reason to confirm anything (Go's passive-side hazard).
                if sid in self._finished:
                    self.late_cfm += 1
                    if self._finished[sid]:
                        self.violations.append(f"CFM {length} on stream {sid} after its FIN "
                                               "(which answered ours)")
                if stream is None:
                    return
            if length > stream.unconfirmed:
                self.violations.append(
                    f"CFM {length} on stream {sid} with only {stream.unconfirmed} unconfirmed")
                stream.unconfirmed = 0
            else:
                stream.unconfirmed -= length
            stream.cfm_in += 1
            stream.confirmed_in += length
            self._cond.notify_all()

    def _on_vrm(self, v1, v2):
        with self._cond:
            self.vrm_in += 1
            event = self._probes.pop((v1, v2), None)
            if event is not None:
                self.probe_answers += 1
                event.set()
                return  # the answer to our probe: never answered
            if not self.answer_vrm:
                return
            self.vrm_answered += 1
        answer = (self.vrm_answer or verify_code)(v1, v2)
        if answer is None:
            return
        try:
            self.send_frame(VRM, *answer)
        except OSError:
            pass


class TLSConnection:
    """A TLS client over a connected blocking socket, safe for one reader thread and
    several writer threads at once (``ssl.SSLSocket`` is not: OpenSSL objects must
    not read and write concurrently). Built on ``ssl.MemoryBIO``: one lock guards
    the TLS object, another keeps outgoing records in order. Offers what a
    ``Session`` uses: ``recv``, ``sendall``, ``setsockopt``, ``shutdown``, ``close``."""

    def __init__(self, sock, context, server_hostname=None):
        self.sock = sock
        self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._in, self._out, server_hostname=server_hostname)
        self._lock = threading.Lock()   # the TLS object and its BIOs
        self._wlock = threading.Lock()  # outgoing bytes, in record order
        while True:
            try:
                self._tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                data = sock.recv(1 << 16)
                if not data:
                    raise ConnectionResetError("EOF during the TLS handshake")
                self._in.write(data)
        self._flush()

    def version(self):
        return self._tls.version()

    def _flush(self):
        with self._wlock:
            with self._lock:
                data = self._out.read()
            if data:
                self.sock.sendall(data)

    def recv(self, n):
        while True:
            with self._lock:
                try:
                    data = self._tls.read(n)
                except ssl.SSLWantReadError:
                    data = None
                except ssl.SSLZeroReturnError:
                    data = b""
                pending = self._out.pending
            if pending:
                self._flush()
            if data is not None:
                return data
            raw = self.sock.recv(1 << 18)
            if not raw:
                return b""
            with self._lock:
                self._in.write(raw)

    def sendall(self, data):
        with self._wlock:
            with self._lock:
                self._tls.write(data)
                out = self._out.read()
            self.sock.sendall(out)

    def setsockopt(self, *args):
        self.sock.setsockopt(*args)

    def shutdown(self, how):
        self.sock.shutdown(how)

    def close(self):
        self.sock.close()


def connect_tcp(address, timeout=5.0):
    """A blocking TCP (or Unix, for a str address) connection for a Session."""
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(address)
    sock.settimeout(None)
    if family == socket.AF_INET:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def serve_echo(session, read_timeout=30.0):
    """Accept every stream ``session``'s peer opens and echo it in its own thread until
    its end (then close it), until the session ends. Returns the accept thread; the
    echo threads' failures land in ``session.violations`` as "echo: ...". """

    def echo(stream):
        try:
            while True:
                data = stream.read(1 << 20, read_timeout)
                if not data:
                    break
                stream.write(data)
            stream.close()
        except OSError as exc:
            if not session.dead:
                session._violation(f"echo: stream {stream.id}: {exc!r}")

    def accept_loop():
        while not session.dead:
            stream = session.accept(0.2)
            if stream is not None:
                threading.Thread(target=echo, args=(stream,), daemon=True).start()

    thread = threading.Thread(target=accept_loop, daemon=True)
    thread.start()
    return thread
