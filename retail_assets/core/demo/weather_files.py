"""Writer of the demo weather forecasts: one file per issue day, every store's next days, with an error that
grows with the lead time. Drawn from their own random stream, so adding them changes no other file of a seeded
zone."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter

import numpy as np

from retail_assets.core.demo.files import choose, write_csv
from retail_assets.core.demo.world import WEATHER_HORIZON_DAYS, daily_temperatures

ISSUE_HOUR_UTC = 5  # a national weather service's morning run
HEADER = ["issued_at", "store_id", "region", "date", "temperature_min_c", "temperature_max_c",
          "temperature_mean_c", "precipitation_mm"]


def lead_error_sd(lead: np.ndarray) -> np.ndarray:
    """The forecast error's standard deviation in degC at each lead time (days ahead): about 1 degC for
    tomorrow, 4 degC ten days out, as numerical weather forecasts go."""
    return 0.8 + 0.35 * lead


def write_weather(root, cfg, stores, temps: np.ndarray, defects: dict, truth, say,
                  surprise: tuple[list[int], int, float] | None = None) -> None:
    """Forecasts issued each day of history for that day and the next WEATHER_HORIZON_DAYS - 1, per store, from
    the temperatures the demand was simulated with (`temps`, the cold snap included). Days past the end of
    history follow their own simulated weather, continued from the last day's (a cold snap lasts). `surprise`
    (store indices, first day, drop in degC): a freak cold no forecast issued before its first day saw coming."""
    rng = np.random.default_rng([cfg.seed, 20_260_226])
    ahead = dataclasses.replace(cfg, start=cfg.end, days=max(WEATHER_HORIZON_DAYS, 14))  # 14: a config's minimum
    after = daily_temperatures(ahead, stores, rng)[:, :WEATHER_HORIZON_DAYS]
    after -= after[:, :1] - temps[:, -1:]  # the first simulated day is the last day of history: no jump
    full = np.concatenate([temps, after[:, 1:]], axis=1)
    files = rows = 0
    issues = []
    for d in range(cfg.days):
        day = cfg.start + dt.timedelta(days=d)
        issued = dt.datetime.combine(day, dt.time(ISSUE_HOUR_UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
        lead = np.arange(WEATHER_HORIZON_DAYS)
        out = []
        for s, store in enumerate(stores):
            if day < store.opened_on - dt.timedelta(days=WEATHER_HORIZON_DAYS):
                continue
            truth_ahead = full[s, d + lead]
            if surprise and s in surprise[0] and d < surprise[1]:  # issued before the freak cold: not foreseen
                truth_ahead = truth_ahead + np.where(d + lead >= surprise[1], surprise[2], 0.0)
            mean = truth_ahead + rng.normal(0, lead_error_sd(lead))
            spread = 3.0 + np.abs(rng.normal(0, 1.0, len(lead)))
            rain = np.where(rng.random(len(lead)) < 0.4, rng.exponential(4.0, len(lead)), 0.0)
            for k in lead:
                out.append([issued, store.store_id, "", (day + dt.timedelta(days=int(k))).isoformat(),
                            f"{mean[k] - spread[k]:.1f}", f"{mean[k] + spread[k]:.1f}", f"{mean[k]:.1f}",
                            f"{rain[k]:.1f}"])
        if out:
            issues.append((day, out))
    # injected defects, each a quarantine reason ingest must find (and resent issues: duplicates, not new rows)
    flat = [(i, j) for i, (_day, out) in enumerate(issues) for j in range(len(out))]
    reason_of: dict[tuple[int, int], str] = {}
    for kind, reason in (("unknown_store", "unknown_store"), ("min_above_max", "temperature_min_mean_max_inconsistent"),
                         ("unparseable_value", "unparseable_value")):
        pool = np.array([k for k in range(len(flat)) if flat[k] not in reason_of])
        for k in choose(rng, pool, defects.get(f"weather_{kind}", 0)) if len(pool) else []:
            i, j = flat[int(k)]
            row = issues[i][1][j]
            if kind == "unknown_store":
                row[1] = "9999"
            elif kind == "min_above_max":
                row[4], row[5] = row[5], row[4]
            else:
                row[6] = "n/a"
            reason_of[(i, j)] = reason
    resent = {int(k) for k in choose(rng, np.arange(len(issues)), defects.get("weather_resent_files", 0))}
    quarantined = Counter(reason_of.values())
    duplicate = 0
    for i, (day, out) in enumerate(issues):
        copies = [f"weather_{day:%Y%m%d}.csv"] + ([f"weather_{day:%Y%m%d}_resent.csv"] if i in resent else [])
        for name in copies:
            write_csv(root / "weather" / name, HEADER, out)
            files += 1
            rows += len(out)
        if i in resent:  # the copy's clean rows are duplicates; its bad rows are quarantined again
            bad = [r for (ii, _j), r in reason_of.items() if ii == i]
            duplicate += len(out) - len(bad)
            quarantined.update(bad)
    for reason, n in sorted(quarantined.items()):
        truth.add("weather", f"quarantine:{reason}", n)
    truth.add("weather", "duplicate", duplicate)
    truth.add("weather", "files", files)
    truth.add("weather", "rows_written", rows)
    say(f"weather: {rows:,} forecast rows in {files:,} issue files")
