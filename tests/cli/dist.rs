//! Distribution: shell completions and man pages cover the whole clap tree, and the pre-commit
//! hooks in .pre-commit-hooks.yaml work when run by the real `pre-commit` (try-repo, offline).

use crate::support::{bin, python, repo};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

// ---------------------------------------------------------------------------------------------
// The container image for `mlsign serve` (scripts/build-image.py): reproducible, self-contained,
// non-root, pushed to a real registry and signed and verified with mlsign itself.

use crate::support::oci as support;

fn build_image(out: &Path) -> String {
    let o = run(Command::new(python())
        .arg(repo().join("scripts/build-image.py"))
        .arg(bin())
        .arg(out)
        .args(["--tag", "test", "--gzip-level", "1"])
        .env("SOURCE_DATE_EPOCH", "1700000000"));
    assert!(o.status.success(), "build-image: {}", text(&o));
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

fn layout_blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    std::fs::read(layout.join("blobs/sha256").join(hex)).expect("blob in layout")
}

#[test]
fn container_image_is_reproducible_self_contained_and_signed_in_a_registry() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let digest = build_image(&a);
    assert_eq!(
        build_image(&b),
        digest,
        "two builds give the same manifest digest"
    );

    // The image: non-root, mlsign as entrypoint, one layer holding no shell.
    let manifest: serde_json::Value = serde_json::from_slice(&layout_blob(&a, &digest)).unwrap();
    let config: serde_json::Value = serde_json::from_slice(&layout_blob(
        &a,
        manifest["config"]["digest"].as_str().unwrap(),
    ))
    .unwrap();
    assert_eq!(config["config"]["User"], "65532:65532");
    assert_eq!(config["config"]["Entrypoint"][0], "/usr/local/bin/mlsign");
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    let root = tmp.path().join("rootfs");
    std::fs::create_dir(&root).unwrap();
    let layer = a
        .join("blobs/sha256")
        .join(&layers[0]["digest"].as_str().unwrap()[7..]);
    let o = run(Command::new("tar")
        .arg("-xzf")
        .arg(&layer)
        .arg("-C")
        .arg(&root));
    assert!(o.status.success(), "tar: {}", text(&o));
    assert!(!root.join("bin/sh").exists() && !root.join("usr/bin").exists());
    assert!(root.join("etc/ssl/certs/ca-certificates.crt").is_file());
    // Self-contained: the image's own loader and libraries run the binary (no host libraries).
    let o = run(Command::new(root.join("lib64/ld-linux-x86-64.so.2"))
        .arg("--library-path")
        .arg(root.join("lib/x86_64-linux-gnu"))
        .arg(root.join("usr/local/bin/mlsign"))
        .arg("--version")
        .env_clear());
    assert!(o.status.success(), "binary in the image: {}", text(&o));
    assert!(text(&o).starts_with("mlsign "), "{}", text(&o));

    // Push, sign by tag, verify by digest; another key fails.
    let reg = support::Registry::start();
    support::skopeo_push(&a, "test", &format!("{}/mlsign/serve:test", reg.host()));
    let keys = tmp.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    for k in ["release", "other"] {
        let o = run(Command::new(bin())
            .arg("keygen")
            .arg("--out")
            .arg(keys.join(k)));
        assert!(o.status.success(), "{}", text(&o));
    }
    let o = run(Command::new(bin())
        .args(["sign", &reg.oci("mlsign/serve:test"), "--key"])
        .arg(keys.join("release.pem"))
        .args(["--format", "json"]));
    assert!(o.status.success(), "sign: {}", text(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["digest"], digest, "the pushed image is the built one");
    let by_digest = reg.oci(&format!("mlsign/serve@{digest}"));
    let o = run(Command::new(bin())
        .args(["verify", &by_digest, "--key"])
        .arg(keys.join("release.pub")));
    assert_eq!(o.status.code(), Some(0), "verify: {}", text(&o));
    let o = run(Command::new(bin())
        .args(["verify", &by_digest, "--key"])
        .arg(keys.join("other.pub")));
    assert_eq!(o.status.code(), Some(1), "another key: {}", text(&o));
}

// ---------------------------------------------------------------------------------------------
// The Action's installer (scripts/action-install.sh): a release binary is installed only when its
// checksum matches the pin and its bundle is the pinned key's signature over those bytes, checked
// with jq + openssl, not with the downloaded binary.

struct Release {
    dir: tempfile::TempDir,
}

