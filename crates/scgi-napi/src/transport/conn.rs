//! A connection's state machine: what its readiness and phase allow, one
//! step at a time, deciding whether it stays ([`Act`]). The phases are the
//! engine's half of those of `src/connection/lifecycle.ts`, under the same names:
//! [`Phase::Header`] (reading the netstring, `headerTimeout`) →
//! [`Phase::Body`] (handed to JS as soon as the header is complete, with the
//! body bytes read with it; the rest of the body streams while JS wants it;
//! every deadline and limit of a request, `maxBodySize` and `requestTimeout`
//! included, is the lifecycle's) → [`Phase::Drain`] (response written and
//! write side shut; the rest of what the front sends is read and discarded
//! until it closes, up to `maxDrainSize`/`drainTimeout`) → closed (the
//! engine drops the connection: [`Act::Close`]).
//!
//! Connections are registered edge-triggered (`CONN_EVENTS`) once and never
//! modified; `readable`/`writable` remember an edge until a read or write
//! meets `EAGAIN`.

use super::batch::{
    Batch, CLOSE_ABORTED, CLOSE_BODY_TRUNCATED, CLOSE_DONE, EV_DRAIN, EV_REJECT,
    REJECT_HEADER_TIMEOUT, REJECT_INCOMPLETE_HEADER,
};
use super::engine::Config;
use super::slab::Id;
use super::sys;
use scgi_parser::{
    parse_raw, OUT_CL_HIGH, OUT_CL_LOW, OUT_CODE, OUT_HEADER_END, OUT_PAIRS, OUT_PAIR_COUNT,
    PAIR_STRIDE,
};
use std::io;
use std::os::fd::OwnedFd;

/// What epoll reports for a connection (edge-triggered, never modified).
pub(super) const CONN_EVENTS: u32 =
    (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;
/// Bytes per read.
pub(super) const READ_CHUNK: usize = 64 * 1024;
/// Body bytes read for one connection per wake-up before the others get theirs.
const STREAM_BUDGET: usize = 256 * 1024;

pub(super) fn would_block(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EAGAIN))
}
fn interrupted(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EINTR))
}

/// What one read of a connection's socket gave ([`Conn::read_some`]).
enum ReadOutcome {
    /// `n` > 0 bytes, at the start of the buffer given.
    Data(usize),
    /// The socket's queue is empty (`EAGAIN`): `readable` is cleared, a new
    /// edge comes with more bytes.
    WouldBlock,
    /// End of stream (the read returned 0).
    Eof,
    /// Any other error (`EINTR` is retried, never returned).
    Error,
}

/// Where a connection is (`Phase` of `src/connection/lifecycle.ts`, less `CLOSED`:
/// a closed connection is no longer in the slab).
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub(super) enum Phase {
    /// Reading the header netstring.
    Header,
    /// Dispatched: the body streams to JS while it wants it, the response is written.
    Body,
    /// The response is written and the write side shut: discarding what the front still sends.
    Drain,
}

/// What a step decided about its connection.
pub(super) enum Act {
    Keep,
    /// Close it.
    Close {
        /// Emits `EV_CLOSE` with this reason (dispatched connections only).
        reason: Option<u32>,
        /// Sends RST on TCP.
        reset: bool,
    },
}

impl Act {
    /// Close, telling JS `reason` (`CLOSE_*`), without RST.
    fn closed(reason: u32) -> Act {
        Act::Close {
            reason: Some(reason),
            reset: false,
        }
    }
    /// Close without telling JS (it was refused, or JS asked), without RST.
    pub(super) const QUIET: Act = Act::Close {
        reason: None,
        reset: false,
    };
}

/// State shared by all connections of an engine (borrowed next to the slab).
pub(super) struct Shared {
    pub(super) cfg: Config,
    pub(super) batch: Batch,
    /// The parser's output array.
    pub(super) out: Vec<u32>,
    /// Read buffer.
    pub(super) scratch: Vec<u8>,
    /// The engine's clock at this wake-up, ms.
    pub(super) now: u64,
    /// Connections whose body reads resume at the next wake-up.
    pub(super) pending: Vec<Id>,
    /// A sync call queued events that need a wake-up to be delivered.
    pub(super) wake_wanted: bool,
}

