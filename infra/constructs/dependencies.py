"""A Lambda layer with the runtime dependencies the Powertools layer lacks, bundled by pip on this
machine (no Docker): pure-Python wheels for the function's runtime and architecture."""

from __future__ import annotations

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


@jsii.implements(ILocalBundling)
class PipBundling:
    def __init__(self, python_version: str, platform: str) -> None:
        self.python_version = python_version
        self.platform = platform

    def try_bundle(self, output_dir: str, options: Any) -> bool:
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
                str(Path(output_dir) / "python"),
                "--only-binary=:all:",
                "--no-deps",
                "--platform",
                self.platform,
                "--python-version",
                self.python_version,
                "--implementation",
                "cp",
            ],
            check=True,
        )
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
                command=["bash", "-c", "pip install -r requirements.txt -t /asset-output/python --only-binary=:all:"],
                local=PipBundling(python_version, platform),
            ),
        ),
        compatible_runtimes=[runtime],
        compatible_architectures=[architecture],
        description="Aftersync runtime dependencies not in the Powertools layer (infra/layer/requirements.txt)",
    )