impl Release {
    /// An action checkout (action.yml, the installer, pins) and a "release" served over file://.
    fn new() -> Release {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for sub in ["action/scripts", "action/release", "dl", "keys", "temp"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        std::fs::copy(repo().join("action.yml"), d.join("action/action.yml")).unwrap();
        std::fs::copy(
            repo().join("scripts/action-install.sh"),
            d.join("action/scripts/action-install.sh"),
        )
        .unwrap();
        for k in ["release", "other"] {
            let o = run(Command::new(bin())
                .arg("keygen")
                .arg("--out")
                .arg(d.join("keys").join(k)));
            assert!(o.status.success(), "{}", text(&o));
        }
        std::fs::copy(
            d.join("keys/release.pub"),
            d.join("action/release/mlsign-release.pub"),
        )
        .unwrap();
        Release { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Publish BYTES as the release binary, signed by KEY over SIGNED_BYTES, and pin PIN_SHA.
    fn publish(&self, bytes: &[u8], key: &str, signed_bytes: &[u8], pin_sha: &str) {
        let name = "mlsign-0.1.0-x86_64-unknown-linux-gnu";
        std::fs::write(self.path("dl").join(name), bytes).unwrap();
        let signed = self.path("signed");
        std::fs::create_dir_all(&signed).unwrap();
        std::fs::write(signed.join(name), signed_bytes).unwrap();
        let o = run(Command::new(bin())
            .arg("sign")
            .arg(signed.join(name))
            .arg("--key")
            .arg(self.path(&format!("keys/{key}.pem")))
            .arg("--bundle")
            .arg(self.path("dl").join(format!("{name}.sig")))
            .arg("--force"));
        assert!(o.status.success(), "{}", text(&o));
        std::fs::write(
            self.path("action/release/pins.txt"),
            format!(
                "version=0.1.0\nbase_url=file://{}\nsha256.x86_64-unknown-linux-gnu={pin_sha}\n",
                self.path("dl").display()
            ),
        )
        .unwrap();
    }

    /// Run the installer as the Action does; (exit code, output, GITHUB_OUTPUT).
    fn install(&self) -> (i32, String, String) {
        let outputs = self.path("github_output");
        std::fs::write(&outputs, "").unwrap();
        let o = run(Command::new("bash")
            .arg(self.path("action/scripts/action-install.sh"))
            .env("INPUT_MLSIGN", "")
            .env("INPUT_VERSION", "0.1.0")
            .env("ACTION_PATH", self.path("action"))
            .env("OS_NAME", "Linux")
            .env("OS_ARCH", "X64")
            .env("RUNNER_TEMP", self.path("temp"))
            .env("GITHUB_OUTPUT", &outputs)
            .env("PATH", "/usr/bin:/bin")); // no cargo: a refused download cannot fall back
        (
            o.status.code().unwrap_or(-1),
            text(&o),
            std::fs::read_to_string(&outputs).unwrap(),
        )
    }

    fn installed(&self) -> PathBuf {
        self.path("temp/mlsign-0.1.0/bin/mlsign")
    }
}

#[test]
fn action_installer_checks_checksum_and_signature() {
    let good = std::fs::read(bin()).unwrap();
    let sha = sha256_hex(&good);
    let mut evil = good.clone();
    let n = evil.len();
    evil[n - 1] ^= 1;
    let evil_sha = sha256_hex(&evil);
    let r = Release::new();

    // A tampered download: checksum mismatch, nothing installed.
    r.publish(&evil, "release", &good, &sha);
    let (code, out, _) = r.install();
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("checksum mismatch"), "{out}");
    assert!(!r.installed().exists());

    // The pin names the download, but the bundle is another key's.
    r.publish(&evil, "other", &evil, &evil_sha);
    let (code, out, _) = r.install();
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("does not verify with the pinned release key"),
        "{out}"
    );
    assert!(!r.installed().exists());

    // The release key's genuine bundle, but over other bytes.
    r.publish(&evil, "release", &good, &evil_sha);
    let (code, out, _) = r.install();
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("does not cover"), "{out}");
    assert!(!r.installed().exists());

    // A signature edited into the right statement does not verify either.
    r.publish(&good, "release", &good, &sha);
    let sig = r
        .path("dl")
        .join("mlsign-0.1.0-x86_64-unknown-linux-gnu.sig");
    let mut b: serde_json::Value = serde_json::from_slice(&std::fs::read(&sig).unwrap()).unwrap();
    let s = b["dsseEnvelope"]["signatures"][0]["sig"]
        .as_str()
        .unwrap()
        .to_string();
    let other = if s.starts_with('M') { "N" } else { "M" };
    b["dsseEnvelope"]["signatures"][0]["sig"] = format!("{other}{}", &s[1..]).into();
    std::fs::write(&sig, serde_json::to_vec(&b).unwrap()).unwrap();
    let (code, out, _) = r.install();
    assert_eq!(code, 2, "{out}");
    assert!(!r.installed().exists());

    // The genuine release installs, runs, and is reported as such.
    r.publish(&good, "release", &good, &sha);
    let (code, out, outputs) = r.install();
    assert_eq!(code, 0, "{out}");
    assert!(outputs.contains("install-method=release"), "{outputs}");
    assert!(out.contains("mlsign 0."), "{out}");
    assert_eq!(std::fs::read(r.installed()).unwrap(), good);
    // A second run uses the cached binary only while its bytes are the pinned ones.
    let (code, _, outputs) = r.install();
    assert_eq!(code, 0);
    assert!(outputs.contains("install-method=cached"), "{outputs}");
    std::fs::write(r.installed(), &evil).unwrap();
    let (code, out, outputs) = r.install();
    assert_eq!(code, 0, "{out}");
    assert!(outputs.contains("install-method=release"), "{outputs}");
    assert_eq!(std::fs::read(r.installed()).unwrap(), good);
    // Another version than the pinned one is refused.
    let o = run(Command::new("bash")
        .arg(r.path("action/scripts/action-install.sh"))
        .env("INPUT_VERSION", "9.9.9")
        .env("ACTION_PATH", r.path("action"))
        .env("GITHUB_OUTPUT", r.path("github_output")));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}
