//! The state of one transport instance and its lifetime (see `binding.rs`
//! for the exported functions that use it).
//!
//! Lifetime: `transportCreate` returns a wrapper object owning a [`Cell`].
//! While the engine is open the wrapper is held by a strong reference (an
//! open server is not garbage), and an async environment cleanup hook closes
//! it when the environment goes away (worker exit). `transportServer(t, 5)`
//! (`NativeEngine.close`), the hook, or the finalizer, through `teardown`, stops and closes the `uv_poll` first and only then drops the engine
//! (closing the epoll descriptor), so libuv never sees a reused descriptor
//! number. The wrapper's finalizer frees the cell.

use crate::transport::engine::Engine;
use napi::sys as n;
use std::ffi::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::null_mut;

type Value = n::napi_value;
type Env = n::napi_env;

// libuv, exported by the `node` binary (resolved when the addon is loaded).
const UV_POLL: c_int = 8; // uv_handle_type UV_POLL
pub(super) const UV_READABLE: c_int = 1;
type UvPollCb = unsafe extern "C" fn(*mut c_void, c_int, c_int);
type UvCloseCb = unsafe extern "C" fn(*mut c_void);
type AsyncCleanupHook = unsafe extern "C" fn(*mut c_void, *mut c_void);

extern "C" {
    fn uv_handle_size(ty: c_int) -> usize;
    pub(super) fn uv_poll_init(lp: *mut c_void, handle: *mut c_void, fd: c_int) -> c_int;
    pub(super) fn uv_poll_start(handle: *mut c_void, events: c_int, cb: UvPollCb) -> c_int;
    fn uv_poll_stop(handle: *mut c_void) -> c_int;
    fn uv_close(handle: *mut c_void, cb: UvCloseCb);
    pub(super) fn uv_ref(handle: *mut c_void);
    pub(super) fn uv_unref(handle: *mut c_void);
    // Node-API 8 (Node >= 14.8); the crate's napi-sys is built for version 4.
    pub(super) fn napi_add_async_cleanup_hook(
        env: Env,
        hook: AsyncCleanupHook,
        arg: *mut c_void,
        handle: *mut *mut c_void,
    ) -> n::napi_status;
    fn napi_remove_async_cleanup_hook(handle: *mut c_void) -> n::napi_status;
}

/// Everything one transport instance owns.
pub(super) struct Cell {
    pub(super) env: Env,
    pub(super) engine: Option<Box<Engine>>,
    /// `uv_poll_t` memory (`uv_handle_size(UV_POLL)` bytes, 8-aligned), null once closed.
    pub(super) poll: *mut c_void,
    pub(super) callback: n::napi_ref,
    pub(super) wrapper: n::napi_ref,
    pub(super) async_ctx: n::napi_async_context,
    pub(super) cleanup: *mut c_void,
}

pub(super) fn poll_words() -> usize {
    // SAFETY: uv_handle_size has no preconditions.
    unsafe { uv_handle_size(UV_POLL) }.div_ceil(8)
}

/// Stops and closes the poll handle, then drops the engine. Idempotent.
/// `hook`: the async cleanup hook handle to remove once the handle is closed
/// (when the environment is being torn down), else null.
///
/// # Safety
/// `cell` is valid; called on the environment's JS thread.
pub(super) unsafe fn teardown(cell: &mut Cell, hook: *mut c_void) {
    let env = cell.env;
    if !cell.poll.is_null() {
        let poll = std::mem::replace(&mut cell.poll, null_mut());
        // SAFETY: `poll` is an initialised uv_poll_t of this loop; its first field
        // is `void *data`, which the close callback reads (the hook to remove).
        unsafe {
            uv_poll_stop(poll);
            *poll.cast::<*mut c_void>() = hook;
            uv_close(poll, on_poll_closed);
        }
    } else if !hook.is_null() {
        // SAFETY: `hook` is the handle given to our async cleanup hook.
        unsafe { napi_remove_async_cleanup_hook(hook) };
    }
    // After the poll handle: libuv has removed the descriptor from its own set.
    cell.engine = None;
    // SAFETY: each of these was created in `env` and is released exactly once
    // (set to null after).
    unsafe {
        if !cell.cleanup.is_null() && hook.is_null() {
            napi_remove_async_cleanup_hook(cell.cleanup);
        }
        cell.cleanup = null_mut();
        if !cell.callback.is_null() {
            n::napi_delete_reference(env, cell.callback);
            cell.callback = null_mut();
        }
        if !cell.wrapper.is_null() {
            n::napi_delete_reference(env, cell.wrapper);
            cell.wrapper = null_mut();
        }
        if !cell.async_ctx.is_null() {
            n::napi_async_destroy(env, cell.async_ctx);
            cell.async_ctx = null_mut();
        }
    }
}

