"""What a creator reads about a DM that did not go out: what happened and what to do, in
their words, never a provider's code or message, nor AutoDM's plumbing (the DLQ, retry
topics). The technical detail travels beside it in the status event's `error` (stored as
the lead's dm_error_*) and is shown to admins only: admin pages, the DLQ browser, the
admin API. Every sender composes its reasons here; the creator's pages fall back here too.
"""

from __future__ import annotations

from shared.contracts.lifecycle import DmStatus
from shared.providers.meta_errors import ErrorClass

PROVIDER_NAMES = {"instagram": "Instagram", "whatsapp": "WhatsApp"}

ACCESS_EXPIRED = (
    "Your Instagram access expired before AutoDM could renew it. Reconnect Instagram on the "
    "Instagram page, then retry this DM."
)
ACCESS_REFUSED = (
    "Instagram stopped accepting AutoDM's access. Reconnect Instagram on the Instagram page, "
    "then retry this DM."
)
# An account leaving AutoDM: the reason its waiting DMs end `skipped` with, also kept on the
# account (disconnect_reason) so the creator's Instagram page can say what happened.
CREATOR_DISCONNECTED = (
    "You disconnected Instagram, so this DM was not sent. Connect Instagram again on the "
    "Instagram page, then retry it."
)
DEAUTHORIZED = (
    "Instagram removed AutoDM from your account (AutoDM was removed in Instagram's settings), "
    "so this DM was not sent. Reconnect Instagram on the Instagram page, then retry it."
)
DATA_DELETED = (
    "Instagram asked AutoDM to delete your Instagram data, so this DM was not sent. Reconnect "
    "Instagram on the Instagram page to use AutoDM again."
)
NOT_CONNECTED = (
    "Instagram is not connected to AutoDM. Connect it on the Instagram page, then retry this DM."
)
INVALID_PHONE = (
    "The lead's phone number is not a valid WhatsApp number. Ask them for it again; a new "
    "lead with the right number gets the DM."
)
TEMPLATE_MISMATCH = (
    "Your WhatsApp template needs a detail this lead did not give. Check the template's "
    "parameters, then retry."
)

# Opt-out and human takeover (shared/delivery/suppression.py, shared/delivery/takeover.py): the
# reasons a DM ends `skipped` with; `reason_code` gives their machine names (`opted_out`,
# `creator_replied`) to the API and the pages.
OPTED_OUT = (
    "This person asked not to get messages from you (they wrote STOP, stopped your WhatsApp "
    'messages, or you marked them "do not message"), so AutoDM did not send this DM. If '
    "they write START, or you remove them from your suppression list, new DMs go out again."
)
CREATOR_REPLIED = (
    "You are writing to this person yourself, so AutoDM stayed quiet and did not send this DM. "
    "Hand the conversation back on the lead's page if you want AutoDM to message them again."
)
REASON_CODES = {OPTED_OUT: "opted_out", CREATOR_REPLIED: "creator_replied"}

_BY_CLASS: dict[str, str] = {
    ErrorClass.TOKEN: (
        "{p} stopped accepting AutoDM's access. Reconnect {p} on the {p} page, then retry this DM."
    ),
    ErrorClass.RECIPIENT: (
        "{p} does not let AutoDM message this person right now (they have not written to you "
        "recently, or they do not accept messages). Retry after they write to you."
    ),
    ErrorClass.INVALID: (
        "{p} refused this message. Check your message in Settings and the lead's details, "
        "then retry; if it fails again, contact support."
    ),
    ErrorClass.THROTTLED: "{p} asked AutoDM to slow down for your account.",
    ErrorClass.TRANSIENT: "{p} could not be reached.",
    ErrorClass.AMBIGUOUS: (
        "{p} did not confirm whether this DM went out, so AutoDM does not send it again (no "
        "double messages). Check your {p} inbox."
    ),
}
_WAITS = frozenset({ErrorClass.THROTTLED, ErrorClass.TRANSIENT})

_BY_STATUS: dict[str, str] = {
    DmStatus.FAILED: "The DM could not be sent. Retry it; if it fails again, contact support.",
    DmStatus.SKIPPED: "The DM was not sent.",
    DmStatus.UNKNOWN: (
        "AutoDM cannot tell whether this DM went out, so it is not sent again (no double messages)."
    ),
}


def provider_failure(provider: str, error_class: str, *, gave_up_after: int | None = None) -> str:
    """A provider's refusal or silence, for the creator. `gave_up_after`: the attempts made
    before AutoDM stopped retrying (throttled or unreachable all along)."""
    name = PROVIDER_NAMES.get(provider, provider.capitalize())
    text = _BY_CLASS.get(error_class, "{p} refused this message.").format(p=name)
    if gave_up_after is not None:
        return f"{text} AutoDM tried {gave_up_after} times and stopped; retry it later."
    if error_class in _WAITS:
        return f"{text} AutoDM tries again automatically."
    return text


def for_status(status: str) -> str:
    """What to tell a creator about a DM that ended without a recorded reason."""
    return _BY_STATUS.get(status, "")


def reason_code(reason: str | None) -> str | None:
    """The machine name of a reason a client may act on (`opted_out`, `creator_replied`)."""
    return REASON_CODES.get(reason or "")
