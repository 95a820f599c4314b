//! The shared-memory ring consumer as the reader's [`EventRing`].

use nightjar_proto::shm_ring::{Consumer, RingError};

use super::reader::{EventRing, RingFault, RingLoss};
use crate::store::RingSeen;

impl EventRing for Consumer {
    fn next_record(&mut self) -> Result<Option<(u64, &[u8])>, RingFault> {
        match self.next() {
            Ok(entry) => Ok(entry.map(|e| (e.end, e.bytes))),
            Err(e @ RingError::Corrupt { .. }) => Err(RingFault::Corrupt(e.to_string())),
            Err(e) => Err(RingFault::Broken(e.to_string())),
        }
    }

    fn commit(&mut self, end: u64) {
        Consumer::commit(self, end);
    }

    fn rewind(&mut self) {
        Consumer::rewind(self);
    }

    fn loss(&self) -> RingLoss {
        let s = self.stats();
        RingLoss {
            header: RingSeen {
                generation: s.generation,
                drops: s.drops,
                upstream_loss: s.upstream_loss,
            },
            lost_in_resync: s.lost_in_resync,
            resyncs: s.resyncs,
            producer_alive: s.producer_alive,
        }
    }
}
