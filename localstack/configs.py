"""Renders livekit.yaml and sip.yaml (repo root) with the ports of one stack instance.

The repo-root files stay the single source of every other setting; only addresses change.
API keys are never written to these files: the processes get them from the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from localstack.ports import LOOPBACK, StackPorts

REPO_ROOT = Path(__file__).resolve().parent.parent
LIVEKIT_CONFIG = REPO_ROOT / "livekit.yaml"
SIP_CONFIG = REPO_ROOT / "sip.yaml"


def load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a YAML mapping")
    return data


def render_livekit_config(base: dict[str, Any], ports: StackPorts) -> dict[str, Any]:
    conf = dict(base)
    conf["port"] = ports.http
    conf["bind_addresses"] = [LOOPBACK]
    conf["redis"] = {**base.get("redis", {}), "address": f"{LOOPBACK}:{ports.redis}"}
    conf["rtc"] = {
        **base.get("rtc", {}),
        "udp_port": ports.rtc_udp,
        # Not the media port: libwebrtc takes every packet from a STUN server's address for a
        # STUN reply, so pointing STUN at the SFU would drop all of its media and ICE checks.
        "stun_servers": [f"{LOOPBACK}:{ports.stun}"],
    }
    conf.pop("keys", None)
    return conf


def render_sip_config(base: dict[str, Any], ports: StackPorts) -> dict[str, Any]:
    conf = dict(base)
    conf["ws_url"] = f"ws://{LOOPBACK}:{ports.http}"
    conf["redis"] = {**base.get("redis", {}), "address": f"{LOOPBACK}:{ports.redis}"}
    conf["listen_ip"] = LOOPBACK
    conf["sip_port"] = ports.sip
    conf["rtp_port"] = f"{ports.rtp_start}-{ports.rtp_end}"
    for secret_key in ("api_key", "api_secret"):
        conf.pop(secret_key, None)
    return conf


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path
