"""The API's event workers process: lead routing, status projection, Comment to DM, lead ingress,
outbox relay, housekeeping."""
