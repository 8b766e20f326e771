//! The DATA receiver: finds the end of the message (only CRLF.CRLF, so
//! no bare-LF "smuggling" can end it early), removes dot-stuffing, and
//! notes what makes the content unacceptable, while never storing more
//! than the size limit. The rest of an oversized body is read and dropped,
//! so the session can go on.

/// Longest text line allowed, excluding CRLF (RFC 5321 4.5.3.1.6).
pub const MAX_LINE: usize = 998;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    LineStart,
    Dot,
    DotCr,
    Text,
    Cr,
}

/// Why received content cannot be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataError {
    TooBig,
    BareLineEnding,
    LongLine,
    Nul,
    /// The memory budget for messages in flight had no room (try later).
    NoRoom,
}

#[derive(Debug)]
pub struct DataReceiver {
    state: State,
    line_len: usize,
    max_size: usize,
    too_big: bool,
    bare: bool,
    long_line: bool,
    nul: bool,
    /// Set when the memory budget ran out: octets are counted, not kept.
    no_room: bool,
    /// Octets of content received (kept or not).
    received: usize,
}

impl DataReceiver {
    pub fn new(max_size: usize) -> DataReceiver {
        DataReceiver {
            state: State::LineStart,
            line_len: 0,
            max_size,
            too_big: false,
            bare: false,
            long_line: false,
            nul: false,
            no_room: false,
            received: 0,
        }
    }

    pub fn max_size(&self) -> usize {
        self.max_size
    }

    /// Whether content is still being kept (not oversized, not out of room).
    pub fn keeping(&self) -> bool {
        !self.no_room && !self.too_big
    }

    /// The memory budget has no room beyond `kept` octets: keep no more,
    /// read on to the end of the data.
    pub fn stop_keeping(&mut self, kept: usize) {
        self.no_room = true;
        self.received = kept;
    }

    fn push(&mut self, out: &mut Vec<u8>, b: u8) {
        if self.no_room {
            self.received += 1;
            self.too_big |= self.received > self.max_size;
        } else if out.len() < self.max_size {
            out.push(b);
        } else {
            self.too_big = true;
        }
    }

    fn text(&mut self, out: &mut Vec<u8>, b: u8) {
        match b {
            b'\r' => self.state = State::Cr,
            b'\n' => {
                // A bare LF does not start a line that a dot could end:
                // "\n.\r\n" is text (no SMTP smuggling).
                self.bare = true;
                self.push(out, b);
                self.state = State::Text;
                self.line_len = 0;
            }
            _ => {
                if b == 0 {
                    self.nul = true;
                }
                self.line_len += 1;
                if self.line_len > MAX_LINE {
                    self.long_line = true;
                }
                self.push(out, b);
                self.state = State::Text;
            }
        }
    }

