"""Bedside-monitor vitals streamed during inpatient stays, as JSON Lines (``vitals/vitals-<chunk>.jsonl``).

Every four hours (+-5 min) of a stay, the bed's monitor reports six metrics, one JSON object per line with the
fields of CONTEXT.md: ``device_id, patient_mrn, timestamp, metric, value, unit``. Values follow the patient and
the admission reason (heart failure: faster heart rate; COPD/pneumonia/COVID-19: lower SpO2, faster breathing;
infections: fever) and settle towards normal over the stay. Device firmware differs: a quarter of the monitors
stamp times in UTC (``Z``) instead of local time with offset, and a fifth report temperature in ``degF``.
"""

from __future__ import annotations

import numpy as np

from medspark.synthetic import codes as C
from medspark.synthetic import defects as D
from medspark.synthetic import textfmt as T
from medspark.synthetic.population import Population
from medspark.synthetic.sink import ChunkContext, RecordFile, Strings, blocks

FORMAT = "vitals-jsonl"
PROFILES = {"reading": D.Profile("device_vitals", (D.INVALID_JSON, D.MISSING_IDENTIFIER, D.DUPLICATE))}
METRICS = ("heart_rate", "spo2", "bp_systolic", "bp_diastolic", "resp_rate", "temperature")
UNITS = ("bpm", "%", "mmHg", "mmHg", "breaths/min")
INTERVAL = 4 * 3600


def write(pop: Population, ctx: ChunkContext, strings: Strings) -> None:
    """Write the vitals file of one chunk."""
    s, p = pop.stays, pop.patients
    rng = ctx.rng(3)
    n_stays = len(s.enc)
    device = np.array(["MON-" + h for h in T.hex_strings(
        np.frombuffer(rng.bytes(4 * n_stays), dtype=np.uint8).reshape(n_stays, 4))], dtype=object)
    utc_clock = rng.random(n_stays) < 0.25
    fahrenheit = rng.random(n_stays) < 0.20
    stay_of_pat = np.searchsorted(s.pat, np.arange(pop.n + 1))
    ch = p.chronic
    k = {key: i for i, key in enumerate(C.CHRONIC_KEYS)}
    with RecordFile(ctx, f"vitals/vitals-{pop.chunk:05d}.jsonl", FORMAT, PROFILES, D.damage_json) as out:
        for a, b in blocks(pop.n):
            stays = np.arange(stay_of_pat[a], stay_of_pat[b])
            if not len(stays):
                continue
            count = (s.discharge[stays] - s.admit[stays]) // INTERVAL + 1
            st = np.repeat(stays, count)
            step = np.arange(len(st)) - np.repeat(np.cumsum(count) - count, count)
            t = s.admit[st] + step * INTERVAL + rng.integers(-300, 301, len(st))
            t = np.minimum(np.maximum(t, s.admit[st]), s.discharge[st])
            settle = 1 - 0.6 * step / np.maximum(np.repeat(count, count) - 1, 1)
            pat = s.pat[st]
            reason = s.reason[st]
            hf = ch[pat, k["heart_failure"]]
            copd = ch[pat, k["copd"]]
            htn = ch[pat, k["hypertension"]]
            resp = np.isin(reason, [C.COND["pneumonia"], C.COND["covid19"], C.COND["copd_exacerbation"]])
            infection = resp | (reason == C.COND["sepsis"])
            noise = rng.normal(0, 1, (len(st), 6))
            hr = 78 + 8 * hf + settle * (12 * infection + 10 * (reason == C.COND["heart_failure"])) + 6 * noise[:, 0]
            spo2 = np.minimum(100, 97.5 - 2.5 * copd - settle * 4 * resp + 1.2 * noise[:, 1])
            sys_bp = 124 + 12 * htn + 10 * noise[:, 2]
            dia_bp = np.minimum(74 + 6 * htn + 7 * noise[:, 3], sys_bp - 25)
            rr = 16 + settle * 5 * resp + 2 * noise[:, 4]
            temp_c = 36.9 + settle * 1.1 * infection + 0.3 * noise[:, 5]
            temp = np.where(fahrenheit[st], temp_c * 9 / 5 + 32, temp_c)
            ints = np.round(np.stack([hr, spo2, sys_bp, dia_bp, rr], axis=1)).astype(np.int64).tolist()
            temps = T.fixed(temp, 1)
            local = T.iso_local(t)
            utc = T.iso_utc(t)
            stamps = [u if z else lo for u, lo, z in zip(utc, local, utc_clock[st].tolist(), strict=True)]
            temp_unit = np.where(fahrenheit[st], "degF", "degC").tolist()
            lines: list[str] = []
            for dev, mrn, ts, vals, tv, tu in zip(device[st].tolist(), p.mrn[pat].tolist(), stamps, ints, temps,
                                                  temp_unit, strict=True):
                head = f'{{"device_id":"{dev}","patient_mrn":"{mrn}","timestamp":"{ts}","metric":"'
                lines += [f'{head}{m}","value":{v},"unit":"{u}"}}'
                          for m, v, u in zip(METRICS[:5], vals, UNITS, strict=True)]
                lines.append(f'{head}temperature","value":{tv},"unit":"{tu}"}}')
            out.add(lines, "reading")