unsafe extern "C" fn on_poll_closed(handle: *mut c_void) {
    // SAFETY: `handle` is the memory allocated in `create_cb` (binding.rs) as a boxed
    // `[u64; poll_words()]`; libuv is done with it once this callback runs.
    unsafe {
        let hook = *handle.cast::<*mut c_void>();
        drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
            handle.cast::<u64>(),
            poll_words(),
        )));
        if !hook.is_null() {
            napi_remove_async_cleanup_hook(hook);
        }
    }
}

pub(super) unsafe extern "C" fn on_env_cleanup(hook: *mut c_void, arg: *mut c_void) {
    // SAFETY: `arg` is the cell registered with this hook; the hook is removed
    // before the cell is freed (teardown runs first in the finalizer).
    let cell = unsafe { &mut *arg.cast::<Cell>() };
    cell.cleanup = null_mut();
    // SAFETY: on the environment's thread, during its teardown.
    let _ = catch_unwind(AssertUnwindSafe(|| unsafe { teardown(cell, hook) }));
}

pub(super) unsafe extern "C" fn finalize(env: Env, data: *mut c_void, _hint: *mut c_void) {
    // SAFETY: `data` is the Box<Cell> leaked in `create_cb` (binding.rs), finalized once.
    let mut cell = unsafe { Box::from_raw(data.cast::<Cell>()) };
    cell.env = env;
    // SAFETY: on the environment's thread.
    let _ = catch_unwind(AssertUnwindSafe(|| unsafe {
        teardown(&mut cell, null_mut())
    }));
}

pub(super) unsafe extern "C" fn on_poll(handle: *mut c_void, _status: c_int, _events: c_int) {
    // SAFETY: the handle's data is the cell while the handle is polling
    // (teardown stops polling before anything else).
    let cell = unsafe { *handle.cast::<*mut Cell>() };
    if cell.is_null() {
        return;
    }
    // SAFETY: see above; no other reference to the cell is live in this callback.
    let _ = catch_unwind(AssertUnwindSafe(|| unsafe { poll_and_deliver(cell) }));
    // JavaScript has had the batch: watch the connections it left open. It
    // may have closed the transport (teardown then put something else in the
    // handle's data, and the cell may be gone): only the same cell, still
    // in the handle, is used. The handle itself is freed by its close
    // callback, which never runs inside this one.
    // SAFETY: `handle` is valid for this callback (above).
    if unsafe { *handle.cast::<*mut Cell>() } != cell {
        return;
    }
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the handle still holds the cell, so teardown has not run
        // (and finalize runs teardown first): it is live, and no other
        // reference to it is.
        let cell = unsafe { &mut *cell };
        if let Some(engine) = cell.engine.as_mut() {
            engine.register_deferred();
            super::wake_if_wanted(engine);
        }
    }));
}

