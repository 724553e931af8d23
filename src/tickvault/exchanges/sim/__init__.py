"""A local simulator that speaks the Binance, Coinbase and Kraken public market-data protocols.

See docs/simulator.md. Public surface: :class:`Simulator`, :class:`SimConfig`, :class:`Fault`.
"""

from tickvault.exchanges.sim.faults import FAULT_KINDS, Fault
from tickvault.exchanges.sim.simulator import Simulator
from tickvault.exchanges.sim.spec import SimConfig

__all__ = ["FAULT_KINDS", "Fault", "SimConfig", "Simulator"]