    /// Consumes bytes from `input`, appending message content to `out`.
    /// Returns how many bytes it used once the terminating CRLF.CRLF has
    /// been seen (the rest belongs to the next command), or `None` if it
    /// needs more input.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Option<usize> {
        for (i, &b) in input.iter().enumerate() {
            match self.state {
                State::LineStart => match b {
                    b'.' => self.state = State::Dot,
                    _ => self.text(out, b),
                },
                State::Dot => match b {
                    b'\r' => self.state = State::DotCr,
                    // A stuffed dot: drop it and keep the rest of the line.
                    _ => self.text(out, b),
                },
                State::DotCr => match b {
                    b'\n' => return Some(i + 1),
                    _ => {
                        self.bare = true;
                        self.push(out, b'\r');
                        self.text(out, b);
                    }
                },
                State::Text => self.text(out, b),
                State::Cr => match b {
                    b'\n' => {
                        self.push(out, b'\r');
                        self.push(out, b'\n');
                        self.state = State::LineStart;
                        self.line_len = 0;
                    }
                    b'\r' => {
                        self.bare = true;
                        self.push(out, b'\r');
                    }
                    _ => {
                        self.bare = true;
                        self.push(out, b'\r');
                        self.text(out, b);
                    }
                },
            }
        }
        None
    }

    /// The verdict on everything received, once the end was found.
    pub fn verdict(&self) -> Result<(), DataError> {
        if self.too_big {
            Err(DataError::TooBig)
        } else if self.no_room {
            Err(DataError::NoRoom)
        } else if self.nul {
            Err(DataError::Nul)
        } else if self.bare {
            Err(DataError::BareLineEnding)
        } else if self.long_line {
            Err(DataError::LongLine)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[u8], max: usize) -> (Vec<u8>, Option<usize>, Result<(), DataError>) {
        let mut r = DataReceiver::new(max);
        let mut out = Vec::new();
        let used = r.feed(input, &mut out);
        (out, used, r.verdict())
    }

    #[test]
    fn unstuffs_and_finds_end() {
        let (out, used, v) = run(
            b"Subject: x\r\n\r\n..dot\r\n.x\r\nend\r\n.\r\nQUIT\r\n",
            1000,
        );
        assert_eq!(out, b"Subject: x\r\n\r\n.dot\r\nx\r\nend\r\n");
        assert_eq!(used, Some(33));
        assert_eq!(v, Ok(()));
    }

    #[test]
    fn split_input_is_the_same() {
        let msg = b"a\r\n..b\r\n.\r\n";
        for cut in 0..msg.len() {
            let mut r = DataReceiver::new(100);
            let mut out = Vec::new();
            let first = r.feed(&msg[..cut], &mut out);
            let used = first.or_else(|| r.feed(&msg[cut..], &mut out).map(|n| n + cut));
            assert_eq!(used, Some(msg.len()), "cut {cut}");
            assert_eq!(out, b"a\r\n.b\r\n");
        }
    }

    #[test]
    fn bare_lf_does_not_end_data() {
        let (_, used, _) = run(b"a\n.\nb\r\n", 100);
        assert_eq!(used, None);
        let (_, used, v) = run(b"a\n.\nb\r\n.\r\n", 100);
        assert_eq!(used, Some(10));
        assert_eq!(v, Err(DataError::BareLineEnding));
    }

    #[test]
    fn lf_dot_crlf_does_not_end_data() {
        let (_, used, _) = run(b"a\n.\r\nQUIT\r\n", 100);
        assert_eq!(used, None);
        let (_, used, v) = run(b"a\n.\r\nQUIT\r\n.\r\n", 100);
        assert_eq!(used, Some(14));
        assert_eq!(v, Err(DataError::BareLineEnding));
        let (_, used, _) = run(b"a\r\n.\n.\r\n", 100);
        assert_eq!(used, None);
    }

    #[test]
    fn too_big_is_drained() {
        let (out, used, v) = run(b"0123456789\r\n.\r\n", 5);
        assert_eq!(out.len(), 5);
        assert_eq!(used, Some(15));
        assert_eq!(v, Err(DataError::TooBig));
    }

    #[test]
    fn out_of_room_drains_and_still_spots_too_big() {
        let mut r = DataReceiver::new(20);
        let mut out = Vec::new();
        assert_eq!(r.feed(b"0123", &mut out), None);
        r.stop_keeping(out.len());
        assert_eq!(r.feed(b"456789\r\n.\r\n", &mut out), Some(11));
        assert_eq!(out, b"0123");
        assert_eq!(r.verdict(), Err(DataError::NoRoom));
        let mut r = DataReceiver::new(10);
        let mut out = Vec::new();
        r.stop_keeping(0);
        assert_eq!(r.feed(b"0123456789abc\r\n.\r\n", &mut out), Some(18));
        assert_eq!(r.verdict(), Err(DataError::TooBig));
    }

    #[test]
    fn long_line_and_nul() {
        let mut m = vec![b'a'; MAX_LINE + 1];
        m.extend_from_slice(b"\r\n.\r\n");
        assert_eq!(run(&m, 10_000).2, Err(DataError::LongLine));
        let mut ok = vec![b'a'; MAX_LINE];
        ok.extend_from_slice(b"\r\n.\r\n");
        assert_eq!(run(&ok, 10_000).2, Ok(()));
        assert_eq!(run(b"a\0b\r\n.\r\n", 100).2, Err(DataError::Nul));
    }
}
