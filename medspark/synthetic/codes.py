"""Code tables and reference entities the synthetic population draws from, with every code in both vocabularies.

The generator writes the same clinical fact into several formats, each in the vocabulary that format really uses:
SNOMED CT in Synthea CSV and FHIR, ICD-10-CM in HL7 DG1 and X12 HI, RxNorm for drugs, LOINC for observations,
CPT/HCPCS and UB-04 revenue codes on claims. Keeping one table per concept with all of its codes here is what
makes those outputs agree, and lets later layers (silver vocabulary mapping, tests) look codes up in one place.

Descriptions contain no comma, quote, backslash or HL7/X12 delimiter, so every writer can place them verbatim
(Synthea's own CSV exporter strips commas from descriptions in the same way); :func:`_check_safe` enforces it.
"""

from __future__ import annotations

import uuid
from typing import NamedTuple

import numpy as np

# --------------------------------------------------------------------------------------------------------------
# Conditions


class Condition(NamedTuple):
    """A diagnosis with its SNOMED CT concept (CSV/FHIR) and ICD-10-CM code (HL7/X12)."""

    key: str
    snomed: str
    snomed_display: str
    icd10: str
    icd10_display: str
    chronic: bool


# Index order matters: the first ``N_CHRONIC`` rows are the chronic conditions, in the column order of the
# ground-truth flags and of ``Patients.chronic``.
CONDITIONS: tuple[Condition, ...] = (
    Condition("obesity", "162864005", "Body mass index 30+ - obesity (finding)", "E66.9",
              "Obesity unspecified", True),
    Condition("hypertension", "59621000", "Essential hypertension (disorder)", "I10",
              "Essential (primary) hypertension", True),
    Condition("type2_diabetes", "44054006", "Diabetes mellitus type 2 (disorder)", "E11.9",
              "Type 2 diabetes mellitus without complications", True),
    Condition("hyperlipidemia", "55822004", "Hyperlipidemia (disorder)", "E78.5",
              "Hyperlipidemia unspecified", True),
    Condition("ckd", "433144002", "Chronic kidney disease stage 3 (disorder)", "N18.30",
              "Chronic kidney disease stage 3 unspecified", True),
    Condition("heart_failure", "88805009", "Chronic congestive heart failure (disorder)", "I50.9",
              "Heart failure unspecified", True),
    Condition("asthma", "195967001", "Asthma (disorder)", "J45.909",
              "Unspecified asthma uncomplicated", True),
    Condition("copd", "13645005", "Chronic obstructive lung disease (disorder)", "J44.9",
              "Chronic obstructive pulmonary disease unspecified", True),
    # acute
    Condition("pharyngitis", "195662009", "Acute viral pharyngitis (disorder)", "J02.9",
              "Acute pharyngitis unspecified", False),
    Condition("bronchitis", "10509002", "Acute bronchitis (disorder)", "J20.9",
              "Acute bronchitis unspecified", False),
    Condition("sinusitis", "444814009", "Viral sinusitis (disorder)", "J01.90",
              "Acute sinusitis unspecified", False),
    Condition("cystitis", "307426000", "Acute infective cystitis (disorder)", "N30.00",
              "Acute cystitis without hematuria", False),
    Condition("ankle_sprain", "44465007", "Sprain of ankle (disorder)", "S93.409A",
              "Sprain of unspecified ligament of unspecified ankle initial encounter", False),
    Condition("pneumonia", "233604007", "Pneumonia (disorder)", "J18.9",
              "Pneumonia unspecified organism", False),
    Condition("covid19", "840539006", "Disease caused by severe acute respiratory syndrome coronavirus 2 (disorder)",
              "U07.1", "COVID-19", False),
    Condition("sepsis", "91302008", "Sepsis (disorder)", "A41.9", "Sepsis unspecified organism", False),
    Condition("appendicitis", "74400008", "Appendicitis (disorder)", "K37", "Unspecified appendicitis", False),
    Condition("myocardial_infarction", "22298006", "Myocardial infarction (disorder)", "I21.9",
              "Acute myocardial infarction unspecified", False),
    Condition("copd_exacerbation", "195951007",
              "Acute exacerbation of chronic obstructive airways disease (disorder)", "J44.1",
              "Chronic obstructive pulmonary disease with (acute) exacerbation", False),
)
COND = {c.key: i for i, c in enumerate(CONDITIONS)}
CHRONIC_KEYS: tuple[str, ...] = tuple(c.key for c in CONDITIONS if c.chronic)
N_CHRONIC = len(CHRONIC_KEYS)

