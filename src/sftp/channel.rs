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
        while buf.len() >= 4 {
            let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
            if len == 0 || len > MAX_PACKET {
                break 'session End::Protocol;
            }
            if buf.len() < 4 + len {
                buf.reserve(4 + len - buf.len());
                break;
            }
            let mut packet = buf.split_to(4 + len).freeze();
            packet.advance(4);
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

/// Handles one request (without its length prefix); returns the encoded reply.
async fn dispatch(ops: &mut Ops, packet: Bytes) -> Bytes {
    let kind = packet[0];
    let id = Cursor(&packet[1..]).u32().unwrap_or(0);
    let result = match kind {
        SSH_FXP_READ => read(ops, &packet).await,
        SSH_FXP_WRITE => write(ops, &packet).await,
        _ => {
            let mut b = packet.clone();
            match Packet::try_from(&mut b) {
                Ok(p) => request(ops, p).await,
                Err(_) => Err(Fail::new(StatusCode::BadMessage, "malformed request")),
            }
        }
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

/// SSH_FXP_READ: id, handle, offset, length.
async fn read(ops: &mut Ops, packet: &Bytes) -> Result<Bytes, Fail> {
    let mut c = Cursor(&packet[1..]);
    let (id, handle, offset, len) = (|| Some((c.u32()?, c.text()?, c.u64()?, c.u32()?)))().ok_or_else(malformed)?;
    ops.read(id, &handle, offset, len).await
}

/// SSH_FXP_WRITE: id, handle, offset, data — the data stays a slice of the
/// request buffer.
async fn write(ops: &mut Ops, packet: &Bytes) -> Result<Bytes, Fail> {
    let mut c = Cursor(&packet[1..]);
    let (id, handle, offset, len) =
        (|| Some((c.u32()?, c.text()?, c.u64()?, c.u32()? as usize)))().ok_or_else(malformed)?;
    let start = packet.len() - c.0.len();
    if c.0.len() < len {
        return Err(malformed());
    }
    let data = packet.slice(start..start + len);
    ops.write(&handle, offset, data).await?;
    ok(id)
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
mod tests {
    use super::*;

    #[test]
    fn cursor_reads_wire_fields_and_stops_short() {
        let mut v = Vec::new();
        v.extend_from_slice(&7u32.to_be_bytes());
        v.extend_from_slice(&2u32.to_be_bytes());
        v.extend_from_slice(b"h1");
        v.extend_from_slice(&5u64.to_be_bytes());
        let mut c = Cursor(&v);
        assert_eq!(c.u32(), Some(7));
        assert_eq!(c.text().as_deref(), Some("h1"));
        assert_eq!(c.u64(), Some(5));
        assert_eq!(c.u32(), None);
        let mut short = Cursor(&[0, 0, 0, 9, b'x']);
        assert_eq!(short.string(), None, "a string longer than the packet");
    }

    /// Whatever a client sends, the answer is a well-framed packet, never a
    /// panic and never a file outside the provider's folders.
    #[test]
    fn arbitrary_requests_get_framed_answers() {
        use proptest::prelude::*;
        use std::sync::atomic::AtomicBool;

        struct Quiet;
        impl crate::sftp::SftpEvents for Quiet {
            fn upload_complete(&self, _: &str, _: &std::path::Path) {}
            fn downloaded(&self, _: &str, _: &str, _: &str, _: u64) {}
        }
        let dir = tempfile::tempdir().unwrap();
        let space = crate::sftp::space::Space::open(
            crate::sftp::space::SpaceConfig {
                spool: &dir.path().join("spool"),
                limits: Arc::new(crate::sftp::space::UploadLimits::new(1 << 20, false)),
                events: Arc::new(Quiet),
                closing: Arc::new(AtomicBool::new(false)),
            },
            "alice",
            "p1",
        )
        .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let ops = std::cell::RefCell::new(Ops::new(Arc::new(space)));
        // A request type (valid or not) followed by arbitrary bytes, with
        // plausible strings (paths, handles) mixed in.
        let piece = prop_oneof![
            any::<u32>().prop_map(|n| n.to_be_bytes().to_vec()),
            "(/|\\.\\.|in|out|x\\.xml|1|\\.sftp-0|\\x00){0,6}".prop_map(|p| {
                let mut v = (p.len() as u32).to_be_bytes().to_vec();
                v.extend_from_slice(p.as_bytes());
                v
            }),
            proptest::collection::vec(any::<u8>(), 0..16),
        ];
        let request = (0u8..=210, proptest::collection::vec(piece, 0..6));
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(512));
        runner
            .run(&request, |(kind, pieces)| {
                let mut p = vec![kind];
                for piece in pieces {
                    p.extend_from_slice(&piece);
                }
                let reply = rt.block_on(dispatch(&mut ops.borrow_mut(), Bytes::from(p)));
                prop_assert!(reply.len() >= 5);
                let len = u32::from_be_bytes([reply[0], reply[1], reply[2], reply[3]]) as usize;
                prop_assert_eq!(len + 4, reply.len());
                Ok(())
            })
            .unwrap();
        rt.block_on(ops.borrow_mut().finish());
        // Nothing but the two folders ever appeared in the spool.
        let mut top: Vec<_> = std::fs::read_dir(dir.path().join("spool"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        top.sort();
        assert_eq!(top, ["inbound", "outbound"]);
    }

    #[test]
    fn status_replies_encode_with_their_length() {
        let b = encode(status(3, StatusCode::Failure, "no"));
        let len = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        assert_eq!(len + 4, b.len());
        assert_eq!(b[4], 101, "SSH_FXP_STATUS");
    }
}
