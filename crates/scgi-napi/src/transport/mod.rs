//! The native transport (Linux only): the engine (`engine.rs`, the loop over
//! epoll, no N-API; accepting in `engine/listener.rs`), the connection state
//! machine (`conn.rs`), the connection slab (`slab.rs`), the batch and the
//! constants shared with JavaScript (`batch.rs`), its system calls
//! (`sys.rs`), and its N-API binding (`binding.rs`, the exported functions,
//! and `binding/cell.rs`, the per-instance state and its lifetime; with the
//! `napi` feature).

pub mod batch;
#[cfg(feature = "napi")]
pub(crate) mod binding;
mod conn;
pub mod engine;
mod slab;
pub mod sys;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
