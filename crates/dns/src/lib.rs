//! DNS resolution events (`event.code` 22, `dns-query-result`): one event per DNS response
//! seen on the host, with the question, answers, response code and, where the host can tell
//! for certain, the process that asked.
//!
//! Two layers:
//! - plain Rust, compiled and tested on every OS: [`frame`] (link layer, IP, UDP/TCP port
//!   53), [`message`] (DNS message to event), [`tcp`] (length-prefixed messages across
//!   segments), [`aggregate`] (repeats of one answer as `sekoiaio.repeat.count`) and the
//!   [`Decoder`] that chains them; a macOS collector feeds it frames read from `/dev/bpf`;
//! - Linux only: the `AF_PACKET` capture with a kernel BPF filter (`capture`), process
//!   attribution from `/proc` (`procnet`), and the [`DnsCollector`] behind the agent's
//!   collector contract.
//!
//! ```
//! use agent_dns::{Decoder, DecoderOptions, FrameMeta, LinkType, NoAttribution};
//!
//! let mut decoder = Decoder::new(LinkType::RawIp, DecoderOptions::default());
//! let mut events: Vec<agent_event::Event> = Vec::new();
//! decoder.push_frame(&[0x45, 0, 0], FrameMeta::at(agent_event::Timestamp::now()),
//!     &mut NoAttribution, &mut events);
//! decoder.finish(&mut events);
//! assert!(events.is_empty());
//! assert_eq!(decoder.stats().malformed_frames, 1);
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
// Events are boxed from the moment they are built: an Event is a few KiB (moving it costs
// more than the rest of the decoding), and the sink takes `Box<Event>` anyway.
#![allow(clippy::vec_box)]

pub mod aggregate;
#[cfg(target_os = "linux")]
pub mod capture;
mod collector;
pub mod decoder;
pub mod frame;
pub mod message;
pub mod pcap;
#[cfg(target_os = "linux")]
pub mod procnet;
#[cfg(target_os = "linux")]
pub mod sockdiag;
pub mod tcp;

pub use aggregate::EventOut;
pub use collector::{DnsCollector, DnsConfig};
pub use decoder::{
    Attributed, Attribution, DecodeStats, Decoder, DecoderOptions, FrameMeta, NoAttribution,
};
pub use frame::{LinkType, Transport};
pub use message::{repeat_count, response_event, Flow, MessageError};
