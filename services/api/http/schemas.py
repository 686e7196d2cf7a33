"""The API's request and response bodies (what the frontend and other services see)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from services.api.service_layer.comment_trigger import (
    MAX_KEYWORD_CHARS,
    MAX_KEYWORDS,
    CommentTrigger,
    normalize_keywords,
)
from services.api.service_layer.message_text import placeholder_problem
from shared.contracts.lead_sources import LeadSource
from shared.contracts.lifecycle import DmStatus, Provider, Route
from shared.contracts.route_choice import RouteOrder

Username = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._]{1,30}$")]
NumericId = Annotated[str, StringConstraints(pattern=r"^\d{1,32}$")]
# At most 32 characters in all, the + included: what leads.phone holds.
Phone = Annotated[str, StringConstraints(max_length=32, pattern=r"^\+?[0-9 ()./-]{6,32}$")]
META_TEXT_MAX_BYTES = 1000


def _meta_text(value: str) -> str:
    # Meta counts the limit in bytes of UTF-8, not characters: 250 emoji are already 1,000.
    if len(value.encode()) > META_TEXT_MAX_BYTES:
        raise ValueError(f"at most {META_TEXT_MAX_BYTES} bytes of UTF-8 (Meta's limit)")
    return value


# Far-off years overflow when converted to UTC; no lead is from before 2000 anyway. The
# document says so with a pattern (JSON Schema has no date range), and only RFC 3339 text
# is taken: pydantic alone would also take a number of seconds, which the schema refuses.
INSTANT_PATTERN = r"^[2-8][0-9]{3}-"


def _rfc3339_text(value: object) -> object:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not re.match(INSTANT_PATTERN, value):
        raise ValueError("an RFC 3339 date-time between the years 2000 and 8999")
    return value


# PostgreSQL's text refuses NUL: the document says so, and the API answers 422, not 500.
NO_NUL = r"^[^\x00]*$"
MetaText = Annotated[
    str, StringConstraints(max_length=1000, pattern=NO_NUL), AfterValidator(_meta_text)
]
Instant = Annotated[
    AwareDatetime,
    BeforeValidator(_rfc3339_text),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": INSTANT_PATTERN}),
]


def _stripped(value: str) -> str:
    # Surrounding blanks go, but a name made of blanks only is kept as sent: refusing it
    # would be a rule the schema (`minLength`) does not state.
    return value.strip() or value


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


# The rules of the model validators below, in the document: a value that is present and
# not null needs its partner (pydantic's `None` is JSON's null or absent).
def _needs(name: str, partner: str) -> dict[str, Any]:
    return {
        "anyOf": [
            {"properties": {name: {"type": "null"}}},
            {"required": [partner], "properties": {partner: {"type": "string"}}},
        ]
    }


def _present(name: str) -> dict[str, Any]:
    return {"required": [name], "properties": {name: {"type": "string"}}}


INSTAGRAM_RULES: dict[str, Any] = {
    "allOf": [_needs("comment_id", "commented_at"), _needs("last_inbound_at", "igsid")]
}
# A lead must be reachable: a phone number, or an Instagram handle or id.
# Meta's BSUID: a country code, a dot, up to 128 alphanumerics (`.ENT.` for a parent one).
BSUID_PATTERN = r"^[A-Z]{2}\.(ENT\.)?[A-Za-z0-9]{1,128}$"
REACHABLE: dict[str, Any] = {
    "anyOf": [
        _present("phone"),
        _present("whatsapp_user_id"),
        {
            "required": ["instagram"],
            "properties": {
                "instagram": {
                    "type": "object",
                    "anyOf": [_present("username"), _present("igsid"), _present("comment_id")],
                }
            },
        },
    ]
}


# What a caller may say of its lead (shared.contracts.lead_sources.CALLER_SOURCES).
CallerSource = Literal["api", "import", "ig_referral"]


class InstagramIn(StrictModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=INSTAGRAM_RULES)

    username: Username | None = Field(default=None, examples=["jane.doe"])
    igsid: NumericId | None = Field(
        default=None, description="Instagram-scoped id on the creator's account, if known"
    )
    last_inbound_at: Instant | None = Field(
        default=None, description="When this person last messaged the account (opens 24 h)"
    )
    comment_id: NumericId | None = None
    commented_at: Instant | None = None

    @model_validator(mode="after")
    def _pairs(self) -> InstagramIn:
        if self.comment_id and not self.commented_at:
            raise ValueError("commented_at is required with comment_id")
        if self.last_inbound_at and not self.igsid:
            raise ValueError("last_inbound_at needs the igsid it belongs to")
        return self


class LeadIn(StrictModel):
    creator_id: UUID | None = Field(
        default=None,
        description="A creator's own token implies it; admin and service callers must name it",
    )
    name: Annotated[
        str,
        StringConstraints(min_length=1, max_length=200, pattern=NO_NUL),
        AfterValidator(_stripped),
    ]
    message: MetaText = Field(default="", description="What the lead wrote; <= 1,000 bytes")
    phone: Phone | None = Field(default=None, examples=["+44 20 7946 0958"])
    whatsapp_opt_in: StrictBool = False
    whatsapp_consent_source: str | None = Field(
        default=None,
        max_length=200,
        pattern=NO_NUL,
        description=(
            "Where the WhatsApp opt-in came from (e.g. an import's 'checkout form 2026-11'); "
            "the caller's token vouches for it. Without it an opt-in is recorded as 'api'"
        ),
    )
    instagram: InstagramIn | None = None
    whatsapp_user_id: str | None = Field(
        default=None,
        pattern=BSUID_PATTERN,
        description=(
            "The person's WhatsApp business-scoped user id (BSUID, e.g. "
            "'US.13491208655302741918'), if your own WhatsApp integration on the same business "
            "knows it: a username user may never show a phone. Sends go to the phone when "
            "there is one, else to this id; a wa.me link still needs the phone"
        ),
    )
    source: CallerSource | None = Field(
        default=None,
        description="Where the lead came from: `api` (the default), `import` or "
        "`ig_referral`; the lead form and Comment to DM record theirs themselves",
    )

    @model_validator(mode="after")
    def _reachable(self) -> LeadIn:
        ig = self.instagram
        by_instagram = ig and (ig.username or ig.igsid or ig.comment_id)
        if not self.phone and not self.whatsapp_user_id and not by_instagram:
            raise ValueError(
                "a lead needs an Instagram handle or id, or a phone number (or WhatsApp user id)"
            )
        return self

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=REACHABLE
        | {
            "examples": [
                {
                    "creator_id": "7f1f8c3e-1c2b-4d5e-9f00-000000000001",
                    "name": "Jane",
                    "message": "I'd love the guide",
                    "instagram": {"username": "jane.doe"},
                    "phone": "+44 20 7946 0958",
                }
            ]
        },
    )


class DmError(BaseModel):
    code: int | None
    subcode: int | None
    message: str | None


class DmLogOut(BaseModel):
    status: DmStatus
    attempt: int
    occurred_at: datetime
    detail: dict[str, Any]


class DmOut(BaseModel):
    status: DmStatus
    route: Route | None
    provider: Provider | None
    attempt: int
    link: str | None
    tracked_link: str | None = Field(
        default=None,
        description="`link` through AutoDM (/l/<ref>): counts each open, then redirects there",
    )
    link_clicks: int = Field(default=0, description="Opens of `tracked_link` so far")
    reason: str | None
    reason_code: str | None = Field(
        default=None,
        description="A reason a client may act on, by name: `opted_out` (the person said stop "
        "or is marked do not message), `creator_replied` (the creator is writing to them)",
    )
    error: DmError | None
    provider_message_id: str | None
    sent_at: datetime | None
    read_at: datetime | None
    log: list[DmLogOut]


class LeadOut(BaseModel):
    id: UUID
    creator_id: UUID
    name: str
    phone: str | None
    instagram_username: str | None
    whatsapp_opt_in: bool
    whatsapp_user_id: str | None = Field(
        default=None,
        description="The WhatsApp business-scoped user id (BSUID) that wrote naming this lead; "
        "a username user may show no phone number",
    )
    created_at: datetime
    source: LeadSource = Field(description="form | api | comment | ig_referral | import")
    source_post: str | None = Field(description="The commented post's media id (comments)")
    dm: DmOut


class DmSendIn(LeadIn):
    """A lead and the request to DM them, in one call."""

    provider: Provider | None = Field(
        default=None,
        description="Keep to this provider's routes; by default the routing rules choose",
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=REACHABLE
        | {
            "examples": [
                {
                    "name": "Jane",
                    "message": "I'd love the guide",
                    "instagram": {"username": "jane.doe"},
                    "phone": "+44 20 7946 0958",
                    "provider": "whatsapp",
                }
            ]
        },
    )


class DmErrorOut(BaseModel):
    code: int | None = Field(description="The provider's error code, if it gave one")
    subcode: int | None
    message: str | None = Field(description="The provider's own message")


class RetryOut(BaseModel):
    allowed: bool = Field(description="Whether POST /api/dm/retry/{leadId} would be accepted")
    detail: str = Field(description="Why, in plain words")


class WaitingOut(BaseModel):
    reason: str = Field(
        description=(
            "Why the DM waits: paused, rate_limited, paced, throttled, circuit_open, transient"
        )
    )
    detail: str = Field(description="The same, in plain words")
    not_before: datetime | None = Field(description="When it is looked at again")


class DmStatusOut(BaseModel):
    lead_id: UUID
    creator_id: UUID
    status: DmStatus
    route: Route | None
    provider: Provider | None
    attempt: int = Field(description="The current attempt; a retry starts the next one")
    provider_calls: int = Field(description="How many times a provider was asked to send")
    link: str | None = Field(description="The ig.me or wa.me link, when that is the route")
    tracked_link: str | None = Field(
        default=None,
        description="`link` through AutoDM (/l/<ref>): counts each open, then redirects there",
    )
    reason: str | None = Field(description="Why the DM is where it is, in plain words")
    reason_code: str | None = Field(
        default=None,
        description="A reason a client may act on, by name: `opted_out` (the person said stop "
        "or is marked do not message), `creator_replied` (the creator is writing to them)",
    )
    error: DmErrorOut | None
    sent_at: datetime | None
    read_at: datetime | None
    retry: RetryOut
    waiting: WaitingOut | None = Field(
        default=None, description="Set while the DM is deferred: why it waits, until when"
    )
    log: list[DmLogOut]


class LeadSummary(BaseModel):
    id: UUID
    creator_id: UUID
    name: str
    created_at: datetime
    source: LeadSource
    dm_status: DmStatus
    dm_provider: Provider | None
    dm_route: Route | None
    dm_attempt: int


class LeadPage(BaseModel):
    items: list[LeadSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: done")


class ReasonCount(BaseModel):
    reason: str
    count: int


class DlqOut(BaseModel):
    size: int | None = Field(description="Records parked in the dead-letter topic; null: unknown")


class BreakerOut(BaseModel):
    name: str
    state: str


class AccountOut(BaseModel):
    account_id: UUID
    creator_id: UUID
    provider: str
    username: str | None
    status: str
    updated_at: datetime


class OverviewOut(BaseModel):
    counts_by_status: dict[str, int]
    counts_by_provider: dict[str, int] = Field(description="`none`: no route was found")
    top_failure_reasons: list[ReasonCount]
    dlq: DlqOut
    breakers: list[BreakerOut] = Field(
        description="Circuit breakers of the senders that are not closed (shared.delivery.circuit)"
    )
    accounts_needing_reconnection: list[AccountOut]


MAX_PACE_PER_H = 3600
# Not blank (holds a character that Python's str.strip() keeps) and without NUL, which
# PostgreSQL's text refuses. Spelled out, since `\s` differs between Python, pydantic's Rust
# engine and a client's JavaScript.
_BLANKS = r"\x00\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NOT_BLANK = rf"^[^\x00]*[^{_BLANKS}][^\x00]*$"


def json_number(value: object) -> object:
    # JSON Schema's integer is any number without a fraction (3.0 included), never a
    # boolean or a string of digits, which pydantic alone would take.
    if isinstance(value, bool | str):
        raise ValueError("a JSON number")
    return value


# The bounds on the type, before the validator: after it (or on the field) they would reach
# the document as pydantic's own `ge`/`le` rather than JSON Schema's minimum/maximum.
Pace = Annotated[int, Field(ge=1, le=MAX_PACE_PER_H), BeforeValidator(json_number)]
Keyword = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_KEYWORD_CHARS, pattern=NOT_BLANK)
]


def _known_placeholders(value: str) -> str:
    problem = placeholder_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


Template = Annotated[
    str,
    StringConstraints(min_length=1, max_length=1000, pattern=NOT_BLANK),
    AfterValidator(str.strip),
    AfterValidator(_meta_text),
    AfterValidator(_known_placeholders),
]


# `keywords` needs a keyword: said in the document as well as checked below.
KEYWORDS_NEED_ONE: dict[str, Any] = {
    "anyOf": [
        {"properties": {"comment_trigger": {"enum": [CommentTrigger.OFF, CommentTrigger.ANY]}}},
        {"required": ["comment_keywords"], "properties": {"comment_keywords": {"minItems": 1}}},
    ]
}


class CreatorSettingsIn(StrictModel):
    """A creator's AutoDM settings, as the settings page edits them (PUT replaces all)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=KEYWORDS_NEED_ONE)

    dm_template: Template = Field(
        description="The DM's text; `{name}` and `{message}` are the lead's (any other "
        "`{placeholder}` is refused). <= 1,000 bytes; a DM longer than its platform allows once "
        "filled in ends `failed` with the reason, never cut",
        examples=["Hi {name}, here is the guide!"],
    )
    route_order: RouteOrder = RouteOrder.INSTAGRAM_FIRST
    dm_pace_per_h: Pace | None = Field(
        default=None,
        description="At most this many DMs per hour from each account, evenly spaced; "
        "null: as fast as the operator's limits allow",
    )
    paused: StrictBool = Field(
        default=False, description="The creator's pause switch (all accounts)"
    )
    comment_trigger: CommentTrigger = Field(
        default=CommentTrigger.OFF, description="Comment to DM: which comments become leads"
    )
    comment_keywords: list[Keyword] = Field(
        default_factory=list,
        max_length=MAX_KEYWORDS,
        description="Whole words or phrases, any case; required with `keywords`",
        validate_default=True,
    )
    source_templates: dict[LeadSource, Template] = Field(
        default_factory=dict,
        description="A message per lead source (`form`, `api`, `comment`, `ig_referral`, "
        "`import`), checked like `dm_template`; a source without one gets `dm_template`",
        examples=[{"comment": "Hi {name}, here is the guide you asked for under my post!"}],
    )

    @field_validator("comment_keywords")
    @classmethod
    def _keywords(cls, words: list[str], info: ValidationInfo) -> list[str]:
        words = normalize_keywords(words)
        if info.data.get("comment_trigger") == CommentTrigger.KEYWORDS and not words:
            raise ValueError("comment_trigger `keywords` needs at least one keyword")
        return words


class CreatorSettingsOut(CreatorSettingsIn):
    creator_id: UUID
    paused_by_operator: str | None = Field(
        description="Why an admin paused all sending or one of the creator's accounts; "
        "the creator's switch does not lift it"
    )
