"""The `make run` demo: a creator with a connected sandbox Instagram account, one lead per
route, and a live table of where each DM stands. The e2e tests seed through here too."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID, uuid4

import httpx
from sqlalchemy.dialects.postgresql import insert

from shared.contracts.events import utcnow
from shared.db.models import Creator, SocialAccount
from shared.db.session import make_engine, make_sessionmaker
from shared.platform.crypto import TokenCipher
from shared.platform.settings import Settings

S = TypeVar("S", bound=Settings)

TERMINAL = {
    "sent",
    "delivered",
    "read",
    "replied",
    "awaiting_contact",
    "link_ready",
    "skipped",
    "failed",
    "unknown",
}


@dataclass(frozen=True)
class DemoCreator:
    creator_id: UUID
    account_id: UUID
    ig_user_id: str
    username: str
    slug: str = ""


def settings_from(env: dict[str, str], cls: type[S] = Settings) -> S:  # type: ignore[assignment]
    """Settings of class `cls` as a process started with `env` would read them."""
    keys = {k: v for k, v in env.items() if k.startswith("AUTODM_")}
    old = {k: os.environ.get(k) for k in keys}
    os.environ.update(keys)
    try:
        return cls()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


async def seed_creator(
    settings: Settings,
    sandbox: httpx.AsyncClient,
    username: str,
    comment_keywords: list[str] | None = None,
) -> DemoCreator:
    """A creator whose Instagram account is connected (as OAuth would leave it); with
    `comment_keywords`, Comment to DM is on for them."""
    account = (
        await sandbox.post("/_sandbox/instagram/accounts", json={"username": username})
    ).json()
    creator_id, account_id = uuid4(), uuid4()
    slug = f"{username}-{creator_id.hex[:6]}"
    engine = make_engine(settings)
    try:
        async with make_sessionmaker(engine).begin() as session:
            session.add(
                Creator(
                    id=creator_id,
                    name=f"Creator {username}",
                    slug=slug,
                    dm_template="Hi {name}! Thanks for your interest, here is the guide.",
                    comment_trigger="keywords" if comment_keywords else "off",
                    comment_keywords=comment_keywords or [],
                )
            )
            await session.flush()
            await session.execute(
                insert(SocialAccount).values(
                    id=account_id,
                    creator_id=creator_id,
                    provider="instagram",
                    external_id=str(account["ig_user_id"]),
                    username=username,
                    status="connected",
                    access_token_encrypted=TokenCipher.from_settings(settings).encrypt(
                        account["access_token"]
                    ),
                    token_refreshed_at=utcnow(),
                )
            )
    finally:
        await engine.dispose()
    return DemoCreator(creator_id, account_id, str(account["ig_user_id"]), username, slug)


async def user_messages(sandbox: httpx.AsyncClient, creator: DemoCreator, username: str) -> str:
    """A person writes to the creator on Instagram: returns their IGSID (window now open)."""
    body = {
        "account_id": creator.ig_user_id,
        "username": username,
        "text": "hi! is the guide free?",
    }
    response = await sandbox.post("/_sandbox/instagram/users/message", json=body)
    response.raise_for_status()
    return str(response.json()["igsid"])


async def user_comments(
    sandbox: httpx.AsyncClient, creator: DemoCreator, username: str
) -> dict[str, Any]:
    body = {"account_id": creator.ig_user_id, "username": username, "text": "guide please"}
    response = await sandbox.post("/_sandbox/instagram/users/comment", json=body)
    response.raise_for_status()
    return dict(response.json())


async def comment_lead(
    api: httpx.AsyncClient, creator: DemoCreator, username: str, timeout_s: float = 15
) -> str | None:
    """The lead Comment to DM made of the user's comment (no form, no API call)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        page = await api.get("/api/leads", params={"creator_id": str(creator.creator_id)})
        found = [lead for lead in page.json()["items"] if lead["name"] == username]
        if found:
            return str(found[0]["id"])
        await asyncio.sleep(0.3)
    return None


async def demo_leads(sandbox: httpx.AsyncClient, creator: DemoCreator) -> dict[str, dict[str, Any]]:
    now = utcnow().isoformat()
    warm = await user_messages(sandbox, creator, "warm.lead")
    cid = str(creator.creator_id)
    return {
        "DM in an open window": {
            "creator_id": cid,
            "name": "Wendy",
            "instagram": {"username": "warm.lead", "igsid": warm, "last_inbound_at": now},
        },
        "cold Instagram lead": {
            "creator_id": cid,
            "name": "Cora",
            "instagram": {"username": "cold.lead"},
        },
        "opted in on WhatsApp": {
            "creator_id": cid,
            "name": "Olivia",
            "phone": "+44 20 7946 0959",
            "whatsapp_opt_in": True,
        },
        "phone only": {"creator_id": cid, "name": "Phil", "phone": "+44 20 7946 0958"},
        "unparseable phone": {"creator_id": cid, "name": "Una", "phone": "+999 123"},
    }


