#!/usr/bin/env python3
"""The connector crate's shape, as ARCHITECTURE.md states it: modules import
downward only (no two sibling modules import each other, directly or round a
loop), and no function is longer than 80 lines. Reads the sources as text:
`crate::`, `super::` and `self::` paths name the modules a file uses (test
modules are left out). Exits 1, naming what breaks the shape."""

import os
import re
import sys

ROOT = os.path.join(os.path.dirname(__file__), "..", "crates", "thena-sf", "src")
MAX_LINES = 80


def modules(root):
    """Each module's path (a tuple) and its source, bin/ left out."""
    mods = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(dirpath, f)
            parts = os.path.relpath(path, root)[:-3].split(os.sep)
            if parts[0] == "bin":
                continue
            if parts[-1] in ("mod", "lib", "main"):
                parts = parts[:-1]
            with open(path, encoding="utf-8") as fh:
                mods[tuple(parts)] = fh.read()
    return mods


def resolve(mods, cur, path):
    """The longest module a `crate::`/`super::`/`self::` path names."""
    segs = path.split("::")
    if segs[0] == "crate":
        base, segs = [], segs[1:]
    elif segs[0] == "super":
        base = list(cur)
        while segs and segs[0] == "super":
            base, segs = base[:-1], segs[1:]
    elif segs[0] == "self":
        base, segs = list(cur), segs[1:]
    else:
        return None
    full = tuple(base + segs)
    for i in range(len(full), -1, -1):
        if full[:i] in mods:
            return full[:i]
    return None


def sibling_edges(mods):
    """(a, b) for every module a whose code uses sibling module b (or
    something inside it); parents and children do not count."""
    edges = {}
    for m, src in mods.items():
        src = re.split(r"#\[cfg\(test\)\]", src)[0]
        used = set()
        for hit in re.finditer(r"\b((?:crate|super|self)(?:::\w+)+)", src):
            used.add(resolve(mods, m, hit.group(1)))
        for hit in re.finditer(r"use\s+(crate|super|self)::\{([^;]*)\};", src, re.S):
            for item in re.findall(r"(\w+)", hit.group(2)):
                used.add(resolve(mods, m, hit.group(1) + "::" + item))
        for t in used - {None, m}:
            i = 0
            while i < min(len(m), len(t)) and m[i] == t[i]:
                i += 1
            if i < len(m) and i < len(t):
                edges.setdefault(m[: i + 1], set()).add(t[: i + 1])
    return edges


def loops(edges):
    """Strongly connected groups of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted("::".join(x) for x in group))

    sys.setrecursionlimit(10000)
    for v in list(edges):
        if v not in index:
            visit(v)
    return out


def long_functions(root):
    """(lines, file, line, name) of every function longer than MAX_LINES."""
    out = []
    fn = re.compile(r"\s*(pub(\([^)]*\))?\s+)?(async\s+)?(const\s+)?(unsafe\s+)?fn\s+(\w+)")
    for dirpath, _, files in os.walk(root):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(dirpath, f)
            with open(path, encoding="utf-8") as fh:
                lines = fh.read().split("\n")
            for i, line in enumerate(lines):
                m = fn.match(line)
                if not m:
                    continue
                depth, started, j = 0, False, i
                while j < len(lines):
                    text = re.sub(r'"(\\.|[^"\\])*"', "", lines[j]).split("//")[0]
                    depth += text.count("{") - text.count("}")
                    started = started or "{" in text
                    if (started and depth <= 0) or (not started and text.rstrip().endswith(";")):
                        break
                    j += 1
                if j - i + 1 > MAX_LINES:
                    out.append((j - i + 1, os.path.relpath(path, root), i + 1, m.group(6)))
    return out


def main():
    mods = modules(ROOT)
    bad = False
    for group in loops(sibling_edges(mods)):
        print("import loop between modules: " + ", ".join(group))
        bad = True
    for n, path, line, name in sorted(long_functions(ROOT), reverse=True):
        print(f"{path}:{line}: fn {name} is {n} lines (at most {MAX_LINES})")
        bad = True
    if bad:
        sys.exit(1)
    print(f"shape: {len(mods)} modules, no import loop, no function over {MAX_LINES} lines")


if __name__ == "__main__":
    main()
