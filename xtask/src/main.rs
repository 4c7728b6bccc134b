//! `cargo xtask`: build, run, test and bench Vigil.
#![forbid(unsafe_code)]

fn main() {
    eprintln!("xtask: not written yet");
    std::process::exit(2);
}
