//! `nightjar-server`: see `cli` for the commands.

fn main() {
    std::process::exit(nightjar_server::cli::main());
}
