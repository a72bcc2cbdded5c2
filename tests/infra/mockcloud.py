"""Pulumi mocks that behave like a cloud: real-looking ids and addresses, real certificates.

Every registered resource is recorded (type, name, inputs, outputs, parent) so tests can
compare what the program declared with the catalog and feed it through the policy pack.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import secrets
import string
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import pulumi
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs, Mocks

SECRET_SIG = "4dabf18193072939515e22adb298388d"


def unwrap(value: Any) -> Any:
    """Secret inputs reach the mocks wrapped in a signature dict; policies see plain values."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == "1b47061264138c4ac30d75fd1eb44270":
            return unwrap(value.get("value"))
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


@dataclass
class Recorded:
    typ: str
    name: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    id: str
    urn: str = ""
    parent: str = ""
    protect: bool = False
    retain_on_delete: bool = False

    @property
    def props(self) -> dict[str, Any]:
        return {**unwrap(self.inputs), **unwrap(self.outputs), "id": self.id}


def _pem_key(curve: ec.EllipticCurve) -> tuple[str, str]:
    key = ec.generate_private_key(curve)
    priv = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return priv.decode(), pub.decode()


def _load_key(pem: str) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def _name(subject: dict[str, Any] | None) -> x509.Name:
    subject = subject or {}
    attrs = []
    if subject.get("commonName"):
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, subject["commonName"]))
    if subject.get("organization"):
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, subject["organization"]))
    return x509.Name(attrs)


@dataclass
class MockCloud(Mocks):
    records: list[Recorded] = field(default_factory=list)
    calls: list[MockCallArgs] = field(default_factory=list)
    port_ips: dict[str, str] = field(default_factory=dict)
    _fip: int = 10
    local: threading.local = field(default_factory=threading.local)

    def call(self, args: MockCallArgs) -> tuple[dict, list[tuple[str, str]] | None]:
        self.calls.append(args)
        if args.token == "openstack:compute/getFlavor:getFlavor":
            a = args.args
            return {
                "id": f"flavor-{a['vcpus']}-{a['ram']}-{a['disk']}",
                "name": f"m1.custom-{a['vcpus']}",
                "vcpus": a["vcpus"],
                "ram": a["ram"],
                "disk": a["disk"],
                "isPublic": True,
            }, []
        if args.token == "openstack:images/getImage:getImage":
            name = args.args["name"]
            return {
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"glance/{name}")),
                "name": name,
                "minDiskGb": 10,
                "diskFormat": "qcow2",
                "containerFormat": "bare",
                "status": "active",
            }, []
        raise NotImplementedError(f"no mock for invoke {args.token}")

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict]:
        inputs = dict(args.inputs)
        plain = unwrap(inputs)
        typ = args.typ
        rid = str(uuid.uuid4())
        out: dict[str, Any] = dict(inputs)
        if not args.custom:
            rid = ""
            out = {}
        elif typ == "openstack:networking/port:Port":
            ips = [f["ipAddress"] for f in plain.get("fixedIps", [])]
            self.port_ips[rid] = ips[0]
            out.update(
                allFixedIps=ips,
                macAddress="fa:16:3e:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(3)),
                deviceOwner="compute:nova",
            )
        elif typ == "openstack:compute/instance:Instance":
            port = plain["networks"][0]["port"]
            ip = self.port_ips[port]
            out.update(accessIpV4=ip, powerState="active", networks=[{"port": port, "fixedIpV4": ip, "mac": ""}])
        elif typ == "openstack:networking/floatingIp:FloatingIp":
            self._fip += 1
            out.update(address=f"203.0.113.{self._fip}", fixedIp=self.port_ips.get(plain.get("portId", ""), ""))
        elif typ == "openstack:networking/subnet:Subnet":
            out.setdefault("gatewayIp", plain.get("gatewayIp"))
        elif typ == "openstack:compute/flavor:Flavor":
            out.update(flavorId=rid)
        elif typ == "openstack:compute/volumeAttach:VolumeAttach":
            rid = f"{plain['instanceId']}/{plain['volumeId']}"
            out.update(device="/dev/vdb")
        elif typ == "openstack:blockstorage/volume:Volume":
            out.update(availabilityZone="nova", attachments=[])
        elif typ == "openstack:networking/routerInterface:RouterInterface":
            out.update(portId=str(uuid.uuid4()))
        elif typ == "tls:index/privateKey:PrivateKey":
            curve = ec.SECP384R1() if plain.get("ecdsaCurve") == "P384" else ec.SECP256R1()
            priv, pub = _pem_key(curve)
            out.update(
                privateKeyPem=priv,
                publicKeyPem=pub,
                publicKeyFingerprintSha256=hashlib.sha256(pub.encode()).hexdigest(),
            )
        elif typ == "tls:index/selfSignedCert:SelfSignedCert":
            key = _load_key(plain["privateKeyPem"])
            name = _name(plain.get("subject"))
            now = dt.datetime.now(dt.UTC)
            cert = (
                x509.CertificateBuilder()
                .subject_name(name)
                .issuer_name(name)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now)
                .not_valid_after(now + dt.timedelta(hours=plain["validityPeriodHours"]))
                .add_extension(x509.BasicConstraints(ca=bool(plain.get("isCaCertificate")), path_length=0), True)
                .sign(key, hashes.SHA384())
            )
            out.update(
                certPem=cert.public_bytes(serialization.Encoding.PEM).decode(), validityStartTime=now.isoformat()
            )
        elif typ == "tls:index/certRequest:CertRequest":
            key = _load_key(plain["privateKeyPem"])
            import ipaddress

            sans: list[x509.GeneralName] = [x509.DNSName(d) for d in plain.get("dnsNames", [])]
            sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in plain.get("ipAddresses", [])]
            csr = (
                x509.CertificateSigningRequestBuilder()
                .subject_name(_name(plain.get("subject")))
                .add_extension(x509.SubjectAlternativeName(sans), False)
                .sign(key, hashes.SHA256())
            )
            out.update(certRequestPem=csr.public_bytes(serialization.Encoding.PEM).decode())
        elif typ == "tls:index/locallySignedCert:LocallySignedCert":
            csr = x509.load_pem_x509_csr(plain["certRequestPem"].encode())
            ca_cert = x509.load_pem_x509_certificate(plain["caCertPem"].encode())
            ca_key = _load_key(plain["caPrivateKeyPem"])
            now = dt.datetime.now(dt.UTC)
            san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            cert = (
                x509.CertificateBuilder()
                .subject_name(csr.subject)
                .issuer_name(ca_cert.subject)
                .public_key(csr.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now)
                .not_valid_after(now + dt.timedelta(hours=plain["validityPeriodHours"]))
                .add_extension(san, False)
                .sign(ca_key, hashes.SHA256())
            )
            out.update(certPem=cert.public_bytes(serialization.Encoding.PEM).decode(), readyForRenewal=False)
        elif typ == "random:index/randomPassword:RandomPassword":
            alphabet = string.ascii_letters + string.digits
            out.update(result="".join(secrets.choice(alphabet) for _ in range(int(plain["length"]))))
        elif typ == "minio:index/s3Bucket:S3Bucket":
            rid = plain["bucket"]
            out.update(arn=f"arn:aws:s3:::{rid}", bucketDomainName=f"{rid}.s3.local")
        elif typ in ("minio:index/iamUser:IamUser", "minio:index/iamPolicy:IamPolicy"):
            rid = plain["name"]
            out.update(status="enabled")
        elif typ == "pulumi-python:dynamic:Resource":
            rid = plain["bucket"]
            out.update(appliedMode=plain["mode"], appliedDuration=f"{plain['years']} Years")
        urn, parent, protect, retain = getattr(self.local, "current", ("", "", False, False))
        self.records.append(Recorded(typ, args.name, inputs, out, rid, urn, parent, protect, retain))
        return rid, out


