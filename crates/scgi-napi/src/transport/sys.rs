//! Thin, checked wrappers over the Linux system calls the native transport
//! uses. Every file descriptor the engine owns is an [`OwnedFd`]: it is closed
//! exactly once, when the owner is dropped, so a double close or a use after
//! close cannot be written without `unsafe` outside this file.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// The calling thread's last OS error.
pub fn last_error() -> io::Error {
    io::Error::last_os_error()
}

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(last_error())
    } else {
        Ok(ret)
    }
}

/// Takes ownership of a descriptor a successful system call just returned.
fn own(fd: libc::c_int) -> OwnedFd {
    // SAFETY: callers pass only a descriptor that a system call returned to us
    // this instant, which nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// `epoll_create1(EPOLL_CLOEXEC)`.
pub fn epoll_create() -> io::Result<OwnedFd> {
    // SAFETY: no pointers; the result is checked.
    cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) }).map(own)
}

/// `epoll_ctl(op, fd, {events, token})`.
pub fn epoll_ctl(
    epfd: &OwnedFd,
    op: libc::c_int,
    fd: RawFd,
    events: u32,
    token: u64,
) -> io::Result<()> {
    let mut ev = libc::epoll_event { events, u64: token };
    // SAFETY: `ev` is a valid epoll_event for the duration of the call.
    cvt(unsafe { libc::epoll_ctl(epfd.as_raw_fd(), op, fd, &mut ev) }).map(drop)
}

/// `epoll_wait(epfd, events, 0)`: never blocks. Returns how many entries were filled.
pub fn epoll_poll(epfd: &OwnedFd, events: &mut [libc::epoll_event]) -> usize {
    let max = events.len().min(i32::MAX as usize) as libc::c_int;
    // SAFETY: `events` is a valid, writable array of `max` entries.
    let n = unsafe { libc::epoll_wait(epfd.as_raw_fd(), events.as_mut_ptr(), max, 0) };
    n.max(0) as usize
}

/// A non-blocking `eventfd`.
pub fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: no pointers; the result is checked.
    cvt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) }).map(own)
}

