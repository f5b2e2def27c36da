#!/usr/bin/env python3
"""List include cycles between modules: a module is a .c and its .h; a header with no .c of
its own (types only, or a module group's private header such as admin_int.h) belongs to
whoever includes it, so its includes count as theirs. Module A depends on module B when A's
files include B's header, directly or through such headers. Exit 1 when A and B depend on
each other, directly or through other modules. Run by tests/suites/layout.sh."""
import os, re, sys

top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
src = os.path.join(top, "userspace")
inc = re.compile(r'^#include "([^"]+)\.h"', re.M)
files = {}
for d, _, fs in os.walk(src):
    for f in fs:
        if f.endswith((".c", ".h")):
            p = os.path.join(d, f)
            files[os.path.relpath(p, src)] = inc.findall(open(p, errors="replace").read())
modules = {f[:-2] for f in files if f.endswith(".c")}

def reach(name, seen):
    """Modules a file's includes reach, looking through header-only headers."""
    out = set()
    for h in files.get(name, []):
        if h in modules:
            out.add(h)
        elif h + ".h" in files and h not in seen:
            seen.add(h)
            out |= reach(h + ".h", seen)
    return out

graph = {}
for m in modules:
    deps = reach(m + ".c", set()) | reach(m + ".h", set())
    graph[m] = {d for d in deps if d != m}

cycles, state, stack = [], {}, []
def visit(m):
    state[m] = 1
    stack.append(m)
    for n in sorted(graph[m]):
        if state.get(n) == 1:
            cycles.append(stack[stack.index(n):] + [n])
        elif n not in state:
            visit(n)
    stack.pop()
    state[m] = 2

for m in sorted(modules):
    if m not in state:
        visit(m)
for c in cycles:
    print("include cycle: " + " -> ".join(c))
sys.exit(1 if cycles else 0)