class RecordingMonitor(MockMonitor):
    """Also keeps each resource's URN and parent URN, which `Mocks.new_resource` does not see."""

    def __init__(self, mocks: MockCloud) -> None:
        super().__init__(mocks)
        self.cloud = mocks

    def RegisterResource(self, request: Any) -> Any:
        # Registrations run on executor threads; new_resource runs on this one, during super().
        urn = self.make_urn(request.parent, request.type, request.name)
        self.cloud.local.current = (urn, request.parent, bool(request.protect), bool(request.retainOnDelete))
        try:
            return super().RegisterResource(request)
        finally:
            self.cloud.local.current = ("", "", False, False)


@dataclass
class ProgramRun:
    cloud: MockCloud
    outputs: dict[str, Any]
    seconds: float

    def of_type(self, typ: str) -> list[Recorded]:
        return [r for r in self.cloud.records if r.typ == typ]

    def children(self, parent_urn: str) -> list[Recorded]:
        return [r for r in self.cloud.records if r.parent == parent_urn]


def ensure_event_loop() -> None:
    """`pulumi.runtime.test` drives the main thread's event loop; async tests run earlier may have left none."""
    try:
        asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())


def run_program(catalog: str, extra_config: dict[str, str] | None = None, stack: str = "lab") -> ProgramRun:
    """Run the whole program under mocks and return every resource and the resolved outputs."""
    from infra.program import build
    from infra.settings import read_settings

    ensure_event_loop()
    cloud = MockCloud()
    pulumi.runtime.set_mocks(cloud, project="hdc", stack=stack, preview=False, monitor=RecordingMonitor(cloud))
    password = secrets.token_urlsafe(24)
    config = {
        "hdc:catalog": catalog,
        "minio:minioServer": "127.0.0.1:9000",
        "minio:minioUser": "provisioner",
        "minio:minioPassword": password,
        **(extra_config or {}),
    }
    pulumi.runtime.set_all_config(config, secret_keys=["minio:minioPassword"])
    resolved: dict[str, Any] = {}

    @pulumi.runtime.test
    def program() -> pulumi.Output[Any]:
        settings = read_settings()
        built = build(settings, settings.load_catalog())
        keys = list(built.outputs)
        return pulumi.Output.all(*(built.outputs[k] for k in keys)).apply(
            lambda vals: resolved.update(zip(keys, vals, strict=True))
        )

    start = time.perf_counter()
    program()
    return ProgramRun(cloud=cloud, outputs=resolved, seconds=time.perf_counter() - start)


def longest_retention_days(years: list[int]) -> int:
    """The most days any of these retention periods can span, on the archive's own calendar arithmetic.

    Checked from the 1st of January and of March of every year of a whole Gregorian cycle, so
    every arrangement of leap days (and the skipped century leap years) is seen.
    """
    from archive_service.settings import add_duration

    starts = [dt.datetime(y, m, 1, tzinfo=dt.UTC) for y in range(2000, 2400) for m in (1, 3)]
    return max(((add_duration(s, f"{n}y") - s).days for n in years if n > 0 for s in starts), default=0)
