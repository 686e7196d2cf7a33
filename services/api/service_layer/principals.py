"""Who acts, as the service layer sees it: a creator (own leads only), an admin, or a
service acting for any creator. The HTTP layer makes one from a verified token
(services/api/http/auth.py); the service layer only asks what it may do."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID


class Role(StrEnum):
    CREATOR = "creator"
    ADMIN = "admin"
    SERVICE = "service"


@dataclass(frozen=True)
class Principal:
    subject: str
    role: Role
    creator_id: UUID | None = None

    @property
    def sees_all_creators(self) -> bool:
        return self.role in (Role.ADMIN, Role.SERVICE)

    def may_access(self, creator_id: UUID) -> bool:
        return self.sees_all_creators or self.creator_id == creator_id
