//! bb-remote: the client end of the Box Backup protocol (`protocol.md` §2–§4,
//! §6.1, §6.5; what a compatible client does is §4.2).
//!
//! - [`StoreRead`] and [`StoreWrite`] ([`store`]): the store as the client tools
//!   see it, one method per command, payloads parsed with bb-format.
//! - [`Connection`] ([`connection`]): TCP with a connect timeout and
//!   TCP_NODELAY, TLS ([`bb_proto::pki::client_config`]; like 0.13, no host-name
//!   check unless asked), ident, Version, Login, then lock-step commands with
//!   every reply stream read to its end, uploads that stop at an early reply,
//!   per-read/write timeouts ([`Timeouts`]), keep-alive, Finished on close.
//! - [`Session`] ([`session`]): a connection that logs in again after it was
//!   lost, when the caller next uses it.
//! - [`fake::FakeStore`]: the same traits in memory; [`conformance`]: the one
//!   suite that the fake, our bbstored and the real 0.13 bbstored all pass.
//!
//! Must not know: the store's disc layout (bb-store, bb-raid), or what the
//! encrypted names, attributes and file contents say (callers hold the keys).

pub mod conformance;
pub mod connection;
pub mod error;
pub mod fake;
pub mod session;
pub mod store;

pub use connection::{Config, Connection, DEFAULT_PORT, FileReader, Timeouts};
pub use error::{Error, Result};
pub use session::Session;
pub use store::{ObjectNames, StoreRead, StoreWrite};
