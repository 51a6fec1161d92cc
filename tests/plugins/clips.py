"""Test fixtures (placeholder until filled)."""
