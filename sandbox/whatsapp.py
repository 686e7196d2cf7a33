"""WhatsApp Cloud API send rules (platform-facts §4b-§4e).

``POST /{version}/{phone_number_id}/messages`` shares its path shape with Instagram's
``/{ig_id}/messages``; graph.py routes a request here when the node is a registered
WhatsApp phone number id. So does ``GET /{version}/{phone_number_id}`` (the number's fields,
only with that number's token).
"""

from __future__ import annotations

import base64
import re
import secrets
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from sandbox import events
from sandbox.errors import GraphError, invalid_token, missing_token, whatsapp_error
from sandbox.params import access_token, graph_params
from sandbox.state import DAY, SandboxState, SentWaMessage, WaNumber, WaTemplate
from sandbox.wa_users import WaUser, status_plan

MESSAGING_WINDOW = DAY
MAX_TEXT_CHARS = 4096
MAX_CALLBACK_DATA_CHARS = 512
_PHONE = re.compile(r"\+?(\d{7,15})")


def new_wamid() -> str:
    return "wamid." + base64.b64encode(secrets.token_bytes(30)).decode()


def _invalid(details: str) -> GraphError:
    return whatsapp_error(100, "Invalid parameter", details)


def normalize_phone(raw: object) -> str | None:
    """Digits with country code; a leading '+' is tolerated like the Cloud API does."""
    match = _PHONE.fullmatch(str(raw).strip()) if isinstance(raw, str | int) else None
    return match.group(1) if match else None


def in_window(state: SandboxState, number: WaNumber, user_id: str) -> bool:
    """The user (by BSUID) wrote to the number within 24 h."""
    last = state.world.wa_last_inbound.get((number.phone_number_id, user_id))
    return last is not None and state.clock.now() - last <= MESSAGING_WINDOW


# --- validation ------------------------------------------------------------------------


def _authenticate(
    state: SandboxState, request: Request, params: dict[str, Any], number: WaNumber
) -> None:
    status = state.settings.token_error_http_status
    token = access_token(request, params)
    if token is None:
        raise missing_token(status)
    if token != number.access_token:
        raise invalid_token(status)


def _template_body_params(template: dict[str, Any]) -> list[str]:
    values: list[str] = []
    for component in template.get("components") or []:
        if isinstance(component, dict) and str(component.get("type", "")).lower() == "body":
            for param in component.get("parameters") or []:
                values.append(str(param.get("text", "")) if isinstance(param, dict) else "")
    return values


def _check_template(state: SandboxState, params: dict[str, Any]) -> tuple[WaTemplate, list[str]]:
    template = params.get("template")
    if not isinstance(template, dict) or not isinstance(template.get("name"), str):
        raise _invalid("template.name is required")
    language = template.get("language")
    code = language.get("code") if isinstance(language, dict) else None
    if not isinstance(code, str):
        raise _invalid("template.language.code is required")
    registered = state.world.wa_templates.get((template["name"], code))
    if registered is None:
        raise whatsapp_error(
            132001,
            "Template name does not exist in the translation",
            f"template name ({template['name']}) does not exist in {code}",
        )
    values = _template_body_params(template)
    if len(values) != registered.body_params:
        raise whatsapp_error(
            132000,
            "Number of parameters does not match the expected number of params",
            f"body: number of localizable_params ({len(values)}) does not match the expected "
            f"number of params ({registered.body_params})",
        )
    return registered, values


def _session_text(params: dict[str, Any], msg_type: str) -> str | None:
    """Validate a non-template (customer-service) message; returns its text if any."""
    content = params.get(msg_type)
    if not isinstance(content, dict):
        raise _invalid(f"The parameter {msg_type} is required for type {msg_type}")
    if msg_type != "text":
        return None
    body = content.get("body")
    if not isinstance(body, str) or not body:
        raise _invalid("text.body is required")
    if len(body) > MAX_TEXT_CHARS:
        raise _invalid(f"text.body must be at most {MAX_TEXT_CHARS} characters")
    return body


def _callback_data(params: dict[str, Any]) -> str | None:
    """`biz_opaque_callback_data`: any string up to 512 characters, echoed in the message's
    status webhooks (platform facts §4e)."""
    data = params.get("biz_opaque_callback_data")
    if data is None:
        return None
    if not isinstance(data, str) or len(data) > MAX_CALLBACK_DATA_CHARS:
        raise _invalid(
            f"biz_opaque_callback_data must be a string of at most {MAX_CALLBACK_DATA_CHARS} "
            "characters"
        )
    return data


def _consume_rates(state: SandboxState, number: WaNumber, wa_id: str) -> None:
    """Throughput per number (130429), then pair rate per (number, user) (131056); both
    are checked before either is consumed so a refusal never spends quota."""
    settings, now = state.settings, state.clock.now()
    status = settings.rate_limit_http_status
    throughput = state.world.limiters.window(("wa_mps", number.phone_number_id), 1.0)
    if throughput.count(now) >= settings.whatsapp_messages_per_second:
        raise whatsapp_error(
            130429,
            "Rate limit hit",
            "Message failed to send because there were too many messages sent from this "
            "phone number in a short period of time",
            status,
        )
    pacer = state.world.limiters.pacer(("wa_pair", number.phone_number_id, wa_id))
    if not pacer.try_acquire(
        now, settings.whatsapp_pair_interval_seconds, settings.whatsapp_pair_burst
    ):
        raise whatsapp_error(
            131056,
            "(Business Account, Consumer Account) pair rate limit hit",
            "Message failed to send because there were too many messages sent from this "
            "phone number to the same phone number in a short period of time",
            status,
        )
    throughput.record(now)


