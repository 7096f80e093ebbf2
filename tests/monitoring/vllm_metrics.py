"""vLLM v0.10.1.1's engine metrics, rebuilt with prometheus_client: a /metrics stand-in.

vLLM needs a GPU to export them, so the monitoring tests use this instead. Every family below is
transcribed from ``vllm/v1/metrics/loggers.py`` (class ``PrometheusStatLogger``) of the wheel
``vllm-0.10.1.1-cp38-abi3-manylinux1_x86_64.whl`` from PyPI, sha256
8ca0dd985e1ceac8540e7719c654f1553b3ba8a43c685ac8d3fa1366ffb6443a — the version of the image
the operator pins (``vllm/vllm-openai:v0.10.1.1``): same names, types, help texts, label names
(``model_name``, ``engine``; ``finished_reason`` from ``vllm/v1/engine/__init__.py``: stop,
length, abort) and buckets (``build_1_2_5_buckets(max_model_len)`` with the operator's default
max_model_len 16384). ``vllm:cache_config_info`` is shown with a few of its labels. Left out:
the speculative-decoding families (only with a speculative config), ``vllm:lora_requests_info``
(only with LoRA), the ``http_*`` families of prometheus-fastapi-instrumentator (not Sara's
dashboards' concern) and the ``*_created`` samples prometheus_client adds (the wall clock).

``python tests/monitoring/vllm_metrics.py`` prints the exposition after one engine step:
``tests/monitoring/fixtures/vllm-0.10.1.1.metrics`` is that output (a test keeps them equal).
:class:`VllmStandIn` advances the counters at every scrape, so a real Prometheus sees rates.
"""

from __future__ import annotations

import sys
import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

VERSION = "0.10.1.1"
MAX_MODEL_LEN = 16384
LABELS = ["model_name", "engine"]
FINISH_REASONS = ("stop", "length", "abort")
TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0]  # fmt: skip
TPOT_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0,
                7.5, 10.0, 20.0, 40.0, 80.0]  # fmt: skip
REQUEST_LATENCY_BUCKETS = [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0,
                           50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0]  # fmt: skip
ITERATION_TOKEN_BUCKETS = [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384]


def build_1_2_5_buckets(max_value: int) -> list[int]:
    """vLLM's ``build_1_2_5_buckets``: 1, 2, 5, 10, 20, 50, … up to ``max_value``."""
    buckets: list[int] = []
    exponent = 0
    while True:
        for mantissa in (1, 2, 5):
            value = mantissa * 10**exponent
            if value > max_value:
                return buckets
            buckets.append(value)
        exponent += 1


