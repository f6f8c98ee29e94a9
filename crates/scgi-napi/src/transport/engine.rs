//! The native transport's engine: one listening socket and all its
//! connections in one epoll set, the SCGI connection state machine, and the
//! batch of events handed to JavaScript. No N-API and no `unsafe` here
//! (system calls go through `sys.rs`); `binding.rs` drives it from a `uv_poll`
//! on Node's loop and crosses into JavaScript once per wake-up.
//!
//! Lifecycle of a connection (the engine's half of the phases of
//! `src/lifecycle.ts`, which gets each request at dispatch):
//! `Header` (reading the netstring, `headerTimeout`) → `Open` (handed to JS
//! as soon as the header is complete, with the body bytes read with it; the
//! rest of the body streams while JS wants it; every deadline and limit of a
//! request, `maxBodySize` and `requestTimeout` included, is the lifecycle's)
//! → `Draining` (response written and write side shut; the rest of what the
//! front sends is read and discarded until it closes, up to
//! `maxDrainSize`/`drainTimeout`) → closed.
//!
//! Connections live in a slab; a JS id is `generation * 2^22 + slot`. Closing
//! a connection drops its `OwnedFd` (so it is closed exactly once) and bumps
//! the slot's generation, so a stale id can never reach the socket that
//! reuses the slot or the descriptor number.
//!
//! Connections are registered edge-triggered (`EPOLLIN | EPOLLOUT |
//! EPOLLRDHUP | EPOLLET`) once and never modified; `readable`/`writable`
//! remember an edge until a read or write meets `EAGAIN`. The listening socket
//! is level-triggered with `EPOLLEXCLUSIVE`, so processes sharing it (cluster
//! workers with their own engines) do not all wake for each connection.

use super::sys;
use scgi_parser::{
    parse_raw, OUT_CL_HIGH, OUT_CL_LOW, OUT_CODE, OUT_HEADER_END, OUT_PAIRS, OUT_PAIR_COUNT,
    PAIR_STRIDE,
};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

/// Record types of a batch (`src/transport/native-engine.ts` has the same values).
pub const EV_REQUEST: u32 = 1;
/// A piece of a streamed body: `[start, end, last]`.
pub const EV_DATA: u32 = 2;
/// A connection refused before dispatch: `[code]` (parser codes 1-8, or the `REJECT_*` codes).
pub const EV_REJECT: u32 = 3;
/// A dispatched connection is gone: `[reason]` (`CLOSE_*`).
pub const EV_CLOSE: u32 = 4;
/// Unwritten response bytes fell to zero after `write` returned "over the
/// bound", or after `respond` returned `R_FULL`: the last response byte is
/// written (the drain of unread request bytes starts then).
pub const EV_DRAIN: u32 = 5;

/// Reject code: the front closed before the header was complete.
pub const REJECT_INCOMPLETE_HEADER: u32 = 9;
/// Reject code: no complete header within `headerTimeout`.
pub const REJECT_HEADER_TIMEOUT: u32 = 10;

/// Close reason: closed after the response (normal end).
pub const CLOSE_DONE: u32 = 0;
/// Close reason: the front closed or reset before the response ended.
pub const CLOSE_ABORTED: u32 = 1;
/// Close reason: the front closed before sending `CONTENT_LENGTH` body bytes.
pub const CLOSE_BODY_TRUNCATED: u32 = 2;

/// Batch header slots (counters since the previous batch).
pub const BATCH_ACCEPTED: usize = 0;
/// Connections answered 503 because `maxConnections` were open.
pub const BATCH_OVERLOADED: usize = 1;
/// accept() failures (EMFILE and friends: accepting pauses, never spins).
pub const BATCH_ACCEPT_ERRORS: usize = 2;
/// Connections answered 503 because their descriptor is near the process's limit (`fd_ceiling`).
pub const BATCH_FD_LIMIT: usize = 3;
/// Number of header slots before the first record.
pub const BATCH_HEADER: usize = 4;

/// Results of the calls JS makes on a connection.
pub const R_STALE: u32 = 0;
/// Accepted.
pub const R_OK: u32 = 1;
/// `write`: accepted, but the unwritten bytes are above the bound; `respond`:
/// accepted, but not all written yet. `EV_DRAIN` follows (when they are).
pub const R_FULL: u32 = 2;
/// The connection is closed now (no `EV_CLOSE` follows).
pub const R_CLOSED: u32 = 3;

const SLOT_BITS: u32 = 22;
const SLOT_MASK: u64 = (1 << SLOT_BITS) - 1;
const GEN_MASK: u32 = (1 << 30) - 1;
const TOKEN_LISTEN: u64 = u64::MAX;
const TOKEN_KICK: u64 = u64::MAX - 1;
const TOKEN_TIMER: u64 = u64::MAX - 2;
const READ_CHUNK: usize = 64 * 1024;
const STREAM_BUDGET: usize = 256 * 1024;
const ACCEPT_BUDGET: usize = 128;
const ACCEPT_BACKOFF_MS: u64 = 100;

/// Limits and timeouts, already validated by the caller (`src/server.ts`).
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
    /// below `ulimit -n`, as `src/fd-limit.ts` keeps for net).
    pub fd_ceiling: u64,
    /// The whole 503 response for `maxConnections`.
    pub resp_503: Vec<u8>,
}

