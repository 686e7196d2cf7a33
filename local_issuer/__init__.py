"""A development identity provider: its own keypair, a JWKS endpoint, and a token mint.

For `make run` and the tests only. Production never runs it: AutoDM's settings point at
the real provider's JWKS (Clerk or any OIDC issuer) instead.
"""
