"""A long fuzzing run of the record parser, the boot log and the profile
loader: the hypothesis properties of tests/test_fuzz.py, with many more
examples than the test suite affords. Not a test; run it by hand or in a
nightly job:

    python bench/fuzz.py --examples 20000

It exits 1 and prints the falsifying example if a property fails.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=20000, help="examples per property (default 20000)")
    args = parser.parse_args()
    os.environ["NVCT_FUZZ_EXAMPLES"] = str(args.examples)
    import test_fuzz  # the properties live with the tests; they read the count when imported
    import test_fuzz_inputs  # hostile profiles: aliases, depth, size, control characters, numbers
    import test_fuzz_outputs as out  # issue 13: run records, report escaping, output paths

    properties = [
        ("parse_line on any text", test_fuzz.test_parse_line_never_raises_anything_else, False),
        ("well-formed records round-trip", test_fuzz.test_well_formed_records_round_trip, False),
        ("boot log under damage", test_fuzz.test_boot_log_survives_any_damage, False),
        ("profile loader on random profiles", test_fuzz.test_profile_loader_raises_only_profile_errors, True),
        ("profile loader on any text", test_fuzz.test_profile_loader_survives_any_text, True),
        ("damaged run records", out.test_a_damaged_run_record_is_read_or_refused_cleanly, True),
        ("any string in every report", out.test_any_string_in_a_record_stays_inside_its_field, False),
        ("output paths of every kind", out.test_an_output_path_is_written_or_refused_never_replaced, True),
        ("profiles built from aliases", test_fuzz_inputs.test_profiles_built_from_aliases, True),
        ("deeply nested profiles", test_fuzz_inputs.test_deeply_nested_profiles, True),
        ("large profiles", test_fuzz_inputs.test_large_profiles, True),
        ("control characters in profiles", test_fuzz_inputs.test_control_characters_anywhere, True),
        ("non-finite and absurd numbers", test_fuzz_inputs.test_non_finite_and_absurd_numbers, True),
    ]
    failed = 0
    for label, prop, needs_dir in properties:
        started = time.perf_counter()
        try:
            if needs_dir:
                with tempfile.TemporaryDirectory() as tmp:
                    prop(Path(tmp))
            else:
                prop()
        except Exception as exc:  # noqa: BLE001 - report and go on with the next property
            failed += 1
            print(f"FAIL  {label}: {type(exc).__name__}: {exc}")
            continue
        print(f"ok    {label}: {args.examples} examples in {time.perf_counter() - started:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
