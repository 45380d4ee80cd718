fn main() -> std::process::ExitCode {
    ppas_gateway::cli::main()
}
