//! N-API binding of the native transport (Linux only): an [`engine::Engine`]
//! per server, its epoll descriptor watched by one `uv_poll` on the loop of
//! the Node environment that created it, so all I/O runs on that JS thread
//! (main thread or a `worker_threads` worker) with no cross-thread wake-ups.
//! Each wake-up crosses into JavaScript at most once, with one `Buffer` and
//! one `Uint32Array` (see `batch.rs` for the record layout and
//! `dispatchBatch` in `src/transport/native-engine.ts` for the reader).
//!
//! The per-instance state and its lifetime (the `Cell` a wrapper object
//! owns, the `uv_poll` that watches the engine, teardown, the poll callback
//! that delivers a batch) are in `binding/cell.rs`.

use super::batch::{
    CONFIG_FIELDS, CONSTANTS, OP_DESTROY, OP_PAUSE, OP_RESET, OP_RESUME, SERVER_OP_CLOSE,
    SERVER_OP_CLOSE_IDLE, SERVER_OP_CLOSE_LISTENER, SERVER_OP_OPEN_COUNT, SERVER_OP_REF,
    SERVER_OP_UNREF,
};
use super::engine::{self, Engine};
use super::sys;
use crate::js::{args, bytes, guarded, int, num, ret_u32, string, throw, typed_array, Typed};
use cell::{
    cell_of, engine_of, finalize, napi_add_async_cleanup_hook, on_env_cleanup, on_poll, poll_words,
    teardown, uv_poll_init, uv_poll_start, uv_ref, uv_unref, Cell, UV_READABLE,
};
use napi::sys as n;
use std::ffi::{c_void, CStr};
use std::ptr::null_mut;

mod cell;

type Value = n::napi_value;
type Env = n::napi_env;

/// The message of the Error a panic in a transport callback throws.
const PANICKED: &CStr = c"scgi native transport panicked";

// ---------------------------------------------------------------------------
// An OS error thrown to JavaScript (the generic argument helpers are in
// `crate::js`).

unsafe fn throw_os(env: Env, err: &std::io::Error, what: &str) -> Value {
    let errno = err.raw_os_error().unwrap_or(0);
    let code = match errno {
        libc::EADDRINUSE => "EADDRINUSE",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::EACCES => "EACCES",
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ENOTDIR => "ENOTDIR",
        libc::EINVAL => "EINVAL",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOTSOCK => "ENOTSOCK",
        libc::EBADF => "EBADF",
        libc::EISCONN => "EISCONN",
        libc::EMFILE => "EMFILE",
        libc::ENFILE => "ENFILE",
        _ => "EUNKNOWN",
    };
    let msg = format!("{what} {code}: {err}");
    let (mut c, mut m, mut e) = (null_mut(), null_mut(), null_mut());
    // SAFETY: the strings are valid UTF-8 with explicit lengths; `e` is thrown once.
    unsafe {
        n::napi_create_string_utf8(env, code.as_ptr().cast(), code.len() as isize, &mut c);
        n::napi_create_string_utf8(env, msg.as_ptr().cast(), msg.len() as isize, &mut m);
        n::napi_create_error(env, c, m, &mut e);
        let mut num = null_mut();
        n::napi_create_int32(env, -errno, &mut num);
        n::napi_set_named_property(env, e, c"errno".as_ptr(), num);
        n::napi_throw(env, e);
    }
    null_mut()
}

// ---------------------------------------------------------------------------
// The exported functions.

