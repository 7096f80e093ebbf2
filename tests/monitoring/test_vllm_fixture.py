"""The vLLM /metrics fixture: what the generator prints, and what the pinned vLLM defines."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from promsupport import VLLM_FIXTURE
from vllm_metrics import FINISH_REASONS, VERSION, VllmStandIn, build_1_2_5_buckets, fixture_text


def test_the_committed_fixture_is_what_the_generator_prints() -> None:
    assert VLLM_FIXTURE.name == f"vllm-{VERSION}.metrics"
    assert VLLM_FIXTURE.read_text() == fixture_text(), (
        "regenerate: python tests/monitoring/vllm_metrics.py > " + str(VLLM_FIXTURE)
    )


def test_the_fixture_parses_and_has_vllms_families_and_labels() -> None:
    families = {f.name: f for f in text_string_to_metric_families(VLLM_FIXTURE.read_text())}
    assert len(families) == 26
    assert all(name.startswith("vllm:") for name in families)
    kinds = {name: f.type for name, f in families.items()}
    assert kinds["vllm:num_requests_running"] == "gauge"
    assert kinds["vllm:num_preemptions"] == "counter"
    assert kinds["vllm:time_to_first_token_seconds"] == "histogram"
    for fam in families.values():
        for sample in fam.samples:
            if fam.name != "vllm:cache_config_info":
                assert {"model_name", "engine"} <= set(sample.labels), sample
    reasons = {s.labels["finished_reason"] for s in families["vllm:request_success"].samples}
    assert reasons == set(FINISH_REASONS)
    buckets = [
        s.labels["le"]
        for s in families["vllm:request_prompt_tokens"].samples
        if s.name.endswith("_bucket")
    ]
    assert [float(b) for b in buckets[:-1]] == build_1_2_5_buckets(16384)
    assert build_1_2_5_buckets(100) == [1, 2, 5, 10, 20, 50, 100]  # vLLM's own doctest


def test_the_stand_in_advances_counters_at_each_scrape() -> None:
    stand_in = VllmStandIn()

    def prompt_tokens(text: bytes) -> float:
        [fam] = [
            f
            for f in text_string_to_metric_families(text.decode())
            if f.name == "vllm:prompt_tokens"
        ]
        return float(fam.samples[0].value)

    first, second = prompt_tokens(stand_in.scrape()), prompt_tokens(stand_in.scrape())
    assert second > first > 0
