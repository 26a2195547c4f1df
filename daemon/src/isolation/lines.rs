//! Reading a child's pipes line by line without trusting it: a line is
//! never buffered past a limit, however long the child makes it.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// What one read produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Line {
    /// A whole line (without its newline) is in the buffer; also the last,
    /// unterminated line before end of file.
    Complete,
    /// `max` bytes and more to come: the buffer holds the start of a line.
    Partial,
    /// End of file, nothing buffered.
    Eof,
}

/// Reads the next line into `buf` (cleared first), at most `max` bytes.
pub(crate) async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Line> {
    buf.clear();
    loop {
        let available = reader.fill_buf().await?;
        if buf.len() == max {
            // Full: a whole line only if the newline (or the end) comes next.
            return Ok(match available.first() {
                None => Line::Complete,
                Some(b'\n') => {
                    reader.consume(1);
                    Line::Complete
                }
                Some(_) => Line::Partial,
            });
        }
        if available.is_empty() {
            return Ok(if buf.is_empty() {
                Line::Eof
            } else {
                Line::Complete
            });
        }
        let room = max - buf.len();
        match available.iter().position(|&b| b == b'\n') {
            Some(end) if end <= room => {
                buf.extend_from_slice(&available[..end]);
                reader.consume(end + 1);
                return Ok(Line::Complete);
            }
            _ => {
                let take = available.len().min(room);
                buf.extend_from_slice(&available[..take]);
                reader.consume(take);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn splits_lines_and_caps_long_ones() {
        // A tiny read buffer so lines straddle refills.
        let data: &[u8] = b"one\n\nabcdefghij\nwxyz\nlast";
        let mut reader = tokio::io::BufReader::with_capacity(3, data);
        let mut buf = Vec::new();
        let mut seen = Vec::new();
        loop {
            let line = read_line(&mut reader, &mut buf, 4).await.unwrap();
            if line == Line::Eof {
                break;
            }
            seen.push((line, String::from_utf8(buf.clone()).unwrap()));
        }
        assert_eq!(
            seen,
            [
                (Line::Complete, "one".to_owned()),
                (Line::Complete, String::new()),
                (Line::Partial, "abcd".to_owned()),
                (Line::Partial, "efgh".to_owned()),
                (Line::Complete, "ij".to_owned()),
                (Line::Complete, "wxyz".to_owned()),
                (Line::Complete, "last".to_owned()),
            ]
        );
    }
}
