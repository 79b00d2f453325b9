use std::process::ExitCode;

use clap::Parser;
use leaklab::{cli, init};

fn main() -> ExitCode {
    if std::process::id() == 1 {
        // PID 1 of the guest: the kernel passes what followed `--` on its
        // command line as our arguments.
        init::run(std::env::args().skip(1).collect());
    }
    let cli = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("leaklab: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
