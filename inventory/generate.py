"""Generate the national example catalog, modelled on Tunisia's health network.

Deterministic (no randomness, no clock): the same code writes the same bytes, so the
committed catalog can be checked against a regeneration. Names are plausible place-based
institution names, never people. Addresses are private ranges used only as catalog data.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import yaml

from .model import FacilityKind, FacilityStatus

# The 24 governorates: (id, French name, Arabic name).
GOVERNORATES: list[tuple[str, str, str]] = [
    ("tunis", "Tunis", "تونس"),
    ("ariana", "Ariana", "أريانة"),
    ("ben-arous", "Ben Arous", "بن عروس"),
    ("manouba", "Manouba", "منوبة"),
    ("nabeul", "Nabeul", "نابل"),
    ("zaghouan", "Zaghouan", "زغوان"),
    ("bizerte", "Bizerte", "بنزرت"),
    ("beja", "Béja", "باجة"),
    ("jendouba", "Jendouba", "جندوبة"),
    ("kef", "Le Kef", "الكاف"),
    ("siliana", "Siliana", "سليانة"),
    ("sousse", "Sousse", "سوسة"),
    ("monastir", "Monastir", "المنستير"),
    ("mahdia", "Mahdia", "المهدية"),
    ("sfax", "Sfax", "صفاقس"),
    ("kairouan", "Kairouan", "القيروان"),
    ("kasserine", "Kasserine", "القصرين"),
    ("sidi-bouzid", "Sidi Bouzid", "سيدي بوزيد"),
    ("gabes", "Gabès", "قابس"),
    ("medenine", "Médenine", "مدنين"),
    ("tataouine", "Tataouine", "تطاوين"),
    ("gafsa", "Gafsa", "قفصة"),
    ("tozeur", "Tozeur", "توزر"),
    ("kebili", "Kébili", "قبلي"),
]

# Governorates with university hospitals (and how many): the large cities.
UNIVERSITY: dict[str, int] = {
    "tunis": 6,
    "ariana": 2,
    "ben-arous": 1,
    "manouba": 1,
    "sousse": 2,
    "monastir": 2,
    "sfax": 2,
    "mahdia": 1,
}

# Quarters used to name district hospitals and primary-care centres (place names, not people).
QUARTERS_FR = ["Centre", "Nord", "Sud", "Est", "Ouest", "Médina", "Cité El Amel", "Cité Ennour", "Cité Ezzouhour",
               "Cité El Khadra", "Hay Ennasr", "Hay El Wafa", "Bir Lahmar", "Ain Jebli", "Oued Ellil",
               "Ennakhil", "El Manar", "Essalam", "El Bassatine", "Erriadh"]  # fmt: skip
QUARTERS_AR = ["الوسط", "الشمال", "الجنوب", "الشرق", "الغرب", "المدينة", "حي الأمل", "حي النور", "حي الزهور",
               "الحي الأخضر", "حي النصر", "حي الوفاء", "بئر الأحمر", "عين الجبلي", "وادي الليل",
               "النخيل", "المنار", "السلام", "البساتين", "الرياض"]  # fmt: skip

SPECIALITIES = [
    ("oncologie", "Institut d'oncologie", "معهد الأورام"),
    ("cardio", "Centre de cardiologie", "مركز أمراض القلب"),
    ("maternite", "Centre de maternité et de néonatologie", "مركز التوليد وطب الرضع"),
    ("traumato", "Centre de traumatologie et des grands brûlés", "مركز الإصابات والحروق البليغة"),
    ("psy", "Hôpital psychiatrique", "مستشفى الأمراض النفسية"),
    ("ophtalmo", "Institut d'ophtalmologie", "معهد طب العيون"),
]

CONNECTED_PCC_PER_REGION = 2
PLANNED_PCC_TOTAL = 2100


def _facility(
    fid: str, name: str, name_ar: str, kind: FacilityKind, region: str, link: dict[str, Any], planned: bool = False
) -> dict[str, Any]:
    out = {
        "id": fid,
        "name": name,
        "name_ar": name_ar,
        "kind": kind.value,
        "region": region,
        "status": (FacilityStatus.PLANNED if planned else FacilityStatus.CONNECTED).value,
        "link": link,
    }
    if not planned:
        out["contact"] = _contact(fid, kind)
    return out


def _contact(fid: str, kind: FacilityKind) -> dict[str, str]:
    """The duty desk the NOC calls. Numbers are in +216 00…, a range Tunisia does not allocate,
    so an example catalog can never ring a real line."""
    desk = "Permanence du centre" if kind is FacilityKind.PRIMARY_CARE_CENTRE else "Service informatique"
    return {"name": desk, "phone": f"+21600{zlib.crc32(fid.encode()) % 1_000_000:06d}"}


def _snmp(serial: int) -> dict[str, Any]:
    """Hospitals speak SNMPv3 authPriv; older primary-care routers still speak v2c."""
    if serial % 4 == 0:
        return {"version": "2c", "community_ref": "file:snmp/community"}
    return {
        "version": "3",
        "user": "noc",
        "auth_protocol": "SHA",
        "auth_key_ref": "file:snmp/v3-auth",
        "priv_protocol": "AES",
        "priv_key_ref": "file:snmp/v3-priv",
    }


class _RegionLinks:
    """Hands out router addresses in a region's management range (10.<region>.x.y) and SNMP settings."""

    def __init__(self, region_index: int, pop: str, serial: int) -> None:
        self.region_index = region_index
        self.pop = pop
        self.serial = serial
        self.host = 10

    def __call__(self, bw: int, if_index: int = 2, name: str | None = "ge-0/0/1") -> dict[str, Any]:
        self.host += 1
        self.serial += 1
        uplink: dict[str, Any] = {"if_index": if_index}
        if name:
            uplink["if_name"] = name
        return {
            "router": f"10.{self.region_index}.{self.host // 250}.{self.host % 250 + 2}",
            "snmp": _snmp(self.serial),
            "uplink": uplink,
            "bandwidth_mbps": bw,
            "parent": self.pop,
            "provider": "Tunisie Telecom",
            # RNS: réseau national de la santé; region, then the link's serial
            "circuit_id": f"RNS-{self.region_index:02d}-{self.serial:05d}",
        }


