//! corotls: non-blocking TLS for coroutine runtimes, over the system
//! OpenSSL, with a C ABI.
//!
//! Layers, each depending only on those above it:
//! - [`ossl`]: the only home of raw OpenSSL calls;
//! - [`conf`]: the configuration builder and the immutable, shared `Conf`;
//! - [`session`]: one TLS session over in-memory FIFO BIOs (sans-IO), and
//!   [`session::HostSsl`], the same steps over an `SSL *` a host holds;
//! - [`transport`]: a session bound to a non-blocking socket, over the one
//!   socket pump ([`transport::socket`]: send, recv, their errno rules and
//!   the drain cap, shared with the Melon face), and [`net`]: the socket
//!   helpers (listen, connect, accept, name resolution);
//! - [`event_loop`] (`src/loop/`): the reactor that gives coroutine hosts
//!   script-level TLS calls (accept, connect, handshake, send, recv, close);
//! - [`ffi`]: the C ABI (`include/corotls.h` is generated from it).

pub mod conf;
pub mod error;
#[path = "loop/mod.rs"]
pub mod event_loop;
#[cfg(feature = "capi")]
pub mod ffi;
pub mod files;
pub mod net;
pub mod ossl;
pub mod session;
pub mod transport;
pub(crate) mod unload;

#[cfg(test)]
pub(crate) mod testutil;

pub use conf::{Conf, ConfBuilder, Identity, Role, Verify, Version};
pub use error::{Code, Error, Result};
pub use session::Session;
pub use transport::Conn;
