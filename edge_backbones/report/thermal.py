"""CPU temperature and throttling, so a report says when a board throttled.

Linux exposes each thermal zone as /sys/class/thermal/thermal_zone*/ with
`type` and `temp` (millidegrees Celsius). On a Raspberry Pi, `vcgencmd
get_throttled` prints a bit field: bits 0-3 say what is happening now
(under-voltage, ARM frequency capped, throttled, soft temperature limit),
bits 16-19 whether it happened since boot. Machines without either (an
x86 laptop, an emulated Pi) record None.
"""

import os
import shutil
import subprocess
from typing import Any

__all__ = ["THROTTLE_FLAGS", "parse_throttled", "read_temperatures", "snapshot"]

THERMAL_ROOT = "/sys/class/thermal"
# bit -> what it means (Raspberry Pi firmware documentation)
THROTTLE_FLAGS = {
    0: "under-voltage",
    1: "arm frequency capped",
    2: "throttled",
    3: "soft temperature limit",
}
_SINCE_BOOT = 16


def read_temperatures(root: str = THERMAL_ROOT) -> dict[str, float]:
    """{zone type: degrees C} of every readable thermal zone (may be {})."""
    temperatures: dict[str, float] = {}
    try:
        zones = sorted(z for z in os.listdir(root) if z.startswith("thermal"))
    except OSError:
        return temperatures
    for zone in zones:
        folder = os.path.join(root, zone)
        try:
            with open(os.path.join(folder, "temp")) as f:
                millidegrees = int(f.read().strip())
        except (OSError, ValueError):
            continue
        try:
            with open(os.path.join(folder, "type")) as f:
                name = f.read().strip() or zone
        except OSError:
            name = zone
        temperatures[name] = millidegrees / 1000.0
    return temperatures


def parse_throttled(text: str) -> dict[str, Any] | None:
    """`vcgencmd get_throttled` output ("throttled=0x50005") -> a record.

    Returns {"raw", "now": [flags], "since_boot": [flags]}, or None when
    the text is not that command's answer.
    """
    key, _, value = text.strip().partition("=")
    if key != "throttled":
        return None
    try:
        bits = int(value, 16)
    except ValueError:
        return None
    flags = THROTTLE_FLAGS.items()
    return {
        "raw": value,
        "now": [f for b, f in flags if bits >> b & 1],
        "since_boot": [f for b, f in flags if bits >> (b + _SINCE_BOOT) & 1],
    }


def _vcgencmd_throttled(vcgencmd):
    if not shutil.which(vcgencmd):
        return None
    try:
        done = subprocess.run(
            [vcgencmd, "get_throttled"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_throttled(done.stdout) if done.returncode == 0 else None


def snapshot(
    root: str = THERMAL_ROOT, vcgencmd: str = "vcgencmd"
) -> dict[str, Any]:
    """{"temperatures_c": {...}, "throttled": {...} or None} right now."""
    return {
        "temperatures_c": read_temperatures(root),
        "throttled": _vcgencmd_throttled(vcgencmd),
    }
