//! The `mimicit` binary: the command line ([`cli`]: flags, their checks, exit codes, stderr
//! formatting) over the library, which does the work.

mod cli;

use clap::Parser;
use cli::Cli;

fn main() {
    mimicit::tune_malloc();
    let cli = Cli::parse();
    init_logging(cli.global.verbose, cli.global.quiet);
    let code = match cli::execute(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("{}", cli::error_text(&err));
            cli::exit_code(&err)
        }
    };
    std::process::exit(code);
}

fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    mimicit::init_logging(level);
}
