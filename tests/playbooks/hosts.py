"""Throw-away Debian 12 hosts for the Ansible tests: debootstrap once, then systemd-nspawn per host.

Layout (nothing listens outside the network namespaces created here):
- one *switch* namespace holding a bridge and the controller's address (ansible reaches the
  hosts through an SSH ProxyCommand that enters it; verifications run commands in it);
- one namespace per host, joined to the bridge by a veth pair, carrying the host's address
  from the catalog's host plan (so firewall rules computed from the catalog are exercised
  with the real addresses);
- `systemd-nspawn -b` on a per-host overlay of the cached rootfs: real systemd, so services
  really start, and every host starts fresh.

The rootfs is a bare Debian (BOOTSTRAP_PACKAGES) whose apt cache holds the .deb files of every
package the roles install (ROLE_PACKAGES): the first converge installs them for real, without a
network. It is cached under /var/cache/hdc-test-rootfs/<hash of both lists>, built on first use.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hdc.procs import ManagedProcess, wait_until

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# Installed in the image: what a freshly provisioned Debian machine has before any role ran
# (sshd, Python and python3-apt for Ansible's apt module, systemd to boot, the usual tools).
BOOTSTRAP_PACKAGES = (
    "ca-certificates",
    "dbus",
    "gzip",
    "iproute2",
    "less",
    "openssh-server",
    "procps",
    "python3",
    "python3-apt",
    "sudo",
    "systemd-sysv",
)
# Everything the roles install with ansible.builtin.apt: only *downloaded* into the image's apt
# cache (with dependencies and recommends), so the first converge really installs them (dpkg,
# maintainer scripts, services enabled by their packages) on hosts that have no route to a mirror.
ROLE_PACKAGES = (
    "auditd",
    "chrony",
    "logrotate",
    "nftables",
    "postgresql-15",
    "postgresql-client-15",
    "prometheus",
    "prometheus-alertmanager",
    "prometheus-node-exporter",
    "python3-packaging",
    "python3-venv",
    "unattended-upgrades",
)
CACHE_ROOT = Path(os.environ.get("HDC_TEST_ROOTFS_CACHE", "/var/cache/hdc-test-rootfs"))
READY_MARK = ".hdc-rootfs-ready"
# A /16 holding the lab catalog's zones (10.20.x.0/24); used only inside our namespaces.
PREFIX_LEN = 16
CONTROLLER_ADDRESS = "10.20.3.250"
RELAY = Path(__file__).with_name("relay.py")


def run(argv: Sequence[str], check: bool = True, timeout: float = 60, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), check=check, text=True, capture_output=True, timeout=timeout, **kw)  # type: ignore[call-overload, no-any-return]


def own_cgroup_dirs() -> list[Path]:
    """This process's cgroup directory in the hierarchies a container's systemd writes to.

    Those are the named `systemd` v1 hierarchy and the cgroup2 one (nspawn mounts the other v1
    controllers read-only inside the container). The path of each comes from /proc/self/cgroup,
    the mount point (and the mount's own root) from /proc/self/mountinfo.
    """
    mounts: dict[str, tuple[Path, str]] = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        pre, _, post = line.partition(" - ")
        fields, (fstype, _source, options) = pre.split(), post.split()[:3]
        key = "0:" if fstype == "cgroup2" else "name=systemd" if "name=systemd" in options.split(",") else None
        if fstype in ("cgroup", "cgroup2") and key and key not in mounts:
            mounts[key] = (Path(fields[4]), fields[3])
    dirs = []
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        hid, controllers, path = line.split(":", 2)
        key = "0:" if hid == "0" and controllers == "" else controllers
        if key in mounts:
            mount, root = mounts[key]
            dirs.append(mount / os.path.relpath(path, root))
    return dirs


def remove_cgroup(top: Path, timeout: float = 10) -> None:
    """rmdir a cgroup and everything a container's systemd left below it, deepest first.

    Retried for a while: the processes of a killed container take a moment to leave (rmdir
    fails with EBUSY until then).
    """
    deadline = time.monotonic() + timeout
    while top.is_dir():
        for dirpath, _dirs, _files in os.walk(top, topdown=False):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)
        if time.monotonic() > deadline:
            return
        if top.is_dir():
            time.sleep(0.1)


def rootfs_key() -> str:
    spec = [SUITE, *BOOTSTRAP_PACKAGES, "download-only:", *ROLE_PACKAGES]
    return hashlib.sha256("\n".join(spec).encode()).hexdigest()[:16]


def _debootstrap_done(build: Path) -> bool:
    # debootstrap removes its /debootstrap working directory only when it succeeded.
    return (build / "usr/bin/python3").exists() and not (build / "debootstrap").exists()


def ensure_rootfs(cache_root: Path = CACHE_ROOT) -> Path:
    """The cached image (BOOTSTRAP_PACKAGES installed, ROLE_PACKAGES downloaded), built once under a lock."""
    cache_root.mkdir(parents=True, exist_ok=True)
    final = cache_root / rootfs_key()
    if (final / READY_MARK).exists():
        return final
    with (cache_root / f"{rootfs_key()}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / READY_MARK).exists():
            return final
        build = cache_root / f"{rootfs_key()}.build"
        if not _debootstrap_done(build):
            shutil.rmtree(build, ignore_errors=True)
            run(
                [
                    "debootstrap",
                    "--variant=minbase",
                    f"--include={','.join(BOOTSTRAP_PACKAGES)}",
                    SUITE,
                    str(build),
                    MIRROR,
                ],
                timeout=1800,
            )
        _download_role_packages(build)
        _finalize(build)
        shutil.rmtree(final, ignore_errors=True)
        build.rename(final)
    return final


def _download_role_packages(root: Path) -> None:
    """The .deb files of ROLE_PACKAGES and their dependencies into the image's apt cache, not installed.

    apt-get runs inside the image (its own package lists and status), so exactly what a host
    built from it lacks is fetched; the roles then install from that cache without a network.
    """
    run(["chroot", str(root), "apt-get", "install", "--download-only", "-y", "-q", *ROLE_PACKAGES], timeout=1800)


def _finalize(root: Path) -> None:
    """Make the image boot as a container: no console getty, no machine-id."""
    (root / "etc/machine-id").write_text("")
    for unit in ("getty@tty1.service", "console-getty.service"):
        with contextlib.suppress(FileNotFoundError):
            (root / "etc/systemd/system/getty.target.wants" / unit).unlink()
    (root / READY_MARK).write_text(" ".join([*BOOTSTRAP_PACKAGES, "+", *ROLE_PACKAGES]) + "\n")


@dataclass
class Host:
    name: str
    address: str
    netns: str
    dir: Path
    proc: ManagedProcess | None = None
    cgroups: list[Path] = field(default_factory=list)

    @property
    def merged(self) -> Path:
        return self.dir / "merged"


@dataclass
class Lab:
    """A switch namespace and a set of nspawn hosts; `close()` removes everything by PID and name."""

    workdir: Path
    tag: str
    hosts: dict[str, Host] = field(default_factory=dict)
    probes: dict[str, Host] = field(default_factory=dict)
    veths: list[str] = field(default_factory=list)
    key: Path | None = None

    @property
    def switch(self) -> str:
        return f"hdcsw{self.tag}"

    def create_switch(self) -> None:
        run(["ip", "netns", "add", self.switch])
        run(["ip", "-n", self.switch, "link", "set", "lo", "up"])
        run(["ip", "-n", self.switch, "link", "add", "br0", "type", "bridge"])
        run(["ip", "-n", self.switch, "addr", "add", f"{CONTROLLER_ADDRESS}/{PREFIX_LEN}", "dev", "br0"])
        run(["ip", "-n", self.switch, "link", "set", "br0", "up"])
        self.key = self.workdir / "id_ed25519"
        for old in (self.key, self.key.with_suffix(".pub")):
            old.unlink(missing_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"hdc-test-{self.tag}", "-f", str(self.key)])

    def add_probe(self, name: str, address: str) -> Host:
        """A bare network namespace with a catalog host's address: a client to test from, no OS."""
        idx = len(self.hosts) + len(self.probes)
        probe = Host(name=name, address=address, netns=f"hdch{self.tag}x{idx}", dir=self.workdir / "probes" / name)
        self.probes[name] = probe
        self._plug(probe, idx)
        return probe

    def _plug(self, host: Host, idx: int) -> None:
        run(["ip", "netns", "add", host.netns])
        run(["ip", "-n", host.netns, "link", "set", "lo", "up"])
        run(
            [
                "ip", "-n", self.switch, "link", "add", f"v{idx}", "type", "veth",
                "peer", "name", "eth0", "netns", host.netns,
            ]
        )  # fmt: skip
        run(["ip", "-n", self.switch, "link", "set", f"v{idx}", "master", "br0", "up"])
        run(["ip", "-n", host.netns, "addr", "add", f"{host.address}/{PREFIX_LEN}", "dev", "eth0"])
        run(["ip", "-n", host.netns, "link", "set", "eth0", "up"])
        self.veths.append(f"v{idx}")

    def add_host(self, name: str, address: str, rootfs: Path) -> Host:
        idx = len(self.hosts) + len(self.probes)
        host = Host(name=name, address=address, netns=f"hdch{self.tag}x{idx}", dir=self.workdir / "hosts" / name)
        self.hosts[name] = host
        for sub in ("upper", "work", "merged"):
            (host.dir / sub).mkdir(parents=True, exist_ok=True)
        run(
            [
                "mount",
                "-t",
                "overlay",
                "overlay",
                "-o",
                f"lowerdir={rootfs},upperdir={host.dir / 'upper'},workdir={host.dir / 'work'}",
                str(host.merged),
            ]
        )
        root = host.merged
        (root / "etc/hostname").write_text(name + "\n")
        (root / "etc/hosts").write_text(f"127.0.0.1 localhost\n{address} {name}\n")
        ssh = root / "root/.ssh"
        ssh.mkdir(mode=0o700, parents=True, exist_ok=True)
        assert self.key is not None
        (ssh / "authorized_keys").write_text(self.key.with_suffix(".pub").read_text())
        (ssh / "authorized_keys").chmod(0o600)
        # A root password exists, so "SSH refuses passwords" is a property of sshd, not of an empty shadow.
        run(["chroot", str(root), "chpasswd"], input=f"root:{os.urandom(9).hex()}\n")
        self._plug(host, idx)
        # Each container gets a cgroup of its own. Without a systemd on the machine (or with
        # --keep-unit) nspawn puts every container in the `payload` child of the caller's
        # cgroup: all hosts then share one tree, and the same unit in two hosts is one cgroup.
        # Host A pruning nftables.service's cgroup once its oneshot exits removed host B's
        # freshly created one before B's nft attached to it: "Failed to attach to cgroup
        # /system.slice/nftables.service: No such file or directory", status 219/CGROUP (the
        # first-start flake). Reading that shared cgroup also showed the other hosts' processes
        # as pid 0 ("Failed to kill control group … Input/output error" on every stop).
        host.cgroups = [base / f"hdc-test-{self.tag}-{name}" for base in own_cgroup_dirs()]
        for cg in host.cgroups:
            cg.mkdir(exist_ok=True)
        enter = "".join(f"echo $$ > {shlex.quote(str(cg / 'cgroup.procs'))} && " for cg in host.cgroups)
        host.proc = ManagedProcess(
            name=f"nspawn-{name}",
            argv=[
                "/bin/sh", "-c", enter + 'exec "$@"', "nspawn-in-own-cgroup",
                "systemd-nspawn", "-q", "-b", "-D", str(root), "--register=no", "--keep-unit",
                f"--machine={name}", f"--hostname={name}", f"--network-namespace-path=/run/netns/{host.netns}",
                "--capability=CAP_NET_ADMIN", "--console=read-only", "--resolv-conf=off", "--timezone=off", "--link-journal=no",
            ],
            log_path=host.dir / "console.log",
            stop_timeout=20,
        ).start()  # fmt: skip
        return host

    def wait_ssh(self, timeout: float = 60) -> None:
        for host in self.hosts.values():
            assert host.proc is not None
            host.proc.wait_ready(lambda h=host: self.listening(h, 22), timeout=timeout)  # type: ignore[misc]

    def wait_booted(self, timeout: float = 120) -> None:
        """Wait until systemd has finished booting every host (sshd answers earlier than that).

        Converging a host whose boot is still under way races with it: a unit started then can
        fail for a dependency that is not up yet (the nftables start flake). "degraded" (a unit
        failed at boot) is accepted here, since the converge is what makes the host whole.
        """
        procs = {
            name: subprocess.Popen(
                [*self.ssh_argv(name), "--", "systemctl is-system-running --wait"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for name in self.hosts
        }
        problems = []
        for name, proc in procs.items():
            try:
                out, err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
            state = out.strip()
            if state not in ("running", "degraded"):
                problems.append(f"{name}: {state or err.strip() or 'no answer'}")
        if problems:
            raise RuntimeError("hosts did not finish booting: " + "; ".join(problems))

    def listening(self, host: Host, port: int, proto: str = "t") -> bool:
        out = run(["ip", "netns", "exec", host.netns, "ss", f"-Hl{proto}n", f"sport = :{port}"], check=False)
        return bool(out.stdout.strip())

    def exec_in(self, where: str, argv: Sequence[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run a controller binary inside the network namespace of a host (or 'switch')."""
        ns = self.switch if where == "switch" else {**self.hosts, **self.probes}[where].netns
        return run(["ip", "netns", "exec", ns, *argv], check=False, timeout=timeout)

    def in_host(self, name: str, argv: Sequence[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a command inside a host over SSH (as ansible does)."""
        return run([*self.ssh_argv(name), "--", shlex.join(argv)], check=False, timeout=timeout)

    def ssh_argv(self, name: str, *extra: str) -> list[str]:
        assert self.key is not None
        return [
            "ssh", "-i", str(self.key), *self.ssh_options(), *extra, f"root@{self.hosts[name].address}",
        ]  # fmt: skip

    def ssh_options(self) -> list[str]:
        return [
            "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10", "-o", f"ProxyCommand={self.proxy_command()}",
        ]  # fmt: skip

    def proxy_command(self) -> str:
        return f"ip netns exec {self.switch} /usr/bin/python3 {RELAY} %h %p"

    def inventory_vars(self) -> dict[str, object]:
        """Connection variables for ansible: root with the generated key, through the switch namespace."""
        assert self.key is not None
        return {
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(self.key),
            "ansible_ssh_common_args": (
                f"-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ProxyCommand='{self.proxy_command()}'"
            ),
            "ansible_python_interpreter": "/usr/bin/python3",
            # SSH master connections are keyed by address: another lab on this machine uses the
            # same catalog addresses in its own namespaces, so keep our sockets apart.
            "ansible_control_path_dir": str(self.workdir / "cp"),
        }

    def close(self) -> None:
        """Kill every container, then remove its mounts, cgroups, namespaces and files.

        The hosts are throw-away, so no orderly shutdown (it cost ~30 s of stopping services):
        SIGKILL to a container's init ends every process of its PID namespace, then nspawn exits.
        """
        procs = [h.proc for h in self.hosts.values() if h.proc is not None and h.proc.alive()]
        for p in procs:
            for init in container_inits(p.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(init, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            wait_until(lambda: not any(p.alive() for p in procs), 15, "containers gone")
        for p in procs:  # nspawn itself, if its container did not go
            p.stop()
        for h in self.hosts.values():
            run(["umount", "-l", str(h.merged)], check=False)
            for cg in h.cgroups:
                remove_cgroup(cg)
        for h in [*self.hosts.values(), *self.probes.values()]:
            run(["ip", "netns", "del", h.netns], check=False)
        for veth in self.veths:
            run(["ip", "-n", self.switch, "link", "del", veth], check=False)
        run(["ip", "netns", "del", self.switch], check=False)
        for h in self.hosts.values():
            shutil.rmtree(h.dir, ignore_errors=True)


def container_inits(nspawn_pid: int) -> list[int]:
    """PID (as seen here) of the container's init: the child of the systemd-nspawn process."""
    try:
        return [int(pid) for pid in Path(f"/proc/{nspawn_pid}/task/{nspawn_pid}/children").read_text().split()]
    except (OSError, ValueError):
        return []


def hosts_available() -> str | None:
    """Why host tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "throw-away hosts need root (network namespaces, mounts, systemd-nspawn)"
    for tool in ("systemd-nspawn", "debootstrap", "ip", "ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/setup.sh installs it)"
    probe = f"hdcprobe{os.getpid()}"
    if run(["ip", "netns", "add", probe], check=False).returncode != 0:
        return "cannot create network namespaces here"
    run(["ip", "netns", "del", probe], check=False)
    return None


@contextlib.contextmanager
def lab(workdir: Path, hosts: dict[str, str], probes: dict[str, str] | None = None) -> Iterator[Lab]:
    """Start the given hosts (name -> address) and probes, and tear everything down afterwards."""
    rootfs = ensure_rootfs()
    tag = f"{os.getpid() % 100000:05d}"
    the_lab = Lab(workdir=workdir, tag=tag)
    try:
        the_lab.create_switch()
        for name, address in hosts.items():
            the_lab.add_host(name, address, rootfs)
        for name, address in (probes or {}).items():
            the_lab.add_probe(name, address)
        the_lab.wait_ssh()
        the_lab.wait_booted()
        yield the_lab
    finally:
        the_lab.close()
