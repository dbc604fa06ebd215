"""The clinical model behind medspark's synthetic population: who the patients are and what happens to them.

Everything the writers emit (Synthea CSV, FHIR, HL7 v2, X12 837, device vitals) is a rendering of one
:class:`Population` per chunk, drawn here with numpy from an RNG seeded by ``(seed, chunk)`` only, so a chunk is
the same whatever process draws it. Tests and later analytics rely on the structure documented below; the true
values are written to the ground-truth files (``_manifest/truth-*.csv.gz``).

Observation window: encounters happen between 2015-01-01 and 2025-12-31 (after birth). Ages are at 2025-12-31.

Demographics
    Sex 51 % female. Age from the 2020 US census pyramid in 5-year bands (0-99). Race (Synthea values: white
    70 %, black 13 %, asian 7 %, native 1 %, hawaiian 0.5 %, other 8.5 %) and ethnicity (hispanic 18 %).
    Synthea-style names (``Maynard46``; a few accented ones), Massachusetts addresses. Payer: 65+ Medicare
    (10 % Dual Eligible); under 65 Medicaid 18 %, uninsured 8 %, else one of four commercial plans. Uninsured
    patients have no member id and produce no claims and no HL7 IN1.

Latent utilisation group (truth column ``utilisation_group``)
    ``healthy`` / ``chronic`` / ``complex`` drawn from an age-dependent softmax (scores 0, -1.6+0.035*age,
    -3.8+0.05*age): about 51/40/10 % overall; complex is ~3 % of children, ~21 % at 65-84, ~24 % at 85+. The group
    shifts chronic-condition logits (-1.2 / +0.4 / +1.2), sets the visit rate (2.2 / 4.5 / 8 non-inpatient
    visits per 11 years, times 1+0.15 per chronic condition), the inpatient rate (0.03 / 0.14 / 0.7 index stays
    per 11 years) and the visit intensity (E/M level, ED share), hence costs.

Chronic conditions (truth flags; SNOMED in CSV/FHIR, ICD-10-CM in HL7/X12; see ``codes.CONDITIONS``)
    Drawn in causal order with logistic models (age in years at 2025-12-31, g = group shift):
    obesity E66.9 (-2.0 + 1.5*adult + 0.5*g), hypertension I10 (-6.0 + 0.075*age + 0.9*obesity + 0.25*male + g),
    type 2 diabetes E11.9 (-6.6 + 0.055*age + 1.7*obesity + 0.5*hypertension + g), hyperlipidemia E78.5
    (-5.6 + 0.06*age + 0.5*obesity + g), CKD stage 3 N18.30 (-7.8 + 0.05*age + 1.4*diabetes + 1.2*hypertension
    + g), heart failure I50.9 (-10.8 + 0.08*age + 1.5*hypertension + 0.6*diabetes + 0.8*CKD + 0.3*male + g),
    asthma J45.909 (-2.7 + 0.4*child + 0.35*obesity + 0.3*g), COPD J44.9 (-8.2 + 0.065*age + g, age >= 35);
    diabetes, hyperlipidemia, CKD and heart failure only in adults. Resulting prevalence, adults / 65+: obesity
    36 / 41 %, hypertension 22 / 57 %, diabetes 11 / 29 %, hyperlipidemia 14 / 37 %, CKD 3.4 / 12 %,
    heart failure 2.3 / 9 %, asthma 7 / 8 %, COPD 1.7 / 6 %.
    Each chronic condition is diagnosed at a visit in the first half of the patient's visits (or at an earlier
    heart-failure admission) and recorded once (START = that visit, no STOP).

Medications follow diagnoses (RxNorm, ``codes.CHRONIC_DRUGS``): hypertension -> lisinopril/HCTZ/amlodipine
    (at least one), diabetes -> metformin 90 %, insulin 15 %; hyperlipidemia -> simvastatin/atorvastatin; heart
    failure -> furosemide 85 %, carvedilol 60 %; asthma/COPD -> albuterol, fluticasone. No drug is prescribed
    without its indication. Acute infections get short courses (amoxicillin-clavulanate, ciprofloxacin, ...).

Encounters
    At least one wellness visit per patient (the first one); the rest are wellness / ambulatory / outpatient /
    emergency by group. Ambulatory visits of patients with an already diagnosed chronic condition are chronic
    follow-ups 65 % of the time (reason = that condition), otherwise acute (pharyngitis, bronchitis, sinusitis,
    cystitis, ankle sprain, COVID-19 from 2020-03); emergency visits are acute. Durations: wellness 15-30 min,
    ambulatory 15-40 min, outpatient 0.5-3 h, emergency 1-6 h, in business hours except emergencies.
    Inpatient stays: index admissions Poisson(rate * exposure), rate scaled by (1 + 0.6*HF + 0.4*CKD + 0.4*COPD)
    and age; principal reason heart-failure exacerbation, COPD exacerbation, pneumonia, sepsis, myocardial
    infarction, appendicitis or COVID-19 (2020-03..2022-12) with reason-specific LOS (median 2-6 days, longer
    when older; lognormal).

30-day readmissions (truth: ``truth-admissions-*.csv.gz``)
    After each stay a readmission 1-30 days after discharge (early days more likely) happens with probability
    sigmoid(-3.9 + 0.02*(age-65) + 0.22*n_chronic + 0.6*HF + 0.45*CKD + 0.35*min(prior admissions in 365 d, 3)
    + 0.35*ln(LOS days) + 0.3*complex). Readmissions can chain. The written flag ``readmitted_30d`` is computed
    from the stays actually generated (next admission <= 30 days after discharge), ``readmit_prob`` is the
    model probability. About 0.22 stays per patient; 13 % of stays are followed by a readmission (39 % after
    heart-failure patients' stays, 7 % otherwise).

Procedures and observations (consistent with conditions)
    Wellness: height, weight, BMI, blood pressure, heart rate; labs by age (basic metabolic panel = glucose +
    creatinine, total cholesterol, HbA1c). Other visits: blood pressure and heart rate; follow-ups order the
    labs of their condition (HbA1c for diabetes, BMP for CKD/HTN/HF). Stays: BMP (+HbA1c for diabetics) and
    reason-specific procedures (echo/ECG for HF, appendectomy, PCI after MI, chest X-ray for pneumonia...).
    Values: obese BMI >= 30; hypertensives +16 mmHg systolic; diabetics HbA1c ~7.6 % vs ~5.3 %, glucose ~155 vs
    ~90 mg/dL; CKD creatinine ~+0.8 mg/dL; hyperlipidemia cholesterol +55 mg/dL. 10 % of patients (truth
    ``lab_si_units``) have glucose reported in mmol/L (LOINC 15074-8) in every source.

Costs: claim lines (E/M, procedures, lab panels, room and board per day...) priced from ``codes``; an encounter's
TOTAL_CLAIM_COST equals the total of its X12 claim; PAYER_COVERAGE = total * payer share.

Identifiers (CONTEXT.md): a Synthea UUID (CSV + FHIR), an MRN ``M`` + 8 digits (FHIR, HL7, vitals), a synthetic
SSN in the never-issued 9xx area (CSV, FHIR, HL7, X12), a payer member id (HL7 IN1-36, X12) and a visit number
(FHIR Encounter.identifier, HL7 PV1-19, X12 CLM01). MRN, SSN and member id are bijections of the global patient
index (shifted by the seed), so they are unique across chunks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from medspark.synthetic import codes as C
from medspark.synthetic import textfmt as T

WINDOW_START_DAY = int(T.days_from_civil(np.array([2015]), 1, 1)[0])
WINDOW_END_DAY = int(T.days_from_civil(np.array([2026]), 1, 1)[0])  # exclusive
COVID_START_DAY = int(T.days_from_civil(np.array([2020]), 3, 1)[0])
COVID_INPATIENT_END_DAY = int(T.days_from_civil(np.array([2023]), 1, 1)[0])
WINDOW_DAYS = WINDOW_END_DAY - WINDOW_START_DAY
DAY = T.DAY
GROUPS = ("healthy", "chronic", "complex")

_K = {key: i for i, key in enumerate(C.CHRONIC_KEYS)}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _bijection(index: np.ndarray, modulus: int, multiplier: int, shift: int) -> np.ndarray:
    """A permutation of ``range(modulus)`` (multiplier coprime to the modulus): unique ids without a registry."""
    return (index.astype(np.int64) * multiplier + shift) % modulus


@dataclass
class Patients:
    """Per-patient attributes (arrays of length ``n``; strings as numpy object arrays)."""

    uuid: np.ndarray
    mrn: np.ndarray
    ssn: np.ndarray
    member_id: np.ndarray  # "" when uninsured
    payer: np.ndarray
    male: np.ndarray
    birth_day: np.ndarray
    age: np.ndarray  # years at 2025-12-31
    group: np.ndarray
    chronic: np.ndarray  # (n, N_CHRONIC) bool
    race: np.ndarray
    ethnicity: np.ndarray
    first: np.ndarray
    last: np.ndarray
    maiden: np.ndarray
    prefix: np.ndarray
    marital: np.ndarray
    street: np.ndarray
    city: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    phone: np.ndarray
    drivers: np.ndarray
    passport: np.ndarray
    birthplace: np.ndarray
    clinic: np.ndarray
    hospital: np.ndarray
    in_bundle: np.ndarray
    lab_si: np.ndarray
    expenses: np.ndarray
    coverage: np.ndarray


@dataclass
class Encounters:
    """All encounters of a chunk, sorted by (patient, start)."""

    pat: np.ndarray
    start: np.ndarray  # epoch seconds UTC
    stop: np.ndarray
    etype: np.ndarray  # index into codes.ENCOUNTER_TYPES
    cls: np.ndarray  # CLASS_* constant
    reason: np.ndarray  # index into codes.CONDITIONS or -1
    org: np.ndarray
    provider: np.ndarray
    em: np.ndarray  # index into codes.EM_CODES or -1 (inpatient)
    stay: np.ndarray  # index into Stays or -1
    bmp: np.ndarray  # lab panels ordered at this encounter
    hba1c: np.ndarray
    lipid: np.ndarray
    total: np.ndarray  # TOTAL_CLAIM_COST == X12 claim total
    coverage: np.ndarray
    uuid: np.ndarray  # (E, 16) uint8
    visit: np.ndarray  # int64 visit number: (chunk + 1) * 10**7 + 1-based encounter index
    offsets: np.ndarray  # (n+1,) rows of patient i are offsets[i]:offsets[i+1]


@dataclass
class Stays:
    """Inpatient stays (one encounter each), in encounter order."""

    enc: np.ndarray
    pat: np.ndarray
    admit: np.ndarray
    discharge: np.ndarray
    reason: np.ndarray
    via_ed: np.ndarray
    disposition: np.ndarray  # UB-04 patient status: "01" home, "06" home health, "03" SNF
    los_days: np.ndarray
    age: np.ndarray
    prior_365: np.ndarray
    prob: np.ndarray
    is_readmission: np.ndarray
    readmitted_30d: np.ndarray


@dataclass
class Records:
    """A per-patient record table (conditions, medications, procedures or observations), sorted by patient."""

    pat: np.ndarray
    enc: np.ndarray
    code: np.ndarray
    start: np.ndarray
    stop: np.ndarray  # -1 when open
    reason: np.ndarray  # condition index or -1 (observations: unused)
    value: np.ndarray  # observation value / medication dispenses / procedure charge
    cost: np.ndarray  # medication base cost
    uuid: np.ndarray
    offsets: np.ndarray


@dataclass
class Population:
    """One chunk's patients and everything that happens to them."""

    seed: int
    chunk: int
    first_index: int
    n: int
    patients: Patients
    encounters: Encounters
    stays: Stays
    conditions: Records
    medications: Records
    procedures: Records
    observations: Records


