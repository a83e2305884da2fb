#!/usr/bin/env python3
"""Run a composite action's steps the way the GitHub runner does, offline.

  action-harness.py ACTION_DIR --workspace DIR [--input KEY=VALUE]... [--result FILE]

What it reproduces (and checks): each `run` step gets fresh GITHUB_OUTPUT, GITHUB_ENV,
GITHUB_PATH and GITHUB_STEP_SUMMARY files; `shell: bash` runs as
`bash --noprofile --norc -eo pipefail {0}` on a script file (custom shells keep their `{0}`);
`${{ inputs.* }}`, `${{ steps.<id>.outputs.* }}`, `${{ github.* }}`, `${{ runner.* }}` and
`${{ env.* }}` are evaluated in `env:`, `shell:` and the action's `outputs:`; step outputs
(`k=v` and `k<<DELIM` forms) feed later steps; GITHUB_ENV and GITHUB_PATH carry over; the first
failing step stops the action, as without `if: always()`. Workflow commands (`::error …::`)
printed by steps are collected as annotations.

Refused (so a test cannot pass by accident): `uses:` steps, `if:` conditions, expressions other
than the contexts above, a `run` step without `shell:`, and `${{ }}` inside `run:` (script
injection; inputs must reach scripts through `env:`).

The result (JSON) has exit_code, failed_step, outputs, summary, annotations and per-step logs.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
SHELLS = {
    "bash": "bash --noprofile --norc -eo pipefail {0}",
    "sh": "sh -e {0}",
}


class HarnessError(Exception):
    pass


def parse_file_commands(path, kind):
    """GITHUB_OUTPUT / GITHUB_ENV: `k=v` lines and `k<<DELIM` heredocs."""
    out = {}
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip():
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            key, delim = line.split("<<", 1)
            val = []
            while i < len(lines) and lines[i] != delim:
                val.append(lines[i])
                i += 1
            if i >= len(lines):
                raise HarnessError(f"{kind}: heredoc for {key!r} is not closed by {delim!r}")
            i += 1
            out[key] = "\n".join(val)
        elif "=" in line:
            key, val = line.split("=", 1)
            out[key] = val
        else:
            raise HarnessError(f"{kind}: invalid line {line!r}")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("action_dir")
    ap.add_argument("--workspace", required=True)
    ap.add_argument("--input", action="append", default=[])
    ap.add_argument("--result")
    a = ap.parse_args()

    action_dir = os.path.abspath(a.action_dir)
    with open(os.path.join(action_dir, "action.yml"), encoding="utf-8") as f:
        action = yaml.safe_load(f)
    runs = action.get("runs", {})
    if runs.get("using") != "composite":
        raise HarnessError("only composite actions are supported")

    given = {}
    for kv in a.input:
        k, _, v = kv.partition("=")
        given[k] = v
    declared = action.get("inputs", {}) or {}
    for k in given:
        if k not in declared:
            raise HarnessError(f"input {k!r} is not declared by the action")
    inputs = {}
    for k, spec in declared.items():
        spec = spec or {}
        if k in given:
            inputs[k] = given[k]
        elif spec.get("required") and "default" not in spec:
            raise HarnessError(f"required input {k!r} not given")
        else:
            inputs[k] = str(spec.get("default", ""))

    workspace = os.path.abspath(a.workspace)
    runner_temp = tempfile.mkdtemp(prefix="runner-temp-")
    github = {
        "action_path": action_dir,
        "workspace": workspace,
        "run_id": "4242",
        "repository": "mlsign/harness",
        "sha": "0" * 40,
    }
    runner = {"os": "Linux", "arch": "X64", "temp": runner_temp}
    steps_out = {}
    extra_env = {}
    extra_path = []

    def evaluate(text, where):
        def sub(m):
            e = m.group(1)
            parts = e.split(".")
            if parts[0] == "inputs" and len(parts) == 2:
                if parts[1] not in inputs:
                    raise HarnessError(f"{where}: unknown input {parts[1]!r}")
                return inputs[parts[1]]
            if parts[0] == "steps" and len(parts) == 4 and parts[2] == "outputs":
                return steps_out.get(parts[1], {}).get(parts[3], "")
            if parts[0] == "github" and len(parts) == 2 and parts[1] in github:
                return github[parts[1]]
            if parts[0] == "runner" and len(parts) == 2 and parts[1] in runner:
                return runner[parts[1]]
            if parts[0] == "env" and len(parts) == 2:
                return extra_env.get(parts[1], os.environ.get(parts[1], ""))
            raise HarnessError(f"{where}: unsupported expression ${{{{ {e} }}}}")

        return EXPR.sub(sub, str(text))

    result = {"exit_code": 0, "failed_step": None, "steps": [], "annotations": [], "summary": ""}
    for n, step in enumerate(runs.get("steps", [])):
        sid = step.get("id", f"__step{n}")
        name = step.get("name", sid)
        if "uses" in step:
            raise HarnessError(f"step {name!r}: `uses:` steps are not run by this harness")
        if "if" in step:
            raise HarnessError(f"step {name!r}: `if:` is not supported by this harness")
        if "run" not in step:
            raise HarnessError(f"step {name!r}: no run")
        if "shell" not in step:
            raise HarnessError(f"step {name!r}: composite run steps need `shell:`")
        if EXPR.search(step["run"]):
            raise HarnessError(f"step {name!r}: `${{{{ }}}}` inside run: (pass it through env:)")
        shell = evaluate(step["shell"], f"{name}.shell")
        shell = SHELLS.get(shell, shell)
        if "{0}" not in shell:
            shell += " {0}"
        files = {}
        d = tempfile.mkdtemp(prefix=f"step-{n}-", dir=runner_temp)
        for var in ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_PATH", "GITHUB_STEP_SUMMARY"):
            p = os.path.join(d, var.lower())
            open(p, "w").close()
            files[var] = p
        script = os.path.join(d, "script.sh")
        with open(script, "w", encoding="utf-8") as f:
            f.write(step["run"])
        env = dict(os.environ)
        env.update(extra_env)
        env["PATH"] = os.pathsep.join(extra_path + [env.get("PATH", "")])
        env.update(files)
        env.update({
            "GITHUB_ACTION_PATH": action_dir,
            "GITHUB_WORKSPACE": workspace,
            "GITHUB_RUN_ID": github["run_id"],
            "GITHUB_REPOSITORY": github["repository"],
            "GITHUB_SHA": github["sha"],
            "GITHUB_ACTIONS": "true",
            "CI": "true",
            "RUNNER_OS": runner["os"],
            "RUNNER_ARCH": runner["arch"],
            "RUNNER_TEMP": runner_temp,
        })
        for k, v in (step.get("env") or {}).items():
            env[k] = evaluate(v, f"{name}.env.{k}")
        argv = [p.replace("{0}", script) for p in shell.split()]
        proc = subprocess.run(argv, cwd=workspace, env=env, capture_output=True, text=True)
        outputs = parse_file_commands(files["GITHUB_OUTPUT"], f"{name}: GITHUB_OUTPUT")
        steps_out[sid] = outputs
        extra_env.update(parse_file_commands(files["GITHUB_ENV"], f"{name}: GITHUB_ENV"))
        with open(files["GITHUB_PATH"], encoding="utf-8") as f:
            extra_path = [l for l in f.read().split("\n") if l] + extra_path
        with open(files["GITHUB_STEP_SUMMARY"], encoding="utf-8") as f:
            result["summary"] += f.read()
        for line in (proc.stdout + proc.stderr).splitlines():
            if re.match(r"^::(error|warning|notice)( [^:]*)?::", line):
                result["annotations"].append(line)
        result["steps"].append({
            "id": sid,
            "exit_code": proc.returncode,
            "outputs": outputs,
            "stdout": proc.stdout[-20000:],
            "stderr": proc.stderr[-20000:],
        })
        if proc.returncode != 0:
            result["exit_code"] = proc.returncode
            result["failed_step"] = sid
            break

    result["outputs"] = {
        k: evaluate((spec or {}).get("value", ""), f"outputs.{k}")
        for k, spec in (action.get("outputs") or {}).items()
    }
    text = json.dumps(result, indent=2)
    if a.result:
        with open(a.result, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except HarnessError as e:
        print(f"action-harness: {e}", file=sys.stderr)
        sys.exit(3)