/// `transportCreate(options: Float64Array, onBatch: Function, resp503: Uint8Array): object`
unsafe extern "C" fn create_cb(env: Env, info: n::napi_callback_info) -> Value {
    const USAGE: &CStr =
        c"transportCreate(options: Float64Array, onBatch: Function, resp503: Uint8Array)";
    // SAFETY: every call below uses this callback's env and its arguments.
    unsafe {
        guarded(env, PANICKED, || {
            let Some([opts, cb, r503]) = args::<3>(env, info) else {
                return throw(env, false, USAGE);
            };
            let o = match typed_array(env, opts, n::TypedarrayType::float64_array) {
                Typed::Ok(data, len) if len == CONFIG_FIELDS.len() => {
                    std::slice::from_raw_parts(data.cast::<f64>(), len).to_vec()
                }
                _ => return throw(env, false, USAGE),
            };
            let Some(r503) = bytes(env, r503) else {
                return throw(env, false, USAGE);
            };
            let mut vt = 0;
            n::napi_typeof(env, cb, &mut vt);
            if vt != n::ValueType::napi_function {
                return throw(env, false, USAGE);
            }
            let clamp = |v: f64| {
                if v.is_finite() && v > 0.0 {
                    v.min(u64::MAX as f64) as u64
                } else if v > 0.0 {
                    u64::MAX
                } else {
                    0
                }
            };
            // The field named `name` (CONFIG_FIELDS is the order; a name
            // not in it fails the build's tests, not a request).
            let field = |name: &str| {
                let i = CONFIG_FIELDS.iter().position(|&f| f == name);
                o[i.expect("a CONFIG_FIELDS name")]
            };
            let cfg = engine::Config {
                max_header_size: clamp(field("maxHeaderSize")).min(u64::from(u32::MAX)) as u32,
                max_headers: clamp(field("maxHeadersCount")).min(1 << 20) as u32,
                flags: clamp(field("strict")) as u32,
                max_connections: clamp(field("maxConnections")).min(usize::MAX as u64) as usize,
                header_timeout: clamp(field("headerTimeout")),
                drain_timeout: clamp(field("drainTimeout")),
                max_drain_size: clamp(field("maxDrainSize")),
                write_high_water: clamp(field("writeHighWaterMark")).min(usize::MAX as u64)
                    as usize,
                allow_half_open: field("allowHalfOpen") != 0.0,
                sweep_ms: clamp(field("sweepInterval")).clamp(1, 3_600_000),
                fd_ceiling: clamp(field("fdCeiling")),
                resp_503: r503.to_vec(),
            };
            let engine = match Engine::new(cfg) {
                Ok(e) => Box::new(e),
                Err(e) => return throw_os(env, &e, "transportCreate"),
            };
            let mut lp = null_mut();
            if n::napi_get_uv_event_loop(env, &mut lp) != n::Status::napi_ok || lp.is_null() {
                n::napi_throw_error(env, null_mut(), c"no libuv loop".as_ptr());
                return null_mut();
            }
            let poll = Box::into_raw(vec![0u64; poll_words()].into_boxed_slice()).cast::<c_void>();
            if uv_poll_init(lp.cast(), poll, engine.poll_fd()) != 0 {
                drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                    poll.cast::<u64>(),
                    poll_words(),
                )));
                n::napi_throw_error(env, null_mut(), c"uv_poll_init failed".as_ptr());
                return null_mut();
            }
            let cell = Box::into_raw(Box::new(Cell {
                env,
                engine: Some(engine),
                poll,
                callback: null_mut(),
                wrapper: null_mut(),
                async_ctx: null_mut(),
                cleanup: null_mut(),
            }));
            *poll.cast::<*mut Cell>() = cell;
            let mut obj = null_mut();
            n::napi_create_object(env, &mut obj);
            if n::napi_wrap(
                env,
                obj,
                cell.cast(),
                Some(finalize),
                null_mut(),
                null_mut(),
            ) != n::Status::napi_ok
            {
                // Not wrapped: nothing else knows the cell; close the handle, free it.
                teardown(&mut *cell, null_mut());
                drop(Box::from_raw(cell));
                n::napi_throw_error(env, null_mut(), c"napi_wrap failed".as_ptr());
                return null_mut();
            }
            let c = &mut *cell;
            n::napi_create_reference(env, cb, 1, &mut c.callback);
            n::napi_create_reference(env, obj, 1, &mut c.wrapper);
            let mut name = null_mut();
            n::napi_create_string_utf8(env, c"scgi.NativeTransport".as_ptr(), 20, &mut name);
            n::napi_async_init(env, obj, name, &mut c.async_ctx);
            napi_add_async_cleanup_hook(env, on_env_cleanup, cell.cast(), &mut c.cleanup);
            uv_poll_start(poll, UV_READABLE, on_poll);
            obj
        })
    }
}

/// `transportListenUnix(t, path: string, backlog: number): void`
unsafe extern "C" fn listen_unix_cb(env: Env, info: n::napi_callback_info) -> Value {
    // SAFETY: as in create_cb.
    unsafe {
        guarded(env, PANICKED, || {
            let Some([t, path, backlog]) = args::<3>(env, info) else {
                return throw(env, false, c"transportListenUnix(t, path, backlog)");
            };
            let (Some(engine), Some(path), Some(backlog)) =
                (engine_of(env, t), string(env, path), num(env, backlog))
            else {
                return throw(env, false, c"transportListenUnix(t, path, backlog)");
            };
            match sys::listen_unix(&path, backlog as i32).and_then(|l| engine.listen(l)) {
                Ok(_) => ret_u32(env, 0),
                Err(e) => throw_os(env, &e, "listen"),
            }
        })
    }
}

