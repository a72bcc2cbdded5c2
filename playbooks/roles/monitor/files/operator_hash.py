# Run by the monitor role with the monitor's own Python: python -c <this> FILE NAME < password.
# Prints an scrypt hash of the password for operator NAME: the one FILE already holds when it
# still matches (a fresh salt each run would rewrite the file on every converge), else a new one.
import sys
from pathlib import Path

from monitor.noc.access import hash_password, load_operators, verify_password

path, name = Path(sys.argv[1]), sys.argv[2]
password = sys.stdin.read().rstrip("\r\n")
stored = None
if path.exists():
    try:
        stored = next((op.password for op in load_operators(path).operators if op.name == name), None)
    except Exception:  # an unreadable file is rewritten by the role's template anyway
        stored = None
print(stored if stored is not None and verify_password(password, stored) else hash_password(password))
