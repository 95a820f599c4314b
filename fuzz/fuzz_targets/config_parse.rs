//! Any config text parses or gives an error naming the file, never a panic (the schema both
//! binaries read).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use nightjar_proto::config::Config;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Err(e) = Config::parse(&text, Path::new("fuzz.toml")) {
        assert!(e.to_string().contains("fuzz.toml"), "error names the file: {e}");
    }
});
