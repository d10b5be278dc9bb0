#!/usr/bin/env python3
"""Bounds for `gpuc bench fgd` on SharingWorkload (docs/scheduling.md, "Measuring fragmentation").

Reads the node and task shapes from src/GpuCommons.Simulation/Benchmarks/SharingWorkload.cs and prints, for the
arrivals up to a requested share of GPU capacity (default 1.3, FGD's method):
  - the per-pool cores and memory per GPU against the workload's;
  - a fluid upper bound (a linear program: any fraction of each task shape on any node shape, within every node
    shape's GPUs, cores and memory, at most the arrivals of each shape): no placement can allocate more;
  - offline packings of the same arrivals (expected counts; seeded draws), each task known in advance, sorted and
    placed first-fit: what a packer that knew the whole sequence reaches with simple rules;
  - the same rules applied online, in arrival order.
Usage: scripts/fgd-bounds.py [requested-share] [seed]. Pure Python, no packages.
"""
import os, random, re, sys

here = os.path.dirname(os.path.abspath(__file__))
src = open(os.path.join(here, '..', 'src', 'GpuCommons.Simulation', 'Benchmarks', 'SharingWorkload.cs')).read()
num = lambda s: int(s.replace('_', ''))
unit = int(re.search(r'CpuUnitsPerCore = (\d+);', src).group(1)) if 'CpuUnitsPerCore' in src else 1
nodes = [(num(a), num(b) * unit, num(c), num(d), e) for a, b, c, d, e in re.findall(r'\(([\d_]+), ([\d_]+), ([\d_]+), (\d+), "(\w+)"\)', src)]
tasks = [(num(a), num(b), int(c), int(d), int(e)) for a, b, c, d, e in re.findall(r'new\(([\d_]+), ([\d_]+), (\d+), (\d+), (\d+)\)', src)]
share = float(sys.argv[1]) if len(sys.argv) > 1 else 1.3
seed = int(sys.argv[2]) if len(sys.argv) > 2 else 1
W = sum(t[4] for t in tasks)
milli = lambda t: t[3] if t[2] == 1 else t[2] * 1000
cap = sum(c * g for c, _, _, g, _ in nodes) * 1000
per_task = sum(t[4] * milli(t) for t in tasks) / W
print(f'workload: {len(nodes)} node shapes, {len(tasks)} task shapes, CPU units per core {unit}')
print('tasks ask %.2f cores and %.1f GiB per GPU' % (sum(t[4] * t[0] for t in tasks) / W / unit / (per_task / 1000), sum(t[4] * t[1] for t in tasks) / W / 1024 / (per_task / 1000)))
pools = {}
for c, cpu, mem, g, m in nodes:
    p = pools.setdefault(m, [0, 0, 0]); p[0] += c * g; p[1] += c * cpu; p[2] += c * mem
for m, (g, cpu, mem) in pools.items():
    print('  %-8s %5d GPUs, %.1f cores and %.1f GiB per GPU' % (m, g, cpu / unit / g, mem / 1024 / g))

def simplex(c, A, b):
    """max c.x, A x <= b, x >= 0, b >= 0 (dense tableau, Dantzig's rule)."""
    m, n = len(A), len(c)
    T = [A[i][:] + [1.0 if j == i else 0.0 for j in range(m)] + [float(b[i])] for i in range(m)]
    z = [-x for x in c] + [0.0] * m + [0.0]
    basis = [n + i for i in range(m)]
    while True:
        e = min((j for j in range(n + m) if z[j] < -1e-9), key=lambda j: z[j], default=None)
        if e is None:
            break
        r, best = None, None
        for i in range(m):
            if T[i][e] > 1e-12:
                q = T[i][-1] / T[i][e]
                if best is None or q < best - 1e-12:
                    best, r = q, i
        pv = T[r][e]; T[r] = [x / pv for x in T[r]]
        for i in range(m):
            if i != r and T[i][e] != 0:
                f = T[i][e]; T[i] = [a - f * bb for a, bb in zip(T[i], T[r])]
        f = z[e]; z = [a - f * bb for a, bb in zip(z, T[r])]
        basis[r] = e
    return z[-1]

N = share * cap / per_task
var = [(s, k) for s, t in enumerate(tasks) for k, (c, cpu, mem, g, m) in enumerate(nodes) if t[0] <= cpu and t[1] <= mem and (1 if t[3] < 1000 and t[2] == 1 else t[2]) <= g]
A, b = [], []
for k, (c, cpu, mem, g, m) in enumerate(nodes):
    A.append([milli(tasks[s]) if kk == k else 0 for s, kk in var]); b.append(c * g * 1000)
    A.append([tasks[s][0] if kk == k else 0 for s, kk in var]); b.append(c * cpu)
    A.append([tasks[s][1] / 1024 if kk == k else 0 for s, kk in var]); b.append(c * mem / 1024)
for s, t in enumerate(tasks):
    A.append([1 if ss == s else 0 for ss, k in var]); b.append(N * t[4] / W)
print('requested %.2f: fluid upper bound on the allocated GPU share %.4f' % (share, simplex([milli(tasks[s]) for s, k in var], A, b) / cap))

rng = random.Random(seed)
arrivals, asked = [], 0
while asked < share * cap:
    r = rng.randrange(W)
    for t in tasks:
        r -= t[4]
        if r < 0:
            arrivals.append(t); asked += milli(t); break

def pack(order, match_ratio):
    """First fit over nodes sorted by cores per GPU (fewest first); the node chosen by best fit on GPUs, or, with
    match_ratio, by the closest free cores per free GPU to the task's cores per GPU."""
    ns = [[cpu, mem, [1000] * g, cpu / g] for c, cpu, mem, g, m in nodes for _ in range(c)]
    ns.sort(key=lambda n: n[3])
    allocated = 0
    for t in order:
        best = None
        for n in ns:
            if n[0] < t[0] or n[1] < t[1]:
                continue
            if t[2] == 1 and t[3] < 1000:
                room = [f for f in n[2] if f >= t[3]]
                if not room:
                    continue
                fit = min(room) - t[3]
            else:
                free = sum(1 for f in n[2] if f == 1000)
                if free < t[2]:
                    continue
                fit = free - t[2]
            key = (abs(n[0] * 1000 / max(1, sum(n[2])) - t[0] * 1000 / milli(t)) if match_ratio else 0, fit)
            if best is None or key < best[0]:
                best = (key, n)
        if best is None:
            continue
        n = best[1]; n[0] -= t[0]; n[1] -= t[1]
        if t[2] == 1 and t[3] < 1000:
            i = min((i for i, f in enumerate(n[2]) if f >= t[3]), key=lambda i: n[2][i]); n[2][i] -= t[3]
        else:
            k = t[2]
            for i in range(len(n[2])):
                if k and n[2][i] == 1000:
                    n[2][i] = 0; k -= 1
        allocated += milli(t)
    return allocated / cap

decreasing = sorted(arrivals, key=lambda t: (-milli(t), t[0] / milli(t)))
print('%d arrivals (seed %d):' % (len(arrivals), seed))
print('  offline, GPUs decreasing, then cores per GPU, best fit:             %.4f' % pack(decreasing, False))
print('  offline, GPUs decreasing, then cores per GPU, closest cores per GPU: %.4f' % pack(decreasing, True))
print('  online (arrival order), best fit:                                  %.4f' % pack(arrivals, False))
print('  online (arrival order), closest cores per GPU:                     %.4f' % pack(arrivals, True))
