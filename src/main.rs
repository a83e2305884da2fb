use clap::Parser;

fn main() {
    let cli = mlsign::cli::Cli::parse();
    let code = mlsign::commands::run(cli);
    std::process::exit(code as i32);
}
