#!/usr/bin/env python3
"""CDK entry point: one Aftersync stack per environment in cdk.json (``-c env=NAME`` picks one).

cdk-nag's AWS Solutions and Serverless packs run on every synth; a finding that is not
acknowledged (with its reason) fails the synth.
"""

from __future__ import annotations

import json
import os

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks, ServerlessChecks

from infra.config import ROOT, load_environment, load_environments
from infra.stack import AftersyncStack


def feature_flags() -> dict[str, object]:
    """cdk.json's feature flags, so a synth outside the CDK CLI (tests, benches) builds the same template."""
    context = json.loads((ROOT / "cdk.json").read_text(encoding="utf-8"))["context"]
    return {k: v for k, v in context.items() if k.startswith("@aws-cdk/")}


def build_app(selected: str | None = None, outdir: str | None = None) -> cdk.App:
    app = cdk.App(outdir=outdir, context=feature_flags())
    selected = selected or app.node.try_get_context("env")
    configs = [load_environment(selected)] if selected else list(load_environments().values())
    for cfg in configs:
        AftersyncStack(
            app,
            cfg.stack_name,
            cfg=cfg,
            env=cdk.Environment(account=cfg.account or os.environ.get("CDK_DEFAULT_ACCOUNT"), region=cfg.region),
        )
    cdk.Validations.of(app).add_plugins(
        AwsSolutionsChecks(app, verbose=True, write_suppressions_to_cloud_formation=True),
        ServerlessChecks(app, verbose=True, write_suppressions_to_cloud_formation=True),
    )
    return app


if __name__ == "__main__":
    build_app().synth()
