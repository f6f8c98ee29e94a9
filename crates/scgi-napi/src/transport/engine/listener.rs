//! The listening socket and the accept policy: how many connections are
//! accepted per wake-up, what happens when accept fails for lack of
//! descriptors (accepting pauses, never spins), what a connection over
//! `maxConnections` or near the descriptor limit gets (the 503 response),
//! and which connections are read at once, before epoll watches them.
//!
//! The listening socket is level-triggered with `EPOLLEXCLUSIVE`, so
//! processes sharing it (cluster workers with their own engines) do not all
//! wake for each connection.

use super::super::conn::{would_block, Act, Conn, Phase, CONN_EVENTS};
use super::super::sys;
use super::{
    Engine, BATCH_ACCEPTED, BATCH_ACCEPT_ERRORS, BATCH_FD_LIMIT, BATCH_OVERLOADED, TOKEN_LISTEN,
};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

/// Connections accepted per wake-up, at most.
const ACCEPT_BUDGET: usize = 128;
/// How long accepting pauses after it ran out of descriptors, ms.
const ACCEPT_BACKOFF_MS: u64 = 100;

impl Engine {
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

    pub(super) fn register_listener(&mut self) -> io::Result<()> {
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

    pub(super) fn unregister_listener(&mut self) {
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
    /// Their events go out with the next wake-up (a wake is wanted).
    pub fn close_listener(&mut self) {
        if self.listener.is_some() {
            self.shared.now = self.clock();
            let before = self.shared.batch.recs[BATCH_ACCEPTED];
            // Bounded: each round accepts up to ACCEPT_BUDGET; a flood
            // faster than this is cut where it is.
            for _ in 0..64 {
                if !self.accept_ready() || self.accept_resume_at != 0 {
                    break;
                }
            }
            if self.shared.batch.recs[BATCH_ACCEPTED] != before {
                self.shared.wake_wanted = true;
            }
        }
        self.unregister_listener();
        self.listener = None;
        self.accept_resume_at = 0;
    }

    pub(super) fn accept_ready(&mut self) -> bool {
        let mut any = false;
        for _ in 0..ACCEPT_BUDGET {
            let Some(l) = &self.listener else { return any };
            let tcp = l.tcp;
            match sys::accept(&l.fd) {
                Ok(fd) => {
                    any = true;
                    self.shared.batch.recs[BATCH_ACCEPTED] += 1;
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
                    self.shared.batch.recs[BATCH_ACCEPT_ERRORS] += 1;
                    self.unregister_listener();
                    self.accept_resume_at = self.shared.now + ACCEPT_BACKOFF_MS;
                    self.arm_timer();
                    break;
                }
            }
        }
        any
    }

    pub(super) fn maybe_resume_accept(&mut self) {
        if self.accept_resume_at != 0 && self.listener.is_some() && !self.listener_registered {
            self.accept_resume_at = 0;
            let _ = self.register_listener();
        }
    }

    /// A connection just accepted: over `maxConnections` or near the
    /// descriptor limit it gets the 503 response; over a unix socket its
    /// request is read at once (see below); else epoll watches it.
    fn add_conn(&mut self, fd: OwnedFd, tcp: bool) {
        let near_fd_limit = fd.as_raw_fd() as u64 >= self.shared.cfg.fd_ceiling;
        let overloaded = near_fd_limit || self.open >= self.shared.cfg.max_connections;
        let Some(id) = self.conns.reserve() else {
            return; // dropping `fd` closes it
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
            self.conns.release(id);
            return;
        }
        let cfg = &self.shared.cfg;
        let deadline = if cfg.header_timeout > 0 {
            self.shared.now + cfg.header_timeout
        } else {
            0
        };
        let mut conn = Conn::new(fd, tcp, deadline);
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
            self.shared.batch.recs[slot] += 1;
            let resp = std::mem::take(&mut self.shared.cfg.resp_503);
            let act = conn.respond(&mut self.shared, &resp, false);
            self.shared.cfg.resp_503 = resp;
            act
        } else if optimistic {
            conn.step(&mut self.shared, id, false)
        } else {
            Act::Keep
        };
        let later = optimistic && matches!(act, Act::Keep) && conn.phase == Phase::Body;
        self.conns.fill(id, conn);
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
}
