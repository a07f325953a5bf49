//! The listening socket (TCP or UNIX) and the streams it accepts.

use std::io::{self, Read, Write};
use std::net::ToSocketAddrs;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use mio::event::Source;
use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use mio::{Interest, Registry, Token};

use crate::settings::ListenAddr;

/// beanstalkd's listen backlog: connections the kernel completes and queues
/// while the loop is busy elsewhere. mio (like std) listens with 128, and a
/// burst of connections beyond that had its handshakes dropped: each such
/// client waited a second for its SYN to be sent again.
const BACKLOG: libc::c_int = 1024;

/// A listening socket, bound by sprout or inherited from systemd.
pub enum Listener {
    /// TCP, over IPv4 or IPv6.
    Tcp(TcpListener),
    /// A UNIX stream socket (`-l unix:PATH`, or one systemd passed).
    Unix(UnixListener),
}

/// An accepted client connection.
pub enum Stream {
    /// From a TCP listener.
    Tcp(TcpStream),
    /// From a UNIX listener.
    Unix(UnixStream),
}

impl Listener {
    /// Binds as beanstalkd does: the first usable address for a host name,
    /// and for a UNIX socket, a stale socket file at the path is replaced.
    pub fn bind(addr: &ListenAddr) -> io::Result<Listener> {
        match addr {
            ListenAddr::Tcp { host, port } => {
                let mut last_error = io::Error::new(io::ErrorKind::AddrNotAvailable, format!("no address for {host}"));
                for candidate in (host.as_str(), *port).to_socket_addrs()? {
                    match TcpListener::bind(candidate) {
                        Ok(listener) => {
                            set_backlog(listener.as_fd())?;
                            return Ok(Listener::Tcp(listener));
                        }
                        Err(e) => last_error = e,
                    }
                }
                Err(last_error)
            }
            ListenAddr::Unix(path) => {
                remove_stale_socket(path)?;
                let listener = UnixListener::bind(path)?;
                set_backlog(listener.as_fd())?;
                Ok(Listener::Unix(listener))
            }
        }
    }

    /// Wraps an inherited, already listening socket (systemd passes fd 3).
    pub fn from_inherited_fd(fd: OwnedFd) -> io::Result<Listener> {
        if socket_domain(fd.as_fd())? == libc::AF_UNIX {
            let std_listener = std::os::unix::net::UnixListener::from(fd);
            std_listener.set_nonblocking(true)?;
            Ok(Listener::Unix(UnixListener::from_std(std_listener)))
        } else {
            let std_listener = std::net::TcpListener::from(fd);
            std_listener.set_nonblocking(true)?;
            Ok(Listener::Tcp(TcpListener::from_std(std_listener)))
        }
    }

    /// The address it listens on, as a log line should name it
    /// (`127.0.0.1:11300`, `unix:/run/sprout.sock`).
    pub fn local_description(&self) -> String {
        match self {
            Listener::Tcp(l) => l.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            Listener::Unix(l) => l
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(|p| format!("unix:{}", p.display())))
                .unwrap_or_default(),
        }
    }

    /// Accepts one waiting connection; `WouldBlock` when none is waiting.
    /// TCP connections get `TCP_NODELAY`.
    pub fn accept(&self) -> io::Result<Stream> {
        match self {
            Listener::Tcp(l) => {
                let (stream, _) = l.accept()?;
                // Replies are small and latency matters more than packet count.
                let _ = stream.set_nodelay(true);
                Ok(Stream::Tcp(stream))
            }
            Listener::Unix(l) => Ok(Stream::Unix(l.accept()?.0)),
        }
    }
}

/// Sets the backlog of a socket that already listens (listen(2) on a
/// listening socket only changes its backlog). Sockets systemd passes keep
/// the unit's `Backlog=`.
fn set_backlog(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: listen takes no pointers, and `fd` is open for the call.
    if unsafe { libc::listen(fd.as_raw_fd(), BACKLOG) } == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

fn socket_domain(fd: BorrowedFd<'_>) -> io::Result<libc::c_int> {
    let mut domain: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `domain`; `fd` is
    // open for the duration of the call.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_DOMAIN,
            (&mut domain as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(domain)
}

/// beanstalkd unlinks an existing socket at the path but refuses to touch
/// any other kind of file.
fn remove_stale_socket(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path),
        Ok(_) => {
            Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{} exists and is not a socket", path.display())))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

impl Source for Listener {
    fn register(&mut self, registry: &Registry, token: Token, interests: Interest) -> io::Result<()> {
        match self {
            Listener::Tcp(l) => l.register(registry, token, interests),
            Listener::Unix(l) => l.register(registry, token, interests),
        }
    }
    fn reregister(&mut self, registry: &Registry, token: Token, interests: Interest) -> io::Result<()> {
        match self {
            Listener::Tcp(l) => l.reregister(registry, token, interests),
            Listener::Unix(l) => l.reregister(registry, token, interests),
        }
    }
    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        match self {
            Listener::Tcp(l) => l.deregister(registry),
            Listener::Unix(l) => l.deregister(registry),
        }
    }
}

impl Stream {
    /// Shuts the sending side down: the peer reads an end of input.
    pub fn shutdown_write(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(std::net::Shutdown::Write),
            Stream::Unix(s) => s.shutdown(std::net::Shutdown::Write),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write_vectored(bufs),
            Stream::Unix(s) => s.write_vectored(bufs),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        match self {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
        }
    }
}

impl Source for Stream {
    fn register(&mut self, registry: &Registry, token: Token, interests: Interest) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.register(registry, token, interests),
            Stream::Unix(s) => s.register(registry, token, interests),
        }
    }
    fn reregister(&mut self, registry: &Registry, token: Token, interests: Interest) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.reregister(registry, token, interests),
            Stream::Unix(s) => s.reregister(registry, token, interests),
        }
    }
    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.deregister(registry),
            Stream::Unix(s) => s.deregister(registry),
        }
    }
}
