//! JavaScript values at the raw N-API boundary: the helpers every raw
//! callback of this crate (`parse.rs`, `transport/binding.rs`, `diag.rs`)
//! shares, so each thing is done one way. Reading the arguments ([`args`]),
//! borrowing a typed array ([`typed_array`], never over a
//! `SharedArrayBuffer`; [`bytes`]), reading numbers and strings ([`num`],
//! [`int`], [`string`]), making a number ([`ret_u32`]), throwing a
//! TypeError or RangeError ([`throw`]), turning a panic into a thrown Error
//! ([`guarded`]), and registering the callbacks on the exports
//! ([`register`]).
//!
//! Every `unsafe` block is an N-API call with its contract stated; the
//! `# Safety` of each function says what its caller guarantees (in short:
//! `env` and the values are those of the callback running on this thread).

use napi::sys;
use std::ffi::CStr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::null_mut;

type Value = sys::napi_value;
type Env = sys::napi_env;

/// Throws a TypeError (`ERR_INVALID_ARG_TYPE`) or, when `range`, a RangeError
/// (`ERR_OUT_OF_RANGE`) with message `msg`, and returns the null `napi_value`
/// a callback returns after throwing. If the throw itself fails (an exception
/// is already pending), that pending exception is what JS sees.
///
/// # Safety
/// `env` must be the `napi_env` of the N-API callback currently running on
/// this thread.
pub(crate) unsafe fn throw(env: Env, range: bool, msg: &CStr) -> Value {
    // SAFETY: `env` is the running callback's env (the caller's contract); the
    // code and message are NUL-terminated C strings that outlive the call.
    unsafe {
        if range {
            sys::napi_throw_range_error(env, c"ERR_OUT_OF_RANGE".as_ptr(), msg.as_ptr());
        } else {
            sys::napi_throw_type_error(env, c"ERR_INVALID_ARG_TYPE".as_ptr(), msg.as_ptr());
        }
    }
    null_mut()
}

/// What [`typed_array`] found.
pub(crate) enum Typed {
    /// A typed array of the wanted type over an `ArrayBuffer`: its data
    /// pointer (already offset to its first element) and length in elements.
    Ok(*mut u8, usize),
    /// Not a typed array of the wanted type.
    WrongType,
    /// A typed array of the wanted type over a `SharedArrayBuffer`: other
    /// threads may write its bytes at any time, so no Rust slice may borrow them.
    Shared,
}

/// Looks at `value` as a typed array of type `want` (a `sys::TypedarrayType`):
/// the one way this crate borrows a typed array (`parse` in `parse.rs`, the
/// transport's arguments in `transport/binding.rs`, through [`bytes`] or
/// directly), so none is ever borrowed over a `SharedArrayBuffer`.
///
/// # Safety
/// `env` must be the `napi_env` of the N-API callback currently running on
/// this thread, and `value` a value of that callback (an argument).
pub(crate) unsafe fn typed_array(env: Env, value: Value, want: i32) -> Typed {
    let (mut ty, mut len, mut data, mut backing, mut offset) =
        (-1, 0usize, null_mut(), null_mut(), 0usize);
    // SAFETY: `env` and `value` are the callback's (the caller's contract); all
    // out-pointers are valid locals; N-API checks that `value` is a TypedArray
    // and returns an error status (writing nothing) when it is not.
    let status = unsafe {
        sys::napi_get_typedarray_info(
            env,
            value,
            &mut ty,
            &mut len,
            &mut data,
            &mut backing,
            &mut offset,
        )
    };
    if status != sys::Status::napi_ok || ty != want {
        return Typed::WrongType;
    }
    // `napi_is_arraybuffer` is false for a SharedArrayBuffer (V8's
    // `IsArrayBuffer()` excludes shared buffers).
    let mut plain = false;
    // SAFETY: `backing` is the typed array's buffer, just returned by N-API in
    // this env; `plain` is a valid out-pointer.
    let status = unsafe { sys::napi_is_arraybuffer(env, backing, &mut plain) };
    if status != sys::Status::napi_ok || !plain {
        return Typed::Shared;
    }
    Typed::Ok(data.cast(), len)
}

/// The first `N` arguments of the running callback, or None when there are
/// fewer (or N-API fails): the one argument reader of this crate's raw
/// callbacks (`parse_cb` in `parse.rs`, `transport/binding.rs`, `diag.rs`).
///
/// # Safety
/// `env` and `info` are those of the N-API callback running on this thread.
pub(crate) unsafe fn args<const N: usize>(
    env: Env,
    info: sys::napi_callback_info,
) -> Option<[Value; N]> {
    let mut argc = N;
    let mut argv = [null_mut(); N];
    // SAFETY: `env`/`info` are the running callback's (the caller's contract);
    // argv has room for `argc` values.
    let status = unsafe {
        sys::napi_get_cb_info(
            env,
            info,
            &mut argc,
            argv.as_mut_ptr(),
            null_mut(),
            null_mut(),
        )
    };
    (status == sys::Status::napi_ok && argc >= N).then_some(argv)
}