# Diagnoses used on claims when an encounter has no problem-oriented reason (a routine check-up).
ICD_ROUTINE_ADULT = "Z00.00"  # Encounter for general adult medical examination without abnormal findings
ICD_ROUTINE_CHILD = "Z00.129"  # Encounter for routine child health examination without abnormal findings

# "Unknown code" defect: a code in no vocabulary (passes bronze, fails silver's vocabulary join).
UNKNOWN_SNOMED = "999999999"
UNKNOWN_ICD10 = "Z99.99X"

# --------------------------------------------------------------------------------------------------------------
# Medications (RxNorm clinical drugs as Synthea exports them)


class Medication(NamedTuple):
    """A prescribable drug with its RxNorm code and the unit cost (USD per dispense) used for costs."""

    key: str
    rxnorm: str
    display: str
    unit_cost: float


MEDICATIONS: tuple[Medication, ...] = (
    Medication("metformin", "860975", "24 HR metformin hydrochloride 500 MG Extended Release Oral Tablet", 12.40),
    Medication("insulin", "106892",
               "insulin isophane human 70 UNT/ML / insulin regular human 30 UNT/ML Injectable Suspension [Humulin]",
               138.60),
    Medication("lisinopril", "314076", "lisinopril 10 MG Oral Tablet", 6.10),
    Medication("hctz", "310798", "Hydrochlorothiazide 25 MG Oral Tablet", 5.20),
    Medication("amlodipine", "308136", "amLODIPine 2.5 MG Oral Tablet", 7.80),
    Medication("furosemide", "313988", "Furosemide 40 MG Oral Tablet", 6.90),
    Medication("carvedilol", "200033", "carvedilol 25 MG Oral Tablet", 9.30),
    Medication("simvastatin", "314231", "Simvastatin 10 MG Oral Tablet", 8.10),
    Medication("atorvastatin", "259255", "Atorvastatin 80 MG Oral Tablet", 14.70),
    Medication("albuterol", "2123111", "NDA020503 200 ACTUAT Albuterol 0.09 MG/ACTUAT Metered Dose Inhaler", 39.90),
    Medication("fluticasone", "895994", "120 ACTUAT Fluticasone propionate 0.044 MG/ACTUAT Metered Dose Inhaler",
               48.20),
    Medication("amoxicillin_clavulanate", "562251", "Amoxicillin 250 MG / Clavulanate 125 MG Oral Tablet", 18.90),
    Medication("acetaminophen", "313782", "Acetaminophen 325 MG Oral Tablet", 3.50),
    Medication("ibuprofen", "198405", "Ibuprofen 100 MG Oral Tablet", 3.20),
    Medication("ciprofloxacin", "309309", "Ciprofloxacin 500 MG Oral Tablet", 11.60),
)
MED = {m.key: i for i, m in enumerate(MEDICATIONS)}

# Chronic condition -> ((drug, probability), ...): every drug is prescribed only for its indication, so
# "metformin implies type 2 diabetes" holds in the data.
CHRONIC_DRUGS: dict[str, tuple[tuple[str, float], ...]] = {
    "hypertension": (("lisinopril", 0.60), ("hctz", 0.35), ("amlodipine", 0.25)),
    "type2_diabetes": (("metformin", 0.90), ("insulin", 0.15)),
    "hyperlipidemia": (("simvastatin", 0.55), ("atorvastatin", 0.30)),
    "heart_failure": (("furosemide", 0.85), ("carvedilol", 0.60)),
    "asthma": (("albuterol", 0.95), ("fluticasone", 0.50)),
    "copd": (("albuterol", 0.90), ("fluticasone", 0.40)),
}
# Acute condition -> (drug, probability) prescribed at the diagnosing visit.
ACUTE_DRUGS: dict[str, tuple[str, float]] = {
    "pharyngitis": ("amoxicillin_clavulanate", 0.5),
    "bronchitis": ("acetaminophen", 0.6),
    "sinusitis": ("amoxicillin_clavulanate", 0.4),
    "cystitis": ("ciprofloxacin", 0.9),
    "ankle_sprain": ("ibuprofen", 0.8),
    "pneumonia": ("amoxicillin_clavulanate", 0.9),
    "covid19": ("acetaminophen", 0.7),
}

