//! Durable alert storage in sled: alerts by seq, index by uuid, chain head and upload cursor.