class VllmMetrics:
    """The families of ``PrometheusStatLogger.__init__``, in its order, on a fresh registry."""

    def __init__(self, served_name: str = "sara", engine: str = "0") -> None:
        r = self.registry = CollectorRegistry()
        self.labels = (served_name, engine)
        counts = build_1_2_5_buckets(MAX_MODEL_LEN)

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(name, doc, LABELS, registry=r)

        def counter(name: str, doc: str, extra: tuple[str, ...] = ()) -> Counter:
            return Counter(name, doc, [*LABELS, *extra], registry=r)

        def histogram(name: str, doc: str, buckets: list[float] | list[int]) -> Histogram:
            return Histogram(name, doc, LABELS, buckets=buckets, registry=r)

        self.running = gauge(
            "vllm:num_requests_running", "Number of requests in model execution batches."
        )
        self.waiting = gauge(
            "vllm:num_requests_waiting", "Number of requests waiting to be processed."
        )
        self.gpu_cache_usage = gauge(
            "vllm:gpu_cache_usage_perc",
            "GPU KV-cache usage. 1 means 100 percent usage."
            "DEPRECATED: Use vllm:kv_cache_usage_perc instead.",
        )
        self.gpu_prefix_queries = counter(
            "vllm:gpu_prefix_cache_queries",
            "GPU prefix cache queries, in terms of number of queried"
            "tokens. DEPRECATED: Use vllm:prefix_cache_queries instead.",
        )
        self.gpu_prefix_hits = counter(
            "vllm:gpu_prefix_cache_hits",
            "GPU prefix cache hits, in terms of number of cached "
            "tokens. DEPRECATED: Use vllm:prefix_cache_hits instead.",
        )
        self.kv_cache_usage = gauge(
            "vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage."
        )
        self.prefix_queries = counter(
            "vllm:prefix_cache_queries",
            "Prefix cache queries, in terms of number of queried tokens.",
        )
        self.prefix_hits = counter(
            "vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens."
        )
        self.preemptions = counter(
            "vllm:num_preemptions", "Cumulative number of preemption from the engine."
        )
        self.prompt_tokens = counter("vllm:prompt_tokens", "Number of prefill tokens processed.")
        self.generation_tokens = counter(
            "vllm:generation_tokens", "Number of generation tokens processed."
        )
        self.request_success = counter(
            "vllm:request_success",
            "Count of successfully processed requests.",
            ("finished_reason",),
        )
        for reason in FINISH_REASONS:  # vLLM creates every reason's child up front
            self.request_success.labels(*self.labels, reason)
        self.request_prompt_tokens = histogram(
            "vllm:request_prompt_tokens", "Number of prefill tokens processed.", counts
        )
        self.request_generation_tokens = histogram(
            "vllm:request_generation_tokens", "Number of generation tokens processed.", counts
        )
        self.iteration_tokens = histogram(
            "vllm:iteration_tokens_total",
            "Histogram of number of tokens per engine_step.",
            ITERATION_TOKEN_BUCKETS,
        )
        self.request_max_generation_tokens = histogram(
            "vllm:request_max_num_generation_tokens",
            "Histogram of maximum number of requested generation tokens.",
            counts,
        )
        self.request_n = histogram(
            "vllm:request_params_n", "Histogram of the n request parameter.", [1, 2, 5, 10, 20]
        )
        self.request_max_tokens = histogram(
            "vllm:request_params_max_tokens",
            "Histogram of the max_tokens request parameter.",
            counts,
        )
        self.ttft = histogram(
            "vllm:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            TTFT_BUCKETS,
        )
        self.tpot = histogram(
            "vllm:time_per_output_token_seconds",
            "Histogram of time per output token in seconds.",
            TPOT_BUCKETS,
        )
        self.e2e = histogram(
            "vllm:e2e_request_latency_seconds",
            "Histogram of e2e request latency in seconds.",
            REQUEST_LATENCY_BUCKETS,
        )
        self.queue_time = histogram(
            "vllm:request_queue_time_seconds",
            "Histogram of time spent in WAITING phase for request.",
            REQUEST_LATENCY_BUCKETS,
        )
        self.inference_time = histogram(
            "vllm:request_inference_time_seconds",
            "Histogram of time spent in RUNNING phase for request.",
            REQUEST_LATENCY_BUCKETS,
        )
        self.prefill_time = histogram(
            "vllm:request_prefill_time_seconds",
            "Histogram of time spent in PREFILL phase for request.",
            REQUEST_LATENCY_BUCKETS,
        )
        self.decode_time = histogram(
            "vllm:request_decode_time_seconds",
            "Histogram of time spent in DECODE phase for request.",
            REQUEST_LATENCY_BUCKETS,
        )
        # log_engine_initialized(): an info-style gauge of the cache config (a few of its labels)
        info = {"block_size": "16", "cache_dtype": "auto", "enable_prefix_caching": "True"}
        Gauge(
            "vllm:cache_config_info",
            "Information of the LLMEngine CacheConfig",
            [*info, "engine"],
            registry=r,
        ).labels(*info.values(), engine).set(1)

    def step(self, n: int) -> None:
        """One engine step with a finished agent round (deterministic, varied by ``n``)."""
        lab = self.labels
        self.running.labels(*lab).set(2 + n % 3)
        self.waiting.labels(*lab).set(n % 2)
        usage = 0.30 + 0.05 * (n % 5)
        self.gpu_cache_usage.labels(*lab).set(usage)
        self.kv_cache_usage.labels(*lab).set(usage)
        for queries, hits in ((self.gpu_prefix_queries, self.gpu_prefix_hits),
                              (self.prefix_queries, self.prefix_hits)):  # fmt: skip
            queries.labels(*lab).inc(1500)
            hits.labels(*lab).inc(1200)
        self.preemptions.labels(*lab).inc(n % 2)
        self.prompt_tokens.labels(*lab).inc(1500)
        self.generation_tokens.labels(*lab).inc(40)
        self.iteration_tokens.labels(*lab).observe(1540)
        self.request_max_generation_tokens.labels(*lab).observe(2048)
        self.request_n.labels(*lab).observe(1)
        self.ttft.labels(*lab).observe(0.05 + 0.01 * (n % 4))
        self.tpot.labels(*lab).observe(0.012 + 0.002 * (n % 3))
        self.request_success.labels(*lab, "stop").inc()
        self.e2e.labels(*lab).observe(0.6 + 0.1 * (n % 5))
        self.queue_time.labels(*lab).observe(0.01 * (n % 3))
        self.prefill_time.labels(*lab).observe(0.05)
        self.inference_time.labels(*lab).observe(0.55)
        self.decode_time.labels(*lab).observe(0.5)
        self.request_prompt_tokens.labels(*lab).observe(1500)
        self.request_generation_tokens.labels(*lab).observe(40)
        self.request_max_tokens.labels(*lab).observe(2048)

    def exposition(self) -> bytes:
        """Text format 0.0.4, without the wall-clock ``*_created`` samples."""
        lines = generate_latest(self.registry).decode().splitlines(keepends=True)
        kept = [
            line
            for line in lines
            if not (line.split("{", 1)[0].split(" ", 1)[0].endswith("_created"))
            and not (line.startswith("# ") and line.split(" ")[2].endswith("_created"))
        ]
        return "".join(kept).encode()


class VllmStandIn:
    """A /metrics body that advances one engine step per scrape (thread-safe)."""

    def __init__(self) -> None:
        self.metrics = VllmMetrics()
        self._lock = threading.Lock()
        self._steps = 0

    def scrape(self) -> bytes:
        with self._lock:
            self._steps += 1
            self.metrics.step(self._steps)
            return self.metrics.exposition()


def fixture_text() -> str:
    metrics = VllmMetrics()
    metrics.step(1)
    return metrics.exposition().decode()


if __name__ == "__main__":
    sys.stdout.write(fixture_text())
