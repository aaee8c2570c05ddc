//! Messages Endpoint Security dropped before the agent saw them, counted from sequence gaps.
//!
//! ES numbers the messages it means to deliver to a client: `seq_num` per event type,
//! `global_seq_num` over all types (message version 4 and later). When the kernel has to
//! drop messages for a slow client, the next message it delivers jumps ahead; the jump
//! minus one is what was lost. Muted events are not numbered, so muting makes no gap.

use std::collections::HashMap;

/// Counts dropped messages from the sequence numbers of the messages received.
#[derive(Debug, Default, Clone)]
pub struct SeqGaps {
    last_global: Option<u64>,
    last_per_type: HashMap<u32, u64>,
    lost: u64,
}

impl SeqGaps {
    /// A counter that has seen nothing.
    pub fn new() -> SeqGaps {
        SeqGaps::default()
    }

    /// Takes in one message's numbers and returns how many messages were lost just before
    /// it. The global number is used when the message has one (`version >= 4`), the number
    /// of its event type otherwise; using both would count one drop twice. A number that
    /// goes back (a new ES client, after a restart) starts a new sequence, with no loss.
    pub fn observe(&mut self, version: u32, event_type: u32, seq_num: u64, global: u64) -> u64 {
        let lost = if version >= 4 {
            gap(&mut self.last_global, global)
        } else {
            let mut last = self.last_per_type.get(&event_type).copied();
            let lost = gap(&mut last, seq_num);
            if let Some(l) = last {
                self.last_per_type.insert(event_type, l);
            }
            lost
        };
        self.lost += lost;
        lost
    }

    /// Everything lost so far.
    pub fn lost(&self) -> u64 {
        self.lost
    }
}

fn gap(last: &mut Option<u64>, now: u64) -> u64 {
    let lost = match *last {
        Some(prev) if now > prev => now - prev - 1,
        _ => 0,
    };
    *last = Some(now);
    lost
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_numbers_lose_nothing_and_a_jump_counts_the_missing() {
        let mut g = SeqGaps::new();
        assert_eq!(g.observe(7, 9, 0, 100), 0);
        assert_eq!(g.observe(7, 13, 0, 101), 0);
        assert_eq!(g.observe(7, 9, 1, 105), 3);
        assert_eq!(g.observe(7, 9, 2, 106), 0);
        assert_eq!(g.lost(), 3);
    }

    #[test]
    fn the_global_number_wins_so_one_drop_is_counted_once() {
        let mut g = SeqGaps::new();
        g.observe(7, 9, 10, 50);
        // exec #11 and a create were dropped: the exec sequence skips one, the global two.
        assert_eq!(g.observe(7, 9, 12, 53), 2);
        assert_eq!(g.lost(), 2);
    }

    #[test]
    fn old_messages_use_the_number_of_their_event_type() {
        let mut g = SeqGaps::new();
        g.observe(3, 9, 0, 0);
        g.observe(3, 13, 0, 0);
        assert_eq!(g.observe(3, 13, 1, 0), 0);
        assert_eq!(g.observe(3, 9, 4, 0), 3);
        assert_eq!(g.observe(3, 13, 3, 0), 1);
        assert_eq!(g.lost(), 4);
    }

    #[test]
    fn a_sequence_that_restarts_is_not_a_loss() {
        let mut g = SeqGaps::new();
        g.observe(7, 9, 500, 9000);
        assert_eq!(g.observe(7, 9, 0, 0), 0);
        assert_eq!(g.observe(7, 9, 1, 2), 1);
        assert_eq!(g.lost(), 1);
    }
}
