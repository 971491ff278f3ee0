"""Cold start: what each handler's import costs on top of the libraries it needs, tracing off and on.

Run alone: ``.venv/bin/python -m bench.cold_start`` (prints the markdown section of bench/RESULTS.md).

For each handler and each tree (this one, and a baseline commit unpacked with ``git archive``, by
default main before issue 15) the bench starts fresh interpreters, as Lambda does for a cold start:

* **libraries** — the third-party modules the handler loads with tracing off, imported in the order it
  loads them: boto3, botocore, pydantic, Powertools' parts, phonenumbers where used. The tracing SDK
  (``aws_xray_sdk`` and ``wrapt``) is never part of this floor: loading it is the project's choice, so
  its time counts as the project's.
* **ours** — then the handler module on top: our modules, the standard-library modules they pull in,
  the pydantic models built at import, the tracing SDK where it is loaded.

"Tracing off" is the deployed configuration ``tracing: lambda`` (``POWERTOOLS_TRACE_DISABLED=true``);
"tracing on" is ``tracing: sdk`` (Powertools Tracer with the X-Ray SDK). Both set ``LAMBDA_TASK_ROOT``,
so Powertools sees a Lambda environment, and the runtime variables the stack gives every function
(``runtime_environment``: ``PYDANTIC_DISABLE_PLUGINS``), for both trees alike: the comparison is of the
code. What that variable saves is measured on its own: the first pydantic model, with and without
pydantic's scan of the installed packages for plugins. Bytecode is compiled beforehand, as it is in the
asset.
Each figure is the median of ``BENCH_COLD_START_RUNS`` (default 7) interpreters; the runs of the two
trees alternate so that load on the machine falls on both alike. Times are the process's CPU time
(``time.process_time``): an import is CPU-bound, and on a shared machine wall time mostly measures the
wait for a core.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RUNS = int(os.environ.get("BENCH_COLD_START_RUNS", "7"))
# main before issue 15 (the commit the cold-start figures of the issue were measured on)
BASELINE = os.environ.get("BENCH_COLD_START_BASELINE", "a99fa17")
HANDLERS = (
    "ingest",
    "normalise",
    "sync",
    "publish",
    "deliver",
    "automate",
    "notify",
    "reconcile",
    "amazon_intake",
    "audit_archive",
)
GOAL_MS = 100.0
TRACING_LIBRARIES = ("aws_xray_sdk", "wrapt")
MODES = {"off": "true", "on": "false"}  # POWERTOOLS_TRACE_DISABLED

LIBRARIES_PROBE = """
import sys, importlib
importlib.import_module(sys.argv[1])
ours, std, tracing = ("shared", "functions"), set(sys.stdlib_module_names), tuple(sys.argv[2:])
for name in sys.modules:
    top = name.split(".")[0]
    if top not in std and top not in ours and top not in tracing and not name.startswith("_"):
        print("lib", name)
    if top == "shared":
        print("our", name)
print("xray", "aws_xray_sdk" in sys.modules)
"""

IMPORT_PROBE = """
import sys, time, importlib
handler, libraries = sys.argv[1], sys.argv[2:]
t0 = time.process_time()
for name in libraries:
    importlib.import_module(name)
t1 = time.process_time()
importlib.import_module(handler)
t2 = time.process_time()
print(t1 - t0, t2 - t1, "aws_xray_sdk" in sys.modules)
"""


def _environment(tree: Path, mode: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_", "PYTHON", "PYDANTIC_"))}
    return {
        **env,
        "AWS_DEFAULT_REGION": "eu-west-1",
        "LAMBDA_TASK_ROOT": str(tree),
        "POWERTOOLS_SERVICE_NAME": "aftersync",
        "POWERTOOLS_METRICS_NAMESPACE": "Aftersync/bench",
        "PYDANTIC_DISABLE_PLUGINS": "__all__",
        "POWERTOOLS_TRACE_DISABLED": MODES[mode],
    }


def _python(tree: Path, mode: str, *args: str) -> str:
    # cwd first on sys.path (``-c``): the tree's own ``shared`` and ``functions``, not the editable install's
    return subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", *args],
        capture_output=True,
        text=True,
        cwd=tree,
        env=_environment(tree, mode),
        check=True,
    ).stdout


def unpack(ref: str, into: Path) -> Path:
    """The handlers and shared code of ``ref``, as the asset ships them."""
    archive = subprocess.run(  # noqa: S603
        ["git", "archive", "--format=tar", ref, "shared", "functions"],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def _compile(tree: Path) -> None:
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j0", "shared", "functions"], cwd=tree, check=True)


def _probe_libraries(tree: Path, module: str) -> dict[str, Any]:
    lines = _python(tree, "off", LIBRARIES_PROBE, module, *TRACING_LIBRARIES).splitlines()
    return {
        "libraries": [line.split()[1] for line in lines if line.startswith("lib ")],
        "ours": sorted(line.split()[1] for line in lines if line.startswith("our ")),
    }


def measure_trees(trees: dict[str, Path], runs: int = RUNS) -> dict[str, Any]:
    """Per tree, per handler: the libraries floor and ours on top, tracing off and on (seconds)."""
    for tree in trees.values():
        _compile(tree)
    found: dict[str, Any] = {name: {} for name in trees}
    for handler in HANDLERS:
        module = f"functions.{handler}.handler"
        probes = {name: _probe_libraries(tree, module) for name, tree in trees.items()}
        samples: dict[tuple[str, str], list[tuple[float, float, bool]]] = {}
        for _ in range(runs):
            for mode in MODES:
                for name, tree in trees.items():
                    out = _python(tree, mode, IMPORT_PROBE, module, *probes[name]["libraries"]).split()
                    samples.setdefault((name, mode), []).append((float(out[0]), float(out[1]), out[2] == "True"))
        for name in trees:
            found[name][handler] = {
                "modules": len(probes[name]["ours"]),
                **{
                    f"{part}_{mode}": statistics.median(s[index] for s in samples[(name, mode)])
                    for mode in MODES
                    for index, part in ((0, "libraries"), (1, "ours"))
                },
                **{f"xray_{mode}": all(s[2] for s in samples[(name, mode)]) for mode in MODES},
            }
    return found


FIRST_MODEL_PROBE = """
import time, pydantic
t0 = time.process_time()
class First(pydantic.BaseModel):
    x: int
