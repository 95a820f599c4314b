//! Any line handed to the eslogger decoder gives an event or an error, never a panic; an
//! event it gives satisfies the bounds and survives the ring codec unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nightjar_proto::codec::{self, Record};
use nightjar_proto::eslogger::EsloggerDecoder;

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    if let Ok(Some(ev)) = EsloggerDecoder::new().decode_line(&line) {
        assert!(ev.validate().is_ok(), "decoded event breaks a bound");
        let record = Record::from(ev);
        let bytes = codec::encode_to_vec(&record).expect("bounded event encodes");
        assert_eq!(codec::decode(&bytes).expect("own record decodes"), record);
    }
});
