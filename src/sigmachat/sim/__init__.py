"""The simulator: an OpenAI-compatible Responses API over the offline analyst, with fault scenarios."""

from sigmachat.sim.app import SimApp, SimParams, SimulatedDisconnect, create_sim_app, sim_http_client, sim_transport
from sigmachat.sim.scenarios import SCENARIOS, Scenario, ScenarioInjector

__all__ = [
    "SCENARIOS",
    "Scenario",
    "ScenarioInjector",
    "SimApp",
    "SimParams",
    "SimulatedDisconnect",
    "create_sim_app",
    "sim_http_client",
    "sim_transport",
]
