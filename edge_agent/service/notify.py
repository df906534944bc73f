"""systemd's ``sd_notify`` protocol in a few lines of the standard library.

Under ``Type=notify`` systemd passes ``NOTIFY_SOCKET`` (a Unix datagram socket; a leading
``@`` names one in the abstract namespace) and, with ``WatchdogSec=``, ``WATCHDOG_USEC`` (and
``WATCHDOG_PID``). The service sends ``READY=1`` once it runs, ``WATCHDOG=1`` at least every
``WATCHDOG_USEC`` (systemd restarts it otherwise), ``STATUS=...`` for ``systemctl status`` and
``STOPPING=1`` when it shuts down. Outside systemd every call is a no-op; a failure to send is
never an error (a trap keeps counting whether or not its supervisor listens).
"""

from __future__ import annotations

import os
import socket


def notify(*states: str) -> bool:
    """Send ``states`` (e.g. ``"READY=1"``) to systemd; True when a message was sent."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address or not states:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    message = "\n".join(states).encode("utf-8")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message)
    except OSError:
        return False
    return True


def ready(status: str | None = None) -> bool:
    return notify("READY=1", *([f"STATUS={status}"] if status else []))


def stopping(status: str | None = None) -> bool:
    return notify("STOPPING=1", *([f"STATUS={status}"] if status else []))


def watchdog() -> bool:
    return notify("WATCHDOG=1")


def status(text: str) -> bool:
    return notify(f"STATUS={text}")


def watchdog_interval_s() -> float | None:
    """How often to send ``WATCHDOG=1`` (half the watchdog timeout, as sd_watchdog_enabled
    advises); None when systemd set no watchdog for this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 2e6 if value > 0 else None


__all__ = ["notify", "ready", "status", "stopping", "watchdog", "watchdog_interval_s"]
