"""HTTP entrypoints of WhatsApp Business numbers: connect a number (phone number id +
token), set its daily tier, configure approved templates, disconnect. No response ever
carries a token.

The caller is the JWT principal (services/api/http/auth.py): a creator acts for themself; an
admin or service names the creator with `?creator_id=`. Connecting asks Meta first whether
the token may use the number, so only its holder learns whether another creator has it.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, status
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    StrictBool,
    StringConstraints,
    field_validator,
)

from services.api.http.deps import CurrentUser, Deps
from services.api.http.problems import ApiProblem, problem_responses
from services.api.http.schemas import json_number
from services.api.service_layer import whatsapp_accounts as accounts
from shared.contracts.whatsapp_templates import LEAD_FIELDS
from shared.db.models import SocialAccount, WhatsAppNumber, WhatsAppTemplate
from shared.platform.crypto import TokenCipher
from shared.providers.meta_errors import ErrorClass, MetaError
from shared.providers.whatsapp import WhatsAppClient

NumericId = Annotated[str, StringConstraints(pattern=r"^\d{1,32}$")]
PRINTABLE_ASCII = r"^[\x21-\x7e]+$"
Tier = Literal[250, 2_000, 10_000, 100_000]
LeadField = Literal["name", "first_name", "message", "phone", "instagram_username", "creator_name"]
assert set(LeadField.__args__) == set(LEAD_FIELDS)  # type: ignore[attr-defined]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NumberIn(Strict):
    phone_number_id: NumericId = Field(description="The Cloud API phone number id")
    # Sent on as an HTTP header to Meta: printable ASCII only, as the document says.
    access_token: SecretStr = Field(
        min_length=1, max_length=1024, json_schema_extra={"pattern": PRINTABLE_ASCII}
    )
    display_phone_number: str | None = Field(default=None, max_length=32, pattern=r"^[^\x00]*$")
    waba_id: NumericId | None = None
    daily_limit: Tier = Field(default=250, description="Meta's messaging tier of the number")
    messages_per_second: Annotated[int, Field(ge=1, le=1000), BeforeValidator(json_number)] = 80

    @field_validator("access_token")
    @classmethod
    def _printable(cls, token: SecretStr) -> SecretStr:
        if not re.match(PRINTABLE_ASCII, token.get_secret_value()):
            raise ValueError("printable ASCII characters only")
        return token


class NumberPatch(Strict):
    daily_limit: Tier


class NumberOut(BaseModel):
    account_id: UUID
    phone_number_id: str
    display_phone_number: str | None
    waba_id: str | None
    status: str
    daily_limit: int
    messages_per_second: int


class TemplateIn(Strict):
    name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,512}$")]
    language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(_[A-Z]{2})?$")]
    parameters: list[LeadField] = Field(
        default_factory=list, max_length=20, description="Lead field per body parameter, in order"
    )
    default: StrictBool = Field(default=True, description="The template cold DMs use")


class TemplateOut(BaseModel):
    id: UUID
    name: str
    language: str
    parameters: list[str]
    status: str
    status_reason: str | None
    default: bool
    updated_at: datetime


def cipher(request: Request) -> TokenCipher:
    value: TokenCipher = request.app.state.whatsapp_cipher
    return value


def graph(request: Request) -> WhatsAppClient:
    value: WhatsAppClient = request.app.state.whatsapp_graph
    return value


def acting_creator(user: CurrentUser, creator_id: Annotated[UUID | None, Query()] = None) -> UUID:
    if user.creator_id is not None and creator_id in (None, user.creator_id):
        return user.creator_id
    if user.sees_all_creators and creator_id is not None:
        return creator_id
    raise ApiProblem(403, "forbidden", "name a creator you may act for (?creator_id=)")


Creator = Annotated[UUID, Depends(acting_creator)]
Cipher = Annotated[TokenCipher, Depends(cipher)]
Graph = Annotated[WhatsAppClient, Depends(graph)]
router = APIRouter(
    # 400 and 413: a body that is not JSON, or too large (services/api/http/body_limits.py).
    prefix="/api/whatsapp",
    tags=["whatsapp"],
    responses=problem_responses(400, 401, 403, 413, 422, 429, 503),
)


@router.post(
    "/numbers",
    status_code=status.HTTP_201_CREATED,
    response_model=NumberOut,
    summary="Connect (or reconnect) a WhatsApp Business number; the token is stored encrypted",
    responses=problem_responses(409),
)
async def connect_number(
    body: NumberIn, creator: Creator, deps: Deps, keys: Cipher, meta: Graph
) -> NumberOut:
    token = body.access_token.get_secret_value()
    # The token first: "connected to another creator" is only told to whoever may use it.
    fields = await _number_at_meta(meta, body.phone_number_id, token)
    meta_display = fields.get("display_phone_number", "")
    spec = accounts.NumberSpec(
        phone_number_id=body.phone_number_id,
        access_token=token,
        display_phone_number=body.display_phone_number or meta_display[:32] or None,
        waba_id=body.waba_id,
        daily_limit=body.daily_limit,
        messages_per_second=body.messages_per_second,
    )
    async with deps.uow() as uow:
        account, number = await accounts.connect_number(uow, creator, spec, keys)
    return _number_out(account, number)


@router.patch(
    "/numbers/{account_id}",
    response_model=NumberOut,
    summary="Set the number's daily messaging tier",
    responses=problem_responses(404),
)
async def patch_number(
    account_id: UUID, body: NumberPatch, creator: Creator, deps: Deps
) -> NumberOut:
    async with deps.uow() as uow:
        number = await accounts.set_daily_limit(uow, creator, account_id, body.daily_limit)
        account = await uow.get(SocialAccount, account_id)
        assert account is not None
        return _number_out(account, number)


@router.delete(
    "/numbers/{account_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Disconnect the number (its token is dropped)",
    responses=problem_responses(404),
)
async def delete_number(account_id: UUID, creator: Creator, deps: Deps) -> None:
    async with deps.uow() as uow:
        await accounts.disconnect_number(uow, creator, account_id)


@router.post(
    "/numbers/{account_id}/templates",
    status_code=status.HTTP_201_CREATED,
    response_model=TemplateOut,
    summary="Add (or replace) an approved template and map its body parameters to lead fields",
    responses=problem_responses(404),
)
async def post_template(
    account_id: UUID, body: TemplateIn, creator: Creator, deps: Deps
) -> TemplateOut:
    spec = accounts.TemplateSpec(body.name, body.language, list(body.parameters), body.default)
    async with deps.uow() as uow:
        template = await accounts.upsert_template(uow, creator, account_id, spec)
        return _template_out(template)


@router.get(
    "/numbers/{account_id}/templates",
    response_model=list[TemplateOut],
    summary="The number's templates",
    responses=problem_responses(404),
)
async def get_templates(account_id: UUID, creator: Creator, deps: Deps) -> list[TemplateOut]:
    async with deps.sessions() as session:
        templates = await accounts.list_templates(session, creator, account_id)
        return [_template_out(t) for t in templates]


async def _number_at_meta(meta: WhatsAppClient, phone_number_id: str, token: str) -> dict[str, str]:
    try:
        fields = await meta.phone_number(phone_number_id, token)
    except MetaError as exc:
        if exc.error_class in (ErrorClass.TRANSIENT, ErrorClass.THROTTLED, ErrorClass.AMBIGUOUS):
            raise ApiProblem(
                503,
                "whatsapp-unavailable",
                "WhatsApp could not check the number's token just now; try again",
                headers={"Retry-After": "5"},
            ) from exc
        raise ApiProblem(
            422,
            "whatsapp-token-refused",
            f"WhatsApp does not accept this access token for phone number id {phone_number_id}",
        ) from exc
    return {k: str(v) for k, v in fields.items() if isinstance(v, str)}


def _number_out(account: SocialAccount, number: WhatsAppNumber) -> NumberOut:
    return NumberOut(
        account_id=account.id,
        phone_number_id=account.external_id,
        display_phone_number=number.display_phone_number,
        waba_id=number.waba_id,
        status=account.status,
        daily_limit=number.daily_limit,
        messages_per_second=number.messages_per_second,
    )


def _template_out(template: WhatsAppTemplate) -> TemplateOut:
    return TemplateOut(
        id=template.id,
        name=template.name,
        language=template.language,
        parameters=list(template.parameters),
        status=template.status,
        status_reason=template.status_reason,
        default=template.is_default,
        updated_at=template.updated_at,
    )
