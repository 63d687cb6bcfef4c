"""The business the agent speaks for, from ``prompts/business.yaml``."""

from __future__ import annotations

from dataclasses import dataclass

import prompts


@dataclass(frozen=True, slots=True)
class BusinessProfile:
    company_name: str
    agent_name: str
    company_pitch: str
    product_summary: str
    meeting_title: str
    meeting_description: str
    meeting_minutes: int


def load_business_profile(name: str = "business.yaml") -> BusinessProfile:
    raw = prompts.load_yaml(name)
    meeting = raw["meeting"]
    return BusinessProfile(
        company_name=raw["company_name"],
        agent_name=raw["agent_name"],
        company_pitch=raw["company_pitch"],
        product_summary=raw["product_summary"],
        meeting_title=meeting["title"],
        meeting_description=meeting["description"],
        meeting_minutes=int(meeting["minutes"]),
    )
