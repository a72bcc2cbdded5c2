"""The internal certificate authority and one server certificate per host (SANs: name, FQDN, address)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_tls as tls

CA_USES = ["cert_signing", "crl_signing", "digital_signature"]
SERVER_USES = ["digital_signature", "key_encipherment", "server_auth", "client_auth"]


@dataclass(frozen=True)
class IssuedCert:
    cert_pem: pulumi.Output[str]
    key_pem: pulumi.Output[str]


class InternalCA(pulumi.ComponentResource):
    """A self-signed ECDSA P-384 root kept in the stack's encrypted state; it never leaves Pulumi."""

    cert_pem: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        organization: str,
        validity_days: int,
        cert_validity_days: int,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("hdc:infra:InternalCA", name, None, opts)
        self._organization = organization
        self._cert_hours = cert_validity_days * 24
        child = pulumi.ResourceOptions(parent=self)
        self._key = tls.PrivateKey(f"{name}-key", algorithm="ECDSA", ecdsa_curve="P384", opts=child)
        self._cert = tls.SelfSignedCert(
            f"{name}-cert",
            private_key_pem=self._key.private_key_pem,
            is_ca_certificate=True,
            max_path_length=0,
            set_subject_key_id=True,
            validity_period_hours=validity_days * 24,
            early_renewal_hours=90 * 24,
            allowed_uses=CA_USES,
            subject=tls.SelfSignedCertSubjectArgs(common_name=f"{name} root CA", organization=organization),
            opts=child,
        )
        self.cert_pem = self._cert.cert_pem
        self.register_outputs({"cert_pem": self.cert_pem})

    def issue(self, name: str, dns_names: list[str], ip_addresses: list[str], parent: pulumi.Resource) -> IssuedCert:
        """A server certificate for one host, created under `parent` (its platform)."""
        opts = pulumi.ResourceOptions(parent=parent)
        key = tls.PrivateKey(f"{name}-tls-key", algorithm="ECDSA", ecdsa_curve="P256", opts=opts)
        csr = tls.CertRequest(
            f"{name}-tls-csr",
            private_key_pem=key.private_key_pem,
            dns_names=dns_names,
            ip_addresses=ip_addresses,
            subject=tls.CertRequestSubjectArgs(common_name=dns_names[0], organization=self._organization),
            opts=opts,
        )
        cert = tls.LocallySignedCert(
            f"{name}-tls-cert",
            cert_request_pem=csr.cert_request_pem,
            ca_private_key_pem=self._key.private_key_pem,
            ca_cert_pem=self._cert.cert_pem,
            validity_period_hours=self._cert_hours,
            early_renewal_hours=min(30 * 24, self._cert_hours // 2),
            allowed_uses=SERVER_USES,
            opts=opts,
        )
        return IssuedCert(cert_pem=cert.cert_pem, key_pem=pulumi.Output.secret(key.private_key_pem))
