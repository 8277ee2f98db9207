import json, os, struct, sys, time
sys.path.insert(0, os.environ.get("ENGPATH", "."))
import eng
print(eng.__file__, file=sys.stderr)
path = sys.argv[1]
keys = {}
for line in open(path.replace(".pcap", ".keys")):
    l, s = line.rstrip("\n").split(":", 1)
    keys[l] = s.encode()[:19].ljust(20, b"\0")
man = json.load(open(path.replace(".pcap", ".json")))
import socket
vips = {}
for v in man["vip_args"]:
    vh, a = v.split("=")
    vips[int(vh)] = [socket.inet_aton(x) for x in a.split(",")]
t0 = time.perf_counter()
data = open(path, "rb").read()
frames = []
off, n = 24, 0
while off < len(data):
    s, us, incl, orig = struct.unpack_from("<IIII", data, off)
    n += 1
    frames.append((n, s + us * 1e-6, data[off + 16:off + 16 + incl]))
    off += 16 + incl
t1 = time.perf_counter()
e = eng.Engine(eng.Verifier(keys, vips))
e.batch(frames, path)
t2 = time.perf_counter()
ok = sum(sp.ok for g in e.groups.values() for sp in g.speakers.values())
ch = sum(g.n_changes for g in e.groups.values())
print(f"read {t1-t0:.3f}s engine {t2-t1:.3f}s = {(t2-t1)/len(frames)*1e6:.2f} us/frame; adverts {e.adverts} copies {e.copied} ok {ok} changes {ch}")