print(time.process_time() - t0)
"""


def measure_plugin_scan(runs: int = RUNS) -> dict[str, Any]:
    """The first pydantic model of a process, with pydantic's plugin discovery and without (seconds)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYDANTIC_")}
    found: dict[str, list[float]] = {"scan": [], "disabled": []}
    for _ in range(runs):
        for case, extra in (("scan", {}), ("disabled", {"PYDANTIC_DISABLE_PLUGINS": "__all__"})):
            out = subprocess.run(  # noqa: S603
                [sys.executable, "-c", FIRST_MODEL_PROBE],
                capture_output=True,
                text=True,
                env={**env, **extra},
                check=True,
            ).stdout
            found[case].append(float(out))
    from importlib.metadata import distributions

    return {
        "distributions": sum(1 for _ in distributions()),
        **{case: statistics.median(times) for case, times in found.items()},
    }


def measure() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="cold-start-baseline-") as tmp:
        try:
            baseline = unpack(BASELINE, Path(tmp))
        except subprocess.CalledProcessError:
            baseline = None  # a shallow clone without the baseline commit: this tree alone
        trees = {"this": ROOT, **({"baseline": baseline} if baseline else {})}
        result = measure_trees(trees)
    return {"runs": RUNS, "baseline_ref": BASELINE if baseline else None, **result, "plugins": measure_plugin_scan()}


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.0f} ms"


def report(result: dict[str, Any]) -> list[str]:
    this, baseline = result["this"], result.get("baseline")
    lines = [
        "## Cold start: import time over the libraries",
        "",
        f"Goal: ours ≤ {GOAL_MS:.0f} ms a handler. 'libraries': the third-party modules the handler needs, "
        "imported alone (tracing SDK excluded); 'ours': the handler imported on top of them — our modules, the "
        "standard library they pull in, the pydantic models built at import, and the X-Ray SDK where tracing loads "
        "it. Tracing off = `tracing: lambda` (Lambda's own trace, no SDK in the function), on = `tracing: sdk`."
        + (f" Baseline: commit `{result['baseline_ref']}` (main before issue 15), same run." if baseline else ""),
        "",
    ]
    header = "| handler | libraries | ours, tracing off | ours / libraries | ours, tracing on | our modules loaded |"
    rule = "|---|---:|---:|---:|---:|---:|"
    if baseline:
        header += " baseline: libraries | baseline: ours off | baseline: ours on | ours off / baseline ours off |"
        rule += "---:|---:|---:|---:|"
    lines += [header, rule]
    for handler, f in this.items():
        row = (
            f"| {handler} | {_ms(f['libraries_off'])} | {_ms(f['ours_off'])} "
            f"| {f['ours_off'] / f['libraries_off']:.2f} | {_ms(f['ours_on'])} | {f['modules']} |"
        )
        if baseline:
            b = baseline[handler]
            row += (
                f" {_ms(b['libraries_off'])} | {_ms(b['ours_off'])} | {_ms(b['ours_on'])} "
                f"| {f['ours_off'] / b['ours_off']:.2f} |"
            )
        lines.append(row)
    xray_off = sorted(h for h, f in this.items() if f["xray_off"])
    over = sorted(h for h, f in this.items() if f["ours_off"] * 1e3 > GOAL_MS)
    plugins = result["plugins"]
    lines += [
        "",
        f"CPU time, median of {result['runs']} fresh interpreters per figure, bytecode compiled beforehand. "
        + (
            "With tracing off no handler loads the X-Ray SDK."
            if not xray_off
            else f"With tracing off these still load the X-Ray SDK: {', '.join(xray_off)}."
        )
        + (f" Over the goal here: {', '.join(over)}." if over else " Every handler within the goal here."),
        "",
        f"The first pydantic model of a process: {_ms(plugins['scan'])} with pydantic's plugin discovery (an "
        f"entry-point scan of the {plugins['distributions']} installed distributions here; fewer on Lambda), "
        f"{_ms(plugins['disabled'])} with `PYDANTIC_DISABLE_PLUGINS=__all__`, as every function runs "
        f"(ratio {plugins['disabled'] / plugins['scan']:.2f}).",
        "",
    ]
    return lines


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    print("\n".join(report(measure())))
