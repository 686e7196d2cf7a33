"""Control API for the WhatsApp side: numbers, templates, simulated users and the
order/spacing of status webhooks."""

from __future__ import annotations

import secrets
from dataclasses import asdict
from typing import Any, Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from sandbox import events
from sandbox.state import SandboxState, StateDep, StatusOrder, WaNumber, WaTemplate
from sandbox.wa_users import WaUser
from sandbox.whatsapp import new_wamid, normalize_phone

router = APIRouter(prefix="/whatsapp")


def _number(state: SandboxState, phone_number_id: str) -> WaNumber:
    number = state.world.wa_numbers.get(phone_number_id)
    if number is None:
        raise HTTPException(404, f"unknown phone_number_id '{phone_number_id}'")
    return number


class NewNumber(BaseModel):
    display_phone_number: str = Field(min_length=1)
    phone_number_id: str | None = Field(default=None, pattern=r"^\d+$")
    access_token: str | None = None
    daily_tier: str = "250"
    waba_id: str | None = None


@router.post("/numbers")
async def register_number(body: NewNumber, state: StateDep) -> dict[str, Any]:
    world = state.world
    if body.phone_number_id and (
        body.phone_number_id in world.wa_numbers or body.phone_number_id in world.ig_accounts
    ):
        raise HTTPException(409, "phone_number_id already in use")
    number = WaNumber(
        phone_number_id=body.phone_number_id or world.new_numeric_id("1", 15),
        display_phone_number=body.display_phone_number,
        access_token=body.access_token or "EAA" + secrets.token_urlsafe(48),
        waba_id=body.waba_id or state.settings.whatsapp_waba_id,
        daily_tier=body.daily_tier,
    )
    world.wa_numbers[number.phone_number_id] = number
    return asdict(number)


@router.get("/numbers")
async def list_numbers(state: StateDep) -> dict[str, Any]:
    return {"data": [asdict(n) for n in state.world.wa_numbers.values()]}


class NewTemplate(BaseModel):
    name: str = Field(min_length=1)
    language: str = Field(min_length=1)
    body_params: int = Field(default=0, ge=0)
    category: Literal["utility", "marketing", "authentication"] = "utility"


@router.post("/templates")
async def register_template(body: NewTemplate, state: StateDep) -> dict[str, Any]:
    template = WaTemplate(body.name, body.language, body.body_params, body.category)
    state.world.wa_templates[(template.name, template.language)] = template
    return asdict(template)


@router.get("/templates")
async def list_templates(state: StateDep) -> dict[str, Any]:
    return {"data": [asdict(t) for t in state.world.wa_templates.values()]}


class InboundMessage(BaseModel):
    phone_number_id: str
    from_: str | None = Field(default=None, alias="from")
    # A user already met, by their business-scoped user id (instead of `from`).
    from_user_id: str | None = None
    text: str
    name: str = "Sandbox User"
    # This user adopted a username and hides their phone (default: the
    # `whatsapp_username_share` draw when the number is first seen).
    hide_phone: bool | None = None
    username: str | None = None


def _user(state: SandboxState, body: InboundMessage) -> WaUser:
    if body.from_user_id is not None:
        user = state.world.wa_users.by_user_id.get(body.from_user_id)
        if user is None:
            raise HTTPException(404, f"unknown user_id '{body.from_user_id}'")
        if body.hide_phone is not None:  # adopted a username since (or gave it up)
            user.hides_phone = body.hide_phone
            user.username = body.username or user.username or f"user.{user.user_id[-4:]}"
        return user
    wa_id = normalize_phone(body.from_)
    if wa_id is None:
        raise HTTPException(422, "'from' must be a phone number with country code")
    settings = state.settings
    return state.world.wa_users.for_phone(
        settings, wa_id, hide_phone=body.hide_phone, username=body.username
    )


@router.post("/users/message")
async def user_message(body: InboundMessage, state: StateDep) -> dict[str, Any]:
    """A WhatsApp user messages the business number: opens/resets the 24 h customer
    service window and sends the inbound `messages` webhook."""
    number = _number(state, body.phone_number_id)
    user = _user(state, body)
    state.world.wa_last_inbound[(number.phone_number_id, user.user_id)] = state.clock.now()
    wamid = new_wamid()
    payload = events.wa_inbound_text(
        number, user, body.name, wamid, body.text, int(state.clock.now())
    )
    delivery = state.webhooks.send("whatsapp", "messages", payload)
    return {
        "wa_id": user.shown_phone,
        "user_id": user.user_id,
        "username": user.username,
        "wamid": wamid,
        "webhook_id": delivery.id,
    }


class UserIdChange(BaseModel):
    phone_number_id: str
    user_id: str
    new_user_id: str | None = None


@router.post("/users/change_user_id")
async def change_user_id(body: UserIdChange, state: StateDep) -> dict[str, Any]:
    """The user's BSUID changes: Meta's `user_changed_user_id` system message; the old
    BSUID no longer reaches them, their window stays."""
    number = _number(state, body.phone_number_id)
    user = state.world.wa_users.by_user_id.get(body.user_id)
    if user is None:
        raise HTTPException(404, f"unknown user_id '{body.user_id}'")
    old = state.world.wa_users.change_user_id(user, body.new_user_id)
    windows = state.world.wa_last_inbound
    for (number_id, user_id), at in list(windows.items()):
        if user_id == old:
            windows[(number_id, user.user_id)] = at
    payload = events.wa_user_id_changed(number, user, old, new_wamid(), int(state.clock.now()))
    delivery = state.webhooks.send("whatsapp", "messages", payload)
    return {"user_id": user.user_id, "previous_user_id": old, "webhook_id": delivery.id}


class StopMarketing(BaseModel):
    from_: str = Field(alias="from")


@router.post("/users/stop_marketing")
async def stop_marketing(body: StopMarketing, state: StateDep) -> dict[str, Any]:
    """The user stops the business's marketing messages in WhatsApp: a marketing template
    to them is accepted, then fails with 131050 in its status webhook."""
    wa_id = normalize_phone(body.from_)
    if wa_id is None:
        raise HTTPException(422, "'from' must be a phone number with country code")
    # Keyed like the send checks it: the person's business-scoped user id.
    user = state.world.wa_users.for_phone(state.settings, wa_id)
    state.world.wa_marketing_stopped.add(user.user_id)
    return {"wa_id": wa_id, "user_id": user.user_id}


class StatusOrderBody(BaseModel):
    order: list[Literal["sent", "delivered", "read", "failed"]]
    delay_ms: int = Field(default=0, ge=0)


@router.put("/status_order")
async def set_status_order(body: StatusOrderBody, state: StateDep) -> dict[str, Any]:
    order = StatusOrder(order=list(body.order), delay_ms=body.delay_ms, explicit=True)
    state.world.status_order = order
    return asdict(state.world.status_order)


@router.get("/messages")
async def sent_messages(
    state: StateDep, phone_number_id: str | None = None, to: str | None = None
) -> dict[str, Any]:
    wa_id = (normalize_phone(to) or to) if to else None
    data = [
        asdict(m)
        for m in state.world.wa_messages
        if phone_number_id in (None, m.phone_number_id)
        and (to is None or wa_id in (m.to, m.user_id))
    ]
    return {"data": data}
