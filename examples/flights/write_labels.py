"""Write the flights example's label table next to its spec: ``python examples/flights/write_labels.py``.

Then ``raymlops features apply examples/flights/features.yaml`` (+ ingest, see the README) and
``raymlops train examples/flights/spec.yaml``.
"""

from pathlib import Path

from raymlops.datasets.flights_labels import write_label_table

if __name__ == "__main__":
    print(write_label_table(Path(__file__).resolve().parent / "labels.parquet"))
