"""The router's decoding of `leads.created`: both versions of `lead.created` (v1 from the
records still in the topic or an older API process, v2 with the lead's source), so a
rolling upgrade loses no lead. The router reads the source from the lead's row either way."""

from __future__ import annotations

from typing import Any

from aiokafka import ConsumerRecord

from shared.contracts.events import LEAD_CREATED_VERSIONS, LeadCreated, LeadCreatedV2
from shared.messaging.batches import BatchWork

AnyLeadCreated = LeadCreated | LeadCreatedV2


class LeadCreatedWork(BatchWork[AnyLeadCreated]):
    """shared.messaging.batches.BatchWork whose records are either version of the contract."""

    def _parse(self, record: ConsumerRecord[Any, Any]) -> AnyLeadCreated:
        return LEAD_CREATED_VERSIONS.validate_json(record.value or b"")
