#!/usr/bin/env python3
"""bench/pull-load-report.py RESULTS PROXY — the table, ratios and target
check of one bench/pull-load.sh run. RESULTS has one tab-separated line per
run: scenario, target, what was measured, and pull-load's RESULT line (or
"skipped: why"). PROXY is 1 when the waved rows measured real pulls, 0 when
they fell back to the /v2/ ping."""
import sys

runs, order = {}, []
for line in open(sys.argv[1]):
    parts = line.rstrip("\n").split("\t")
    if len(parts) == 3:
        sc, tgt, what = parts
        kv = None
    else:
        sc, tgt, what, res = parts
        kv = dict(f.split("=", 1) for f in res.split()[1:])
    if (sc, tgt) not in runs:
        runs[(sc, tgt)] = []
        order.append((sc, tgt))
    runs[(sc, tgt)].append((what, kv))
proxy = sys.argv[2] == "1"


def speed(run):
    kv = run[1]
    return float(kv.get("mbps") if kv.get("mbps") and float(kv.get("rps", 0)) < 100 else kv.get("rps", 0))


# A target run several times (hot rounds) is represented by its median run,
# so all its numbers come from one real run; the spread is shown beside it.
rows, spread = {}, {}
for key, rs in runs.items():
    if rs[0][1] is None:
        rows[key] = rs[0]
        continue
    rs = sorted(rs, key=speed)
    rows[key] = rs[(len(rs) - 1) // 2]
    if len(rs) > 1:
        spread[key] = "%d runs, req/s %.0f..%.0f" % (len(rs), float(rs[0][1]["rps"]), float(rs[-1][1]["rps"]))


def num(sc, tgt, key):
    r = rows.get((sc, tgt))
    if not r or not r[1] or key not in r[1]:
        return None
    return float(r[1][key])


def ms(us):
    if us is None:
        return "-"
    return "%.0f us" % us if us < 1000 else "%.2f ms" % (us / 1e3) if us < 1e6 else "%.2f s" % (us / 1e6)


hdr = ("scenario", "target", "req/s", "MB/s", "p50", "p99", "p99.9", "errors", "server RSS", "measured")
print("%-7s %-16s %10s %8s %9s %9s %9s %6s %10s  %s" % hdr)
for sc, tgt in order:
    what, kv = rows[(sc, tgt)]
    if kv is None:
        print("%-7s %-16s %s" % (sc, tgt, what))
        continue
    g = lambda k: float(kv[k]) if k in kv else None
    rss = g("rss_peak_kb")
    print("%-7s %-16s %10s %8s %9s %9s %9s %6s %10s  %s" % (
        sc, tgt, "%.0f" % g("rps") if g("rps") >= 100 else "%.2f" % g("rps"), "-" if g("mbps") is None else "%.1f" % g("mbps"),
        ms(g("p50_us")), ms(g("p99_us")), ms(g("p999_us")),
        kv.get("errors", "-"), "%.1f MB" % (rss / 1024) if rss and rss > 0 else "-",
        what + ("  [median of %s]" % spread[(sc, tgt)] if (sc, tgt) in spread else "")))


def ratio(label, a, b, key="rps"):
    x, y = num(*a, key), num(*b, key)
    if x is None or y is None or y == 0:
        return None
    print("  %-60s %8.2fx   (%s %s / %s %s)" % (label, x / y, a[1], key, b[1], key))
    return x / y


print("\nratios (same run):")
ratio("pull-load / wrk on the nginx file", ("hot", "nginx"), ("hot", "wrk-nginx"))
a, b = num("hot", "nginx", "cpu_us_per_req"), num("hot", "wrk-nginx", "cpu_us_per_req")
if a and b:
    print("  %-60s %8.1f us vs %.1f us" % ("load generator CPU per request: pull-load vs wrk", a, b))
r = {}
ratio("hot waved-ping / docker-registry (FALLBACK: ping vs manifest)", ("hot", "waved-ping"), ("hot", "docker-registry"))
ratio("hot waved-ping / nginx (FALLBACK: ping vs manifest)", ("hot", "waved-ping"), ("hot", "nginx"))
for k in ("pass", "aug"):
    t = "waved-" + k
    r[k, "reg"] = ratio("hot %s / docker-registry" % t, ("hot", t), ("hot", "docker-registry"))
    r[k, "ngx"] = ratio("hot %s / nginx" % t, ("hot", t), ("hot", "nginx"))
    ratio("pull %s / docker-registry" % t, ("pull", t), ("pull", "docker-registry"))
    ratio("cold %s / docker-registry" % t, ("cold", t), ("cold", "docker-registry"))
    ratio("mixed cold %s / docker-registry (target >= 1x)" % t, ("mixed", t), ("mixed", "docker-registry"))
for when in ("before", "after"):
    ratio("parked: hot while %s pulls parked / hot %s the build" % (
        num("parked", "waved-parked", "parked_n") and "%.0f" % num("parked", "waved-parked", "parked_n") or "?", when),
        ("parked", "waved-hot-parked"), ("parked", "waved-hot-" + when))
ratio("parked: hot while parked / hot with the build running, nothing parked (medians of rounds; target >= 0.9x)",
      ("parked", "waved-hot-parked"), ("parked", "waved-hot-building"))
large = {}
large["waved-upstream"] = ratio("large waved-upstream (blob cache) / nginx (MB/s)", ("large", "waved-upstream"), ("large", "nginx"), "mbps")
ratio("large waved-upstream (blob cache) / docker-registry (MB/s)", ("large", "waved-upstream"), ("large", "docker-registry"), "mbps")
ratio("large waved-upstream-first (cold, teed, 1 connection) / docker-registry (4 connections, MB/s)", ("large", "waved-upstream-first"), ("large", "docker-registry"), "mbps")
ratio("large waved-stream (blob cache off) / nginx (MB/s)", ("large", "waved-stream"), ("large", "nginx"), "mbps")
ratio("large waved-stream (blob cache off) / docker-registry (MB/s)", ("large", "waved-stream"), ("large", "docker-registry"), "mbps")
large["waved-store"] = ratio("large waved-store / nginx-store, same file (MB/s)", ("large", "waved-store"), ("large", "nginx-store"), "mbps")

# Open loop: per rate, the median over the rounds of each quantile (each quantile's
# median may come from a different round), nginx and waved side by side.
def med(vals):
    vals = sorted(vals)
    return vals[(len(vals) - 1) // 2] if vals else None


open_rates = sorted({int(t.split("@")[1]) for s, t in runs if s == "open" and "@" in t})
if open_rates:
    ngx_max = num("open", "nginx-max", "rps")
    print("\nopen loop (latency from the intended send time; medians of %d rounds; nginx max %s req/s):" % (
        len(runs[("open", "nginx@%d" % open_rates[0])]), "%.0f" % ngx_max if ngx_max else "?"))
    print("  %8s  %-6s %9s %9s %9s %9s %6s %6s %11s" % ("rate", "target", "achieved", "p50", "p99", "p99.9", "late", "errors", "cpu/req"))
    for rate in open_rates:
        q = {}
        for tgt in ("nginx", "waved"):
            rs = [kv for _, kv in runs.get(("open", "%s@%d" % (tgt, rate)), []) if kv]
            if not rs:
                continue
            q[tgt] = {k: med([float(kv.get(k, -1)) for kv in rs])
                      for k in ("rps", "p50_us", "p99_us", "p999_us", "late", "errors", "srv_cpu_us_per_req")}
            m = q[tgt]
            # the server's CPU per request (pull-load -p; nginx's only with one worker, PL_PIN=1)
            cpu = "%.1f us" % m["srv_cpu_us_per_req"] if m["srv_cpu_us_per_req"] > 0 else "-"
            print("  %8d  %-6s %8.1f%% %9s %9s %9s %6.0f %6.0f %11s" % (
                rate, tgt, 100 * m["rps"] / rate, ms(m["p50_us"]), ms(m["p99_us"]), ms(m["p999_us"]), m["late"],
                m["errors"], cpu))
        if "nginx" in q and "waved" in q:
            sustained = q["nginx"]["rps"] >= 0.95 * rate
            ratio99 = q["waved"]["p99_us"] / max(q["nginx"]["p99_us"], 1)
            print("  %8s  waved p99 / nginx p99 = %.2fx (target <= 1.2x where nginx sustains the rate: %s)%s" % (
                "", ratio99, "yes" if sustained else "no, nginx reached %.0f%%" % (100 * q["nginx"]["rps"] / rate),
                "; at %.0f%% of nginx's max: waved p99 %s (target < 2 ms)" % (100 * rate / ngx_max, ms(q["waved"]["p99_us"]))
                if ngx_max and abs(rate / ngx_max - 0.5) < 0.15 else ""))

park = rows.get(("parked", "waved-parked"), (None, None))[1]
if park:
    pn, pok, perr = int(float(park["parked_n"])), int(float(park["requests"])), int(float(park["errors"]))
    msize = int(float(park["manifest_size"]))
    same = park["manifest_status"] == "200" and int(park["ok_bytes"]) == pok * msize
    print("\nparked: %s:" % rows[("parked", "waved-parked")][0])
    bad = ", ".join("%s x%s" % (k[7:], v) for k, v in park.items() if k.startswith("status_"))
    print("  %d of %d parked pulls answered 200, %d errors (%s%s); their bodies %s (%d bytes = %d x %d-byte manifest: %s)" % (
        pok, pn, perr, ", ".join("%s %s" % (k[4:], v) for k, v in park.items() if k.startswith("err_")),
        "; statuses " + bad if bad else "",
        "are the built manifest" if same else "are NOT all the built manifest", int(park["ok_bytes"]), pok, msize,
        "yes" if same else "no"))
    if park.get("rss1_kb"):
        print("  while parked (%s connections open): waved RSS %s -> %s kB (+%.1f MB, target < 100 MB), threads %s -> %s (target: no extra)" % (
            park.get("open_n", "?"), park["rss0_kb"], park["rss1_kb"],
            (int(park["rss1_kb"]) - int(park["rss0_kb"])) / 1024.0, park["threads0"], park["threads1"]))
    print("  parked latency p50 %s, p99 %s, p99.9 %s, max %s; build %s s by its status (succeeded %s), %s s from POST to the last answer" % (
        ms(float(park["p50_us"])), ms(float(park["p99_us"])), ms(float(park["p999_us"])), ms(float(park["max_us"])),
        park["build_s"][:6], park["build_ok"], park["wall_s"]))
    print("  the hot run while parked ended while the build was still running: %s" % (
        "yes" if park["hot_while_building"] == "1" else "NO (raise PL_PARK_SLEEP)"))
    for t in ("waved-hot-before", "waved-hot-building", "waved-hot-parked", "waved-hot-after"):
        kv = rows.get(("parked", t), (None, None))[1]
        if kv:
            print("  %-18s %8.0f req/s  p50 %s  p99 %s  p99.9 %s  errors %s  waved RSS peak %.1f MB" % (
                t, float(kv["rps"]), ms(float(kv["p50_us"])), ms(float(kv["p99_us"])), ms(float(kv["p999_us"])),
                kv["errors"], float(kv["rss_peak_kb"]) / 1024))
    print("  waved RSS peak while the %d pulls were parked (whole parking): %.1f MB" % (pn, float(park["rss_peak_kb"]) / 1024))

print("\ntargets (hot manifest path, %s connections; large blobs):" % (rows.get(("hot", "nginx"), (0, {}))[1] or {}).get("conns", "?"))
if not proxy:
    print("  not evaluated: the waved rows measured the /v2/ ping, not pulls (proxy not on this build)")
    sys.exit(0)


def verdict(name, ok, detail):
    print("  %-4s %-46s %s" % ("met" if ok else "MISS", name, detail))


# The RSS target is the hot path's: the waved runs of the hot and open scenarios (cached
# manifests). Other scenarios are reported beside it, split into anonymous memory (heap,
# stacks: what a leak or an unbounded cache would grow) and file pages (mostly LMDB's map:
# pages of the store's file that waved has read or written stay mapped and count in VmRSS,
# but they are the page cache, which the kernel reclaims under pressure).
def rss_peak(scs, key="rss_peak_kb"):
    vals = [float(kv.get(key, -1)) for (sc, t), rs in runs.items() if sc in scs and t.startswith("waved")
            for _, kv in rs if kv]
    return max(vals) if vals and max(vals) > 0 else None


peak = rss_peak(("hot", "open"))
all_errs = lambda sc, t: sum(float(kv.get("errors", 0)) for _, kv in runs.get((sc, t), []) if kv)
for k in ("pass", "aug"):
    t = "waved-" + k
    if r.get((k, "reg")) is None:
        continue
    verdict("%s: >= 20x docker-registry req/s" % t, r[k, "reg"] >= 20, "%.1fx" % r[k, "reg"])
    verdict("%s: >= 0.5x nginx req/s" % t, r[k, "ngx"] >= 0.5, "%.2fx" % r[k, "ngx"])
    p99 = num("hot", t, "p99_us")
    verdict("%s: p99 < 5 ms" % t, p99 < 5000, ms(p99))
    errs = all_errs("hot", t)
    verdict("%s: no errors (all rounds)" % t, errs == 0, "%d" % errs)
if peak is not None:
    verdict("waved peak RSS < 64 MB (hot path: hot, open)", peak < 64 * 1024, "%.1f MB (RssAnon %s, RssFile %s)" % (
        peak / 1024, *("%.1f MB" % (v / 1024) if v else "?" for v in (
            rss_peak(("hot", "open"), "rss_anon_peak_kb"), rss_peak(("hot", "open"), "rss_file_peak_kb")))))
for sc in ("creq", "cold", "mixed", "pull", "large"):
    v = [rss_peak((sc,), k) for k in ("rss_peak_kb", "rss_anon_peak_kb", "rss_file_peak_kb")]
    if v[0] is not None:
        print("  info %-46s %.1f MB (RssAnon %s, RssFile %s)" % (
            "waved peak RSS, %s runs (not the hot path)" % sc, v[0] / 1024,
            *("%.1f MB" % (x / 1024) if x else "?" for x in v[1:])))
if park:
    verdict("parked: all %d pulls 200 with the manifest" % pn, same and pok == pn and perr == 0,
            "%d ok, %d errors" % (pok, perr))
for t, v in large.items():
    if v is not None:
        verdict("large %s: >= 80%% of nginx MB/s" % t, v >= 0.8, "%.0f%%" % (v * 100))
    else:
        print("  n/a  large %s: not measured (see the table)" % t)
