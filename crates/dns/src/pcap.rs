//! The classic pcap file format (microsecond timestamps), enough to record frames and replay
//! them through the [`crate::Decoder`]: tests record real captures and replay them, and an
//! operator can look at a recording with any pcap tool.

use std::io::{self, Read, Write};

use agent_event::Timestamp;

use crate::frame::LinkType;

const MAGIC: u32 = 0xa1b2_c3d4;
/// Largest frame a record may hold.
const MAX_RECORD: u32 = 1 << 20;

/// Why a pcap file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    /// I/O.
    #[error("pcap: {0}")]
    Io(#[from] io::Error),
    /// Not a pcap file this reader knows.
    #[error("pcap: {0}")]
    Format(String),
}

/// Writes frames to a pcap file.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    out: W,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header for frames of `link` type.
    pub fn new(mut out: W, link: LinkType) -> Result<PcapWriter<W>, PcapError> {
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&MAGIC.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&0i32.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&MAX_RECORD.to_le_bytes());
        h.extend_from_slice(&link.pcap_linktype().to_le_bytes());
        out.write_all(&h)?;
        Ok(PcapWriter { out })
    }

    /// Appends one frame seen at `ts`.
    pub fn write(&mut self, ts: Timestamp, frame: &[u8]) -> Result<(), PcapError> {
        let len = u32::try_from(frame.len())
            .ok()
            .filter(|&l| l <= MAX_RECORD)
            .ok_or_else(|| PcapError::Format("frame too large".into()))?;
        let secs = u32::try_from(ts.unix_seconds()).unwrap_or(0);
        let mut h = Vec::with_capacity(16);
        h.extend_from_slice(&secs.to_le_bytes());
        h.extend_from_slice(&(ts.subsec_nanos() / 1000).to_le_bytes());
        h.extend_from_slice(&len.to_le_bytes());
        h.extend_from_slice(&len.to_le_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(frame)?;
        Ok(())
    }

    /// Flushes and gives the output back.
    pub fn into_inner(mut self) -> Result<W, PcapError> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// One frame read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcapRecord {
    /// Capture time.
    pub ts: Timestamp,
    /// The frame.
    pub frame: Vec<u8>,
}

/// Reads a whole pcap file: its link type and frames.
pub fn read_all(mut input: impl Read) -> Result<(LinkType, Vec<PcapRecord>), PcapError> {
    let mut h = [0u8; 24];
    input.read_exact(&mut h)?;
    let le = match u32::from_le_bytes([h[0], h[1], h[2], h[3]]) {
        MAGIC => true,
        m if m.swap_bytes() == MAGIC => false,
        m => return Err(PcapError::Format(format!("unknown magic {m:#x}"))),
    };
    let u32_at = |b: &[u8], i: usize| {
        let w = [b[i], b[i + 1], b[i + 2], b[i + 3]];
        if le {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        }
    };
    let linktype = u32_at(&h, 20) & 0x0fff_ffff;
    let link = LinkType::from_pcap_linktype(linktype)
        .ok_or_else(|| PcapError::Format(format!("unsupported link type {linktype}")))?;
    let mut records = Vec::new();
    loop {
        let mut r = [0u8; 16];
        match input.read_exact(&mut r) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e.into()),
        }
        let incl = u32_at(&r, 8);
        if incl > MAX_RECORD {
            return Err(PcapError::Format(format!("record of {incl} bytes")));
        }
        let mut frame = vec![0u8; incl as usize];
        input.read_exact(&mut frame)?;
        records.push(PcapRecord {
            ts: Timestamp::from_unix(i64::from(u32_at(&r, 0)), u32_at(&r, 4).min(999_999) * 1000),
            frame,
        });
    }
    Ok((link, records))
}

/// The 16-byte Linux cooked header (`LINKTYPE_LINUX_SLL`) of a frame received on an
/// `AF_PACKET` socket, from its `sockaddr_ll` fields.
pub fn sll_header(pkttype: u8, hatype: u16, protocol: u16) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[1] = pkttype;
    h[2..4].copy_from_slice(&hatype.to_be_bytes());
    h[14..16].copy_from_slice(&protocol.to_be_bytes());
    h
}

/// Whether a Linux cooked frame is a loopback interface's copy of a sent packet (see
/// [`crate::FrameMeta::loopback_outgoing`]).
pub fn sll_loopback_outgoing(frame: &[u8]) -> bool {
    frame.len() >= 4 && frame[1] == 4 && u16::from_be_bytes([frame[2], frame[3]]) == 772
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_survive_a_write_and_read() {
        let mut w = PcapWriter::new(Vec::new(), LinkType::LinuxSll).unwrap();
        let mut f = sll_header(4, 772, 0x0800).to_vec();
        f.extend_from_slice(b"payload");
        w.write(Timestamp::from_unix(1_700_000_000, 123_456_000), &f)
            .unwrap();
        w.write(Timestamp::from_unix(1_700_000_001, 0), b"x")
            .unwrap();
        let bytes = w.into_inner().unwrap();
        let (link, recs) = read_all(&bytes[..]).unwrap();
        assert_eq!(link, LinkType::LinuxSll);
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].frame, f);
        assert_eq!(recs[0].ts, Timestamp::from_unix(1_700_000_000, 123_456_000));
        assert!(sll_loopback_outgoing(&recs[0].frame));
        assert!(!sll_loopback_outgoing(&recs[1].frame));
        assert!(read_all(&b"not a pcap file at all!!"[..]).is_err());
    }
}
