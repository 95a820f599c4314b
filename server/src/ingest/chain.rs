//! The chain decision for one batch, given the host's locked chain head and the stored
//! neighbours of the batch's seqs (DESIGN "Ingest"): extend, re-delivery, gap, gap fill, fork.
//! Pure, so every rule is tested without a database.

use std::collections::BTreeMap;

use nightjar_proto::verify::hex;

use super::parse::IncomingAlert;

/// What is stored for a seq: (payload hash, prev).
pub type Stored = BTreeMap<u64, ([u8; 32], [u8; 32])>;

/// What the batch does to the chain.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Indexes into the batch of the alerts to store, in order.
    pub store: Vec<usize>,
    /// Seqs already stored with the same payload hash.
    pub duplicates: Vec<u64>,
    /// Missing ranges opened by this batch (inclusive).
    pub new_gaps: Vec<(u64, u64)>,
    /// Seqs that fill an open gap.
    pub fills: Vec<u64>,
    /// The head after the batch.
    pub head: (u64, [u8; 32]),
    /// The first conflicting seq and why; nothing after it is stored.
    pub fork: Option<(u64, String)>,
}

/// Decides the batch. `head` is (seq, hash) of the highest stored seq (0 and zeros when
/// none); `stored` holds at least the stored seqs within one of the batch's seqs.
pub fn plan(head: (u64, [u8; 32]), mut stored: Stored, batch: &[IncomingAlert]) -> Plan {
    let mut plan = Plan {
        head,
        ..Plan::default()
    };
    for (i, a) in batch.iter().enumerate() {
        if let Some((hash, _)) = stored.get(&a.seq) {
            if *hash == a.hash {
                plan.duplicates.push(a.seq);
                continue;
            }
            plan.fork = Some((
                a.seq,
                format!(
                    "seq {} is already stored with payload hash {}; this one hashes to {}",
                    a.seq,
                    hex(hash),
                    hex(&a.hash)
                ),
            ));
            break;
        }
        let (head_seq, head_hash) = plan.head;
        if a.seq == head_seq + 1 {
            if a.prev != head_hash {
                plan.fork = Some((
                    a.seq,
                    format!(
                        "seq {} links to prev {}, but seq {head_seq} hashes to {}",
                        a.seq,
                        hex(&a.prev),
                        hex(&head_hash)
                    ),
                ));
                break;
            }
        } else if a.seq > head_seq + 1 {
            plan.new_gaps.push((head_seq + 1, a.seq - 1));
        } else {
            // Below the head and not stored: it fills a gap, and must agree with both
            // neighbours that are stored.
            let before = if a.seq == 1 {
                Some([0u8; 32])
            } else {
                stored.get(&(a.seq - 1)).map(|(h, _)| *h)
            };
            if let Some(want) = before.filter(|want| *want != a.prev) {
                plan.fork = Some((
                    a.seq,
                    format!(
                        "seq {} fills a gap with prev {}, but seq {} hashes to {}",
                        a.seq,
                        hex(&a.prev),
                        a.seq - 1,
                        hex(&want)
                    ),
                ));
                break;
            }
            if let Some((_, next_prev)) = stored.get(&(a.seq + 1))
                && *next_prev != a.hash
            {
                plan.fork = Some((
                    a.seq,
                    format!(
                        "seq {} fills a gap, but stored seq {} links to prev {}, not its hash {}",
                        a.seq,
                        a.seq + 1,
                        hex(next_prev),
                        hex(&a.hash)
                    ),
                ));
                break;
            }
            plan.fills.push(a.seq);
        }
        stored.insert(a.seq, (a.hash, a.prev));
        plan.store.push(i);
        if a.seq > plan.head.0 {
            plan.head = (a.seq, a.hash);
        }
    }
    plan
}

