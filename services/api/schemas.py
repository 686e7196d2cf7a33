"""The API's request and response bodies (what the frontend and other services see)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from shared.lifecycle import DmStatus, Provider, Route

Username = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._]{1,30}$")]
NumericId = Annotated[str, StringConstraints(pattern=r"^\d{1,32}$")]
Phone = Annotated[str, StringConstraints(pattern=r"^\+?[0-9 ()./-]{6,32}$")]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InstagramIn(StrictModel):
    username: Username | None = Field(default=None, examples=["jane.doe"])
    igsid: NumericId | None = Field(
        default=None, description="Instagram-scoped id on the creator's account, if known"
    )
    last_inbound_at: datetime | None = Field(
        default=None, description="When this person last messaged the account (opens 24 h)"
    )
    comment_id: NumericId | None = None
    commented_at: datetime | None = None

    @model_validator(mode="after")
    def _pairs(self) -> InstagramIn:
        if self.comment_id and not self.commented_at:
            raise ValueError("commented_at is required with comment_id")
        if self.last_inbound_at and not self.igsid:
            raise ValueError("last_inbound_at needs the igsid it belongs to")
        return self


class LeadIn(StrictModel):
    creator_id: UUID
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    message: Annotated[str, StringConstraints(max_length=1000)] = ""
    phone: Phone | None = Field(default=None, examples=["+44 20 7946 0958"])
    whatsapp_opt_in: bool = False
    instagram: InstagramIn | None = None

    @model_validator(mode="after")
    def _reachable(self) -> LeadIn:
        ig = self.instagram
        if not self.phone and not (ig and (ig.username or ig.igsid or ig.comment_id)):
            raise ValueError("a lead needs an Instagram handle or id, or a phone number")
        return self

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
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
    reason: str | None
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
    created_at: datetime
    dm: DmOut
