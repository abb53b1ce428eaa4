#!/usr/bin/env python3
"""The hot code of a callgrind profile: distinct 64-byte lines of machine code run at least
once per call on average, by object and by function. A call that runs more hot lines than the
CPU's L1 instruction cache holds (32 KiB here: 512 lines) fetches most of them again on every
call, whatever order the calls come in.

    code_footprint.py PROFILE CALLS [TOP]

PROFILE must be written with --dump-instr=yes (bench/net/icount_gateway.sh does that when
FOOTPRINT=1 is set). CALLS: the calls the profile covers. TOP: functions listed (20).
"""
import collections
import re
import sys


def read_profile(path):
    """Instruction counts per (object, address), and each address's function."""
    cost = collections.Counter()
    function_of = {}
    names = {}
    obj = fn = None
    last = 0
    skip_next = False  # the cost line after calls= is the call's inclusive cost
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            if line[0].isdigit() or line[0] in "+-*":
                parts = line.split()
                p = parts[0]
                if p.startswith("0x"):
                    addr = int(p, 16)
                elif p[0] in "+-":
                    addr = last + int(p, 0)
                elif p == "*":
                    addr = last
                else:
                    addr = int(p)
                last = addr
                if skip_next:
                    skip_next = False
                    continue
                # positions: instr line, then the Ir count
                cost[(obj, addr)] += int(parts[2]) if len(parts) > 2 else 0
                function_of[(obj, addr)] = fn
                continue
            if line.startswith("calls="):
                skip_next = True
                continue
            m = re.match(r"(c?ob|c?fn|fl|fi|fe)=\((\d+)\)(?: (.*))?", line)
            if m:
                kind, ident, name = m.groups()
                kind = kind.lstrip("c")
                if name:
                    names[(kind, ident)] = name
                if m.group(1) == "ob":
                    obj = names.get(("ob", ident), ident)
                elif m.group(1) == "fn":
                    fn = names.get(("fn", ident), ident)
    return cost, function_of


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    path, calls = sys.argv[1], int(sys.argv[2])
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    cost, function_of = read_profile(path)
    hot = [k for k, ir in cost.items() if ir >= calls]
    lines = {(o, a // 64) for o, a in hot}
    by_obj = collections.Counter(o for o, _ in lines)
    by_fn = collections.defaultdict(set)
    for o, a in hot:
        fn = (function_of[(o, a)] or "?").replace("(anonymous namespace)", "{anon}")
        fn = re.sub(r"\(.*$", "", fn)
        by_fn[(o.rsplit("/", 1)[-1], fn)].add(a // 64)
    print(f"hot code: {len(lines)} lines of 64 bytes = {len(lines) * 64 / 1024:.1f} KiB per call")
    for o, n in by_obj.most_common():
        print(f"  {n:5d} lines  {o}")
    print(f"the {top} functions with the most hot lines:")
    for (o, fn), ls in sorted(by_fn.items(), key=lambda kv: -len(kv[1]))[:top]:
        print(f"  {len(ls):5d}  {fn[:100]}")


if __name__ == "__main__":
    main()
