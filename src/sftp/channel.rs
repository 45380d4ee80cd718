//! The SFTP byte stream of one SSH channel: channel data in, SFTP replies
//! out, until the client is done, goes idle, or the server shuts down.
//!
//! The loop is ours rather than `russh_sftp::server::run`: we must know when
//! the session ends to discard unfinished uploads and then answer the way
//! OpenSSH's sftp-server does (exit-status 0, EOF, CLOSE — some clients
//! hang without it). Requests are handled one at a time, in order (SFTP
//! clients rely on it for writes at increasing offsets); the disk work of
//! each runs on a blocking thread while a reader task keeps draining the
//! channel (see [`spawn_reader`] for why that matters).
//! READ and WRITE, the hot path, are decoded and encoded here without
//! copying the payload; everything else goes through russh-sftp's codec.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use russh::server::Msg;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use russh_sftp::protocol::{
    Attrs, ExtendedReply, File, FileAttributes, Handle, Name, Packet, Status, StatusCode, Version,
};
use tokio::sync::{mpsc, watch};

use super::ops::{Ops, MAX_HANDLES, MAX_READ};
use super::space::Fail;

/// Largest request accepted (OpenSSH announces 256 KiB; some clients send a
/// little more than they were told).
const MAX_PACKET: usize = 1024 * 1024;
/// What `limits@openssh.com` announces.
const LIMIT_PACKET: u64 = 256 * 1024;

const SSH_FXP_READ: u8 = 5;
const SSH_FXP_WRITE: u8 = 6;

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// EOF or CLOSE from the client.
    ClientDone,
    /// The SSH connection went away.
    ClientGone,
    /// No request for the idle timeout.
    Idle,
    /// The server is shutting down.
    Shutdown,
    /// Undecodable framing, or more unanswered requests than allowed.
    Protocol,
}

/// Completes once the shutdown flag is set (never if its sender is gone).
pub async fn shutdown_flipped(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Bytes of requests that may wait unprocessed in a session. Clients bound
/// what they have in flight (OpenSSH: 64 requests of 255 KiB = 16 MiB); a
/// session that goes past this is cut, not buffered without end.
const MAX_QUEUED: usize = 32 * 1024 * 1024;

enum Input {
    Data(Bytes),
    Eof,
    Gone,
    Overflow,
}

/// Drains the channel into an unbounded queue, so that russh's session
/// loop never blocks on us. It must not: while a reply waits for the
/// client's window (a download) or for room in russh's outgoing queue, the
/// window adjustment or the room can only come from that loop. With
/// russh's bounded channel in between, a full channel stopped the loop and
/// both sides waited for ever (seen: a 128 MiB download stuck at 28 MB).
/// Memory stays bounded by [`MAX_QUEUED`].
fn spawn_reader(
    mut read: ChannelReadHalf,
    queued: Arc<AtomicUsize>,
) -> (mpsc::UnboundedReceiver<Input>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            let input = match read.wait().await {
                Some(ChannelMsg::Data { data }) => {
                    if queued.fetch_add(data.len(), Ordering::SeqCst) + data.len() > MAX_QUEUED {
                        Input::Overflow
                    } else {
                        Input::Data(data)
                    }
                }
                Some(ChannelMsg::Eof) | Some(ChannelMsg::Close) => Input::Eof,
                None => Input::Gone,
                // Window adjustments and the like: russh has applied them.
                Some(_) => continue,
            };
            let last = !matches!(input, Input::Data(_));
            if tx.send(input).is_err() || last {
                break;
            }
        }
    });
    (rx, task)
}

/// Runs the SFTP session on a channel until it ends.
pub async fn serve(
    read: ChannelReadHalf,
    write: ChannelWriteHalf<Msg>,
    mut ops: Ops,
    idle: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> End {
    let queued = Arc::new(AtomicUsize::new(0));
    let (mut input, reader) = spawn_reader(read, queued.clone());
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let end = 'session: loop {
        let msg = tokio::select! {
            biased;
            _ = shutdown_flipped(&mut shutdown) => break End::Shutdown,
            m = tokio::time::timeout(idle, input.recv()) => match m {
                Ok(m) => m,
                Err(_) => break End::Idle,
            },
        };
        match msg {
            Some(Input::Data(data)) => {
                queued.fetch_sub(data.len(), Ordering::SeqCst);
                buf.extend_from_slice(&data);
            }
            Some(Input::Eof) => break End::ClientDone,
            Some(Input::Overflow) => break End::Protocol,
            Some(Input::Gone) | None => break End::ClientGone,
        }
        loop {
            let packet = match next_frame(&mut buf) {
                Frame::Request(packet) => packet,
                Frame::Incomplete => break,
                Frame::Bad => break 'session End::Protocol,
            };
            let reply = dispatch(&mut ops, packet).await;
            // A client that stops reading its replies is gone as well.
            match tokio::time::timeout(idle, write.data_bytes(reply)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => break 'session End::ClientGone,
            }
        }
    };
    reader.abort();
    ops.finish().await;
    if end != End::ClientGone {
        // What OpenSSH sends when its sftp-server exits.
        let _ = write.exit_status(0).await;
        let _ = write.eof().await;
        let _ = write.close().await;
    }
    end
}

