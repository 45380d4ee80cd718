//! libFuzzer target: arbitrary bytes as the SFTP byte stream of a channel,
//! through the server's framing and request decoding
//! (`ppas_gateway::sftp::channel::{next_frame, decode}`), as a hostile
//! client would send them, split into chunks at arbitrary points.
//!
//! Never a panic; a frame is never empty nor longer than the stream gave;
//! a WRITE's data is exactly the length it announced and lies inside its
//! packet; a request russh-sftp decodes encodes again without panicking
//! (the reply path uses the same codec).

#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use ppas_gateway::sftp::channel::{decode, next_frame, request_id, Frame, Request};

fuzz_target!(|data: &[u8]| {
    // The first byte sets the chunk size the stream arrives in.
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let chunk = (chunk as usize % 64) + 1;
    let mut buf = BytesMut::new();
    let mut taken = 0usize;
    'stream: for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match next_frame(&mut buf) {
                Frame::Request(packet) => {
                    assert!(!packet.is_empty(), "an empty request");
                    taken += 4 + packet.len();
                    assert!(taken <= stream.len(), "a frame past the stream");
                    check(&packet);
                }
                Frame::Incomplete => break,
                Frame::Bad => break 'stream,
            }
        }
    }
    // Decoding alone, whatever the framing said.
    check(&Bytes::copy_from_slice(stream));
});

fn check(packet: &Bytes) {
    let _ = request_id(packet);
    match decode(packet) {
        Ok(Request::Write { data, .. }) => {
            assert!(data.len() <= packet.len());
            // The announced length is the 4 bytes just before the data.
            let start = data.as_ptr() as usize - packet.as_ptr() as usize;
            assert!(start >= 4 && start + data.len() <= packet.len());
            let declared = u32::from_be_bytes(packet[start - 4..start].try_into().unwrap()) as usize;
            assert_eq!(declared, data.len());
        }
        Ok(Request::Read { .. }) => {}
        Ok(Request::Other(p)) => {
            let _ = Bytes::try_from(p);
        }
        Err(f) => assert!(!f.msg.is_empty()),
    }
}
