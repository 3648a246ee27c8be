"""EndpointPoolVLM against several real OpenAI-compatible servers on 127.0.0.1."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from drivevlm.models.lvlm.endpoints import EndpointPoolVLM
from drivevlm.models.lvlm.openai_server import LVLMRequestError
from support.chat_server import ChatServer, Reply, unused_port

FRAMES = [np.full((8, 8, 3), 100, dtype=np.uint8)]


def _run(vlm: EndpointPoolVLM, n: int, threads: int) -> tuple[list[str], float]:
    start = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        answers = list(pool.map(lambda _: vlm.generate(FRAMES, "what is ahead?"), range(n)))
    return answers, time.monotonic() - start


def test_requests_spread_over_servers_and_throughput_grows() -> None:
    script = [Reply(text="clear", delay_s=0.15)]
    with ChatServer(script) as a, ChatServer(script) as b, ChatServer(script) as c:
        one = EndpointPoolVLM([a.base_url], model="m", concurrency=1)
        _, single_s = _run(one, 12, threads=6)
        served_before = [len(s.requests) for s in (a, b, c)]
        three = EndpointPoolVLM([a.base_url, b.base_url, c.base_url], model="m", concurrency=1)
        answers, pooled_s = _run(three, 12, threads=6)
        served = [len(s.requests) - before for s, before in zip((a, b, c), served_before, strict=True)]
    assert answers == ["clear"] * 12
    assert sum(served) == 12 and min(served) >= 3, served
    # 12 requests of 0.15 s: ~1.8 s through one server that takes one at a time, ~0.6 s through three.
    assert pooled_s < 0.6 * single_s, (pooled_s, single_s)


def test_round_robin_takes_turns() -> None:
    with ChatServer() as a, ChatServer() as b:
        vlm = EndpointPoolVLM(f"{a.base_url},{b.base_url}", model="m", strategy="round_robin")
        for _ in range(6):
            vlm.generate(FRAMES, "p")
        assert (len(a.requests), len(b.requests)) == (3, 3)


def test_server_dying_mid_run_loses_no_request_and_is_marked_down() -> None:
    survivor, dying = ChatServer([Reply(text="ok", delay_s=0.02)]).start(), ChatServer().start()
    try:
        vlm = EndpointPoolVLM([survivor.base_url, dying.base_url], model="m", timeout_s=2.0, backoff_s=0.01)
        stop_after = threading.Timer(0.2, dying.stop)
        stop_after.start()
        answers, _ = _run(vlm, 60, threads=4)
        stop_after.join()
        before = len(survivor.requests)
        answers += _run(vlm, 20, threads=4)[0]
        after_death = len(survivor.requests) - before
    finally:
        survivor.stop()
        dying.stop()
    assert len(answers) == 80 and set(answers) <= {"ok", "A pedestrian is crossing the road ahead"}
    counters = vlm.counters()
    assert counters["endpoint1/failures"] >= 2 and counters["endpoint1/up"] == 0.0
    assert counters["endpoints_up"] == 1.0
    # Once marked down, the dead server is left alone: the survivor answers every later request.
    assert after_death == 20


def test_marked_down_endpoint_is_probed_back() -> None:
    flaky = [Reply(status=503), Reply(status=503), Reply(text="back")]
    with ChatServer([Reply(text="steady")]) as steady, ChatServer(flaky) as recovering:
        vlm = EndpointPoolVLM(
            [recovering.base_url, steady.base_url],
            model="m",
            strategy="round_robin",
            mark_down_after=2,
            probe_after_s=0.2,
            backoff_s=0.0,
        )
        assert vlm.generate(FRAMES, "p") == "steady"  # 503 from the first, moved to the second
        assert vlm.generate(FRAMES, "p") == "steady"  # second 503: marked down
        assert vlm.counters()["endpoint0/up"] == 0.0
        for _ in range(3):
            vlm.generate(FRAMES, "p")
        assert len(recovering.requests) == 2  # skipped while down
        time.sleep(0.25)
        answers = {vlm.generate(FRAMES, "p") for _ in range(4)}
        assert "back" in answers and vlm.counters()["endpoint0/up"] == 1.0


def test_all_endpoints_down_is_one_clear_error() -> None:
    urls = [f"http://127.0.0.1:{unused_port()}/v1" for _ in range(2)]
    vlm = EndpointPoolVLM(urls, model="m", timeout_s=1.0, backoff_s=0.0, retries=3, probe_after_s=60)
    with pytest.raises(LVLMRequestError) as error:
        vlm.generate(FRAMES, "p")
    assert error.value.kind == "connection"
    with pytest.raises(LVLMRequestError, match="marked down"):
        vlm.generate(FRAMES, "p")


def test_bad_arguments_name_the_field() -> None:
    with pytest.raises(ValueError, match="base_urls"):
        EndpointPoolVLM([], model="m")
    with pytest.raises(ValueError, match="strategy"):
        EndpointPoolVLM(["http://127.0.0.1:1/v1"], model="m", strategy="random")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="base_url"):
        EndpointPoolVLM(["ftp://x"], model="m")


def test_pool_is_selectable_from_a_preset() -> None:
    from drivevlm.config import build
    from drivevlm.models.config import LVLMConfig
    from drivevlm.models.lvlm.endpoints import EndpointPoolVLM
    from drivevlm.rewards.build import RegistryModelFactory

    cfg = build(
        LVLMConfig, {"backend": "openai_pool", "base_url": "http://127.0.0.1:1/v1,http://127.0.0.1:2/v1"}
    )
    vlm = RegistryModelFactory().make_vlm(cfg)
    assert isinstance(vlm, EndpointPoolVLM) and len(vlm.endpoints) == 2