/// What the framing finds at the head of the session's buffer.
#[derive(Debug)]
pub enum Frame {
    /// One whole request, without its length prefix (never empty).
    Request(Bytes),
    /// Not all of it has come yet (room is reserved for the rest).
    Incomplete,
    /// A length of 0 or past [`MAX_PACKET`]: the stream cannot be trusted.
    Bad,
}

/// Takes the next length-prefixed request off `buf`.
pub fn next_frame(buf: &mut BytesMut) -> Frame {
    if buf.len() < 4 {
        return Frame::Incomplete;
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len == 0 || len > MAX_PACKET {
        return Frame::Bad;
    }
    if buf.len() < 4 + len {
        buf.reserve(4 + len - buf.len());
        return Frame::Incomplete;
    }
    let mut packet = buf.split_to(4 + len).freeze();
    packet.advance(4);
    Frame::Request(packet)
}

/// One request as decoded off the wire.
#[derive(Debug)]
pub enum Request {
    /// SSH_FXP_READ, decoded here (the hot path).
    Read { handle: String, offset: u64, len: u32 },
    /// SSH_FXP_WRITE; `data` is a slice of the request buffer, not a copy.
    Write { handle: String, offset: u64, data: Bytes },
    /// Every other request, decoded by russh-sftp.
    Other(Packet),
}

/// The request id of `packet` (0 when it has none), for the status reply
/// of a request that cannot be decoded.
pub fn request_id(packet: &[u8]) -> u32 {
    Cursor(packet.get(1..).unwrap_or_default()).u32().unwrap_or(0)
}

/// Decodes one request (a [`Frame::Request`]); a malformed one is a
/// BAD_MESSAGE for its id, never a panic.
pub fn decode(packet: &Bytes) -> Result<Request, Fail> {
    let Some(&kind) = packet.first() else {
        return Err(malformed());
    };
    match kind {
        SSH_FXP_READ => {
            let mut c = Cursor(&packet[1..]);
            let (_id, handle, offset, len) =
                (|| Some((c.u32()?, c.text()?, c.u64()?, c.u32()?)))().ok_or_else(malformed)?;
            Ok(Request::Read { handle, offset, len })
        }
        SSH_FXP_WRITE => {
            let mut c = Cursor(&packet[1..]);
            let (_id, handle, offset, len) =
                (|| Some((c.u32()?, c.text()?, c.u64()?, c.u32()? as usize)))().ok_or_else(malformed)?;
            if c.0.len() < len {
                return Err(malformed());
            }
            let start = packet.len() - c.0.len();
            Ok(Request::Write {
                handle,
                offset,
                data: packet.slice(start..start + len),
            })
        }
        _ => {
            let mut b = packet.clone();
            Packet::try_from(&mut b).map(Request::Other).map_err(|_| malformed())
        }
    }
}

/// Handles one request (without its length prefix); returns the encoded reply.
async fn dispatch(ops: &mut Ops, packet: Bytes) -> Bytes {
    let id = request_id(&packet);
    let result = match decode(&packet) {
        Ok(Request::Read { handle, offset, len }) => ops.read(id, &handle, offset, len).await,
        Ok(Request::Write { handle, offset, data }) => match ops.write(&handle, offset, data).await {
            Ok(_) => ok(id),
            Err(f) => Err(f),
        },
        Ok(Request::Other(p)) => request(ops, p).await,
        Err(f) => Err(f),
    };
    let reply = match result {
        Ok(bytes) => return bytes,
        Err(f) => status(id, f.code, &f.msg),
    };
    encode(reply)
}

fn encode(p: Packet) -> Bytes {
    match Bytes::try_from(p) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!("cannot encode an SFTP reply: {e}");
            Bytes::new()
        }
    }
}

fn status(id: u32, code: StatusCode, msg: &str) -> Packet {
    Packet::Status(Status {
        id,
        status_code: code,
        error_message: msg.to_string(),
        language_tag: "en".to_string(),
    })
}

