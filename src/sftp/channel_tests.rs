//! Framing and decoding of requests: whatever the bytes, a request, a wait
//! for more, or a refusal — never a panic or a read past the packet.

use bytes::{BufMut, Bytes, BytesMut};

use super::*;

fn string(b: &mut BytesMut, s: &[u8]) {
    b.put_u32(s.len() as u32);
    b.put_slice(s);
}

/// SSH_FXP_WRITE `id`, handle "7", offset 10, `declared` bytes announced,
/// `data` following.
fn write_request(id: u32, declared: u32, data: &[u8]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_u8(SSH_FXP_WRITE);
    b.put_u32(id);
    string(&mut b, b"7");
    b.put_u64(10);
    b.put_u32(declared);
    b.put_slice(data);
    b.freeze()
}

fn framed(p: &[u8]) -> BytesMut {
    let mut b = BytesMut::new();
    b.put_u32(p.len() as u32);
    b.put_slice(p);
    b
}

#[test]
fn frames_come_whole_one_at_a_time() {
    let w = write_request(3, 4, b"abcd");
    let mut buf = framed(&w);
    buf.extend_from_slice(&framed(&w)[..6]);
    match next_frame(&mut buf) {
        Frame::Request(p) => assert_eq!(p, w),
        other => panic!("{other:?}"),
    }
    assert!(matches!(next_frame(&mut buf), Frame::Incomplete));
    assert_eq!(buf.len(), 6, "the start of the next request stays");
}

#[test]
fn a_zero_or_oversized_length_is_refused() {
    let mut zero = BytesMut::from(&[0u8, 0, 0, 0, 9][..]);
    assert!(matches!(next_frame(&mut zero), Frame::Bad));
    let mut huge = BytesMut::new();
    huge.put_u32(MAX_PACKET as u32 + 1);
    assert!(matches!(next_frame(&mut huge), Frame::Bad));
    let mut short = BytesMut::from(&[0u8, 0][..]);
    assert!(matches!(next_frame(&mut short), Frame::Incomplete));
}

#[test]
fn a_write_keeps_its_data_as_a_slice_and_a_short_one_is_malformed() {
    match decode(&write_request(9, 4, b"abcdEXTRA")).unwrap() {
        Request::Write { handle, offset, data } => {
            assert_eq!((handle.as_str(), offset, &data[..]), ("7", 10, &b"abcd"[..]));
        }
        other => panic!("{other:?}"),
    }
    let short = write_request(9, 40, b"abcd");
    let f = decode(&short).unwrap_err();
    assert_eq!(f.code, russh_sftp::protocol::StatusCode::BadMessage);
    assert_eq!(request_id(&short), 9, "the refusal answers the request's id");
}

#[test]
fn truncated_reads_and_unknown_requests_are_malformed_and_ids_never_read_past_the_end() {
    let mut r = BytesMut::new();
    r.put_u8(SSH_FXP_READ);
    r.put_u32(5);
    string(&mut r, b"1");
    r.put_u64(0);
    r.put_u32(32768);
    let full = r.freeze();
    assert!(matches!(decode(&full).unwrap(), Request::Read { len: 32768, .. }));
    for cut in 0..full.len() {
        assert!(decode(&full.slice(..cut)).is_err(), "cut at {cut}");
        let _ = request_id(&full[..cut]);
    }
    assert!(decode(&Bytes::from_static(&[200, 0, 0, 0, 1])).is_err());
    assert_eq!(request_id(&[]), 0);
}

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
