//! A raw WebSocket client on a plain TCP socket, for tests that must send
//! what a well-behaved client library refuses to (unmasked frames, reserved
//! bits, bad UTF-8) or behave as no library does (never read, send a frame
//! header and stop). Every wait is bounded by [`crate::WAIT`].

use std::net::SocketAddr;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::WAIT;

/// A valid `Sec-WebSocket-Key` (RFC 6455's example).
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// Frame opcodes.
pub mod opcode {
    /// A text frame.
    pub const TEXT: u8 = 0x1;
    /// A binary frame.
    pub const BINARY: u8 = 0x2;
    /// A close frame.
    pub const CLOSE: u8 = 0x8;
    /// A ping.
    pub const PING: u8 = 0x9;
    /// A pong.
    pub const PONG: u8 = 0xA;
}

/// The handshake request for `path` with `key`.
pub fn upgrade_request(path: &str, key: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// Sends the handshake for `path` and reads the response head; returns the
/// socket and the status code.
pub async fn handshake(
    addr: SocketAddr,
    path: &str,
    key: &str,
) -> anyhow::Result<(TcpStream, u16)> {
    let mut stream = TcpStream::connect(addr).await?;
    stream
        .write_all(upgrade_request(path, key).as_bytes())
        .await?;
    let status = read_head(&mut stream).await?;
    Ok((stream, status))
}

/// Reads a response head byte by byte; returns its status code.
async fn read_head(stream: &mut TcpStream) -> anyhow::Result<u16> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    // Byte by byte, so no frame after the head is consumed.
    while !head.ends_with(b"\r\n\r\n") {
        let read = tokio::time::timeout(WAIT, stream.read(&mut byte))
            .await
            .context("handshake timed out")??;
        if read == 0 {
            bail!(
                "closed during the handshake: {:?}",
                String::from_utf8_lossy(&head)
            );
        }
        head.push(byte[0]);
        if head.len() > 64 * 1024 {
            bail!("handshake response too long");
        }
    }
    let head = String::from_utf8_lossy(&head);
    Ok(head
        .split_whitespace()
        .nth(1)
        .context("no status")?
        .parse()?)
}

/// A WebSocket connection after a successful (101) handshake.
pub async fn connect(addr: SocketAddr, path: &str) -> anyhow::Result<TcpStream> {
    let (stream, status) = handshake(addr, path, KEY).await?;
    if status != 101 {
        bail!("expected 101, got {status}");
    }
    Ok(stream)
}

/// [`connect`] with a receive buffer of about `bytes` (the kernel may round
/// it), so a client that does not read fills its socket quickly.
pub async fn connect_small(addr: SocketAddr, path: &str, bytes: u32) -> anyhow::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(bytes)?;
    let mut stream = socket.connect(addr).await?;
    stream
        .write_all(upgrade_request(path, KEY).as_bytes())
        .await?;
    let status = read_head(&mut stream).await?;
    if status != 101 {
        bail!("expected 101, got {status}");
    }
    Ok(stream)
}

/// Encodes one frame. `first_byte` holds FIN, the reserved bits and the
/// opcode; the payload is masked when `masked` (clients must mask).
pub fn frame(first_byte: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    frame_header(first_byte, payload.len() as u64, masked)
        .into_iter()
        .chain(payload.iter().enumerate().map(|(index, byte)| {
            if masked {
                byte ^ MASK[index % 4]
            } else {
                *byte
            }
        }))
        .collect()
}

/// The header of a frame announcing `len` payload bytes (mask included when
/// `masked`), for tests that send a header and then only part of a payload.
pub fn frame_header(first_byte: u8, len: u64, masked: bool) -> Vec<u8> {
    let mask_bit = if masked { 0x80 } else { 0 };
    let mut out = vec![first_byte];
    match len {
        0..=125 => out.push(mask_bit | len as u8),
        126..=0xFFFF => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
    if masked {
        out.extend_from_slice(&MASK);
    }
    out
}

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// What the server's side of a connection ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// A close frame with this code (`None`: an empty close frame).
    Close(Option<u16>),
    /// The connection ended (EOF or reset) without a close frame.
    Dropped(String),
}

/// Reads frames (skipping data, pings and pongs) until a close frame or the
/// end of the connection; fails if neither comes within [`WAIT`].
pub async fn read_until_close(stream: &mut TcpStream) -> End {
    match tokio::time::timeout(WAIT, read_close(stream)).await {
        Ok(end) => end,
        Err(_) => End::Dropped("no close within the wait".into()),
    }
}

async fn read_close(stream: &mut TcpStream) -> End {
    loop {
        let mut head = [0u8; 2];
        if let Err(error) = stream.read_exact(&mut head).await {
            return End::Dropped(error.to_string());
        }
        let opcode = head[0] & 0x0F;
        let len = match head[1] & 0x7F {
            126 => {
                let mut bytes = [0u8; 2];
                if let Err(error) = stream.read_exact(&mut bytes).await {
                    return End::Dropped(error.to_string());
                }
                u64::from(u16::from_be_bytes(bytes))
            }
            127 => {
                let mut bytes = [0u8; 8];
                if let Err(error) = stream.read_exact(&mut bytes).await {
                    return End::Dropped(error.to_string());
                }
                u64::from_be_bytes(bytes)
            }
            short => u64::from(short),
        };
        let mut payload = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX).min(1 << 24)];
        if let Err(error) = stream.read_exact(&mut payload).await {
            return End::Dropped(error.to_string());
        }
        if opcode == opcode::CLOSE {
            let code = payload
                .get(..2)
                .map(|code| u16::from_be_bytes([code[0], code[1]]));
            return End::Close(code);
        }
    }
}
