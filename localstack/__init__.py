"""A real local LiveKit stack on loopback: start/stop it, and provision its SIP routing."""

from localstack.ports import StackPorts
from localstack.processes import StackStartError
from localstack.stack import (
    DEV_API_KEY,
    DEV_API_SECRET,
    LocalStack,
    StackNotInstalled,
    find_binary,
)

__all__ = [
    "DEV_API_KEY",
    "DEV_API_SECRET",
    "LocalStack",
    "StackNotInstalled",
    "StackPorts",
    "StackStartError",
    "find_binary",
]
