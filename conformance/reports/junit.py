"""JUnit XML from a run record: a testsuite per level, a testcase per probe.

FAIL is a <failure>; ERROR, TIMEOUT and CRASH are <error>s whose type is
the verdict; SKIP is <skipped> with the reason.
"""

from __future__ import annotations

from junit_xml import TestCase, TestSuite, to_xml_report_string

from ..runrecord import RunRecord
from ..verdicts import Verdict


def render(record: RunRecord) -> str:
    profile = record.profile.get("name", "profile")
    suites = []
    for info in record.levels:
        cases = []
        for result in (r for r in record.results if r.level == info.level):
            group = result.probe.rpartition(".")[0] or result.probe
            case = TestCase(
                name=result.probe,
                classname=f"nvct.{profile}.L{info.level}.{group}",
                elapsed_sec=result.duration_s,
                stdout="\n".join(result.console) or None,
            )
            output = "\n".join(result.notes) or None
            if result.verdict is Verdict.FAIL:
                case.add_failure_info(message=result.detail, output=output, failure_type="FAIL")
            elif result.verdict in (Verdict.ERROR, Verdict.TIMEOUT, Verdict.CRASH):
                case.add_error_info(message=result.detail, output=output, error_type=result.verdict.value)
            elif result.verdict is Verdict.SKIP:
                case.add_skipped_info(message=result.detail)
            cases.append(case)
        properties = {"level": str(info.level), "hypervisor": info.hypervisor.get("backend", "")}
        properties.update({f"fact.{k}": v for k, v in info.facts.items()})
        suites.append(
            TestSuite(
                name=f"nvct.{profile}.L{info.level}",
                test_cases=cases,
                hostname=record.environment.get("host"),
                timestamp=record.started,
                properties=properties,
            )
        )
    return to_xml_report_string(suites, prettyprint=True, encoding="utf-8")
