//! `mlsign completions SHELL` (clap_complete) and the hidden `mlsign man --out DIR`
//! (clap_mangen): both are generated from the same clap tree the parser uses, so they cannot
//! drift from the real command line.

use super::common::{no_sarif, print_json};
use anyhow::{Context, Result};
use clap::{Args, CommandFactory, ValueEnum};
use mlsign::report::{Exit, Format};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Shells we ship completions for.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Powershell,
    Elvish,
}

impl From<Shell> for clap_complete::Shell {
    fn from(s: Shell) -> Self {
        match s {
            Shell::Bash => clap_complete::Shell::Bash,
            Shell::Zsh => clap_complete::Shell::Zsh,
            Shell::Fish => clap_complete::Shell::Fish,
            Shell::Powershell => clap_complete::Shell::PowerShell,
            Shell::Elvish => clap_complete::Shell::Elvish,
        }
    }
}

#[derive(Args, Debug)]
#[command(
    long_about = "Print a shell completion script on stdout. Install it where your shell looks:\n  \
bash: mlsign completions bash > ~/.local/share/bash-completion/completions/mlsign\n  \
zsh:  mlsign completions zsh > \"${fpath[1]}/_mlsign\"\n  \
fish: mlsign completions fish > ~/.config/fish/completions/mlsign.fish\n  \
powershell: mlsign completions powershell >> $PROFILE",
    after_help = "Examples:\n  mlsign completions bash > /etc/bash_completion.d/mlsign\n  mlsign completions zsh > ~/.zfunc/_mlsign"
)]
pub struct CompletionsArgs {
    /// The shell to generate for.
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Args, Debug)]
#[command(
    about = "Write man pages (section 1): mlsign.1 and one page per subcommand (mlsign-bom-sign.1, …)",
    after_help = "Examples:\n  mlsign man --out share/man/man1"
)]
pub struct ManArgs {
    /// Directory to write the pages into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

/// The clap tree as the man pages and completions see it: built (so subcommands carry their
/// `mlsign-bom-sign` display names) and without the implicit `help` subcommand.
fn command() -> clap::Command {
    let mut cmd = crate::cli::Cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// Render the completion script for `shell`.
pub fn completion_script(shell: Shell) -> Vec<u8> {
    let mut cmd = command();
    let mut out = Vec::new();
    clap_complete::generate(
        clap_complete::Shell::from(shell),
        &mut cmd,
        "mlsign",
        &mut out,
    );
    out
}

/// Every man page: (file name, roff bytes), the root first, then depth-first through every
/// visible subcommand.
pub fn man_pages() -> Result<Vec<(String, Vec<u8>)>> {
    fn walk(cmd: &clap::Command, out: &mut Vec<(String, Vec<u8>)>) -> Result<()> {
        let man = clap_mangen::Man::new(cmd.clone());
        let name = man.get_filename();
        let mut buf = Vec::new();
        man.render(&mut buf)
            .with_context(|| format!("rendering man page {name}"))?;
        out.push((name, buf));
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            walk(sub, out)?;
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(&command(), &mut out)?;
    Ok(out)
}

pub fn run_completions(a: CompletionsArgs) -> Result<Exit> {
    let script = completion_script(a.shell);
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(&script)
        .and_then(|()| stdout.flush())
        .context("writing the completion script to stdout")?;
    Ok(Exit::Pass)
}

pub fn run_man(a: ManArgs) -> Result<Exit> {
    no_sarif(a.format)?;
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("creating man page directory {}", a.out.display()))?;
    let mut written = Vec::new();
    for (name, bytes) in man_pages()? {
        let path: PathBuf = Path::new(&a.out).join(&name);
        mlsign::attest::write_atomic(&path, &bytes, true)
            .with_context(|| format!("writing man page {}", path.display()))?;
        written.push(path);
    }
    match a.format {
        Format::Human => {
            for p in &written {
                println!("Wrote {}", p.display());
            }
        }
        Format::Json | Format::Sarif | Format::Markdown => {
            print_json(&serde_json::json!({ "pages": written }))
        }
    }
    Ok(Exit::Pass)
}
