//! N-API binding of `scgi-parser` for the `scgi` npm package, and the native
//! transport engine (Linux).
//!
//! Built as a `cdylib` (the addon) and an `rlib` (so `fuzz/` can drive the
//! engine). The `napi` feature (default) compiles the N-API side: `js.rs`
//! (JavaScript values at the raw N-API boundary: the argument readers,
//! throwing, registering callbacks, shared by every binding), `parse.rs`
//! (the parser binding and the module's registration) and
//! `transport/binding.rs`. Without it, what is left has no N-API: the
//! engine (`transport/`: `engine.rs`, `conn.rs`, `slab.rs`, `batch.rs`) and its system calls (`transport/sys.rs`,
//! the crate's only `unsafe` outside the bindings). `diag.rs` (with `napi`,
//! Linux) asks the kernel for a unix socket's listen queue (sock_diag), for
//! the status endpoint. The `testing` feature adds
//! the hooks and the shared checks the engine's property test and fuzz
//! target use (`transport/testing.rs`).
#![deny(clippy::all)]

#[cfg(feature = "napi")]
mod js;
#[cfg(feature = "napi")]
mod parse;
// Reachable from the crate root, as the module registration napi-derive
// generates for it is (that code is left out of test builds).
#[cfg(feature = "napi")]
pub use parse::init;

#[cfg(target_os = "linux")]
pub mod transport;

#[cfg(all(feature = "napi", target_os = "linux"))]
mod diag;
