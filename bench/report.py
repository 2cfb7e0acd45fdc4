"""Turns the key=value lines of bench_c and bench_py into tables of ns/element with ratios against adamcore, and a
log-log PNG of ns/element against size. Usage: report.py RESULTS... [--png FILE] [--markdown FILE]"""
import argparse
import collections
import math


def read(paths):
    rows, notes = [], []
    for path in paths:
        for line in open(path):
            line = line.strip()
            if line.startswith("#"):
                notes.append(line)
            elif line.startswith("side="):
                row = dict(item.split("=", 1) for item in line.split())
                for key in ("tensors", "elements", "threads"):
                    row[key] = int(row[key])
                for key in ("ns_per_element", "us_per_call"):
                    row[key] = float(row[key])
                rows.append(row)
    return rows, notes


def size_label(row):
    if row["tensors"] > 1:
        return f"{row['tensors']}x{row['elements'] // row['tensors']}"
    n = row["elements"]
    return f"{n >> 20}M" if n >= 1 << 20 else f"{n >> 10}K"


ORDER = ["adamcore", "adamcore_object", "adamcore_object_stats", "roofline", "c_gcc", "adamcore_py", "adamcore_py_stateless", "numpy",
         "torch_foreach", "torch_fused", "deepspeed"]
BASE = {"c": "adamcore", "py": "adamcore_py"}


def tables(rows):
    out = []
    groups = collections.OrderedDict()
    for r in rows:
        groups.setdefault((r["side"], r["algorithm"], r["threads"]), []).append(r)
    for (side, algorithm, threads), items in groups.items():
        contenders = [c for c in ORDER if any(r["contender"] == c for r in items)]
        sizes = list(dict.fromkeys(size_label(r) for r in items))
        by = {(size_label(r), r["contender"]): r for r in items}
        title = "C API" if side == "c" else "Python"
        out.append(f"\n{title}, fp32 {algorithm}, {threads} thread{'s' if threads > 1 else ''}: ns per element "
                   f"(ratio = contender / adamcore; > 1 means adamcore is faster)\n")
        out.append("| size | " + " | ".join(contenders) + " |")
        out.append("|---" * (len(contenders) + 1) + "|")
        for size in sizes:
            base_row = by.get((size, BASE[side])) or by.get((size, "adamcore_object"))
            cells = []
            for c in contenders:
                r = by.get((size, c))
                if r is None:
                    cells.append("")
                    continue
                cell = f"{r['ns_per_element']:.3f}"
                if base_row is not None and r is not base_row and base_row["ns_per_element"] > 0:
                    cell += f" ({r['ns_per_element'] / base_row['ns_per_element']:.2f}x)"
                cells.append(cell)
            out.append(f"| {size} | " + " | ".join(cells) + " |")
        overheads = [(size, by[(size, "adamcore_object_stats")]["ns_per_element"] /
                      by[(size, "adamcore_object")]["ns_per_element"] - 1)
                     for size in sizes if (size, "adamcore_object_stats") in by and (size, "adamcore_object") in by]
        if overheads:
            out.append("\nStatistics on (adamcore_object_stats vs adamcore_object, same run): " +
                       ", ".join(f"{size} {100 * o:+.1f}%" for size, o in overheads))
    return "\n".join(out)


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(15, 5.2), sharey=True)
    for ax, threads in zip(axes, (1, 2)):
        series = collections.defaultdict(list)
        for r in rows:
            if r["algorithm"] == "adam" and r["threads"] == threads and r["tensors"] == 1:
                series[f"{r['contender']} ({'C' if r['side'] == 'c' else 'Python'})"].append(
                    (r["elements"], r["ns_per_element"]))
        for name, points in sorted(series.items()):
            points.sort()
            style = "-o" if name.startswith("adamcore") else "--."
            ax.plot([p[0] for p in points], [p[1] for p in points], style, label=name)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("elements per tensor")
        ax.set_title(f"fp32 Adam step, {threads} thread{'s' if threads > 1 else ''}")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("ns per element (lower is faster)")
    axes[1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("results", nargs="+")
    parser.add_argument("--png")
    parser.add_argument("--markdown")
    args = parser.parse_args()
    rows, notes = read(args.results)
    if not rows:
        raise SystemExit("no results")
    text = "\n".join(notes) + "\n" + tables(rows) + "\n"
    print(text)
    if args.markdown:
        open(args.markdown, "w").write(text)
    if args.png:
        plot(rows, args.png)
        print(f"plot: {args.png}")


if __name__ == "__main__":
    main()
