//! Distribution: shell completions and man pages cover the whole clap tree, and the pre-commit
//! hooks in .pre-commit-hooks.yaml work when run by the real `pre-commit` (try-repo, offline).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mlsign")
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("spawn")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `mlsign [PATH…] --help`, parsed: the visible subcommands and the long options. The binary's
/// own help is the tree users see (cli.rs is not library API, so the test reads it this way).
fn help_of(path: &[String]) -> (Vec<String>, Vec<String>) {
    let o = run(Command::new(bin()).args(path).arg("--help"));
    assert_eq!(o.status.code(), Some(0), "{path:?} --help: {}", text(&o));
    let help = String::from_utf8(o.stdout).expect("utf-8 help");
    let (mut subs, mut longs) = (Vec::new(), Vec::new());
    let mut section = "";
    for line in help.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            section = line;
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let item = line.trim_start().split("  ").next().unwrap_or("");
        match section {
            "Commands:" if indent == 2 && !item.is_empty() && item != "help" => {
                subs.push(item.to_string())
            }
            "Options:" if indent <= 6 && item.starts_with('-') => {
                for tok in item.split([' ', ',']) {
                    if let Some(l) = tok.strip_prefix("--") {
                        let l = l.split(['=', '[', '<']).next().unwrap_or("");
                        if !l.is_empty() {
                            longs.push(l.to_string());
                        }
                    }
                }
            }
            _ => {}
        }
    }
    (subs, longs)
}

/// Every visible subcommand as its path of names (["bom", "validate"], …) with its long
/// options, walked from the binary's help.
fn subcommand_tree() -> Vec<(Vec<String>, Vec<String>)> {
    fn walk(prefix: &[String], out: &mut Vec<(Vec<String>, Vec<String>)>) {
        let (subs, _) = help_of(prefix);
        for sub in subs {
            let mut p = prefix.to_vec();
            p.push(sub);
            let (_, longs) = help_of(&p);
            out.push((p.clone(), longs));
            walk(&p, out);
        }
    }
    let mut out = Vec::new();
    walk(&[], &mut out);
    out
}

#[test]
fn completions_cover_every_subcommand() {
    let tree = subcommand_tree();
    let paths: Vec<Vec<String>> = tree.iter().map(|(p, _)| p.clone()).collect();
    assert!(paths.len() > 10, "clap tree looks truncated: {paths:?}");
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let o = run(Command::new(bin()).args(["completions", shell]));
        assert_eq!(o.status.code(), Some(0), "{shell}: {}", text(&o));
        let script = String::from_utf8(o.stdout).expect("utf-8 script");
        for p in &paths {
            let leaf = p.last().unwrap();
            assert!(
                script.contains(leaf.as_str()),
                "{shell} completion lacks subcommand {}",
                p.join(" ")
            );
        }
        // Every long option of every subcommand is offered.
        for (p, longs) in &tree {
            for long in longs {
                {
                    // fish spells a long option `-l NAME`; the others `--NAME`.
                    let offered = if shell == "fish" {
                        format!("-l {long}")
                    } else {
                        format!("--{long}")
                    };
                    assert!(
                        script.contains(&offered),
                        "{shell} completion lacks --{long} of {}",
                        p.join(" ")
                    );
                }
            }
        }
    }
    // The real bash parses the bash script, and it registers the completion.
    let o = run(Command::new("bash").args([
        "-c",
        &format!(
            "source <('{}' completions bash) && complete -p mlsign",
            bin()
        ),
    ]));
    assert_eq!(o.status.code(), Some(0), "bash: {}", text(&o));
    assert!(text(&o).contains("mlsign"), "{}", text(&o));
}

#[test]
fn completions_refuse_unknown_shell() {
    let o = run(Command::new(bin()).args(["completions", "tcsh"]));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

#[test]
fn man_pages_for_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man1");
    let o = run(Command::new(bin())
        .args(["man", "--out"])
        .arg(&out)
        .args(["--format", "json"]));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let listed: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let listed = listed["pages"].as_array().expect("pages").len();
    let mut expected = vec![(vec![], help_of(&[]).1)];
    expected.extend(subcommand_tree());
    assert_eq!(listed, expected.len(), "one page per command");
    for (p, longs) in &expected {
        let name = std::iter::once("mlsign".to_string())
            .chain(p.iter().cloned())
            .collect::<Vec<_>>()
            .join("-");
        let page = out.join(format!("{name}.1"));
        let roff =
            std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
        assert!(
            roff.starts_with(".ie") || roff.contains(".TH"),
            "{name}: not roff"
        );
        assert!(
            roff.contains(&format!(".TH {name} 1")),
            "{name}: wrong title"
        );
        for long in longs {
            let escaped = format!("\\-\\-{}", long.replace('-', "\\-"));
            assert!(roff.contains(&escaped), "{name}.1 lacks --{long}");
        }
        // groff with preconv (-k: UTF-8 input, as man-db runs it) reads the page without a warning.
        let g = run(Command::new("groff")
            .args(["-k", "-man", "-Tutf8", "-ww", "-z"])
            .arg(&page));
        assert!(
            g.status.success() && g.stderr.is_empty(),
            "groff on {name}.1: {}",
            text(&g)
        );
    }
}

