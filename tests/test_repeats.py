"""What repeats.py remembers to recognise a copy: the packets of the last COPY_S to 2 * COPY_S
seconds of a capture point, whatever came between (its rules are tested in test_rules.py)."""
from __future__ import annotations

from carpscope.repeats import COPY_S, MAX_CELLS, Cell, Recent
from carpscope.track import Speaker

try:
    from tests.test_rules import FW1, FW2, VIP, Capture, Carp, expect, run_keyed
except ImportError:          # rootdir-less import mode puts tests/ itself on sys.path
    from test_rules import FW1, FW2, VIP, Capture, Carp, expect, run_keyed


def _cell(ts: float) -> Cell:
    return Cell(ts, COPY_S, -1, Speaker("192.0.2.1", None, "carp"))


def test_a_packet_is_kept_while_a_copy_can_come():
    r = Recent()
    x = _cell(0.0)
    r.add(b"x", x, 0.0)
    for i in range(3000):                       # many others in the same generation
        r.add(i.to_bytes(4, "big"), _cell(0.00001 * i), 0.00001 * i)
    assert r.find(b"x") is x
    r.add(b"later", _cell(0.06), 0.06)          # a new generation: x is in the older one
    assert r.find(b"x") is x                    # ... and found there (it moves to the current)
    r.add(b"later2", _cell(0.12), 0.12)         # another generation: x came along with its copy
    assert r.find(b"x") is x


def test_old_packets_are_forgotten_and_tables_stay_small():
    r = Recent()
    for i in range(20000):                      # 200 s of a packet every 10 ms
        r.add(i.to_bytes(4, "big"), _cell(i * 0.01), i * 0.01)
    assert r.find((0).to_bytes(4, "big")) is None
    assert len(r.cur) + len(r.old) <= 2 * (COPY_S / 0.01) + 2


def test_a_full_generation_begins_a_new_one():
    r = Recent()
    for i in range(3 * MAX_CELLS):              # a burst of distinct packets in one instant
        r.add(i.to_bytes(4, "big"), _cell(1.0), 1.0)
    assert len(r.cur) <= MAX_CELLS and len(r.old) <= MAX_CELLS


def test_a_clock_stepped_back_begins_a_new_generation():
    r = Recent()
    r.add(b"a", _cell(100.0), 100.0)
    r.add(b"b", _cell(10.0), 10.0)              # the capture's clock went back 90 s
    assert r.since == 10.0 and r.find(b"a") is not None
    r.add(b"c", _cell(10.01), 10.01)            # close to the new start: same generation
    assert r.since == 10.0


def test_a_copy_right_after_thousands_of_adverts_is_a_copy(tmp_path):
    """4,095 adverts and then a last one filled the old table (4,096 packets), which was then
    emptied by the next advert (another group's, a millisecond later): the copy of the last one
    that came a millisecond after that was missed and counted as a reflection. Now it is the
    copy it is."""
    a, b = Carp(FW1, 7, vips=(VIP,)), Carp(FW2, 8, vips=(VIP,))
    cap = Capture()
    for i in range(MAX_CELLS - 1):
        cap.add(cap.at(i), a.advert())
    last = a.advert()
    t = cap.at(MAX_CELLS - 1)
    cap.add(t, last)
    cap.add(t + 0.001, b.advert())
    cap.add(t + 0.002, last)
    hit = expect(run_keyed(tmp_path, cap), "advert-copies", vhid=7, speakers=[FW1], cause="reflection")
    assert hit["evidence"]["copies"] == 1 and hit["evidence"]["reflections"] == 0
