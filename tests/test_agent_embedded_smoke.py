from __future__ import annotations

import pytest

from agent.sales_agent import load_business_profile
from agent.state import Services
from tests.agent_harness import new_call, running_agent
from tests.scripted_llm import call, say
from tools.embedded import EmbeddedCalendar, EmbeddedCrm, EmbeddedStore
from tools.qualification import load_criteria
from tools.slots import BusinessHours

pytestmark = pytest.mark.integration


async def test_smoke(tmp_path, clock):
    store = EmbeddedStore(tmp_path / "e.sqlite3", now=clock)
    services = Services(crm=EmbeddedCrm(store), calendar=EmbeddedCalendar(store),
        hours=BusinessHours(), criteria=load_criteria(), business=load_business_profile(), now=clock)
    state = new_call(services)
    async with running_agent(state, [call("save_contact_details", {"first_name": "Jane"}), say("Nice to meet you Jane.")]) as (session, scripted, hangups):
        result = await session.run(user_input="Hi, I'm Jane")
        print(result.events)
        print([ (i.type, getattr(i,'role',None), getattr(i,'text_content',None)) for i in session.history.items])
