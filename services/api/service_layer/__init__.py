"""The API's service layer: what both its processes do to leads and DMs, behind a unit of work."""
