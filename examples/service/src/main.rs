//! The employee service; see the library docs for routes and configuration.

fn main() -> std::process::ExitCode {
    example_service::main()
}
