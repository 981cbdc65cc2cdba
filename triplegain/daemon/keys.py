"""Which configured LLM providers can be used here: a provider whose API key is not set gives way to offline.

The daemon runs without keys (a paper-trading test drive, CI): each agent review and the resolver chain keep the
providers whose key variable is set; an agent whose provider has no key uses the offline provider, and a resolver
chain left empty becomes ``[offline]``. The daemon says so once at start (``KeylessFallback.message``).

Re-running a run's answers (``--answers-from``), the providers that run asked are kept whatever the keys: their
answers are served without a call, and a provider without its key is never asked.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from triplegain.config import Settings

OFFLINE = "offline"


@dataclass(frozen=True)
class KeylessFallback:
    """The settings to run with, and the providers replaced for want of a key (name → key variable)."""

    settings: Settings
    replaced: Mapping[str, str]

    @property
    def message(self) -> str | None:
        """One line for the start of a run, or None when every provider has its key."""
        if not self.replaced:
            return None
        missing = ", ".join(f"{name} ({variable})" for name, variable in sorted(self.replaced.items()))
        return f"no API key for {missing}: using the offline provider instead"


def offline_where_keys_missing(
    settings: Settings, environ: Mapping[str, str], keep: Collection[str] = ()
) -> KeylessFallback:
    """``settings`` with every provider whose key variable is unset or empty replaced by the offline provider,
    except those in ``keep``."""
    replaced: dict[str, str] = {}

    def usable(name: str | None) -> bool:
        if name is None or name in keep:
            return True
        variable = settings.llm.provider(name).api_key_env
        if variable is None or environ.get(variable, "").strip():
            return True
        replaced[name] = variable
        return False

    agents = settings.agents
    agent_updates = {}
    for field in ("technical", "regime", "sentiment"):
        agent = getattr(agents, field)
        if not usable(agent.llm_provider):
            agent_updates[field] = agent.model_copy(update={"llm_provider": OFFLINE})
    chain = [name for name in settings.coordinator.resolver.providers if usable(name)]
    resolver = settings.coordinator.resolver.model_copy(update={"providers": chain or [OFFLINE]})
    coordinator = settings.coordinator.model_copy(update={"resolver": resolver})
    updated = settings.model_copy(
        update={"agents": agents.model_copy(update=agent_updates), "coordinator": coordinator}
    )
    return KeylessFallback(settings=updated, replaced=replaced)
