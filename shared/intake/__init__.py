"""Intake: a webhook admitted (ingest), turned into canonical observations (normalise) or parked with its
reason (quarantine); declarative field maps for in-house systems."""