# --------------------------------------------------------------------------------------------------------------
# Procedures (SNOMED CT in CSV/FHIR; CPT on professional claims; revenue code + CPT on institutional claims)


class Procedure(NamedTuple):
    """A procedure with its SNOMED CT concept, CPT code, UB-04 revenue code and charge (USD)."""

    key: str
    snomed: str
    display: str
    cpt: str
    revenue: str
    charge: float


PROCEDURES: tuple[Procedure, ...] = (
    Procedure("medication_reconciliation", "430193006", "Medication Reconciliation (procedure)", "1111F", "0510",
              20.00),
    Procedure("depression_screening", "171207006", "Depression screening (procedure)", "96127", "0510", 45.00),
    Procedure("ecg", "29303009", "Electrocardiographic procedure", "93000", "0730", 180.00),
    Procedure("chest_xray", "399208008", "Plain chest X-ray (procedure)", "71046", "0324", 260.00),
    Procedure("echocardiography", "40701008", "Echocardiography (procedure)", "93306", "0483", 1400.00),
    Procedure("spirometry", "127783003", "Spirometry (procedure)", "94010", "0460", 190.00),
    Procedure("urine_culture", "117010004", "Urine culture (procedure)", "87086", "0306", 60.00),
    Procedure("throat_culture", "117015009", "Throat culture (procedure)", "87081", "0306", 55.00),
    Procedure("appendectomy", "80146002", "Appendectomy (procedure)", "44970", "0360", 6800.00),
    Procedure("pci", "415070008", "Percutaneous coronary intervention (procedure)", "92928", "0481", 14500.00),
)
PROC = {p.key: i for i, p in enumerate(PROCEDURES)}
PROCEDURE_MINUTES = np.array([10, 10, 15, 20, 45, 25, 10, 10, 90, 120], dtype=np.int64)

# --------------------------------------------------------------------------------------------------------------
# Observations (LOINC; UCUM units)


class Observation(NamedTuple):
    """An observation code with its unit, category and the decimals its value is written with."""

    key: str
    loinc: str
    display: str
    unit: str
    category: str  # vital-signs | laboratory
    decimals: int


OBSERVATIONS: tuple[Observation, ...] = (
    Observation("height", "8302-2", "Body Height", "cm", "vital-signs", 1),
    Observation("weight", "29463-7", "Body Weight", "kg", "vital-signs", 1),
    Observation("bmi", "39156-5", "Body mass index (BMI) [Ratio]", "kg/m2", "vital-signs", 1),
    Observation("systolic", "8480-6", "Systolic blood pressure", "mm[Hg]", "vital-signs", 1),
    Observation("diastolic", "8462-4", "Diastolic blood pressure", "mm[Hg]", "vital-signs", 1),
    Observation("heart_rate", "8867-4", "Heart rate", "/min", "vital-signs", 1),
    Observation("glucose", "2339-0", "Glucose [Mass/volume] in Blood", "mg/dL", "laboratory", 1),
    # The same analyte in SI units, as some labs report it: silver converts (1 mmol/L = 18.016 mg/dL).
    Observation("glucose_si", "15074-8", "Glucose [Moles/volume] in Blood", "mmol/L", "laboratory", 1),
    Observation("hba1c", "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", "laboratory", 1),
    Observation("creatinine", "2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", "laboratory", 2),
    Observation("cholesterol", "2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", "laboratory", 1),
)
OBS = {o.key: i for i, o in enumerate(OBSERVATIONS)}
GLUCOSE_MG_PER_MMOL = 18.016

# Lab panels as ordered (HL7 OBR-4) and billed (CPT): panel -> (LOINC, name, CPT, charge)
LAB_PANELS: dict[str, tuple[str, str, str, float]] = {
    "bmp": ("51990-0", "Basic metabolic panel - Blood", "80048", 45.00),
    "hba1c": ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "83036", 38.00),
    "lipid": ("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "82465", 25.00),
}
OBS_PANEL = {"glucose": "bmp", "glucose_si": "bmp", "creatinine": "bmp", "hba1c": "hba1c", "cholesterol": "lipid"}
VENIPUNCTURE = ("36415", 12.00)

# --------------------------------------------------------------------------------------------------------------
# Encounters


