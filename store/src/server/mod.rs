//! bbstored: the network server around the store.
//!
//! Owns the configuration file, the listener, TLS and one thread per session,
//! signals (SIGHUP reloads, SIGTERM drains), timeouts and the housekeeping
//! schedule. Knows nothing of how the store lays out objects: sessions call the
//! store through its transport-free API.

pub mod config;
pub mod connection;
pub mod daemon;
pub mod logging;
pub mod metrics;
pub mod options;
pub mod runtime;

pub use daemon::{Server, ServerError};
pub use runtime::Shutdown;
