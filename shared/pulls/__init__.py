"""Pulls: scheduled reconciliation against the platforms' list APIs, and historical backfill."""
