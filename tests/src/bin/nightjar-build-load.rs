//! One worker of the build-like file load (`nightjar_tests::build_load`): `DIR STEPS`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(dir), Some(steps)) = (args.get(1), args.get(2).and_then(|s| s.parse::<u64>().ok()))
    else {
        eprintln!("usage: nightjar-build-load DIR STEPS");
        return ExitCode::from(2);
    };
    match nightjar_tests::build_load::work(std::path::Path::new(dir), steps) {
        Ok(events) => {
            println!("{events}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("nightjar-build-load: {dir}: {e}");
            ExitCode::FAILURE
        }
    }
}