class EncounterType(NamedTuple):
    """An encounter type: Synthea ENCOUNTERCLASS, SNOMED CT type, FHIR class, HL7 PV1-2, X12 place of service."""

    key: str
    encounter_class: str
    snomed: str
    display: str
    fhir_class: str
    hl7_class: str
    place_of_service: str
    base_cost: float


ENCOUNTER_TYPES: tuple[EncounterType, ...] = (
    EncounterType("wellness_adult", "wellness", "162673000", "General examination of patient (procedure)",
                  "AMB", "O", "11", 129.16),
    EncounterType("wellness_child", "wellness", "410620009", "Well child visit (procedure)", "AMB", "O", "11",
                  129.16),
    EncounterType("ambulatory_acute", "ambulatory", "185345009", "Encounter for symptom (procedure)", "AMB", "O",
                  "11", 77.49),
    EncounterType("ambulatory_followup", "ambulatory", "390906007", "Follow-up encounter (procedure)", "AMB", "O",
                  "11", 77.49),
    EncounterType("outpatient", "outpatient", "185347001", "Encounter for problem (procedure)", "AMB", "O", "22",
                  94.16),
    EncounterType("emergency", "emergency", "50849002", "Emergency room admission (procedure)", "EMER", "E", "23",
                  146.18),
    EncounterType("inpatient_emergency", "inpatient", "183452005", "Emergency hospital admission (procedure)",
                  "IMP", "I", "21", 188.22),
    EncounterType("inpatient_elective", "inpatient", "32485007", "Hospital admission (procedure)", "IMP", "I",
                  "21", 188.22),
)
ENC = {e.key: i for i, e in enumerate(ENCOUNTER_TYPES)}
CLASS_WELLNESS, CLASS_AMBULATORY, CLASS_OUTPATIENT, CLASS_EMERGENCY, CLASS_INPATIENT = range(5)

# Evaluation-and-management codes billed on professional claims: code -> charge.
EM_CODES: tuple[tuple[str, float], ...] = (
    ("99391", 180.0), ("99392", 190.0), ("99393", 195.0), ("99394", 210.0),  # preventive <1, 1-4, 5-11, 12-17
    ("99395", 225.0), ("99396", 240.0), ("99397", 260.0),  # preventive 18-39, 40-64, 65+
    ("99213", 125.0), ("99214", 185.0), ("99215", 250.0),  # office visit, established patient
    ("99283", 320.0), ("99284", 520.0), ("99285", 780.0),  # emergency department
)
EM = {code: i for i, (code, _) in enumerate(EM_CODES)}

# Institutional (837I) per-stay lines without a CPT code: revenue code -> (charge per day, unit basis).
ROOM_AND_BOARD = ("0120", 2400.00)  # semi-private room, per day
PHARMACY = ("0250", 180.00)  # general pharmacy, per day
ED_FACILITY = ("0450", "99285", 980.00)  # emergency room, admissions through the ED
LAB_REVENUE = "0301"  # chemistry

# --------------------------------------------------------------------------------------------------------------
# Demographics

# US resident population by age band (2020 census, percent), used as the age pyramid at 2025-12-31.
AGE_BANDS: tuple[tuple[int, int, float], ...] = (
    (0, 5, 5.7), (5, 10, 6.0), (10, 15, 6.4), (15, 20, 6.4), (20, 25, 6.6), (25, 30, 6.9), (30, 35, 6.9),
    (35, 40, 6.6), (40, 45, 6.2), (45, 50, 6.1), (50, 55, 6.3), (55, 60, 6.5), (60, 65, 6.3), (65, 70, 5.4),
    (70, 75, 4.3), (75, 80, 2.9), (80, 85, 1.9), (85, 90, 1.2), (90, 100, 0.6),
)

# (Synthea RACE value, CDC race code, display, share)
RACES: tuple[tuple[str, str, str, float], ...] = (
    ("white", "2106-3", "White", 0.70),
    ("black", "2054-5", "Black or African American", 0.13),
    ("asian", "2028-9", "Asian", 0.07),
    ("native", "1002-5", "American Indian or Alaska Native", 0.01),
    ("hawaiian", "2076-8", "Native Hawaiian or Other Pacific Islander", 0.005),
    ("other", "2131-1", "Other Race", 0.085),
)
# (Synthea ETHNICITY value, CDC code, display, share)
ETHNICITIES: tuple[tuple[str, str, str, float], ...] = (
    ("hispanic", "2135-2", "Hispanic or Latino", 0.18),
    ("nonhispanic", "2186-5", "Not Hispanic or Latino", 0.82),
)
MARITAL = {"M": "Married", "S": "Never Married", "D": "Divorced", "W": "Widowed"}

