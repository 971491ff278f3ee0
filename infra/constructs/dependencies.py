"""What ships besides the runtime, with its bytecode compiled in: the functions' code asset and a Lambda
layer with the runtime dependencies the Powertools layer lacks (pure-Python wheels for the function's
runtime and architecture), both bundled on this machine without Docker where it can.

Lambda's code directory is read-only, so a module whose bytecode is not in the asset is compiled from
source at every cold start. Both assets are compiled by an interpreter of the runtime's own version
(bytecode is version-specific), with ``unchecked-hash`` pycs: the asset zip resets file times, so a
timestamp-checked pyc would be judged stale and compiled anew; an unchecked one is used as it is (the
asset is immutable). Where no such interpreter is found, CDK bundles in the runtime's build image.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.config import ROOT

REQUIREMENTS_DIR = ROOT / "infra" / "layer"
SHIPPED = ("shared", "functions")  # only the project's own code ships in the function asset
# What the asset's hash covers (the source, not operator, test or build files)
CODE_EXCLUDES = ["**", ".*", "**/.*", *(f"!{p}{s}" for p in SHIPPED for s in ("", "/**")), "**/__pycache__", "**/*.pyc"]
COMPILE = ["-m", "compileall", "-q", "-j0", "--invalidation-mode", "unchecked-hash"]
# The same bytecode from the same source on every machine (set and frozenset constants are hash-ordered)
COMPILE_ENV = {"PYTHONHASHSEED": "0"}


def runtime_interpreter(version: str) -> str | None:
    """A CPython ``version`` ("3.13") interpreter on this machine: this one, ``python3.13`` on the PATH,
    or one pyenv installed. Each candidate is asked its version (a pyenv shim may name one it cannot run)."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = [sys.executable, shutil.which(f"python{version}")]
    candidates += [str(p) for p in sorted(pyenv.glob(f"{version}.*/bin/python{version}"), reverse=True)]
    for candidate in candidates:
        if candidate and _version_of(candidate) == version:
            return candidate
    return None


def _version_of(interpreter: str) -> str | None:
    try:
        found = subprocess.run(  # noqa: S603 - a Python interpreter found above, fixed arguments
            [interpreter, "-c", "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except OSError:
        return None
    return found.stdout.strip() if found.returncode == 0 else None


def _bundle_in_image() -> bool:
    """No interpreter of the runtime's version here: with Docker, CDK bundles in the runtime's build image
    (``False``); without it the asset is bundled here with no bytecode (``True``), and says so: it works,
    but each cold start compiles the modules it imports (install that Python, e.g. with pyenv)."""
    if shutil.which("docker") is not None:
        return False
    print(  # a synth-time warning to the operator
        "warning: no Python of the functions' runtime version (RUNTIME in infra/constructs/compute.py) and no "
        "Docker here: the Lambda assets ship without bytecode (slower cold starts)",
        file=sys.stderr,
    )
    return True


def compile_bytecode(interpreter: str | None, directory: Path) -> None:
    """Unchecked-hash ``.pyc`` for ``interpreter``'s version; none without one (see ``_bundle_in_image``)."""
    if interpreter is None:
        return
    subprocess.run(  # noqa: S603 - the runtime's interpreter, fixed arguments
        [interpreter, *COMPILE, str(directory)], env={**os.environ, **COMPILE_ENV}, check=True
    )


@jsii.implements(ILocalBundling)
class CompiledCode:
    """The function asset: ``shared/`` and ``functions/`` as they are in the repository, plus bytecode."""

    def __init__(self, interpreter: str | None) -> None:
        self.interpreter = interpreter

    def try_bundle(self, output_dir: str, options: Any) -> bool:
        if self.interpreter is None and not _bundle_in_image():
            return False
        for package in SHIPPED:
            shutil.copytree(
                ROOT / package, Path(output_dir) / package, ignore=shutil.ignore_patterns(".*", "__pycache__", "*.pyc")
            )
        compile_bytecode(self.interpreter, Path(output_dir))
        return True


def function_code(runtime: lambda_.Runtime) -> lambda_.Code:
    """The one code asset every function runs from, with its bytecode for ``runtime``."""
    compile_in_image = " ".join(["python", *COMPILE, "/asset-output"])
    return lambda_.Code.from_asset(
        str(ROOT),
        exclude=CODE_EXCLUDES,
        bundling=BundlingOptions(
            image=DockerImage.from_registry(f"public.ecr.aws/sam/build-{runtime.name}"),
            command=[
                "bash",
                "-c",
                f"cp -r {' '.join(f'/asset-input/{p}' for p in SHIPPED)} /asset-output/ && "
                "find /asset-output \\( -name __pycache__ -o -name '.*' \\) -prune -exec rm -rf {} + && "
                f"PYTHONHASHSEED=0 {compile_in_image}",
            ],
            local=CompiledCode(runtime_interpreter(runtime.name.removeprefix("python"))),
        ),
    )


@jsii.implements(ILocalBundling)
class PipBundling:
    def __init__(self, python_version: str, platform: str) -> None:
        self.python_version = python_version
        self.platform = platform

    def try_bundle(self, output_dir: str, options: Any) -> bool:
        interpreter = runtime_interpreter(self.python_version)
        if interpreter is None and not _bundle_in_image():
            return False
        target = Path(output_dir) / "python"
        subprocess.run(  # noqa: S603 - our own interpreter's pip, fixed arguments
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--requirement",
                str(REQUIREMENTS_DIR / "requirements.txt"),
                "--target",
                str(target),
                "--only-binary=:all:",
                "--no-deps",
                "--no-compile",
                "--platform",
                self.platform,
                "--python-version",
                self.python_version,
                "--implementation",
                "cp",
            ],
            check=True,
        )
        compile_bytecode(interpreter, target)
        return True


def dependencies_layer(
    scope: Construct, construct_id: str, runtime: lambda_.Runtime, architecture: lambda_.Architecture
) -> lambda_.LayerVersion:
    python_version = runtime.name.removeprefix("python")
    platform = "manylinux2014_aarch64" if architecture == lambda_.Architecture.ARM_64 else "manylinux2014_x86_64"
    return lambda_.LayerVersion(
        scope,
        construct_id,
        code=lambda_.Code.from_asset(
            str(REQUIREMENTS_DIR),
            bundling=BundlingOptions(
                image=DockerImage.from_registry(f"public.ecr.aws/sam/build-{runtime.name}"),
                command=[
                    "bash",
                    "-c",
                    "pip install -r requirements.txt -t /asset-output/python --only-binary=:all: --no-compile && "
                    "PYTHONHASHSEED=0 " + " ".join(["python", *COMPILE, "/asset-output/python"]),
                ],
                local=PipBundling(python_version, platform),
            ),
        ),
        compatible_runtimes=[runtime],
        compatible_architectures=[architecture],
        description="Aftersync runtime dependencies not in the Powertools layer (infra/layer/requirements.txt)",
    )
