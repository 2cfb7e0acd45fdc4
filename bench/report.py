"""Turns the key=value lines of bench_c and bench_py into tables, and a log-log PNG of ns/element against size.

Each figure is the median over interleaved rounds with its min-max, and GB/s from the update's bytes per element
(fp32 Adam 28 B: read p, g, m, v, write p, m, v). Ratios are against adamcore (C: the stateless call, Python:
adamcore_py); adamcore.torch against torch.optim.Adam(fused=True) is its own table, with the ratio taken round by
round (the rounds are interleaved, so each pair ran under the same machine load). Contenders that could not run are
shown as missing with their reason. Also reads the older one-figure-per-line files (best-of-7, no spread).
The C bandwidth probe (group=bandwidth) comes first: this machine's memory limit, with adamcore against the best
28-byte loop. Every table names the CPU of its side's run (bench_c's '# cpu:' line, bench_py's '# machine: cpu:').

Usage: report.py RESULTS... [--png FILE] [--markdown FILE]
"""
import argparse
import collections
import statistics

INTS = ("tensors", "elements", "threads", "rounds", "reps", "bytes_per_element")
FLOATS = ("ns_per_element", "us_per_call", "ns_min", "ns_q1", "ns_q3", "ns_max", "others_cpus")


def read(paths):
    rows, notes, missing = [], [], []
    for path in paths:
        for line in open(path):
            line = line.strip()
            if line.startswith("#"):
                notes.append(line)
            elif line.startswith("side="):
                row = dict(item.split("=", 1) for item in line.split())
                for key in INTS:
                    if key in row:
                        row[key] = int(row[key])
                for key in FLOATS:
                    if key in row:
                        row[key] = float(row[key])
                if "us_rounds" in row:
                    row["us_rounds"] = [float(x) for x in row["us_rounds"].split(",") if x]
                row.setdefault("group", "sizes")
                rows.append(row)
            elif line.startswith("missing "):
                head, _, reason = line[len("missing "):].partition(" reason=")
                row = dict(item.split("=", 1) for item in head.split())
                for key in ("tensors", "elements", "threads"):
                    row[key] = int(row[key])
                row["reason"] = reason or "unknown"
                row.setdefault("group", "sizes")
                missing.append(row)
    return rows, notes, missing


def size_label(row):
    n, t = row["elements"], row["tensors"]
    per = n // t

    def short(k):
        if k >= 1 << 20 and k % (1 << 20) == 0:
            return f"{k >> 20}M"
        if k >= 1 << 10 and k % (1 << 10) == 0:
            return f"{k >> 10}K"
        return str(k)
    return f"{t}x{short(per)}" if t > 1 else (short(n) if short(n) != str(n) else f"1x{n}")


def bytes_per_element(row):
    return row.get("bytes_per_element") or (36 if row.get("algorithm") == "amsgrad" else 28)


def gbps(row, ns=None):
    ns = row["ns_per_element"] if ns is None else ns
    return bytes_per_element(row) / ns if ns > 0 else float("nan")


def spread(row, scale=1.0, fmt="{:.3f}"):
    """'median (min-max)' of a row's ns/element times scale (or the median alone for old files)."""
    text = fmt.format(row["ns_per_element"] * scale)
    if "ns_min" in row:
        text += f" ({fmt.format(row['ns_min'] * scale)}–{fmt.format(row['ns_max'] * scale)})"
    return text


def us_spread(row):
    return spread(row, scale=row["elements"] / 1000.0, fmt="{:.1f}" if row["us_per_call"] >= 10 else "{:.2f}")


def paired(a, b):
    """Per-round ratios a/b of two rows timed in the same interleaved rounds: (median, min, max), or from medians."""
    ra, rb = a.get("us_rounds"), b.get("us_rounds")
    if ra and rb:
        ratios = sorted(x / y for x, y in zip(ra, rb) if y > 0)
        if ratios:
            return statistics.median(ratios), ratios[0], ratios[-1]
    r = a["us_per_call"] / b["us_per_call"]
    return r, None, None


