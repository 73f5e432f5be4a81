//! Codec micro-benchmark: xsocket's WebSocket frame codec against tungstenite's, in
//! memory, no I/O. Run with
//! `cargo test --release --lib codec_bench -- --ignored --nocapture`.
//!
//! The workload is one binary message of N bytes in one frame, client -> server, so
//! masked: the client encodes the frame (header + masked payload) into a wire buffer,
//! the server parses the header, checks it and unmasks the payload in place; the
//! payload is then where the application reads it. Throughput is payload bytes per
//! second (GB/s, 10^9) for the whole round (encode + decode), median of the rounds;
//! the implementations alternate, each round with the same messages.
//!
//! Columns:
//! * `xsocket`: `frame::Header::encode` + `frame::copy_masked` (one pass: copy and mask
//!   into the wire buffer), then `Decoder::step` on the wire buffer (header parse, every
//!   RFC 6455 header check, unmask in place with `frame::apply_mask`). This is what
//!   `conn.rs` does around its `send`/`recv` system calls.
//! * `tungstenite`: the same steps with tungstenite 0.30's frame-level code, as its
//!   own `WebSocket` does them: `FrameHeader::format` into the wire buffer, the
//!   payload appended, masked in place (that is its `Frame::format_into_buf`, which is
//!   crate-private); then `FrameHeader::parse` from a `Cursor`, the checks its
//!   `WebSocketContext` makes (RSV bits, opcode, mask present, size limit) and unmask
//!   in place (its `FrameCodec::read_frame` without the read). tungstenite's masking
//!   function is private (`protocol::frame::mask`), so [`tungstenite_apply_mask`] is a
//!   verbatim copy of its `apply_mask_fast32` (0.30.0), compiled here with the same
//!   optimisation as the rest of this file; the header code is the crate's own.
//!   Both sides use the same fixed masking key (no random numbers in the loop).
//! * `tung ctx` and `xs +copies` (for reference, no ratio in the main column): the
//!   whole public message API of tungstenite, `WebSocketContext` (client `write` +
//!   `flush`, server `read`) over an in-memory stream, messages written and read in
//!   batches of about 64 KiB; that path copies the frames once into the stream and
//!   once out of it (where real I/O would have its system calls' copies), draws a
//!   random mask per frame and builds a `Message` per read. `xs +copies` is the
//!   xsocket column with the same two copies and batches (fixed key), to compare like
//!   with like.

use std::{
    hint::black_box,
    io::{self, Cursor, Read, Write},
    time::Instant,
};

use tungstenite::{
    Bytes, Message,
    protocol::{
        Role as TRole, WebSocketContext,
        frame::{
            FrameHeader,
            coding::{Data, OpCode},
        },
    },
};

use super::{
    decoder::{Decoder, Role, Step},
    frame::{self, Header, MAX_HEADER, OP_BINARY},
};

/// The masking key both sides use.
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
/// The largest message accepted by both decoders (both default to more than this).
const MAX_MESSAGE: usize = 16 << 20;

/// tungstenite 0.30.0 `protocol/frame/mask.rs`, `apply_mask_fallback` and
/// `apply_mask_fast32`, verbatim (the module is private to the crate).
fn tungstenite_apply_mask(buf: &mut [u8], mask: [u8; 4]) {
    fn apply_mask_fallback(buf: &mut [u8], mask: [u8; 4]) {
        for (i, byte) in buf.iter_mut().enumerate() {
            *byte ^= mask[i & 3];
        }
    }
    let mask_u32 = u32::from_ne_bytes(mask);

    // SAFETY: any bit pattern is a valid u32 and a valid u8, so viewing the aligned
    // middle of a byte slice as u32s is sound (the same call as in tungstenite).
    let (prefix, words, suffix) = unsafe { buf.align_to_mut::<u32>() };
    apply_mask_fallback(prefix, mask);
    let head = prefix.len() & 3;
    let mask_u32 = if head > 0 {
        if cfg!(target_endian = "big") {
            mask_u32.rotate_left(8 * head as u32)
        } else {
            mask_u32.rotate_right(8 * head as u32)
        }
    } else {
        mask_u32
    };
    for word in words.iter_mut() {
        *word ^= mask_u32;
    }
    apply_mask_fallback(suffix, mask_u32.to_ne_bytes());
}

