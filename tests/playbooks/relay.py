"""SSH ProxyCommand for the test hosts: relay stdin/stdout to HOST:PORT (run inside the switch netns).

Once ssh closes its side (stdin at EOF), the relay waits a few seconds for the host to close the
connection, then exits: a host whose namespace was deleted never answers, and a relay waiting
for it would outlive the test (holding the deleted switch namespace alive).
"""

import os
import selectors
import socket
import sys
import time

DRAIN_SECONDS = 10.0


def main() -> None:
    sock = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
    sock.settimeout(None)
    sel = selectors.DefaultSelector()
    sel.register(0, selectors.EVENT_READ)
    sel.register(sock, selectors.EVENT_READ)
    deadline: float | None = None
    while True:
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        events = sel.select(timeout)
        if not events and deadline is not None:
            return
        for key, _ in events:
            if key.fileobj == 0:
                data = os.read(0, 65536)
                if not data:
                    sock.shutdown(socket.SHUT_WR)
                    sel.unregister(0)
                    deadline = time.monotonic() + DRAIN_SECONDS
                    continue
                sock.sendall(data)
            else:
                data = sock.recv(65536)
                if not data:
                    return
                os.write(1, data)


if __name__ == "__main__":
    main()
