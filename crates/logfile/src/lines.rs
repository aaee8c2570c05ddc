//! Cutting a byte buffer into lines without looking at their content.

/// One line piece inside a buffer: `buf[start..end]`, the next piece starts at `next`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Piece {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) next: usize,
    /// `false` when cut at the length limit rather than at a `\n`.
    pub(crate) complete: bool,
}

/// The next line in `buf[start..]`, or `None` if the rest is a partial line that may still
/// grow. Lines longer than `max` come out as pieces of exactly `max` bytes.
pub(crate) fn next_piece(buf: &[u8], start: usize, max: usize) -> Option<Piece> {
    let rest = buf.get(start..)?;
    // A line of exactly `max` bytes has its `\n` at index `max`: look one byte further.
    let window = &rest[..rest.len().min(max.saturating_add(1))];
    match memchr::memchr(b'\n', window) {
        Some(len) => Some(Piece {
            start,
            end: start + len,
            next: start + len + 1,
            complete: true,
        }),
        None if window.len() > max => Some(Piece {
            start,
            end: start + max,
            next: start + max,
            complete: false,
        }),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(buf: &[u8], max: usize) -> (Vec<(&[u8], bool)>, usize) {
        let mut out = Vec::new();
        let mut pos = 0;
        while let Some(p) = next_piece(buf, pos, max) {
            out.push((&buf[p.start..p.end], p.complete));
            pos = p.next;
        }
        (out, pos)
    }

    #[test]
    fn keeps_bytes_and_waits_for_partial_line() {
        let buf = b"a\r\n\xff\xfe bad\n\ncut";
        let (lines, consumed) = all(buf, 100);
        assert_eq!(
            lines,
            vec![
                (&b"a\r"[..], true),
                (&b"\xff\xfe bad"[..], true),
                (&b""[..], true)
            ]
        );
        assert_eq!(&buf[consumed..], b"cut");
    }

    #[test]
    fn splits_only_lines_longer_than_max() {
        let (lines, consumed) = all(b"abcd\nabcde\nab", 4);
        assert_eq!(
            lines,
            vec![
                (&b"abcd"[..], true),
                (&b"abcd"[..], false),
                (&b"e"[..], true)
            ]
        );
        assert_eq!(consumed, 11);
        // exactly `max` bytes without a terminator yet: wait, it may be a whole line
        assert_eq!(all(b"abcd", 4).0, vec![]);
        assert_eq!(all(b"abcde", 4).0, vec![(&b"abcd"[..], false)]);
    }
}
