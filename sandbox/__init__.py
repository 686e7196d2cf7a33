"""Meta sandbox: a local stand-in for graph.instagram.com, api.instagram.com and the
WhatsApp Cloud API, with a `/_sandbox` control API and fault injection.

Production points the same clients at Meta's hosts, so every public path and payload
here follows Meta's documented shapes (see /work/shared/platform-facts.md).
"""
