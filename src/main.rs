use clap::Parser;

// The CLI edge lives in the binary: clap definitions and one file per command (parse → library →
// sink → exit code). None of it is library API.
mod cli;
mod commands;

fn main() {
    // Behave like other Unix tools when the reader goes away (`mlsign … | head`): end quietly
    // instead of panicking inside println!.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = cli::Cli::parse();
    let code = commands::run(cli);
    std::process::exit(code as i32);
}
