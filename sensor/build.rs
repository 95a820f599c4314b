//! Compiles the eBPF probes and generates their Rust skeleton when building for Linux.
//!
//! The skeleton embeds the compiled object, so the sensor binary carries its probe and needs
//! no files at run time. Only `clang` is needed (no bpftool): the kernel types come from the
//! hand-written CO-RE header `src/bpf/vmlinux_min.h`.

fn main() {
    println!("cargo:rerun-if-changed=src/bpf/probes.bpf.c");
    println!("cargo:rerun-if-changed=src/bpf/events.h");
    println!("cargo:rerun-if-changed=src/bpf/vmlinux_min.h");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        bpf::build();
    }
}

#[cfg(target_os = "linux")]
mod bpf {
    use std::path::PathBuf;

    pub fn build() {
        let out =
            PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default()).join("probes.skel.rs");
        if let Err(err) = libbpf_cargo::SkeletonBuilder::new()
            .source("src/bpf/probes.bpf.c")
            .clang_args(["-O2", "-g", "-Wall", "-Isrc/bpf"])
            .build_and_generate(&out)
        {
            eprintln!("building src/bpf/probes.bpf.c failed: {err:#}");
            std::process::exit(1);
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod bpf {
    pub fn build() {
        eprintln!("the eBPF probe builds only on a Linux host");
        std::process::exit(1);
    }
}