FIRST_NAMES_F: tuple[str, ...] = (
    "Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara", "Susan", "Jessica", "Sarah", "Karen",
    "Lisa", "Nancy", "Betty", "Sandra", "Margaret", "Ashley", "Kimberly", "Emily", "Donna", "Michelle",
    "Carol", "Amanda", "Melissa", "Deborah", "Stephanie", "Rebecca", "Sharon", "Laura", "Cynthia", "Amy",
    "Kathleen", "Angela", "Shirley", "Brenda", "Emma", "Anna", "Pamela", "Nicole", "Samantha", "Katherine",
    "Christine", "Helen", "Debra", "Rachel", "Carolyn", "Janet", "Maria", "Catherine", "Heather", "Diane",
    "Olivia", "Julie", "Joyce", "Victoria", "Ruth", "Virginia", "Lauren", "Kelly", "Christina", "Joan",
    "Evelyn", "Judith", "Andrea", "Hannah", "Megan", "Cheryl", "Jacqueline", "Martha", "Madison", "Teresa",
    "Zoë", "Renée", "Inés", "Sofía", "Mei", "Aaliyah", "Priya", "Fatima", "Yesenia", "Siobhan",
)
FIRST_NAMES_M: tuple[str, ...] = (
    "James", "Robert", "John", "Michael", "David", "William", "Richard", "Joseph", "Thomas", "Christopher",
    "Charles", "Daniel", "Matthew", "Anthony", "Mark", "Donald", "Steven", "Andrew", "Paul", "Joshua",
    "Kenneth", "Kevin", "Brian", "George", "Timothy", "Ronald", "Jason", "Edward", "Jeffrey", "Ryan",
    "Jacob", "Gary", "Nicholas", "Eric", "Jonathan", "Stephen", "Larry", "Justin", "Scott", "Brandon",
    "Benjamin", "Samuel", "Gregory", "Alexander", "Patrick", "Frank", "Raymond", "Jack", "Dennis", "Jerry",
    "Tyler", "Aaron", "Henry", "Adam", "Douglas", "Nathan", "Peter", "Zachary", "Kyle", "Walter",
    "José", "Jesús", "André", "Wei", "Hiroshi", "Mohammed", "Darnell", "Tomás", "Sean", "Ravi",
)
LAST_NAMES: tuple[str, ...] = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
    "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson",
    "Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores",
    "Green", "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts",
    "Mosciski", "Schmidt", "Medhurst", "Upton", "Hermiston", "Simonis", "Kessler", "Ondricka", "Bergstrom",
    "Kuphal", "Runolfsdottir", "Considine", "Gerlach", "Windler", "O'Kon", "O'Connell", "D'Amore", "Muñoz",
    "Peña", "Ibáñez", "Nuñez", "Cruickshank", "Macejkovic", "Schamberger", "Kertzmann", "Botsford", "Stanton",
    "Wolff", "Reichert", "Lemke", "Bartoletti", "Hackett", "Mertz", "Tromp", "Kshlerin", "Wunsch", "Zieme",
)
STREET_NAMES: tuple[str, ...] = (
    "Stamm Lock", "Kemmer Neck", "Abernathy Landing", "Main Street", "Elm Street", "Maple Avenue", "Oak Lane",
    "Pine Road", "Cedar Court", "Washington Street", "Park Avenue", "Highland Avenue", "Summer Street",
    "Prospect Hill", "Walnut Row", "Chestnut Drive", "River Road", "Bay State Road", "Harbor View", "Mill Pond",
    "Orchard Way", "Schoolhouse Lane", "Church Street", "Beacon Way", "Cranberry Circle", "Larkin Knoll",
    "Gutmann Crossroad", "Hoppe Viaduct", "Wiza Fork", "Bashirian Mall",
)
# (city, county, ZIP, latitude, longitude): Massachusetts, as in the Synthea sample data.
CITIES: tuple[tuple[str, str, str, float, float], ...] = (
    ("Boston", "Suffolk County", "02118", 42.3370, -71.0726),
    ("Cambridge", "Middlesex County", "02139", 42.3647, -71.1042),
    ("Somerville", "Middlesex County", "02143", 42.3815, -71.0980),
    ("Worcester", "Worcester County", "01604", 42.2543, -71.7697),
    ("Springfield", "Hampden County", "01109", 42.1181, -72.5497),
    ("Lowell", "Middlesex County", "01852", 42.6334, -71.3162),
    ("Brockton", "Plymouth County", "02301", 42.0834, -71.0184),
    ("Quincy", "Norfolk County", "02169", 42.2529, -71.0023),
    ("Lynn", "Essex County", "01902", 42.4668, -70.9495),
    ("New Bedford", "Bristol County", "02740", 41.6362, -70.9342),
    ("Fall River", "Bristol County", "02720", 41.7015, -71.1550),
    ("Newton", "Middlesex County", "02458", 42.3370, -71.2092),
    ("Lawrence", "Essex County", "01841", 42.7070, -71.1631),
    ("Framingham", "Middlesex County", "01701", 42.2793, -71.4162),
    ("Haverhill", "Essex County", "01830", 42.7762, -71.0773),
    ("Waltham", "Middlesex County", "02451", 42.3765, -71.2356),
    ("Malden", "Middlesex County", "02148", 42.4251, -71.0662),
    ("Pittsfield", "Berkshire County", "01201", 42.4501, -73.2454),
    ("Salem", "Essex County", "01970", 42.5195, -70.8967),
    ("Plymouth", "Plymouth County", "02360", 41.9584, -70.6673),
    ("Barnstable", "Barnstable County", "02630", 41.7003, -70.3002),
    ("Attleboro", "Bristol County", "02703", 41.9445, -71.2856),
    ("Northampton", "Hampshire County", "01060", 42.3251, -72.6412),
    ("Fitchburg", "Worcester County", "01420", 42.5834, -71.8023),
)