/// `transportListenTcp(t, ip: string, port: number, backlog: number): number` (the bound port)
unsafe extern "C" fn listen_tcp_cb(env: Env, info: n::napi_callback_info) -> Value {
    const USAGE: &CStr = c"transportListenTcp(t, ip, port, backlog)";
    // SAFETY: as in create_cb.
    unsafe {
        guarded(env, PANICKED, || {
            let Some([t, ip, port, backlog]) = args::<4>(env, info) else {
                return throw(env, false, USAGE);
            };
            let (Some(engine), Some(ip), Some(port), Some(backlog)) = (
                engine_of(env, t),
                string(env, ip),
                num(env, port),
                num(env, backlog),
            ) else {
                return throw(env, false, USAGE);
            };
            let Some(ip) = std::str::from_utf8(&ip)
                .ok()
                .and_then(|s| s.parse::<std::net::IpAddr>().ok())
            else {
                return throw(env, false, USAGE);
            };
            match sys::listen_tcp(ip, port as u16, backlog as i32).and_then(|l| engine.listen(l)) {
                Ok(p) => ret_u32(env, u32::from(p)),
                Err(e) => throw_os(env, &e, "listen"),
            }
        })
    }
}

/// `transportAdopt(t, fd: number): number` (port, 0 for unix): listens on a
/// duplicate of an inherited listening socket.
unsafe extern "C" fn adopt_cb(env: Env, info: n::napi_callback_info) -> Value {
    // SAFETY: as in create_cb.
    unsafe {
        guarded(env, PANICKED, || {
            let Some([t, fd]) = args::<2>(env, info) else {
                return throw(env, false, c"transportAdopt(t, fd)");
            };
            let (Some(engine), Some(fd)) = (engine_of(env, t), num(env, fd)) else {
                return throw(env, false, c"transportAdopt(t, fd)");
            };
            match sys::adopt(fd as i32).and_then(|l| engine.listen(l)) {
                Ok(p) => ret_u32(env, u32::from(p)),
                Err(e) => throw_os(env, &e, "adopt"),
            }
        })
    }
}

/// `transportListenSocket(address: string, port: number, backlog: number): [fd, port]`:
/// a listening socket that no engine watches, for a cluster primary to hand
/// to its workers, each of which adopts it (`src/server/cluster.ts`). `port` < 0:
/// `address` is a unix socket path (and the port returned is 0). The
/// descriptor is close-on-exec and the caller's to close.
unsafe extern "C" fn listen_socket_cb(env: Env, info: n::napi_callback_info) -> Value {
    const USAGE: &CStr = c"transportListenSocket(address, port, backlog)";
    // SAFETY: as in create_cb.
    unsafe {
        guarded(env, PANICKED, || {
            let Some([address, port, backlog]) = args::<3>(env, info) else {
                return throw(env, false, USAGE);
            };
            let (Some(address), Some(port), Some(backlog)) =
                (string(env, address), num(env, port), num(env, backlog))
            else {
                return throw(env, false, USAGE);
            };
            let listener = if port < 0.0 {
                sys::listen_unix(&address, backlog as i32)
            } else {
                let Some(ip) = std::str::from_utf8(&address)
                    .ok()
                    .and_then(|s| s.parse::<std::net::IpAddr>().ok())
                else {
                    return throw(env, false, USAGE);
                };
                sys::listen_tcp(ip, port as u16, backlog as i32)
            };
            match listener {
                Ok(l) => {
                    let port = if l.tcp { sys::local_port(&l.fd) } else { 0 };
                    let fd = std::os::fd::IntoRawFd::into_raw_fd(l.fd);
                    let mut pair = null_mut();
                    n::napi_create_array_with_length(env, 2, &mut pair);
                    n::napi_set_element(env, pair, 0, ret_u32(env, fd as u32));
                    n::napi_set_element(env, pair, 1, ret_u32(env, u32::from(port)));
                    pair
                }
                Err(e) => throw_os(env, &e, "listen"),
            }
        })
    }
}

/// After a call that may have queued events or reads: wake the poller.
fn wake_if_wanted(engine: &mut Engine) {
    if engine.take_wake_wanted() {
        engine.wake();
    }
}

