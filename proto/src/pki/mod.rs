//! TLS and PKI for both ends of the Box Backup protocol (protocol.md §1, §6.8, §6.9).
//!
//! This is the one part of bb-proto that touches files (key and certificate files
//! named in 0.13's configs) and TLS; it still never touches a socket: callers wrap
//! their own streams with the rustls configs built here. It lives in bb-proto because
//! bb-store and bb-remote both need it and bb-proto is the lowest crate they share.
//!
//! * [`server_config`] / [`client_config`]: rustls 0.23 (ring), TLS 1.2 and 1.3,
//!   mutual authentication against one `TrustedCAsFile` each, X.509 v1 accepted
//!   (every 0.13 deployment has v1 certificates, which webpki refuses).
//! * [`account_from_connection`]: `CN=BACKUP-<hex>` → account number.
//! * [`Crl`]: an optional, reloadable revocation list for the client CA.
//! * Certificates signed with SHA-1 or MD5 (old 0.13 installations): our own is
//!   refused when the config loads, a peer's in the handshake, both with the
//!   commands that re-issue it; [`tls_error_text`] gets that text out of the
//!   rustls error for the message a tool prints.
//! * [`certs::bbstored_certs`]: the `bbstored-certs` tool; [`make_test_pki`]: a whole
//!   PKI in one call for tests.
//!
//! Knows nothing of the protocol's messages, accounts' existence or the store.

pub mod account;
pub mod cert;
pub mod certs;
pub mod config;
pub mod crl;
mod der;
pub mod error;
pub mod issue;
pub mod load;
pub mod quick;
mod reissue;
pub mod verify;

pub use account::{CnRule, account_from_common_name, account_from_connection, common_name};
pub use config::{ServerTls, client_config, provider, server_config, server_name};
pub use crl::Crl;
pub use error::{Error, Result};
pub use issue::KeyKind;
pub use quick::{TestPki, make_test_pki};
pub use verify::tls_error_text;
pub use verify::{BackupClientVerifier, BackupServerVerifier, TrustedCas, Usage, verify_chain};
