//! The native transport's engine: one listening socket and all its
//! connections in one epoll set, and the batch of events handed to
//! JavaScript. No N-API and no `unsafe` here (system calls go through
//! `sys.rs`); `binding.rs` drives it from a `uv_poll` on Node's loop and
//! crosses into JavaScript once per wake-up.
//!
//! The parts, laid out as mio lays out its own: the connections live in a
//! slab (`slab.rs`: an id is a slot and its generation, and closing a
//! connection drops its `OwnedFd`, so it is closed exactly once, and moves the
//! generation on, so a stale id can never reach the socket that reuses the
//! slot or the descriptor number); each one's state machine is `conn.rs`
//! (phases `Header` → `Body` → `Drain`, as `src/connection/lifecycle.ts`'s); the batch
//! and every constant JavaScript shares are `batch.rs`; accepting, and what
//! a connection over the limits gets, is `engine/listener.rs`. This file
//! holds the loop: polling, routing events to connections, the deadline
//! sweep, and the calls JavaScript makes.

mod listener;
#[cfg(test)]
mod tests;

pub use super::batch::*;
use super::conn::{Act, Conn, Phase, Shared, CONN_EVENTS, READ_CHUNK};
use super::slab::{Id, Slab};
use super::sys;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

const TOKEN_LISTEN: u64 = u64::MAX;
const TOKEN_WAKER: u64 = u64::MAX - 1;
const TOKEN_TIMER: u64 = u64::MAX - 2;

/// Limits and timeouts, already validated by the caller (`src/server/serve.ts`).
#[derive(Clone, Debug)]
pub struct Config {
    /// Largest header netstring length.
    pub max_header_size: u32,
    /// Largest number of header pairs.
    pub max_headers: u32,
    /// Parser flags (`FLAG_STRICT`).
    pub flags: u32,
    /// Most open connections; more get the 503 response.
    pub max_connections: usize,
    /// ms from accept to a complete header (0: none).
    pub header_timeout: u64,
    /// ms from the last response byte written to close (0: none).
    pub drain_timeout: u64,
    /// Bytes discarded after the response before giving up on a clean close.
    pub max_drain_size: u64,
    /// Unwritten bytes kept for `write` before it says "full".
    pub write_high_water: usize,
    /// Keep answering after the front half-closes.
    pub allow_half_open: bool,
    /// Deadline sweep period, ms.
    pub sweep_ms: u64,
    /// Accepted descriptors at or above this get the 503 response (a reserve
    /// below `ulimit -n`, as `src/server/fd-limit.ts` keeps for net).
    pub fd_ceiling: u64,
    /// The whole 503 response for `maxConnections`.
    pub resp_503: Vec<u8>,
}

/// One listening socket, its connections, and the batch for JavaScript.
pub struct Engine {
    epfd: OwnedFd,
    listener: Option<sys::Listener>,
    listener_registered: bool,
    accept_resume_at: u64,
    timer: OwnedFd,
    timer_armed: bool,
    /// The eventfd that wakes the poller ([`Engine::wake`]), token `TOKEN_WAKER`.
    waker: OwnedFd,
    conns: Slab<Conn>,
    open: usize,
    events: Vec<libc::epoll_event>,
    /// Connections read and dispatched at accept, before epoll watches them
    /// (`add_conn`): registered by `register_deferred` once JavaScript has
    /// had the batch, unless its response closed them first.
    deferred: Vec<Id>,
    shared: Shared,
    /// How far `advance_clock` moved the clock forward, ms.
    #[cfg(any(test, feature = "testing"))]
    skew: u64,
}

