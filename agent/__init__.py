"""mm-agent: a market-making agent for an on-chain perpetual-futures order book."""

from agent.errors import AgentError

__all__ = ["AgentError", "__version__"]
__version__ = "0.1.0"