/// One connection.
pub(super) struct Conn {
    pub(super) fd: OwnedFd,
    pub(super) tcp: bool,
    pub(super) phase: Phase,
    buf: Vec<u8>,
    need: usize,
    pub(super) got_bytes: bool,
    header_end: usize,
    content_length: u64,
    pub(super) body_left: u64,
    pub(super) readable: bool,
    pub(super) writable: bool,
    pub(super) rdhup: bool,
    pub(super) want_read: bool,
    pub(super) out: Vec<u8>,
    pub(super) out_pos: usize,
    pub(super) ending: bool,
    /// Close as soon as the response is out, without a drain: the caller
    /// knows the front sends nothing more (`Engine::respond`).
    close_after: bool,
    /// In the epoll set (see `Engine::deferred`).
    pub(super) registered: bool,
    shut: bool,
    pub(super) notify_drain: bool,
    pub(super) dispatched: bool,
    pub(super) nodelay: bool,
    /// When `timeout` runs (engine clock, ms; 0: never).
    pub(super) deadline: u64,
    discarded: u64,
}

impl Conn {
    /// A connection just accepted, in `Header`, with `deadline` (0: none).
    pub(super) fn new(fd: OwnedFd, tcp: bool, deadline: u64) -> Conn {
        Conn {
            fd,
            tcp,
            phase: Phase::Header,
            buf: Vec::new(),
            need: 0,
            got_bytes: false,
            header_end: 0,
            content_length: 0,
            body_left: 0,
            readable: false,
            writable: true,
            rdhup: false,
            want_read: false,
            out: Vec::new(),
            out_pos: 0,
            ending: false,
            close_after: false,
            registered: true,
            shut: false,
            notify_drain: false,
            dispatched: false,
            nodelay: false,
            deadline,
            discarded: 0,
        }
    }

    /// Does whatever the connection's readiness and phase allow.
    pub(super) fn step(&mut self, sh: &mut Shared, id: Id, err: bool) -> Act {
        if self.writable && self.out_pos < self.out.len() {
            match self.flush() {
                Ok(()) => {
                    if self.out_pos == self.out.len() {
                        if std::mem::take(&mut self.notify_drain) {
                            sh.batch.rec(EV_DRAIN, id, &[]);
                        }
                        if self.ending {
                            if let act @ Act::Close { .. } = self.finish(sh) {
                                return act;
                            }
                        }
                    }
                }
                Err(_) => {
                    return Act::closed(if self.ending {
                        CLOSE_DONE
                    } else {
                        CLOSE_ABORTED
                    })
                }
            }
        }
        if !self.readable {
            return Act::Keep;
        }
        match self.phase {
            Phase::Header => {
                let act = self.read_request(sh, id);
                // Dispatched by this read, with a FIN already seen (it came
                // with the request): no further edge will report it.
                if matches!(act, Act::Keep) && self.phase == Phase::Body && self.rdhup {
                    return self.open_step(sh, err);
                }
                act
            }
            Phase::Body if self.body_left > 0 && self.want_read => {
                let act = self.read_body(sh, id);
                // The body's last bytes and the FIN can come in one wake-up.
                if matches!(act, Act::Keep) && self.body_left == 0 {
                    return self.open_step(sh, err);
                }
                act
            }
            Phase::Body => self.open_step(sh, err),
            Phase::Drain => self.discard(sh),
        }
    }

    /// A dispatched connection became readable (or saw its peer's FIN/reset).
    fn open_step(&mut self, sh: &mut Shared, err: bool) -> Act {
        if self.body_left > 0 {
            // Body bytes are read when JS wants them (`read_body`); a FIN
            // behind them shows up as the end of stream there.
            return Act::Keep;
        }
        if err || (self.rdhup && !sh.cfg.allow_half_open) {
            // No front half-closes after its request: a FIN (or a reset)
            // before the response ends means the client went away. Reset,
            // as the lifecycle does on net: the response is incomplete.
            return Act::Close {
                reason: Some(CLOSE_ABORTED),
                reset: true,
            };
        }
        Act::Keep
    }

    /// One read of the socket into `buf`, retrying `EINTR`; clears
    /// `readable` on `EAGAIN`. The one read of the three read loops
    /// (`read_request`, `read_body`, `discard`), which differ only in what
    /// each outcome means for their phase.
    fn read_some(&mut self, buf: &mut [u8]) -> ReadOutcome {
        loop {
            match sys::read(&self.fd, buf) {
                Err(e) if would_block(&e) => {
                    self.readable = false;
                    return ReadOutcome::WouldBlock;
                }
                Err(e) if interrupted(&e) => {}
                Err(_) => return ReadOutcome::Error,
                Ok(0) => return ReadOutcome::Eof,
                Ok(n) => return ReadOutcome::Data(n),
            }
        }
    }