async def connect_whatsapp(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient, creator: DemoCreator
) -> None:
    """A sandbox WhatsApp number and an approved template, connected through the API."""
    number = (
        await sandbox.post("/_sandbox/whatsapp/numbers", json={"display_phone_number": "+1555"})
    ).json()
    template = {"name": "guide_offer", "language": "en_US", "body_params": 1}
    await sandbox.post("/_sandbox/whatsapp/templates", json=template)
    params = {"creator_id": str(creator.creator_id)}
    body = {k: number[k] for k in ("phone_number_id", "access_token", "display_phone_number")}
    connected = await api.post("/api/whatsapp/numbers", params=params, json=body)
    connected.raise_for_status()
    mapping = {"name": "guide_offer", "language": "en_US", "parameters": ["first_name"]}
    account = connected.json()["account_id"]
    templates = f"/api/whatsapp/numbers/{account}/templates"
    (await api.post(templates, params=params, json=mapping)).raise_for_status()


async def wait_settled(
    api: httpx.AsyncClient, lead_ids: dict[str, str], timeout_s: float = 30
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout_s
    leads: dict[str, Any] = {}
    while asyncio.get_running_loop().time() < deadline:
        leads = {label: (await api.get(f"/api/leads/{i}")).json() for label, i in lead_ids.items()}
        if all(lead["dm"]["status"] in TERMINAL for lead in leads.values()):
            break
        await asyncio.sleep(0.3)
    return leads


def print_table(leads: dict[str, Any]) -> None:
    print(f"\n{'lead':<28} {'route':<18} {'status':<17} detail")
    for label, lead in leads.items():
        dm = lead["dm"]
        detail = dm["provider_message_id"] or dm["link"] or dm["reason"] or ""
        print(f"{label:<28} {dm['route'] or '-':<18} {dm['status']:<17} {detail}")
    print()


def service_token(issuer_port: int) -> str:
    """A token from the local issuer for a service caller (it may name any creator)."""
    response = httpx.post(
        f"http://127.0.0.1:{issuer_port}/token",
        json={"sub": "svc-demo", "role": "service", "audience": "autodm-services"},
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


async def run_demo(env: dict[str, str], ports: Any) -> None:
    settings = settings_from(env)
    async with (
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports.sandbox}") as sandbox,
        httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{ports.api}",
            headers={"Authorization": f"Bearer {service_token(ports.local_issuer)}"},
        ) as api,
    ):
        # Comment to DM: "guide" in a comment on the creator's post makes a lead.
        username = f"demo.creator{uuid4().hex[:4]}"
        creator = await seed_creator(settings, sandbox, username, comment_keywords=["guide"])
        await connect_whatsapp(api, sandbox, creator)
        lead_ids = {}
        await user_comments(sandbox, creator, "commenter")
        for label, body in (await demo_leads(sandbox, creator)).items():
            response = await api.post("/api/leads", json=body)
            if response.status_code != 201:
                print(f"{label}: rejected {response.status_code} {response.text}")
                continue
            lead_ids[label] = response.json()["id"]
        if commented := await comment_lead(api, creator, "commenter"):
            lead_ids['Comment to DM ("guide…")'] = commented
        print_table(await wait_settled(api, lead_ids))
        accepted = (
            await sandbox.get(
                "/_sandbox/instagram/messages", params={"account_id": creator.ig_user_id}
            )
        ).json()
        count = len(accepted["data"])
        print(f"The sandbox (playing Instagram) accepted {count} message(s).")
        print_web_pages(ports, creator)


def print_web_pages(ports: Any, creator: DemoCreator) -> None:
    web = f"http://127.0.0.1:{ports.api}"
    print(f"\nWeb pages (docs/WEB.md): {web}/  -> Sign in on the local issuer's page:")
    print(f"  creator: role 'creator', creator id {creator.creator_id}")
    print("  admin:   role 'admin' (no creator id)")
    print(f"The demo creator's public lead form: {web}/c/{creator.slug}/ (embed: .../embed)")
