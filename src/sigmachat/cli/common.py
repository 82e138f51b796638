"""What every ``sigmachat`` sub-command shares: quiet logging and a service container."""

from __future__ import annotations

from sigmachat.services import Services


def cli_services() -> Services:
    """Services for a command-line run: settings from the environment, warnings-only logs."""
    from sigmachat.logging import configure_logging
    from sigmachat.settings import get_settings

    settings = get_settings()
    configure_logging("WARNING", json=settings.log_json)
    return Services.build(settings)