/// Removes the filled seqs from open gap ranges: returns the ranges that remain.
pub fn shrink_gaps(gaps: &[(u64, u64)], fills: &[u64]) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = gaps.to_vec();
    for &s in fills {
        let mut next = Vec::with_capacity(out.len() + 1);
        for (from, to) in out {
            if s < from || s > to {
                next.push((from, to));
                continue;
            }
            if s > from {
                next.push((from, s - 1));
            }
            if s < to {
                next.push((s + 1, to));
            }
        }
        out = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn alert(seq: u64, prev: [u8; 32], hash: u8) -> IncomingAlert {
        IncomingAlert {
            line: seq as usize,
            seq,
            prev,
            hash: [hash; 32],
            envelope: bytes::Bytes::new(),
            alert_time: SystemTime::UNIX_EPOCH,
            uuid: String::new(),
            rule_id: String::new(),
            rule_name: String::new(),
            severity: String::new(),
        }
    }

    const Z: [u8; 32] = [0; 32];

    #[test]
    fn a_chain_extends_from_genesis() {
        let batch = [alert(1, Z, 1), alert(2, [1; 32], 2)];
        let p = plan((0, Z), Stored::new(), &batch);
        assert_eq!(p.store, vec![0, 1]);
        assert_eq!(p.head, (2, [2; 32]));
        assert_eq!(p.fork, None);
    }

    #[test]
    fn redelivery_is_idempotent_and_another_hash_is_a_fork() {
        let mut stored = Stored::new();
        stored.insert(1, ([1; 32], Z));
        let p = plan(
            (1, [1; 32]),
            stored.clone(),
            &[alert(1, Z, 1), alert(2, [1; 32], 2)],
        );
        assert_eq!(p.duplicates, vec![1]);
        assert_eq!(p.store, vec![1]);
        let p = plan(
            (1, [1; 32]),
            stored,
            &[alert(1, Z, 9), alert(2, [9; 32], 2)],
        );
        assert_eq!(p.fork.as_ref().map(|f| f.0), Some(1));
        assert!(p.store.is_empty());
    }

    #[test]
    fn a_wrong_prev_at_the_head_is_a_fork_and_stops_the_batch() {
        let p = plan(
            (1, [1; 32]),
            Stored::new(),
            &[
                alert(2, [1; 32], 2),
                alert(3, [7; 32], 3),
                alert(4, [3; 32], 4),
            ],
        );
        assert_eq!(p.store, vec![0]);
        assert_eq!(p.fork.as_ref().map(|f| f.0), Some(3));
        assert_eq!(p.head, (2, [2; 32]));
    }

    #[test]
    fn gaps_open_and_fills_must_agree_with_both_neighbours() {
        let p = plan((1, [1; 32]), Stored::new(), &[alert(4, [3; 32], 4)]);
        assert_eq!(p.new_gaps, vec![(2, 3)]);
        assert_eq!(p.head, (4, [4; 32]));

        let mut stored = Stored::new();
        stored.insert(1, ([1; 32], Z));
        stored.insert(4, ([4; 32], [3; 32]));
        let p = plan(
            (4, [4; 32]),
            stored.clone(),
            &[alert(2, [1; 32], 2), alert(3, [2; 32], 3)],
        );
        assert_eq!(p.fills, vec![2, 3]);
        assert_eq!(p.fork, None);
        assert_eq!(p.head, (4, [4; 32]));

        let p = plan((4, [4; 32]), stored.clone(), &[alert(3, [2; 32], 8)]);
        assert_eq!(
            p.fork.as_ref().map(|f| f.0),
            Some(3),
            "next one's prev disagrees"
        );
        let p = plan((4, [4; 32]), stored, &[alert(2, [6; 32], 2)]);
        assert_eq!(p.fork.as_ref().map(|f| f.0), Some(2), "prev disagrees");
    }

    #[test]
    fn shrinking_splits_and_removes_ranges() {
        assert_eq!(shrink_gaps(&[(2, 5)], &[3]), vec![(2, 2), (4, 5)]);
        assert_eq!(shrink_gaps(&[(2, 2), (7, 9)], &[2, 9]), vec![(7, 8)]);
        assert_eq!(shrink_gaps(&[(2, 3)], &[2, 3]), vec![]);
    }
}
