"""systemd's notification protocol (``sd_notify``), without a dependency: one datagram per message
to the socket named by ``$NOTIFY_SOCKET``. Outside systemd (no variable) nothing is sent."""

from __future__ import annotations

import os
import socket


class Notifier:
    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = environ if environ is not None else dict(os.environ)
        address = env.get("NOTIFY_SOCKET", "")
        self.address: str | None = ("\0" + address[1:] if address.startswith("@") else address) or None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        #: How often systemd wants a WATCHDOG=1 (half its timeout), None when it does not watch us.
        self.watchdog_interval: float | None = (
            int(usec) / 2_000_000 if usec.isdigit() and int(usec) > 0 and mine else None
        )

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *lines: str) -> bool:
        """Send ``READY=1``, ``STATUS=...`` and the like; False when there is nobody to tell (or the
        socket is gone or full: systemd restarting must not make calsync fail or wait)."""
        if self.address is None:
            return False
        text = "\n".join(line.replace("\n", " ") for line in lines).encode("utf-8")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.setblocking(False)  # a listener that does not read must not stop calsync
                sock.connect(self.address)
                sock.sendall(text)
        except OSError:
            return False
        return True
