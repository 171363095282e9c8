//! Shared helpers: a one-connection TLS server on 127.0.0.1 port 0 and a client,
//! both using our configs, exchanging 0.13's 32-byte idents after the handshake.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

pub mod bb013;

use bb_proto::pki::{self, CnRule};

pub const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures/bb013");

/// What 0.13 sends first after the handshake (protocol.md §2.1).
pub fn ident() -> [u8; 32] {
    let mut id = [0u8; 32];
    id[..14].copy_from_slice(b"Box-Backup:v=C");
    id
}

/// The server's view of one connection: the account, or the error text.
pub type ServerResult = Result<u32, String>;

/// Accepts one connection, completes the handshake, reads the account from the
/// CN, sends the ident and reads the peer's.
pub fn serve_once(config: Arc<rustls::ServerConfig>) -> (u16, JoinHandle<ServerResult>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let (mut sock, _) = listener.accept().map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut conn = rustls::ServerConnection::new(config).map_err(|e| e.to_string())?;
        while conn.is_handshaking() {
            conn.complete_io(&mut sock)
                .map_err(|e| pki::tls_error_text(&e))?;
        }
        let account =
            pki::account_from_connection(&conn, CnRule::Strict).map_err(|e| e.to_string())?;
        let mut tls = rustls::StreamOwned::new(conn, sock);
        tls.write_all(&ident()).map_err(|e| e.to_string())?;
        tls.flush().map_err(|e| e.to_string())?;
        let mut theirs = [0u8; 32];
        tls.read_exact(&mut theirs).map_err(|e| e.to_string())?;
        if theirs[..14] != ident()[..14] {
            return Err(format!("bad ident {theirs:?}"));
        }
        Ok(account)
    });
    (port, h)
}

/// Connects, reads the server's 32-byte ident and sends ours.
pub fn connect(
    config: Arc<rustls::ClientConfig>,
    port: u16,
    host: &str,
) -> Result<[u8; 32], String> {
    let sock = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let conn = rustls::ClientConnection::new(config, pki::server_name(host).unwrap())
        .map_err(|e| e.to_string())?;
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let mut theirs = [0u8; 32];
    tls.read_exact(&mut theirs)
        .map_err(|e| pki::tls_error_text(&e))?;
    tls.write_all(&ident()).map_err(|e| e.to_string())?;
    tls.flush().map_err(|e| e.to_string())?;
    Ok(theirs)
}