/// xsocket, client side: the frame into `wire` (cleared first), in one copy-and-mask pass.
fn xs_encode(payload: &[u8], wire: &mut Vec<u8>) {
    let header =
        Header { fin: true, rsv: 0, opcode: OP_BINARY, mask: Some(KEY), len: payload.len() as u64 };
    let mut head = [0u8; MAX_HEADER];
    let n = header.encode(&mut head);
    wire.clear();
    wire.extend_from_slice(&head[..n]);
    let at = wire.len();
    // The payload area is written whole by copy_masked; resize only zero-fills the
    // first time (the buffer's length is kept between rounds by clear + resize).
    wire.resize(at + payload.len(), 0);
    frame::copy_masked(&mut wire[at..], payload, KEY, 0);
}

/// xsocket, server side: one decoder step over the whole frame; the payload's range.
fn xs_decode(decoder: &mut Decoder, wire: &mut [u8]) -> (usize, usize) {
    match decoder.step(wire, usize::MAX) {
        Ok(Step::Data { consumed, start, end, text: false, last: true, .. })
            if consumed == wire.len() =>
        {
            (start, end)
        }
        other => panic!("xsocket decoder: unexpected {other:?}"),
    }
}

/// tungstenite, client side: header, payload appended, masked in place (what its
/// `Frame::format_into_buf` does).
fn tung_encode(payload: &[u8], wire: &mut Vec<u8>) {
    let header = FrameHeader {
        is_final: true,
        rsv1: false,
        rsv2: false,
        rsv3: false,
        opcode: OpCode::Data(Data::Binary),
        mask: Some(KEY),
    };
    wire.clear();
    header.format(payload.len() as u64, wire).expect("a Vec takes the header");
    let at = wire.len();
    wire.extend_from_slice(payload);
    tungstenite_apply_mask(&mut wire[at..], KEY);
}

/// tungstenite, server side: header parsed, checked as `WebSocketContext` checks a
/// data frame, payload unmasked in place; the payload's range.
fn tung_decode(wire: &mut [u8]) -> (usize, usize) {
    let mut cursor = Cursor::new(&*wire);
    let (header, len) =
        FrameHeader::parse(&mut cursor).expect("valid header").expect("complete header");
    let at = cursor.position() as usize;
    assert!(len <= MAX_MESSAGE as u64, "frame over the limit");
    assert!(!(header.rsv1 || header.rsv2 || header.rsv3), "RSV bits");
    assert!(header.is_final && header.opcode == OpCode::Data(Data::Binary), "opcode");
    let key = header.mask.expect("a client frame is masked");
    let end = at + len as usize;
    assert!(end <= wire.len(), "frame incomplete");
    tungstenite_apply_mask(&mut wire[at..end], key);
    (at, end)
}

/// An in-memory byte stream for the `WebSocketContext` path: writes append, reads
/// take from the front.
#[derive(Default)]
struct Pipe {
    data: Vec<u8>,
    read: usize,
}

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.data.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for Pipe {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = out.len().min(self.data.len() - self.read);
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        out[..n].copy_from_slice(&self.data[self.read..self.read + n]);
        self.read += n;
        if self.read == self.data.len() {
            self.data.clear();
            self.read = 0;
        }
        Ok(n)
    }
}

/// Which implementation a measurement runs.
#[derive(Clone, Copy)]
enum Imp {
    Xs,
    Tung,
    XsCopies,
    TungCtx,
}

