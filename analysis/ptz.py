"""Moving a dome camera to a scene's preset: ONVIF PTZ GotoPreset through onvif-zeep-async.

The subtask of a dome camera calls `goto_preset` when its mtask's active scene changes, then waits
`VIAS_PTZ_SETTLE_S` for the head to stop before it analyses with that scene's ROIs. The device
service is asked for its services (GetServices), the media service for the first profile (a PTZ
command needs a profile token), and the PTZ service to go to the preset token (the preset number).

The camera's address is under the source URL policy (vias/lib/ssrf.py, docs/outputs.md): checked
again, resolved, before anything is sent (an address stored while allowed may be refused now: the
policy or the DNS answer changed), and so is every service address the camera answers (XAddrs), so
that a camera cannot send the node to this machine or to a metadata service.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError

from vias.lib.ssrf import check_source_host_for_open, redacted

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"http": 80, "https": 443}


class PtzError(Exception):
    """The camera could not be moved (unreachable, refused, no PTZ, no profile)."""


@dataclass(frozen=True)
class Camera:
    """Where and how to reach a dome camera's ONVIF device service."""

    url: str
    username: str = ""
    password: str = ""


def goto_preset(camera: Camera, preset: int, timeout_s: float = 10.0) -> None:
    """Move the camera to `preset`; PtzError when that fails (a refused address among them,
    before any connection). Blocks (runs its own event loop)."""
    check_address(camera.url)
    try:
        asyncio.run(asyncio.wait_for(_goto_preset(camera, preset), timeout_s))
    except PtzError:
        raise
    except TimeoutError:
        raise PtzError(f"the camera at {camera.url} did not answer within {timeout_s:.0f} s") from None
    except Exception as exc:  # noqa: BLE001 - zeep, aiohttp and httpx each raise their own
        raise PtzError(f"{type(exc).__name__}: {exc}") from exc


def check_address(url: str, what: str = "the ONVIF address") -> None:
    """PtzError when the source URL policy refuses `url` now (it resolves the host once)."""
    try:
        check_source_host_for_open(url)
    except ValidationError as exc:
        raise PtzError(f"{what} {redacted(url)} is refused: {' '.join(exc.messages)}") from None


async def _goto_preset(camera: Camera, preset: int) -> None:
    from onvif import ONVIFCamera

    parts = urlsplit(camera.url)
    port = parts.port or DEFAULT_PORTS.get(parts.scheme, 80)
    device = ONVIFCamera(parts.hostname or "", port, camera.username or None, camera.password or None)
    try:
        await device.update_xaddrs()
        for xaddr in list(device.xaddrs.values()):
            if xaddr:
                check_address(xaddr, "a service address the camera answered")
        media = await device.create_media_service()
        profiles = await media.GetProfiles()
        if not profiles:
            raise PtzError(f"the camera at {camera.url} has no media profile")
        ptz = await device.create_ptz_service()
        await ptz.GotoPreset({"ProfileToken": profiles[0].token, "PresetToken": str(preset)})
        log.info("camera %s: GotoPreset %s (profile %s)", camera.url, preset, profiles[0].token)
    finally:
        await device.close()
