"""Code tables as data (SNOMED CT, LOINC, RxNorm, ICD-10-CM, ICD-O-3, ATC, UCUM)."""
