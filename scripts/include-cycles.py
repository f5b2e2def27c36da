#!/usr/bin/env python3
"""List include cycles between modules (a module is a .c and its .h): A includes B and B
includes A, directly or through other modules. Exit 1 when there is one. Used by `make lint`."""
import os, re, sys
top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
src = os.path.join(top, "userspace")
inc = re.compile(r'^#include "([^"]+)\.h"', re.M)
deps = {}
for d, _, fs in os.walk(src):
    for f in fs:
        if not f.endswith((".c", ".h")):
            continue
        mod = os.path.relpath(os.path.join(d, f), src)[:-2]
        text = open(os.path.join(d, f), errors="replace").read()
        deps.setdefault(mod, set()).update(m for m in inc.findall(text) if m != mod)
mods = set(deps)
graph = {m: {d for d in deps[m] if d in mods} for m in mods}
cycles, state, stack = [], {}, []
def visit(m):
    state[m] = 1; stack.append(m)
    for n in sorted(graph[m]):
        if state.get(n) == 1:
            cycles.append(stack[stack.index(n):] + [n])
        elif n not in state:
            visit(n)
    stack.pop(); state[m] = 2
for m in sorted(mods):
    if m not in state:
        visit(m)
for c in cycles:
    print("include cycle: " + " -> ".join(c))
sys.exit(1 if cycles else 0)
