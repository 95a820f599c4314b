//! The generated skeleton of `src/bpf/probes.bpf.c` (see `build.rs`).
#![allow(clippy::all, clippy::pedantic, missing_docs, unsafe_op_in_unsafe_fn)]
include!(concat!(env!("OUT_DIR"), "/probes.skel.rs"));