/// `transportRespond(t, id, data: Uint8Array | string, close: 0 | 1): number` (R_* codes)
unsafe extern "C" fn respond_cb(env: Env, info: n::napi_callback_info) -> Value {
    // SAFETY: as in create_cb.
    unsafe {
        guarded(env, PANICKED, || {
            let Some([t, id, data, close]) = args::<4>(env, info) else {
                return throw(env, false, c"transportRespond(t, id, data, close)");
            };
            let (Some(cell), Some(id), Some(close)) =
                (cell_of(env, t), int(env, id), int(env, close))
            else {
                return throw(env, false, c"transportRespond(t, id, data, close)");
            };
            let close = close != 0;
            // A closed transport knows no connection: every id is stale.
            let Some(engine) = cell.engine.as_deref_mut() else {
                return ret_u32(env, engine::R_STALE);
            };
            let r = if let Some(b) = bytes(env, data) {
                engine.respond(id, b, close)
            } else if let Some(s) = string(env, data) {
                engine.respond(id, &s, close)
            } else {
                return throw(
                    env,
                    false,
                    c"transportRespond(t, id, data: Uint8Array | string, close)",
                );
            };
            wake_if_wanted(engine);
            ret_u32(env, r)
        })
    }
}

/// `transportWrite(t, id, data: Uint8Array | string): number` (R_* codes)
unsafe extern "C" fn write_cb(env: Env, info: n::napi_callback_info) -> Value {
    // SAFETY: as in create_cb.
    unsafe {
        guarded(env, PANICKED, || {
            let Some([t, id, data]) = args::<3>(env, info) else {
                return throw(env, false, c"transportWrite(t, id, data)");
            };
            let (Some(cell), Some(id)) = (cell_of(env, t), int(env, id)) else {
                return throw(env, false, c"transportWrite(t, id, data)");
            };
            // A closed transport knows no connection: every id is stale.
            let Some(engine) = cell.engine.as_deref_mut() else {
                return ret_u32(env, engine::R_STALE);
            };
            let r = if let Some(b) = bytes(env, data) {
                engine.write(id, b)
            } else if let Some(s) = string(env, data) {
                engine.write(id, &s)
            } else {
                return throw(
                    env,
                    false,
                    c"transportWrite(t, id, data: Uint8Array | string)",
                );
            };
            wake_if_wanted(engine);
            ret_u32(env, r)
        })
    }
}

/// `transportControl(t, id, op): number`: `OP_PAUSE`, `OP_RESUME`,
/// `OP_RESET`, `OP_DESTROY` (`batch.rs`).
unsafe extern "C" fn control_cb(env: Env, info: n::napi_callback_info) -> Value {
    // SAFETY: as in create_cb.
    unsafe {
        guarded(env, PANICKED, || {
            let Some([t, id, op]) = args::<3>(env, info) else {
                return throw(env, false, c"transportControl(t, id, op)");
            };
            let (Some(engine), Some(id), Some(op)) =
                (engine_of(env, t), int(env, id), num(env, op))
            else {
                return ret_u32(env, engine::R_STALE);
            };
            let r = match op as u32 {
                OP_PAUSE => engine.set_reading(id, false),
                OP_RESUME => engine.set_reading(id, true),
                OP_RESET => engine.close_conn(id, true),
                OP_DESTROY => engine.close_conn(id, false),
                _ => return throw(env, false, c"transportControl: op is 0..3"),
            };
            wake_if_wanted(engine);
            ret_u32(env, r)
        })
    }
}

/// `transportPeer(t, id): [address: string, port: number] | undefined`: the
/// TCP peer of a live connection (one `getpeername`, only when JS asks);
/// undefined for a unix socket, a closed or stale id, or a closed transport.
unsafe extern "C" fn peer_cb(env: Env, info: n::napi_callback_info) -> Value {
    // SAFETY: as in create_cb.
    unsafe {
        guarded(env, PANICKED, || {
            let Some([t, id]) = args::<2>(env, info) else {
                return throw(env, false, c"transportPeer(t, id)");
            };
            let (Some(cell), Some(id)) = (cell_of(env, t), int(env, id)) else {
                return throw(env, false, c"transportPeer(t, id)");
            };
            let mut ret = null_mut();
            let Some(addr) = cell.engine.as_deref().and_then(|e| e.peer(id)) else {
                n::napi_get_undefined(env, &mut ret);
                return ret;
            };
            let ip = addr.ip().to_string();
            let (mut s, mut port) = (null_mut(), null_mut());
            n::napi_create_string_utf8(env, ip.as_ptr().cast(), ip.len() as isize, &mut s);
            n::napi_create_uint32(env, u32::from(addr.port()), &mut port);
            n::napi_create_array_with_length(env, 2, &mut ret);
            n::napi_set_element(env, ret, 0, s);
            n::napi_set_element(env, ret, 1, port);
            ret
        })
    }
}