def ratio_text(r):
    med, lo, hi = r
    return f"{med:.2f}x" + (f" ({lo:.2f}–{hi:.2f})" if lo is not None else "")


ORDER = ["adamcore", "adamcore_avx2", "adamcore_avx512", "adamcore_object", "adamcore_object_stats", "roofline",
         "c_gcc", "adamcore_py", "adamcore_py_stateless", "adamcore_torch", "numpy", "torch_foreach", "torch_fused",
         "deepspeed"]
BASE = {"c": "adamcore", "py": "adamcore_py"}


def footnotes(missing_rows):
    reasons = collections.OrderedDict()
    for m in missing_rows:
        reasons.setdefault((m["contender"], m["reason"]), []).append(size_label(m))
    return [f"- {name}: missing: {reason}" + ("" if len(labels) > 4 else f" ({', '.join(labels)})")
            for (name, reason), labels in reasons.items()]


def roofline_for(rows):
    """(algorithm, tensors, elements, threads) -> the C roofline row of the size sweep."""
    return {(r["algorithm"], r["tensors"], r["elements"], r["threads"]): r for r in rows
            if r["side"] == "c" and r["contender"] == "roofline" and r["group"] == "sizes"}


def cpus(notes):
    """side -> the CPU its run measured ('' when its file has no CPU line), distinct lines joined."""
    found = {"c": [], "py": []}
    for note in notes:
        for side, prefix in (("c", "# cpu:"), ("py", "# machine: cpu:")):
            if note.startswith(prefix):
                text = note[len(prefix):].strip()
                if text not in found[side]:
                    found[side].append(text)
    return {side: "; ".join(texts) for side, texts in found.items()}


def on(cpu):
    return f"; CPU: {cpu}" if cpu else ""


def tables(rows, missing, cpu):
    out = []
    roof = roofline_for(rows)
    groups = collections.OrderedDict()
    for r in rows + missing:
        if r["group"] == "sizes":
            groups.setdefault((r["side"], r["algorithm"], r["threads"]), {"rows": [], "missing": []})
            groups[(r["side"], r["algorithm"], r["threads"])]["rows" if "reason" not in r else "missing"].append(r)
    for (side, algorithm, threads), found in groups.items():
        items, lost = found["rows"], found["missing"]
        names = {r["contender"] for r in items + lost}
        contenders = [c for c in ORDER if c in names] + sorted(names - set(ORDER))
        sizes = list(dict.fromkeys(size_label(r) for r in items + lost))
        by = {(size_label(r), r["contender"]): r for r in items}
        lost_by = {(size_label(r), r["contender"]): r for r in lost}
        with_roof = side == "py" and any((algorithm, r["tensors"], r["elements"], threads) in roof for r in items)
        title = "C API" if side == "c" else "Python"
        rounds = max((r.get("rounds", 0) for r in items), default=0)
        out.append(f"\n{title}, fp32 {algorithm}, {threads} thread{'s' if threads > 1 else ''}: ns per element, "
                   + (f"median (min–max) of {rounds} interleaved rounds" if rounds else "best round")
                   + f"; GB/s at {bytes_per_element(items[0]) if items else 28} B/element; ratio = contender / "
                   f"{BASE[side]} (> 1 means adamcore is faster){on(cpu[side])}\n")
        header = contenders + (["roofline (C)"] if with_roof else [])
        out.append("| size | " + " | ".join(header) + " |")
        out.append("|---" * (len(header) + 1) + "|")
        for size in sizes:
            base_row = by.get((size, BASE[side])) or by.get((size, "adamcore_object"))
            cells = []
            for c in contenders:
                r = by.get((size, c))
                if r is None:
                    cells.append("missing" if (size, c) in lost_by else "")
                    continue
                cell = f"{spread(r)}, {gbps(r):.1f} GB/s"
                if base_row is not None and r is not base_row and base_row["ns_per_element"] > 0:
                    cell += f", {r['ns_per_element'] / base_row['ns_per_element']:.2f}x"
                cells.append(cell)
            if with_roof:
                any_row = next((by[(size, c)] for c in contenders if (size, c) in by), None)
                rr = any_row and roof.get((algorithm, any_row["tensors"], any_row["elements"], threads))
                cells.append(f"{rr['ns_per_element']:.3f}, {gbps(rr):.1f} GB/s" if rr else "")
            out.append(f"| {size} | " + " | ".join(cells) + " |")
        out.extend([""] + footnotes(lost) if lost else [])
        busy = [r["others_cpus"] for r in items if "others_cpus" in r]
        if busy:
            out.append(f"\nOther processes kept {min(busy):.2f}–{max(busy):.2f} CPUs busy on average while these "
                       "sizes were timed (0 = the machine was ours).")
        overheads = [(size, by[(size, "adamcore_object_stats")]["ns_per_element"] /
                      by[(size, "adamcore_object")]["ns_per_element"] - 1)
                     for size in sizes if (size, "adamcore_object_stats") in by and (size, "adamcore_object") in by]
        if overheads:
            out.append("\nStatistics on (adamcore_object_stats vs adamcore_object, same run): " +
                       ", ".join(f"{size} {100 * o:+.1f}%" for size, o in overheads))
    return "\n".join(out)


