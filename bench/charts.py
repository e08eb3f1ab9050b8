#!/usr/bin/env python3
"""SVG charts of the benchmarks' own output (matplotlib, installed with pip if missing).

Usage:
  python3 bench/charts.py memory TABLE OUT.svg     # bench/memory.sh's table
  python3 bench/charts.py policies TABLE OUT.svg   # cargo bench --bench policies' output
bench/throughput.py draws its charts itself (--svg DIR) with the helpers below.
"""

import os
import re
import subprocess
import sys


def pyplot():
    """matplotlib's pyplot on the SVG-capable Agg backend, installing it if needed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "matplotlib"], check=True)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def rows(path):
    """The cells of every Markdown table row in a file (header and rule lines skipped)."""
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("|") or set(line) <= set("|-: "):
                continue
            out.append([c.strip() for c in line.strip("|").split("|")])
    return out


def memory(table, svg):
    """DRAM per key: RSS growth per key for each server, grouped by key count."""
    plt = pyplot()
    data = {}
    for r in rows(table):
        if not r[0].isdigit():
            continue
        data.setdefault(r[1], {})[int(r[0])] = float(r[4])
    counts = sorted({n for d in data.values() for n in d})
    servers = list(data)
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(servers)
    for i, s in enumerate(servers):
        xs = [c + (i - (len(servers) - 1) / 2) * width for c in range(len(counts))]
        ax.bar(xs, [data[s].get(n, 0) for n in counts], width, label=s)
    ax.set_xticks(range(len(counts)), [f"{n:,} keys" for n in counts])
    ax.set_ylabel("RSS growth per key, bytes (lower is better)")
    ax.set_title("DRAM per key: 16-byte keys, 100-byte values")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(svg)


def policies(table, svg):
    """Hit ratio against cache size, one line per policy, one panel per Zipf α."""
    plt = pyplot()
    by_alpha = {}
    names = None
    for r in rows(table):
        if r[0] == "α":
            names = r[2:]
            continue
        if names is None or not re.match(r"^[0-9.]+$", r[0]) or not r[1].endswith("%"):
            continue
        alpha, cache = float(r[0]), float(r[1].rstrip("%"))
        for name, cell in zip(names, r[2:]):
            by_alpha.setdefault(alpha, {}).setdefault(name, []).append((cache, float(cell.split()[0])))
    fig, axes = plt.subplots(1, len(by_alpha), figsize=(4 * len(by_alpha), 3.6), sharey=True)
    axes = axes if hasattr(axes, "__len__") else [axes]
    for ax, (alpha, lines) in zip(axes, sorted(by_alpha.items())):
        for name, pts in lines.items():
            pts.sort()
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
        ax.set_xscale("log")
        ax.set_xlabel("cache size, % of keys")
        ax.set_title(f"Zipf α {alpha}")
    axes[0].set_ylabel("hit ratio (higher is better)")
    axes[-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(svg)


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("memory", "policies"):
        sys.exit(__doc__)
    kind, table, svg = sys.argv[1:]
    os.makedirs(os.path.dirname(os.path.abspath(svg)), exist_ok=True)
    {"memory": memory, "policies": policies}[kind](table, svg)
    print(f"wrote {svg}")


if __name__ == "__main__":
    main()