impl Engine {
    /// A new engine with no listening socket yet.
    pub fn new(cfg: Config) -> io::Result<Engine> {
        let epfd = sys::epoll_create()?;
        let timer = sys::timerfd()?;
        let waker = sys::eventfd()?;
        sys::epoll_ctl(
            &epfd,
            libc::EPOLL_CTL_ADD,
            timer.as_raw_fd(),
            libc::EPOLLIN as u32,
            TOKEN_TIMER,
        )?;
        sys::epoll_ctl(
            &epfd,
            libc::EPOLL_CTL_ADD,
            waker.as_raw_fd(),
            libc::EPOLLIN as u32,
            TOKEN_WAKER,
        )?;
        let max_headers = cfg.max_headers;
        Ok(Engine {
            epfd,
            listener: None,
            listener_registered: false,
            accept_resume_at: 0,
            timer,
            timer_armed: false,
            waker,
            conns: Slab::new(),
            open: 0,
            events: vec![libc::epoll_event { events: 0, u64: 0 }; 256],
            deferred: Vec::new(),
            shared: Shared {
                cfg,
                batch: Batch::new(),
                out: vec![0; scgi_parser::out_size(max_headers)],
                scratch: vec![0; READ_CHUNK],
                now: sys::now_ms(),
                pending: Vec::new(),
                wake_wanted: false,
            },
            #[cfg(any(test, feature = "testing"))]
            skew: 0,
        })
    }

    /// The engine's clock, ms: the monotonic clock (plus what `advance_clock`
    /// added, in tests).
    fn clock(&self) -> u64 {
        #[cfg(any(test, feature = "testing"))]
        return sys::now_ms() + self.skew;
        #[cfg(not(any(test, feature = "testing")))]
        sys::now_ms()
    }

    /// Moves the engine's clock `ms` forward and runs the deadline sweep, as
    /// the timer would once that time has passed (tests and `fuzz/` only).
    #[cfg(any(test, feature = "testing"))]
    pub fn advance_clock(&mut self, ms: u64) {
        self.skew = self.skew.saturating_add(ms);
        self.shared.now = self.clock();
        self.sweep();
    }

    /// The address of connection `js_id`'s peer on TCP (the front's IP and
    /// port); None for a unix socket, a closed or stale id, or a peer that is
    /// already gone. One `getpeername`, made only when asked.
    pub fn peer(&self, js_id: i64) -> Option<std::net::SocketAddr> {
        let conn = self.conns.get(Id::from_js(js_id)?)?;
        if conn.tcp {
            sys::peer_addr(&conn.fd)
        } else {
            None
        }
    }

    /// The epoll descriptor (what the `uv_poll` watches).
    pub fn poll_fd(&self) -> i32 {
        self.epfd.as_raw_fd()
    }

    /// Open connections (all phases).
    pub fn open_count(&self) -> usize {
        self.open
    }

    /// The events gathered so far.
    pub fn batch(&mut self) -> &mut Batch {
        &mut self.shared.batch
    }

    /// Whether a sync call queued events that need a wake-up to be delivered.
    pub fn take_wake_wanted(&mut self) -> bool {
        std::mem::take(&mut self.shared.wake_wanted)
    }

    /// Wakes the poller (events queued outside a wake-up, or reads to resume).
    pub fn wake(&self) {
        sys::eventfd_wake(&self.waker);
    }

    fn arm_timer(&mut self) {
        if !self.timer_armed {
            sys::timerfd_set(&self.timer, self.shared.cfg.sweep_ms.max(1));
            self.timer_armed = true;
        }
    }

    /// Handles everything epoll reports now, without blocking; fills the batch.
    pub fn poll(&mut self) {
        self.register_deferred();
        self.shared.now = self.clock();
        let mut events = std::mem::take(&mut self.events);
        for _round in 0..4 {
            let n = sys::epoll_poll(&self.epfd, &mut events);
            let mut accepted = false;
            for ev in &events[..n] {
                let (token, bits) = (ev.u64, ev.events);
                match token {
                    TOKEN_LISTEN => accepted |= self.accept_ready(),
                    TOKEN_WAKER => sys::drain_counter(&self.waker),
                    TOKEN_TIMER => {
                        sys::drain_counter(&self.timer);
                        self.sweep();
                    }
                    t => self.conn_event(Id::from_token(t), bits),
                }
            }
            self.run_pending();
            // Connections accepted in this round are ready at once if their
            // request came with the handshake: one more round picks them up.
            if !(accepted || n == events.len()) {
                break;
            }
        }
        self.events = events;
        // Events recorded in this wake-up go out with its batch; only reads
        // left for later (a streaming budget spent) need another wake-up.
        self.shared.wake_wanted = false;
        if !self.shared.pending.is_empty() {
            self.wake();
        }
    }

