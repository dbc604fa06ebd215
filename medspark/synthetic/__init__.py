"""Deterministic synthetic population generator: one population written as Synthea CSV, FHIR R4 (NDJSON and
transaction Bundles), HL7 v2.5, X12 837 and device vitals, with injected defects and ground truth.

Entry point: :func:`generate` (used by the CLI and jobs). The clinical model is documented in
:mod:`medspark.synthetic.population`; the output layout in ``notes/CONTEXT.md`` ("Generated data layout").
"""

from medspark.synthetic.orchestration import GenerateSummary, generate

__all__ = ["GenerateSummary", "generate"]
