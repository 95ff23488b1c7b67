"""GalaxySDPipeline is re-entrant (issue 11, point 6): there is no call lock, and threads that call
one pipeline at the same time get bit for bit the images of sequential calls.

The calls are forced to overlap: every step's callback waits at a barrier for the other thread's
step, so the two calls run interleaved step by step (a lock would make the barrier time out). Any
state shared between calls (the shared scheduler, a global random generator, a cached sampler)
would then mix the two calls and change the images."""
import threading

import numpy as np
import pytest

from tiny_models import build_tiny_pipeline

REQUESTS = [
    dict(prompt="sdss, smooth, {completely round galaxy:1.3}", seed=1, scheduler="euler_a", eta=0.0),
    dict(prompt="sdss, features or disk-shaped, spiral galaxy", seed=2, scheduler="ddim", eta=1.0),
]
COMMON = dict(num_images_per_prompt=2, num_inference_steps=5, output_type="np", guidance_scale=5.0)


@pytest.fixture(scope="module")
def pipe():
    return build_tiny_pipeline(seed=0)


def run_interleaved(pipe, requests, common, timeout=60.0):
    """Run the requests in one thread each, in lock step; returns the images and whether every step overlapped."""
    barrier = threading.Barrier(len(requests), timeout=timeout)
    results, errors, active, peak = [None] * len(requests), [], [0], [0]
    count = threading.Lock()

    def step(i, n):
        barrier.wait()  # every call has finished step i before any goes on

    def run(k):
        try:
            with count:
                active[0] += 1
            results[k] = pipe(callback=step, **requests[k], **common).images
            with count:
                peak[0] = max(peak[0], active[0])
                active[0] -= 1
        except Exception as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 30)
    assert not errors, f"a call failed while another ran (a lock, or shared state): {errors!r}"
    return results, peak[0]


def test_concurrent_calls_give_exactly_the_sequential_images(pipe):
    sequential = [pipe(**r, **COMMON).images for r in REQUESTS]
    concurrent, peak = run_interleaved(pipe, REQUESTS, COMMON)
    assert peak == len(REQUESTS), "the calls ran one after the other"
    for got, expected in zip(concurrent, sequential):
        assert np.array_equal(got, expected)


def test_concurrent_img2img_calls_with_the_same_sampler(pipe):
    y, x = np.mgrid[0:32, 0:32] - 16
    start = (255 * np.exp(-(x ** 2 + y ** 2) / 60.0))[..., None].repeat(3, -1).astype(np.uint8)
    requests = [dict(prompt="sdss, smooth", seed=5, scheduler="dpmpp", image=start, strength=0.8),
                dict(prompt="sdss, merger", seed=9, scheduler="dpmpp", image=255 - start, strength=0.8)]
    common = dict(COMMON, num_inference_steps=5)
    sequential = [pipe(**r, **common).images for r in requests]
    concurrent, _ = run_interleaved(pipe, requests, common)
    for got, expected in zip(concurrent, sequential):
        assert np.array_equal(got, expected)
