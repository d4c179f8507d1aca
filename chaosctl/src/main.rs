//! The `chaosctl` binary: see the library's docs and `chaosctl --help`.

fn main() -> std::process::ExitCode {
    chaosctl::main()
}