/// A raw N-API callback, as `parse_cb`, the transport's and `diag.rs`'s are.
pub(crate) type Callback = unsafe extern "C" fn(Env, sys::napi_callback_info) -> Value;

/// Sets each `(name, callback)` as a function on `exports`: the one way this
/// crate registers its raw callbacks (`parse` in `parse.rs`, the transport's
/// in `transport/binding.rs`, `unixListenQueue` in `diag.rs`).
pub(crate) fn register(
    env: Env,
    exports: Value,
    callbacks: &[(&str, Callback)],
) -> std::result::Result<(), String> {
    for &(name, cb) in callbacks {
        let mut func = null_mut();
        // SAFETY: `env` is the env of the module registration running now; the
        // name pointer/length pair is valid for the call; `cb` has the N-API
        // callback signature; `func` is a valid out-pointer.
        let st = unsafe {
            sys::napi_create_function(
                env,
                name.as_ptr().cast(),
                name.len() as isize,
                Some(cb),
                null_mut(),
                &mut func,
            )
        };
        if st != sys::Status::napi_ok {
            return Err(format!("napi_create_function({name}) failed"));
        }
        let cname = std::ffi::CString::new(name).map_err(|e| e.to_string())?;
        // SAFETY: `exports` and `func` are values of `env`; the name is NUL-terminated.
        if unsafe { sys::napi_set_named_property(env, exports, cname.as_ptr(), func) }
            != sys::Status::napi_ok
        {
            return Err(format!("exports.{name} could not be set"));
        }
    }
    Ok(())
}

/// A number argument as an `f64`, None when it is not a number.
///
/// # Safety
/// `env` and `v` are the running callback's.
pub(crate) unsafe fn num(env: Env, v: Value) -> Option<f64> {
    let mut d = 0.0;
    // SAFETY: `d` is a valid out-pointer.
    (unsafe { sys::napi_get_value_double(env, v, &mut d) } == sys::Status::napi_ok).then_some(d)
}

/// A number argument as an `i64` (N-API's conversion), None when it is not
/// a number.
///
/// # Safety
/// `env` and `v` are the running callback's.
pub(crate) unsafe fn int(env: Env, v: Value) -> Option<i64> {
    let mut d = 0i64;
    // SAFETY: `d` is a valid out-pointer.
    (unsafe { sys::napi_get_value_int64(env, v, &mut d) } == sys::Status::napi_ok).then_some(d)
}

/// The bytes of a Uint8Array/Buffer argument, borrowed for the current call
/// (None for anything else, a view of a `SharedArrayBuffer` included).
///
/// # Safety
/// `env` and `v` are the running callback's; the slice is not used after it
/// returns.
pub(crate) unsafe fn bytes<'a>(env: Env, v: Value) -> Option<&'a [u8]> {
    // SAFETY: `env` and `v` are the running callback's (every caller's).
    let Typed::Ok(data, len) = (unsafe { typed_array(env, v, sys::TypedarrayType::uint8_array) })
    else {
        return None;
    };
    if len == 0 {
        return Some(&[]);
    }
    // SAFETY: the array is an argument of this synchronous call over a
    // non-shared buffer, so its memory stays alive and unchanged while the
    // slice is used (no JS runs, no other thread can write it).
    Some(unsafe { std::slice::from_raw_parts(data, len) })
}

/// A string argument as UTF-8 bytes, None when it is not a string.
///
/// # Safety
/// `env` and `v` are the running callback's.
pub(crate) unsafe fn string(env: Env, v: Value) -> Option<Vec<u8>> {
    let mut len = 0usize;
    // SAFETY: a null buffer asks for the length.
    if unsafe { sys::napi_get_value_string_utf8(env, v, null_mut(), 0, &mut len) }
        != sys::Status::napi_ok
    {
        return None;
    }
    let mut buf = vec![0u8; len + 1];
    // SAFETY: `buf` has room for `len` bytes and the NUL.
    unsafe { sys::napi_get_value_string_utf8(env, v, buf.as_mut_ptr().cast(), len + 1, &mut len) };
    buf.truncate(len);
    Some(buf)
}

/// A JS number for `v`.
///
/// # Safety
/// `env` is the running callback's.
pub(crate) unsafe fn ret_u32(env: Env, v: u32) -> Value {
    let mut r = null_mut();
    // SAFETY: `r` is a valid out-pointer.
    unsafe { sys::napi_create_uint32(env, v, &mut r) };
    r
}

/// Runs a callback body, turning a panic into a thrown Error with message
/// `panicked`: the one panic guard of this crate's raw callbacks (the
/// transport's and `diag.rs`'s).
///
/// # Safety
/// `env` is the running callback's.
pub(crate) unsafe fn guarded(env: Env, panicked: &CStr, f: impl FnOnce() -> Value) -> Value {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(_) => {
            // SAFETY: env is the callback's; `panicked` is NUL-terminated.
            unsafe { sys::napi_throw_error(env, null_mut(), panicked.as_ptr()) };
            null_mut()
        }
    }
}
