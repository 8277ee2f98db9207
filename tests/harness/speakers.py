"""Settings of the real speakers the lab runs: ucarp (CARP) and keepalived (VRRP).

Each class knows how to build its command line or configuration file and how to describe
itself for a ground-truth sidecar. A description never holds a passphrase, only its label.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

UCARP_MAX_PASS = 19  # ucarp refuses 20 characters ("Password too long"), see the lab README
VRRP_MAX_PASS = 8    # VRRPv2 simple-text authentication carries 8 bytes


def carp_ucarp_mac(vhid: int) -> str:
    """ucarp sends its adverts from 00:00:5e:00:00:<vhid> (not the VRRP/CARP virtual MAC)."""
    return f"00:00:5e:00:00:{vhid:02x}"


def vrrp_vmac(vrid: int, family: int) -> str:
    """RFC 5798 virtual router MAC: 00:00:5e:00:01:<vrid> (IPv4) or 00:00:5e:00:02:<vrid> (IPv6)."""
    return f"00:00:5e:00:{1 if family == 4 else 2:02x}:{vrid:02x}"


@dataclass(frozen=True)
class Ucarp:
    """One ucarp process: one vhid with one VIP (ucarp has no IPv6 and no VIP lists)."""

    host: str
    vhid: int
    passphrase: str
    vip: str
    advbase: int = 1
    advskew: int = 0
    preempt: bool = False
    label: str = "key"              # passphrase label written to the sidecar
    upscript: str | None = None     # default: the lab's event-logging scripts
    downscript: str | None = None
    extra_args: tuple[str, ...] = ()

    impl = "ucarp"
    protocol = "carp"

    def __post_init__(self) -> None:
        if not 1 <= self.vhid <= 255:
            raise ValueError(f"vhid {self.vhid} out of range 1-255")
        if not 0 < len(self.passphrase) <= UCARP_MAX_PASS:
            raise ValueError(f"ucarp takes a passphrase of 1-{UCARP_MAX_PASS} characters")
        if ipaddress.ip_address(self.vip).version != 4:
            raise ValueError("ucarp supports IPv4 VIPs only")

    @property
    def ident(self) -> str:
        return f"carp:{self.vhid}"

    @property
    def tag(self) -> str:
        return f"ucarp-{self.host}-vhid{self.vhid}"

    def argv(self, *, iface: str, src_ip: str, upscript: str, downscript: str) -> list[str]:
        args = ["ucarp", "-i", iface, "-s", src_ip, "-v", str(self.vhid), "-p", self.passphrase,
                "-a", self.vip, "-b", str(self.advbase), "-k", str(self.advskew),
                "-u", self.upscript or upscript, "-d", self.downscript or downscript,
                "-z", "-x", f"{self.host}:{self.vhid}"]
        if self.preempt:
            args.append("-P")
        return args + list(self.extra_args)

    def describe(self, *, src_ip: str, host_mac: str) -> dict:
        return {
            "impl": "ucarp", "protocol": "carp", "host": self.host, "src_ip": src_ip,
            "vhid": self.vhid, "advbase": self.advbase, "advskew": self.advskew,
            "passphrase_label": self.label, "vips": [self.vip], "preempt": self.preempt,
            "dst": "224.0.0.18", "advert_src_mac": carp_ucarp_mac(self.vhid),
        }


@dataclass(frozen=True)
class Keepalived:
    """One keepalived process running one vrrp_instance."""

    host: str
    vrid: int
    priority: int = 100
    vips: tuple[str, ...] = ()          # with prefix length, e.g. "10.0.0.1/24" or "fe80::1/64"
    advert_int: float = 1.0
    version: int = 2
    auth_pass: str | None = None        # VRRPv2 auth_type PASS
    label: str = "vrrp-auth"
    native_ipv6: bool = False
    use_vmac: bool = False
    preempt: bool = True
    unicast_src: str | None = None
    unicast_peers: tuple[str, ...] = ()
    extra_config: str = ""              # raw lines added inside vrrp_instance
    state: str = "BACKUP"               # initial state; MASTER is what an address owner is given

    impl = "keepalived"
    protocol = "vrrp"

    def __post_init__(self) -> None:
        if not 1 <= self.vrid <= 255:
            raise ValueError(f"vrid {self.vrid} out of range 1-255")
        if self.version not in (2, 3):
            raise ValueError("VRRP version must be 2 or 3")
        if self.auth_pass is not None and (self.version != 2 or len(self.auth_pass) > VRRP_MAX_PASS):
            raise ValueError(f"auth PASS is VRRPv2 only, at most {VRRP_MAX_PASS} characters")
        if self.family == 6 and self.version != 3:
            raise ValueError("VRRP over IPv6 needs version 3")
        if self.state not in ("BACKUP", "MASTER"):
            raise ValueError("initial state must be BACKUP or MASTER")

    @property
    def family(self) -> int:
        if self.native_ipv6:
            return 6
        fams = {ipaddress.ip_interface(v).version for v in self.vips}
        return 6 if fams == {6} else 4

    @property
    def ident(self) -> str:
        return f"vrrp:{self.vrid}"

    @property
    def tag(self) -> str:
        return f"keepalived-{self.host}-vrid{self.vrid}"

    def config(self, *, iface: str, fifo: str) -> str:
        """keepalived.conf; its state changes go to the FIFO `fifo`, which the lab reads
        (netns._NotifyFifos says why not a notify script)."""
        lines = [
            "global_defs {", f"    router_id {self.host}", f"    vrrp_notify_fifo {fifo}", "}",
            f"vrrp_instance VI_{self.vrid} {{",
            f"    state {self.state}", f"    interface {iface}",
            f"    virtual_router_id {self.vrid}", f"    priority {self.priority}",
            f"    advert_int {self.advert_int:g}", f"    version {self.version}",
        ]
        if not self.preempt:
            lines.append("    nopreempt")
        if self.native_ipv6:
            lines.append("    native_ipv6")
        if self.use_vmac:
            lines.append(f"    use_vmac vrrp.{self.vrid}")
        if self.auth_pass is not None:
            lines += ["    authentication {", "        auth_type PASS",
                      f"        auth_pass {self.auth_pass}", "    }"]
        if self.unicast_src:
            lines.append(f"    unicast_src_ip {self.unicast_src}")
        if self.unicast_peers:
            lines += ["    unicast_peer {", *(f"        {p}" for p in self.unicast_peers), "    }"]
        if self.extra_config:
            lines += ["    " + ln.strip() for ln in self.extra_config.splitlines() if ln.strip()]
        lines += ["    virtual_ipaddress {", *(f"        {v} dev {iface}" for v in self.vips), "    }",
                  "}", ""]
        return "\n".join(lines)

    def describe(self, *, src_ip: str, host_mac: str) -> dict:
        d = {
            "impl": "keepalived", "protocol": "vrrp", "host": self.host, "src_ip": src_ip,
            "vrid": self.vrid, "vhid": self.vrid, "version": self.version, "family": self.family,
            "priority": self.priority, "advert_int": self.advert_int,
            "auth": "PASS" if self.auth_pass is not None else "none",
            "vips": [str(ipaddress.ip_interface(v).ip) for v in self.vips],
            "preempt": self.preempt, "use_vmac": self.use_vmac,
            "dst": "ff02::12" if self.family == 6 else "224.0.0.18",
            "advert_src_mac": vrrp_vmac(self.vrid, self.family) if self.use_vmac else host_mac,
        }
        if self.auth_pass is not None:
            d["passphrase_label"] = self.label
        if self.unicast_peers:
            d.update(unicast=True, unicast_src_ip=self.unicast_src, unicast_peers=list(self.unicast_peers))
            d["dst"] = list(self.unicast_peers)
        return d


Speaker = Ucarp | Keepalived
