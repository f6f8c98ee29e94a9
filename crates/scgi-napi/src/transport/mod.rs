//! The native transport (Linux only): the engine (`engine.rs`, the
//! connection state machine over epoll, no N-API), its system calls
//! (`sys.rs`), and its N-API binding (`binding.rs`, with the `napi` feature).

#[cfg(feature = "napi")]
pub(crate) mod binding;
pub mod engine;
pub mod sys;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