// ---- pre-commit hooks -------------------------------------------------------------------

fn pre_commit() -> PathBuf {
    let python = std::env::var("MLSIGN_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo().join(".venv/bin/python"));
    let p = python.parent().unwrap().join("pre-commit");
    assert!(
        p.exists(),
        "tests/dist.rs needs pre-commit next to {} (pip install -r scripts/deps/python/dist.txt)",
        python.display()
    );
    p
}

fn git(dir: &Path, args: &[&str]) {
    let o = run(Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .env("GIT_CONFIG_GLOBAL", "/dev/null"));
    assert!(o.status.success(), "git {args:?}: {}", text(&o));
}

/// A git repository holding only the shipped hook definitions (what users point `repo:` at).
fn hook_repo(root: &Path) -> PathBuf {
    let hooks = root.join("hooks");
    std::fs::create_dir_all(&hooks).unwrap();
    std::fs::copy(
        repo().join(".pre-commit-hooks.yaml"),
        hooks.join(".pre-commit-hooks.yaml"),
    )
    .unwrap();
    git(&hooks, &["init", "-q"]);
    git(&hooks, &["add", "."]);
    git(&hooks, &["commit", "-q", "-m", "hooks"]);
    hooks
}

/// Run `pre-commit try-repo HOOKS HOOK --all-files` in a repository with `files` (name,
/// bytes) committed, with the test's mlsign first on PATH.
fn try_hook(hook: &str, files: &[(&str, &[u8])]) -> Output {
    let tmp = tempfile::tempdir().unwrap();
    let hooks = hook_repo(tmp.path());
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q"]);
    for (name, bytes) in files {
        let p = work.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    git(&work, &["add", "."]);
    let bindir = Path::new(bin()).parent().unwrap().to_path_buf();
    let path = std::env::join_paths(
        std::iter::once(bindir).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    run(Command::new(pre_commit())
        .current_dir(&work)
        .args(["try-repo"])
        .arg(&hooks)
        .args([hook, "--all-files", "--color", "never"])
        .env("PATH", path)
        .env("PRE_COMMIT_HOME", tmp.path().join("cache"))
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid"))
}

/// Protocol 0 pickle: os.system('echo pwned') on load.
const EVIL: &[u8] = b"cos\nsystem\n(S'echo pwned'\ntR.";
/// Protocol 2 pickle of [1, 2]: builtins only.
const CLEAN: &[u8] = b"\x80\x02]q\x00(K\x01K\x02e.";

#[test]
fn pre_commit_scan_hook_rejects_malicious_pickle() {
    let o = try_hook(
        "mlsign-scan",
        &[("models/clean.pkl", CLEAN), ("models/evil.pt", EVIL)],
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("evil.pt") && t.contains("MALICIOUS"), "{t}");
}

#[test]
fn pre_commit_scan_hook_passes_clean_files_and_ignores_others() {
    // The evil bytes under a non-model name are outside this hook's file pattern.
    let o = try_hook(
        "mlsign-scan",
        &[
            ("models/clean.joblib", CLEAN),
            ("models/weights.pkl", CLEAN),
            ("notes/evil.txt", EVIL),
        ],
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("Passed"), "{t}");
    assert!(!t.contains("evil.txt"), "{t}");
}

#[test]
fn pre_commit_binary_hook_catches_renamed_pickle() {
    // A pickle without a model extension: pre-commit tags it binary (protocol 2 starts with
    // \x80), mlsign judges it by content.
    let renamed: Vec<u8> = [
        b"\x80\x02".as_slice(),
        b"cposix\nsystem\nq\x00X\x05\x00\x00\x00id -aq\x01\x85q\x02Rq\x03.",
    ]
    .concat();
    let o = try_hook(
        "mlsign-scan-binary",
        &[("assets/logo.dat", &renamed), ("assets/ok", CLEAN)],
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("logo.dat") && t.contains("MALICIOUS"), "{t}");
    let o = try_hook("mlsign-scan-binary", &[("assets/ok", CLEAN)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn pre_commit_bom_hook_validates_each_bom() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("model.cdx.json");
    let o = run(Command::new(bin())
        .arg("bom")
        .arg(repo().join("testdata/bom/model"))
        .arg("-o")
        .arg(&good)
        .arg("--reproducible"));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let good = std::fs::read(&good).unwrap();
    let bad = br#"{"bomFormat":"CycloneDX","specVersion":"1.6","version":1,"components":"nope"}"#;

    let o = try_hook(
        "mlsign-bom-validate",
        &[("bom.json", &good), ("ml/model.cdx.json", &good)],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // One bad BOM among good ones fails the hook and is named.
    let o = try_hook(
        "mlsign-bom-validate",
        &[
            ("bom.json", &good),
            ("ml/broken.cdx.json", bad),
            ("other.json", bad),
        ],
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("broken.cdx.json"), "{t}");
    assert!(!t.contains("other.json"), "not a BOM name: {t}");
}