    /// Puts connection `id` in the epoll set (edge-triggered: what is
    /// already readable or writable is reported at once). If that fails the
    /// connection is closed, as one that could not be watched from accept.
    fn register(&mut self, id: Id) {
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        if conn.registered {
            return;
        }
        conn.registered = true;
        let fd = conn.fd.as_raw_fd();
        if sys::epoll_ctl(&self.epfd, libc::EPOLL_CTL_ADD, fd, CONN_EVENTS, id.token()).is_err() {
            let act = Act::Close {
                reason: Some(CLOSE_ABORTED),
                reset: false,
            };
            self.apply(id, act);
        }
    }

    /// Registers the connections dispatched at accept that are still open
    /// (`deferred`). The binding calls it right after JavaScript has had the
    /// batch; `poll` calls it first too, for callers that poll directly.
    pub fn register_deferred(&mut self) {
        if self.deferred.is_empty() {
            return;
        }
        let deferred = std::mem::take(&mut self.deferred);
        for &id in &deferred {
            self.register(id);
        }
        let mut deferred = deferred;
        deferred.clear();
        if self.deferred.is_empty() {
            self.deferred = deferred;
        }
    }

    /// Closes or keeps the connection `id` after a step.
    fn apply(&mut self, id: Id, act: Act) {
        let Act::Close { reason, reset } = act else {
            return;
        };
        let Some(conn) = self.conns.remove(id) else {
            return;
        };
        self.open -= 1;
        if let (Some(r), true) = (reason, conn.dispatched) {
            self.shared.batch.rec(EV_CLOSE, id, &[r]);
            self.shared.wake_wanted = true;
        }
        if reset && conn.tcp {
            sys::close_with_reset(conn.fd);
        } else {
            drop(conn.fd);
        }
        self.maybe_resume_accept();
    }

    fn conn_event(&mut self, id: Id, bits: u32) {
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        let (hup, err) = (
            bits & libc::EPOLLHUP as u32 != 0,
            bits & libc::EPOLLERR as u32 != 0,
        );
        if bits & (libc::EPOLLIN | libc::EPOLLRDHUP) as u32 != 0 || hup || err {
            conn.readable = true;
        }
        if bits & libc::EPOLLRDHUP as u32 != 0 || hup {
            conn.rdhup = true;
        }
        if bits & libc::EPOLLOUT as u32 != 0 || hup || err {
            conn.writable = true;
        }
        let act = conn.step(&mut self.shared, id, err);
        self.apply(id, act);
    }

    fn run_pending(&mut self) {
        let pending = std::mem::take(&mut self.shared.pending);
        for &id in &pending {
            let Some(conn) = self.conns.get_mut(id) else {
                continue;
            };
            let act = conn.step(&mut self.shared, id, false);
            self.apply(id, act);
        }
        let mut pending = pending;
        pending.clear();
        if self.shared.pending.is_empty() {
            self.shared.pending = pending;
        }
    }

    fn sweep(&mut self) {
        let now = self.shared.now;
        if self.open == 0 && self.accept_resume_at == 0 {
            sys::timerfd_set(&self.timer, 0);
            self.timer_armed = false;
            return;
        }
        if self.accept_resume_at != 0 && now >= self.accept_resume_at {
            self.maybe_resume_accept();
        }
        for i in 0..self.conns.capacity() {
            let id = self.conns.id_at(i);
            let Some(conn) = self.conns.get_mut(id) else {
                continue;
            };
            if conn.deadline == 0 || now < conn.deadline {
                continue;
            }
            conn.deadline = 0;
            let act = conn.timeout(&mut self.shared, id);
            self.apply(id, act);
        }
    }