# --------------------------------------------------------------------------------------------------------------
# Payers. (name, X12 payer id, claim filing indicator on 837P, on 837I, share of coverage paid, member-id prefix)


class Payer(NamedTuple):
    """A payer with its X12 ids and the fraction of charges it covers."""

    name: str
    payer_id: str
    filing_837p: str
    filing_837i: str
    coverage: float
    member_prefix: str


PAYERS: tuple[Payer, ...] = (
    Payer("Medicare", "MCARE", "MB", "MA", 0.80, "1EG"),
    Payer("Medicaid", "MCAID", "MC", "MC", 0.95, "MA"),
    Payer("Dual Eligible", "DUALE", "MB", "MA", 0.97, "1DE"),
    Payer("Blue Cross Blue Shield", "BCBSM", "BL", "BL", 0.82, "XBC"),
    Payer("Aetna", "60054", "CI", "CI", 0.78, "W"),
    Payer("UnitedHealthcare", "87726", "CI", "CI", 0.76, "U"),
    Payer("Harvard Pilgrim Health Care", "04271", "CI", "CI", 0.80, "HP"),
    Payer("NO_INSURANCE", "", "", "", 0.0, ""),
)
PAYER_NONE = len(PAYERS) - 1


def _stable_uuid(name: str) -> str:
    """A UUID fixed by a name, for reference entities shared by every run and chunk."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "https://medspark.invalid/synthetic/" + name))


PAYER_UUIDS: tuple[str, ...] = tuple(_stable_uuid("payer/" + p.name) for p in PAYERS)


def npi_with_check_digit(base9: int) -> str:
    """A 10-digit NPI: nine digits plus the Luhn check digit computed with the 80840 prefix (CMS rule)."""
    digits = f"{base9:09d}"
    total = 24  # the constant contribution of the 80840 prefix
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            d = d - 9 if d > 9 else d
        total += d
    return digits + str((10 - total % 10) % 10)


class Organization(NamedTuple):
    """A care site: clinics host wellness/ambulatory visits, hospitals outpatient, ED and inpatient care."""

    uuid: str
    name: str
    kind: str  # clinic | hospital
    address: str
    city: str
    zip: str
    npi: str


class Provider(NamedTuple):
    """A clinician working at one organization."""

    uuid: str
    org: int
    first: str
    last: str
    sex: str
    npi: str


def _reference_entities() -> tuple[tuple[Organization, ...], tuple[Provider, ...]]:
    """Fixed organizations and providers (independent of the seed, like a real network)."""
    rng = np.random.default_rng(20240601)
    orgs: list[Organization] = []
    names = (
        [(f"MEDSPARK FAMILY PRACTICE {c[0].upper()}", "clinic", c) for c in CITIES[:10]]
        + [(f"MEDSPARK GENERAL HOSPITAL {c[0].upper()}", "hospital", c) for c in CITIES[:4]]
    )
    for i, (name, kind, city) in enumerate(names):
        street = f"{100 + 37 * i} {STREET_NAMES[i % len(STREET_NAMES)]}"
        orgs.append(Organization(_stable_uuid("org/" + name), name, kind, street, city[0], city[2],
                                 npi_with_check_digit(100000000 + 7919 * i)))
    providers: list[Provider] = []
    for oi, org in enumerate(orgs):
        for j in range(4 if org.kind == "clinic" else 8):
            sex = "F" if rng.random() < 0.5 else "M"
            first = (FIRST_NAMES_F if sex == "F" else FIRST_NAMES_M)[int(rng.integers(60))]
            last = LAST_NAMES[int(rng.integers(50))]
            name = f"{org.name}/{j}"
            providers.append(Provider(_stable_uuid("provider/" + name), oi, first, last, sex,
                                      npi_with_check_digit(200000000 + 104729 * len(providers))))
    return tuple(orgs), tuple(providers)


ORGANIZATIONS, PROVIDERS = _reference_entities()
CLINICS = np.array([i for i, o in enumerate(ORGANIZATIONS) if o.kind == "clinic"], dtype=np.int64)
HOSPITALS = np.array([i for i, o in enumerate(ORGANIZATIONS) if o.kind == "hospital"], dtype=np.int64)
PROVIDERS_BY_ORG: tuple[np.ndarray, ...] = tuple(
    np.array([j for j, p in enumerate(PROVIDERS) if p.org == i], dtype=np.int64) for i in range(len(ORGANIZATIONS))
)

# Submitter, receiver and billing providers on X12 files (one billing provider per file type).
X12_SUBMITTER = ("MEDSPARK CLEARINGHOUSE", "MSCH0001")
X12_RECEIVER = ("MEDSPARK HEALTH PLANS", "MSHP0001")
X12_BILLING_PROFESSIONAL = ("MEDSPARK PHYSICIANS GROUP", npi_with_check_digit(300000001), "207Q00000X",
                            "045551234", "1 MEDSPARK PLAZA", "Boston", "02118")
X12_BILLING_INSTITUTIONAL = ("MEDSPARK GENERAL HOSPITAL", npi_with_check_digit(300000002), "282N00000X",
                             "045555678", "1 MEDSPARK PLAZA", "Boston", "02118")

# Identifier systems (CONTEXT.md).
MRN_SYSTEM = "urn:oid:2.16.840.1.113883.3.4242.1"
VISIT_SYSTEM = "urn:oid:2.16.840.1.113883.3.4242.2"
SSN_SYSTEM = "http://hl7.org/fhir/sid/us-ssn"
SYNTHEA_SYSTEM = "https://github.com/synthetichealth/synthea"


def _check_safe() -> None:
    """Fail at import if a table value would need escaping in CSV, JSON, HL7 or X12."""
    forbidden = set(',"\\|^~&*:\n\r')
    texts: list[str] = []
    for c in CONDITIONS:
        texts += [c.snomed_display, c.icd10_display]
    texts += [m.display for m in MEDICATIONS]
    texts += [p.display for p in PROCEDURES] + [o.display for o in OBSERVATIONS] + [e.display for e in ENCOUNTER_TYPES]
    texts += list(FIRST_NAMES_F + FIRST_NAMES_M + LAST_NAMES + STREET_NAMES) + [c[0] for c in CITIES]
    texts += [p.name for p in PAYERS] + [o.name for o in ORGANIZATIONS]
    bad = [t for t in texts if forbidden & set(t)]
    if bad:
        raise ValueError(f"code table values need escaping: {bad[:3]}")


_check_safe()

# Vectorised lookups (numpy object arrays index like lists but accept index arrays).
COND_SNOMED = np.array([c.snomed for c in CONDITIONS], dtype=object)
COND_SNOMED_DISPLAY = np.array([c.snomed_display for c in CONDITIONS], dtype=object)
COND_ICD10 = np.array([c.icd10 for c in CONDITIONS], dtype=object)
COND_ICD10_DISPLAY = np.array([c.icd10_display for c in CONDITIONS], dtype=object)
