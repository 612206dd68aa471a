//! The egress forwarder: TCP on the sandbox's loopback to the host's proxy socket.
//!
//! It runs as its own process inside the sandbox (started by the entrypoint before the plugin
//! is exec'd), bound to `127.0.0.1:<port>` in the sandbox's private network namespace. Each
//! accepted connection is joined byte for byte to a new connection to
//! `/run/sigil/egress.sock`, the host's egress proxy, which decides where it may go. The
//! forwarder itself understands no protocol.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;

/// The host proxy's socket, as seen inside the sandbox.
pub(crate) const EGRESS_SOCKET: &str = "/run/sigil/egress.sock";

/// Binds the listener; the caller then restricts the process and calls [`serve`].
pub(crate) fn bind(port: u16) -> Result<TcpListener, String> {
    TcpListener::bind(("127.0.0.1", port))
        .map_err(|e| format!("egress forwarder: binding 127.0.0.1:{port}: {e}"))
}

/// Accepts forever. A connection the proxy socket refuses is closed at once, which is what the
/// plugin sees as a refused request.
pub(crate) fn serve(listener: &TcpListener) -> ! {
    loop {
        let Ok((tcp, _)) = listener.accept() else {
            continue;
        };
        // Thread creation fails when the sandbox's process limit is reached; the connection is
        // then dropped rather than the forwarder.
        let _ = std::thread::Builder::new()
            .name("egress".to_owned())
            .spawn(move || join(tcp));
    }
}

fn join(tcp: TcpStream) {
    let Ok(unix) = UnixStream::connect(EGRESS_SOCKET) else {
        return;
    };
    let (Ok(tcp_read), Ok(unix_write)) = (tcp.try_clone(), unix.try_clone()) else {
        return;
    };
    let upstream = std::thread::Builder::new()
        .name("egress-up".to_owned())
        .spawn(move || {
            copy(tcp_read, &unix_write);
            let _ = unix_write.shutdown(Shutdown::Write);
        });
    if upstream.is_err() {
        return;
    }
    copy(&unix, &tcp);
    // The proxy is done: end both directions, so the upstream copy returns even if the plugin
    // keeps its end open.
    let _ = tcp.shutdown(Shutdown::Both);
    if let Ok(handle) = upstream {
        let _ = handle.join();
    }
}

fn copy(mut from: impl Read, mut to: impl Write) {
    let mut buffer = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if to.write_all(&buffer[..n]).is_err() {
                    return;
                }
            }
        }
    }
}
