"""The local demo's event-plane broker: one ZMQ XSUB/XPUB proxy on Unix sockets.

Why it exists: in Dynamo 1.6.1's direct ZMQ mode every event publisher (each
mocker's KV events, KV metrics, forward-pass metrics and active sequences)
binds its own PUB socket on ``tcp://0.0.0.0:<random port>``; DYN_EVENT_PLANE_HOST
changes only the address it advertises, not the one it binds
(ai-dynamo/dynamo lib/runtime/src/transports/event_plane/mod.rs, "DIRECT MODE:
Bind PUB socket", and zmq_transport.rs ``ZmqPubTransport::bind``). With
``DYN_ZMQ_BROKER_URL="xsub=<url> , xpub=<url>"`` set, publishers connect to the
broker's XSUB and subscribers to its XPUB instead (mod.rs ``resolve_zmq_broker``,
"Priority 1: Explicit URL"), so no Dynamo process listens for events at all.
This proxy listens on two ``ipc://`` endpoints (Unix sockets in the demo's run
folder): nothing on any TCP port.

Usage: python zmq_event_broker.py ipc:///path/xsub.sock ipc:///path/xpub.sock
Runs under the Dynamo venv's python (pyzmq is one of its pins).
"""

from __future__ import annotations

import sys

import zmq


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not all(url.startswith("ipc://") for url in argv):
        print("usage: zmq_event_broker.py ipc://<xsub socket> ipc://<xpub socket>", file=sys.stderr)
        return 2
    xsub_url, xpub_url = argv
    context = zmq.Context()
    frontend = context.socket(zmq.XSUB)  # where the publishers connect
    backend = context.socket(zmq.XPUB)  # where the subscribers connect
    # Dynamo's publishers and subscribers queue up to 100,000 messages
    # (zmq_transport.rs ZMQ_SNDHWM / ZMQ_RCVHWM); the proxy does not drop sooner.
    for sock in (frontend, backend):
        sock.setsockopt(zmq.SNDHWM, 100_000)
        sock.setsockopt(zmq.RCVHWM, 100_000)
        sock.setsockopt(zmq.LINGER, 0)
    frontend.bind(xsub_url)
    backend.bind(xpub_url)
    print(f"event broker: publishers -> {xsub_url}, subscribers -> {xpub_url}", flush=True)

    # supervisord stops it with SIGTERM, whose default action ends the process; libzmq
    # removes a socket file left behind by an earlier run when it binds again.
    zmq.proxy(frontend, backend)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