    /// `respond(id, bytes, close)`: the last bytes of the response; then
    /// close (`close`: the caller knows the front sends nothing more), or
    /// half-close, drain and close (`Conn::finish`).
    pub fn respond(&mut self, js_id: i64, data: &[u8], close: bool) -> u32 {
        self.shared.now = self.clock();
        let Some(id) = Id::from_js(js_id) else {
            return R_STALE;
        };
        let Some(conn) = self.conns.get_mut(id) else {
            return R_STALE;
        };
        if conn.phase != Phase::Body || conn.ending {
            return R_STALE;
        }
        match conn.respond(&mut self.shared, data, close) {
            Act::Keep if conn.out_pos < conn.out.len() => {
                conn.notify_drain = true;
                R_FULL
            }
            Act::Keep => R_OK,
            Act::Close { reset, .. } => self.closed_by_call(id, reset),
        }
    }

    /// `write(id, bytes)`: part of the response.
    pub fn write(&mut self, js_id: i64, data: &[u8]) -> u32 {
        let Some(id) = Id::from_js(js_id) else {
            return R_STALE;
        };
        let hw = self.shared.cfg.write_high_water;
        let Some(conn) = self.conns.get_mut(id) else {
            return R_STALE;
        };
        if conn.phase != Phase::Body || conn.ending {
            return R_STALE;
        }
        if conn.tcp && !conn.nodelay {
            conn.nodelay = true;
            sys::set_nodelay(&conn.fd);
        }
        conn.queue(data);
        if conn.flush().is_err() {
            self.apply(id, Act::QUIET);
            return R_CLOSED;
        }
        let Some(conn) = self.conns.get_mut(id) else {
            return R_CLOSED;
        };
        if conn.out.len() - conn.out_pos > hw {
            conn.notify_drain = true;
            R_FULL
        } else {
            R_OK
        }
    }

    /// `pause(id)`/`resume(id)`: whether body bytes are read for JavaScript.
    pub fn set_reading(&mut self, js_id: i64, on: bool) -> u32 {
        let Some(id) = Id::from_js(js_id) else {
            return R_STALE;
        };
        let Some(conn) = self.conns.get_mut(id) else {
            return R_STALE;
        };
        conn.want_read = on;
        if on && conn.phase == Phase::Body && conn.body_left > 0 && conn.readable {
            self.shared.pending.push(id);
            self.shared.wake_wanted = true;
        }
        R_OK
    }

    /// `reset(id)` (RST on TCP) or `destroy(id)` (plain close), now, no event.
    pub fn close_conn(&mut self, js_id: i64, reset: bool) -> u32 {
        let Some(id) = Id::from_js(js_id) else {
            return R_STALE;
        };
        if self.conns.get_mut(id).is_none() {
            return R_STALE;
        }
        self.closed_by_call(id, reset)
    }

    /// Closes `id` inside a call JavaScript made (respond, reset, destroy):
    /// the caller learns it from the `R_CLOSED` returned, so no `EV_CLOSE`.
    fn closed_by_call(&mut self, id: Id, reset: bool) -> u32 {
        self.apply(
            id,
            Act::Close {
                reason: None,
                reset,
            },
        );
        R_CLOSED
    }

    /// Closes connections that have sent nothing yet (graceful shutdown). Returns how many.
    pub fn close_idle(&mut self) -> u32 {
        let mut n = 0;
        for i in 0..self.conns.capacity() {
            let id = self.conns.id_at(i);
            let idle = self
                .conns
                .get(id)
                .is_some_and(|c| c.phase == Phase::Header && !c.got_bytes);
            if idle {
                self.apply(id, Act::QUIET);
                n += 1;
            }
        }
        n
    }
}