fn ok(id: u32) -> Result<Bytes, Fail> {
    Ok(encode(status(id, StatusCode::Ok, "OK")))
}

/// A forward-only reader of SFTP wire fields.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8).map(|b| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            u64::from_be_bytes(a)
        })
    }
    fn string(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn text(&mut self) -> Option<String> {
        self.string().map(|s| String::from_utf8_lossy(s).into_owned())
    }
}

fn malformed() -> Fail {
    Fail::new(StatusCode::BadMessage, "malformed request")
}

/// Every other request, decoded by russh-sftp.
async fn request(ops: &mut Ops, p: Packet) -> Result<Bytes, Fail> {
    let reply = match p {
        Packet::Init(_) => {
            // SFTP v3 only (what every client speaks); the extensions
            // OpenSSH clients use for speed and atomic renames.
            let extensions: HashMap<String, String> = [
                ("posix-rename@openssh.com", "1"),
                ("limits@openssh.com", "1"),
                ("fsync@openssh.com", "1"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            Packet::Version(Version { version: 3, extensions })
        }
        Packet::Open(o) => {
            let handle = ops.open(&o.filename, o.pflags).await?;
            Packet::Handle(Handle { id: o.id, handle })
        }
        Packet::Close(c) => {
            ops.close(&c.handle).await?;
            return ok(c.id);
        }
        Packet::Lstat(s) => Packet::Attrs(Attrs {
            id: s.id,
            attrs: ops.stat(&s.path).await?,
        }),
        Packet::Stat(s) => Packet::Attrs(Attrs {
            id: s.id,
            attrs: ops.stat(&s.path).await?,
        }),
        Packet::Fstat(s) => Packet::Attrs(Attrs {
            id: s.id,
            attrs: ops.fstat(&s.handle).await?,
        }),
        Packet::SetStat(s) => {
            ops.setstat(&s.path).await?;
            return ok(s.id);
        }
        Packet::FSetStat(s) => {
            ops.fsetstat(&s.handle)?;
            return ok(s.id);
        }
        Packet::OpenDir(o) => {
            let handle = ops.opendir(&o.path).await?;
            Packet::Handle(Handle { id: o.id, handle })
        }
        Packet::ReadDir(r) => Packet::Name(Name {
            id: r.id,
            files: ops.readdir(&r.handle)?,
        }),
        Packet::Remove(r) => {
            ops.remove(&r.filename).await?;
            return ok(r.id);
        }
        Packet::MkDir(_) => return Err(Fail::denied("folders cannot be created here")),
        Packet::RmDir(_) => return Err(Fail::denied("folders cannot be removed here")),
        Packet::RealPath(r) => Packet::Name(Name {
            id: r.id,
            files: vec![File {
                filename: ops.realpath(&r.path)?,
                longname: String::new(),
                attrs: FileAttributes::default(),
            }],
        }),
        Packet::Rename(r) => {
            ops.rename(&r.oldpath, &r.newpath, false).await?;
            return ok(r.id);
        }
        Packet::ReadLink(_) => return Err(Fail::denied("links are not supported")),
        Packet::Symlink(_) => return Err(Fail::denied("links cannot be created here")),
        Packet::Extended(e) => return extended(ops, e.id, &e.request, &e.data).await,
        _ => return Err(Fail::new(StatusCode::BadMessage, "unexpected packet")),
    };
    Ok(encode(reply))
}

/// SSH_FXP_EXTENDED requests we implement.
async fn extended(ops: &mut Ops, id: u32, request: &str, data: &[u8]) -> Result<Bytes, Fail> {
    let mut c = Cursor(data);
    match request {
        "posix-rename@openssh.com" => {
            let (from, to) = (|| Some((c.text()?, c.text()?)))().ok_or_else(malformed)?;
            ops.rename(&from, &to, true).await?;
            ok(id)
        }
        "fsync@openssh.com" => {
            let handle = c.text().ok_or_else(malformed)?;
            ops.fsync(&handle).await?;
            ok(id)
        }
        "limits@openssh.com" => {
            let mut d = Vec::with_capacity(32);
            for v in [
                LIMIT_PACKET,
                u64::from(MAX_READ),
                u64::from(MAX_READ),
                MAX_HANDLES as u64,
            ] {
                d.extend_from_slice(&v.to_be_bytes());
            }
            Ok(encode(Packet::ExtendedReply(ExtendedReply { id, data: d })))
        }
        _ => Err(Fail::unsupported(format!("{request} is not supported"))),
    }
}

#[cfg(test)]
#[path = "channel_tests.rs"]
mod tests;
