"""Kafka plumbing every service shares: broker, batches, outbox, idempotent consumers, dead
letters, delayed retries."""