/// Adds one to an eventfd (wakes its poller).
pub fn eventfd_wake(fd: &OwnedFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a valid local.
    unsafe { libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
}

/// Reads (and so resets) an eventfd or timerfd counter; ignores EAGAIN.
pub fn drain_counter(fd: &OwnedFd) {
    let mut v: u64 = 0;
    // SAFETY: reads at most 8 bytes into a valid local.
    unsafe { libc::read(fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
}

/// A non-blocking monotonic `timerfd`.
pub fn timerfd() -> io::Result<OwnedFd> {
    // SAFETY: no pointers; the result is checked.
    cvt(unsafe {
        libc::timerfd_create(
            libc::CLOCK_MONOTONIC,
            libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
        )
    })
    .map(own)
}

/// Arms a timerfd to fire every `interval_ms` (0 disarms it).
pub fn timerfd_set(fd: &OwnedFd, interval_ms: u64) {
    let ts = libc::timespec {
        tv_sec: (interval_ms / 1000) as libc::time_t,
        tv_nsec: ((interval_ms % 1000) * 1_000_000) as libc::c_long,
    };
    let spec = libc::itimerspec {
        it_interval: ts,
        it_value: ts,
    };
    // SAFETY: `spec` is a valid itimerspec; the old value is not requested.
    unsafe { libc::timerfd_settime(fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
}

/// Milliseconds on the monotonic clock.
pub fn now_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// Whether descriptor `fd` is readable now (a listening socket: a connection
/// waits in its backlog). One `poll` with no timeout; false on any error.
pub fn readable_now(fd: RawFd) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `p` is one valid pollfd for the duration of the call.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n == 1 && (p.revents & libc::POLLIN) != 0
}

/// `accept4(fd, NONBLOCK | CLOEXEC)`.
pub fn accept(listener: &OwnedFd) -> io::Result<OwnedFd> {
    // SAFETY: null address pointers are allowed (the peer address is not wanted).
    cvt(unsafe {
        libc::accept4(
            listener.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    })
    .map(own)
}

/// `read(fd, buf)`; `Ok(0)` is end of stream.
pub fn read(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid and writable for `buf.len()` bytes.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(last_error())
    } else {
        Ok(n as usize)
    }
}

/// `send(fd, buf, MSG_NOSIGNAL)`: a peer that went away is EPIPE, not SIGPIPE.
pub fn write(fd: &OwnedFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for `buf.len()` bytes.
    let n = unsafe {
        libc::send(
            fd.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_NOSIGNAL,
        )
    };
    if n < 0 {
        Err(last_error())
    } else {
        Ok(n as usize)
    }
}

/// `shutdown(fd, SHUT_WR)`: sends FIN after the queued bytes.
pub fn shutdown_write(fd: &OwnedFd) {
    // SAFETY: no pointers.
    unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_WR) };
}

fn setsockopt_int(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: passes a pointer to a valid int and its size.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// `TCP_NODELAY` on.
pub fn set_nodelay(fd: &OwnedFd) {
    let _ = setsockopt_int(fd.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_NODELAY, 1);
}

/// Closes `fd` with a reset (RST) on TCP: `SO_LINGER` {on, 0} then close.
pub fn close_with_reset(fd: OwnedFd) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: passes a pointer to a valid linger struct and its size.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    drop(fd);
}

/// A listening socket and whether it is TCP (resets are possible) or unix.
pub struct Listener {
    /// The socket.
    pub fd: OwnedFd,
    /// AF_INET/AF_INET6 (true) or AF_UNIX (false).
    pub tcp: bool,
}

fn make_socket(family: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: no pointers; the result is checked.
    cvt(unsafe {
        libc::socket(
            family,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })
    .map(own)
}

fn bind_listen(
    fd: &OwnedFd,
    addr: *const libc::sockaddr,
    len: libc::socklen_t,
    backlog: i32,
) -> io::Result<()> {
    // SAFETY: `addr` points to a sockaddr of `len` bytes owned by the caller for this call.
    cvt(unsafe { libc::bind(fd.as_raw_fd(), addr, len) })?;
    // SAFETY: no pointers.
    cvt(unsafe { libc::listen(fd.as_raw_fd(), backlog) }).map(drop)
}

/// Binds and listens on a unix socket path (the caller removes a stale file first).
pub fn listen_unix(path: &[u8], backlog: i32) -> io::Result<Listener> {
    // SAFETY: sockaddr_un is plain data; all-zero is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if path.is_empty() || path.len() >= addr.sun_path.len() || path.contains(&0) {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in addr.sun_path.iter_mut().zip(path) {
        *d = *s as libc::c_char;
    }
    let fd = make_socket(libc::AF_UNIX)?;
    let len = (std::mem::size_of::<libc::sa_family_t>() + path.len() + 1) as libc::socklen_t;
    bind_listen(
        &fd,
        (&addr as *const libc::sockaddr_un).cast(),
        len,
        backlog,
    )?;
    Ok(Listener { fd, tcp: false })
}

/// Binds and listens on an IP literal and port (0: any free port).
pub fn listen_tcp(ip: std::net::IpAddr, port: u16, backlog: i32) -> io::Result<Listener> {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let fd = make_socket(libc::AF_INET)?;
            setsockopt_int(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
            // SAFETY: sockaddr_in is plain data; all-zero is a valid value.
            let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            addr.sin_family = libc::AF_INET as libc::sa_family_t;
            addr.sin_port = port.to_be();
            addr.sin_addr.s_addr = u32::from_ne_bytes(v4.octets());
            let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            bind_listen(
                &fd,
                (&addr as *const libc::sockaddr_in).cast(),
                len,
                backlog,
            )?;
            Ok(Listener { fd, tcp: true })
        }
        std::net::IpAddr::V6(v6) => {
            let fd = make_socket(libc::AF_INET6)?;
            setsockopt_int(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
            // SAFETY: sockaddr_in6 is plain data; all-zero is a valid value.
            let mut addr: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            addr.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            addr.sin6_port = port.to_be();
            addr.sin6_addr.s6_addr = v6.octets();
            let len = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            bind_listen(
                &fd,
                (&addr as *const libc::sockaddr_in6).cast(),
                len,
                backlog,
            )?;
            Ok(Listener { fd, tcp: true })
        }
    }
}

/// Takes a listening socket inherited from elsewhere (systemd, a cluster
/// primary): checks it is a listening stream socket, makes it non-blocking
/// and owns a duplicate (the caller keeps its own descriptor).
pub fn adopt(fd: RawFd) -> io::Result<Listener> {
    let mut val: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `val`/`len` are valid out-pointers of the right size.
    cvt(unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&mut val as *mut libc::c_int).cast(),
            &mut len,
        )
    })?;
    if val == 0 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let mut domain: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: as above.
    cvt(unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_DOMAIN,
            (&mut domain as *mut libc::c_int).cast(),
            &mut len,
        )
    })?;
    // SAFETY: no pointers; the new descriptor is checked and then owned.
    let dup = cvt(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) }).map(own)?;
    // SAFETY: no pointers.
    let flags = cvt(unsafe { libc::fcntl(dup.as_raw_fd(), libc::F_GETFL) })?;
    // SAFETY: no pointers. O_NONBLOCK is a property of the shared open file
    // description, which the inherited descriptor must have for epoll anyway.
    cvt(unsafe { libc::fcntl(dup.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) })?;
    Ok(Listener {
        fd: dup,
        tcp: domain != libc::AF_UNIX,
    })
}

/// An IP socket address from a `sockaddr_storage` the kernel filled; None
/// for other families (unix).
fn ip_addr(ss: &libc::sockaddr_storage) -> Option<std::net::SocketAddr> {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
    match ss.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, and
            // sockaddr_storage is large and aligned enough for any sockaddr.
            let sin =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes()),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6 (as above).
            let sin6 =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                u32::from_be(sin6.sin6_flowinfo),
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// `getsockname` (`peer` false) or `getpeername` (`peer` true) of `fd` as
/// an IP address and port; None for a unix socket or when the call fails
/// (the peer is gone: `ENOTCONN`).
fn sock_addr(fd: &OwnedFd, peer: bool) -> Option<std::net::SocketAddr> {
    // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let ptr = (&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr>();
    // SAFETY: `ss` has room for `len` bytes; the kernel writes at most that
    // many and updates `len`.
    let r = unsafe {
        if peer {
            libc::getpeername(fd.as_raw_fd(), ptr, &mut len)
        } else {
            libc::getsockname(fd.as_raw_fd(), ptr, &mut len)
        }
    };
    if r < 0 {
        return None;
    }
    ip_addr(&ss)
}

/// The address and port of a connected TCP socket's peer; None for a unix
/// socket or a peer that is gone.
pub fn peer_addr(fd: &OwnedFd) -> Option<std::net::SocketAddr> {
    sock_addr(fd, true)
}

/// The port a TCP listener is bound to (0 for unix sockets).
pub fn local_port(fd: &OwnedFd) -> u16 {
    sock_addr(fd, false).map_or(0, |a| a.port())
}
