"""Delivery policy of the senders: the gate (pacing, circuits, kill switch), status events,
reasons."""