/// Events for JavaScript, gathered during one wake-up.
pub struct Batch {
    /// Request and body bytes the records point into.
    pub bytes: Vec<u8>,
    /// `BATCH_HEADER` counters, then records `[type, slot, gen, n, payload × n]`.
    pub recs: Vec<u32>,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            bytes: Vec::with_capacity(64 * 1024),
            recs: vec![0; BATCH_HEADER],
        }
    }
    /// True when there is nothing to tell JavaScript.
    pub fn is_empty(&self) -> bool {
        self.recs.len() == BATCH_HEADER && self.recs.iter().all(|&v| v == 0)
    }
    /// Forgets the delivered events (keeps the allocations).
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.recs.clear();
        self.recs.resize(BATCH_HEADER, 0);
    }
    fn rec(&mut self, ty: u32, id: Id, payload: &[u32]) {
        self.recs
            .extend_from_slice(&[ty, id.slot, id.gen, payload.len() as u32]);
        self.recs.extend_from_slice(payload);
    }
}

#[derive(Copy, Clone, PartialEq, Eq, Debug)]
struct Id {
    slot: u32,
    gen: u32,
}

impl Id {
    fn token(self) -> u64 {
        (u64::from(self.gen) << 32) | u64::from(self.slot)
    }
    fn from_token(t: u64) -> Id {
        Id {
            slot: t as u32,
            gen: (t >> 32) as u32,
        }
    }
    /// Parses a JS id (`gen * 2^22 + slot`).
    fn from_js(v: i64) -> Option<Id> {
        if v < 0 {
            return None;
        }
        let v = v as u64;
        Some(Id {
            slot: (v & SLOT_MASK) as u32,
            gen: u32::try_from(v >> SLOT_BITS).ok()?,
        })
    }
}

#[derive(Copy, Clone, PartialEq, Eq, Debug)]
enum Phase {
    Header,
    Open,
    Draining,
}

struct Conn {
    fd: OwnedFd,
    tcp: bool,
    phase: Phase,
    buf: Vec<u8>,
    need: usize,
    got_bytes: bool,
    header_end: usize,
    content_length: u64,
    body_left: u64,
    readable: bool,
    writable: bool,
    rdhup: bool,
    want_read: bool,
    out: Vec<u8>,
    out_pos: usize,
    ending: bool,
    /// Close as soon as the response is out, without a drain: the caller
    /// knows the front sends nothing more (`Engine::respond`).
    close_after: bool,
    /// In the epoll set (see `Engine::deferred`).
    registered: bool,
    shut: bool,
    notify_drain: bool,
    dispatched: bool,
    nodelay: bool,
    deadline: u64,
    discarded: u64,
}

struct Slot {
    gen: u32,
    conn: Option<Conn>,
}

/// What a step decided about its connection.
enum Act {
    Keep,
    /// Close it; `Some(reason)` emits `EV_CLOSE` (dispatched connections only); `reset` sends RST on TCP.
    Close(Option<u32>, bool),
}

/// State shared by all connections of an engine (borrowed next to the slab).
struct Shared {
    cfg: Config,
    batch: Batch,
    out: Vec<u32>,
    scratch: Vec<u8>,
    now: u64,
    pending: Vec<Id>,
    kick_wanted: bool,
}

/// One listening socket, its connections, and the batch for JavaScript.
pub struct Engine {
    epfd: OwnedFd,
    listener: Option<sys::Listener>,
    listener_registered: bool,
    accept_resume_at: u64,
    timer: OwnedFd,
    timer_armed: bool,
    kick: OwnedFd,
    slots: Vec<Slot>,
    free: Vec<u32>,
    open: usize,
    events: Vec<libc::epoll_event>,
    /// Connections read and dispatched at accept, before epoll watches them
    /// (`add_conn`): registered by `register_deferred` once JavaScript has
    /// had the batch, unless its response closed them first.
    deferred: Vec<Id>,
    sh: Shared,
    /// How far `advance_clock` moved the clock forward, ms.
    #[cfg(any(test, feature = "testing"))]
    skew: u64,
}

const CONN_EVENTS: u32 = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;

fn would_block(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EAGAIN))
}
fn interrupted(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EINTR))
}

