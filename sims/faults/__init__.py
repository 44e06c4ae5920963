"""Fault proxies: real servers placed between a client and a real service to break the wire.

``cexproxy.CexFaultProxy`` sits between the hedge client and the exchange simulator (``sims.cex``);
``rpcproxy.RpcProxy`` between the agent and its node (delays, drops, blackholes).
"""

from sims.faults.cexproxy import CexFaultProxy, FaultKind, ProxyFault

__all__ = ["CexFaultProxy", "FaultKind", "ProxyFault"]