/// One wake-up: let the engine handle what epoll reports, then hand the
/// batch to JavaScript in one call.
///
/// # Safety
/// `cell` is a live cell; called from its loop's poll callback.
unsafe fn poll_and_deliver(cell: *mut Cell) {
    let (env, callback, async_ctx) = {
        // SAFETY: the caller guarantees the cell is live; this borrow ends before JS runs.
        let cell = unsafe { &mut *cell };
        let Some(engine) = cell.engine.as_mut() else {
            return;
        };
        engine.poll();
        if engine.batch().is_empty() {
            return;
        }
        (cell.env, cell.callback, cell.async_ctx)
    };
    let mut scope = null_mut();
    // SAFETY: on the JS thread with Node's context entered (a loop callback).
    if unsafe { n::napi_open_handle_scope(env, &mut scope) } != n::Status::napi_ok {
        return;
    }
    let mut argv = [null_mut(); 2];
    let ok = {
        // SAFETY: the cell is live (as above), and no JS has run since the last borrow.
        let cell = unsafe { &mut *cell };
        match cell.engine.as_mut() {
            // SAFETY: `env` is the cell's env, on its thread.
            Some(engine) => unsafe { batch_values(env, engine, &mut argv) },
            None => false,
        }
    };
    if ok {
        let (mut func, mut recv, mut result) = (null_mut(), null_mut(), null_mut());
        // SAFETY: the reference and the values belong to `env`; argv holds 2 values.
        // No Rust reference to the cell is live while JavaScript runs (it may
        // close the transport).
        unsafe {
            n::napi_get_reference_value(env, callback, &mut func);
            n::napi_get_global(env, &mut recv);
            let status =
                n::napi_make_callback(env, async_ctx, recv, func, 2, argv.as_ptr(), &mut result);
            if status != n::Status::napi_ok {
                let mut pending = false;
                n::napi_is_exception_pending(env, &mut pending);
                if pending {
                    let mut err = null_mut();
                    n::napi_get_and_clear_last_exception(env, &mut err);
                    n::napi_fatal_exception(env, err);
                }
            }
        }
    }
    // SAFETY: closes the scope opened above.
    unsafe { n::napi_close_handle_scope(env, scope) };
}

/// Copies the engine's batch into a Buffer and a Uint32Array and clears it.
///
/// # Safety
/// On `env`'s thread inside a handle scope.
unsafe fn batch_values(env: Env, engine: &mut Engine, argv: &mut [Value; 2]) -> bool {
    let batch = engine.batch();
    let mut data = null_mut();
    // SAFETY: copies `bytes.len()` bytes from a valid slice.
    let s1 = unsafe {
        n::napi_create_buffer_copy(
            env,
            batch.bytes.len(),
            batch.bytes.as_ptr().cast(),
            &mut data,
            &mut argv[0],
        )
    };
    let words = batch.recs.len();
    let (mut ab, mut ab_data) = (null_mut(), null_mut());
    // SAFETY: creates an ArrayBuffer of `words * 4` bytes; `ab_data` is its memory.
    let s2 = unsafe { n::napi_create_arraybuffer(env, words * 4, &mut ab_data, &mut ab) };
    if s1 != n::Status::napi_ok || s2 != n::Status::napi_ok || (words > 0 && ab_data.is_null()) {
        return false;
    }
    // SAFETY: `ab_data` is fresh, 8-aligned memory of `words * 4` bytes that
    // nothing else references yet; the source is a valid `[u32]` of `words`.
    unsafe {
        std::ptr::copy_nonoverlapping(batch.recs.as_ptr(), ab_data.cast::<u32>(), words);
    }
    // SAFETY: `ab` is the ArrayBuffer just created, `words` elements long.
    let s3 = unsafe {
        n::napi_create_typedarray(
            env,
            n::TypedarrayType::uint32_array,
            words,
            ab,
            0,
            &mut argv[1],
        )
    };
    batch.clear();
    s3 == n::Status::napi_ok
}

/// The cell wrapped by `v` (a `transportCreate` wrapper), None for any
/// other value.
///
/// # Safety
/// `env` and `v` are the running callback's; the reference is not used after
/// it returns.
pub(super) unsafe fn cell_of<'a>(env: Env, v: Value) -> Option<&'a mut Cell> {
    let mut p = null_mut();
    // SAFETY: napi_unwrap checks that `v` wraps a pointer; only `create_cb`
    // (binding.rs) wraps objects in this binding, always with a Box<Cell>.
    if unsafe { n::napi_unwrap(env, v, &mut p) } != n::Status::napi_ok || p.is_null() {
        return None;
    }
    // SAFETY: see above; the cell lives until the wrapper is finalized, which
    // cannot happen while the wrapper is an argument of this call.
    Some(unsafe { &mut *p.cast::<Cell>() })
}

/// The engine of the cell wrapped by `v`, None for any other value or a
/// closed transport.
///
/// # Safety
/// As for [`cell_of`].
pub(super) unsafe fn engine_of<'a>(env: Env, v: Value) -> Option<&'a mut Engine> {
    // SAFETY: forwarded.
    unsafe { cell_of(env, v) }?.engine.as_deref_mut()
}
