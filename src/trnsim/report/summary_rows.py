"""The report's tables, one vocabulary for all of them: words for headers (units in the header or the cell),
human units chosen by magnitude, and few enough columns per table to fit a 1400 px page."""

from __future__ import annotations

from typing import Any

from trnsim.report.story import hw_text, money, num
from trnsim.runtime.units import fmt_bandwidth, fmt_bytes, fmt_flop, fmt_time_us

# snake_case keys of trnsim's JSON -> the header a table shows
HEADERS = {
    "name": "Name",
    "hw": "Hardware",
    "rate req/s": "Load (req/s)",
    "rate_req_s": "Load (req/s)",
    "throughput_tok_s": "Output tok/s",
    "ttft_ms_p50": "TTFT p50 (ms)",
    "ttft_ms_p99": "TTFT p99 (ms)",
    "tpot_ms_p50": "TPOT p50 (ms)",
    "tpot_ms_p99": "TPOT p99 (ms)",
    "usd_per_mtok": "$ / Mtok",
    "j_per_tok": "J / token",
    "j_per_token": "J / token",
    "cost ratio": "Cost vs first",
    "slo_attainment": "SLO met",
    "error": "Error",
}


def header(key: str) -> str:
    if key in HEADERS:
        return HEADERS[key]
    text = key.replace("_", " ")
    return text[:1].upper() + text[1:]


def pct(fraction: Any) -> str:
    return "–" if fraction is None else f"{100 * float(fraction):.1f}%"


def pair(block: Any, a: str = "p50", b: str = "p99") -> str:
    get = (lambda k: block.get(k)) if isinstance(block, dict) else (lambda k: getattr(block, k, None))
    return f"{num(get(a))} / {num(get(b))}"


def kernel_row(name: str, d: dict[str, Any]) -> dict[str, str]:
    return {
        "Kernel": name,
        "Hardware": f"{d.get('target', '')}, {d.get('cores', 1)} core(s)",
        "Latency": fmt_time_us(d["latency_us"]),
        "Bound": str(d.get("bound") or d.get("bottleneck", "")),
        "MFU": pct(d.get("mfu", 0.0)),
        "HBM traffic": fmt_bytes(d.get("hbm_bytes", 0)),
        "HBM bandwidth": fmt_bandwidth(d.get("hbm_gbps", 0.0) * 1e9),
        "SBUF / PSUM peak per partition": f"{fmt_bytes(d.get('sbuf_peak_bytes_per_partition', 0))} / "
        f"{fmt_bytes(d.get('psum_peak_bytes_per_partition', 0))}",
    }


def model_row(name: str, d: dict[str, Any]) -> dict[str, str]:
    return {
        "Model": name,
        "Hardware": f"{d.get('target', '')}, tp={d.get('tp', 1)}",
        "Step time": fmt_time_us(d["device_time_us"]),
        "Throughput": f"{num(d['tokens_per_s'])} tok/s" if d.get("tokens_per_s") else "–",
        "MFU": pct(d.get("mfu", 0.0)),
        "Busiest engine": str(d.get("bottleneck", "")),
        "HBM peak / rank": fmt_bytes(d.get("peak_hbm_bytes", 0)) if d.get("peak_hbm_bytes") else "–",
    }


def serving_row(name: str, d: dict[str, Any]) -> dict[str, str]:
    hw = str(d.get("hw") or d.get("target") or "")
    load = f"{num(d['rate_req_s'])} req/s" if d.get("rate_req_s") else ""
    load = load or (f"{d['concurrency']} clients" if d.get("concurrency") else "–")
    return {
        "Run": name,
        "Model": str(d.get("model", "")),
        "Hardware": hw_text(hw, d.get("tp")),
        "Load": load,
        "Output tok/s": num(d.get("throughput_tok_s")),
        "TTFT p50 / p99 (ms)": pair(d.get("ttft_ms")),
        "TPOT p50 / p99 (ms)": pair(d.get("tpot_ms")),
        "SLO met": pct(d.get("slo_attainment")) if d.get("slo_attainment") is not None else "–",
        "$ / Mtok": money(d.get("usd_per_mtok")),
        "J / token": num(d.get("j_per_tok")),
    }


def engine_rows(d: dict[str, Any]) -> list[dict[str, str]]:
    lat = d["latency_us"]
    return [
        {"Engine": k, "Busy": fmt_time_us(v), "Busy share": pct(v / lat) if lat else "–"}
        for k, v in d.get("engine_busy_us", {}).items()
    ]


def instruction_rows(d: dict[str, Any], top: int) -> list[dict[str, str]]:
    ops = sorted(d.get("by_opcode", {}).items(), key=lambda kv: -kv[1]["busy_us"])
    return [
        {
            "Instruction": k,
            "Count": f"{int(v['count']):,}",
            "Busy, summed over engines and queues": fmt_time_us(v["busy_us"]),
        }
        for k, v in ops[:top]
    ]


def op_rows(d: dict[str, Any], top: int) -> list[dict[str, str]]:
    t = d["device_time_us"]
    ops = sorted(d.get("by_op", {}).items(), key=lambda kv: -kv[1]["device_us"])
    return [
        {
            "Op": op,
            "Count": f"{int(g['count']):,}",
            "Device time": fmt_time_us(g["device_us"]),
            "Share": pct(g["device_us"] / t) if t else "–",
            "Work": fmt_flop(g["flops"]),
            "HBM traffic": fmt_bytes(g["hbm_bytes"]),
        }
        for op, g in ops[:top]
    ]


def plan_row(d: dict[str, Any]) -> dict[str, str]:
    return {
        "Hardware": f"{d.get('instance', '')}, tp={d.get('tp', '')}",
        "Replicas": f"{d.get('replicas', 0):,}",
        "Instances": f"{d.get('instances', 0):,}",
        "Chips": f"{d.get('chips', 0):,}",
        "Racks": f"{d.get('racks', 0):,}",
        "Facility MW (peak)": num(d.get("facility_mw_peak")),
        "Tokens/s": num(d.get("tokens_per_s")),
        "$ / year": money(d.get("instances_usd_per_year", 0) + d.get("energy_usd_per_year", 0)),
        "$ / Mtok": money(d.get("usd_per_mtok")),
        "Price basis": str(d.get("price_basis", "")),
    }


def generic_rows(rows: list[dict[str, Any]], columns: list[str] | None = None) -> list[dict[str, str]]:
    """Any rows, with worded headers and numbers to 3 significant digits; `columns` picks and orders keys."""
    keys = columns or [k for r in rows for k in r]
    keys = list(dict.fromkeys(keys))
    out = []
    for r in rows:
        cells = {}
        for k in keys:
            v = r.get(k)
            cells[header(k)] = money(v) if k == "usd_per_mtok" and v is not None else num(v)
        out.append(cells)
    return out
