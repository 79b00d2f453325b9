// SPDX-License-Identifier: GPL-2.0
use std::process::ExitCode;

use clap::{error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand, Parser};
use leaklab::{cli, init, interrupt::Interrupted, EXIT_ERROR};

fn main() -> ExitCode {
    if std::process::id() == 1 {
        // PID 1 of the guest: it runs the command the initramfs holds.
        init::run(std::env::args().skip(1).collect(), cli::is_command);
    }
    // Output to a pipe that closed (`leaklab parse big.log | head`) ends the
    // program quietly, as for other Unix tools, instead of a failed print.
    // SAFETY: Setting a signal to its default disposition installs no
    // handler; it runs before any other thread exists.
    let _ = unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        )
    };
    let args: Vec<_> = std::env::args_os().collect();
    let cli = match cli::Cli::try_parse_from(&args) {
        Ok(c) => c,
        // Asked-for help and version, and the help shown for no command.
        Err(e) if !e.use_stderr() || e.kind() == DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_ERROR } else { 0 });
        }
        Err(e) => {
            eprintln!("{}", cli::usage_error(&e, &args));
            return ExitCode::from(EXIT_ERROR);
        }
    };
    match cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            use leaklab::interrupt::requested;
            match e.downcast_ref::<Interrupted>() {
                Some(i) => {
                    eprintln!("leaklab: error: {i}");
                    ExitCode::from(i.exit_status())
                }
                // A signal may also surface as the EINTR of the call it cut.
                None => match requested() {
                    Some(sig) => {
                        eprintln!("leaklab: error: {} ({e:#})", Interrupted(sig));
                        ExitCode::from(Interrupted(sig).exit_status())
                    }
                    None => {
                        eprintln!("leaklab: error: {e:#}");
                        ExitCode::from(EXIT_ERROR)
                    }
                },
            }
        }
    }
}
