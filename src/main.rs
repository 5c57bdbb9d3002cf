//! The `inbound` command line (the commands are in `cli`, the servers in `runtime`).

use std::process::ExitCode;

use clap::Parser;
use inbound::{
    catalog::folder,
    cli::{Cli, Command},
    runtime,
};

fn main() -> ExitCode {
    return_large_blocks_to_the_kernel();
    match Cli::parse().command {
        Command::Crds => {
            print!("{}", inbound::api::crds_yaml());
            ExitCode::SUCCESS
        }
        Command::Check { paths } => match folder::load(&paths, &Default::default()) {
            Ok(manifests) => {
                println!("{} object(s) checked, no problems", manifests.len());
                ExitCode::SUCCESS
            }
            Err(problems) => {
                for problem in &problems {
                    eprintln!("{problem}");
                }
                eprintln!("{} problem(s)", problems.len());
                ExitCode::FAILURE
            }
        },
        Command::ResourceMetadata { paths, issuer } => match folder::load(&paths, &Default::default()) {
            Ok(manifests) => {
                let all = inbound::resource_server::declared_metadata(&manifests, &issuer);
                println!("{}", serde_json::to_string_pretty(&all).expect("metadata serializes"));
                ExitCode::SUCCESS
            }
            Err(problems) => {
                for problem in &problems {
                    eprintln!("{problem}");
                }
                ExitCode::FAILURE
            }
        },
        Command::Discover { url, issuer } => exit(runtime::async_runtime().block_on(async {
            println!("{}", runtime::discover(&url, issuer.as_deref()).await?);
            Ok(())
        })),
        Command::HashPassword => {
            let mut password = String::new();
            let _ = std::io::stdin().read_line(&mut password);
            let password = password.trim_end_matches(['\r', '\n']);
            if password.is_empty() {
                eprintln!("error: type the password on standard input");
                return ExitCode::from(2);
            }
            println!("{}", inbound::identity::hash_password(password));
            ExitCode::SUCCESS
        }
        Command::Clients { action } => exit(runtime::async_runtime().block_on(action.run())),
        Command::Consents { action } => exit(runtime::async_runtime().block_on(action.run())),
        Command::Serve(args) => {
            runtime::init_tracing(args.server.log_format);
            let drain = args.server.shutdown_delay;
            let options = args.options();
            exit(runtime::async_runtime().block_on(async {
                let started = runtime::serve::start(options).await?;
                print!("{}", started.banner);
                // Standard output: the banner, then the audit trail.
                started.running.state.server.audit().release();
                started.running.until_shutdown_signal(drain).await;
                Ok(())
            }))
        }
        Command::Operator(args) => {
            runtime::init_tracing(args.server.log_format);
            let drain = args.server.shutdown_delay;
            let options = match args.options() {
                Ok(options) => options,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            exit(runtime::async_runtime().block_on(async {
                let running = runtime::operator::start(options).await?;
                tracing::info!(listening = %running.addr, issuer = %running.issuer, "operator started");
                running.until_shutdown_signal(drain).await;
                Ok(())
            }))
        }
    }
}

/// A command's result as the exit code, the error (with its causes) on standard error.
fn exit(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Large blocks straight from the kernel and back (glibc). Every password check allocates
/// argon2's working memory (19 MiB). By default glibc raises its mmap threshold to the size
/// of the first such block freed, so the later ones come from the per-thread arenas and stay
/// resident: a few logins on the blocking pool's threads grew the server from 20 MB to
/// 180–240 MB, for good (`make bench-load` shows it). A fixed threshold keeps it near 28 MB.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn return_large_blocks_to_the_kernel() {
    // 128 KiB, glibc's initial value; fixing it also stops the adjustment.
    // SAFETY: mallopt only sets an allocator parameter, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn return_large_blocks_to_the_kernel() {}