def _csr(pat: np.ndarray, n: int) -> np.ndarray:
    return np.searchsorted(pat, np.arange(n + 1), side="left").astype(np.int64)


def _records(n: int, **cols: np.ndarray) -> Records:
    """Sort record columns by (patient, start, code) and wrap them with CSR offsets (UUIDs are set later)."""
    order = np.lexsort((cols["code"], cols["start"], cols["pat"]))
    m = len(order)
    full = {k: np.asarray(v)[order] for k, v in cols.items()}
    for name, fill in (("stop", -1), ("reason", -1), ("value", 0.0), ("cost", 0.0)):
        full.setdefault(name, np.full(m, fill))
    return Records(uuid=np.empty((m, 16), dtype=np.uint8), offsets=_csr(full["pat"], n), **full)


def diagnosis_times(pop: Population) -> np.ndarray:
    """``(n, N_CHRONIC)`` epoch second at which each chronic condition was diagnosed (int64 max when never)."""
    c = pop.conditions
    out = np.full((pop.n, C.N_CHRONIC), np.iinfo(np.int64).max, dtype=np.int64)
    chronic = c.code < C.N_CHRONIC
    out[c.pat[chronic], c.code[chronic]] = c.start[chronic]
    return out


def build_population(seed: int, chunk: int, first_index: int, n: int) -> Population:
    """Draw chunk ``chunk``: ``n`` patients with global indices ``first_index .. first_index + n - 1``."""
    streams = np.random.SeedSequence([seed, chunk, 0x5EED]).spawn(8)
    rng_pat, rng_enc, rng_stay, rng_rec, rng_val, rng_id = (np.random.default_rng(s) for s in streams[:6])
    pats = _draw_patients(rng_pat, seed, first_index, n)
    enc_raw, diag = _draw_visits(rng_enc, pats, n)
    stays_raw = _draw_stays(rng_stay, pats, n)
    encounters, stays, diag_enc = _merge_encounters(rng_enc, pats, enc_raw, stays_raw, diag, chunk, n)
    conditions, medications = _conditions_and_drugs(rng_rec, pats, encounters, stays, diag_enc, n)
    procedures = _procedures(rng_rec, pats, encounters, stays, n)
    observations = _observations(rng_val, pats, encounters, n)
    _costs(pats, encounters, stays, procedures, medications, n)
    for table in (conditions, medications, procedures, observations):
        table.uuid = T.random_uuid_bytes(rng_id, len(table.pat))
    return Population(seed, chunk, first_index, n, pats, encounters, stays, conditions, medications, procedures,
                      observations)


