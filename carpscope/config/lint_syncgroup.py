"""Lint of keepalived ``vrrp_sync_group``: instances that must change state together should have
the same intended master.

keepalived moves the instances of a sync group as one: an instance goes to MASTER only when
every instance of its group wants to, "prefer backup state to avoid thrashing"
(``vrrp_sync.c`` ``vrrp_sync_can_goto_master``), and when one falls back to BACKUP the others
follow. If the groups the instances belong to are meant to be mastered by different hosts, no
host can be master of all of them: the sync group sits in BACKUP or moves back and forth.
"""
from __future__ import annotations

from carpscope.config.inventory import Declared, HostConfig, Inventory
from carpscope.config.lint_address import group_of
from carpscope.rules import WARNING, declare

CONFIG_SYNC_GROUP = declare("config-sync-group", "CS514", WARNING,
                            "A keepalived sync group ties VRIDs whose intended masters differ", __name__)


def check(hosts: list[HostConfig], inv: Inventory, ctx) -> None:
    for hc in hosts:
        by_name: dict[str, Declared] = {d.instance: d for d in hc.declared if d.instance}
        for sg in hc.sync_groups:
            rows = []
            for iname in sg.instances:
                d = by_name.get(iname)
                g = group_of(inv, d.member) if d else None
                if g is None or len(g.members) < 2:
                    continue        # nothing to compare with: the peer's configuration is not given
                rows.append((iname, g, g.intended_primary()))
            primaries = {p for _, _, p in rows if p is not None}
            if len(primaries) < 2:
                continue
            parts = "; ".join(f"{iname} ({g.protocol} {g.id_word} {g.id}): "
                              f"{p or 'no single intended master'}" for iname, g, p in rows)
            ctx.add(CONFIG_SYNC_GROUP,
                    f"sync group {sg.name} on {hc.host.name} ties instances meant to be mastered by different "
                    f"hosts ({parts}): keepalived keeps a sync group's instances in one state, so no host can "
                    "be master of all of them and the group stays backup or flaps; give the instances of a "
                    "sync group the same priority order on every host, or split the group",
                    rows[0][1], sg.origin, {"host": hc.host.name, "sync_group": sg.name,
                                            "primaries": {i: p for i, _, p in rows}})
