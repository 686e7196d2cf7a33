"""The public form's challenge (docs/WEB.md, "Form limits"): hCaptcha or Cloudflare
Turnstile, off unless configured, shown only while the form's limits are under pressure.

The browser widget puts a token in the form; only the provider's siteverify endpoint can
say whether it is real (a form-encoded POST of secret, response and the visitor's IP; the
answer is JSON with `success`). The check fails closed: no token, no answer, an error or
an unreadable answer is a refusal, never a pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from services.api.settings import ApiSettings
from shared.platform.logs import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class Provider:
    script: str  # the widget's script, loaded by the form
    widget_class: str  # the element the script turns into the widget
    field: str  # the form field the widget fills with its token
    verify_url: str  # siteverify, as the provider documents it
    origins: tuple[str, ...]  # what the page's CSP must allow for the widget


PROVIDERS = {
    "hcaptcha": Provider(
        script="https://js.hcaptcha.com/1/api.js",
        widget_class="h-captcha",
        field="h-captcha-response",
        verify_url="https://api.hcaptcha.com/siteverify",
        origins=("https://hcaptcha.com", "https://*.hcaptcha.com"),
    ),
    "turnstile": Provider(
        script="https://challenges.cloudflare.com/turnstile/v0/api.js",
        widget_class="cf-turnstile",
        field="cf-turnstile-response",
        verify_url="https://challenges.cloudflare.com/turnstile/v0/siteverify",
        origins=("https://challenges.cloudflare.com",),
    ),
}
VERIFY_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Challenge:
    provider: Provider
    site_key: str
    secret: str
    verify_url: str

    @classmethod
    def from_settings(cls, settings: ApiSettings) -> Challenge | None:
        if settings.lead_form_challenge == "none":
            return None
        provider = PROVIDERS[settings.lead_form_challenge]
        return cls(
            provider=provider,
            site_key=settings.lead_form_challenge_site_key,
            secret=settings.lead_form_challenge_secret.get_secret_value(),
            verify_url=settings.lead_form_challenge_verify_url or provider.verify_url,
        )

    async def passed(self, response: str, client_ip: str) -> bool:
        """Whether the provider vouches for this widget token (fails closed)."""
        if not response:
            return False
        body = {"secret": self.secret, "response": response[:4096], "remoteip": client_ip}
        try:
            async with httpx.AsyncClient(timeout=VERIFY_TIMEOUT_S) as client:
                answer = await client.post(self.verify_url, data=body)
            answer.raise_for_status()
            verdict = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("challenge verification unavailable", error=type(exc).__name__)
            return False
        if not (isinstance(verdict, dict) and verdict.get("success") is True):
            log.info("challenge refused", codes=str(verdict.get("error-codes", ""))[:200])
            return False
        return True

    def widen_csp(self, policy: str) -> str:
        """The page's policy, also allowing the widget's script, frame and calls."""
        origins = " ".join(self.provider.origins)
        directives = [d.strip() for d in policy.split(";") if d.strip()]
        widened = [
            f"{d} {origins}" if d.split()[0] in ("script-src", "style-src") else d
            for d in directives
        ]
        widened += [f"frame-src 'self' {origins}", f"connect-src 'self' {origins}"]
        return "; ".join(widened)
