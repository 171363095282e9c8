//! bb-remote: the client end of the Box Backup protocol.
//!
//! Will own: TLS connect, login, timeouts and reconnect, a read-only `StoreRead` trait
//! and a `StoreWrite` trait on top of it, with an in-memory fake that passes the same
//! conformance suite as the real session.
//!
//! Must not know: the store's disc layout (bb-store, bb-raid).
