"""Run snmpsim's command responder with per-endpoint data selection working under pysnmp 7.1.

snmpsim 1.2.2 picks a data file by transport endpoint (``<ctx>/<transport-id>/<address>``) in
an override named ``handleMgmtOperation``; pysnmp 7.1 renamed the hook to
``handle_management_operation``, so the override is never called and every endpoint serves
the same file. The simulator needs one distinct router per facility behind a shared community,
so this entry point re-attaches the selection under the new name and then runs snmpsim as is.

snmpsim's ``writecache`` variation keeps written values in one module-wide cache keyed by OID
alone, so an ``snmpset`` of ifOperStatus.2 on one simulated router changed it on every router
with an ifIndex 2. `_per_agent_writecache` gives each data file (each router) its own cache.
Usage: ``python -m monitor.snmpsim_runner <snmpsim-command-responder arguments>``.
"""

from __future__ import annotations

import sys
from hashlib import md5
from typing import Any


def _install() -> None:
    from pysnmp.entity.rfc3413 import cmdrsp
    from pysnmp.error import PySnmpError
    from snmpsim import datafile
    from snmpsim.commands import responder

    def probe(self: Any, engine: Any, context_name: bytes) -> bytes | None:
        ctx = engine.observer.get_execution_context("rfc3412.receiveMessage:request")
        engine_id = ctx["contextEngineId"]
        engine_label = datafile.SELF_LABEL if engine_id == engine.snmpEngineID else engine_id.prettyPrint()
        for candidate in datafile.probe_context(
            ctx["transportDomain"], ctx["transportAddress"], engine_label, ctx["contextName"].prettyPrint()
        ):
            name = md5(candidate).hexdigest().encode() if len(candidate) > 32 else candidate
            try:
                self.snmpContext.get_mib_instrum(name)
            except PySnmpError:
                continue
            return name
        try:
            self.snmpContext.get_mib_instrum(context_name)
        except PySnmpError:
            return None
        return context_name

    def patch(ours: type, base: type) -> None:
        def handle_management_operation(self: Any, engine: Any, state_ref: Any, context_name: Any, pdu: Any) -> None:
            chosen = probe(self, engine, bytes(context_name))
            if chosen is None:  # no data file for this request: drop it, as snmpsim does
                self.release_state_information(state_ref)
                return
            base.handle_management_operation(self, engine, state_ref, chosen, pdu)  # type: ignore[attr-defined]

        ours.handle_management_operation = handle_management_operation  # type: ignore[attr-defined]

    patch(responder.GetCommandResponder, cmdrsp.GetCommandResponder)
    patch(responder.SetCommandResponder, cmdrsp.SetCommandResponder)
    patch(responder.NextCommandResponder, cmdrsp.NextCommandResponder)
    patch(responder.BulkCommandResponder, cmdrsp.BulkCommandResponder)


def _per_agent_writecache() -> None:
    from snmpsim import variation

    load = variation.load_variation_modules

    def load_with_per_agent_cache(*args: Any, **kwargs: Any) -> Any:
        modules = load(*args, **kwargs)
        if not isinstance(modules, dict) or "writecache" not in modules:
            return modules
        namespace = modules["writecache"][0]  # the module's globals: its variate() reads moduleContext there
        shared = namespace["moduleContext"]
        variate = namespace["variate"]
        per_file: dict[str, dict[str, Any]] = {}

        def variate_per_agent(oid: Any, tag: Any, value: Any, **context: Any) -> Any:
            own = per_file.get(context["dataFile"])
            if own is None:
                own = per_file[context["dataFile"]] = {"settings": shared.get("settings", {}), "cache": {}}
            namespace["moduleContext"] = own
            return variate(oid, tag, value, **context)

        namespace["variate"] = variate_per_agent
        return modules

    variation.load_variation_modules = load_with_per_agent_cache


def _preload_crypto() -> None:
    """Load now what pysnmp imports only on the first SNMPv3 packet.

    Started as root, snmpsim binds its sockets and then runs as nobody. A module imported after
    that is read as nobody: from a checkout nobody may enter (a fresh clone in a 0700 directory),
    the first v3 request died with "No module named 'cryptography.hazmat.backends.openssl'" and
    every v3 agent stayed silent.
    """
    from cryptography.hazmat.backends import default_backend
    from cryptography.hazmat.decrepit.ciphers.modes import CFB
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

    # What pysnmp's AES privacy runs per packet; default_backend() imports the OpenSSL backend.
    Cipher(algorithms.AES(bytes(16)), CFB(bytes(16)), backend=default_backend()).encryptor().update(bytes(16))


def main() -> int:
    _preload_crypto()
    _install()
    _per_agent_writecache()
    from snmpsim.commands import responder

    sys.argv[0] = "snmpsim-command-responder"
    return int(responder.main() or 0)


if __name__ == "__main__":
    sys.exit(main())