impl Engine {
    /// A new engine with no listening socket yet.
    pub fn new(cfg: Config) -> io::Result<Engine> {
        let epfd = sys::epoll_create()?;
        let timer = sys::timerfd()?;
        let kick = sys::eventfd()?;
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
            kick.as_raw_fd(),
            libc::EPOLLIN as u32,
            TOKEN_KICK,
        )?;
        let max_headers = cfg.max_headers;
        Ok(Engine {
            epfd,
            listener: None,
            listener_registered: false,
            accept_resume_at: 0,
            timer,
            timer_armed: false,
            kick,
            slots: Vec::new(),
            free: Vec::new(),
            open: 0,
            events: vec![libc::epoll_event { events: 0, u64: 0 }; 256],
            deferred: Vec::new(),
            sh: Shared {
                cfg,
                batch: Batch::new(),
                out: vec![0; scgi_parser::out_size(max_headers)],
                scratch: vec![0; READ_CHUNK],
                now: sys::now_ms(),
                pending: Vec::new(),
                kick_wanted: false,
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
        self.sh.now = self.clock();
        self.sweep();
    }

    /// The address of connection `js_id`'s peer on TCP (the front's IP and
    /// port); None for a unix socket, a closed or stale id, or a peer that is
    /// already gone. One `getpeername`, made only when asked.
    pub fn peer(&self, js_id: i64) -> Option<std::net::SocketAddr> {
        let id = Id::from_js(js_id)?;
        let slot = self.slots.get(id.slot as usize)?;
        if slot.gen != id.gen {
            return None;
        }
        match &slot.conn {
            Some(conn) if conn.tcp => sys::peer_addr(&conn.fd),
            _ => None,
        }
    }

    /// The epoll descriptor (what the `uv_poll` watches).
    pub fn poll_fd(&self) -> i32 {
        self.epfd.as_raw_fd()
    }

    /// Starts accepting on `l`. Fails if a listener is already set.
    pub fn listen(&mut self, l: sys::Listener) -> io::Result<u16> {
        if self.listener.is_some() {
            return Err(io::Error::from_raw_os_error(libc::EISCONN));
        }
        let port = if l.tcp { sys::local_port(&l.fd) } else { 0 };
        self.listener = Some(l);
        self.register_listener()?;
        Ok(port)
    }

    fn register_listener(&mut self) -> io::Result<()> {
        if let Some(l) = &self.listener {
            let ev = (libc::EPOLLIN | libc::EPOLLEXCLUSIVE) as u32;
            if sys::epoll_ctl(
                &self.epfd,
                libc::EPOLL_CTL_ADD,
                l.fd.as_raw_fd(),
                ev,
                TOKEN_LISTEN,
            )
            .is_err()
            {
                // Kernels before 4.5 have no EPOLLEXCLUSIVE.
                sys::epoll_ctl(
                    &self.epfd,
                    libc::EPOLL_CTL_ADD,
                    l.fd.as_raw_fd(),
                    libc::EPOLLIN as u32,
                    TOKEN_LISTEN,
                )?;
            }
            self.listener_registered = true;
        }
        Ok(())
    }

    fn unregister_listener(&mut self) {
        if let (Some(l), true) = (&self.listener, self.listener_registered) {
            let _ = sys::epoll_ctl(&self.epfd, libc::EPOLL_CTL_DEL, l.fd.as_raw_fd(), 0, 0);
        }
        self.listener_registered = false;
    }

    /// Stops accepting and closes the listening socket (connections stay).
    /// A graceful stop serves every connection that reached the socket:
    /// what waits in the backlog is accepted first (until EAGAIN), as a
    /// wake-up would, so closing the socket resets none of them (the last
    /// process holding a shared socket closes it right after its own drain).
    /// Their events go out with the next wake-up (kicked).
    pub fn close_listener(&mut self) {
        if self.listener.is_some() {
            self.sh.now = self.clock();
            let before = self.sh.batch.recs[BATCH_ACCEPTED];
            // Bounded: each round accepts up to ACCEPT_BUDGET; a flood
            // faster than this is cut where it is.
            for _ in 0..64 {
                if !self.accept_ready() || self.accept_resume_at != 0 {
                    break;
                }
            }
            if self.sh.batch.recs[BATCH_ACCEPTED] != before {
                self.sh.kick_wanted = true;
            }
        }
        self.unregister_listener();
        self.listener = None;
        self.accept_resume_at = 0;
    }

    /// Open connections (all phases).
    pub fn open_count(&self) -> usize {
        self.open
    }

    /// The events gathered so far.
    pub fn batch(&mut self) -> &mut Batch {
        &mut self.sh.batch
    }

    /// Whether a sync call queued events that need a wake-up to be delivered.
    pub fn take_kick(&mut self) -> bool {
        std::mem::take(&mut self.sh.kick_wanted)
    }

    /// Wakes the poller (events queued outside a wake-up, or reads to resume).
    pub fn kick(&self) {
        sys::eventfd_kick(&self.kick);
    }

    fn arm_timer(&mut self) {
        if !self.timer_armed {
            sys::timerfd_set(&self.timer, self.sh.cfg.sweep_ms.max(1));
            self.timer_armed = true;
        }
    }

    /// Handles everything epoll reports now, without blocking; fills the batch.
    pub fn poll(&mut self) {
        self.register_deferred();
        self.sh.now = self.clock();
        let mut events = std::mem::take(&mut self.events);
        for _round in 0..4 {
            let n = sys::epoll_poll(&self.epfd, &mut events);
            let mut accepted = false;
            for ev in &events[..n] {
                let (token, bits) = (ev.u64, ev.events);
                match token {
                    TOKEN_LISTEN => accepted |= self.accept_ready(),
                    TOKEN_KICK => sys::drain_counter(&self.kick),
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
        self.sh.kick_wanted = false;
        if !self.sh.pending.is_empty() {
            self.kick();
        }
    }

    fn accept_ready(&mut self) -> bool {
        let mut any = false;
        for _ in 0..ACCEPT_BUDGET {
            let Some(l) = &self.listener else { return any };
            let tcp = l.tcp;
            match sys::accept(&l.fd) {
                Ok(fd) => {
                    any = true;
                    self.sh.batch.recs[BATCH_ACCEPTED] += 1;
                    self.add_conn(fd, tcp);
                }
                Err(e) if would_block(&e) => break,
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EINTR | libc::ECONNABORTED | libc::EPROTO | libc::EPERM)
                    ) => {}
                Err(_) => {
                    // EMFILE, ENFILE, ENOBUFS, ENOMEM: the listener stays readable,
                    // so a level-triggered wait would spin. Stop watching it until
                    // a connection closes or the backoff passes.
                    self.sh.batch.recs[BATCH_ACCEPT_ERRORS] += 1;
                    self.unregister_listener();
                    self.accept_resume_at = self.sh.now + ACCEPT_BACKOFF_MS;
                    self.arm_timer();
                    break;
                }
            }
        }
        any
    }

    fn maybe_resume_accept(&mut self) {
        if self.accept_resume_at != 0 && self.listener.is_some() && !self.listener_registered {
            self.accept_resume_at = 0;
            let _ = self.register_listener();
        }
    }

    fn add_conn(&mut self, fd: OwnedFd, tcp: bool) {
        let near_fd_limit = fd.as_raw_fd() as u64 >= self.sh.cfg.fd_ceiling;
        let overloaded = near_fd_limit || self.open >= self.sh.cfg.max_connections;
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                if self.slots.len() as u64 > SLOT_MASK {
                    return; // dropping `fd` closes it
                }
                self.slots.push(Slot { gen: 0, conn: None });
                (self.slots.len() - 1) as u32
            }
        };
        let id = Id {
            slot,
            gen: self.slots[slot as usize].gen,
        };
        // Over a unix socket the front has usually written its request by
        // the time it is accepted: read it now, and leave the epoll set out
        // until JavaScript has had the request (most responses close the
        // connection within that call, and then it never joins the set:
        // one system call fewer per request). TCP requests come after the
        // handshake that woke the accept, so they are watched at once.
        let optimistic = !tcp && !overloaded;
        if !optimistic
            && sys::epoll_ctl(
                &self.epfd,
                libc::EPOLL_CTL_ADD,
                fd.as_raw_fd(),
                CONN_EVENTS,
                id.token(),
            )
            .is_err()
        {
            self.free.push(slot);
            return;
        }
        let cfg = &self.sh.cfg;
        let mut conn = Conn {
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
            deadline: if cfg.header_timeout > 0 {
                self.sh.now + cfg.header_timeout
            } else {
                0
            },
            discarded: 0,
        };
        self.open += 1;
        self.arm_timer();
        conn.registered = !optimistic;
        conn.readable = optimistic;
        let act = if overloaded {
            let slot = if near_fd_limit {
                BATCH_FD_LIMIT
            } else {
                BATCH_OVERLOADED
            };
            self.sh.batch.recs[slot] += 1;
            let resp = std::mem::take(&mut self.sh.cfg.resp_503);
            let act = conn.respond(&mut self.sh, &resp, false);
            self.sh.cfg.resp_503 = resp;
            act
        } else if optimistic {
            conn.step(&mut self.sh, id, false)
        } else {
            Act::Keep
        };
        let later = optimistic && matches!(act, Act::Keep) && conn.phase == Phase::Open;
        self.slots[slot as usize].conn = Some(conn);
        if optimistic && matches!(act, Act::Keep) {
            if later {
                self.deferred.push(id);
            } else {
                // The request is not all here yet: watch it from now on.
                self.register(id);
                return;
            }
        }
        self.apply(id, act);
    }

    /// Puts connection `id` in the epoll set (edge-triggered: what is
    /// already readable or writable is reported at once). If that fails the
    /// connection is closed, as one that could not be watched from accept.
    fn register(&mut self, id: Id) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        if conn.registered {
            return;
        }
        conn.registered = true;
        let fd = conn.fd.as_raw_fd();
        if sys::epoll_ctl(&self.epfd, libc::EPOLL_CTL_ADD, fd, CONN_EVENTS, id.token()).is_err() {
            self.apply(id, Act::Close(Some(CLOSE_ABORTED), false));
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
        let Act::Close(reason, reset) = act else {
            return;
        };
        let slot = &mut self.slots[id.slot as usize];
        let Some(conn) = slot.conn.take() else { return };
        slot.gen = (slot.gen + 1) & GEN_MASK;
        self.free.push(id.slot);
        self.open -= 1;
        if let (Some(r), true) = (reason, conn.dispatched) {
            self.sh.batch.rec(EV_CLOSE, id, &[r]);
            self.sh.kick_wanted = true;
        }
        if reset && conn.tcp {
            sys::close_with_reset(conn.fd);
        } else {
            drop(conn.fd);
        }
        self.maybe_resume_accept();
    }

    fn conn_mut(&mut self, id: Id) -> Option<&mut Conn> {
        let slot = self.slots.get_mut(id.slot as usize)?;
        if slot.gen != id.gen {
            return None;
        }
        slot.conn.as_mut()
    }

    fn conn_event(&mut self, id: Id, bits: u32) {
        let sh = &mut self.sh;
        let Some(slot) = self.slots.get_mut(id.slot as usize) else {
            return;
        };
        if slot.gen != id.gen {
            return;
        }
        let Some(conn) = slot.conn.as_mut() else {
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
        let act = conn.step(sh, id, err);
        self.apply(id, act);
    }

    fn run_pending(&mut self) {
        let pending = std::mem::take(&mut self.sh.pending);
        for id in &pending {
            let sh = &mut self.sh;
            let Some(slot) = self.slots.get_mut(id.slot as usize) else {
                continue;
            };
            if slot.gen != id.gen {
                continue;
            }
            let Some(conn) = slot.conn.as_mut() else {
                continue;
            };
            let act = conn.step(sh, *id, false);
            self.apply(*id, act);
        }
        let mut pending = pending;
        pending.clear();
        if self.sh.pending.is_empty() {
            self.sh.pending = pending;
        }
    }

    fn sweep(&mut self) {
        let now = self.sh.now;
        if self.open == 0 && self.accept_resume_at == 0 {
            sys::timerfd_set(&self.timer, 0);
            self.timer_armed = false;
            return;
        }
        if self.accept_resume_at != 0 && now >= self.accept_resume_at {
            self.maybe_resume_accept();
        }
        for i in 0..self.slots.len() {
            let sh = &mut self.sh;
            let slot = &mut self.slots[i];
            let id = Id {
                slot: i as u32,
                gen: slot.gen,
            };
            let Some(conn) = slot.conn.as_mut() else {
                continue;
            };
            if conn.deadline == 0 || now < conn.deadline {
                continue;
            }
            conn.deadline = 0;
            let act = conn.timeout(sh, id);
            self.apply(id, act);
        }
    }

    /// `respond(id, bytes, close)`: the last bytes of the response; then
    /// close (`close`: the caller knows the front sends nothing more), or
    /// half-close, drain and close (`Conn::finish`).
    pub fn respond(&mut self, js_id: i64, data: &[u8], close: bool) -> u32 {
        self.sh.now = self.clock();
        let Some(id) = Id::from_js(js_id) else {
            return R_STALE;
        };
        let sh = &mut self.sh;
        let Some(slot) = self.slots.get_mut(id.slot as usize) else {
            return R_STALE;
        };
        if slot.gen != id.gen {
            return R_STALE;
        }
        let Some(conn) = slot.conn.as_mut() else {
            return R_STALE;
        };
        if conn.phase != Phase::Open || conn.ending {
            return R_STALE;
        }
        match conn.respond(sh, data, close) {
            Act::Keep if conn.out_pos < conn.out.len() => {
                conn.notify_drain = true;
                R_FULL
            }
            Act::Keep => R_OK,
            Act::Close(_, reset) => {
                self.apply(id, Act::Close(None, reset));
                R_CLOSED
            }
        }
    }

    /// `write(id, bytes)`: part of the response.
    pub fn write(&mut self, js_id: i64, data: &[u8]) -> u32 {
        let Some(id) = Id::from_js(js_id) else {
            return R_STALE;
        };
        let hw = self.sh.cfg.write_high_water;
        let Some(conn) = self.conn_mut(id) else {
            return R_STALE;
        };
        if conn.phase != Phase::Open || conn.ending {
            return R_STALE;
        }
        if conn.tcp && !conn.nodelay {
            conn.nodelay = true;
            sys::set_nodelay(&conn.fd);
        }
        conn.queue(data);
        if conn.flush().is_err() {
            self.apply(id, Act::Close(None, false));
            return R_CLOSED;
        }
        let Some(conn) = self.conn_mut(id) else {
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
        let Some(conn) = self.conn_mut(id) else {
            return R_STALE;
        };
        conn.want_read = on;
        if on && conn.phase == Phase::Open && conn.body_left > 0 && conn.readable {
            self.sh.pending.push(id);
            self.sh.kick_wanted = true;
        }
        R_OK
    }

    /// `reset(id)` (RST on TCP) or `destroy(id)` (plain close), now, no event.
    pub fn close_conn(&mut self, js_id: i64, reset: bool) -> u32 {
        let Some(id) = Id::from_js(js_id) else {
            return R_STALE;
        };
        if self.conn_mut(id).is_none() {
            return R_STALE;
        }
        self.apply(id, Act::Close(None, reset));
        R_CLOSED
    }

    /// Closes connections that have sent nothing yet (graceful shutdown). Returns how many.
    pub fn close_idle(&mut self) -> u32 {
        let mut n = 0;
        for i in 0..self.slots.len() {
            let slot = &self.slots[i];
            let id = Id {
                slot: i as u32,
                gen: slot.gen,
            };
            let idle = slot
                .conn
                .as_ref()
                .is_some_and(|c| c.phase == Phase::Header && !c.got_bytes);
            if idle {
                self.apply(id, Act::Close(None, false));
                n += 1;
            }
        }
        n
    }
}

impl Conn {
    /// Does whatever the connection's readiness and phase allow.
    fn step(&mut self, sh: &mut Shared, id: Id, err: bool) -> Act {
        if self.writable && self.out_pos < self.out.len() {
            match self.flush() {
                Ok(()) => {
                    if self.out_pos == self.out.len() {
                        if std::mem::take(&mut self.notify_drain) {
                            sh.batch.rec(EV_DRAIN, id, &[]);
                        }
                        if self.ending {
                            if let Act::Close(r, x) = self.finish(sh) {
                                return Act::Close(r, x);
                            }
                        }
                    }
                }
                Err(_) => {
                    return Act::Close(
                        Some(if self.ending {
                            CLOSE_DONE
                        } else {
                            CLOSE_ABORTED
                        }),
                        false,
                    )
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
                if matches!(act, Act::Keep) && self.phase == Phase::Open && self.rdhup {
                    return self.open_step(sh, err);
                }
                act
            }
            Phase::Open if self.body_left > 0 && self.want_read => {
                let act = self.read_body(sh, id);
                // The body's last bytes and the FIN can come in one wake-up.
                if matches!(act, Act::Keep) && self.body_left == 0 {
                    return self.open_step(sh, err);
                }
                act
            }
            Phase::Open => self.open_step(sh, err),
            Phase::Draining => self.discard(sh),
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
            return Act::Close(Some(CLOSE_ABORTED), true);
        }
        Act::Keep
    }

    fn read_request(&mut self, sh: &mut Shared, id: Id) -> Act {
        let chunk = READ_CHUNK;
        loop {
            match sys::read(&self.fd, &mut sh.scratch[..]) {
                Err(e) if would_block(&e) => {
                    self.readable = false;
                    return Act::Keep;
                }
                Err(e) if interrupted(&e) => continue,
                Err(_) | Ok(0) => return self.eof_before_dispatch(sh, id),
                Ok(n) => {
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
                return Some(Act::Close(None, false));
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
        let base = sh.batch.bytes.len() as u32;
        let end = self.header_end + included;
        sh.batch.bytes.extend_from_slice(&self.buf[..end]);
        let pairs = sh.out[OUT_PAIR_COUNT] as usize;
        let words = OUT_PAIRS + pairs * PAIR_STRIDE;
        let flag = u32::from(included as u64 == self.content_length);
        let recs = &mut sh.batch.recs;
        // [start, end, complete, out...]: the request's bytes are
        // `bytes[start..end]` and `out` is the parser's array for them, as is
        // (offsets relative to `start`), so JS passes both views straight on.
        recs.extend_from_slice(&[EV_REQUEST, id.slot, id.gen, (3 + words) as u32]);
        recs.extend_from_slice(&[base, base + end as u32, flag]);
        recs.extend_from_slice(&sh.out[..words]);
        self.body_left = self.content_length - included as u64;
        self.phase = Phase::Open;
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
        Act::Close(None, false)
    }

    fn read_body(&mut self, sh: &mut Shared, id: Id) -> Act {
        let mut budget = STREAM_BUDGET;
        while self.body_left > 0 && self.want_read {
            let chunk = (self.body_left.min(READ_CHUNK as u64)) as usize;
            match sys::read(&self.fd, &mut sh.scratch[..chunk]) {
                Err(e) if would_block(&e) => {
                    self.readable = false;
                    return Act::Keep;
                }
                Err(e) if interrupted(&e) => continue,
                Err(_) | Ok(0) => return Act::Close(Some(CLOSE_BODY_TRUNCATED), true),
                Ok(n) => {
                    let base = sh.batch.bytes.len() as u32;
                    sh.batch.bytes.extend_from_slice(&sh.scratch[..n]);
                    self.body_left -= n as u64;
                    sh.batch.rec(
                        EV_DATA,
                        id,
                        &[base, base + n as u32, u32::from(self.body_left == 0)],
                    );
                    if n < chunk && !self.rdhup {
                        self.readable = false;
                        return Act::Keep;
                    }
                    budget = budget.saturating_sub(n);
                    if budget == 0 {
                        sh.pending.push(id);
                        sh.kick_wanted = true;
                        return Act::Keep;
                    }
                }
            }
        }
        Act::Keep
    }

    fn discard(&mut self, sh: &mut Shared) -> Act {
        loop {
            match sys::read(&self.fd, &mut sh.scratch[..]) {
                Err(e) if would_block(&e) => {
                    self.readable = false;
                    return Act::Keep;
                }
                Err(e) if interrupted(&e) => continue,
                Err(_) => return Act::Close(Some(CLOSE_DONE), false),
                Ok(0) => {
                    if self.out_pos < self.out.len() {
                        // The front half-closed but may still read the rest of the response.
                        self.readable = false;
                        return Act::Keep;
                    }
                    return Act::Close(Some(CLOSE_DONE), false);
                }
                Ok(n) => {
                    self.discarded += n as u64;
                    if self.discarded > sh.cfg.max_drain_size {
                        return Act::Close(Some(CLOSE_DONE), false);
                    }
                }
            }
        }
    }

    fn queue(&mut self, data: &[u8]) {
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
        self.out.extend_from_slice(data);
    }

    /// Writes queued bytes until done or `EAGAIN`. Err: the peer is gone.
    fn flush(&mut self) -> io::Result<()> {
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
    fn respond(&mut self, sh: &mut Shared, data: &[u8], close: bool) -> Act {
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
                    Err(_) => return Act::Close(Some(CLOSE_ABORTED), false),
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
                return Act::Close(Some(CLOSE_ABORTED), false);
            }
            if self.out_pos == self.out.len() {
                return self.finish(sh);
            }
        }
        Act::Keep
    }

    /// All response bytes are written. With `close_after` (the caller knows
    /// the whole request was read and the front sends nothing more: see
    /// `finishResponse` in src/lifecycle.ts) close at once: the kernel still
    /// delivers the response, then FIN, and with nothing unread, no reset.
    /// Otherwise the front may still be sending: shut the write side (FIN)
    /// and discard what it sends until it closes (or drainTimeout /
    /// maxDrainSize), since closing on bytes still to come makes the kernel
    /// answer RST, and nginx and Apache then truncate the response
    /// (test/drain-after-response.test.ts).
    fn finish(&mut self, sh: &mut Shared) -> Act {
        if self.close_after && self.body_left == 0 && self.discarded == 0 {
            return Act::Close(Some(CLOSE_DONE), false);
        }
        self.phase = Phase::Draining;
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
            return Act::Close(Some(CLOSE_DONE), false);
        }
        if self.readable {
            return self.discard(sh);
        }
        Act::Keep
    }

    fn timeout(&mut self, sh: &mut Shared, id: Id) -> Act {
        match self.phase {
            Phase::Header => {
                sh.batch.rec(EV_REJECT, id, &[REJECT_HEADER_TIMEOUT]);
                Act::Close(None, false)
            }
            // drainTimeout (an open request has no native deadline: its
            // deadlines are the lifecycle's).
            Phase::Open | Phase::Draining => Act::Close(Some(CLOSE_DONE), false),
        }
    }
}

/// The connection state machine driven with arbitrary byte streams, splits,
/// half-closes, disconnects and JS-side actions over real unix sockets (a
/// property test; the lib's N-API side is not involved). The checks are
/// `testing.rs`'s, which `fuzz/fuzz_targets/engine.rs` shares.
#[cfg(test)]
mod state_machine {
    use super::super::testing::{open_fds, take_batch, Call, Model};
    use super::*;
    use proptest::prelude::*;
    use std::io::Write;
    use std::net::Shutdown;
    use std::os::unix::net::UnixStream;

    fn config() -> Config {
        Config {
            max_header_size: 200,
            max_headers: 6,
            flags: 0,
            max_connections: 4,
            header_timeout: 0,
            drain_timeout: 0,
            max_drain_size: 300,
            write_high_water: 64,
            allow_half_open: false,
            sweep_ms: 1000,
            fd_ceiling: u64::MAX,
            resp_503: b"Status: 503\r\n\r\n".to_vec(),
        }
    }

    /// A request-ish byte stream: sometimes valid, sometimes damaged.
    fn stream() -> impl Strategy<Value = Vec<u8>> {
        let valid =
            (0usize..40, proptest::collection::vec(any::<u8>(), 0..8)).prop_map(|(cl, extra)| {
                let block = format!("CONTENT_LENGTH\0{cl}\0SCGI\x001\0");
                let mut v = format!("{}:{},", block.len(), block).into_bytes();
                v.extend(std::iter::repeat_n(b'b', cl));
                v.extend(extra);
                v
            });
        let damaged = (valid.clone(), any::<usize>(), any::<u8>()).prop_map(|(mut v, at, byte)| {
            let at = at % v.len();
            v[at] = byte;
            v
        });
        prop_oneof![
            valid,
            damaged,
            proptest::collection::vec(any::<u8>(), 0..120)
        ]
    }

    #[derive(Debug, Clone)]
    struct ConnPlan {
        bytes: Vec<u8>,
        splits: Vec<usize>,
        /// 0 keep open, 1 half-close, 2 close
        end: u8,
        /// what "JS" does with its request: 0 respond, 1 write+respond, 2 reset, 3 destroy, 4 resume, 5 nothing
        action: u8,
    }

    fn plan() -> impl Strategy<Value = ConnPlan> {
        (
            stream(),
            proptest::collection::vec(1usize..30, 0..6),
            0u8..3,
            0u8..6,
        )
            .prop_map(|(bytes, splits, end, action)| ConnPlan {
                bytes,
                splits,
                end,
                action,
            })
    }

    /// One call, checked by the model; a closed id is refused afterwards.
    fn call(e: &mut Engine, m: &mut Model, id: i64, c: Call, data: &[u8]) -> u32 {
        let r = c.run(e, id, data);
        m.check_call(id, c, r);
        if r == R_CLOSED {
            m.check_call(id, Call::Respond, e.respond(id, b"late", false));
        }
        r
    }

    /// Polls, checks the batch, and lets "JS" act on the requests in it (the
    /// `action` of the next plans, in dispatch order).
    fn step(e: &mut Engine, m: &mut Model, plans: &[ConnPlan], next_plan: &mut usize) {
        e.poll();
        let b = take_batch(e);
        m.apply(&b);
        for ev in &b.events {
            if ev.ty == EV_CLOSE {
                m.check_call(ev.id, Call::Respond, e.respond(ev.id, b"late", false));
            }
            if ev.ty != EV_REQUEST {
                continue;
            }
            let action = plans.get(*next_plan).map_or(0, |pl| pl.action);
            *next_plan += 1;
            if !m.live.contains_key(&ev.id) {
                // Closed in the same wake-up (a FIN or reset came with it).
                continue;
            }
            match action {
                0 => {
                    call(e, m, ev.id, Call::Respond, b"Status: 200 OK\r\n\r\nok");
                }
                1 if call(e, m, ev.id, Call::Write, &[b'x'; 100]) != R_CLOSED => {
                    call(e, m, ev.id, Call::RespondClose, b"end");
                }
                2 => {
                    call(e, m, ev.id, Call::Reset, b"");
                }
                3 => {
                    call(e, m, ev.id, Call::Destroy, b"");
                }
                4 => {
                    call(e, m, ev.id, Call::Resume, b"");
                }
                _ => {}
            }
        }
    }

    /// `close_listener` accepts what waits in the backlog before closing:
    /// the fronts that connected before it get their requests served, none
    /// is reset, and the next wake-up delivers them.
    #[test]
    fn close_listener_accepts_the_backlog_first() {
        let dir =
            std::env::temp_dir().join(format!("scgi-cl-{}-{}", std::process::id(), sys::now_ms()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let mut e = Engine::new(config()).unwrap();
        e.listen(sys::listen_unix(path.as_os_str().as_encoded_bytes(), 64).unwrap())
            .unwrap();
        let req = b"24:CONTENT_LENGTH\x000\x00SCGI\x001\x00,";
        let mut clients: Vec<UnixStream> = (0..3)
            .map(|_| {
                let mut c = UnixStream::connect(&path).unwrap();
                c.write_all(req).unwrap();
                c
            })
            .collect();
        // Nothing polled yet: the three wait in the backlog.
        e.close_listener();
        assert_eq!(e.open_count(), 3);
        assert!(
            UnixStream::connect(&path).is_err(),
            "the listener is closed"
        );
        e.poll();
        let b = take_batch(&mut e);
        let ids: Vec<i64> = b
            .events
            .iter()
            .filter(|ev| ev.ty == EV_REQUEST)
            .map(|ev| ev.id)
            .collect();
        assert_eq!(ids.len(), 3);
        for id in ids {
            assert_eq!(e.respond(id, b"Status: 200 OK\r\n\r\nok", true), R_CLOSED);
        }
        for c in &mut clients {
            let mut got = Vec::new();
            std::io::Read::read_to_end(c, &mut got).unwrap();
            assert_eq!(got, b"Status: 200 OK\r\n\r\nok");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

        #[test]
        fn arbitrary_streams_and_disconnects(plans in proptest::collection::vec(plan(), 1..7)) {
            let dir = std::env::temp_dir().join(format!("scgi-sm-{}-{}", std::process::id(), sys::now_ms()));
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("s.sock");
            let _ = std::fs::remove_file(&path);
            let fds = open_fds();
            let cfg = config();
            let mut m = Model::new(&cfg);
            let mut e = Engine::new(cfg).unwrap();
            e.listen(sys::listen_unix(path.as_os_str().as_encoded_bytes(), 64).unwrap()).unwrap();

            let mut clients = Vec::new();
            let mut next_plan = 0usize;
            for plan in &plans {
                let mut c = Some(UnixStream::connect(&path).unwrap());
                c.as_ref().unwrap().set_nonblocking(true).unwrap();
                let mut at: usize = 0;
                for s in plan.splits.iter().chain(std::iter::once(&usize::MAX)) {
                    let end = at.saturating_add(*s).min(plan.bytes.len());
                    if let (Some(sock), true) = (c.as_mut(), at < end) {
                        let _ = sock.write(&plan.bytes[at..end]);
                    }
                    at = end;
                    if *s == usize::MAX {
                        // The end comes with the last bytes (one wake-up sees both).
                        match plan.end {
                            1 => {
                                let _ = c.as_ref().unwrap().shutdown(Shutdown::Write);
                            }
                            2 => c = None,
                            _ => {}
                        }
                    }
                    step(&mut e, &mut m, &plans, &mut next_plan);
                }
                step(&mut e, &mut m, &plans, &mut next_plan);
                if let Some(c) = c {
                    clients.push(c);
                }
            }
            // Everyone goes away; requests still waiting for "JS" are dropped by it.
            drop(clients);
            for _ in 0..20 {
                step(&mut e, &mut m, &plans, &mut next_plan);
            }
            for (id, c) in m.live.clone() {
                // Only a request whose body JS has not read can outlive its
                // front (as on net, until requestTimeout): every other one
                // was reported closed.
                prop_assert!(c.body_left > 0, "a finished front not reported: {}", id);
                call(&mut e, &mut m, id, Call::Destroy, b"");
            }
            step(&mut e, &mut m, &plans, &mut next_plan);
            prop_assert_eq!(e.open_count(), 0, "connections left open");
            drop(e);
            let _ = std::fs::remove_dir_all(&dir);
            prop_assert_eq!(open_fds(), fds, "descriptors leaked");
        }
    }
}
