"""Fault proxies: real servers placed between a client and a real simulator to break the wire.

``cexproxy.CexFaultProxy`` sits between the hedge client and the exchange simulator (``sims.cex``).
"""

from sims.faults.cexproxy import CexFaultProxy, FaultKind, ProxyFault

__all__ = ["CexFaultProxy", "FaultKind", "ProxyFault"]
