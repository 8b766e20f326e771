//! Buffered, bounded I/O for one SMTP connection: command lines into a
//! fixed-capacity buffer, message data through the DATA receiver, replies
//! gathered and written in one go when the client has nothing more
//! pipelined. Every read and write has a deadline.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;

use super::data::DataReceiver;

/// Capacity of the line buffer: SASL responses may be longer than the
/// 512-octet command limit (long passwords in base64).
pub const LINE_CAP: usize = 2048;
pub type Line = heapless::Vec<u8, LINE_CAP>;

const READ_BUF: usize = 16 * 1024;
/// Replies are written once this much is waiting, even mid-pipeline.
const WRITE_HIGH_WATER: usize = 8 * 1024;
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub enum ConnError {
    Timeout,
    Closed,
    Io(std::io::Error),
}

/// A line as read: complete, or longer than the caller's limit (in which
/// case everything up to its end was read and dropped).
#[derive(Debug, PartialEq, Eq)]
pub enum LineRead {
    Complete,
    TooLong,
}

pub struct Conn<S> {
    io: S,
    rbuf: Box<[u8]>,
    pos: usize,
    end: usize,
    wbuf: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    pub fn new(io: S) -> Conn<S> {
        Conn {
            io,
            rbuf: vec![0; READ_BUF].into_boxed_slice(),
            pos: 0,
            end: 0,
            wbuf: Vec::with_capacity(512),
        }
    }

    pub fn into_inner(self) -> S {
        self.io
    }

    /// Is client input waiting that was read but not yet used?
    pub fn has_buffered(&self) -> bool {
        self.pos < self.end
    }

    /// Drops input read but not used (e.g. plaintext pipelined after
    /// STARTTLS, which must never be taken as coming over TLS).
    pub fn discard_buffered(&mut self) {
        self.pos = 0;
        self.end = 0;
    }

    async fn fill(&mut self, wait: Duration) -> Result<(), ConnError> {
        if self.pos < self.end {
            return Ok(());
        }
        self.flush().await?;
        self.pos = 0;
        self.end = 0;
        let n = timeout(wait, self.io.read(&mut self.rbuf))
            .await
            .map_err(|_| ConnError::Timeout)?
            .map_err(ConnError::Io)?;
        if n == 0 {
            return Err(ConnError::Closed);
        }
        self.end = n;
        Ok(())
    }

    /// The next input octet, left unread (waits for it).
    pub async fn peek_byte(&mut self, wait: Duration) -> Result<u8, ConnError> {
        self.fill(wait).await?;
        Ok(self.rbuf[self.pos])
    }

    /// Reads one line (without its CRLF or bare LF) into `line`; at most
    /// `limit` octets are kept.
    pub async fn read_line(
        &mut self,
        line: &mut Line,
        limit: usize,
        wait: Duration,
    ) -> Result<LineRead, ConnError> {
        line.clear();
        let limit = limit.min(LINE_CAP - 1);
        // Room for the CR of the CRLF, which is not part of the limit.
        let keep = limit + 1;
        let mut too_long = false;
        loop {
            self.fill(wait).await?;
            let avail = &self.rbuf[self.pos..self.end];
            let (chunk, found) = match avail.iter().position(|&b| b == b'\n') {
                Some(i) => (&avail[..i], true),
                None => (avail, false),
            };
            if !too_long {
                if line.len() + chunk.len() <= keep {
                    line.extend_from_slice(chunk)
                        .map_err(|_| ConnError::Closed)?;
                } else {
                    too_long = true;
                    line.clear();
                }
            }
            self.pos += chunk.len() + usize::from(found);
            if found {
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                too_long |= line.len() > limit;
                return Ok(if too_long {
                    LineRead::TooLong
                } else {
                    LineRead::Complete
                });
            }
        }
    }

    /// Reads message data until CRLF.CRLF, into `out`. Before `out` may
    /// grow, `room(len)` is asked for room for `len` octets (the memory
    /// budget for messages in flight) and says how much it granted (at
    /// least `len`); without it, the receiver stops keeping data and
    /// drains the rest.
    pub async fn read_data(
        &mut self,
        rx: &mut DataReceiver,
        out: &mut Vec<u8>,
        wait: Duration,
        mut room: impl FnMut(usize) -> Option<usize>,
    ) -> Result<(), ConnError> {
        let mut granted = 0;
        loop {
            self.fill(wait).await?;
            let avail = &self.rbuf[self.pos..self.end];
            if rx.keeping() {
                let need = (out.len() + avail.len()).min(rx.max_size());
                if need > granted {
                    match room(need) {
                        Some(room) => {
                            // Capacity follows the reservation (which grows
                            // by doubling), not Vec's own growth.
                            granted = room.clamp(need, rx.max_size());
                            out.reserve_exact(granted - out.len());
                        }
                        None => rx.stop_keeping(out.len()),
                    }
                }
            }
            match rx.feed(avail, out) {
                Some(used) => {
                    self.pos += used;
                    return Ok(());
                }
                None => self.pos = self.end,
            }
        }
    }

    /// Queues a reply; it is written by `flush` or when enough is waiting.
    pub async fn reply(&mut self, text: &str) -> Result<(), ConnError> {
        self.wbuf.extend_from_slice(text.as_bytes());
        if self.wbuf.len() >= WRITE_HIGH_WATER {
            self.flush().await?;
        }
        Ok(())
    }

    pub async fn flush(&mut self) -> Result<(), ConnError> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let write = async {
            self.io.write_all(&self.wbuf).await?;
            self.io.flush().await
        };
        timeout(WRITE_TIMEOUT, write)
            .await
            .map_err(|_| ConnError::Timeout)?
            .map_err(ConnError::Io)?;
        self.wbuf.clear();
        Ok(())
    }

    /// Flushes and closes the write side, ignoring a peer that is gone.
    pub async fn close(&mut self) {
        let _ = self.flush().await;
        let _ = timeout(Duration::from_secs(5), self.io.shutdown()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn read_one(input: &[u8], limit: usize) -> (LineRead, usize) {
        let (mut client, server) = tokio::io::duplex(4096);
        client.write_all(input).await.unwrap();
        let mut conn = Conn::new(server);
        let mut line = Line::new();
        let read = conn
            .read_line(&mut line, limit, Duration::from_secs(5))
            .await
            .unwrap();
        (read, line.len())
    }

    #[tokio::test]
    async fn limit_excludes_the_line_ending() {
        let mut at = vec![b'x'; 510];
        at.extend_from_slice(b"\r\n");
        assert_eq!(read_one(&at, 510).await, (LineRead::Complete, 510));
        let mut over = vec![b'x'; 511];
        over.extend_from_slice(b"\r\n");
        assert_eq!(read_one(&over, 510).await.0, LineRead::TooLong);
        // 511 octets ending in a bare LF: the last octet is not a CR.
        let mut lf = vec![b'x'; 511];
        lf.push(b'\n');
        assert_eq!(read_one(&lf, 510).await.0, LineRead::TooLong);
        let mut cap = vec![b'y'; LINE_CAP - 1];
        cap.extend_from_slice(b"\r\n");
        assert_eq!(
            read_one(&cap, LINE_CAP).await,
            (LineRead::Complete, LINE_CAP - 1)
        );
    }
}
