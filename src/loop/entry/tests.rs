use super::*;

fn until(d: &[u8], max: usize) -> ReadState {
    ReadState::new(Read::Until { delim: d.to_vec(), max })
}

#[test]
fn read_requests() {
    assert_eq!(ReadState::new(Read::Any).ready(b""), None);
    assert_eq!(ReadState::new(Read::Any).ready(b"abc"), Some(3));
    assert_eq!(ReadState::new(Read::Exactly(4)).ready(b"abc"), None);
    assert_eq!(ReadState::new(Read::Exactly(2)).ready(b"abc"), Some(2));
    assert_eq!(until(b"\n", 0).ready(b"ab\ncd\n"), Some(3));
    assert_eq!(until(b"\r\n", 0).ready(b"ab\r"), None);
    // A delimiter split across two arrivals is found.
    let mut st = until(b"\r\n", 0);
    assert_eq!(st.ready(b"ab\r"), None);
    assert_eq!(st.ready(b"ab\r\nxy"), Some(4));
    // max: the request completes with max bytes when no delimiter
    // ends within them.
    assert_eq!(until(b"\n", 4).ready(b"abcdef\n"), Some(4));
    assert_eq!(until(b"\n", 4).ready(b"abc\n"), Some(4));
    assert_eq!(until(b"\n", 4).ready(b"abc"), None);
    assert_eq!(until(b"xyz", 5).ready(b"abxyzq"), Some(5));
    assert_eq!(until(b"xyz", 4).ready(b"abxyzq"), Some(4));
}

#[test]
fn watch_picks_the_deadline_that_applies() {
    let now = Instant::now();
    let s = Duration::from_secs;
    assert!(Watch::new(None, None, now).is_none());
    let w = Watch::new(Some(s(30)), None, now).unwrap();
    assert_eq!(w.due(false), Some((now + s(30), Why::Handshake(s(30)))));
    assert_eq!(w.due(true), None);
    let mut w = Watch::new(Some(s(30)), Some(s(10)), now).unwrap();
    assert_eq!(w.due(false), Some((now + s(10), Why::Idle(s(10)))));
    w.last_io = now + s(25);
    assert_eq!(w.due(false), Some((now + s(30), Why::Handshake(s(30)))));
    assert_eq!(w.due(true), Some((now + s(35), Why::Idle(s(10)))));
    assert!(Why::Idle(s(10)).timeout().msg.contains("10000 ms"));
    assert_eq!(Why::Handshake(s(1)).after(7).code, COROTLS_ERR_IO);
}
