//! Metrics over HTTP, for both daemons: bbstored and bbackupd each may serve
//! Prometheus text on a local port (docs/operations.md).
//!
//! Owns the Prometheus text exposition writer ([`text`]), a sans-IO parser of
//! an HTTP/1.x request head and the answers we give ([`http`]), the listen
//! address rule ([`parse_listen_address`]), and the one small loop that touches
//! sockets ([`serve`]): a `TcpListener` in its own thread, one short-lived
//! thread per scrape, every read and write bounded in time and size.
//!
//! Why here: the two daemons meet in no crate of ours but this one (bb-client
//! may not see bb-store) and STYLE wants no `common` crate; the socket loop is
//! ~100 lines that would otherwise be copied. It is the second exception to
//! this crate's "no sockets" rule, after [`crate::pki`]'s files; the protocol
//! modules do not use it.
//!
//! Must not know: what the numbers mean. Each daemon renders its own text
//! (a closure), this module only carries it.

pub mod http;
pub mod serve;
pub mod text;

use std::net::SocketAddr;

pub use serve::{ServeLimits, serve};
pub use text::{Exposition, Kind};

/// Parses a `MetricsListenAddress` value: an IP literal and a port
/// (`127.0.0.1:9180`, `[::1]:9180`). Host names are refused so that what is
/// bound is exactly what the file says (a name could resolve to a public
/// address later). Whether a non-loopback address is wise is the caller's
/// question ([`SocketAddr::ip`]`.is_loopback()`); both daemons accept it and
/// warn at start.
pub fn parse_listen_address(value: &str) -> Result<SocketAddr, String> {
    let v = value.trim();
    let addr: SocketAddr = v.parse().map_err(|_| {
        format!("'{v}' is not an IP address with a port (like 127.0.0.1:9180 or [::1]:9180)")
    })?;
    if addr.port() == 0 {
        return Err(format!("'{v}': the port must not be 0"));
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        assert_eq!(
            parse_listen_address(" 127.0.0.1:9180").unwrap(),
            "127.0.0.1:9180".parse().unwrap()
        );
        assert!(
            parse_listen_address("[::1]:9180")
                .unwrap()
                .ip()
                .is_loopback()
        );
        assert!(
            !parse_listen_address("0.0.0.0:1")
                .unwrap()
                .ip()
                .is_loopback()
        );
        for bad in [
            "localhost:9180",
            "127.0.0.1",
            "127.0.0.1:0",
            ":9180",
            "",
            "1.2.3.4:99999",
        ] {
            assert!(parse_listen_address(bad).is_err(), "{bad}");
        }
    }
}
