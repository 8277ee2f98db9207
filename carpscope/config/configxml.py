"""pfSense and OPNsense ``config.xml``: the CARP virtual IPs a firewall runs, read as it applies them.

The facts used here come from the two projects' sources (read, not copied):

* ``<virtualip><vip>`` with ``<mode>carp</mode>`` is applied by ``interface_carp_configure()``
  (pfSense ``src/etc/inc/interfaces.inc``; OPNsense ``src/etc/inc/interfaces.inc``) as
  ``ifconfig <if> vhid V advskew S [advbase B] [pass P]`` then ``ifconfig <if> <subnet>/<bits>
  alias vhid V`` (``inet6 ... prefixlen``). The password goes through
  ``addslashes(str_replace(' ', '', password))``: spaces are removed and a backslash is put before
  ``'``, ``"`` and ``\\`` — that string, not the one typed, becomes the CARP key. ``advbase`` is
  only passed when set (the kernel default is 1).
* ``<interface>`` names an entry of ``<interfaces>`` (``wan``, ``lan``, ``opt1``), whose ``<if>``
  is the device and whose ``<ipaddr>/<subnet>`` and ``<ipaddrv6>/<subnetv6>`` are the node's own
  addresses (or ``dhcp``, ``track6``, ...). pfSense skips a CARP VIP on an interface without
  ``<enable>``.
* An IP alias stacked on a CARP VIP joins that vhid (``ifconfig ... alias vhid V``), so its
  address is in the HMAC: pfSense names the CARP VIP in the alias's ``<interface>`` as
  ``_vip<uniqid>`` (``get_configured_vip_detail()`` in ``src/etc/inc/util.inc``; older configs
  used ``<if>_vip<vhid>``, rewritten by ``upgrade_152_to_153()`` in ``upgrade_config.inc``);
  OPNsense keeps the real interface and sets ``<vhid>`` on the alias
  (``interface_ipalias_configure()``).
* OPNsense 24.7 added unicast CARP: ``<peer>``/``<peer6>`` (``Vip.xml`` model), sent as
  ``ifconfig ... vhid V peer P`` (``mcast`` when empty or 224.0.0.18).
* Preemption: pfSense always sets ``net.inet.carp.preempt=1`` (``interfaces_sync_setup()``);
  OPNsense does unless ``<hasync><disablepreempt>`` is set (``src/etc/rc.syshook.d/start/90-carp``).
  CARP maintenance mode (``<virtualip_carp_maintenancemode>``) sends advskew 254 on pfSense and
  sets ``net.inet.carp.demotion=240`` on OPNsense (``carp_set_status.php``, ``early/90-carp``).
* The HA peer is ``<hasync><pfsyncpeerip>`` (pfsync) and ``<synchronizetoip>`` (XMLRPC sync).
* An encrypted backup is a text file that starts ``---- BEGIN config.xml ----`` (pfSense
  ``tagfile_reformat()`` in ``src/etc/inc/crypt.inc``; OPNsense ``Backup/Base.php`` adds
  ``Version:``, ``Cipher:``, ``PBKDF2:`` and ``Hash:`` lines).

Secrets: the VIP passwords are held in `Secret` objects; the user password hashes, the
``<hasync>`` sync password and the certificate keys in the same file are never read.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from carpscope.config.inventory import (
    CARP, ConfigError, Declared, Host, HostConfig, Link, Member, Origin, Secret,
)
from carpscope.config.xmltree import XMLProblem, XNode, parse
from carpscope.files import FileTooLarge, read_limited

MAX_XML = 32 << 20          # a backup with RRD data can be several MiB
ENCRYPTED_TAG = b"---- BEGIN config.xml ----"
ROOTS = {"pfsense": "pfSense", "opnsense": "OPNsense"}

_KEEP_TOP = {"interfaces", "virtualip", "hasync", "sysctl", "vlans", "virtualip_carp_maintenancemode"}


def _keep(path: tuple[str, ...]) -> bool:
    if path[0] == "system":
        return len(path) == 1 or path[1] in ("hostname", "domain")
    return path[0] in _KEEP_TOP


def looks_like(head: bytes) -> bool:
    """Is this (the first bytes of a file) a pfSense/OPNsense config or an encrypted backup?"""
    h = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if h.startswith(ENCRYPTED_TAG):
        return True
    return bool(re.match(rb"(<\?xml[^>]*\?>\s*)?(<!--.*?-->\s*)*<(pfsense|opnsense)[\s>]", h, re.S))


def _encrypted_message(data: bytes) -> str:
    head = data[:600].decode("utf-8", "replace")
    product = "OPNsense" if re.search(r"^Version:\s*OPNsense", head, re.M) else "pfSense/OPNsense"
    cipher = re.search(r"^Cipher:\s*(\S+)", head, re.M)
    how = f" ({cipher.group(1)})" if cipher else ""
    return (f"an encrypted {product} configuration backup{how}: carpscope does not decrypt backups; "
            "export it again without encryption (Diagnostics > Backup & Restore) or restore it and "
            "give /conf/config.xml")


# -------------------------------------------------------------------------------------------------
# what the file says
# -------------------------------------------------------------------------------------------------

@dataclass
class _Iface:
    name: str
    line: int
    device: str | None = None
    enabled: bool = False
    addresses: list[ipaddress.IPv4Interface | ipaddress.IPv6Interface] = field(default_factory=list)
    parent: str | None = None
    vlan: int | None = None


@dataclass
class _Vhid:
    iface: _Iface
    vhid: int
    origin: Origin
    advskew: int | None = None
    advbase: int | None = None
    password: str | None = None
    vips: list[str] = field(default_factory=list)
    prefixes: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = field(default_factory=list)
    peers: list[str] = field(default_factory=list)
    where: dict[str, Origin] = field(default_factory=dict)


def _num(node: XNode, tag: str, lo: int, hi: int, path: str, problems: list[ConfigError],
         what: str) -> tuple[int | None, bool]:
    """(value, ok): a missing or empty element is (None, True); a bad one is reported."""
    c = node.child(tag)
    if c is None or not c.text.strip():
        return None, True
    t = c.text.strip()
    if not re.fullmatch(r"\d{1,6}", t) or not lo <= int(t) <= hi:
        problems.append(ConfigError(f"{what}: <{tag}> must be a number {lo}-{hi}", path, c.line))
        return None, False
    return int(t), True


def _address(text: str | None, bits: str | None) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface | None:
    if not text:
        return None
    addr = text.strip().split("%", 1)[0]
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return None
    b = (bits or "").strip()
    if not re.fullmatch(r"\d{1,3}", b) or int(b) > ip.max_prefixlen:
        b = str(ip.max_prefixlen)
    return ipaddress.ip_interface(f"{ip}/{b}")


def _interfaces(root: XNode) -> dict[str, _Iface]:
    vlans: dict[str, tuple[str, int | None]] = {}
    for v in (root.child("vlans").all("vlan") if root.child("vlans") else []):
        dev, parent, tag = v.value("vlanif"), v.value("if"), v.value("tag")
        if dev and parent:
            vlans[dev] = (parent, int(tag) if tag and tag.isdigit() else None)
    out: dict[str, _Iface] = {}
    ifs = root.child("interfaces")
    for n in (ifs.children if ifs else []):
        i = _Iface(n.tag, n.line, device=n.value("if") or None)
        en = n.child("enable")
        i.enabled = en is not None and en.text.strip() not in ("0",)
        for a, b in (("ipaddr", "subnet"), ("ipaddrv6", "subnetv6")):
            ia = _address(n.value(a), n.value(b))
            if ia is not None:
                i.addresses.append(ia)
        if i.device in vlans:
            i.parent, i.vlan = vlans[i.device]
        out[n.tag] = i
    return out


def effective_password(password: str) -> str:
    """The string pfSense/OPNsense hand to ``ifconfig pass``: spaces removed, then PHP
    ``addslashes`` (a backslash before ``'``, ``"``, ``\\`` and NUL)."""
    out = []
    for ch in password.replace(" ", ""):
        if ch in "'\"\\":
            out.append("\\" + ch)
        elif ch == "\0":
            out.append("\\0")
        else:
            out.append(ch)
    return "".join(out)


def host_from_configxml(path: str, name_hint: str) -> HostConfig:
    """Read one pfSense/OPNsense config.xml into a host with one membership per CARP vhid."""
    try:
        data = read_limited(path, MAX_XML)
    except FileTooLarge:
        raise ConfigError(f"larger than {MAX_XML >> 20} MiB: not a pfSense/OPNsense configuration", path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", path) from None
    if ENCRYPTED_TAG in data[:4096]:
        line = data[:data.index(ENCRYPTED_TAG)].count(b"\n") + 1
        raise ConfigError(_encrypted_message(data[data.index(ENCRYPTED_TAG):]), path, line)
    try:
        root = parse(data, _keep)
    except XMLProblem as exc:
        raise ConfigError(exc.message, path, exc.line) from None
    if root.tag not in ROOTS:
        raise ConfigError(f"not a pfSense/OPNsense config.xml: the root element is <{root.tag}>, "
                          "expected <pfsense> or <opnsense>", path, root.line)
    return _read(root, path, name_hint)


def _read(root: XNode, path: str, name_hint: str) -> HostConfig:
    product = ROOTS[root.tag]
    problems: list[ConfigError] = []
    notes: list[str] = []

    system = root.child("system")
    hn = system.child("hostname") if system else None
    hostname = hn.text.strip() if hn is not None else ""
    domain = system.value("domain") if system else None
    name = hostname or name_hint
    if not hostname:
        notes.append(f"{path}: no <system><hostname>; the host is called {name!r} after the file")
    host = Host(name=name, fqdn=f"{hostname}.{domain}" if hostname and domain else None,
                kind=root.tag, files=(path,))
    host.where["host"] = Origin(path, root.line)
    if hn is not None:
        host.where["name"] = Origin(path, hn.line)

    ifaces = _interfaces(root)
    own: list[str] = []
    for i in ifaces.values():
        own += [str(a) for a in i.addresses]

    # host-wide CARP settings ------------------------------------------------------------------
    hasync = root.child("hasync")
    dis = hasync.child("disablepreempt") if hasync else None
    if root.tag == "opnsense" and dis is not None and dis.text.strip() not in ("", "0"):
        host.preempt = False
        host.where["preempt"] = Origin(path, dis.line)
    else:
        host.preempt = True       # both set net.inet.carp.preempt=1
        host.where["preempt"] = Origin(path, (hasync or root).line)
    sysctl = root.child("sysctl")
    for item in (sysctl.all("item") if sysctl else []):
        if item.value("tunable") == "net.inet.carp.demotion":
            v = item.value("value") or ""
            if re.fullmatch(r"-?\d{1,6}", v):
                host.demotion = int(v)
                host.where["demotion"] = Origin(path, item.line)
    maint = root.child("virtualip_carp_maintenancemode")
    if maint is not None:
        effect = ("every CARP VIP is configured with advskew 254 (advertised as 240)" if root.tag == "pfsense"
                  else "net.inet.carp.demotion is set to 240, so it advertises advskew 240")
        notes.append(f"{Origin(path, maint.line)}: {name} is in CARP maintenance mode: {effect} and stays "
                     "backup while a peer is up")

    ha_peers: list[tuple[str, Origin, str]] = []
    for tag, what in (("pfsyncpeerip", "pfsync peer"), ("synchronizetoip", "configuration sync target")):
        c = hasync.child(tag) if hasync else None
        if c is None or not c.text.strip():
            continue
        m = re.match(r"^(?:https?://)?\[?([0-9A-Fa-f:.]+?)\]?(?::\d+)?/?$", c.text.strip())
        try:
            ha_peers.append((str(ipaddress.ip_address(m.group(1))) if m else "", Origin(path, c.line), what))
        except ValueError:
            pass          # a host name: nothing to compare with addresses

    # the VIPs ------------------------------------------------------------------------------------
    vipnode = root.child("virtualip")
    vips = vipnode.all("vip") if vipnode else []
    vhids: dict[tuple[str, int], _Vhid] = {}
    by_uniqid: dict[str, _Vhid] = {}
    aliases: list[XNode] = []
    for v in vips:
        mode = (v.value("mode") or "").lower()
        if mode == "ipalias":
            aliases.append(v)
            continue
        if mode != "carp":
            continue
        where = Origin(path, v.line)
        ifname = v.value("interface") or ""
        what = f"CARP VIP at line {v.line}"
        iface = ifaces.get(ifname)
        if not ifname:
            problems.append(ConfigError(f"{what} has no <interface>", path, v.line))
            continue
        if iface is None:
            problems.append(ConfigError(f"{what}: interface {ifname!r} is not in <interfaces>",
                                        path, v.child("interface").line))
            continue
        vhid, ok = _num(v, "vhid", 1, 255, path, problems, what)
        if vhid is None:
            if ok:
                problems.append(ConfigError(f"{what} has no <vhid>", path, v.line))
            continue
        advskew, ok1 = _num(v, "advskew", 0, 254, path, problems, what)
        advbase, ok2 = _num(v, "advbase", 1, 254, path, problems, what)
        sub = v.child("subnet")
        addr = _address(sub.text if sub is not None else None, v.value("subnet_bits"))
        if addr is None:
            problems.append(ConfigError(f"{what}: <subnet> is not an IP address" if sub is not None
                                        else f"{what} has no <subnet>", path, (sub or v).line))
            continue
        if not (ok1 and ok2):
            continue           # ifconfig refuses the value: this vhid is not configured
        if not iface.enabled and iface.device != "lo0":
            notes.append(f"{where}: CARP vhid {vhid} on {ifname} is not configured: the interface is not "
                         "enabled (<enable>)")
            continue
        key = (ifname, vhid)
        vh = vhids.get(key)
        if vh is None:
            vh = vhids[key] = _Vhid(iface, vhid, where)
            vh.where["member"] = where
            vh.where["vhid"] = Origin(path, v.child("vhid").line)
        # a second VIP of the same vhid (IPv4 and IPv6 share one): the later ifconfig call wins
        for attr, val, tag in (("advskew", advskew, "advskew"), ("advbase", advbase, "advbase")):
            if val is not None:
                setattr(vh, attr, val)
                vh.where[attr] = Origin(path, v.child(tag).line)
        pw = v.child("password")
        if pw is not None and pw.text != "":
            vh.password = effective_password(pw.text)
            vh.where["passphrase"] = Origin(path, pw.line)
            if vh.password != pw.text:
                notes.append(f"{Origin(path, pw.line)}: {product} removes spaces from a CARP password and puts "
                             "a backslash before quotes and backslashes: the key comes from that changed text, "
                             "which peers that are not pfSense/OPNsense must use")
        if str(addr.ip) not in vh.vips:
            vh.vips.append(str(addr.ip))
        if addr.network.prefixlen < addr.max_prefixlen:
            vh.prefixes.append(addr.network)
        vh.where.setdefault("vips", Origin(path, sub.line))
        for tag, mcast in (("peer", "224.0.0.18"), ("peer6", "ff02::12")):
            p = v.value(tag)
            if p and p.lower() != mcast and p not in vh.peers:
                vh.peers.append(p)
                vh.where["peers"] = Origin(path, v.child(tag).line)
        for uid in (v.value("uniqid"), v.attrs.get("uuid")):
            if uid:
                by_uniqid[uid] = vh

    # IP aliases: stacked on a CARP VIP (part of its vhid) or the node's own addresses -------------
    extra_nets: dict[str, list[ipaddress.IPv4Network | ipaddress.IPv6Network]] = {}
    for v in aliases:
        ifname = v.value("interface") or ""
        sub = v.child("subnet")
        addr = _address(sub.text if sub is not None else None, v.value("subnet_bits"))
        what = f"IP alias VIP at line {v.line}"
        if addr is None:
            problems.append(ConfigError(f"{what}: <subnet> is not an IP address", path, (sub or v).line))
            continue
        target = None
        stacked = False
        if ifname.startswith("_vip"):
            stacked = True
            target = by_uniqid.get(ifname[4:])
        elif "_vip" in ifname:                       # old pfSense: <if>_vip<vhid>
            stacked = True
            base, _, n = ifname.rpartition("_vip")
            target = vhids.get((base, int(n))) if n.isdigit() else None
        else:
            vhid = v.value("vhid")
            if vhid:                                  # OPNsense: same interface, <vhid> set
                stacked = True
                target = vhids.get((ifname, int(vhid))) if vhid.isdigit() else None
        if stacked:
            if target is None:
                problems.append(ConfigError(f"{what} is stacked on {ifname!r}"
                                            + (f" vhid {v.value('vhid')}" if not ifname.startswith("_vip")
                                               and "_vip" not in ifname else "")
                                            + ", which is not a CARP VIP of this file: it is not configured",
                                            path, v.child("interface").line if v.child("interface") else v.line))
                continue
            if str(addr.ip) not in target.vips:
                target.vips.append(str(addr.ip))
            continue
        own.append(str(addr))
        if addr.network.prefixlen < addr.max_prefixlen:
            extra_nets.setdefault(ifname, []).append(addr.network)

    # memberships -------------------------------------------------------------------------------
    declared: list[Declared] = []
    labels: set[str] = set()
    for (ifname, vhid), vh in vhids.items():
        i = vh.iface
        label = f"{name}:vhid{vhid}"
        if label in labels:
            label = f"{name}:{i.device or ifname}:vhid{vhid}"
        labels.add(label)
        secret = Secret(label, value=vh.password, origin=vh.where["passphrase"]) if vh.password else None
        advskew = vh.advskew
        where = dict(vh.where)
        if maint is not None and root.tag == "pfsense":
            advskew = 254
            where["advskew"] = Origin(path, maint.line)
        m = Member(host=name, advskew=advskew, advbase=vh.advbase, vips=tuple(vh.vips), passphrase=secret,
                   interface=i.device or ifname, peers=tuple(vh.peers), implementation="freebsd")
        m.where = where
        m.where.setdefault("preempt", host.where["preempt"])
        nets = [a.network for a in i.addresses if a.network.prefixlen < a.max_prefixlen]
        nets += extra_nets.get(ifname, [])
        network = next((str(n) for n in nets if n.version == 4), None) or next(
            (str(n) for n in nets if not n.is_link_local), None)
        if network is None and vh.prefixes:
            # the interface's own address is dynamic (dhcp, track6): the VIP's subnet names it
            network = str(vh.prefixes[0])
        link = Link(interface=i.device or ifname, parent=i.parent, vlan=i.vlan, network=network,
                    networks=tuple(dict.fromkeys(str(n) for n in nets)))
        declared.append(Declared(CARP, vhid, link, m))

    if not declared and not problems:
        notes.append(f"{path}: no CARP virtual IP (<virtualip><vip> with <mode>carp</mode>)")
    host.addresses = tuple(dict.fromkeys(own))
    return HostConfig(host=host, declared=declared, problems=problems, notes=notes, ha_peers=ha_peers)
