//! The tokenfleet binary: everything lives in the library; see `tokenfleet::cli`.

fn main() {
    std::process::exit(tokenfleet::cli::main());
}
