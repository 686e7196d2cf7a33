"""Event contracts and the DM vocabulary: pure, no infrastructure (import-linter keeps it so)."""
