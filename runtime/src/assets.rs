//! Man pages and shell completions of a command-line program, written from its clap definition by
//! the binary's hidden `generate-assets` (the Debian packages ship them; `packaging/README.md`).

use std::path::{Path, PathBuf};

use clap_complete::Shell;

/// The hidden `generate-assets` subcommand of each binary.
#[derive(Debug, clap::Args)]
pub struct GenerateAssets {
    /// Folder to write `man/` and `completions/` into.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

impl GenerateAssets {
    /// Writes the assets of `cmd` (the binary's whole command line), listing them on standard
    /// output; the exit code.
    pub fn exec(&self, cmd: clap::Command) -> std::process::ExitCode {
        match write(cmd, &self.out) {
            Ok(files) => {
                for f in files {
                    println!("{}", f.display());
                }
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: cannot write into {}: {e}", self.out.display());
                std::process::ExitCode::FAILURE
            }
        }
    }
}

/// Writes `<out>/man/<name>[-<sub>].1` (one page per visible subcommand) and
/// `<out>/completions/{bash,zsh,fish}/` for `cmd`; returns the files written.
pub fn write(cmd: clap::Command, out: &Path) -> std::io::Result<Vec<PathBuf>> {
    let name = cmd.get_name().to_string();
    let man = out.join("man");
    std::fs::create_dir_all(&man)?;
    let before = listing(&man);
    clap_mangen::generate_to(cmd.clone(), &man)?;
    let mut written: Vec<PathBuf> = listing(&man)
        .into_iter()
        .filter(|p| !before.contains(p) || is_page_of(p, &name))
        .collect();
    for (shell, folder) in [
        (Shell::Bash, "bash"),
        (Shell::Zsh, "zsh"),
        (Shell::Fish, "fish"),
    ] {
        let dir = out.join("completions").join(folder);
        std::fs::create_dir_all(&dir)?;
        let mut cmd = cmd.clone();
        written.push(clap_complete::generate_to(shell, &mut cmd, &name, &dir)?);
    }
    written.sort();
    written.dedup();
    Ok(written)
}

fn listing(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

fn is_page_of(path: &Path, name: &str) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n == format!("{name}.1") || n.starts_with(&format!("{name}-")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[test]
    fn pages_and_completions_are_written() {
        let cmd = clap::Command::new("demo")
            .about("A demo")
            .subcommand(clap::Command::new("serve").about("Serve"))
            .subcommand(clap::Command::new("hidden").hide(true));
        let dir = std::env::temp_dir().join(format!("ids-assets-{}", std::process::id()));
        let written = super::write(cmd, &dir).unwrap();
        let names: Vec<String> = written
            .iter()
            .map(|p| p.strip_prefix(&dir).unwrap().display().to_string())
            .collect();
        for expected in [
            "man/demo.1",
            "man/demo-serve.1",
            "completions/bash/demo.bash",
            "completions/zsh/_demo",
            "completions/fish/demo.fish",
        ] {
            assert!(names.contains(&expected.to_string()), "{names:?}");
        }
        assert!(!names.iter().any(|n| n.contains("hidden")), "{names:?}");
        let page = std::fs::read_to_string(dir.join("man/demo.1")).unwrap();
        assert!(page.contains("A demo"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