/// `transportPending(fd): boolean`: whether a connection waits in the
/// backlog of listening socket `fd` (the net transport's graceful stop
/// accepts until there is none before closing its listener, src/server/serve.ts).
unsafe extern "C" fn pending_cb(env: Env, info: n::napi_callback_info) -> Value {
    // SAFETY: as in create_cb.
    unsafe {
        guarded(env, PANICKED, || {
            let Some([fd]) = args::<1>(env, info) else {
                return throw(env, false, c"transportPending(fd)");
            };
            let Some(fd) = num(env, fd).filter(|&f| f >= 0.0 && f <= f64::from(i32::MAX)) else {
                return throw(env, false, c"transportPending(fd)");
            };
            let mut ret = null_mut();
            n::napi_get_boolean(env, sys::readable_now(fd as i32), &mut ret);
            ret
        })
    }
}

/// `transportServer(t, op): number`, op one of the `SERVER_OP_*` of
/// `batch.rs`: close the listener, close idle connections (returns how
/// many), open connection count, ref, unref, close everything (the
/// instance is unusable after).
unsafe extern "C" fn server_cb(env: Env, info: n::napi_callback_info) -> Value {
    // SAFETY: as in create_cb.
    unsafe {
        guarded(env, PANICKED, || {
            let Some([t, op]) = args::<2>(env, info) else {
                return throw(env, false, c"transportServer(t, op)");
            };
            let (Some(cell), Some(op)) = (cell_of(env, t), num(env, op)) else {
                return throw(env, false, c"transportServer(t, op)");
            };
            let op = op as u32;
            if op == SERVER_OP_CLOSE {
                teardown(cell, null_mut());
                return ret_u32(env, 0);
            }
            let poll = cell.poll;
            let Some(engine) = cell.engine.as_deref_mut() else {
                return ret_u32(env, 0);
            };
            let r = match op {
                SERVER_OP_CLOSE_LISTENER => {
                    engine.close_listener();
                    0
                }
                SERVER_OP_CLOSE_IDLE => engine.close_idle(),
                SERVER_OP_OPEN_COUNT => engine.open_count() as u32,
                SERVER_OP_REF => {
                    uv_ref(poll);
                    0
                }
                SERVER_OP_UNREF => {
                    uv_unref(poll);
                    0
                }
                _ => return throw(env, false, c"transportServer: op is 0..5"),
            };
            wake_if_wanted(engine);
            ret_u32(env, r)
        })
    }
}

/// `transportConstants(): object`: every constant of the contract with
/// JavaScript by name (`batch.rs` `CONSTANTS`) and `CONFIG_FIELDS`, the
/// order of `transportCreate`'s options. Nothing calls it on the hot path:
/// test/native-contract.test.ts checks that src/transport/native-engine.ts
/// has the same values.
unsafe extern "C" fn constants_cb(env: Env, _info: n::napi_callback_info) -> Value {
    // SAFETY: as in create_cb; every name is a NUL-free ASCII identifier, given
    // with its length; the out-pointers are valid locals.
    unsafe {
        guarded(env, PANICKED, || {
            let mut obj = null_mut();
            n::napi_create_object(env, &mut obj);
            let set = |name: &str, v: Value| {
                let mut key = null_mut();
                n::napi_create_string_utf8(
                    env,
                    name.as_ptr().cast(),
                    name.len() as isize,
                    &mut key,
                );
                n::napi_set_property(env, obj, key, v);
            };
            for &(name, v) in CONSTANTS {
                set(name, ret_u32(env, v));
            }
            let mut fields = null_mut();
            n::napi_create_array_with_length(env, CONFIG_FIELDS.len(), &mut fields);
            for (i, f) in CONFIG_FIELDS.iter().enumerate() {
                let mut s = null_mut();
                n::napi_create_string_utf8(env, f.as_ptr().cast(), f.len() as isize, &mut s);
                n::napi_set_element(env, fields, i as u32, s);
            }
            set("CONFIG_FIELDS", fields);
            obj
        })
    }
}

/// Registers the transport functions on `exports` (Linux only; see lib.rs).
pub fn register(env: Env, exports: Value) -> Result<(), String> {
    let callbacks: [(&str, crate::js::Callback); 12] = [
        ("transportCreate", create_cb),
        ("transportListenUnix", listen_unix_cb),
        ("transportListenTcp", listen_tcp_cb),
        ("transportAdopt", adopt_cb),
        ("transportListenSocket", listen_socket_cb),
        ("transportRespond", respond_cb),
        ("transportWrite", write_cb),
        ("transportControl", control_cb),
        ("transportServer", server_cb),
        ("transportPeer", peer_cb),
        ("transportPending", pending_cb),
        ("transportConstants", constants_cb),
    ];
    crate::js::register(env, exports, &callbacks)
}
