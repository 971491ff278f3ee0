"""Per-entity state: pure merge with per-field clocks, conflict policy as data, audit records."""
