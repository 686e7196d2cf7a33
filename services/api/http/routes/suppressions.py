"""JSON API of opt-out and human takeover (service layer: suppression_list.py).

- `GET/POST /api/suppressions`, `DELETE /api/suppressions/{id}`, `GET
  /api/suppressions.csv`: a creator's suppression list, with who added whom, when, why;
- `GET/PUT /api/opt-out/settings`: the creator's extra stop words and how long a
  conversation stays in their hands after they write themselves;
- `GET /api/leads/{lead_id}/takeover`, `POST /api/leads/{lead_id}/hand-back`;
- `GET /api/admin/suppressions`: counts per creator and source, for an admin.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID, uuid4

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from services.api.http.deps import AUTH_ERRORS, AdminUser, CreatorParam, CurrentUser, Deps
from services.api.http.problems import ApiProblem, problem_responses
from services.api.http.schemas import NumericId, Phone, Username
from services.api.service_layer import suppression_list as service
from services.api.service_layer.dm_requests import load_lead, owned_by
from services.api.service_layer.leads import UnknownCreator
from shared.contracts.events import utcnow
from shared.db.models import SuppressedContact
from shared.delivery.suppression import SOURCES

router = APIRouter(prefix="/api", responses=problem_responses(400, *AUTH_ERRORS, 413))

MAX_STOP_WORDS = 50
WHO = ("lead_id", "instagram_username", "igsid", "phone")
StopWord = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[^\W_]")]
Note = Annotated[str, StringConstraints(max_length=500)]


class SuppressionIn(BaseModel):
    """Whom to mark "do not message": one of the creator's leads, or identities typed in."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {"required": [name], "properties": {name: {"type": "string"}}} for name in WHO
            ]
        },
    )

    lead_id: UUID | None = Field(
        default=None, description="A lead of the creator: its handle, IGSID and phone"
    )
    instagram_username: Username | None = None
    igsid: NumericId | None = Field(default=None, description="Instagram-scoped id")
    phone: Phone | None = Field(default=None, description="A WhatsApp number, with country code")
    note: Note | None = Field(default=None, description="Why (kept with the entry)")

    @model_validator(mode="after")
    def _names_someone(self) -> SuppressionIn:
        if all(getattr(self, name) is None for name in WHO):
            raise ValueError("name the person: lead_id, instagram_username, igsid or phone")
        return self


class SuppressionOut(BaseModel):
    id: UUID
    creator_id: UUID
    instagram_username: str | None
    igsid: str | None
    whatsapp: str | None = Field(description="E.164, e.g. +442079460958")
    source: str = Field(description="One of " + ", ".join(f"`{s}`" for s in SOURCES))
    note: str | None = Field(description="Why: the stop word they wrote, the creator's note")
    created_by: str = Field(description="Who added it: the person, WhatsApp, or the user")
    created_at: datetime


class SuppressionPage(BaseModel):
    items: list[SuppressionOut]


class OptOutSettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stop_words: list[StopWord] = Field(
        default_factory=list,
        max_length=MAX_STOP_WORDS,
        description="Whole messages that also mean stop, besides STOP, UNSUBSCRIBE, STOP ALL, "
        "CANCEL, END, QUIT and their usual non-English forms (any case, accents ignored)",
    )
    takeover_hours: int = Field(
        default=24,
        ge=1,
        le=720,
        description="How long AutoDM stays quiet in a conversation after the creator writes",
    )


class OptOutSettingsOut(OptOutSettingsIn):
    """The creator's opt-out settings as stored (the same fields as what they send)."""


class TakeoverOut(BaseModel):
    lead_id: UUID
    in_creator_hands: bool = Field(description="AutoDM sends nothing to this lead until `until`")
    since: datetime | None
    until: datetime | None


class SuppressionCount(BaseModel):
    creator_id: UUID
    source: str
    count: int


class SuppressionCounts(BaseModel):
    items: list[SuppressionCount]
    total: int


def _out(row: SuppressedContact) -> SuppressionOut:
    return SuppressionOut(
        id=row.id,
        creator_id=row.creator_id,
        instagram_username=row.handle,
        igsid=row.igsid,
        whatsapp=f"+{row.whatsapp}" if row.whatsapp else None,
        source=row.source,
        note=row.note,
        created_by=row.created_by,
        created_at=row.created_at,
    )


@router.get(
    "/suppressions",
    response_model=SuppressionPage,
    tags=["opt-out"],
    summary="Who gets nothing from AutoDM (opted out or marked), newest first",
    responses=problem_responses(403, 422),
)
async def get_suppressions(
    user: CurrentUser, deps: Deps, creator_id: CreatorParam = None
) -> SuppressionPage:
    owner = owned_by(user, creator_id)
    async with deps.sessions() as session:
        rows = await service.list_suppressions(session, owner)
    return SuppressionPage(items=[_out(row) for row in rows])


@router.get(
    "/suppressions.csv",
    tags=["opt-out"],
    summary="The suppression list as CSV",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}, **problem_responses(403, 422)},
)
async def get_suppressions_csv(
    user: CurrentUser, deps: Deps, creator_id: CreatorParam = None
) -> Response:
    owner = owned_by(user, creator_id)
    async with deps.sessions() as session:
        rows = await service.list_suppressions(session, owner)
    headers = {"Content-Disposition": 'attachment; filename="suppressions.csv"'}
    return Response(service.as_csv(rows), media_type="text/csv", headers=headers)


