//! Any bytes in a ring slot decode to a record or an error, never a panic or an unbounded
//! allocation; a record that decodes re-encodes to bytes that decode to the same record.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nightjar_proto::codec;

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = codec::decode(data) {
        let bytes = codec::encode_to_vec(&record).expect("a decoded record re-encodes");
        assert_eq!(
            codec::decode(&bytes).expect("re-encoded record decodes"),
            record
        );
    }
});