def torch_table(rows, missing, cpu):
    """adamcore.torch against torch.optim.Adam(fused=True), layout by layout, from the Python size sweep."""
    py = [r for r in rows if r["side"] == "py" and r["group"] == "sizes" and r["algorithm"] == "adam"]
    lost = [m for m in missing if m["side"] == "py" and m["group"] == "sizes"]
    if not any(r["contender"] in ("adamcore_torch", "torch_fused") for r in py) and \
            not any(m["contender"] in ("adamcore_torch", "torch_fused") for m in lost):
        return ""
    roof = roofline_for(rows)
    by = {(r["threads"], size_label(r), r["contender"]): r for r in py}
    why = {(m["threads"], size_label(m), m["contender"]): m["reason"] for m in lost}
    keys = list(dict.fromkeys((r["threads"], size_label(r), r["tensors"], r["elements"]) for r in py + lost))
    out = ["\nadamcore.torch.Adam vs torch.optim.Adam(fused=True), Python, fp32 CPU tensors, grads set once, only "
           "opt.step() timed. us per step: median (min–max) of interleaved rounds; speedup = torch fused time / "
           "adamcore.torch time, the median (min–max) of the per-round ratios; GB/s at 28 B/element"
           f"{on(cpu['py'])}\n",
           "| threads | layout | torch fused us | adamcore.torch us | speedup | adamcore.torch GB/s | "
           "torch fused GB/s | roofline (C) GB/s | other processes' CPUs |",
           "|---|---|---|---|---|---|---|---|---|"]
    for threads, label, tensors, elements in keys:
        fused, mine = by.get((threads, label, "torch_fused")), by.get((threads, label, "adamcore_torch"))
        cells = []
        for r, name in ((fused, "torch_fused"), (mine, "adamcore_torch")):
            cells.append(us_spread(r) if r else f"missing: {why.get((threads, label, name), 'not run')}")
        cells.append(ratio_text(paired(fused, mine)) if fused and mine else "")
        cells.append(f"{gbps(mine):.2f}" if mine else "")
        cells.append(f"{gbps(fused):.2f}" if fused else "")
        rr = roof.get(("adam", tensors, elements, threads))
        cells.append(f"{gbps(rr):.1f}" if rr else "")
        busy = (mine or fused or {}).get("others_cpus")
        cells.append(f"{busy:.2f}" if busy is not None else "")
        out.append(f"| {threads} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def pertensor_tables(rows, missing, cpu):
    pt = [r for r in rows if r["side"] == "py" and r["group"] == "pertensor"]
    lost = [m for m in missing if m["side"] == "py" and m["group"] == "pertensor"]
    if not pt and not lost:
        return ""
    by = {(r["threads"], r["contender"], r["tensors"]): r for r in pt}
    threads_list = sorted({r["threads"] for r in pt + lost})
    out = ["\nPer-tensor overhead, Python (1000x64 and 1x64000 interleaved in the same rounds): "
           "(t[1000x64] − t[1x64000]) / 1000, i.e. the step's cost per extra tensor beyond the same elements in one "
           f"tensor; median (min–max) over the per-round differences{on(cpu['py'])}\n",
           "| threads | contender | 1000x64 us | 1x64000 us | overhead per tensor, ns |",
           "|---|---|---|---|---|"]
    for threads in threads_list:
        for name in ("adamcore_py", "adamcore_torch", "torch_fused"):
            many, flat = by.get((threads, name, 1000)), by.get((threads, name, 1))
            if many is None or flat is None:
                reason = next((m["reason"] for m in lost if m["threads"] == threads and m["contender"] == name), None)
                if reason:
                    out.append(f"| {threads} | {name} | missing: {reason} | | |")
                continue
            ra, rb = many.get("us_rounds"), flat.get("us_rounds")
            # us difference over 1000 tensors = ns per tensor
            diffs = (sorted(a - b for a, b in zip(ra, rb)) if ra and rb
                     else [many["us_per_call"] - flat["us_per_call"]])
            text = f"{statistics.median(diffs):.1f}"
            if len(diffs) > 1:
                text += f" ({diffs[0]:.1f}–{diffs[-1]:.1f})"
            out.append(f"| {threads} | {name} | {us_spread(many)} | {us_spread(flat)} | {text} |")
    out += ["\nGradient objects, Python, 1000x64, only opt.step() timed (each step timed alone after an untimed "
            "gradient update): 'in place' rewrites the same .grad tensors (zero_grad(set_to_none=False) + backward), "
            "'new' assigns new tensors after setting .grad to None (zero_grad(set_to_none=True) + backward); "
            f"us per step, median (min–max); new / in place per round{on(cpu['py'])}\n",
            "| threads | optimizer | grads set once | in place | new tensors | new / in place |",
            "|---|---|---|---|---|---|"]
    for threads in threads_list:
        for name in ("adamcore_torch", "torch_fused"):
            once, inplace, new = (by.get((threads, n, 1000)) for n in (name, f"{name}_grads_inplace",
                                                                        f"{name}_grads_new"))
            cells = []
            for r, n in ((once, name), (inplace, f"{name}_grads_inplace"), (new, f"{name}_grads_new")):
                reason = next((m["reason"] for m in lost if m["threads"] == threads and m["contender"] == n), "")
                cells.append(us_spread(r) if r else (f"missing: {reason}" if reason else ""))
            cells.append(ratio_text(paired(new, inplace)) if new and inplace else "")
            out.append(f"| {threads} | {name} | " + " | ".join(cells) + " |")
    busy = [r["others_cpus"] for r in pt if "others_cpus" in r]
    if busy:
        out.append(f"\nOther processes kept {min(busy):.2f}–{max(busy):.2f} CPUs busy on average while these "
                   "were timed.")
    return "\n".join(out)


def mixed_tables(rows, missing, cpu):
    """Mixed precision (issue 13). C: each layout's object step beside the roofline of the same bytes and the
    float32 object step, ratios of times taken round by round. Python: bf16 parameters through every face, against
    torch's fused step in its own layout (bf16 state) and DeepSpeed's CPUAdam (float32 state)."""
    mixed = [r for r in rows if r["group"] == "mixed"]
    lost = [m for m in missing if m["group"] == "mixed"]
    if not mixed and not lost:
        return ""
    out = []
    c = {(r["algorithm"], r["elements"], r["threads"], r["contender"]): r for r in mixed if r["side"] == "c"}
    layouts = list(dict.fromkeys(r["algorithm"] for r in mixed if r["side"] == "c"))
    if layouts:
        out += ["\nMixed precision, C (optimizer object, Adam): ns per element (GB/s); time / roofline's and time / "
                f"the float32 object step's, median (min–max) over paired rounds{on(cpu['c'])}\n",
                "| layout | B/elem | size | threads | adamcore | roofline, same bytes | / roofline | float32 step | / float32 |",
                "|---|---|---|---|---|---|---|---|---|"]
        for layout in layouts:
            for threads in (1, 2):
                for n in sorted({k[1] for k in c if k[0] == layout}):
                    me, roof, f32 = (c.get((layout, n, threads, k)) for k in ("adamcore_object", "roofline",
                                                                              "adamcore_object_fp32"))
                    if not me:
                        continue
                    cells = [layout, str(bytes_per_element(me)), size_label(me), str(threads),
                             f"{spread(me)} ({gbps(me):.0f})"]
                    cells += [f"{spread(roof)} ({gbps(roof):.0f})", ratio_text(paired(me, roof))] if roof else ["", ""]
                    cells += [spread(f32), ratio_text(paired(me, f32))] if f32 else ["", ""]
                    out.append("| " + " | ".join(cells) + " |")
    py = {(r["elements"], r["threads"], r["contender"]): r for r in mixed if r["side"] == "py"}
    names = ["torch_fused_bf16", "adamcore_torch_bf16_state", "adamcore_torch_fp32_state", "adamcore_torch_master",
             "deepspeed_fp32_state", "adamcore_offload_bf16"]
    if py or lost:
        out += ["\nMixed precision, Python, bf16 parameters and gradients (Adam): ns per element (B/elem); speedup = "
                "torch fused's time / this one's (torch keeps bf16 state), and DeepSpeed CPUAdam's / this one's "
                f"(float32 state both), per paired round{on(cpu['py'])}\n",
                "| size | threads | contender | B/elem | ns/element | vs torch fused bf16 | vs DeepSpeed |",
                "|---|---|---|---|---|---|---|"]
        for threads in (1, 2):
            for n in sorted({k[0] for k in py if k[1] == threads}):
                torch_row, ds_row = py.get((n, threads, "torch_fused_bf16")), py.get((n, threads, "deepspeed_fp32_state"))
                for name in names:
                    r = py.get((n, threads, name))
                    if r is None:
                        reason = next((m["reason"] for m in lost if m["threads"] == threads and m["contender"] == name
                                       and m["elements"] == n), None)
                        if reason:
                            out.append(f"| {n} | {threads} | {name} | | missing: {reason} | | |")
                        continue
                    vs_torch = ratio_text(paired(torch_row, r)) if torch_row and name != "torch_fused_bf16" else ""
                    vs_ds = ratio_text(paired(ds_row, r)) if ds_row and name.startswith("adamcore") else ""
                    out.append(f"| {size_label(r)} | {threads} | {name} | {bytes_per_element(r)} | {spread(r)} | "
                               f"{vs_torch} | {vs_ds} |")
    return "\n".join(out)


BANDWIDTH = ["copy", "roofline", "roofline_prefetch", "adamcore"]


def best_loop_ratio(loops, mine):
    """Best 28-byte loop's time / adamcore's, per interleaved round (the faster loop of each round): (median, min,
    max), or from the medians for rows without rounds."""
    rounds = [r.get("us_rounds") for r in loops]
    if all(rounds) and mine.get("us_rounds"):
        ratios = sorted(min(ts) / m for *ts, m in zip(*rounds, mine["us_rounds"]) if m > 0)
        if ratios:
            return statistics.median(ratios), ratios[0], ratios[-1]
    return min(r["us_per_call"] for r in loops) / mine["us_per_call"], None, None


def bandwidth_table(rows, cpu):
    """The C bandwidth probe: this machine's memory limit out of cache, and adamcore's step against it."""
    bw = [r for r in rows if r["side"] == "c" and r["group"] == "bandwidth"]
    if not bw:
        return ""
    by = {(r["elements"], r["threads"], r["contender"]): r for r in bw}
    rounds = max(r.get("rounds", 0) for r in bw)
    out = [f"\nMemory bandwidth probe (C){on(cpu['c'])}. ns per element, median (min–max) of {rounds} interleaved "
           "rounds, and GB/s at the bytes each moves: copy 8 B/element (b = a; the write-allocate read of b is not "
           "counted), the 28-byte loops and adamcore's fp32 Adam step 28 B (read p, g, m, v; write p, m, v). "
           "roofline_prefetch is the roofline loop with a software prefetch of each stream 2 KiB ahead. adamcore / "
           "best 28-byte loop = the faster loop's time / adamcore's, per round (≥ 1: adamcore runs at this "
           "machine's limit)\n",
           "| size | threads | " + " | ".join(BANDWIDTH) + " | adamcore / best 28-byte loop |",
           "|---" * (len(BANDWIDTH) + 3) + "|"]
    limits = []
    for n in sorted({r["elements"] for r in bw}):
        for threads in sorted({r["threads"] for r in bw if r["elements"] == n}):
            found = [by.get((n, threads, c)) for c in BANDWIDTH]
            cells = [f"{spread(r)}, {gbps(r):.1f} GB/s" if r else "" for r in found]
            loops, mine = [r for r in found[1:3] if r], found[3]
            cells.append(ratio_text(best_loop_ratio(loops, mine)) if loops and mine else "")
            size = size_label(next(r for r in found if r))
            out.append(f"| {size} | {threads} | " + " | ".join(cells) + " |")
            if loops:
                best = min(loops, key=lambda r: r["ns_per_element"])
                limits.append((n, threads, size, found[0], best))
    largest = max(n for n, *_ in limits) if limits else None
    stated = [f"{threads} thread{'s' if threads > 1 else ''}: {gbps(best):.1f} GB/s ({best['contender']})"
              + (f", copy {gbps(c):.1f} GB/s" if c else "")
              for n, threads, size, c, best in limits if n == largest]
    if stated:
        # The footprint says whether the size is out of cache (quick runs probe 1M: 16 MiB, L3-resident on many CPUs).
        out.append(f"\nThis machine's limit for a 28-byte update at {size_label({'elements': largest, 'tensors': 1})}"
                   f" (p, g, m, v: {16 * largest / 2 ** 20:.0f} MiB): " + "; ".join(stated) + ".")
    return "\n".join(out)


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(15, 5.2), sharey=True)
    for ax, threads in zip(axes, (1, 2)):
        series = collections.defaultdict(list)
        for r in rows:
            if r["algorithm"] == "adam" and r["threads"] == threads and r["tensors"] == 1 and r["group"] == "sizes":
                series[f"{r['contender']} ({'C' if r['side'] == 'c' else 'Python'})"].append(
                    (r["elements"], r["ns_per_element"], r.get("ns_min"), r.get("ns_max")))
        for name, points in sorted(series.items()):
            points.sort()
            style = "-o" if name.startswith("adamcore") else "--."
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            if all(p[2] is not None for p in points):
                yerr = [[y - p[2] for y, p in zip(ys, points)], [p[3] - y for y, p in zip(ys, points)]]
                ax.errorbar(xs, ys, yerr=yerr, fmt=style, label=name, capsize=2)
            else:
                ax.plot(xs, ys, style, label=name)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("elements per tensor")
        ax.set_title(f"fp32 Adam step, {threads} thread{'s' if threads > 1 else ''} (median, min–max)")
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
    rows, notes, missing = read(args.results)
    if not rows and not missing:
        raise SystemExit("no results")
    cpu = cpus(notes)
    # The CPU first, so the report's header names the machine before anything else.
    notes = [n for n in notes if n.startswith("# cpu:")] + [n for n in notes if not n.startswith("# cpu:")]
    parts = ["\n".join(notes), bandwidth_table(rows, cpu), tables(rows, missing, cpu), torch_table(rows, missing, cpu),
             pertensor_tables(rows, missing, cpu), mixed_tables(rows, missing, cpu)]
    text = "\n".join(p for p in parts if p) + "\n"
    print(text)
    if args.markdown:
        open(args.markdown, "w").write(text)
    if args.png:
        plot(rows, args.png)
        print(f"plot: {args.png}")


if __name__ == "__main__":
    main()