# ---------------------------------------------------------------------------------------------------- patients


def _draw_patients(rng: np.random.Generator, seed: int, first_index: int, n: int) -> Patients:
    idx = np.arange(first_index, first_index + n, dtype=np.int64)
    male = rng.random(n) < 0.49
    bands = np.array([(lo, hi) for lo, hi, _ in C.AGE_BANDS], dtype=np.float64)
    weights = np.array([w for _, _, w in C.AGE_BANDS])
    band = rng.choice(len(bands), size=n, p=weights / weights.sum())
    age = bands[band, 0] + rng.random(n) * (bands[band, 1] - bands[band, 0])
    birth_day = (WINDOW_END_DAY - 1) - np.floor(age * 365.2425).astype(np.int64)

    race_p = np.array([r[3] for r in C.RACES])
    race = rng.choice(len(C.RACES), size=n, p=race_p / race_p.sum())
    ethnicity = (rng.random(n) >= C.ETHNICITIES[0][3]).astype(np.int64)  # 0 hispanic, 1 nonhispanic

    scores = np.stack([np.zeros(n), -1.6 + 0.035 * age, -3.8 + 0.05 * age], axis=1)
    probs = np.exp(scores)
    probs /= probs.sum(axis=1, keepdims=True)
    group = (rng.random(n)[:, None] > np.cumsum(probs, axis=1)).sum(axis=1)
    g = np.array([-1.2, 0.4, 1.2])[group]

    adult = age >= 18
    u = rng.random((n, C.N_CHRONIC))
    chronic = np.zeros((n, C.N_CHRONIC), dtype=bool)
    k = _K
    chronic[:, k["obesity"]] = u[:, 0] < _sigmoid(-2.0 + 1.5 * adult + 0.5 * g)
    ob = chronic[:, k["obesity"]]
    chronic[:, k["hypertension"]] = u[:, 1] < _sigmoid(-6.0 + 0.075 * age + 0.9 * ob + 0.25 * male + g)
    htn = chronic[:, k["hypertension"]]
    chronic[:, k["type2_diabetes"]] = adult & (u[:, 2] < _sigmoid(-6.6 + 0.055 * age + 1.7 * ob + 0.5 * htn + g))
    dm = chronic[:, k["type2_diabetes"]]
    chronic[:, k["hyperlipidemia"]] = adult & (u[:, 3] < _sigmoid(-5.6 + 0.06 * age + 0.5 * ob + g))
    chronic[:, k["ckd"]] = adult & (u[:, 4] < _sigmoid(-7.8 + 0.05 * age + 1.4 * dm + 1.2 * htn + g))
    ckd = chronic[:, k["ckd"]]
    chronic[:, k["heart_failure"]] = adult & (
        u[:, 5] < _sigmoid(-10.8 + 0.08 * age + 1.5 * htn + 0.6 * dm + 0.8 * ckd + 0.3 * male + g)
    )
    chronic[:, k["asthma"]] = u[:, 6] < _sigmoid(-2.7 + 0.4 * (~adult) + 0.35 * ob + 0.3 * g)
    chronic[:, k["copd"]] = (age >= 35) & (u[:, 7] < _sigmoid(-8.2 + 0.065 * age + g))

    fem_names = np.array(C.FIRST_NAMES_F, dtype=object)
    male_names = np.array(C.FIRST_NAMES_M, dtype=object)
    last_names = np.array(C.LAST_NAMES, dtype=object)
    first_base = np.where(male, male_names[rng.integers(len(male_names), size=n)],
                          fem_names[rng.integers(len(fem_names), size=n)])
    first = np.array([f"{a}{b}" for a, b in zip(first_base.tolist(), rng.integers(10, 1000, n).tolist(), strict=True)],
                     dtype=object)
    last = np.array([f"{a}{b}" for a, b in zip(last_names[rng.integers(len(last_names), size=n)].tolist(),
                                               rng.integers(10, 1000, n).tolist(), strict=True)], dtype=object)
    marital_draw = rng.random(n)
    marital = np.where(~adult, "", np.where(
        age < 25, np.where(marital_draw < 0.9, "S", "M"), np.where(
            age < 65, np.select([marital_draw < 0.55, marital_draw < 0.85], ["M", "S"], "D"),
            np.select([marital_draw < 0.55, marital_draw < 0.80, marital_draw < 0.90], ["M", "W", "D"], "S"))))
    marital = marital.astype(object)
    maiden = np.where(
        (~male) & (marital != "S") & (marital != ""),
        np.array([f"{a}{b}" for a, b in zip(last_names[rng.integers(len(last_names), size=n)].tolist(),
                                            rng.integers(10, 1000, n).tolist(), strict=True)], dtype=object),
        "",
    ).astype(object)
    prefix = np.where(~adult, "", np.where(male, "Mr.", np.where(marital == "S", "Ms.", "Mrs."))).astype(object)

    city = rng.integers(len(C.CITIES), size=n)
    unit_kind = rng.integers(0, 10, size=n)
    streets = np.array(C.STREET_NAMES, dtype=object)[rng.integers(len(C.STREET_NAMES), size=n)].tolist()
    numbers = rng.integers(1, 1000, size=n).tolist()
    units = rng.integers(1, 99, size=n).tolist()
    street = np.array(
        [f"{num} {st}" + ("" if uk < 7 else (" Unit " if uk == 7 else " Apt " if uk == 8 else " Suite ") + str(un))
         for num, st, uk, un in zip(numbers, streets, unit_kind.tolist(), units, strict=True)],
        dtype=object,
    )
    city_lat = np.array([c[3] for c in C.CITIES])
    city_lon = np.array([c[4] for c in C.CITIES])
    lat = city_lat[city] + rng.normal(0, 0.02, n)
    lon = city_lon[city] + rng.normal(0, 0.02, n)
    phone = np.array([f"555-{a:03d}-{b:04d}" for a, b in zip(rng.integers(200, 1000, n).tolist(),
                                                             rng.integers(0, 10000, n).tolist(), strict=True)],
                     dtype=object)
    drivers = np.where(age >= 16, np.array([f"S99{d:07d}" for d in rng.integers(0, 10**7, n).tolist()],
                                           dtype=object), "").astype(object)
    passport = np.where((age >= 18) & (rng.random(n) < 0.4),
                        np.array([f"X{d:08d}X" for d in rng.integers(0, 10**8, n).tolist()], dtype=object),
                        "").astype(object)
    birth_city = rng.integers(len(C.CITIES), size=n)
    birthplace = np.array([f"{C.CITIES[c][0]}  Massachusetts  US" for c in birth_city.tolist()], dtype=object)

    payer_draw = rng.random(n)
    commercial = 3 + np.searchsorted(np.cumsum([0.38, 0.22, 0.28, 0.12]), rng.random(n) * 0.99999)
    payer = np.where(
        age >= 65, np.where(payer_draw < 0.10, 2, np.where(payer_draw < 0.88, 0, commercial)),
        np.where(payer_draw < 0.18, 1, np.where(payer_draw < 0.26, C.PAYER_NONE, commercial)),
    ).astype(np.int64)

    # Identifiers: bijections of the global patient index, shifted by the seed (unique across chunks).
    mrn_num = _bijection(idx, 10**8, 48_271, 1_234_567 + 7_919 * seed)
    ssn_num = _bijection(idx, 10**8, 69_621, 5_550_001 + 104_729 * seed)
    member_num = _bijection(idx, 10**9, 16_807, 31_415_926 + 130_363 * seed)
    mrn = np.array(["M" + s for s in T.padded_numbers(mrn_num, 8)], dtype=object)
    ssn = np.array([f"9{s[0:2]}-{s[2:4]}-{s[4:8]}" for s in T.padded_numbers(ssn_num, 8)], dtype=object)
    prefixes = [p.member_prefix for p in C.PAYERS]
    member_id = np.array([f"{prefixes[p]}{m}" if p != C.PAYER_NONE else ""
                          for p, m in zip(payer.tolist(), T.padded_numbers(member_num, 9), strict=True)], dtype=object)
    uuid = np.array(T.uuid_strings(T.random_uuid_bytes(rng, n)), dtype=object)

    return Patients(
        uuid=uuid, mrn=mrn, ssn=ssn, member_id=member_id, payer=payer, male=male, birth_day=birth_day, age=age,
        group=group, chronic=chronic, race=race, ethnicity=ethnicity, first=first, last=last, maiden=maiden,
        prefix=prefix, marital=marital, street=street, city=city, lat=lat, lon=lon, phone=phone,
        drivers=drivers, passport=passport, birthplace=birthplace,
        clinic=C.CLINICS[rng.integers(len(C.CLINICS), size=n)],
        hospital=C.HOSPITALS[rng.integers(len(C.HOSPITALS), size=n)],
        in_bundle=rng.random(n) < 0.02, lab_si=rng.random(n) < 0.10,
        expenses=np.zeros(n), coverage=np.zeros(n),
    )


