//! The generated skeleton of `src/bpf/probes.bpf.c` (see `build.rs`). libbpf-cargo writes its
//! unsafe blocks without `// SAFETY:` comments; the code is generated, not ours to annotate.
#![allow(
    clippy::all,
    clippy::pedantic,
    clippy::undocumented_unsafe_blocks,
    missing_docs,
    unsafe_op_in_unsafe_fn
)]
include!(concat!(env!("OUT_DIR"), "/probes.skel.rs"));
