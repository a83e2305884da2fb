use clap::Parser;

fn main() {
    // Behave like other Unix tools when the reader goes away (`mlsign … | head`): end quietly
    // instead of panicking inside println!.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = mlsign::cli::Cli::parse();
    let code = mlsign::commands::run(cli);
    std::process::exit(code as i32);
}
