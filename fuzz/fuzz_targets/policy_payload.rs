//! Any policy payload (what a verified envelope carries) is refused with a reason or compiles
//! into a rule set, never a panic or a hang: the bounds, then every rule and exception file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nightjar_rules::policy::Policy;

fuzz_target!(|data: &[u8]| {
    if let Ok(policy) = Policy::from_payload(data) {
        if let Err(problems) = policy.compile("policy: ", None) {
            assert!(!problems.is_empty());
        }
    }
});