# --- status webhooks ---------------------------------------------------------------------


def _api_major(version: str) -> int:
    match = re.match(r"v(\d+)", version)
    return int(match.group(1)) if match else 0


def _schedule_statuses(
    state: SandboxState,
    number: WaNumber,
    sent: SentWaMessage,
    user: WaUser,
    category: str,
    failure: dict[str, Any] | None,
) -> None:
    plan = status_plan(state.settings, state.world.status_order, failure is not None)
    open_window = in_window(state, number, user.user_id)
    with_conversation = _api_major(state.settings.graph_api_version) < 24
    at, payloads, delays = state.clock.now(), [], []
    for status, delay in plan:
        at += delay
        payload = events.wa_status(
            number,
            sent,
            status,
            int(at),
            user=user,
            category=category,
            in_window=open_window,
            with_conversation=with_conversation,
            error=failure,
        )
        payloads.append(("statuses", payload))
        delays.append(delay)
    state.webhooks.send_sequence("whatsapp", payloads, delays)


# --- the endpoints -------------------------------------------------------------------

NUMBER_FIELDS = ("id", "display_phone_number", "verified_name", "quality_rating")


async def get_number(state: SandboxState, request: Request, number_id: str) -> JSONResponse:
    """GET /{phone-number-id}: the number's fields, for a token that may use the number."""
    number = state.world.wa_numbers[number_id]
    params = await graph_params(request)
    _authenticate(state, request, params, number)
    values = {
        "id": number.phone_number_id,
        "display_phone_number": number.display_phone_number,
        "verified_name": f"Sandbox {number.display_phone_number}",
        "quality_rating": "GREEN",
    }
    requested = [f.strip() for f in str(params.get("fields") or "").split(",") if f.strip()]
    unknown = [f for f in requested if f not in NUMBER_FIELDS]
    if unknown:
        raise GraphError(
            http_status=400,
            code=100,
            message=f"(#100) Tried accessing nonexisting field ({unknown[0]})",
        )
    return JSONResponse({name: values[name] for name in [*requested, "id"]})


async def send_message(state: SandboxState, request: Request, number_id: str) -> JSONResponse:
    number = state.world.wa_numbers[number_id]
    params = await graph_params(request)
    _authenticate(state, request, params, number)
    if params.get("messaging_product") != "whatsapp":
        raise _invalid("The parameter messaging_product is required and must be 'whatsapp'")
    if params.get("status") == "read":
        return _mark_read(params)
    user, addressed_by = _recipient(state, params)
    wa_id = user.user_id  # windows and pair pacing are the person's, however addressed
    msg_type = str(params.get("type", "text"))
    now = state.clock.now()
    failure: dict[str, Any] | None = None
    sent = SentWaMessage(number_id, user.phone or "", msg_type, new_wamid(), now)
    sent.user_id, sent.addressed_by = user.user_id, addressed_by
    sent.callback_data = _callback_data(params)
    if msg_type == "template":
        template, values = _check_template(state, params)
        sent.template, sent.language, sent.params = template.name, template.language, values
        category = template.category
        if category == "marketing" and wa_id in state.world.wa_marketing_stopped:
            failure = events.STOPPED_MARKETING  # accepted, then failed by status webhook
            sent.error_code = 131050
    else:
        sent.text, category = _session_text(params, msg_type), "service"
        if not in_window(state, number, wa_id):
            if state.settings.whatsapp_window_error_mode == "sync":
                raise whatsapp_error(131047, "Re-engagement message", events.RE_ENGAGEMENT_DETAILS)
            failure = events.RE_ENGAGEMENT
            sent.error_code = 131047
    _consume_rates(state, number, wa_id)
    state.world.wa_messages.append(sent)
    state.world.stats.accept("whatsapp")
    _schedule_statuses(state, number, sent, user, category, failure)
    message: dict[str, str] = {"id": sent.message_id}
    if msg_type == "template":
        message["message_status"] = "accepted"
    contact = {"input": str(params.get(addressed_by)), "user_id": user.user_id}
    if addressed_by == "to" and user.phone:
        contact["wa_id"] = user.phone
    return JSONResponse(
        {"messaging_product": "whatsapp", "contacts": [contact], "messages": [message]}
    )


def _recipient(state: SandboxState, params: dict[str, Any]) -> tuple[WaUser, str]:
    """Whom the send is for: a phone number (`to`) or a business-scoped user id
    (`recipient`, how a username user without a shared phone is reached), not both."""
    to, recipient = params.get("to"), params.get("recipient")
    if to is not None and recipient is not None:
        raise _invalid("Only one of the parameters to and recipient may be set")
    if recipient is not None:
        user = state.world.wa_users.by_user_id.get(str(recipient))
        if user is None:
            raise _invalid(f"recipient ({recipient}) is not a valid business-scoped user id")
        return user, "recipient"
    wa_id = normalize_phone(to)
    if wa_id is None:
        raise _invalid("The parameter to must be a phone number with country code (digits)")
    return state.world.wa_users.for_phone(state.settings, wa_id), "to"


def _mark_read(params: dict[str, Any]) -> JSONResponse:
    """Mark an inbound message read (`"status": "read"`, `message_id`): Meta answers
    `{"success": true}`."""
    message_id = params.get("message_id")
    if not isinstance(message_id, str) or not message_id.startswith("wamid."):
        raise _invalid("The parameter message_id is required")
    return JSONResponse({"success": True})