def build_facilities() -> list[dict[str, Any]]:
    facilities: list[dict[str, Any]] = []
    serial = 0
    for r, (gid, gname, gname_ar) in enumerate(GOVERNORATES, start=1):
        pop = f"pop-{gid}"
        facilities.append(
            _facility(
                pop,
                f"Point de présence régional de {gname}",
                f"نقطة التجميع الجهوية {gname_ar}",
                FacilityKind.AGGREGATION_SITE,
                gid,
                {
                    "router": f"10.{r}.0.1",
                    "snmp": _snmp(1),
                    "uplink": {"if_index": 1, "if_name": "xe-0/0/0"},
                    "bandwidth_mbps": 10000,
                    "provider": "Tunisie Telecom",
                    "circuit_id": f"RNS-{r:02d}-BACKBONE",
                },
            )
        )
        link = _RegionLinks(r, pop, serial)

        for n in range(1, UNIVERSITY.get(gid, 0) + 1):
            suffix = QUARTERS_FR[n - 1]
            facilities.append(
                _facility(
                    f"hu-{gid}-{n}",
                    f"Hôpital universitaire de {gname} {suffix}",
                    f"المستشفى الجامعي {gname_ar} {QUARTERS_AR[n - 1]}",
                    FacilityKind.UNIVERSITY_HOSPITAL,
                    gid,
                    link(200),
                )
            )
        facilities.append(
            _facility(
                f"hr-{gid}",
                f"Hôpital régional de {gname}",
                f"المستشفى الجهوي {gname_ar}",
                FacilityKind.REGIONAL_HOSPITAL,
                gid,
                link(100),
            )
        )
        # Specialised centres in the larger governorates.
        for s, (sid, sname, sname_ar) in enumerate(SPECIALITIES):
            if (r + s) % 5 == 0 or (gid in UNIVERSITY and s < 3):
                facilities.append(
                    _facility(
                        f"cs-{sid}-{gid}",
                        f"{sname} de {gname}",
                        f"{sname_ar} {gname_ar}",
                        FacilityKind.SPECIALISED_CENTRE,
                        gid,
                        link(100),
                    )
                )
        districts = 3 + (r * 7) % 5
        for d in range(1, districts + 1):
            facilities.append(
                _facility(
                    f"hc-{gid}-{d}",
                    f"Hôpital de circonscription de {gname} {QUARTERS_FR[d % len(QUARTERS_FR)]}",
                    f"المستشفى المحلي {gname_ar} {QUARTERS_AR[d % len(QUARTERS_AR)]}",
                    FacilityKind.DISTRICT_HOSPITAL,
                    gid,
                    link(50),
                )
            )
        facilities.append(
            _facility(
                f"drs-{gid}",
                f"Direction régionale de la santé de {gname}",
                f"الإدارة الجهوية للصحة {gname_ar}",
                FacilityKind.ADMINISTRATION,
                gid,
                link(50),
            )
        )
        for c in range(1, CONNECTED_PCC_PER_REGION + 1):
            facilities.append(
                _facility(
                    f"csb-{gid}-{c}",
                    f"Centre de santé de base de {gname} {QUARTERS_FR[c % len(QUARTERS_FR)]}",
                    f"مركز الصحة الأساسية {gname_ar} {QUARTERS_AR[c % len(QUARTERS_AR)]}",
                    FacilityKind.PRIMARY_CARE_CENTRE,
                    gid,
                    link(20, if_index=3, name=None),
                )
            )
        serial = link.serial
    # Planned primary-care centres, spread over the regions in proportion to a fixed weight.
    weights = [6, 4, 4, 3, 5, 2, 4, 3, 4, 3, 3, 5, 4, 4, 6, 5, 4, 4, 3, 4, 2, 3, 2, 2]
    total = sum(weights)
    counts = [PLANNED_PCC_TOTAL * w // total for w in weights]
    counts[0] += PLANNED_PCC_TOTAL - sum(counts)
    for (gid, gname, gname_ar), count in zip(GOVERNORATES, counts, strict=True):
        for c in range(CONNECTED_PCC_PER_REGION + 1, CONNECTED_PCC_PER_REGION + 1 + count):
            q = c % len(QUARTERS_FR)
            facilities.append(
                _facility(
                    f"csb-{gid}-{c}",
                    f"Centre de santé de base de {gname} {QUARTERS_FR[q]} {c}",
                    f"مركز الصحة الأساسية {gname_ar} {QUARTERS_AR[q]} {c}",
                    FacilityKind.PRIMARY_CARE_CENTRE,
                    gid,
                    {"bandwidth_mbps": 20, "parent": f"pop-{gid}"},
                    planned=True,
                )
            )
    return facilities


# Platforms: (id, name, name_ar, classification, exposure, tiers spec, backup, retention, depends-on)
# tiers spec: "web:2,app:3,db:2" with sizes picked by platform size class.
_SIZES = {
    "s": {"web": (2, 4, 20), "app": (2, 4, 40), "db": (4, 8, 40), "store": (4, 16, 40), "worker": (2, 4, 40)},
    "m": {"web": (2, 4, 20), "app": (4, 8, 40), "db": (8, 32, 40), "store": (4, 16, 40), "worker": (4, 8, 40)},
    "l": {"web": (4, 8, 20), "app": (8, 16, 40), "db": (16, 64, 80), "store": (8, 32, 40), "worker": (8, 16, 40)},
}
_VOLUMES = {"s": 100, "m": 500, "l": 2000}
_PORTS = {"web": [443], "app": [8443], "db": [5432], "store": [9000], "worker": [8443]}
_ZONES = {"web": "dmz", "app": "app", "db": "data", "store": "data", "worker": "app"}

PLATFORMS: list[tuple[str, str, str, str, str, str, str, str, str | None, list[str]]] = [
    # id, name, name_ar, classification, exposure, tiers, size, backup, retention, depends on (app tiers)
    ("identity", "Identity provider (OIDC)", "مزود الهوية", "administrative", "internal", "app:3,db:2", "m", "gold", "administrative-10y", []),
    ("epr", "Electronic patient record", "الملف الطبي الإلكتروني", "medical", "internal", "app:6,db:3", "l", "gold", "medical-20y", ["identity", "archive", "terminology"]),
    ("appointments", "Appointment booking", "حجز المواعيد", "administrative", "public", "web:3,app:4,db:2", "m", "silver", "administrative-10y", ["identity", "epr"]),
    ("vaccination", "Vaccination campaigns", "حملات التلقيح", "medical", "internal", "app:3,db:2", "m", "gold", "medical-20y", ["identity", "epr"]),
    ("triage", "Emergency triage and waiting rooms", "الفرز في الاستعجالي وقاعات الانتظار", "medical", "internal", "app:3,db:2", "m", "gold", "medical-20y", ["identity", "epr", "beds"]),
    ("eprescription", "E-prescription", "الوصفة الطبية الإلكترونية", "medical", "internal", "app:4,db:2", "m", "gold", "medical-20y", ["identity", "epr", "pharmacies", "drug-registry"]),
    ("pharmacies", "Pharmacies and dispensing", "الصيدليات", "medical", "internal", "app:3,db:2", "m", "gold", "medical-20y", ["identity", "drug-registry", "drug-stock"]),
    ("beds", "Bed availability", "توفر الأسرة", "administrative", "internal", "app:2,db:2", "s", "silver", "administrative-10y", ["identity"]),
    ("equipment", "Medical equipment maintenance", "صيانة التجهيزات الطبية", "administrative", "internal", "app:2,db:1", "s", "silver", "administrative-10y", ["identity", "procurement"]),
    ("notifiable-diseases", "Notifiable diseases surveillance", "ترصد الأمراض ذات التصريح الإجباري", "medical", "internal", "app:2,db:2", "m", "gold", "medical-20y", ["identity", "epr", "statistics"]),
    ("orientation", "Hospital orientation", "التوجيه الاستشفائي", "public", "public", "web:2,app:2,db:1", "s", "bronze", None, ["beds"]),
    ("radiotherapy", "Radiotherapy scheduling", "برمجة العلاج بالأشعة", "medical", "internal", "app:2,db:2", "m", "gold", "medical-20y", ["identity", "epr", "pacs"]),
    ("training", "Medical training", "التكوين الطبي", "administrative", "internal", "app:2,db:1", "s", "bronze", "administrative-10y", ["identity"]),
    ("archive", "Medical and administrative archive", "الأرشيف الطبي والإداري", "medical", "internal", "app:3,db:2,store:4", "l", "gold", "medical-20y", ["identity"]),
    ("central-admin", "Central administration", "الإدارة المركزية", "administrative", "internal", "app:3,db:2", "m", "silver", "administrative-10y", ["identity", "archive", "hr", "finance"]),
    ("hr", "Human resources", "الموارد البشرية", "administrative", "internal", "app:2,db:2", "m", "gold", "administrative-10y", ["identity", "archive"]),
    ("finance", "Finance and budget", "المالية والميزانية", "administrative", "internal", "app:2,db:2", "m", "gold", "administrative-10y", ["identity", "archive"]),
    ("procurement", "Procurement", "الشراءات", "administrative", "internal", "app:2,db:1", "s", "silver", "administrative-10y", ["identity", "finance"]),
    ("lab-results", "Laboratory information system", "نظام معلومات المخابر", "medical", "internal", "app:4,db:2", "l", "gold", "medical-20y", ["identity", "epr", "terminology"]),
    ("pacs", "Medical imaging (PACS)", "الأرشفة والتواصل للصور الطبية", "medical", "internal", "app:4,db:2,store:4", "l", "gold", "medical-20y", ["identity", "epr"]),
    ("blood-bank", "Blood transfusion", "نقل الدم", "medical", "internal", "app:2,db:2", "m", "gold", "medical-20y", ["identity", "epr"]),
    ("dialysis", "Dialysis registry", "سجل تصفية الدم", "medical", "internal", "app:2,db:1", "s", "gold", "medical-20y", ["identity", "epr"]),
    ("cancer-registry", "Cancer registry", "سجل السرطان", "medical", "internal", "app:2,db:1", "s", "gold", "medical-20y", ["identity", "epr", "statistics"]),
    ("maternal-health", "Maternal and child health", "صحة الأم والطفل", "medical", "internal", "app:2,db:2", "m", "gold", "medical-20y", ["identity", "epr", "vaccination"]),
    ("telemedicine", "Telemedicine and tele-expertise", "الطب عن بعد", "medical", "internal", "app:3,db:2", "m", "gold", "medical-20y", ["identity", "epr", "pacs"]),
    ("insurance-gateway", "Health insurance gateway", "بوابة التأمين على المرض", "administrative", "internal", "app:2,db:1", "s", "gold", "administrative-10y", ["identity", "eprescription"]),
    ("statistics", "Health statistics warehouse", "مستودع الإحصاءات الصحية", "administrative", "internal", "app:2,db:2,worker:2", "l", "silver", "administrative-10y", ["identity"]),
    ("open-data", "Open health data portal", "بوابة البيانات الصحية المفتوحة", "public", "public", "web:2,app:2,db:1", "s", "bronze", None, ["statistics"]),
    ("ministry-website", "Ministry website", "موقع الوزارة", "public", "public", "web:3,app:2,db:1", "s", "bronze", None, []),
    ("patient-portal", "Patient portal", "بوابة المريض", "medical", "public", "web:3,app:3,db:2", "m", "gold", "medical-20y", ["identity", "appointments", "epr"]),
    ("ambulance-dispatch", "Emergency medical dispatch (SAMU)", "الإسعاف الطبي الاستعجالي", "medical", "internal", "app:3,db:2", "m", "gold", "medical-20y", ["identity", "beds", "triage"]),
    ("mortality", "Causes of death registry", "سجل أسباب الوفيات", "medical", "internal", "app:2,db:1", "s", "gold", "medical-20y", ["identity", "statistics"]),
    ("drug-stock", "Medicine stock and supply", "مخزون الأدوية والتزويد", "administrative", "internal", "app:2,db:2", "m", "silver", "administrative-10y", ["identity", "procurement"]),
    ("drug-registry", "Drug registry and pharmacovigilance", "سجل الأدوية واليقظة الدوائية", "medical", "internal", "app:2,db:1", "s", "gold", "medical-20y", ["identity"]),
    ("transplant", "Organ transplant registry", "سجل زرع الأعضاء", "medical", "internal", "app:2,db:1", "s", "gold", "medical-20y", ["identity", "epr"]),
    ("terminology", "Terminology and nomenclatures", "المصطلحات والتسميات", "public", "internal", "app:2,db:1", "s", "silver", None, []),
    ("messaging", "Secure health messaging", "المراسلة الصحية الآمنة", "medical", "internal", "app:3,db:2,store:3", "m", "gold", "medical-20y", ["identity"]),
    ("epidemic-intelligence", "Epidemic intelligence", "الرصد الوبائي", "medical", "internal", "app:2,db:1,worker:2", "m", "gold", "medical-20y", ["identity", "notifiable-diseases", "statistics"]),
    ("noc", "Network operations centre (monitoring)", "مركز مراقبة الشبكة", "administrative", "internal", "app:3", "m", "bronze", "operational-1y", []),
    ("backup", "Backup service", "خدمة النسخ الاحتياطي", "administrative", "internal", "app:2,store:4", "l", "gold", "operational-1y", []),
]  # fmt: skip

# Ansible roles the hdc services themselves need, by (platform, tier).
ROLES = {
    ("archive", "app"): ["archive_service"],
    ("archive", "db"): ["postgresql", "backup"],
    ("archive", "store"): ["object_store"],
    ("noc", "app"): ["monitor", "prometheus"],
}


def _tier(platform: str, spec: str, size: str) -> dict[str, Any]:
    name, _, count = spec.partition(":")
    vcpu, ram, disk = _SIZES[size][name]
    zone = "mgmt" if platform in {"noc", "backup"} and name == "app" else _ZONES[name]
    if platform == "backup" and name == "store":
        zone = "backup"
    tier: dict[str, Any] = {
        "name": name,
        "zone": zone,
        "count": int(count),
        "cluster": "kvm-data" if name in {"db", "store"} else "kvm-apps",
        "flavor": {"vcpu": vcpu, "ram_gb": ram, "disk_gb": disk},
        "ports": list(_PORTS[name]) if not (platform == "noc" and name == "app") else [9105, 9090, 9093, 8080],
    }
    if name in {"db", "store"}:
        tier["volume_gb"] = _VOLUMES[size] * (4 if name == "store" else 1)
        tier["storage_pool"] = "objects" if name == "store" else "ssd"
    roles = ROLES.get((platform, name))
    if roles:
        tier["roles"] = roles
    return tier


def build_platforms() -> list[dict[str, Any]]:
    platforms = []
    for pid, name, name_ar, classification, exposure, tiers_spec, size, backup, retention, deps in PLATFORMS:
        specs = tiers_spec.split(",")
        tiers = [_tier(pid, spec, size) for spec in specs]
        names = [t["name"] for t in tiers]
        flows: list[dict[str, Any]] = []
        if "web" in names:
            flows.append({"from_tier": "web", "to_tier": "app", "port": 8443})
        if "db" in names:
            flows.append({"from_tier": "app", "to_tier": "db", "port": 5432})
        if "store" in names and "app" in names:
            flows.append({"from_tier": "app", "to_tier": "store", "port": 9000})
        if "worker" in names:
            flows.append({"from_tier": "worker", "to_tier": "db", "port": 5432})
        for dep in deps:
            flows.append({"from_tier": "app", "to_platform": dep, "to_tier": "app", "port": 8443})
        plat: dict[str, Any] = {
            "id": pid,
            "name": name,
            "name_ar": name_ar,
            "classification": classification,
        }
        if exposure != "internal":
            plat["exposure"] = exposure
        plat["tiers"] = tiers
        if flows:
            plat["flows"] = flows
        plat["backup_class"] = backup
        if retention:
            plat["retention_class"] = retention
        platforms.append(plat)
    return platforms


def build_datacenter() -> dict[str, Any]:
    return {
        "datacenter": {
            "name": "Centre national de données de santé",
            "zones": [
                {"id": "dmz", "kind": "dmz", "name": "Demilitarised zone", "vlan": 100, "subnet": "10.100.0.0/24"},
                {"id": "app", "kind": "application", "name": "Applications", "vlan": 110, "subnet": "10.100.8.0/22"},
                {"id": "data", "kind": "data", "name": "Databases and stores", "vlan": 120, "subnet": "10.100.16.0/22"},
                {"id": "mgmt", "kind": "management", "name": "Management", "vlan": 130, "subnet": "10.100.24.0/24"},
                {"id": "backup", "kind": "backup", "name": "Backup", "vlan": 140, "subnet": "10.100.32.0/24"},
            ],
            "clusters": [
                {
                    "id": "kvm-apps",
                    "name": "Application cluster",
                    "hosts": 12,
                    "vcpu_per_host": 64,
                    "ram_gb_per_host": 512,
                },
                {
                    "id": "kvm-data",
                    "name": "Data cluster",
                    "hosts": 8,
                    "vcpu_per_host": 64,
                    "ram_gb_per_host": 1024,
                    "cpu_overcommit": 2.0,
                },
            ],
            "storage_pools": [
                {"id": "ssd", "name": "Encrypted SSD pool (Ceph RBD)", "kind": "block-ssd", "capacity_gb": 400000},
                {"id": "objects", "name": "Object store disks (Ceph HDD)", "kind": "block-hdd", "capacity_gb": 2000000},
            ],
        }
    }


HEADER = "# Generated by `hdc catalog generate` (inventory/generate.py): edit the generator, not this file.\n"


def national_catalog_files() -> dict[str, dict[str, Any]]:
    return {
        "catalog.yaml": {
            "name": "tunisia",
            "description": (
                "National health network modelled on Tunisia's: 24 governorates, their regional points of "
                "presence, connected hospitals and centres, and the primary-care centres planned next."
            ),
            "regions": [{"id": g, "name": n, "name_ar": a} for g, n, a in GOVERNORATES],
            "backup_classes": [
                {"id": "gold", "schedule": "0 */4 * * *", "keep_days": 90, "offsite": True},
                {"id": "silver", "schedule": "0 1 * * *", "keep_days": 30, "offsite": True},
                {"id": "bronze", "schedule": "0 2 * * 0", "keep_days": 14},
            ],
            "retention_classes": [
                {"id": "medical-20y", "years": 20, "after": "last_document"},
                {"id": "administrative-10y", "years": 10, "after": "creation"},
                {"id": "operational-1y", "years": 1, "after": "creation"},
            ],
        },
        "facilities.yaml": {"facilities": build_facilities()},
        "platforms.yaml": {"platforms": build_platforms()},
        "datacenter.yaml": build_datacenter(),
    }


def render_files() -> dict[str, str]:
    return {
        name: HEADER + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=120)
        for name, doc in national_catalog_files().items()
    }


def write_national_catalog(output: Path) -> list[Path]:
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_files().items():
        path = output / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