/// Seconds for `count` messages of `payload` through `imp` (a multiple of the batch,
/// scaled back to `count`); checks the payloads of the first and last rounds.
fn measure(imp: Imp, payload: &[u8], count: usize) -> f64 {
    let n = payload.len();
    let mut wire = Vec::with_capacity(n + MAX_HEADER);
    let mut decoder = Decoder::new(Role::Server, MAX_MESSAGE as u64);
    let mut pipe = Pipe::default();
    let mut inbuf = vec![0u8; n + MAX_HEADER];
    let mut client = WebSocketContext::new(TRole::Client, None);
    let mut server = WebSocketContext::new(TRole::Server, None);
    let message = Bytes::copy_from_slice(payload);
    let check = |got: &[u8]| assert!(got == payload, "payload changed on the way");

    // The stream variants move messages in batches of about 64 KiB of payload, as a
    // loaded connection's reads and writes would (one read per message would make
    // tungstenite zero-fill its 128 KiB read buffer for every small message).
    let batch = (65536 / n.max(1)).clamp(1, count.max(1));
    let mut round = |check_it: bool| match imp {
        Imp::Xs => {
            xs_encode(black_box(payload), &mut wire);
            let (s, e) = xs_decode(&mut decoder, &mut wire);
            if check_it {
                check(&wire[s..e]);
            }
            black_box(&wire[s..e]);
        }
        Imp::Tung => {
            tung_encode(black_box(payload), &mut wire);
            let (s, e) = tung_decode(&mut wire);
            if check_it {
                check(&wire[s..e]);
            }
            black_box(&wire[s..e]);
        }
        Imp::XsCopies => {
            // Each frame encoded and copied into the stream (the send's copy), then the
            // batch read out in one copy (the receive's) and decoded in place.
            for _ in 0..batch {
                xs_encode(black_box(payload), &mut wire);
                pipe.write_all(&wire).expect("in memory");
            }
            let len = pipe.data.len();
            if inbuf.len() < len {
                inbuf.resize(len, 0);
            }
            pipe.read_exact(&mut inbuf[..len]).expect("in memory");
            let mut at = 0;
            for _ in 0..batch {
                let frame_len = wire.len(); // every frame of the batch has this size
                let (s, e) = xs_decode(&mut decoder, &mut inbuf[at..at + frame_len]);
                if check_it {
                    check(&inbuf[at + s..at + e]);
                }
                black_box(&inbuf[at + s..at + e]);
                at += frame_len;
            }
        }
        Imp::TungCtx => {
            // Bytes::clone is a reference count; the frame is built from it.
            for _ in 0..batch {
                client.write(&mut pipe, Message::Binary(message.clone())).expect("write");
            }
            client.flush(&mut pipe).expect("flush");
            for _ in 0..batch {
                match server.read(&mut pipe).expect("read") {
                    Message::Binary(got) => {
                        if check_it {
                            check(&got);
                        }
                        black_box(&got);
                    }
                    other => panic!("tungstenite: unexpected {other:?}"),
                }
            }
        }
    };
    let per_round = match imp {
        Imp::Xs | Imp::Tung => 1,
        Imp::XsCopies | Imp::TungCtx => batch,
    };
    round(true);
    let start = Instant::now();
    for _ in 0..count.div_ceil(per_round) {
        round(false);
    }
    let seconds = start.elapsed().as_secs_f64();
    round(true);
    // Messages actually moved per second, scaled to `count`.
    seconds * count as f64 / (count.div_ceil(per_round) * per_round) as f64
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 { values[mid] } else { (values[mid - 1] + values[mid]) / 2.0 }
}

#[test]
#[ignore = "a benchmark: cargo test --release --lib codec_bench -- --ignored --nocapture"]
fn codec_throughput() {
    let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let rounds = if quick { 3 } else { 7 };
    let per_measurement: usize = if quick { 16 << 20 } else { 256 << 20 }; // payload bytes
    if cfg!(debug_assertions) {
        println!("codec_bench: a debug build; run with --release for meaningful figures");
    }
    println!(
        "WebSocket codec, one masked binary frame client -> server: encode + mask + parse + \
         unmask, in memory; GB/s of payload (10^9 B/s), median of {rounds} rounds"
    );
    println!(
        "{:>8} | {:>8} | {:>11} | {:>7} || {:>10} | {:>9} | {:>7}",
        "size", "xsocket", "tungstenite", "xs/tung", "xs +copies", "tung ctx", "xs/ctx"
    );
    println!("---------+----------+-------------+---------++------------+-----------+--------");
    let imps = [Imp::Xs, Imp::Tung, Imp::XsCopies, Imp::TungCtx];
    for (size, label) in [(64, "64 B"), (1024, "1 KiB"), (64 << 10, "64 KiB"), (1 << 20, "1 MiB")] {
        let payload: Vec<u8> = (0..size).map(|i| (i * 31 + 7) as u8).collect();
        let count = (per_measurement / size).max(16);
        for &imp in &imps {
            measure(imp, &payload, count / 16); // warm-up, discarded
        }
        let mut gbps: [Vec<f64>; 4] = Default::default();
        for _ in 0..rounds {
            for (k, &imp) in imps.iter().enumerate() {
                let seconds = measure(imp, &payload, count);
                gbps[k].push((size * count) as f64 / seconds / 1e9);
            }
        }
        let m: Vec<f64> = gbps.iter_mut().map(|v| median(v)).collect();
        println!(
            "{label:>8} | {:>8.2} | {:>11.2} | {:>7.2} || {:>10.2} | {:>9.2} | {:>7.2}",
            m[0],
            m[1],
            m[0] / m[1],
            m[2],
            m[3],
            m[2] / m[3]
        );
    }
}
