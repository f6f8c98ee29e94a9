//! `unixListenQueue(inode)`: the listen queue of a listening unix socket, from
//! the kernel's sock_diag netlink interface (Linux only). `/proc/net/unix`
//! names a socket but not how many connections wait in its accept queue; a
//! `SOCK_DIAG_BY_FAMILY` request for that inode with `UDIAG_SHOW_RQLEN` does
//! (what `ss -xl` shows as Recv-Q/Send-Q). For a listening socket the kernel
//! reports the connections waiting to be accepted (`rqueue`) and the backlog
//! (`wqueue`). Used by the status endpoint (`src/status/listen-queue.ts`).
//!
//! Returns `[waiting, backlog]`, or `undefined` when the kernel does not say
//! (no such socket, sock_diag or its unix module missing, a sandbox that
//! refuses netlink). Every `unsafe` block is a libc or N-API call with its
//! contract stated; no panic crosses into C (the body runs in `js::guarded`).

use crate::js::{args, guarded, throw};
use napi::sys as n;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::null_mut;

const NETLINK_SOCK_DIAG: libc::c_int = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const TCP_LISTEN: u32 = 10;
const UDIAG_SHOW_RQLEN: u32 = 0x10;
const UNIX_DIAG_RQLEN: u16 = 4;
/// `struct nlmsghdr` + `struct unix_diag_req`.
const REQ_LEN: usize = 16 + 24;
/// `struct nlmsghdr` + `struct unix_diag_msg`: where the attributes start.
const ATTRS_AT: usize = 16 + 16;

/// The request for one socket by inode, as the kernel's `unix_diag_get_exact` reads it.
fn request(inode: u32) -> [u8; REQ_LEN] {
    let mut b = [0u8; REQ_LEN];
    b[0..4].copy_from_slice(&(REQ_LEN as u32).to_ne_bytes()); // nlmsg_len
    b[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes()); // nlmsg_type
    b[6..8].copy_from_slice(&NLM_F_REQUEST.to_ne_bytes()); // nlmsg_flags
    b[8..12].copy_from_slice(&1u32.to_ne_bytes()); // nlmsg_seq; nlmsg_pid 0: the kernel
    b[16] = libc::AF_UNIX as u8; // sdiag_family; sdiag_protocol 0, pad 0
    b[20..24].copy_from_slice(&(1u32 << TCP_LISTEN).to_ne_bytes()); // udiag_states
    b[24..28].copy_from_slice(&inode.to_ne_bytes()); // udiag_ino
    b[28..32].copy_from_slice(&UDIAG_SHOW_RQLEN.to_ne_bytes()); // udiag_show
    b[32..40].fill(0xff); // udiag_cookie: INET_DIAG_NOCOOKIE, any
    b
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// `(rqueue, wqueue)` from the kernel's answer, None for an error message or
/// an answer without the attribute.
fn parse_answer(b: &[u8]) -> Option<(u32, u32)> {
    let len = (u32_at(b, 0)? as usize).min(b.len());
    if u16_at(b, 4)? != SOCK_DIAG_BY_FAMILY {
        return None; // NLMSG_ERROR (ENOENT: no such socket) or anything else
    }
    let mut at = ATTRS_AT;
    while at + 4 <= len {
        let alen = u16_at(b, at)? as usize;
        if alen < 4 {
            return None;
        }
        if u16_at(b, at + 2)? == UNIX_DIAG_RQLEN {
            return Some((u32_at(b, at + 4)?, u32_at(b, at + 8)?));
        }
        at += (alen + 3) & !3; // RTA_ALIGN
    }
    None
}

/// Asks the kernel; None when it does not answer with the queue.
pub fn unix_listen_queue(inode: u32) -> Option<(u32, u32)> {
    // SAFETY: socket(2) with constant arguments; the result is checked.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            NETLINK_SOCK_DIAG,
        )
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` was returned by socket(2) just now and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let req = request(inode);
    // SAFETY: `req` is a live buffer of `req.len()` bytes for the call; the
    // kernel is the default destination of an unbound netlink socket.
    let sent = unsafe { libc::send(fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
    if sent != req.len() as isize {
        return None;
    }
    let mut buf = [0u8; 512];
    loop {
        // SAFETY: `buf` is writable for `buf.len()` bytes for the call. The
        // socket is blocking: the kernel answers a sock_diag request at once.
        let got = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if got < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        if got <= 0 {
            return None;
        }
        let got = buf.get(..got as usize)?;
        if u16_at(got, 4) == Some(NLMSG_ERROR) {
            return None;
        }
        return parse_answer(got);
    }
}

/// `unixListenQueue(inode: number): [waiting, backlog] | undefined`.
unsafe extern "C" fn unix_listen_queue_cb(
    env: n::napi_env,
    info: n::napi_callback_info,
) -> n::napi_value {
    let body = || -> n::napi_value {
        let mut ret = null_mut();
        // SAFETY: `env` is this call's.
        let usage = || unsafe { throw(env, false, c"unixListenQueue(inode)") };
        // SAFETY: `env`/`info` are this call's.
        let Some([a]) = (unsafe { args::<1>(env, info) }) else {
            return usage();
        };
        let mut inode = 0u32;
        // SAFETY: `a` is an argument of this call; `inode` a valid out-pointer.
        if unsafe { n::napi_get_value_uint32(env, a, &mut inode) } != n::Status::napi_ok {
            return usage();
        }
        match unix_listen_queue(inode) {
            None => {
                // SAFETY: `ret` is a valid out-pointer.
                unsafe { n::napi_get_undefined(env, &mut ret) };
            }
            Some((waiting, backlog)) => {
                let (mut w, mut b) = (null_mut(), null_mut());
                // SAFETY: values of this call's env; all out-pointers are valid locals.
                unsafe {
                    n::napi_create_uint32(env, waiting, &mut w);
                    n::napi_create_uint32(env, backlog, &mut b);
                    n::napi_create_array_with_length(env, 2, &mut ret);
                    n::napi_set_element(env, ret, 0, w);
                    n::napi_set_element(env, ret, 1, b);
                }
            }
        }
        ret
    };
    // SAFETY: `env` is this call's.
    unsafe { guarded(env, c"scgi unixListenQueue panicked", body) }
}

/// Registers `unixListenQueue` on `exports` (Linux only; see lib.rs).
pub fn register(env: n::napi_env, exports: n::napi_value) -> Result<(), String> {
    crate::js::register(env, exports, &[("unixListenQueue", unix_listen_queue_cb)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listening_socket_reports_its_waiting_connections() {
        use std::os::unix::fs::MetadataExt;
        use std::os::unix::net::{UnixListener, UnixStream};
        let dir = std::env::temp_dir().join(format!("scgi-diag-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let listener = UnixListener::bind(&dir).unwrap();
        let inode = std::fs::metadata(format!("/proc/self/fd/{}", listener.as_raw_fd()))
            .unwrap()
            .ino() as u32;
        let Some((before, _)) = unix_listen_queue(inode) else {
            std::fs::remove_file(&dir).unwrap();
            eprintln!("sock_diag for unix sockets is not available here");
            return;
        };
        let _clients: Vec<_> = (0..3).map(|_| UnixStream::connect(&dir).unwrap()).collect();
        let (after, backlog) = unix_listen_queue(inode).unwrap();
        std::fs::remove_file(&dir).unwrap();
        assert_eq!((before, after), (0, 3));
        assert!(backlog > 0);
        assert_eq!(unix_listen_queue(u32::MAX), None);
    }
}
