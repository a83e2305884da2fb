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

/// `mlsign PATH… --help`: (subcommand names, long options), read from the binary's own help so
/// the walk covers whatever tree the binary parses (no list kept here).
fn help_of(path: &[String]) -> (Vec<String>, Vec<String>) {
    let o = run(Command::new(bin())
        .args(path)
        .arg("--help")
        .env("COLUMNS", "100"));
    assert_eq!(o.status.code(), Some(0), "{path:?} --help: {}", text(&o));
    let help = String::from_utf8(o.stdout).expect("utf-8 help");
    let (mut subs, mut longs) = (Vec::new(), Vec::new());
    let mut section = "";
    for line in help.lines() {
        if line.trim().is_empty() {
            continue; // long help separates entries with blank lines
        }
        if !line.starts_with(' ') {
            section = line.trim_end_matches(':');
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let item = line.trim_start();
        match section {
            // Entries start at column 2; wrapped descriptions are indented further.
            "Commands" if indent == 2 => {
                let name = item.split_whitespace().next().unwrap().to_string();
                if name != "help" {
                    subs.push(name);
                }
            }
            "Options" | "Arguments" if indent <= 6 && item.starts_with('-') => {
                for tok in item.split([' ', ',']) {
                    if let Some(long) = tok.strip_prefix("--") {
                        let long: String = long
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                            .collect();
                        if !long.is_empty() && long != "help" && long != "version" {
                            longs.push(long);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    (subs, longs)
}

/// Every visible subcommand as (path of names, its long options), depth first; the root is
/// the empty path.
fn command_tree() -> Vec<(Vec<String>, Vec<String>)> {
    fn walk(path: Vec<String>, out: &mut Vec<(Vec<String>, Vec<String>)>) {
        let (subs, longs) = help_of(&path);
        out.push((path.clone(), longs));
        for s in subs {
            let mut p = path.clone();
            p.push(s);
            walk(p, out);
        }
    }
    let mut out = Vec::new();
    walk(Vec::new(), &mut out);
    out
}

#[test]
fn completions_cover_every_subcommand() {
    let tree = command_tree();
    assert!(tree.len() > 10, "command tree looks truncated: {tree:?}");
    let options: usize = tree.iter().map(|(_, l)| l.len()).sum();
    assert!(options > 50, "help parsing found too few options: {tree:?}");
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let o = run(Command::new(bin()).args(["completions", shell]));
        assert_eq!(o.status.code(), Some(0), "{shell}: {}", text(&o));
        let script = String::from_utf8(o.stdout).expect("utf-8 script");
        for (p, longs) in &tree {
            if let Some(leaf) = p.last() {
                assert!(
                    script.contains(leaf.as_str()),
                    "{shell} completion lacks subcommand {}",
                    p.join(" ")
                );
            }
            // Every long option of every subcommand is offered; fish spells it `-l NAME`.
            for long in longs {
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
    let tree = command_tree();
    assert_eq!(listed, tree.len(), "one page per command");
    for (p, longs) in &tree {
        let name = std::iter::once("mlsign".to_string())
            .chain(p.iter().cloned())
            .collect::<Vec<_>>()
            .join("-");
        let page = out.join(format!("{name}.1"));
        let roff =
            std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
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

// ---- pip wheel --------------------------------------------------------------------------

fn python() -> PathBuf {
    std::env::var("MLSIGN_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo().join(".venv/bin/python"))
}

/// Build the wheel with maturin from pyproject.toml, reusing the profile, features and target
/// directory this test binary was built with (so cargo only re-packages the existing binary;
/// the release script does the same with the release profile).
fn build_wheel(out: &Path) -> PathBuf {
    let bin = Path::new(bin());
    let profile_dir = bin.parent().unwrap();
    let target_dir = profile_dir.parent().unwrap();
    let profile = match profile_dir.file_name().unwrap().to_str().unwrap() {
        "debug" => "dev".to_string(),
        other => other.to_string(),
    };
    let maturin = python().parent().unwrap().join("maturin");
    assert!(
        maturin.exists(),
        "tests/dist.rs needs maturin next to {} (pip install -r scripts/deps/python/dist.txt)",
        python().display()
    );
    let mut cmd = Command::new(maturin);
    // cargo test sets CARGO_MANIFEST_DIR, CARGO_PKG_* … for this process; passed on, they would
    // change what build scripts see (ring reruns on CARGO_MANIFEST_DIR) and rebuild both ways.
    for (k, _) in std::env::vars_os() {
        if let Some(k) = k.to_str() {
            if k.starts_with("CARGO_") && k != "CARGO_HOME" {
                cmd.env_remove(k);
            }
        }
    }
    cmd.current_dir(repo())
        .args(["build", "--locked", "--profile", &profile, "--target-dir"])
        .arg(target_dir)
        .arg("--out")
        .arg(out);
    if !cfg!(feature = "behave") {
        cmd.arg("--no-default-features");
    }
    if cfg!(feature = "onnx") {
        cmd.args(["--features", "onnx"]);
    }
    let o = run(&mut cmd);
    assert!(o.status.success(), "maturin: {}", text(&o));
    let wheels: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "whl"))
        .collect();
    assert_eq!(wheels.len(), 1, "{wheels:?}");
    wheels[0].clone()
}

fn venv(dir: &Path) -> PathBuf {
    let o = run(Command::new(python()).args(["-m", "venv"]).arg(dir));
    assert!(o.status.success(), "venv: {}", text(&o));
    dir.join("bin")
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// About 35 s (two venvs, installing a debug-profile wheel); maturin reuses this target
/// directory's build, so nothing is compiled. Ignored in the default run because maturin's
/// cargo touches target/debug while the other tests here run the binary (the pre-commit tests
/// fail alongside it). Run alone: `cargo test --features onnx --test dist -- --ignored`.
#[test]
#[ignore = "run alone: cargo test --features onnx --test dist -- --ignored"]
fn pip_wheel_installs_the_binary_and_refuses_a_tampered_download() {
    let tmp = tempfile::tempdir().unwrap();
    let t0 = std::time::Instant::now();
    let wheel = build_wheel(&tmp.path().join("wheels"));
    eprintln!("wheel built in {:?}", t0.elapsed());
    let name = wheel.file_name().unwrap().to_str().unwrap().to_string();
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        name.starts_with(&format!("mlsign-{version}-py3-none-")),
        "{name}"
    );
    let bytes = std::fs::read(&wheel).unwrap();

    // Pinned by hash, as docs/install.md tells users: the good wheel installs.
    let good_dir = tmp.path().join("good");
    std::fs::create_dir_all(&good_dir).unwrap();
    std::fs::copy(&wheel, good_dir.join(&name)).unwrap();
    let req = tmp.path().join("req.txt");
    std::fs::write(
        &req,
        format!("mlsign=={version} --hash=sha256:{}\n", sha256_hex(&bytes)),
    )
    .unwrap();
    let vbin = venv(&tmp.path().join("venv"));
    let o = run(Command::new(vbin.join("pip"))
        .args(["install", "--no-index", "--require-hashes", "--find-links"])
        .arg(&good_dir)
        .arg("-r")
        .arg(&req));
    assert!(o.status.success(), "pip: {}", text(&o));
    eprintln!("installed at {:?}", t0.elapsed());
    let mlsign = vbin.join("mlsign");
    let o = run(Command::new(&mlsign).arg("--version"));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        format!("mlsign {version}")
    );

    // Sign / verify round trip with the installed binary, and a tampered model fails.
    let model = tmp.path().join("model");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::write(model.join("weights.bin"), b"\x00\x01\x02 weights").unwrap();
    std::fs::write(model.join("config.json"), b"{\"layers\": 2}").unwrap();
    let key = tmp.path().join("signer");
    let ok = |c: &mut Command| {
        let o = run(c);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    };
    ok(Command::new(&mlsign).arg("keygen").arg("--out").arg(&key));
    let bundle = tmp.path().join("model.sig");
    ok(Command::new(&mlsign)
        .arg("sign")
        .arg(&model)
        .arg("--key")
        .arg(key.with_extension("pem"))
        .arg("--bundle")
        .arg(&bundle));
    let verify = || {
        run(Command::new(&mlsign)
            .arg("verify")
            .arg(&model)
            .arg("--bundle")
            .arg(&bundle)
            .arg("--key")
            .arg(key.with_extension("pub")))
    };
    let o = verify();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    std::fs::write(model.join("weights.bin"), b"\x00\x01\x03 weights").unwrap();
    let o = verify();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    eprintln!("round trip done at {:?}", t0.elapsed());
    // The same pin against a tampered wheel (one byte changed): pip refuses, installs nothing.
    let bad_dir = tmp.path().join("bad");
    std::fs::create_dir_all(&bad_dir).unwrap();
    let mut tampered = bytes.clone();
    let mid = tampered.len() / 2;
    tampered[mid] ^= 0x01;
    std::fs::write(bad_dir.join(&name), &tampered).unwrap();
    let vbin2 = venv(&tmp.path().join("venv2"));
    let o = run(Command::new(vbin2.join("pip"))
        .args(["install", "--no-index", "--require-hashes", "--find-links"])
        .arg(&bad_dir)
        .arg("-r")
        .arg(&req));
    assert!(!o.status.success(), "pip installed a tampered wheel");
    assert!(text(&o).contains("HASH"), "{}", text(&o));
    assert!(
        !vbin2.join("mlsign").exists(),
        "tampered wheel left a binary"
    );
}
