//! The alert rows of a batch as one `COPY alert_rows FROM STDIN (FORMAT binary)` message: the
//! cheapest way into PostgreSQL for rows this size (no statement parameters to decode, no
//! arrays to build and unnest, one message per batch).
//!
//! The binary format: a 19-byte header, then per row the field count and each field as its
//! length and bytes (PostgreSQL's binary send format, written with `tokio-postgres`'s own
//! `ToSql`), then a -1 trailer.

use std::time::SystemTime;

use bytes::{BufMut, Bytes, BytesMut};
use tokio_postgres::types::{IsNull, ToSql, Type};

use super::parse::IncomingAlert;

/// The statement the rows of [`alert_rows`] are sent to; its columns in this order.
pub const COPY_ALERTS: &str = "COPY alert_rows (host_id, epoch, seq, received_at, alert_time, uuid, \
     rule_id, rule_name, severity, key_id, envelope) FROM STDIN (FORMAT binary)";

const FIELDS: i16 = 11;

/// Why a value could not be encoded (a value out of PostgreSQL's range, such as a time
/// before 4713 BC: ingest never produces one).
#[derive(Debug, thiserror::Error)]
#[error("encoding a COPY row: {0}")]
pub struct EncodeError(String);

/// Encodes `rows` of one host for [`COPY_ALERTS`].
pub fn alert_rows<'a>(
    host_id: &str,
    epoch: i32,
    key_id: &str,
    received_at: SystemTime,
    rows: impl ExactSizeIterator<Item = &'a IncomingAlert>,
) -> Result<Bytes, EncodeError> {
    let mut out = Encoder::new(rows.len() * 2600);
    for a in rows {
        out.buf.put_i16(FIELDS);
        out.field(&host_id, &Type::TEXT)?;
        out.field(&epoch, &Type::INT4)?;
        out.field(&(a.seq as i64), &Type::INT8)?;
        out.field(&received_at, &Type::TIMESTAMPTZ)?;
        out.field(&a.alert_time, &Type::TIMESTAMPTZ)?;
        out.field(&a.uuid.as_str(), &Type::TEXT)?;
        out.field(&a.rule_id.as_str(), &Type::TEXT)?;
        out.field(&a.rule_name.as_str(), &Type::TEXT)?;
        out.field(&a.severity.as_str(), &Type::TEXT)?;
        out.field(&key_id, &Type::TEXT)?;
        out.field(&a.envelope.as_ref(), &Type::BYTEA)?;
    }
    Ok(out.finish())
}

struct Encoder {
    buf: BytesMut,
}

impl Encoder {
    fn new(capacity: usize) -> Encoder {
        let mut buf = BytesMut::with_capacity(capacity + 21);
        buf.put_slice(b"PGCOPY\n\xff\r\n\0");
        buf.put_i32(0); // flags: no OIDs
        buf.put_i32(0); // header extension length
        Encoder { buf }
    }

    fn field(&mut self, value: &(dyn ToSql + Sync), ty: &Type) -> Result<(), EncodeError> {
        let at = self.buf.len();
        self.buf.put_i32(0);
        let null = value
            .to_sql_checked(ty, &mut self.buf)
            .map_err(|e| EncodeError(e.to_string()))?;
        let len = match null {
            IsNull::Yes => {
                self.buf.truncate(at + 4);
                -1
            }
            IsNull::No => i32::try_from(self.buf.len() - at - 4)
                .map_err(|_| EncodeError("a field over 2 GiB".into()))?,
        };
        self.buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }

    fn finish(mut self) -> Bytes {
        self.buf.put_i16(-1);
        self.buf.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_follow_the_binary_copy_layout() {
        let a = IncomingAlert {
            line: 1,
            seq: 7,
            prev: [0; 32],
            hash: [0; 32],
            envelope: Bytes::from_static(b"{}"),
            alert_time: SystemTime::UNIX_EPOCH,
            uuid: "u".into(),
            rule_id: "r".into(),
            rule_name: "n".into(),
            severity: "high".into(),
        };
        let out = alert_rows("h", 1, "k", SystemTime::UNIX_EPOCH, [&a].into_iter()).unwrap();
        assert!(out.starts_with(b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0"));
        let row = &out[19..];
        assert_eq!(&row[..2], &11i16.to_be_bytes());
        // host_id: length 1, "h"; epoch: length 4, 1; seq: length 8, 7.
        assert_eq!(&row[2..7], b"\0\0\0\x01h");
        assert_eq!(&row[7..15], b"\0\0\0\x04\0\0\0\x01");
        assert_eq!(&row[15..27], b"\0\0\0\x08\0\0\0\0\0\0\0\x07");
        assert!(out.ends_with(b"\0\0\0\x02{}\xff\xff"));
    }
}