    fn read_request(&mut self, sh: &mut Shared, id: Id) -> Act {
        let chunk = READ_CHUNK;
        loop {
            match self.read_some(&mut sh.scratch[..]) {
                ReadOutcome::WouldBlock => return Act::Keep,
                ReadOutcome::Error | ReadOutcome::Eof => return self.eof_before_dispatch(sh, id),
                ReadOutcome::Data(n) => {
                    self.got_bytes = true;
                    self.buf.extend_from_slice(&sh.scratch[..n]);
                    if n < chunk && !self.rdhup {
                        // A short read emptied the socket's queue; a new edge
                        // comes with more bytes. (After a FIN was seen, read on
                        // to meet the end of stream.)
                        self.readable = false;
                    }
                    match self.progress(sh, id) {
                        Some(act) => return act,
                        None if !self.readable => return Act::Keep,
                        None => {}
                    }
                }
            }
        }
    }

    /// After new header bytes: `Some` when the connection left `Header`.
    fn progress(&mut self, sh: &mut Shared, id: Id) -> Option<Act> {
        if self.buf.len() < self.need {
            return None;
        }
        let cfg = &sh.cfg;
        let status = parse_raw(
            &self.buf,
            &mut sh.out,
            cfg.max_header_size,
            cfg.max_headers,
            cfg.flags,
        );
        match status {
            1 => {
                let need = sh.out[OUT_HEADER_END] as usize;
                self.need = if need == 0 { self.buf.len() + 1 } else { need };
                return None;
            }
            2 => {
                sh.batch.rec(EV_REJECT, id, &[sh.out[OUT_CODE]]);
                return Some(Act::QUIET);
            }
            _ => {}
        }
        self.header_end = sh.out[OUT_HEADER_END] as usize;
        self.content_length =
            u64::from(sh.out[OUT_CL_LOW]) | (u64::from(sh.out[OUT_CL_HIGH]) << 32);
        self.dispatch(sh, id);
        Some(Act::Keep)
    }

    /// Hands the request to JavaScript: header and the body bytes read so far
    /// (`sh.out` holds this header's parse).
    fn dispatch(&mut self, sh: &mut Shared, id: Id) {
        let have = (self.buf.len() - self.header_end) as u64;
        let included = have.min(self.content_length) as usize;
        self.discarded = have - included as u64;
        let end = self.header_end + included;
        let pairs = sh.out[OUT_PAIR_COUNT] as usize;
        let words = OUT_PAIRS + pairs * PAIR_STRIDE;
        let complete = included as u64 == self.content_length;
        sh.batch
            .request(id, &self.buf[..end], complete, &sh.out[..words]);
        self.body_left = self.content_length - included as u64;
        self.phase = Phase::Body;
        self.dispatched = true;
        self.buf = Vec::new();
        // From here the deadlines are the lifecycle's, until the drain (`finish`).
        self.deadline = 0;
    }

    fn eof_before_dispatch(&mut self, sh: &mut Shared, id: Id) -> Act {
        if self.got_bytes {
            sh.batch.rec(EV_REJECT, id, &[REJECT_INCOMPLETE_HEADER]);
        }
        // Nothing sent at all (Apache after answering 411 itself): a quiet close.
        Act::QUIET
    }

    fn read_body(&mut self, sh: &mut Shared, id: Id) -> Act {
        let mut budget = STREAM_BUDGET;
        while self.body_left > 0 && self.want_read {
            let chunk = (self.body_left.min(READ_CHUNK as u64)) as usize;
            match self.read_some(&mut sh.scratch[..chunk]) {
                ReadOutcome::WouldBlock => return Act::Keep,
                ReadOutcome::Error | ReadOutcome::Eof => {
                    return Act::Close {
                        reason: Some(CLOSE_BODY_TRUNCATED),
                        reset: true,
                    }
                }
                ReadOutcome::Data(n) => {
                    self.body_left -= n as u64;
                    sh.batch.data(id, &sh.scratch[..n], self.body_left == 0);
                    if n < chunk && !self.rdhup {
                        self.readable = false;
                        return Act::Keep;
                    }
                    budget = budget.saturating_sub(n);
                    if budget == 0 {
                        sh.pending.push(id);
                        sh.wake_wanted = true;
                        return Act::Keep;
                    }
                }
            }
        }
        Act::Keep
    }

