mod scram_hmac;

fn main() -> std::process::ExitCode {
    mysimbdp_host::cli::main()
}