# ------------------------------------------------------------------------------------------------------ visits


def _window(p: Patients) -> tuple[np.ndarray, np.ndarray]:
    start = np.maximum(WINDOW_START_DAY, p.birth_day + 1)
    return start, np.maximum(WINDOW_END_DAY - 2 - start, 1)


def _draw_visits(rng: np.random.Generator, p: Patients, n: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Non-inpatient visits (sorted per patient) and the visit at which each chronic condition is diagnosed."""
    win_start, span = _window(p)
    exposure = span / WINDOW_DAYS
    n_chronic = p.chronic.sum(axis=1)
    lam = exposure * np.array([2.2, 4.5, 8.0])[p.group] * (1 + 0.15 * n_chronic)
    count = 1 + rng.poisson(lam)
    pat = np.repeat(np.arange(n), count)
    m = len(pat)
    day = win_start[pat] + np.floor(rng.random(m) * span[pat]).astype(np.int64)
    order = np.lexsort((day, pat))
    day = day[order]
    offsets = np.concatenate([[0], np.cumsum(count)])
    first = np.zeros(m, dtype=bool)
    first[offsets[:-1]] = True

    class_p = np.array([[0.45, 0.38, 0.09, 0.08], [0.30, 0.45, 0.15, 0.10], [0.20, 0.45, 0.18, 0.17]])
    cls = (rng.random(m)[:, None] > np.cumsum(class_p[p.group[pat]], axis=1)[:, :3]).sum(axis=1)
    cls[first] = C.CLASS_WELLNESS
    emergency = cls == C.CLASS_EMERGENCY
    tod = np.where(emergency, rng.integers(0, DAY, m), 8 * 3600 + rng.integers(0, 9 * 3600, m))
    start = T.local_to_utc(day * DAY + tod)
    minutes = np.select(
        [cls == C.CLASS_WELLNESS, cls == C.CLASS_AMBULATORY, cls == C.CLASS_OUTPATIENT],
        [15 + 15 * rng.integers(0, 2, m), rng.integers(15, 41, m), rng.integers(30, 181, m)],
        rng.integers(60, 361, m),
    )
    stop = start + minutes * 60

    # Diagnosis visit of each chronic condition: uniform over the first half of the patient's visits.
    half = (count + 1) // 2
    pick = offsets[:-1, None] + np.floor(rng.random((n, C.N_CHRONIC)) * half[:, None]).astype(np.int64)
    diag = np.where(p.chronic, pick, -1)
    return {"pat": pat, "start": start, "stop": stop, "cls": cls}, diag


def _draw_stays(rng: np.random.Generator, p: Patients, n: int) -> dict[str, np.ndarray]:
    """Inpatient stays with the readmission process (a short Python loop over the few patients with stays)."""
    win_start, span = _window(p)
    exposure = span / WINDOW_DAYS
    ch = p.chronic
    hf, ckd, copd = ch[:, _K["heart_failure"]], ch[:, _K["ckd"]], ch[:, _K["copd"]]
    n_chronic = ch.sum(axis=1)
    rate = (exposure * np.array([0.03, 0.14, 0.7])[p.group] * (1 + 0.6 * hf + 0.4 * ckd + 0.4 * copd)
            * (1 + np.maximum(p.age - 50, 0) / 30))
    n_index = rng.poisson(rate)
    reasons = [C.COND[k] for k in ("heart_failure", "copd_exacerbation", "pneumonia", "sepsis",
                                   "myocardial_infarction", "appendicitis", "covid19")]
    median_los = (4.5, 4.0, 4.0, 6.0, 3.5, 2.0, 6.0)
    last_day = WINDOW_END_DAY - 3
    out: dict[str, list[float]] = {k: [] for k in (
        "pat", "admit", "discharge", "reason", "via_ed", "disposition", "los", "age", "prior", "prob")}

    for i in np.flatnonzero(n_index).tolist():
        lo, sp = int(win_start[i]), int(span[i])
        index_days = sorted((lo + rng.integers(0, max(sp - 40, 1), n_index[i])).tolist())
        age_end, male = float(p.age[i]), bool(p.male[i])
        hf_i, ckd_i, copd_i = bool(hf[i]), bool(ckd[i]), bool(copd[i])
        htn_i, complex_i = bool(ch[i, _K["hypertension"]]), p.group[i] == 2
        n_chronic_i = int(n_chronic[i])
        admits: list[int] = []
        discharges: list[int] = []
        pending: int | None = None  # forced readmission day
        prev_reason = -1
        queue = list(index_days)
        while queue or pending is not None:
            if pending is not None:
                day, readmission = pending, True
                pending = None
                if queue and queue[0] < day:
                    queue.pop(0)  # the planned admission is absorbed by the readmission
            else:
                day, readmission = queue.pop(0), False
            if discharges and day * DAY <= discharges[-1] + DAY:
                day = discharges[-1] // DAY + 2
            if day >= last_day - 1:
                break
            age = age_end - (WINDOW_END_DAY - day) / 365.2425
            w = (
                3.0 * hf_i, 2.0 * copd_i, 1.0 + (age > 65), 0.4 + 0.6 * complex_i + 0.3 * ckd_i,
                (age > 45) * 0.5 * (1 + male) + 0.3 * htn_i,
                0.6 if age < 40 else 0.15,
                1.2 if COVID_START_DAY <= day < COVID_INPATIENT_END_DAY else 0.0,
            )
            if readmission and prev_reason >= 0 and rng.random() < 0.6:
                r = prev_reason
            else:
                target = rng.random() * sum(w)
                r, acc = 0, w[0]
                while acc <= target and r < len(w) - 1:
                    r += 1
                    acc += w[r]
            via_ed = rng.random() < (0.85 if r != 5 else 0.95) or readmission
            median = median_los[r] * (1 + max(age - 65, 0) / 50)
            los = max(1, round(float(rng.lognormal(math.log(median), 0.45))))
            admit_tod = int(rng.integers(0, DAY)) if via_ed else 7 * 3600 + int(rng.integers(0, 4 * 3600))
            admit = day * DAY + admit_tod  # Eastern wall clock; converted to UTC below, vectorised
            disch = (day + los) * DAY + 10 * 3600 + int(rng.integers(0, 6 * 3600))
            if disch // DAY >= last_day:
                break
            prior = sum(1 for a in admits if a >= admit - 365 * DAY)
            los_days = (disch - admit) / DAY
            logit = (-3.9 + 0.02 * (age - 65) + 0.22 * n_chronic_i + 0.6 * hf_i + 0.45 * ckd_i
                     + 0.35 * min(prior, 3) + 0.35 * math.log(los_days) + 0.3 * complex_i)
            prob = 1 / (1 + math.exp(-logit))
            disp_draw = rng.random()
            snf = 0.03 + 0.12 * (age > 75)
            disposition = 2 if disp_draw < snf else (1 if disp_draw < snf + 0.15 else 0)
            admits.append(admit)
            discharges.append(disch)
            for key, val in (("pat", i), ("admit", admit), ("discharge", disch), ("reason", reasons[r]),
                             ("via_ed", via_ed), ("disposition", disposition), ("los", los_days), ("age", age),
                             ("prior", prior), ("prob", prob)):
                out[key].append(val)
            prev_reason = r
            if rng.random() < prob:
                gap = 1 + int(29 * rng.random() ** 1.7)
                pending = disch // DAY + gap
    admit_utc = T.local_to_utc(np.array(out["admit"], dtype=np.int64))
    discharge_utc = T.local_to_utc(np.array(out["discharge"], dtype=np.int64))
    return {
        "pat": np.array(out["pat"], dtype=np.int64), "admit": admit_utc, "discharge": discharge_utc,
        "reason": np.array(out["reason"], dtype=np.int64),
        "via_ed": np.array(out["via_ed"], dtype=bool), "disposition": np.array(out["disposition"], dtype=np.int64),
        "los": (discharge_utc - admit_utc) / DAY, "age": np.array(out["age"], dtype=np.float64),
        "prior": np.array(out["prior"], dtype=np.int64), "prob": np.array(out["prob"], dtype=np.float64),
    }


def _age_at(p: Patients, pat: np.ndarray, utc: np.ndarray) -> np.ndarray:
    return (utc // DAY - p.birth_day[pat]) / 365.2425


def _merge_encounters(
    rng: np.random.Generator, p: Patients, v: dict[str, np.ndarray], s: dict[str, np.ndarray],
    diag: np.ndarray, chunk: int, n: int,
) -> tuple[Encounters, Stays, np.ndarray]:
    """Merge visits and stays into one encounter table; assign types, reasons, organisations and E/M levels."""
    n_visits, n_stays = len(v["pat"]), len(s["pat"])
    pat = np.concatenate([v["pat"], s["pat"]])
    start = np.concatenate([v["start"], s["admit"]])
    stop = np.concatenate([v["stop"], s["discharge"]])
    cls = np.concatenate([v["cls"], np.full(n_stays, C.CLASS_INPATIENT)])
    reason = np.concatenate([np.full(n_visits, -1), s["reason"]])
    stay = np.concatenate([np.full(n_visits, -1), np.arange(n_stays)])
    order = np.lexsort((start, pat))
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    pat, start, stop, cls, reason, stay = pat[order], start[order], stop[order], cls[order], reason[order], stay[order]
    m = len(pat)
    diag_enc = np.where(diag >= 0, rank[np.maximum(diag, 0)], -1)

    # A heart-failure (or COPD) admission before the planned diagnosis visit becomes the diagnosis.
    stay_rows = np.flatnonzero(stay >= 0)
    for key in ("heart_failure",):
        k = _K[key]
        rows = stay_rows[reason[stay_rows] == C.COND[key]]
        for row in rows.tolist():  # few rows; keep the earliest
            q = pat[row]
            if diag_enc[q, k] < 0 or start[diag_enc[q, k]] > start[row]:
                diag_enc[q, k] = row
    diag_time = np.where(diag_enc >= 0, start[np.maximum(diag_enc, 0)], np.iinfo(np.int64).max)

    age = _age_at(p, pat, start)
    u = rng.random((m, 4))
    # Chronic follow-up reasons: conditions diagnosed at or before this visit (obesity is not a visit reason).
    eligible = p.chronic[pat] & (diag_time[pat] <= start[:, None])
    eligible[:, _K["obesity"]] = False
    has_eligible = eligible.any(axis=1)
    pick_score = np.where(eligible, rng.random((m, C.N_CHRONIC)), -1.0)
    chronic_pick = pick_score.argmax(axis=1)  # index into CHRONIC_KEYS == CONDITIONS index
    amb, outp, emerg = cls == C.CLASS_AMBULATORY, cls == C.CLASS_OUTPATIENT, cls == C.CLASS_EMERGENCY
    followup = (amb & has_eligible & (u[:, 0] < 0.65)) | (outp & has_eligible & (u[:, 0] < 0.8))
    acute_needed = (amb | outp | emerg) & ~followup
    acute = _acute_reasons(u[:, 1], u[:, 2], age, p.male[pat], start // DAY, emerg)
    reason = np.where(followup, chronic_pick, np.where(acute_needed, acute, reason))

    child = age < 18
    etype = np.select(
        [cls == C.CLASS_WELLNESS, amb & followup, amb, outp, emerg],
        [np.where(child, C.ENC["wellness_child"], C.ENC["wellness_adult"]), C.ENC["ambulatory_followup"],
         C.ENC["ambulatory_acute"], C.ENC["outpatient"], C.ENC["emergency"]],
        C.ENC["inpatient_elective"],
    )
    inpatient = cls == C.CLASS_INPATIENT
    via_ed_enc = np.zeros(m, dtype=bool)
    via_ed_enc[inpatient] = s["via_ed"][stay[inpatient]]
    etype = np.where(inpatient & via_ed_enc, C.ENC["inpatient_emergency"], etype)

    hospital_side = outp | emerg | inpatient
    org = np.where(hospital_side, p.hospital[pat], p.clinic[pat])
    first_provider = np.array([int(ix[0]) for ix in C.PROVIDERS_BY_ORG])
    n_providers = np.array([len(ix) for ix in C.PROVIDERS_BY_ORG])
    provider = first_provider[org] + np.floor(u[:, 3] * n_providers[org]).astype(np.int64)

    group = p.group[pat]
    preventive = np.searchsorted(np.array([1, 5, 12, 18, 40, 65]), age, side="right")  # 99391..99397
    em = np.select(
        [cls == C.CLASS_WELLNESS, amb & followup, amb, outp, emerg],
        [C.EM["99391"] + preventive, C.EM["99213"] + np.minimum(group, 2), C.EM["99213"] + (group == 2),
         np.full(m, C.EM["99214"]), C.EM["99283"] + group],
        -1,
    )

    encounters = Encounters(
        pat=pat, start=start, stop=stop, etype=etype, cls=cls, reason=reason, org=org, provider=provider, em=em,
        stay=stay, bmp=np.zeros(m, bool), hba1c=np.zeros(m, bool), lipid=np.zeros(m, bool), total=np.zeros(m),
        coverage=np.zeros(m), uuid=T.random_uuid_bytes(rng, m),
        visit=(np.int64(chunk) + 1) * 10_000_000 + np.arange(1, m + 1, dtype=np.int64), offsets=_csr(pat, n),
    )

    # Stays in encounter order, with readmission truth computed from the generated data.
    srow = np.flatnonzero(inpatient)
    sidx = stay[srow]
    spat = pat[srow]
    admit, disch = s["admit"][sidx], s["discharge"][sidx]
    same_next = np.zeros(len(srow), dtype=bool)
    gap_next = np.full(len(srow), np.inf)
    if len(srow) > 1:
        same_next[:-1] = spat[1:] == spat[:-1]
        gap_next[:-1] = (admit[1:] - disch[:-1]) / DAY
    readmitted = same_next & (gap_next <= 30)
    is_readmission = np.zeros(len(srow), dtype=bool)
    is_readmission[1:] = readmitted[:-1]
    encounters.stay[srow] = np.arange(len(srow))
    stays = Stays(
        enc=srow, pat=spat, admit=admit, discharge=disch, reason=s["reason"][sidx], via_ed=s["via_ed"][sidx],
        disposition=s["disposition"][sidx], los_days=s["los"][sidx], age=s["age"][sidx],
        prior_365=s["prior"][sidx], prob=s["prob"][sidx], is_readmission=is_readmission,
        readmitted_30d=readmitted,
    )
    return encounters, stays, diag_enc


_ACUTE_VISIT = ("pharyngitis", "bronchitis", "sinusitis", "cystitis", "ankle_sprain", "covid19", "pneumonia")
_ACUTE_ED = ("ankle_sprain", "pneumonia", "bronchitis", "cystitis", "covid19", "pharyngitis", "sinusitis")


def _acute_reasons(u1: np.ndarray, u2: np.ndarray, age: np.ndarray, male: np.ndarray, day: np.ndarray,
                   emergency: np.ndarray) -> np.ndarray:
    """An acute condition per visit, by age, sex, era (COVID-19 only from 2020-03) and setting."""
    child = age < 18
    covid_era = day >= COVID_START_DAY
    wv = np.stack([
        np.where(child, 0.35, 0.15), np.full(len(age), 0.20), np.where(child, 0.15, 0.25),
        np.where(male, 0.02, np.where(child, 0.04, 0.18)), np.full(len(age), 0.15), np.where(covid_era, 0.12, 0.0),
        np.where(age > 65, 0.08, 0.03),
    ], axis=1)
    we = np.stack([
        np.full(len(age), 0.30), np.where(age > 65, 0.25, 0.10), np.full(len(age), 0.15),
        np.where(male, 0.03, 0.12), np.where(covid_era, 0.15, 0.0), np.where(child, 0.10, 0.04),
        np.full(len(age), 0.03),
    ], axis=1)
    cv = np.cumsum(wv, axis=1)
    ce = np.cumsum(we, axis=1)
    iv = np.minimum((u1[:, None] * cv[:, -1:] > cv).sum(axis=1), wv.shape[1] - 1)
    ie = np.minimum((u2[:, None] * ce[:, -1:] > ce).sum(axis=1), we.shape[1] - 1)
    visit_codes = np.array([C.COND[k] for k in _ACUTE_VISIT])
    ed_codes = np.array([C.COND[k] for k in _ACUTE_ED])
    return np.where(emergency, ed_codes[ie], visit_codes[iv])


# ------------------------------------------------------------------------------------------ conditions & drugs


def _conditions_and_drugs(
    rng: np.random.Generator, p: Patients, e: Encounters, s: Stays, diag_enc: np.ndarray, n: int,
) -> tuple[Records, Records]:
    qp, qk = np.nonzero(diag_enc >= 0)
    chronic_enc = diag_enc[qp, qk]
    acute_rows = np.flatnonzero(e.reason >= C.N_CHRONIC)
    acute_code = e.reason[acute_rows]
    acute_days = rng.integers(7, 29, len(acute_rows))
    inpatient_acute = e.cls[acute_rows] == C.CLASS_INPATIENT
    acute_stop = np.where(inpatient_acute, e.stop[acute_rows] + acute_days * DAY,
                          e.start[acute_rows] + acute_days * DAY)
    conditions = _records(
        n,
        pat=np.concatenate([qp, e.pat[acute_rows]]),
        enc=np.concatenate([chronic_enc, acute_rows]),
        code=np.concatenate([qk, acute_code]),
        start=np.concatenate([e.start[chronic_enc], e.start[acute_rows]]),
        stop=np.concatenate([np.full(len(qp), -1), acute_stop]),
    )

    d_pat, d_enc, d_code, d_reason, d_stop = [], [], [], [], []
    for cond_key, drugs in C.CHRONIC_DRUGS.items():
        k = _K[cond_key]
        sel = qk == k
        rows_p, rows_e = qp[sel], chronic_enc[sel]
        any_given = np.zeros(len(rows_p), dtype=bool)
        for j, (drug, prob) in enumerate(drugs):
            give = rng.random(len(rows_p)) < prob
            if cond_key == "hypertension" and j == len(drugs) - 1:
                give |= ~any_given  # every treated hypertensive gets at least one drug
            any_given |= give
            d_pat.append(rows_p[give])
            d_enc.append(rows_e[give])
            d_code.append(np.full(give.sum(), C.MED[drug]))
            d_reason.append(np.full(give.sum(), C.COND[cond_key]))
            d_stop.append(np.full(give.sum(), -1))
    visit_acute = ~inpatient_acute
    for cond_key, (drug, prob) in C.ACUTE_DRUGS.items():
        sel = visit_acute & (acute_code == C.COND[cond_key]) & (rng.random(len(acute_rows)) < prob)
        rows = acute_rows[sel]
        d_pat.append(e.pat[rows])
        d_enc.append(rows)
        d_code.append(np.full(len(rows), C.MED[drug]))
        d_reason.append(np.full(len(rows), C.COND[cond_key]))
        d_stop.append(e.start[rows] + rng.integers(7, 15, len(rows)) * DAY)
    med_enc = np.concatenate(d_enc).astype(np.int64)
    med_start = e.start[med_enc]
    med_stop = np.concatenate(d_stop).astype(np.int64)
    months = np.where(med_stop < 0, np.maximum(1, (WINDOW_END_DAY * DAY - med_start) // (30 * DAY)), 1)
    med_code = np.concatenate(d_code).astype(np.int64)
    unit_cost = np.array([m.unit_cost for m in C.MEDICATIONS])[med_code]
    medications = _records(
        n, pat=np.concatenate(d_pat).astype(np.int64), enc=med_enc, code=med_code, start=med_start,
        stop=med_stop, reason=np.concatenate(d_reason).astype(np.int64), value=months.astype(np.float64),
        cost=unit_cost,
    )
    return conditions, medications


# -------------------------------------------------------------------------------------------------- procedures


def _procedures(rng: np.random.Generator, p: Patients, e: Encounters, s: Stays, n: int) -> Records:
    m = len(e.pat)
    age = _age_at(p, e.pat, e.start)
    treated = np.asarray(p.chronic[:, [_K[k] for k in C.CHRONIC_DRUGS]].any(axis=1))
    has_chronic_drug = treated[e.pat]
    cls, reason = e.cls, e.reason
    wellness, amb, outp = cls == C.CLASS_WELLNESS, cls == C.CLASS_AMBULATORY, cls == C.CLASS_OUTPATIENT
    emerg, inp = cls == C.CLASS_EMERGENCY, cls == C.CLASS_INPATIENT

    def r(key: str) -> np.ndarray:
        return reason == C.COND[key]

    resp = r("pneumonia") | r("bronchitis") | r("covid19")
    rules: list[tuple[np.ndarray, str, float]] = [
        (wellness & (age >= 18) & has_chronic_drug, "medication_reconciliation", 0.7),
        (wellness & (age >= 12), "depression_screening", 0.5),
        (amb & r("heart_failure"), "ecg", 0.4),
        (amb & r("hypertension"), "ecg", 0.1),
        (amb & r("cystitis"), "urine_culture", 0.6),
        (amb & r("pharyngitis"), "throat_culture", 0.6),
        (outp & r("heart_failure"), "echocardiography", 0.7),
        (outp & (r("asthma") | r("copd")), "spirometry", 0.7),
        (outp & r("hypertension"), "ecg", 0.5),
        ((outp | amb) & resp, "chest_xray", 0.3),
        (emerg & resp, "chest_xray", 0.8),
        (emerg & r("cystitis"), "urine_culture", 0.8),
        (emerg & (age >= 50), "ecg", 0.4),
        (inp & r("heart_failure"), "echocardiography", 0.6),
        (inp & r("heart_failure"), "ecg", 0.9),
        (inp & (r("heart_failure") | r("copd_exacerbation")), "chest_xray", 0.85),
        (inp & resp, "chest_xray", 1.0),
        (inp & r("sepsis"), "urine_culture", 0.8),
        (inp & r("sepsis"), "chest_xray", 0.6),
        (inp & r("appendicitis"), "appendectomy", 0.95),
        (inp & r("myocardial_infarction"), "ecg", 1.0),
        (inp & r("myocardial_infarction"), "pci", 0.7),
    ]
    rows_l, code_l = [], []
    for mask, key, prob in rules:
        rows = np.flatnonzero(mask & (rng.random(m) < prob))
        rows_l.append(rows)
        code_l.append(np.full(len(rows), C.PROC[key]))
    rows = np.concatenate(rows_l).astype(np.int64)
    code = np.concatenate(code_l).astype(np.int64)
    # Performed a few minutes into a visit, or during the first half of a stay.
    length = e.stop[rows] - e.start[rows]
    offset = np.where(e.cls[rows] == C.CLASS_INPATIENT,
                      (rng.random(len(rows)) * 0.5 * length).astype(np.int64),
                      np.minimum(300 + rng.integers(0, 600, len(rows)), length // 2))
    start = e.start[rows] + offset
    charge = np.array([pr.charge for pr in C.PROCEDURES])[code]
    return _records(n, pat=e.pat[rows], enc=rows, code=code, start=start,
                    stop=start + C.PROCEDURE_MINUTES[code] * 60, reason=e.reason[rows], value=charge)


# ------------------------------------------------------------------------------------------------ observations


def _observations(rng: np.random.Generator, p: Patients, e: Encounters, n: int) -> Records:
    m = len(e.pat)
    pat = e.pat
    ch = p.chronic
    age = _age_at(p, pat, e.start)
    cls = e.cls
    wellness = cls == C.CLASS_WELLNESS
    not_inpatient = cls != C.CLASS_INPATIENT
    u = rng.random((m, 4))
    dm = ch[pat, _K["type2_diabetes"]]
    hyperlip = ch[pat, _K["hyperlipidemia"]]
    r = e.reason

    bmp = ((wellness & (age >= 18) & (u[:, 0] < np.where(age >= 40, 0.8, 0.4)))
           | ((cls == C.CLASS_AMBULATORY) & np.isin(r, [C.COND["type2_diabetes"], C.COND["ckd"],
                                                       C.COND["hypertension"], C.COND["heart_failure"]]))
           | ((cls == C.CLASS_EMERGENCY) & (u[:, 0] < 0.5))
           | (cls == C.CLASS_INPATIENT))
    hba1c = ((wellness & (dm | ((age >= 45) & (u[:, 1] < 0.3))))
             | ((cls == C.CLASS_AMBULATORY) & (r == C.COND["type2_diabetes"]))
             | ((cls == C.CLASS_INPATIENT) & dm))
    lipid = wellness & (((age >= 35) & (u[:, 2] < 0.5)) | hyperlip) & (age >= 18)
    e.bmp, e.hba1c, e.lipid = bmp, hba1c, lipid

    # Patient-level random effects keep a patient's values consistent across visits.
    pre = rng.normal(0, 1, (n, 8))
    bmi_patient = np.where(
        ch[:, _K["obesity"]],
        30.5 + rng.gamma(2.0, 2.4, n),
        np.where(p.age >= 18, np.clip(25 + 2.4 * pre[:, 0], 18.5, 29.6), np.clip(19 + 1.6 * pre[:, 0], 14, 24)),
    )
    adult_height = np.where(p.male, 176 + 7 * pre[:, 1], 162 + 6.5 * pre[:, 1])

    obs_rows: list[np.ndarray] = []
    obs_code: list[np.ndarray] = []
    obs_value: list[np.ndarray] = []

    def add(mask: np.ndarray, key: str, values: np.ndarray) -> None:
        rows = np.flatnonzero(mask)
        obs_rows.append(rows)
        obs_code.append(np.full(len(rows), C.OBS[key]))
        obs_value.append(values[rows])

    noise = rng.normal(0, 1, (m, 8))
    growth = np.clip(0.3 + 0.7 * (np.maximum(age, 0) / 18) ** 0.7, 0.3, 1.0)
    height = adult_height[pat] * growth
    kids_bmi = np.where(age < 18, -2.0 * np.clip((18 - age) / 18, 0, 1), 0.0)
    bmi = np.maximum(bmi_patient[pat] + kids_bmi + 0.35 * noise[:, 0], 12.0)
    bmi = np.where(ch[pat, _K["obesity"]], np.maximum(bmi, 30.0), np.minimum(bmi, 29.9))
    weight = bmi * (height / 100) ** 2
    htn = ch[pat, _K["hypertension"]]
    ckd = ch[pat, _K["ckd"]]
    hf = ch[pat, _K["heart_failure"]]
    systolic = (108 + 0.35 * np.maximum(age - 20, 0) + 16 * htn + 4 * ckd + 6 * pre[pat, 2] + 7 * noise[:, 1])
    diastolic = 70 + 8 * htn + 0.08 * np.maximum(age - 20, 0) + 4 * pre[pat, 2] + 5 * noise[:, 2]
    heart_rate = (72 + 6 * hf + 4 * ch[pat, _K["copd"]] + 1.5 * np.maximum(18 - age, 0) + 5 * pre[pat, 3]
                  + 6 * noise[:, 3])
    add(wellness, "height", np.round(height, 1))
    add(wellness, "weight", np.round(weight, 1))
    add(wellness, "bmi", np.round(bmi, 1))
    add(not_inpatient, "systolic", np.clip(np.round(systolic), 80, 220))
    add(not_inpatient, "diastolic", np.clip(np.round(np.minimum(diastolic, systolic - 20)), 40, 130))
    add(not_inpatient, "heart_rate", np.clip(np.round(heart_rate), 40, 180))

    stress = np.where(cls == C.CLASS_INPATIENT, 15.0, 0.0)
    glucose = np.where(dm, 155 + 25 * pre[pat, 4] + 25 * noise[:, 4], 90 + 6 * pre[pat, 4] + 8 * noise[:, 4]) + stress
    glucose = np.clip(glucose, 55, 450)
    si = p.lab_si[pat]
    add(bmp & ~si, "glucose", np.round(glucose, 1))
    add(bmp & si, "glucose_si", np.round(glucose / C.GLUCOSE_MG_PER_MMOL, 1))
    creat = (np.where(p.male[pat], 1.0, 0.8) + 0.8 * ckd + 0.15 * hf + 0.1 * pre[pat, 5] + 0.08 * noise[:, 5])
    add(bmp, "creatinine", np.round(np.clip(creat, 0.3, 6.0), 2))
    a1c = np.where(dm, 7.6 + 0.9 * pre[pat, 6] + 0.4 * noise[:, 6], 5.3 + 0.25 * pre[pat, 6] + 0.15 * noise[:, 6])
    add(hba1c, "hba1c", np.round(np.clip(a1c, 4.0, 14.0), 1))
    chol = 180 + 0.4 * (age - 40) + 55 * hyperlip + 20 * pre[pat, 7] + 12 * noise[:, 7]
    add(lipid, "cholesterol", np.round(np.clip(chol, 100, 400), 1))

    rows = np.concatenate(obs_rows).astype(np.int64)
    return _records(n, pat=pat[rows], enc=rows, code=np.concatenate(obs_code).astype(np.int64),
                    start=e.start[rows], value=np.concatenate(obs_value).astype(np.float64))


# ------------------------------------------------------------------------------------------------------- costs


def claim_lines_charge(e: Encounters, s: Stays, procedures: Records) -> np.ndarray:
    """Total charge of each encounter's claim: the same lines the X12 writer emits."""
    m = len(e.pat)
    em_charge = np.array([c for _, c in C.EM_CODES])
    total = np.where(e.em >= 0, em_charge[np.maximum(e.em, 0)], 0.0)
    labs = (e.bmp * C.LAB_PANELS["bmp"][3] + e.hba1c * C.LAB_PANELS["hba1c"][3]
            + e.lipid * C.LAB_PANELS["lipid"][3])
    any_lab = e.bmp | e.hba1c | e.lipid
    inpatient = e.cls == C.CLASS_INPATIENT
    total = total + labs + np.where(any_lab & ~inpatient, C.VENIPUNCTURE[1], 0.0)
    total = total + np.bincount(procedures.enc, weights=procedures.value, minlength=m)
    if len(s.enc):
        days = np.maximum(1, np.round(s.los_days)).astype(np.int64)
        stay_charge = days * (C.ROOM_AND_BOARD[1] + C.PHARMACY[1]) + s.via_ed * C.ED_FACILITY[2]
        total[s.enc] += stay_charge
    return np.round(total, 2)


def _costs(p: Patients, e: Encounters, s: Stays, procedures: Records, medications: Records, n: int) -> None:
    e.total = claim_lines_charge(e, s, procedures)
    share = np.array([py.coverage for py in C.PAYERS])
    e.coverage = np.round(e.total * share[p.payer[e.pat]], 2)
    med_total = np.round(medications.cost * medications.value, 2)
    med_cover = np.round(med_total * share[p.payer[medications.pat]], 2)
    p.coverage = np.round(np.bincount(e.pat, e.coverage, n) + np.bincount(medications.pat, med_cover, n), 2)
    p.expenses = np.round(np.bincount(e.pat, e.total - e.coverage, n)
                          + np.bincount(medications.pat, med_total - med_cover, n), 2)
