//! vigil-verify, the program: parse the command line, load what the options name, verify
//! each input, print text or JSON, and exit with the code of docs/verifier.md's table.
//! The binary only calls [`main`]; everything here is reachable from tests.

pub mod cli;
pub mod error;
pub mod gather;
pub mod load;
pub mod render;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Parser;

pub use cli::Cli;
pub use error::{AppError, Class};

use crate::kds::Kds;
use crate::verify::{Options, Outcome, Verifier};

/// One input of a batch and what became of it.
pub struct InputResult {
    /// The path as given.
    pub input: String,
    /// The verification's outcome, or why there is none.
    pub outcome: Result<Outcome, AppError>,
}

impl InputResult {
    /// This input's class.
    pub fn class(&self) -> Class {
        match &self.outcome {
            Ok(o) if o.verified() => Class::Verified,
            Ok(_) => Class::Rejected,
            Err(e) => e.class(),
        }
    }
}

/// A whole run: either a failure before any input was looked at, or one result per
/// input.
pub struct Run {
    /// The effective policy, once loaded.
    pub policy: Option<crate::policy::Policy>,
    /// A failure that stopped the run.
    pub fatal: Option<AppError>,
    /// One result per input.
    pub results: Vec<InputResult>,
}

impl Run {
    /// The most severe class: usage, then environment, then rejected, then verified.
    pub fn class(&self) -> Class {
        if let Some(e) = &self.fatal {
            return e.class();
        }
        self.results
            .iter()
            .map(InputResult::class)
            .max()
            .unwrap_or(Class::Verified)
    }
}

/// The rule clap cannot say: `--nonce` needs `--manifest`, unless every input is a
/// configfs-tsm folder (its manifestblob is the manifest).
pub fn check_partners(cli: &Cli) -> Result<(), AppError> {
    if cli.nonce.is_some() && cli.manifest.is_none() && !cli.report.iter().all(|p| p.is_dir()) {
        return Err(AppError::NonceWithoutManifest);
    }
    Ok(())
}

fn default_cache() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|p| p.join("vigil-verify"))
}

/// Runs every input; text results are printed as they come (`print` is given the
/// policy and each result).
pub fn run(cli: &Cli, mut print: impl FnMut(&crate::policy::Policy, &InputResult)) -> Run {
    let mut run = Run {
        policy: None,
        fatal: None,
        results: Vec::new(),
    };
    let cfg = match check_partners(cli).and_then(|()| load::config(cli)) {
        Ok(c) => c,
        Err(e) => {
            run.fatal = Some(e);
            return run;
        }
    };
    run.policy = Some(cfg.policy.clone());
    let mut kds = Kds::new(
        &cli.kds_url,
        cli.cache_dir.clone().or_else(default_cache),
        cli.offline,
    );
    kds.announce = true;
    let opt = Options {
        product: cfg.product,
        at: cfg.at,
        allow_test_root: cli.allow_test_root,
        policy: cfg.policy.clone(),
    };
    let verifier = Verifier::new(cfg.store.clone());
    for path in &cli.report {
        let outcome = gather::evidence(cli, &cfg, &kds, path).map(|ev| verifier.verify(&ev, &opt));
        let r = InputResult {
            input: path.display().to_string(),
            outcome,
        };
        print(&opt.policy, &r);
        run.results.push(r);
    }
    run
}

/// The program: parses `args`, runs, prints, and returns the exit code.
pub fn main(args: Vec<OsString>) -> u8 {
    // Known before parsing, so that a refused command line still gets its JSON.
    let json = args.iter().skip(1).any(|a| a == "--json");
    let cli = match Cli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            render::out(&e.render().to_string());
            return 0;
        }
        Err(e) => {
            let err = AppError::Flags(e.render().to_string().trim_end().to_string());
            render::fatal(json, None, &err);
            return err.class().exit_code();
        }
    };
    if cli.list_checks {
        render::list_checks(cli.json);
        return 0;
    }
    let mut printed_policy = false;
    let run = run(&cli, |policy, r| {
        if !cli.json {
            if !printed_policy {
                render::out(&crate::output::policy_text(policy));
                printed_policy = true;
            }
            render::text_result(r);
        }
    });
    render::finish(&cli, &run);
    run.class().exit_code()
}
