"""The routing rules' windows and cool-downs, from settings (both API processes use them)."""

from __future__ import annotations

from datetime import timedelta

from services.api.settings import ApiSettings
from shared.contracts.route_choice import RoutingRules


def routing_rules(settings: ApiSettings) -> RoutingRules:
    return RoutingRules(
        dm_window=timedelta(hours=settings.instagram_dm_window_hours),
        private_reply_window=timedelta(days=settings.private_reply_window_days),
        whatsapp_window=timedelta(hours=settings.whatsapp_window_hours),
        form_recipient_cooldown=timedelta(hours=settings.lead_form_recipient_cooldown_hours),
    )
