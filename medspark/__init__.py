"""medspark: a healthcare lakehouse on Apache Spark and Delta Lake.

Bronze ingests FHIR R4, HL7 v2, Synthea CSV, X12 837 claims and device vitals exactly once; later layers
conform to OMOP CDM v5.4 (silver) and publish suppressed analytics (gold).
"""

__version__ = "0.1.0"
