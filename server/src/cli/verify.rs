//! `verify`: re-verifies every stored envelope of every host (or one) against the key pinned
//! for its epoch, every link of its chain, and the chain heads; exit 1 naming the host and
//! seq of the first bad one. A missing range is accepted only where a `gap` was recorded.

use std::pin::pin;

use futures_util::TryStreamExt as _;
use nightjar_proto::verify::{AlertKey, hex};

use super::Failure;
use crate::config::Config;
use crate::ingest::store::hash32;

fn bad(host: &str, epoch: i32, seq: i64, reason: impl std::fmt::Display) -> Failure {
    Failure {
        code: 1,
        message: format!("verify: host {host:?} epoch {epoch} seq {seq}: {reason}"),
    }
}

pub async fn verify(config: Config, host: Option<String>) -> Result<(), Failure> {
    let pool = super::pool(&config)?;
    let client = pool.get().await?;
    let keys = client
        .query(
            "SELECT k.host_id, k.epoch, k.public_key, c.epoch, c.head_seq, c.head_hash
             FROM host_keys k JOIN chain_heads c USING (host_id)
             WHERE $1::text IS NULL OR k.host_id = $1
             ORDER BY k.host_id, k.epoch",
            &[&host],
        )
        .await?;
    if let Some(h) = &host
        && keys.is_empty()
    {
        return Err(Failure {
            code: 2,
            message: format!("verify: no host {h:?}"),
        });
    }
    let mut total = 0u64;
    let mut hosts = std::collections::BTreeSet::new();
    for k in &keys {
        let host_id: String = k.get(0);
        let epoch: i32 = k.get(1);
        let raw: Vec<u8> = k.get(2);
        let current_epoch: i32 = k.get(3);
        hosts.insert(host_id.clone());
        let key = AlertKey::from_raw(&raw)
            .map_err(|e| bad(&host_id, epoch, 0, format!("pinned key: {e}")))?;
        let gaps: Vec<(i64, i64)> = client
            .query(
                "SELECT seq_from, seq_to FROM integrity_events
                 WHERE host_id = $1 AND epoch = $2 AND kind = 'gap'",
                &[&host_id, &epoch],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let covered =
            |from: i64, to: i64| (from..=to).all(|s| gaps.iter().any(|(a, b)| *a <= s && s <= *b));
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&host_id, &epoch];
        let rows = client
            .query_raw(
                "SELECT c.seq, c.payload_hash, c.prev_hash, a.envelope
                 FROM chain_index c LEFT JOIN alert_rows a
                   ON a.host_id = c.host_id AND a.epoch = c.epoch AND a.seq = c.seq
                  AND a.received_at = c.received_at
                 WHERE c.host_id = $1 AND c.epoch = $2 ORDER BY c.seq",
                params,
            )
            .await?;
        let mut rows = pin!(rows);
        let mut last: (i64, [u8; 32]) = (0, [0; 32]);
        while let Some(r) = rows.try_next().await? {
            let seq: i64 = r.get(0);
            let hash = hash32(r.get(1));
            let prev = hash32(r.get(2));
            let envelope: Option<Vec<u8>> = r.get(3);
            let envelope =
                envelope.ok_or_else(|| bad(&host_id, epoch, seq, "the alert row is missing"))?;
            let signed = key
                .open(&envelope)
                .map_err(|e| bad(&host_id, epoch, seq, e))?;
            key.verify(&signed)
                .map_err(|e| bad(&host_id, epoch, seq, e))?;
            let link = signed.link().map_err(|e| bad(&host_id, epoch, seq, e))?;
            if link.seq as i64 != seq || link.host_id != host_id {
                return Err(bad(
                    &host_id,
                    epoch,
                    seq,
                    format!("the payload says host {:?} seq {}", link.host_id, link.seq),
                ));
            }
            if signed.payload_hash() != hash || link.prev != prev {
                return Err(bad(
                    &host_id,
                    epoch,
                    seq,
                    "the payload does not match its chain index row",
                ));
            }
            if seq == last.0 + 1 {
                if prev != last.1 {
                    return Err(bad(
                        &host_id,
                        epoch,
                        seq,
                        format!(
                            "nightjar.prev is {}, seq {} hashes to {}",
                            hex(&prev),
                            last.0,
                            hex(&last.1)
                        ),
                    ));
                }
            } else if !covered(last.0 + 1, seq - 1) {
                return Err(bad(
                    &host_id,
                    epoch,
                    last.0 + 1,
                    format!(
                        "seqs {}..{} are missing and no gap was recorded",
                        last.0 + 1,
                        seq - 1
                    ),
                ));
            }
            last = (seq, hash);
            total += 1;
        }
        if epoch == current_epoch {
            let head_seq: i64 = k.get(4);
            let head_hash = hash32(k.get(5));
            if head_seq != last.0 || head_hash != last.1 {
                return Err(bad(
                    &host_id,
                    epoch,
                    head_seq,
                    format!(
                        "the chain head is seq {head_seq} but the last stored alert is seq {}",
                        last.0
                    ),
                ));
            }
        }
    }
    println!(
        "verified {total} alerts of {} hosts: every signature and chain link holds",
        hosts.len()
    );
    Ok(())
}
