fn main() -> std::process::ExitCode {
    // Before any thread or connection exists (see the function's doc).
    ppas_gateway::store::tune_sqlite();
    ppas_gateway::cli::main()
}