    fn discard(&mut self, sh: &mut Shared) -> Act {
        loop {
            match self.read_some(&mut sh.scratch[..]) {
                ReadOutcome::WouldBlock => return Act::Keep,
                ReadOutcome::Error => return Act::closed(CLOSE_DONE),
                ReadOutcome::Eof => {
                    if self.out_pos < self.out.len() {
                        // The front half-closed but may still read the rest of the response.
                        self.readable = false;
                        return Act::Keep;
                    }
                    return Act::closed(CLOSE_DONE);
                }
                ReadOutcome::Data(n) => {
                    self.discarded += n as u64;
                    if self.discarded > sh.cfg.max_drain_size {
                        return Act::closed(CLOSE_DONE);
                    }
                }
            }
        }
    }

    pub(super) fn queue(&mut self, data: &[u8]) {
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
        self.out.extend_from_slice(data);
    }

    /// Writes queued bytes until done or `EAGAIN`. Err: the peer is gone.
    pub(super) fn flush(&mut self) -> io::Result<()> {
        while self.out_pos < self.out.len() {
            match sys::write(&self.fd, &self.out[self.out_pos..]) {
                Ok(n) => self.out_pos += n,
                Err(e) if would_block(&e) => {
                    self.writable = false;
                    return Ok(());
                }
                Err(e) if interrupted(&e) => {}
                Err(e) => return Err(e),
            }
        }
        self.out.clear();
        self.out_pos = 0;
        Ok(())
    }

    /// The response's last bytes: write what the socket takes, keep the rest.
    /// Until the last byte is written, the request's deadline stays (a
    /// response still being written is governed by backpressure and
    /// `requestTimeout`); the drain's starts in `finish`.
    pub(super) fn respond(&mut self, sh: &mut Shared, data: &[u8], close: bool) -> Act {
        self.ending = true;
        self.close_after = close;
        if self.out_pos == self.out.len() && self.writable {
            // Nothing queued: write straight from the caller's bytes.
            let mut off = 0;
            while off < data.len() {
                match sys::write(&self.fd, &data[off..]) {
                    Ok(n) => off += n,
                    Err(e) if would_block(&e) => {
                        self.writable = false;
                        break;
                    }
                    Err(e) if interrupted(&e) => {}
                    Err(_) => return Act::closed(CLOSE_ABORTED),
                }
            }
            if off < data.len() {
                self.queue(&data[off..]);
                return Act::Keep;
            }
            return self.finish(sh);
        }
        self.queue(data);
        if self.writable {
            if self.flush().is_err() {
                return Act::closed(CLOSE_ABORTED);
            }
            if self.out_pos == self.out.len() {
                return self.finish(sh);
            }
        }
        Act::Keep
    }

    /// All response bytes are written. With `close_after` (the caller knows
    /// the whole request was read and the front sends nothing more: see
    /// `finishResponse` in src/connection/lifecycle.ts) close at once: the kernel still
    /// delivers the response, then FIN, and with nothing unread, no reset.
    /// Otherwise the front may still be sending: shut the write side (FIN)
    /// and discard what it sends until it closes (or drainTimeout /
    /// maxDrainSize), since closing on bytes still to come makes the kernel
    /// answer RST, and nginx and Apache then truncate the response
    /// (test/drain-after-response.test.ts).
    fn finish(&mut self, sh: &mut Shared) -> Act {
        if self.close_after && self.body_left == 0 && self.discarded == 0 {
            return Act::closed(CLOSE_DONE);
        }
        self.phase = Phase::Drain;
        self.deadline = if sh.cfg.drain_timeout > 0 {
            sh.now + sh.cfg.drain_timeout
        } else {
            0
        };
        self.want_read = false;
        if !self.shut {
            self.shut = true;
            sys::shutdown_write(&self.fd);
        }
        if self.discarded > sh.cfg.max_drain_size {
            return Act::closed(CLOSE_DONE);
        }
        if self.readable {
            return self.discard(sh);
        }
        Act::Keep
    }

    pub(super) fn timeout(&mut self, sh: &mut Shared, id: Id) -> Act {
        match self.phase {
            Phase::Header => {
                sh.batch.rec(EV_REJECT, id, &[REJECT_HEADER_TIMEOUT]);
                Act::QUIET
            }
            // drainTimeout (an open request has no native deadline: its
            // deadlines are the lifecycle's).
            Phase::Body | Phase::Drain => Act::closed(CLOSE_DONE),
        }
    }
}