@router.post(
    "/suppressions",
    status_code=status.HTTP_201_CREATED,
    response_model=SuppressionOut,
    tags=["opt-out"],
    summary='Mark a person "do not message": their pending DMs end `skipped` (`opted_out`)',
    description="Adding someone already on the list answers their entry (with what was "
    "missing added).",
    responses=problem_responses(403, 404, 422),
)
async def post_suppression(
    body: SuppressionIn, user: CurrentUser, deps: Deps, creator_id: CreatorParam = None
) -> SuppressionOut:
    owner = owned_by(user, creator_id)
    new = service.NewSuppression(**body.model_dump())
    try:
        async with deps.uow() as work:
            session = work.session
            row = await service.add_suppression(session, owner, new, user.subject, str(uuid4()))
            out = _out(row)
    except service.LeadNotFound as exc:
        raise ApiProblem(404, "not-found", f"lead {exc} not found") from exc
    except UnknownCreator as exc:
        raise ApiProblem(404, "not-found", f"creator {exc} not found") from exc
    return out


@router.delete(
    "/suppressions/{entry_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    tags=["opt-out"],
    summary="Lift a suppression: new DMs to the person go out again",
    responses=problem_responses(403, 404, 422),
)
async def delete_suppression(
    entry_id: UUID, user: CurrentUser, deps: Deps, creator_id: CreatorParam = None
) -> Response:
    owner = owned_by(user, creator_id)
    async with deps.uow() as work:
        session = work.session
        if not await service.remove_suppression(session, owner, entry_id):
            raise ApiProblem(404, "not-found", f"suppression {entry_id} not found")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/opt-out/settings",
    response_model=OptOutSettingsOut,
    tags=["opt-out"],
    summary="The creator's extra stop words and takeover period",
    responses=problem_responses(403, 404, 422),
)
async def get_opt_out_settings(
    user: CurrentUser, deps: Deps, creator_id: CreatorParam = None
) -> OptOutSettingsOut:
    owner = owned_by(user, creator_id)
    async with deps.sessions() as session:
        found = await _settings(service.read_opt_out_settings(session, owner))
    return OptOutSettingsOut(stop_words=found.stop_words, takeover_hours=found.takeover_hours)


@router.put(
    "/opt-out/settings",
    response_model=OptOutSettingsOut,
    tags=["opt-out"],
    summary="Replace the creator's extra stop words and takeover period",
    responses=problem_responses(403, 404, 422),
)
async def put_opt_out_settings(
    body: OptOutSettingsIn, user: CurrentUser, deps: Deps, creator_id: CreatorParam = None
) -> OptOutSettingsOut:
    owner = owned_by(user, creator_id)
    wanted = service.OptOutSettings(list(body.stop_words), body.takeover_hours)
    async with deps.uow() as work:
        session = work.session
        saved = await _settings(service.save_opt_out_settings(session, owner, wanted))
    return OptOutSettingsOut(stop_words=saved.stop_words, takeover_hours=saved.takeover_hours)


async def _settings(call: Any) -> service.OptOutSettings:
    try:
        found: service.OptOutSettings = await call
    except UnknownCreator as exc:
        raise ApiProblem(404, "not-found", f"creator {exc} not found") from exc
    return found


@router.get(
    "/leads/{lead_id}/takeover",
    response_model=TakeoverOut,
    tags=["leads"],
    summary="Whether the creator is writing to this lead themselves (AutoDM stays quiet)",
    responses=problem_responses(404, 422),
)
async def get_takeover(lead_id: UUID, user: CurrentUser, deps: Deps) -> TakeoverOut:
    async with deps.sessions() as session:
        lead = await load_lead(session, user, lead_id)
        row = await service.lead_takeover(session, lead, utcnow())
    return TakeoverOut(
        lead_id=lead_id,
        in_creator_hands=row is not None,
        since=row.started_at if row else None,
        until=row.until if row else None,
    )


@router.post(
    "/leads/{lead_id}/hand-back",
    response_model=TakeoverOut,
    tags=["leads"],
    summary="Hand the conversation back to AutoDM (a retry then sends the skipped DM)",
    responses=problem_responses(404, 422),
)
async def post_hand_back(lead_id: UUID, user: CurrentUser, deps: Deps) -> TakeoverOut:
    async with deps.uow() as work:
        session = work.session
        lead = await load_lead(session, user, lead_id)
        await service.hand_back(session, lead, user.subject, utcnow())
    return TakeoverOut(lead_id=lead_id, in_creator_hands=False, since=None, until=None)


@router.get(
    "/admin/suppressions",
    response_model=SuppressionCounts,
    tags=["admin"],
    summary="How many people are suppressed, per creator and source",
    responses=problem_responses(403),
)
async def get_suppression_counts(_: AdminUser, deps: Deps) -> SuppressionCounts:
    async with deps.sessions() as session:
        rows = await service.counts(session)
    items = [SuppressionCount(creator_id=c, source=s, count=n) for c, s, n in rows]
    return SuppressionCounts(items=items, total=sum(item.count for item in items))
