"""Regenerate the broken-catalog fixtures from base.yaml (each applies one defect).

Run from the repo root: `.venv/bin/python tests/catalog/make_broken.py`. The expected
messages (file:line: field: message) are written by hand in each `expect.txt`.
"""

from pathlib import Path

HERE = Path(__file__).parent
BASE = (HERE / "base.yaml").read_text(encoding="utf-8")

# name -> (old text, new text): exactly one occurrence of `old` is replaced.
MUTATIONS = {
    "unknown-parent": ("      parent: pop-north\n", "      parent: pop-gabes\n"),
    "flow-unknown-platform": ("to_platform: identity", "to_platform: identiti"),
    "duplicate-facility-id": ("  - id: csb-south\n", "  - id: hr-north\n"),
    "duplicate-router": ("router: 10.1.0.2", "router: 10.1.0.1"),
    "overlapping-subnets": ("subnet: 10.9.2.0/24", "subnet: 10.9.1.128/25"),
    "faster-than-parent": ("      bandwidth_mbps: 100\n", "      bandwidth_mbps: 2000\n"),
    "inline-secret": ("community_ref: env:SNMP_COMMUNITY", "community: public"),
    "secret-ref-not-a-reference": ("auth_key_ref: file:snmp/auth", "auth_key_ref: s3cr3t-pass phrase"),
    "unknown-region": ("    region: south\n", "    region: centre\n"),
    "invalid-yaml": ("    name: PoP North\n", "    name: PoP North: [unclosed\n"),
    "unknown-field": ("    status: planned\n", "    status: planned\n    bandwith_mbps: 20\n"),
    "missing-name-ar": ("    name_ar: نقطة الشمال\n", ""),
    "name-ar-not-arabic": ("name_ar: المستشفى الجهوي بالشمال", "name_ar: Hopital regional"),
    "bad-router-address": ("router: 10.1.0.2", "router: 10.1.0.300"),
    "multicast-router-address": ("router: 10.1.0.2", "router: 224.0.0.5"),
    "parent-not-aggregation-site": ("link: {bandwidth_mbps: 20, parent: pop-north}", "link: {bandwidth_mbps: 20, parent: hr-north}"),
    "flow-port-not-listened": ("{from_tier: app, to_tier: db, port: 5432}", "{from_tier: app, to_tier: db, port: 3306}"),
    "db-tier-in-dmz": ("{name: db, zone: data,", "{name: db, zone: dmz,"),
    "duplicate-vlan": ("vlan: 120", "vlan: 110"),
    "unknown-zone": ("{name: app, zone: app, cluster: c1, flavor: {vcpu: 2, ram_gb: 4, disk_gb: 20}, ports: [8443]}\n    backup_class",
                     "{name: app, zone: apps, cluster: c1, flavor: {vcpu: 2, ram_gb: 4, disk_gb: 20}, ports: [8443]}\n    backup_class"),
    "medical-on-unencrypted-pool": ("storage_pool: ssd", "storage_pool: plain"),
    "connected-without-router": ("      router: 10.1.0.2\n", ""),
    "duplicate-yaml-key": ("    kind: regional_hospital\n", "    kind: regional_hospital\n    kind: district_hospital\n"),
    "unknown-backup-class": ("    backup_class: gold\n    retention_class", "    backup_class: platinum\n    retention_class"),
    "parent-is-itself": ("      bandwidth_mbps: 1000\n", "      bandwidth_mbps: 1000\n      parent: pop-north\n"),
    "zone-too-small": ("subnet: 10.9.2.0/24", "subnet: 10.9.2.0/29"),
    "contact-phone-not-e164": ("      parent: pop-north\n  - id: csb-south\n",
                               "      parent: pop-north\n    contact: {name: Service informatique, phone: 71 000 000}\n  - id: csb-south\n"),
}  # fmt: skip

if __name__ == "__main__":
    for name, (old, new) in MUTATIONS.items():
        assert BASE.count(old) == 1, f"{name}: {old!r} occurs {BASE.count(old)} times in base.yaml"
        out = HERE / "broken" / name
        out.mkdir(parents=True, exist_ok=True)
        (out / "catalog.yaml").write_text(BASE.replace(old, new), encoding="utf-8")
